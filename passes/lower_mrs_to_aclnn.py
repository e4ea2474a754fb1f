"""`lower-mc2-to-aclnn`'s case for mc2.quant_matmul_reduce_scatter: aclnnMatmulReduceScatterV2
in two phases, commMode "aiv", quantScale and amaxOutOptional null, a transposed x2 as the
[k, n] view of its [n, k] buffer (the op_api matches k on the view); the output [m / W, n] a
new buffer.  The rule table of the module's SoC is the call's contract, so a dynamic shape
becomes a run-time guard."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from qmmar.dialects import aclnn
from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.qmm import tensor_type_of
from qmmar.passes.aclnn_calls import CallSequence, Size
from qmmar.passes.lower_mc2_to_aclnn import _comm_name

_PROPERTIES = ("group", "world_size", "reduce_op", "comm_turn", "stream_mode", "group_size", "block_size",
               "comm_mode")  # fmt: skip
"""The op's properties that the call carries (the C++ target reads them, and the rule table)."""


@dataclass
class LowerQuantMatmulReduceScatter(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: QuantMatmulReduceScatterOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        group_name = _comm_name(op)
        transpose = bool(op.transpose_x2.value.data)
        w = op.world_size.value.data

        def optional(value: SSAValue | None) -> list[SSAValue]:
            return [] if value is None else [seq.handle(value)]

        rows: Size = tensor_type_of(op.output).get_shape()[0]
        if rows == DYNAMIC_INDEX:
            rows = seq.value(arith.DivUIOp(seq.index((op.x1, 0)), seq.index(w)))
        out = seq.alloc(tensor_type_of(op.output), [rows, (op.x2, 0 if transpose else 1)])
        properties = {name: getattr(op, name) for name in _PROPERTIES}
        seq.call(aclnn.MatmulReduceScatterV2GetWorkspaceSizeOp, [seq.handle(op.x1)], [seq.handle(op.x2, transpose)],
                 optional(op.bias), optional(op.x1_scale), optional(op.x2_scale), group_name, seq.handle(out),
                 properties=properties)  # fmt: skip
        seq.release()
        rewriter.replace(op, [], [out])
