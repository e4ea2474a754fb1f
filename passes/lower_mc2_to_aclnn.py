"""`lower-mc2-to-aclnn`: each mc2 op becomes the aclnn two-phase call sequence.

    handles for every operand (x2 prepacked to FRACTAL_NZ first with weight-format=nz)
    -> GetWorkspaceSize -> workspace (only when non-zero) -> launch -> synchronise -> free
    -> destroys

An `mc2.trans_quant_param` left after fusion (its scale was not a constant) becomes
aclnnTransQuantParamV2 on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType, UnitAttr, i64
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from qmmar.dialects import aclnn
from qmmar.dialects.dtypes import ui64
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp, TransQuantParamOp
from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.qmm import tensor_type_of
from qmmar.dialects.target import Target
from qmmar.passes.aclnn_calls import CallSequence, enclosing_function
from qmmar.passes.options import CheckedOptions, TargetOptions

WeightFormat = Literal["nd", "nz"]


def _comm_name(op: QuantMatmulAllReduceOp | QuantMatmulReduceScatterOp) -> SSAValue:
    """The function's one HcclGetCommName of the op's group, at its entry."""
    fn = enclosing_function(op)
    block = fn.body.blocks.first
    assert block is not None
    for existing in block.ops:
        if isinstance(existing, aclnn.HcclGetCommNameOp) and existing.group == op.group:
            return existing.group_name
    name = aclnn.HcclGetCommNameOp.create(properties={"group": op.group}, result_types=[aclnn.CommNameType()])
    name.location = fn.location
    block.insert_op_before(name, block.first_op) if block.first_op else block.add_op(name)
    return name.group_name


def _nz_weight(seq: CallSequence, x2: SSAValue, transpose: bool) -> SSAValue:
    """The documentation's prepack: a FRACTAL_NZ-sized copy of x2, transformed in place.
    The size is of the shape the weight's tensor presents, [k, n] for a transposed x2, as the
    vendor sizes it (aclnn_trans_matmul_weight.cpp): TransMatmulWeight writes that view's NZ
    image."""
    props = {"transpose": UnitAttr()} if transpose else {}
    array = seq.value(aclnn.CreateIntArrayOp.build(operands=[[x2]], properties=props,
                                                   result_types=[aclnn.IntArrayType()]))  # fmt: skip
    size = seq.value(aclnn.CalculateMatmulWeightSizeV2Op.create(operands=[array], result_types=[i64]))
    seq.emit(aclnn.DestroyIntArrayOp.create(operands=[array]))
    nz = seq.alloc(tensor_type_of(x2), [(x2, 0), (x2, 1)], size)
    seq.emit(aclnn.MemcpyOp.create(operands=[nz, x2]))
    weight = seq.handle(nz, transpose)
    seq.call(aclnn.TransMatmulWeightGetWorkspaceSizeOp, weight)
    return weight


@dataclass
class LowerQuantMatmulAllReduce(RewritePattern):
    weight_format: WeightFormat
    target: Target
    """Its CANN version chooses the entry point (V3 before 9.1, V5 from 9.1)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: QuantMatmulAllReduceOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        group_name = _comm_name(op)
        transpose = bool(op.transpose_x2.value.data)

        def optional(value: SSAValue | None) -> list[SSAValue]:
            return [] if value is None else [seq.handle(value)]

        x1 = seq.handle(op.x1)
        x2 = _nz_weight(seq, op.x2, transpose) if self.weight_format == "nz" else seq.handle(op.x2, transpose)
        operands = [[x1], [x2], optional(op.bias), optional(op.x3), [seq.handle(op.dequant_scale)],
                    optional(op.pertoken_scale), optional(op.comm_quant_scale_1),
                    optional(op.comm_quant_scale_2)]  # fmt: skip
        lead = len(tensor_type_of(op.x1).get_shape()) - 1
        out = seq.alloc(op.output.type, [*((op.x1, a) for a in range(lead)), (op.x2, 0 if transpose else 1)])
        seq.call(aclnn.ALL_REDUCE_QUERIES[self.target.all_reduce_entry], *operands, group_name, seq.handle(out),
                 properties={"group": op.group, "world_size": op.world_size, "reduce_op": op.reduce_op,
                             "comm_turn": op.comm_turn, "stream_mode": op.stream_mode})  # fmt: skip
        seq.release()
        rewriter.replace(op, [], [out])


def pack_scale(seq: CallSequence, scale: SSAValue) -> SSAValue:
    """aclnnTransQuantParamV2 of an f32 scale into a new uint64 buffer of its shape."""
    t = scale.type
    assert isinstance(t, TensorType)
    out = seq.alloc(TensorType(ui64, t.get_shape()), [(scale, a) for a in range(len(t.get_shape()))])
    seq.call(aclnn.TransQuantParamV2GetWorkspaceSizeOp, seq.handle(scale), seq.handle(out))
    return out


@dataclass
class LowerTransQuantParam(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: TransQuantParamOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        out = pack_scale(seq, op.scale)
        seq.release()
        rewriter.replace(op, [], [out])


@dataclass(frozen=True)
class LowerMc2ToAclnnPass(TargetOptions, CheckedOptions, ModulePass):
    """Lower mc2 ops to aclnn calls (weight-format=nd|nz: prepack x2 to FRACTAL_NZ)."""

    name = "lower-mc2-to-aclnn"
    weight_format: WeightFormat = "nd"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = self.target_of(op)  # the module's target, or an error when the options contradict it
        PatternRewriteWalker(LowerTransQuantParam(), apply_recursively=False).rewrite_module(op)
        all_reduce = LowerQuantMatmulAllReduce(self.weight_format, target)
        PatternRewriteWalker(all_reduce, apply_recursively=False).rewrite_module(op)
        from qmmar.passes.lower_mrs_to_aclnn import LowerQuantMatmulReduceScatter  # it imports this module

        PatternRewriteWalker(LowerQuantMatmulReduceScatter(), apply_recursively=False).rewrite_module(op)
        from qmmar.passes.lower_all_gather_to_aclnn import LowerAllGatherQuantMatmul  # it reads this module's helpers

        PatternRewriteWalker(LowerAllGatherQuantMatmul(self.weight_format), apply_recursively=False).rewrite_module(op)
