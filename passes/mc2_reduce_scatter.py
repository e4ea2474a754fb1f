"""The family member `mc2.quant_matmul_reduce_scatter` (aclnnMatmulReduceScatterV2, int8,
commMode "aiv", Atlas A2 and A3): the row-parallel end of a sequence-parallel layer,

    [quant ->] matmul -> dequant -> reduce_scatter

read backwards from the reduce-scatter (row-only reshapes may sit between the matmul, the
dequant and the reduce-scatter).  A quant before the matmul stays: it computes x1, which the
fused op takes as int8.  The chain is judged by its chain rules, then by the op's rule table
for the target's SoC (`dialects.mrs_rules`) on the signature the fused op would have, then by
the scenario policy and the caller's control function: one plan per chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Generic, Protocol, TypeVar

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from qmmar.dialects import rules
from qmmar.dialects.diagnostics import written_name
from qmmar.dialects.location import location_text
from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.mc2_rules import TensorSig
from qmmar.dialects.mrs_rules import OPERANDS, RULE_IDS, TABLES, Signature
from qmmar.dialects.qmm import DequantOp, MatmulOp, ReduceScatterOp, element, tensor_type_of
from qmmar.passes.chain import _head
from qmmar.passes.chain_cost import REDUCE_SCATTER, chain_costs
from qmmar.passes.family import FusedOpKind
from qmmar.passes.legality import ONE_GROUP, SINGLE_USE, Broken, one_group, operand_signatures, other_user
from qmmar.passes.markers import MUST_FUSE
from qmmar.passes.plan import Finding, FusionPlan, Operand, aiv_scale_form
from qmmar.passes.policy import POLICY_RULES, Policy, policy_finding

KIND = QuantMatmulReduceScatterOp.name


@dataclass
class ReduceScatterChain:
    root: ReduceScatterOp
    matmul: MatmulOp
    dequant: DequantOp
    path: list[Operation]
    """matmul first, the reduce-scatter last."""
    side: list[Operation] = field(default_factory=list[Operation])
    leaves: list[Operation] = field(default_factory=list[Operation])
    """None: the chain has no ops that only size others, nor constants they read."""

    @property
    def end(self) -> Operation:
        return self.root

    @cached_property
    def ops(self) -> frozenset[Operation]:
        return frozenset(self.path)

    @property
    def group(self) -> str:
        return self.root.group.data

    @property
    def collectives(self) -> list[ReduceScatterOp]:
        return [self.root]

    @property
    def world_size(self) -> int:
        return self.root.world_size.value.data

    @property
    def result_type(self) -> TensorType:
        return tensor_type_of(self.root.result)

    def describe(self) -> str:
        return " -> ".join(op.name for op in self.path)


def match(root: Operation) -> list[ReduceScatterChain]:
    """The chain ending at a reduce-scatter, or none."""
    if not isinstance(root, ReduceScatterOp) or (head := _head(root.x)) is None:
        return []
    walk, dequant, matmul = head
    return [ReduceScatterChain(root, matmul, dequant, [*reversed(walk.path), root])]


def why_not(root: Operation) -> str | None:
    """Why no chain ends at a reduce-scatter, in words (None for any other op, or when one does)."""
    if not isinstance(root, ReduceScatterOp) or match(root):
        return None
    producer = root.x.owner
    if not isinstance(producer, Operation):
        return "its operand is an argument, not a qmm.dequant of a qmm.matmul's int32 result"
    return (f"its operand comes from '{written_name(producer)}' at {location_text(producer.location)}, not from a "
            "qmm.dequant of a qmm.matmul's int32 result")  # fmt: skip


class QuantMatmulChain(Protocol):
    """What the fused op's operands come from, in a chain of this op or of the A3 form."""

    matmul: MatmulOp
    dequant: DequantOp


C = TypeVar("C", contravariant=True)


@dataclass(frozen=True)
class ChainRule(Generic[C]):
    """A chain rule over chains of type C (a rule over any `QuantMatmulChain` serves both)."""

    id: str
    sentence: str
    check: Callable[[C, Policy], Broken | None]


def _int32_bias(c: QuantMatmulChain, p: Policy) -> Broken | None:
    return None if c.matmul.bias is None else (INT32_BIAS.sentence, c.matmul)


def _rows(c: ReduceScatterChain, p: Policy) -> Broken | None:
    return None if len(c.result_type.get_shape()) == 2 else (ROWS.sentence, c.root)


INT32_BIAS: ChainRule[QuantMatmulChain] = ChainRule(
    "CHAIN-RS-INT32-BIAS", "the matmul's int32 bias is added before the dequant, and aclnnMatmulReduceScatterV2 "
    "adds an f32 bias after it: other numbers", _int32_bias)  # fmt: skip
ROWS = ChainRule("CHAIN-RS-ROWS", "the reduce-scatter must scatter 2-D [m, n] rows: the fused op's output "
                 "is [m / world_size, n]", _rows)  # fmt: skip
CHAIN_RULES: tuple[ChainRule[ReduceScatterChain], ...] = (
    ChainRule(SINGLE_USE.id, SINGLE_USE.sentence, other_user),
    ChainRule(ONE_GROUP.id, ONE_GROUP.sentence, one_group),
    INT32_BIAS,
    ROWS,
)
RULE_ORDER = {rule_id: i for i, rule_id in enumerate([*(r.id for r in CHAIN_RULES), *RULE_IDS, *POLICY_RULES])}
"""Every rule in the order it is checked: how far a chain got before one stopped it."""

_ABOUT_THE_COLLECTIVE = frozenset({"MRS-WORLD-SIZE", "MRS-GROUP", "MRS-M-DIVISIBLE", "MRS-OUT-SHAPE"})
"""Rules of the table about what the chain's reduce-scatter carries or computes."""


def operands_of(c: QuantMatmulChain) -> dict[str, Operand | None]:
    """The fused op's operands in final form: a 3-D x1 as [m, k] rows; the dequant scale as
    x2_scale in the form that makes the fused op multiply by qmm.dequant's value
    (`aiv_scale_form`: packed, or a bf16 one widened to f32); the per-token scale as x1_scale."""
    x1, scale, pertoken = c.matmul.x1, c.dequant.scale, c.dequant.pertoken
    form = aiv_scale_form(element(scale), element(c.dequant.result), pertoken is not None)
    values = {"x1": Operand(x1, "rows" if len(tensor_type_of(x1).get_shape()) == 3 else "value"),
              "x2": Operand(c.matmul.x2), "x1_scale": None if pertoken is None else Operand(pertoken),
              "x2_scale": Operand(scale, form)}  # fmt: skip
    return {name: values.get(name) for name in OPERANDS}


def signature(operands: Mapping[str, Operand | None], output_type: TensorType,
              properties: Mapping[str, str | int | bool]) -> Signature:  # fmt: skip
    """The signature of the fused op with these operands (in final form) and properties."""
    return Signature.build(operand_signatures(operands), TensorSig.of(output_type, "output"),
                           group=str(properties["group"]), world_size=int(properties["world_size"]),
                           transpose_x2=bool(properties["transpose_x2"]))  # fmt: skip


def judged(plan: FusionPlan, matmul: MatmulOp, collective: Operation, policy: Policy,
           order: Mapping[str, int]) -> FusionPlan:  # fmt: skip
    """A plan whose chain passed its chain rules, judged on: the SoC's rule table on the fused
    op's signature, the policy, then the caller's control function; `order` is the member's
    rule order (how far a refused chain got)."""
    sig = signature(plan.operands, plan.output_type, plan.properties)
    dims = (sig.m, sig.k, sig.n)
    costs = chain_costs(dims, sig.world_size, policy, REDUCE_SCATTER)  # the fused op's collective
    notes = (*plan.notes, costs[0].estimate.overlap_note("reduce-scatter")) if costs else plan.notes
    plan = dataclasses.replace(plan, dims=dims, costs=costs, notes=notes)
    finding = None
    violated, also = rules.table_verdict(TABLES[policy.target.soc], sig)
    if violated is not None:
        at = collective if violated.id in _ABOUT_THE_COLLECTIVE else matmul
        finding = Finding(violated.id, violated.sentence_for(sig), at)
        plan = dataclasses.replace(plan, notes=(*plan.notes, *also))
    if finding is None:
        finding = policy_finding(sig.m, matmul, collective, policy)
    if finding is None and policy.control is not None:
        finding = policy.control(plan)
    if finding is not None:
        return dataclasses.replace(plan, finding=finding, progress=order[finding.rule])
    return dataclasses.replace(plan, progress=len(order))


def judge(chain: ReduceScatterChain, policy: Policy) -> FusionPlan:
    """The chain rules, then the rest (`judged`): one plan."""
    transpose_x2 = bool(chain.matmul.transpose_x2.value.data)
    properties: dict[str, str | int | bool] = {"group": chain.group, "world_size": chain.world_size,
                                               "transpose_x2": transpose_x2}  # fmt: skip
    plan = FusionPlan(KIND, chain, operands_of(chain), properties, chain.result_type, None,
                      must_fuse=MUST_FUSE in chain.root.attributes)  # fmt: skip
    for rule in CHAIN_RULES:
        if (broken := rule.check(chain, policy)) is not None:
            return dataclasses.replace(plan, finding=Finding(rule.id, *broken), progress=RULE_ORDER[rule.id])
    return judged(plan, chain.matmul, chain.root, policy, RULE_ORDER)


def build(operands: Mapping[str, SSAValue | None], properties: Mapping[str, str | int | bool],
          output_type: TensorType) -> QuantMatmulReduceScatterOp:  # fmt: skip
    return QuantMatmulReduceScatterOp(
        operands, group=str(properties["group"]), world_size=int(properties["world_size"]),
        transpose_x2=bool(properties["transpose_x2"]), output_type=output_type,
    )  # fmt: skip


QUANT_MATMUL_REDUCE_SCATTER = FusedOpKind(
    KIND, (ReduceScatterOp,), match, judge, why_not, build, socs=("a2", "a3"),
    torch_op="quant_matmul_reduce_scatter",
)  # fmt: skip
