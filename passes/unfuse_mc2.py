"""`unfuse-mc2`: mc2.quant_matmul_all_reduce back to the primitive qmm chain of SEMANTICS.md.

The fallback for a backend without MC2, and a test oracle: unfusing then fusing gives back
the same IR.  With communication scales, the all-to-all splits the leading dimension across
the ranks; when world_size does not divide it, a 3-D value is first viewed as 2-D rows, and
rows are padded for the all-to-all and sliced back after the all-gather (the result is
element-wise, so the padding rows never reach it).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, StringAttr, TensorType, i32
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects.location import location_text
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp
from qmmar.dialects.qmm import (
    AddOp,
    AllGatherOp,
    AllReduceOp,
    AllToAllOp,
    DequantOp,
    MatmulOp,
    QuantOp,
    ReduceSumOp,
)
from qmmar.passes.rows import collapse_rows, expand_rows


def _with(t: TensorType, shape=None, element=None) -> TensorType:
    return TensorType(element or t.element_type, t.get_shape() if shape is None else shape)


class _Emitter:
    """Inserts ops before the mc2 op, all at its location."""

    def __init__(self, rewriter: PatternRewriter, anchor: Operation) -> None:
        self.rewriter, self.anchor = rewriter, anchor

    def __call__(self, op: Operation) -> SSAValue:
        op.location = self.anchor.location
        self.rewriter.insert(op)
        return op.results[0]


def _quantized_all_reduce(emit: _Emitter, fused: QuantMatmulAllReduceOp, z: SSAValue) -> SSAValue:
    out = fused.output.type
    assert isinstance(out, TensorType)
    shape, w = list(out.get_shape()), fused.world_size.value.data
    s1, s2 = fused.comm_quant_scale_1, fused.comm_quant_scale_2
    collective = {"group": fused.group, "world_size": fused.world_size}
    rows_view = shape[0] == DYNAMIC_INDEX or shape[0] % w != 0
    if rows_view and DYNAMIC_INDEX in shape:
        raise PassFailedException(
            f"{location_text(fused.location)}: unfuse-mc2 cannot pad a dynamic leading "
            f"dimension for the all-to-all of world_size {w}"
        )
    if rows_view and len(shape) == 3:
        z = emit(collapse_rows(z))
    rows, rest = (z.type.get_shape()[0], list(z.type.get_shape()[1:]))  # type: ignore[attr-defined]
    padded = -(-rows // w) * w
    q_type = TensorType(fused.x1.type.element_type, [rows, *rest])  # type: ignore[attr-defined]
    q = emit(QuantOp.create(operands=[z, s1], result_types=[q_type]))  # type: ignore[list-item]
    if padded != rows:
        empty = emit(tensor.EmptyOp([], _with(q_type, [padded, *rest])))
        q = emit(tensor.InsertSliceOp.from_static_parameters(q, empty, [0] * len(q_type.shape), [rows, *rest]))
    a2a = emit(AllToAllOp.create(operands=[q], properties=collective,
                                 result_types=[_with(q_type, [w, padded // w, *rest])]))  # fmt: skip
    part = emit(ReduceSumOp.build(operands=[a2a, [s1], [s2]], result_types=[_with(q_type, [padded // w, *rest])]))
    g = emit(AllGatherOp.create(operands=[part], properties=collective,
                                result_types=[_with(q_type, [padded, *rest])]))  # fmt: skip
    if padded != rows:
        g = emit(tensor.ExtractSliceOp.from_static_parameters(g, [0] * len(q_type.shape), [rows, *rest]))
    result = emit(DequantOp.create(operands=[g, s2], result_types=[_with(out, [rows, *rest])]))  # type: ignore[list-item]
    if rows_view and len(shape) == 3:
        result = emit(expand_rows(result, tuple(shape)))  # type: ignore[arg-type]
    return result


@dataclass
class UnfuseMc2(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, fused: QuantMatmulAllReduceOp, rewriter: PatternRewriter) -> None:
        emit = _Emitter(rewriter, fused)
        out = fused.output.type
        assert isinstance(out, TensorType)
        acc = emit(MatmulOp.build(
            operands=[fused.x1, fused.x2, [fused.bias] if fused.bias else []],
            properties={"transpose_x2": fused.transpose_x2},
            result_types=[_with(out, element=i32)],
        ))  # fmt: skip
        pertoken = [fused.pertoken_scale] if fused.pertoken_scale else []
        z = emit(DequantOp.build(operands=[acc, fused.dequant_scale, pertoken], result_types=[out]))
        if fused.x3 is not None:
            z = emit(AddOp.create(operands=[z, fused.x3], result_types=[out]))
        if fused.comm_quant_scale_1 is None:
            result = emit(AllReduceOp.create(
                operands=[z], result_types=[out],
                properties={"group": fused.group, "world_size": fused.world_size,
                            "reduce_op": StringAttr("sum")},
            ))  # fmt: skip
        else:
            result = _quantized_all_reduce(emit, fused, z)
        rewriter.replace(fused, [], [result])


@dataclass(frozen=True)
class UnfuseMc2Pass(ModulePass):
    """Rewrite every mc2.quant_matmul_all_reduce as the primitive qmm chain."""

    name = "unfuse-mc2"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(UnfuseMc2(), apply_recursively=False).rewrite_module(op)
