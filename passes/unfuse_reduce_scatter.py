"""`unfuse-mc2`'s case for mc2.quant_matmul_reduce_scatter: the chain matmul -> dequant ->
reduce_scatter back (docs/sequence-parallel.md: the same numbers).

Two forms of the op have no qmm chain, and fusion never writes them: a bias (an f32 added
before the one rounding) and an f32 x2_scale for f16 output without x1_scale (multiplied as it
is, where qmm.dequant packs it).  Unfusing those is an error at the op."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import tensor
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, TensorType, i64
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import element_attr, scale_is_packed
from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.qmm import DequantOp, MatmulOp, ReduceScatterOp, element, tensor_type_of
from qmmar.passes.emit import Emitter

_ONE_GROUP = ArrayAttr([ArrayAttr([IntegerAttr(0, i64), IntegerAttr(1, i64)])])


@dataclass
class UnfuseQuantMatmulReduceScatter(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, fused: QuantMatmulReduceScatterOp, rewriter: PatternRewriter) -> None:
        out = tensor_type_of(fused.output)
        x1_rows, n = tensor_type_of(fused.x1).get_shape()[0], out.get_shape()[-1]
        if fused.bias is not None:
            raise LocatedError.at(fused, "cannot unfuse: no qmm chain adds an f32 bias before the dequant's rounding")
        scale, pertoken = fused.x2_scale, fused.x1_scale
        assert scale is not None  # the rule MRS-X2SCALE-PRESENT
        if scale_is_packed(element(scale), element(fused.output), pertoken is not None):
            raise LocatedError.at(fused, "cannot unfuse: qmm.dequant packs an f32 scale for f16 output without "
                                  "per-token scales, and this op multiplies by it as it is")  # fmt: skip
        emit = Emitter(rewriter, fused.location)
        acc_type = TensorType(element_attr("i32"), [x1_rows, n])
        acc = emit.value(MatmulOp(fused.x1, fused.x2, None, fused.transpose_x2, result_type=acc_type))
        if pertoken is not None and len(tensor_type_of(pertoken).get_shape()) == 2:  # [m, 1] -> [m]
            flat = TensorType(tensor_type_of(pertoken).element_type, [x1_rows])
            pertoken = emit.value(tensor.CollapseShapeOp.create(operands=[pertoken], result_types=[flat],
                                                                properties={"reassociation": _ONE_GROUP}))  # fmt: skip
        y = emit.value(DequantOp(acc, scale, out.element_type, pertoken))
        rewriter.replace(fused, [], [emit.value(ReduceScatterOp(y, fused.group, fused.world_size))])
