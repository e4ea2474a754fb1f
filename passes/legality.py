"""Is a matched chain legal to fuse?  The chain rules, then the operator's own rule table
(`dialects.mc2_rules`) on the signature the fused op would have, then the scenario policy:
so the pass never writes an op that fails verification.  Each finding names the op it is
about, so that a remark points where the user must look."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Operation, SSAValue

from qmmar.dialects.dtypes import dtype_name, scale_is_packed
from qmmar.dialects.location import location_text
from qmmar.dialects.logic import Dim
from qmmar.dialects.mc2_rules import OPERANDS, RULES, Signature, TensorSig, first_violation
from qmmar.dialects.qmm import element, tensor_type_of
from qmmar.dialects.shapes import STATIC, rows
from qmmar.passes.chain import Chain
from qmmar.passes.cost_model import CostEstimate, estimate
from qmmar.passes.markers import DECODE, SCENARIO


@dataclass(frozen=True)
class Policy:
    group: str
    """The module's one communication group."""
    group_origin: str
    """Where that group comes from, in words: the option, or the first chain."""
    scenario: str  # "auto" | "prefill" | "decode"
    min_m: int  # with scenario=auto: a static m below this is decode
    int8_tops: float
    link_gbps: float


@dataclass(frozen=True)
class Finding:
    rule: str
    sentence: str
    at: Operation
    """The op the rule is about: the remark's location."""


Broken = tuple[str, Operation]
"""What a chain rule reports: the sentence with this chain's particulars, and the op."""


@dataclass(frozen=True)
class ChainRule:
    id: str
    sentence: str
    check: Callable[[Chain, Policy], Broken | None]


def _value_text(value: SSAValue) -> str:
    op = value.owner
    assert isinstance(op, Operation)
    where = f"'{op.name}' at {location_text(op.location)}"
    return f"%{value.name_hint} ({where})" if value.name_hint else f"the result of {where}"


def _other_user(c: Chain, p: Policy) -> Broken | None:
    for op in [*c.path, *c.side]:  # in path order, so that the first such value is named
        if op is c.end:
            continue
        for result in op.results:
            for use in result.uses:
                if use.operation not in c.ops:
                    user = use.operation
                    return (f"{SINGLE_USE.sentence}: {_value_text(result)} is also used by "
                            f"'{user.name}' at {location_text(user.location)}"), op  # fmt: skip
    return None


def _x3_inside(c: Chain, p: Policy) -> Broken | None:
    if c.x3 is None or c.x3.owner not in c.ops:
        return None
    assert c.add is not None
    return f"{X3_OUTSIDE.sentence}: it is {_value_text(c.x3)}", c.add


def _same_s1(c: Chain, p: Policy) -> Broken | None:
    if c.quant is None or c.reducesum is None or c.quant.scale is c.reducesum.s1:
        return None
    return SAME_S1.sentence, c.reducesum


def _same_s2(c: Chain, p: Policy) -> Broken | None:
    if c.reducesum is None or c.reducesum.s2 is c.root.scale:  # type: ignore[union-attr]  # then it ends at a dequant
        return None
    return SAME_S2.sentence, c.root


def _same_group(c: Chain, p: Policy) -> Broken | None:
    if len({(op.group.data, op.world_size.value.data) for op in c.collectives}) == 1:
        return None
    return SAME_GROUP.sentence, c.collectives[-1]


def _one_group(c: Chain, p: Policy) -> Broken | None:
    if c.group == p.group:
        return None
    return (f"MC2 ops of one model must share one communication group: this chain's group is "
            f'"{c.group}", the module\'s is "{p.group}" ({p.group_origin}; choose it with the pass '
            f"option group=NAME)"), c.collectives[0]  # fmt: skip


def _unfuse_padding(c: Chain, p: Policy) -> Broken | None:
    if not c.foreign_slices:
        return None
    op = c.foreign_slices[-1]  # the first along the data path
    return f"{PADDING.sentence}: '{op.name}' at {location_text(op.location)} is not", op


def _layout(c: Chain, p: Policy) -> Broken | None:
    """The fused op works in the end's layout: x1 as it is, or a 3-D x1 collapsed to 2-D;
    x3 must be added in that layout."""
    x1_rank = len(tensor_type_of(c.matmul.x1).get_shape())
    end_rank = len(c.result_type.get_shape())
    if not (end_rank == x1_rank or (x1_rank == 3 and end_rank == 2)):
        return LAYOUT.sentence, c.end
    if c.x3 is not None and c.x3.type != c.result_type:
        return LAYOUT.sentence, c.add  # type: ignore[return-value]  # x3 comes with its add
    return None


SINGLE_USE = ChainRule("CHAIN-SINGLE-USE", "every intermediate value of the chain must have the "
                       "chain as its only user", _other_user)  # fmt: skip
X3_OUTSIDE = ChainRule("CHAIN-X3-OUTSIDE", "x3, the add's other operand, must come from outside the "
                       "chain (the fused op cannot add its own intermediate)", _x3_inside)  # fmt: skip
SAME_S1 = ChainRule("CHAIN-SAME-S1", "quant and reducesum must read the same s1 value", _same_s1)
SAME_S2 = ChainRule("CHAIN-SAME-S2", "reducesum and the last dequant must read the same s2 value", _same_s2)
SAME_GROUP = ChainRule("CHAIN-SAME-GROUP", "alltoall and allgather must share group and world_size", _same_group)
ONE_GROUP = ChainRule("CHAIN-ONE-GROUP", "MC2 ops of one model must share one communication group: "
                      "the first chain's, or the one the pass option group=NAME names", _one_group)  # fmt: skip
PADDING = ChainRule("CHAIN-PADDING", "slices around the all-to-all must be the row padding unfuse-mc2 "
                    "writes: the m rows inserted at row 0 of a tensor.empty of ceil(m / W) * W rows, "
                    "and the same m rows extracted after the all-gather", _unfuse_padding)  # fmt: skip
LAYOUT = ChainRule("CHAIN-LAYOUT", "x1 must be 2-D, or 3-D with the chain ending in 3-D or 2-D, and "
                   "x3 must be added in the layout the chain ends in", _layout)  # fmt: skip

CHAIN_RULES: tuple[ChainRule, ...] = (SINGLE_USE, X3_OUTSIDE, SAME_S1, SAME_S2, SAME_GROUP, ONE_GROUP, PADDING, LAYOUT)
POLICY_RULES = ("POLICY-DECODE", "POLICY-MIN-M")
RULE_ORDER = {rule_id: i for i, rule_id in enumerate([*(r.id for r in CHAIN_RULES), *(r.id for r in RULES),
                                                      *POLICY_RULES])}  # fmt: skip
"""Every rule in the order it is checked: how far a chain got before one stopped it."""

_ABOUT_THE_COLLECTIVE = frozenset({"MC2-WORLD-SIZE", "MC2-GROUP"})
"""Rules of the table about a property that the chain's collective carries."""


def packs_scale(chain: Chain) -> bool:
    return scale_is_packed(element(chain.dequant.scale), dtype_name(chain.result_type.element_type),
                           chain.dequant.pertoken is not None)  # fmt: skip


def _rows_view(x1: tuple[Dim, ...], output_rank: int) -> tuple[Dim, ...]:
    """x1 in the end's layout: collapsed to [b*s, k] when a 3-D x1 ends in 2-D."""
    if len(x1) == 3 and output_rank == 2:
        return (rows(x1[:2], STATIC), x1[2])
    return x1


def fused_x1_shape(chain: Chain) -> tuple[Dim, ...]:
    return _rows_view(TensorSig.of(chain.matmul.x1.type, "x1").shape, len(chain.result_type.get_shape()))


def signature(chain: Chain) -> Signature:
    """The signature of the mc2 op that fusing this chain would write."""
    scales = chain.comm_scales
    values = {"x1": chain.matmul.x1, "x2": chain.matmul.x2, "bias": chain.matmul.bias, "x3": chain.x3,
              "dequant_scale": chain.dequant.scale, "pertoken_scale": chain.dequant.pertoken,
              "comm_quant_scale_1": scales and scales[0], "comm_quant_scale_2": scales and scales[1]}  # fmt: skip
    tensors = {name: None if (v := values[name]) is None else TensorSig.of(v.type, name) for name in OPERANDS}
    output = TensorSig.of(chain.result_type, "output")
    x1, scale = tensors["x1"], tensors["dequant_scale"]
    assert x1 is not None and scale is not None
    tensors["x1"] = TensorSig(x1.dtype, _rows_view(x1.shape, len(output.shape)))
    if scale_is_packed(scale.dtype, output.dtype, tensors["pertoken_scale"] is not None):
        tensors["dequant_scale"] = TensorSig("ui64", scale.shape)
    return Signature.build(tensors, output, group=chain.group, world_size=chain.world_size,
                           transpose_x2=bool(chain.matmul.transpose_x2.value.data))  # fmt: skip


def without_comm_scales(sig: Signature) -> Signature:
    return dataclasses.replace(sig, comm_quant_scale_1=None, comm_quant_scale_2=None)


def _is_decode_function(op: Operation) -> bool:
    fn = op.parent_op()
    while fn is not None and not isinstance(fn, func.FuncOp):
        fn = fn.parent_op()
    marker = fn.attributes.get(SCENARIO) if fn is not None else None
    return isinstance(marker, StringAttr) and marker.data == DECODE


def _policy_finding(chain: Chain, sig: Signature, policy: Policy) -> Finding | None:
    if policy.scenario == "decode":
        return Finding("POLICY-DECODE", "scenario=decode: MC2 is for the full (prefill) scenario, "
                       "not the incremental (decode) one", chain.matmul)  # fmt: skip
    if policy.scenario == "prefill":
        return None
    if _is_decode_function(chain.root):
        return Finding("POLICY-DECODE", f'the function is marked {SCENARIO} = "{DECODE}": MC2 is for '
                       "the full (prefill) scenario, not the incremental one", chain.matmul)  # fmt: skip
    m = rows(sig.x1.shape[:-1], STATIC)
    if isinstance(m, int) and m < policy.min_m:
        return Finding("POLICY-MIN-M", f"m = {m} is below min-m = {policy.min_m}: treated as the "
                       "incremental (decode) scenario, where MC2 is not used", chain.matmul)  # fmt: skip
    return None


def cost(sig: Signature, policy: Policy) -> CostEstimate | None:
    m = rows(sig.x1.shape[:-1], STATIC)
    if not (isinstance(m, int) and isinstance(sig.k, int) and isinstance(sig.n, int)):
        return None
    return estimate(m, sig.k, sig.n, sig.world_size, policy.int8_tops, policy.link_gbps)


@dataclass(frozen=True)
class Judgement:
    chain: Chain
    finding: Finding | None
    """Why the chain must not be fused; None when it may be."""
    notes: tuple[str, ...] = ()
    drop_comm: bool = False
    """Fuse without the communication scales (a compute-bound chain, on request)."""

    @property
    def progress(self) -> int:
        """How far the chain got through the rules: legal chains furthest."""
        return len(RULE_ORDER) if self.finding is None else RULE_ORDER[self.finding.rule]


def judge(chain: Chain, policy: Policy, drop_compute_bound_comm: bool = False) -> Judgement:
    """The chain rules, the rule table on the fused op's signature (built once), the policy."""
    for rule in CHAIN_RULES:
        if (broken := rule.check(chain, policy)) is not None:
            return Judgement(chain, Finding(rule.id, *broken))
    sig = signature(chain)
    notes: list[str] = []
    drop = False
    if chain.int8_comm and (estimate_ := cost(sig, policy)) is not None and not estimate_.comm_bound:
        notes.append(f"int8 communication pays only when communication-bound; this chain is "
                     f"{estimate_.describe()} (COST-COMPUTE-BOUND)")  # fmt: skip
        if drop_compute_bound_comm:
            drop, sig = True, without_comm_scales(sig)
            notes.append("fused without communication scales (drop-compute-bound-int8-comm): "
                         "the all-reduce runs in the output dtype, more precise than int8")  # fmt: skip
    if (violated := first_violation(sig)) is not None:
        at = chain.collectives[0] if violated.id in _ABOUT_THE_COLLECTIVE else chain.matmul
        return Judgement(chain, Finding(violated.id, violated.sentence, at), tuple(notes), drop)
    return Judgement(chain, _policy_finding(chain, sig, policy), tuple(notes), drop)


def choose(chains: Sequence[Chain], policy: Policy, drop_compute_bound_comm: bool = False) -> Judgement:
    """Of the chains ending at one op (one per add operand that could be the chain), the first
    legal one; else the one that got furthest through the rules, whose rule the verdict names."""
    best: Judgement | None = None
    for chain in chains:
        judgement = judge(chain, policy, drop_compute_bound_comm)
        if judgement.finding is None:
            return judgement
        if best is None or judgement.progress > best.progress:
            best = judgement
    assert best is not None, "choose() needs at least one chain"
    return best
