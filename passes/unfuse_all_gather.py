"""`unfuse-mc2`'s case for mc2.all_gather_quant_matmul: the chain the fusion reads, back.

    %g = qmm.allgather %x1            (gather_out)
    %t = qmm.allgather %x1_scale      (with a per-token scale; an [m, 1] one viewed as [m] first)
    %acc = qmm.matmul %g, %x2
    %y = qmm.dequant %acc, %x2_scale [pertoken(%t)]

The same bits (docs/all-gather-matmul.md) for every x2_scale but one: an f32 scale with f16
output and no per-token scale, which the kernel uses as it is and qmm.dequant packs; no qmm
chain computes that, so unfusing it is an error at the op (fusion never writes it).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import tensor
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, TensorType, i64
from xdsl.ir import SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import element_attr, scale_is_packed
from qmmar.dialects.mc2_all_gather import AllGatherQuantMatmulOp
from qmmar.dialects.qmm import AllGatherOp, DequantOp, MatmulOp, element, tensor_type_of
from qmmar.passes.emit import Emitter

_ONE_GROUP = ArrayAttr([ArrayAttr([IntegerAttr(0, i64), IntegerAttr(1, i64)])])


def _per_row(emit: Emitter, scale: SSAValue) -> SSAValue:
    """A per-token scale as qmm.dequant takes it: [m] (an [m, 1] one collapsed)."""
    t = tensor_type_of(scale)
    if len(t.get_shape()) == 1:
        return scale
    flat = TensorType(t.element_type, [t.get_shape()[0]])
    return emit.value(tensor.CollapseShapeOp.create(operands=[scale], result_types=[flat],
                                                    properties={"reassociation": _ONE_GROUP}))  # fmt: skip


@dataclass
class UnfuseAllGatherQuantMatmul(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, fused: AllGatherQuantMatmulOp, rewriter: PatternRewriter) -> None:
        assert fused.x2_scale is not None  # AGMM-X2SCALE-PRESENT
        out = tensor_type_of(fused.output)
        if scale_is_packed(element(fused.x2_scale), element(fused.output), fused.x1_scale is not None):
            raise LocatedError.at(fused, "cannot be unfused: the kernel uses an f32 x2_scale for f16 output without "
                                  "x1_scale as it is, and qmm.dequant packs such a scale (pass it packed, by "
                                  "mc2.trans_quant_param, as fusion does)")  # fmt: skip
        emit = Emitter(rewriter, fused.location)
        gathered = emit.value(AllGatherOp(fused.x1, fused.group, fused.world_size))
        pertoken = None
        if fused.x1_scale is not None:
            pertoken = emit.value(AllGatherOp(_per_row(emit, fused.x1_scale), fused.group, fused.world_size))
        acc_type = TensorType(element_attr("i32"), out.get_shape())
        acc = emit.value(MatmulOp(gathered, fused.x2, None, fused.transpose_x2, result_type=acc_type))
        y = emit.value(DequantOp(acc, fused.x2_scale, out.element_type, pertoken))
        rewriter.replace(fused, [], [y, gathered])
