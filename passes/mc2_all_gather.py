"""The family member `mc2.all_gather_quant_matmul` (aclnnAllGatherMatmulV2, int8, commMode "aiv";
Atlas A2 and A3): its chain shape, its chain rules and its judge over `dialects.agmm_rules`.

    qmm.allgather(x1 i8) [+ qmm.allgather(pertoken f32)] -> qmm.matmul -> qmm.dequant

The chain ends at its dequant (the root, and the op the fused op's output replaces).  The
gathered x1 may have other users: the fused op's gather_out replaces it for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from qmmar.dialects import rules
from qmmar.dialects.agmm_rules import OPERANDS, RULES, TABLES, Signature
from qmmar.dialects.diagnostics import written_name
from qmmar.dialects.location import location_text
from qmmar.dialects.mc2_all_gather import AllGatherQuantMatmulOp
from qmmar.dialects.mc2_rules import TensorSig
from qmmar.dialects.qmm import AllGatherOp, DequantOp, MatmulOp, element, tensor_type_of
from qmmar.passes.chain_cost import all_gather_ways, chain_costs
from qmmar.passes.family import FusedOpKind
from qmmar.passes.legality import ONE_GROUP, Broken, one_group, operand_signatures
from qmmar.passes.markers import MUST_FUSE
from qmmar.passes.plan import Finding, FusionPlan, Operand, aiv_scale_form
from qmmar.passes.policy import POLICY_RULES, Policy, policy_finding

KIND = AllGatherQuantMatmulOp.name


@dataclass
class GatherChain:
    """allgather(x1) [+ allgather(pertoken)] -> matmul -> dequant, matched from the dequant."""

    dequant: DequantOp
    matmul: MatmulOp
    gather: AllGatherOp
    """The all-gather of x1: the op's gather_out."""
    scale_gather: AllGatherOp | None
    """The all-gather of the per-token scale, when the dequant's pertoken is one."""
    side: list[Operation] = field(default_factory=list[Operation])
    leaves: list[Operation] = field(default_factory=list[Operation])

    @cached_property
    def collectives(self) -> list[AllGatherOp]:
        return [op for op in (self.gather, self.scale_gather) if op is not None]

    @property
    def path(self) -> list[Operation]:
        return [*self.collectives, self.matmul, self.dequant]

    @property
    def end(self) -> Operation:
        return self.dequant

    @cached_property
    def ops(self) -> frozenset[Operation]:
        return frozenset(self.path)

    @property
    def group(self) -> str:
        return self.gather.group.data

    def describe(self) -> str:
        return " -> ".join(op.name for op in self.path)


def match_gather_chains(root: Operation) -> list[GatherChain]:
    """The chain ending at a dequant of an int32 matmul whose x1 is an int8 all-gather."""
    if not (isinstance(root, DequantOp) and element(root.x) == "i32"):
        return []
    matmul = root.x.owner
    if not isinstance(matmul, MatmulOp):
        return []
    gather = matmul.x1.owner
    if not (isinstance(gather, AllGatherOp) and element(gather.x) == "i8"):
        return []
    pertoken = root.pertoken.owner if root.pertoken is not None else None
    return [GatherChain(root, matmul, gather, pertoken if isinstance(pertoken, AllGatherOp) else None)]


def no_collective_ends_a_gather_chain(op: Operation) -> str | None:
    """A chain of this kind ends at a dequant, never at a collective: nothing to say."""
    return None


@dataclass(frozen=True)
class GatherChainRule:
    id: str
    sentence: str
    check: Callable[[GatherChain, Policy], Broken | None]


def _single_use(c: GatherChain, p: Policy) -> Broken | None:
    for value, op in [(c.matmul.result, c.matmul), *[(g.result, g) for g in c.collectives[1:]]]:
        for use in value.uses:
            if use.operation not in c.ops:
                user = use.operation
                where = f"'{written_name(user)}' at {location_text(user.location)}"
                return f"{SINGLE_USE.sentence}: it is also used by {where}", op
    return None


def _gather_users_after(c: GatherChain, p: Policy) -> Broken | None:
    block = c.dequant.parent
    for use in c.gather.result.uses:
        if use.operation in c.ops:
            continue
        user = block.find_ancestor_op_in_block(use.operation) if block is not None else None
        if user is None or not c.dequant.is_before_in_block(user):
            at = location_text(use.operation.location)
            return f"{GATHER_USERS.sentence}: '{written_name(use.operation)}' at {at} is not", c.gather
    return None


def _same_group(c: GatherChain, p: Policy) -> Broken | None:
    if len({(g.group.data, g.world_size.value.data) for g in c.collectives}) == 1:
        return None
    return SAME_GROUP.sentence, c.collectives[-1]


SINGLE_USE = GatherChainRule("AGMM-CHAIN-SINGLE-USE", "the matmul's result and the gathered per-token scale "
                             "must have the chain as their only user", _single_use)  # fmt: skip
GATHER_USERS = GatherChainRule("AGMM-CHAIN-GATHER-USERS", "every other user of the gathered x1 must come after "
                               "the chain's dequant, where the fused op's gather_out replaces it",
                               _gather_users_after)  # fmt: skip
SAME_GROUP = GatherChainRule("AGMM-CHAIN-SAME-GROUP", "the all-gathers of x1 and of its per-token scale must "
                             "share group and world_size", _same_group)  # fmt: skip
ONE_GROUP_RULE = GatherChainRule(ONE_GROUP.id, ONE_GROUP.sentence, one_group)

CHAIN_RULES = (SINGLE_USE, GATHER_USERS, SAME_GROUP, ONE_GROUP_RULE)
RULE_ORDER = {rule_id: i for i, rule_id in enumerate([*(r.id for r in CHAIN_RULES), *(r.id for r in RULES),
                                                      *POLICY_RULES])}  # fmt: skip
"""Every rule in the order it is checked: how far a chain got before one stopped it."""

_ABOUT_THE_COLLECTIVE = frozenset({"AGMM-WORLD-SIZE", "AGMM-GROUP"})
"""Rules of the table about a property that the chain's all-gather carries."""


def _operands(c: GatherChain) -> dict[str, Operand | None]:
    """The fused op's operands in final form: the values the all-gathers read, and the scale
    as the kernel must take it to multiply by qmm.dequant's value (`aiv_scale_form`: packed, or
    a bf16 one widened; docs/all-gather-matmul.md)."""
    pertoken = c.scale_gather.x if c.scale_gather is not None else c.dequant.pertoken
    values = {"x1": c.gather.x, "x2": c.matmul.x2, "bias": c.matmul.bias, "x1_scale": pertoken,
              "x2_scale": c.dequant.scale}  # fmt: skip
    operands = {name: None if (v := values[name]) is None else Operand(v) for name in OPERANDS}
    form = aiv_scale_form(element(c.dequant.scale), element(c.dequant.result), c.dequant.pertoken is not None)
    operands["x2_scale"] = Operand(c.dequant.scale, form)
    return operands


def signature(c: GatherChain, operands: Mapping[str, Operand | None],
              properties: Mapping[str, str | int | bool]) -> Signature:  # fmt: skip
    """The signature of the fused op these operands (in final form) would make."""
    return Signature.build(operand_signatures(operands), TensorSig.of(c.dequant.result.type, "output"),
                           TensorSig.of(c.gather.result.type, "gather_out"), group=str(properties["group"]),
                           world_size=int(properties["world_size"]),
                           transpose_x2=bool(properties["transpose_x2"]))  # fmt: skip


def judge(chain: GatherChain, policy: Policy) -> FusionPlan:
    """The chain rules, the target's rule table on the fused op's signature, the policy, then
    the caller's control function: one plan."""
    properties: dict[str, str | int | bool] = {
        "group": chain.group, "world_size": chain.gather.world_size.value.data,
        "transpose_x2": bool(chain.matmul.transpose_x2.value.data),
    }  # fmt: skip
    operands = _operands(chain)
    plan = FusionPlan(KIND, chain, operands, properties, tensor_type_of(chain.dequant.result), None,
                      must_fuse=MUST_FUSE in chain.dequant.attributes,
                      also_replaced=(chain.gather.result,))  # fmt: skip
    for rule in CHAIN_RULES:
        if (broken := rule.check(chain, policy)) is not None:
            return _refused(plan, Finding(rule.id, *broken))
    sig = signature(chain, operands, properties)
    dims = (sig.output.shape[0], sig.k, sig.n)  # m: the gathered rows
    costs = chain_costs(dims, sig.world_size, policy, all_gather_ways(pertoken=sig.x1_scale is not None))
    notes = (costs[0].estimate.overlap_note("all-gather"),) if costs else ()
    plan = dataclasses.replace(plan, dims=dims, costs=costs, notes=notes)
    violated, also = rules.table_verdict(TABLES[policy.target.soc], sig)
    if violated is not None:
        at = chain.gather if violated.id in _ABOUT_THE_COLLECTIVE else chain.matmul
        plan = dataclasses.replace(plan, notes=(*plan.notes, *also))
        return _refused(plan, Finding(violated.id, violated.sentence_for(sig), at))
    finding = policy_finding(dims[0], chain.matmul, chain.dequant, policy)
    if finding is None and policy.control is not None:
        finding = policy.control(plan)
    if finding is not None:
        return _refused(plan, finding)
    return dataclasses.replace(plan, progress=len(RULE_ORDER))


def _refused(plan: FusionPlan, finding: Finding) -> FusionPlan:
    """The plan with its finding, and how far the chain got through the rules."""
    return dataclasses.replace(plan, finding=finding, progress=RULE_ORDER[finding.rule])


def build(operands: Mapping[str, SSAValue | None], properties: Mapping[str, str | int | bool],
          output_type: TensorType) -> AllGatherQuantMatmulOp:  # fmt: skip
    return AllGatherQuantMatmulOp(
        operands, group=str(properties["group"]), world_size=int(properties["world_size"]),
        transpose_x2=bool(properties["transpose_x2"]), output_type=output_type,
    )  # fmt: skip


ALL_GATHER_QUANT_MATMUL = FusedOpKind(
    KIND, (DequantOp,), match_gather_chains, judge, no_collective_ends_a_gather_chain, build, socs=tuple(TABLES),
    torch_op="all_gather_quant_matmul",
)  # fmt: skip
