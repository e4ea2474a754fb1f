"""`lower-mc2-to-aclnn`: each mc2 op becomes the aclnn two-phase call sequence.

    handles for every operand (x2 prepacked to FRACTAL_NZ first with weight-format=nz)
    -> GetWorkspaceSize -> workspace (only when non-zero) -> launch -> free -> destroys

An `mc2.trans_quant_param` left after fusion (its scale was not a constant) becomes
aclnnTransQuantParamV2 on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import BoolAttr, ModuleOp, TensorType, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects import aclnn
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp, TransQuantParamOp

WEIGHT_FORMATS = ("nd", "nz")


class _Sequence:
    """Inserts aclnn ops before an op, at its location, and remembers what to release."""

    def __init__(self, rewriter: PatternRewriter, anchor: Operation) -> None:
        self.rewriter, self.anchor = rewriter, anchor
        self.handles: list[SSAValue] = []

    def emit(self, op: Operation) -> Operation:
        op.location = self.anchor.location
        self.rewriter.insert(op)
        return op

    def handle(self, data: SSAValue, transpose: bool = False) -> SSAValue:
        props = {"transpose": BoolAttr.from_bool(True)} if transpose else {}
        h = self.emit(aclnn.CreateTensorOp.create(operands=[data], properties=props,
                                                  result_types=[aclnn.TENSOR])).results[0]  # fmt: skip
        self.handles.append(h)
        return h

    def run(self, query: Operation, launch: type[Operation]) -> None:
        """Workspace, launch, free: the second phase of a two-phase call."""
        size, executor = self.emit(query).results
        ws = self.emit(aclnn.MallocWorkspaceOp.create(operands=[size], result_types=[aclnn.BUFFER])).results[0]
        self.emit(launch.create(operands=[ws, size, executor]))
        self.emit(aclnn.SynchronizeStreamOp.create())
        self.emit(aclnn.FreeOp.create(operands=[ws]))

    def release(self) -> None:
        for h in reversed(self.handles):
            self.emit(aclnn.DestroyTensorOp.create(operands=[h]))

    def alloc(self, type_: TensorType, bytes_: SSAValue | None = None) -> SSAValue:
        return self.emit(aclnn.AllocTensorOp.build(operands=[[bytes_] if bytes_ else []],
                                                   result_types=[type_])).results[0]  # fmt: skip


def _comm_name(op: Operation, rewriter: PatternRewriter) -> SSAValue:
    """The function's one HcclGetCommName, at its entry."""
    fn = op.parent_op()
    while not isinstance(fn, func.FuncOp):
        assert fn is not None, "an mc2 op outside a function"
        fn = fn.parent_op()
    block = fn.body.blocks.first
    assert block is not None
    for existing in block.ops:
        if isinstance(existing, aclnn.HcclGetCommNameOp):
            return existing.group_name
    name = aclnn.HcclGetCommNameOp.create(result_types=[aclnn.CommNameType()])
    name.location = fn.location
    block.insert_op_before(name, block.first_op) if block.first_op else block.add_op(name)
    return name.group_name


def _nz_weight(seq: _Sequence, x2: SSAValue, transpose: bool) -> SSAValue:
    """The documentation's prepack: a FRACTAL_NZ-sized copy of x2, transformed in place."""
    array = seq.emit(aclnn.CreateIntArrayOp.create(operands=[x2], result_types=[aclnn.IntArrayType()])).results[0]
    size = seq.emit(aclnn.CalculateMatmulWeightSizeV2Op.create(operands=[array], result_types=[i64])).results[0]
    seq.emit(aclnn.DestroyIntArrayOp.create(operands=[array]))
    nz = seq.alloc(x2.type, size)  # type: ignore[arg-type]
    seq.emit(aclnn.MemcpyOp.create(operands=[nz, x2]))
    weight = seq.handle(nz, transpose)
    seq.run(aclnn.TransMatmulWeightGetWorkspaceSizeOp.create(operands=[weight],
                                                             result_types=[i64, aclnn.EXECUTOR]),
            aclnn.TransMatmulWeightOp)  # fmt: skip
    return weight


@dataclass
class LowerQuantMatmulAllReduce(RewritePattern):
    weight_format: str

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: QuantMatmulAllReduceOp, rewriter: PatternRewriter) -> None:
        seq = _Sequence(rewriter, op)
        group_name = _comm_name(op, rewriter)
        transpose = bool(op.transpose_x2.value.data)

        def optional(value: SSAValue | None) -> list[SSAValue]:
            return [] if value is None else [seq.handle(value)]

        x1 = seq.handle(op.x1)
        x2 = _nz_weight(seq, op.x2, transpose) if self.weight_format == "nz" else seq.handle(op.x2, transpose)
        operands = [[x1], [x2], optional(op.bias), optional(op.x3), [seq.handle(op.dequant_scale)],
                    optional(op.pertoken_scale), optional(op.comm_quant_scale_1),
                    optional(op.comm_quant_scale_2)]  # fmt: skip
        out = seq.alloc(op.output.type)  # type: ignore[arg-type]
        query = aclnn.QuantMatmulAllReduceV3GetWorkspaceSizeOp.build(
            operands=[*operands, group_name, seq.handle(out)],
            result_types=[i64, aclnn.EXECUTOR],
            properties={"group": op.group, "world_size": op.world_size, "reduce_op": op.reduce_op,
                        "comm_turn": op.comm_turn, "stream_mode": op.stream_mode},
        )  # fmt: skip
        seq.run(query, aclnn.QuantMatmulAllReduceV3Op)
        seq.release()
        rewriter.replace(op, [], [out])


@dataclass
class LowerTransQuantParam(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: TransQuantParamOp, rewriter: PatternRewriter) -> None:
        seq = _Sequence(rewriter, op)
        out = seq.alloc(op.result.type)  # type: ignore[arg-type]
        query = aclnn.TransQuantParamV2GetWorkspaceSizeOp.create(
            operands=[seq.handle(op.scale), seq.handle(out)], result_types=[i64, aclnn.EXECUTOR]
        )
        seq.run(query, aclnn.TransQuantParamV2Op)
        seq.release()
        rewriter.replace(op, [], [out])


@dataclass(frozen=True)
class LowerMc2ToAclnnPass(ModulePass):
    """Lower mc2 ops to aclnn calls (weight-format=nd|nz: prepack x2 to FRACTAL_NZ)."""

    name = "lower-mc2-to-aclnn"
    weight_format: str = "nd"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.weight_format not in WEIGHT_FORMATS:
            raise PassFailedException(f"weight-format must be nd or nz, not {self.weight_format!r}")
        PatternRewriteWalker(LowerTransQuantParam(), apply_recursively=False).rewrite_module(op)
        PatternRewriteWalker(LowerQuantMatmulAllReduce(self.weight_format), apply_recursively=False).rewrite_module(op)
