"""Is a matched chain legal to fuse?  The chain rules, then the operator's own rule table
(`dialects.mc2_rules`) on the signature the fused op would have, then the scenario policy:
so the pass never writes an op that fails verification.  Each finding names the op it is
about, so that a remark points where the user must look."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from xdsl.dialects import arith
from xdsl.dialects.builtin import DYNAMIC_INDEX, DenseIntOrFPElementsAttr, TensorType, bf16
from xdsl.dialects.tensor import ExpandShapeOp
from xdsl.ir import Attribute, Operation, SSAValue

from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import written_name
from qmmar.dialects.dtypes import dense_f32, scale_is_packed
from qmmar.dialects.location import location_text
from qmmar.dialects.logic import Dim
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp
from qmmar.dialects.mc2_rules import OPERANDS, RULES, Signature, TensorSig
from qmmar.dialects.qmm import tensor_type_of
from qmmar.dialects.rules import table_verdict
from qmmar.dialects.shapes import STATIC, rows
from qmmar.passes.chain import Chain
from qmmar.passes.chain_cost import all_reduce_ways, chain_costs
from qmmar.passes.markers import MUST_FUSE
from qmmar.passes.plan import Finding, FusionPlan, MatchedChain, Operand, OutputView
from qmmar.passes.policy import POLICY_RULES, Numerics, Policy, policy_finding

KIND = QuantMatmulAllReduceOp.name
Properties = dict[str, str | int | bool]

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
    where = f"'{written_name(op)}' at {location_text(op.location)}"
    return f"%{value.name_hint} ({where})" if value.name_hint else f"the result of {where}"


def other_user(c: MatchedChain, p: Policy) -> Broken | None:
    """CHAIN-SINGLE-USE for a chain of any member: its first intermediate value with a user
    outside the chain."""
    for op in [*c.path, *c.side]:  # in path order, so that the first such value is named
        if op is c.end:
            continue
        for result in op.results:
            for use in result.uses:
                if use.operation not in c.ops:
                    user = use.operation
                    return (f"{SINGLE_USE.sentence}: {_value_text(result)} is also used by "
                            f"'{written_name(user)}' at {location_text(user.location)}"), op  # fmt: skip
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


class GroupedChain(Protocol):
    """What the one-group rule reads of a chain, of any fused op's kind."""

    @property
    def group(self) -> str: ...

    @property
    def collectives(self) -> Sequence[Operation]: ...


def one_group(c: GroupedChain, p: Policy) -> Broken | None:
    if c.group == p.group:
        return None
    return (f"MC2 ops of one model must share one communication group: this chain's group is "
            f'"{c.group}", the module\'s is "{p.group}" ({p.group_origin}; choose it with the pass '
            f"option group=NAME)"), c.collectives[0]  # fmt: skip


def _unfuse_padding(c: Chain, p: Policy) -> Broken | None:
    if not c.foreign_slices:
        return None
    op = c.foreign_slices[-1]  # the first along the data path
    return f"{PADDING.sentence}: '{written_name(op)}' at {location_text(op.location)} is not", op


def _on_rows(c: Chain) -> bool:
    """Whether the fused op must compute on [m, n] rows: x1, x3 and the chain's end do not all
    share one layout (a 2-D x1 whose result is viewed as [b, s, n], an x3 added in 3-D to a
    chain ending in 2-D, ...).  The all-reduce is element-wise, so the row views of x1 and x3
    go before the fused op and the end's view after it."""
    x1_rank = len(tensor_type_of(c.matmul.x1).get_shape())
    return x1_rank != len(c.result_type.get_shape()) or (c.x3 is not None and c.x3.type != c.result_type)


def _end_view(c: Chain) -> OutputView | None:
    """The view of the fused op's rows that replaces a 3-D end: its dynamic sizes from the
    chain's own row expand to that type (None when no such expand gives them)."""
    shape = c.result_type.get_shape()
    if DYNAMIC_INDEX not in shape[:-1]:
        return OutputView(c.result_type)
    for op in reversed(c.path):
        if isinstance(op, ExpandShapeOp) and op.result.type == c.result_type:
            return OutputView(c.result_type, tuple(op.dynamic_output_shape))
    return None


def _layout(c: Chain, p: Policy) -> Broken | None:
    """Rows are [m, n] of a 2-D or 3-D value: deeper layouts, and a dynamic 3-D end whose sizes
    the chain does not state, have no row view the fused op can take or give back."""
    ranks = [len(tensor_type_of(v).get_shape()) for v in (c.matmul.x1, c.result, c.x3) if v is not None]
    if any(rank not in (2, 3) for rank in ranks):
        return LAYOUT.sentence, c.end
    if _on_rows(c) and len(c.result_type.get_shape()) == 3 and _end_view(c) is None:
        return f"{LAYOUT.sentence}: the chain ends in {c.result_type}, whose dynamic sizes it does not state", c.end
    return None


SINGLE_USE = ChainRule("CHAIN-SINGLE-USE", "every intermediate value of the chain must have the "
                       "chain as its only user", other_user)  # fmt: skip
X3_OUTSIDE = ChainRule("CHAIN-X3-OUTSIDE", "x3, the add's other operand, must come from outside the "
                       "chain (the fused op cannot add its own intermediate)", _x3_inside)  # fmt: skip
SAME_S1 = ChainRule("CHAIN-SAME-S1", "quant and reducesum must read the same s1 value", _same_s1)
SAME_S2 = ChainRule("CHAIN-SAME-S2", "reducesum and the last dequant must read the same s2 value", _same_s2)
SAME_GROUP = ChainRule("CHAIN-SAME-GROUP", "alltoall and allgather must share group and world_size", _same_group)
ONE_GROUP = ChainRule("CHAIN-ONE-GROUP", "MC2 ops of one model must share one communication group: "
                      "the first chain's, or the one the pass option group=NAME names", one_group)  # fmt: skip
PADDING = ChainRule("CHAIN-PADDING", "slices around the all-to-all must be the row padding unfuse-mc2 "
                    "writes: the m rows inserted at row 0 of a tensor.empty of ceil(m / W) * W rows, "
                    "and the same m rows extracted after the all-gather", _unfuse_padding)  # fmt: skip
LAYOUT = ChainRule("CHAIN-LAYOUT", "x1, x3 and the chain's end must each be 2-D [m, n] or 3-D [b, s, n] "
                   "rows, so that the fused op can compute on [m, n] rows", _layout)  # fmt: skip

CHAIN_RULES: tuple[ChainRule, ...] = (SINGLE_USE, X3_OUTSIDE, SAME_S1, SAME_S2, SAME_GROUP, ONE_GROUP, PADDING, LAYOUT)
RULE_ORDER = {rule_id: i for i, rule_id in enumerate([*(r.id for r in CHAIN_RULES), *(r.id for r in RULES),
                                                      *POLICY_RULES])}  # fmt: skip
"""Every rule in the order it is checked: how far a chain got before one stopped it."""

_ABOUT_THE_COLLECTIVE = frozenset({"MC2-WORLD-SIZE", "MC2-GROUP"})
"""Rules of the table about a property that the chain's collective carries."""


def _as_rows(shape: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """A [b, s, d] shape as [b*s, d] rows (an `Operand` of form "rows")."""
    return (rows(shape[:2], STATIC), shape[2])


def _operands(chain: Chain, drop_comm: bool, numerics: Numerics) -> dict[str, Operand | None]:
    """The fused op's operands in final form: x1 and x3 as [m, n] rows where the chain needs
    rows (`_on_rows`), the dequant scale packed where the operator takes it packed, an f32
    scale for bf16 output as bf16 where its values are bf16 values (a constant, or `arith.extf`
    of a bf16 value, which the fused op then reads itself) or the numerics are relaxed, the
    communication scales dropped."""
    values = {"x1": chain.matmul.x1, "x2": chain.matmul.x2, "bias": chain.matmul.bias, "x3": chain.x3,
              "dequant_scale": chain.dequant.scale, "pertoken_scale": chain.dequant.pertoken}  # fmt: skip
    if chain.comm_scales is not None and not drop_comm:
        values["comm_quant_scale_1"], values["comm_quant_scale_2"] = chain.comm_scales
    operands = {name: None if (v := values.get(name)) is None else Operand(v) for name in OPERANDS}
    if _on_rows(chain):
        for name in ("x1", "x3"):
            if (v := values[name]) is not None and len(tensor_type_of(v).get_shape()) == 3:
                operands[name] = Operand(v, "rows")
    scale = TensorSig.of(chain.dequant.scale.type, "dequant_scale")
    output = TensorSig.of(chain.result_type, "output")
    if scale_is_packed(scale.dtype, output.dtype, chain.dequant.pertoken is not None):
        operands["dequant_scale"] = Operand(chain.dequant.scale, "packed")
    elif _narrowed(scale, output) and (widened := _widened_bf16(chain.dequant.scale)) is not None:
        operands["dequant_scale"] = Operand(widened)
    elif _narrowed(scale, output) and (numerics == "relaxed" or _bf16_values(chain.dequant.scale)):
        operands["dequant_scale"] = Operand(chain.dequant.scale, "bf16")
    return operands


def _narrowed(scale: TensorSig, output: TensorSig) -> bool:
    """An f32 dequant scale for bf16 output, which the operator takes only as bf16."""
    return scale.dtype == "f32" and output.dtype == "bf16"


def _constant_values(value: SSAValue) -> np.ndarray | None:
    """The values of a dense f32 constant, None for any other value."""
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, DenseIntOrFPElementsAttr):
        return dense_f32(owner.value)
    return None


def _widened_bf16(value: SSAValue) -> SSAValue | None:
    """The bf16 value that `value` is `arith.extf` of: its values are bf16 values by
    construction (the torch importer writes a parameter whose values it read so)."""
    owner = value.owner
    if isinstance(owner, arith.ExtFOp) and tensor_type_of(owner.input).element_type == bf16:
        return owner.input
    return None


def _bf16_values(value: SSAValue) -> bool:
    """A dense f32 constant whose every value is a bf16 value."""
    return (values := _constant_values(value)) is not None and nx.is_bf16_exact(values)


NARROWING_BOUND = nx.UNIT_ROUNDOFF[nx.BF16]
"""How far rounding an f32 to bf16 moves a normal value, at most, relative to it."""


def _narrowing_note(scale: SSAValue) -> str:
    """What taking an f32 dequant scale as bf16 changes: nothing when its values are bf16
    values, else (numerics=relaxed) each scale by at most NARROWING_BOUND, and here by how much."""
    if _widened_bf16(scale) is not None:
        assert isinstance(scale.owner, Operation)
        at = location_text(scale.owner.location)
        return (f"dequant_scale is a bf16 value widened to f32 ('arith.extf' at {at}), so every value is a bf16 "
                "value: the fused op takes the bf16 value, the same values (exact)")  # fmt: skip
    if _bf16_values(scale):
        return ("dequant_scale is an f32 constant whose every value is a bf16 value: the fused op takes it as bf16, "
                "the same values (exact)")  # fmt: skip
    values = _constant_values(scale)
    here = "" if values is None else f" (here at most {nx.relative_narrowing(values):.3g})"
    return (f"numerics=relaxed: the f32 dequant_scale is rounded to bf16 (to nearest even), as the fused op takes "
            f"it: each scale changes by at most {NARROWING_BOUND} of its value{here}, and so, up to one f32 rounding, "
            "does each product f32(acc) * scale before its rounding to bf16; qmmar-run --ideal measures the "
            "difference to the program ('vs program')")  # fmt: skip


def _remedy(rule: str, sig: Signature) -> str:
    """What would make the chain legal, where one change would."""
    if rule == "MC2-SCALE-DTYPE" and _narrowed(sig.dequant_scale, sig.output):
        return (f"; to fuse it, store dequant_scale as bf16 (each value changes by at most {NARROWING_BOUND} "
                "relative), or fuse with numerics=relaxed, which does that")  # fmt: skip
    return ""


def _output(chain: Chain) -> tuple[TensorType, OutputView | None]:
    """The fused op's output type, and the view that replaces the chain's end when it differs."""
    end = chain.result_type
    if not _on_rows(chain) or len(end.get_shape()) == 2:
        return end, None
    *leading, n = end.get_shape()
    m = DYNAMIC_INDEX if DYNAMIC_INDEX in leading else leading[0] * leading[1]
    return TensorType(end.element_type, [m, n]), _end_view(chain)


def operand_signatures(operands: Mapping[str, Operand | None]) -> dict[str, TensorSig | None]:
    """Each operand's type as the fused op will see it, in final form (None when absent)."""
    tensors: dict[str, TensorSig | None] = {}
    for name, operand in operands.items():
        if operand is None:
            tensors[name] = None
            continue
        sig = TensorSig.of(operand.value.type, name)
        if operand.form == "rows":
            sig = TensorSig(sig.dtype, _as_rows(sig.shape))
        elif operand.form != "value":
            sig = TensorSig({"packed": "ui64", "bf16": "bf16", "f32": "f32"}[operand.form], sig.shape)
        tensors[name] = sig
    return tensors


def signature(operands: dict[str, Operand | None], output_type: Attribute, properties: Properties) -> Signature:
    """The signature of the mc2 op with these operands (in final form) and properties."""
    tensors = operand_signatures(operands)
    return Signature.build(tensors, TensorSig.of(output_type, "output"), group=str(properties["group"]),
                           world_size=int(properties["world_size"]),
                           transpose_x2=bool(properties["transpose_x2"]))  # fmt: skip


def judge(chain: Chain, policy: Policy) -> FusionPlan:
    """The chain rules, the rule table on the fused op's signature (built once), the policy,
    then the caller's control function: one plan."""
    collective = chain.collectives[0]
    properties: Properties = {"group": collective.group.data, "world_size": collective.world_size.value.data,
                              "transpose_x2": bool(chain.matmul.transpose_x2.value.data)}  # fmt: skip
    must_fuse = MUST_FUSE in chain.root.attributes or MUST_FUSE in chain.end.attributes
    operands = _operands(chain, drop_comm=False, numerics=policy.numerics)
    plan = FusionPlan(KIND, chain, operands, properties, chain.result_type, None, must_fuse=must_fuse)
    for rule in CHAIN_RULES:
        if (broken := rule.check(chain, policy)) is not None:
            return _with(plan, finding=Finding(rule.id, *broken))
    output_type, view = _output(chain)
    plan = _with(plan, output_type=output_type, output_view=view)
    sig = signature(operands, output_type, properties)
    m = rows(sig.x1.shape[:-1], STATIC)
    costs = chain_costs((m, sig.k, sig.n), sig.world_size, policy, all_reduce_ways(chain.int8_comm))
    notes: list[str] = []
    if chain.int8_comm and costs and not costs[0].estimate.comm_bound:  # as the output dtype would run
        notes.append(f"int8 communication pays only when communication-bound; this chain is "
                     f"{costs[0].estimate.describe()} (COST-COMPUTE-BOUND)")  # fmt: skip
        if policy.drop_compute_bound_comm:
            operands = _operands(chain, drop_comm=True, numerics=policy.numerics)
            sig = signature(operands, output_type, properties)
            costs = chain_costs((m, sig.k, sig.n), sig.world_size, policy, all_reduce_ways(int8_comm=False))
            notes.append("fused without communication scales (drop-compute-bound-int8-comm): "
                         "the all-reduce runs in the output dtype, more precise than int8")  # fmt: skip
    if TensorSig.of(chain.dequant.scale.type, "dequant_scale").dtype == "f32" and sig.dequant_scale.dtype == "bf16":
        notes.append(_narrowing_note(chain.dequant.scale))  # the program's f32 scale, taken as bf16
    if policy.scenario == "auto" and policy.min_m > 0 and not isinstance(m, int):
        notes.append(f"m is dynamic: min-m = {policy.min_m} cannot be decided when compiling, so it does not "
                     "stop this chain (make m static, or mark the function's scenario)")  # fmt: skip
    plan = _with(plan, operands=operands, dims=(m, sig.k, sig.n), costs=costs, notes=tuple(notes))
    violated, also = table_verdict(RULES, sig)
    if violated is not None:
        at = collective if violated.id in _ABOUT_THE_COLLECTIVE else chain.matmul
        plan = _with(plan, notes=(*plan.notes, *also))
        return _with(plan, finding=Finding(violated.id, violated.sentence_for(sig) + _remedy(violated.id, sig), at))
    finding = policy_finding(m, chain.matmul, chain.root, policy)
    if finding is None and policy.control is not None:
        finding = policy.control(plan)
    return _with(plan, finding=finding) if finding is not None else _with(plan, progress=len(RULE_ORDER))


def _with(plan: FusionPlan, **changes: object) -> FusionPlan:
    """The plan changed; a finding also sets how far the chain got through the rules."""
    finding = changes.get("finding")
    if isinstance(finding, Finding):
        changes["progress"] = RULE_ORDER[finding.rule]
    return dataclasses.replace(plan, **changes)  # type: ignore[arg-type]  # fields by name
