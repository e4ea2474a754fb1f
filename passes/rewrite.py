"""A plan written into the IR: the fused op in place of its chain.  The rewrite decides
nothing: the plan holds every operand in its final form."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, TensorType, UnitAttr, bf16, f32
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter

from qmmar.dialects import numerics as nx
from qmmar.dialects.dtypes import dense_f32, ui64
from qmmar.dialects.mc2 import TransQuantParamOp
from qmmar.dialects.qmm import tensor_type_of
from qmmar.passes.family import kind_of
from qmmar.passes.plan import FusionPlan, MatchedChain, Operand
from qmmar.passes.rows import collapse_rows, expand_rows


def _packed(scale: SSAValue) -> Operation:
    """The f32 scale as TransQuantParamV2 packs it: folded when it is a dense constant."""
    source = scale.owner
    if isinstance(source, arith.ConstantOp) and isinstance(source.value, DenseIntOrFPElementsAttr):
        packed_type = TensorType(ui64, source.value.get_shape())
        values = nx.trans_quant_param(source.value.get_values())
        return arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(packed_type, [int(v) for v in values]))
    return TransQuantParamOp(scale)


def _as_bf16(scale: SSAValue) -> Operation:
    """The f32 scale as bf16: folded when it is a dense constant of bf16 values (the same
    values), else `arith.truncf` (to nearest even), marked as the fusion's rounding
    (`numerics.RELAXED_ROUNDING`).  A constant that rounding changes stays visible beside its
    rounding, so that `qmmar-run --ideal` can measure the fused op against the program's own
    scale."""
    source = scale.owner
    bf16_type = TensorType(bf16, tensor_type_of(scale).get_shape())
    if isinstance(source, arith.ConstantOp) and isinstance(source.value, DenseIntOrFPElementsAttr):
        values = dense_f32(source.value)
        if nx.is_bf16_exact(values):
            return arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(bf16_type, [float(v) for v in values.ravel()]))
    rounded = arith.TruncFOp(scale, bf16_type)
    rounded.attributes[nx.RELAXED_ROUNDING] = UnitAttr()
    return rounded


def _as_f32(scale: SSAValue) -> Operation:
    """A bf16 scale widened to f32 (exact): folded when it is a dense constant, else `arith.extf`."""
    source = scale.owner
    f32_type = TensorType(f32, tensor_type_of(scale).get_shape())
    if isinstance(source, arith.ConstantOp) and isinstance(source.value, DenseIntOrFPElementsAttr):
        return arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(f32_type, list(source.value.get_values())))
    return arith.ExtFOp(scale, f32_type)


@dataclass(frozen=True)
class Built:
    """The ops that compute a plan's fused op, in order, and which of them is the fused op."""

    ops: list[Operation]
    fused: Operation


def build(plan: FusionPlan) -> Built:
    """The ops that compute the plan's fused op, not inserted anywhere: the views and converted
    scales it reads, the fused op, its kind's epilogue, and the view of its result that replaces
    the chain's end (the last op), all at the chain's location."""
    ops: list[Operation] = []

    def final(operand: Operand | None) -> SSAValue | None:
        if operand is None or operand.form == "value":
            return None if operand is None else operand.value
        forms = {"rows": collapse_rows, "packed": _packed, "bf16": _as_bf16, "f32": _as_f32}
        ops.append(forms[operand.form](operand.value))
        return ops[-1].results[0]

    operands = {name: final(operand) for name, operand in plan.operands.items()}
    kind = kind_of(plan)
    fused = kind.build(operands, plan.properties, plan.output_type)
    ops.append(fused)
    if kind.epilogue is not None:
        ops += kind.epilogue(fused, plan.properties)
    if (view := plan.output_view) is not None:
        ops.append(expand_rows(ops[-1].results[0], view.type.get_shape(), view.sizes))
    for op in ops:
        op.location = plan.head.location
    return Built(ops, fused)


def build_ops(plan: FusionPlan) -> list[Operation]:
    """`build`'s ops: the last one's result replaces the chain's end."""
    return build(plan).ops


def discard(ops: list[Operation]) -> None:
    """Drop ops that `build_ops` made and nobody inserted (a preview): their operands' uses go."""
    for op in reversed(ops):
        op.erase(safe_erase=False)


def _erase(chain: MatchedChain, rewriter: PatternRewriter) -> None:
    """Erase the chain's ops but its end (replaced).  Every intermediate value has the chain as
    its only user (a chain rule of every member), so each op's users are chain ops: erased
    users first along the path, and no safe-erase check needed for the ops that size it."""
    for op in [*reversed(chain.path[:-1]), *chain.side]:
        rewriter.erase(op, safe_erase=False)


def _leaves_read(ops: list[Operation]) -> list[Operation]:
    """The constants and widenings these ops read: a scale that fusion packs into a new
    constant, communication scales it drops, and an f32 scale widened from the bf16 value that
    the fused op takes instead are left without a use."""
    return [v.owner for op in ops for v in op.operands if isinstance(v.owner, arith.ConstantOp | arith.ExtFOp)]


def rewrite(plan: FusionPlan, rewriter: PatternRewriter) -> Operation:
    """Replace the plan's chain by its fused op, written before the rewriter's root; the
    chain's ops go, and the constants and widenings only they read."""
    chain = plan.chain
    constants = [*chain.leaves, *_leaves_read(chain.path)]
    built = build(plan)
    for op in built.ops:
        rewriter.insert(op)
    rewriter.replace(chain.end, [], [built.ops[-1].results[0]])
    for value, result in zip(plan.also_replaced, built.fused.results[1:], strict=True):
        rewriter.replace_all_uses_with(value, result)
    _erase(chain, rewriter)
    for leaf in dict.fromkeys(constants):  # one constant may size several ops, or be several scales
        if leaf.parent is not None and not any(r.uses for r in leaf.results):
            rewriter.erase(leaf)
    return built.fused
