"""`lower-mc2-to-aclnn`'s case for mc2.all_gather_quant_matmul: aclnnAllGatherMatmulV2's
two-phase call with commMode "aiv", quantScale and amaxOut null, blockSize and groupSize 0.

    handles -> aclnnAllGatherMatmulV2GetWorkspaceSize -> workspace -> launch -> synchronise

Its run-time guards are the op's rule table (`agmm_rules`), which the C++ target reads from the
call's contract, as for QuantMatmulAllReduceV3.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from qmmar.dialects import aclnn
from qmmar.dialects.mc2_all_gather import AllGatherQuantMatmulOp
from qmmar.dialects.qmm import tensor_type_of
from qmmar.passes.aclnn_calls import CallSequence, Size
from qmmar.passes.lower_mc2_to_aclnn import WeightFormat, _comm_name, _nz_weight


@dataclass
class LowerAllGatherQuantMatmul(RewritePattern):
    weight_format: WeightFormat

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: AllGatherQuantMatmulOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        group_name = _comm_name(op)  # type: ignore[arg-type]  # it reads the op's group and location
        transpose = bool(op.transpose_x2.value.data)
        x2 = _nz_weight(seq, op.x2, transpose) if self.weight_format == "nz" else seq.handle(op.x2, transpose)
        scales = [[] if v is None else [seq.handle(v)] for v in (op.bias, op.x1_scale, op.x2_scale)]
        w = op.world_size.value.data
        gathered_rows: Size = 0  # read only when the row count is dynamic
        if tensor_type_of(op.output).get_shape()[0] == DYNAMIC_INDEX:
            gathered_rows = seq.product([(op.x1, 0), w])
        output = seq.alloc(tensor_type_of(op.output), [gathered_rows, (op.x2, 0 if transpose else 1)])
        gather_out = seq.alloc(tensor_type_of(op.gather_out), [gathered_rows, (op.x1, 1)])
        seq.call(aclnn.AllGatherMatmulV2GetWorkspaceSizeOp, [seq.handle(op.x1)], [x2], *scales, group_name,
                 seq.handle(output), seq.handle(gather_out),
                 properties={name: op.properties[name] for name in ("group", "world_size", "comm_mode",
                             "gather_index", "comm_turn", "stream_mode", "group_size", "block_size")})  # fmt: skip
        seq.release()
        rewriter.replace(op, [], [output, gather_out])
