"""`unfuse-mc2`: mc2.quant_matmul_all_reduce back to the primitive qmm chain of SEMANTICS.md.

The fallback for a backend without MC2, and a test oracle: unfusing then fusing gives back
the same IR.  With communication scales, the all-to-all splits the leading dimension across
the ranks.  When world_size (W > 1) does not divide it, or it is dynamic, a 3-D value is
first viewed as 2-D rows, and rows are padded to a multiple of W for the all-to-all and
sliced back after the all-gather: the result is element-wise, so the padding rows never
reach it.  A dynamic m is padded through `tensor.dim` and index arithmetic:

    %c0 = arith.constant 0 : index
    %m = tensor.dim %q, %c0 : tensor<?xNxi8>
    %w = arith.constant W : index
    %n = arith.ceildivui %m, %w : index
    %padded = arith.muli %n, %w : index
    %e = tensor.empty(%padded) : tensor<?xNxi8>
    %p = tensor.insert_slice %q into %e[0, 0] [%m, N] [1, 1]
    ... alltoall, reducesum, allgather on tensor<?xNxi8> ...
    %s = tensor.extract_slice %g[0, 0] [%m, N] [1, 1]

and a dynamic 3-D layout is restored with `tensor.expand_shape` sized by `tensor.dim` of x1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp, TensorType
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from qmmar.dialects.dtypes import element_attr
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
from qmmar.dialects.target import TARGET_ATTR
from qmmar.passes.emit import Emitter
from qmmar.passes.options import CheckedOptions
from qmmar.passes.rows import collapse_rows, expand_rows
from qmmar.passes.unfuse_all_gather import UnfuseAllGatherQuantMatmul
from qmmar.passes.unfuse_reduce_scatter import UnfuseQuantMatmulReduceScatter


def _pad_rows(emit: Emitter, q: SSAValue, w: int) -> tuple[SSAValue, Callable[[SSAValue], SSAValue]]:
    """q with its rows padded to a multiple of w, and how to slice the padding off again."""
    q_type = q.type
    assert isinstance(q_type, TensorType)
    rows, *rest = q_type.get_shape()
    offsets, strides = [0] * len(q_type.shape), [1] * len(q_type.shape)
    if w == 1 or (rows != DYNAMIC_INDEX and rows % w == 0):
        return q, lambda g: g
    if rows == DYNAMIC_INDEX:
        m = emit.value(tensor.DimOp(q, emit.index(0)))
        w_index = emit.index(w)
        n = emit.value(arith.CeilDivUIOp(m, w_index))
        padded = emit.value(arith.MuliOp(n, w_index))
        empty = emit.value(tensor.EmptyOp([padded], q_type))
        sizes: list[SSAValue | int] = [m, *rest]
    else:
        empty = emit.value(tensor.EmptyOp([], TensorType(q_type.element_type, [-(-rows // w) * w, *rest])))
        sizes = [rows, *rest]
    inserted = emit.value(tensor.InsertSliceOp.get(
        q, empty, static_sizes=[DYNAMIC_INDEX if isinstance(s, SSAValue) else s for s in sizes],
        sizes=[s for s in sizes if isinstance(s, SSAValue)],
    ))  # fmt: skip
    return inserted, lambda g: emit.value(tensor.ExtractSliceOp(g, offsets, sizes, strides, q_type))


def _quantized_all_reduce(emit: Emitter, fused: QuantMatmulAllReduceOp, z: SSAValue) -> SSAValue:
    out = fused.output.type
    assert isinstance(out, TensorType) and fused.comm_quant_scale_1 and fused.comm_quant_scale_2
    shape, w = list(out.get_shape()), fused.world_size.value.data
    s1, s2 = fused.comm_quant_scale_1, fused.comm_quant_scale_2
    view_rows = len(shape) == 3 and w > 1 and (shape[0] == DYNAMIC_INDEX or shape[0] % w != 0)
    if view_rows:
        z = emit.value(collapse_rows(z))
    q, unpad = _pad_rows(emit, emit.value(QuantOp(z, s1)), w)
    a2a = emit.value(AllToAllOp(q, fused.group, fused.world_size))
    part = emit.value(ReduceSumOp(a2a, s1, s2))
    gathered = emit.value(AllGatherOp(part, fused.group, fused.world_size))
    result = emit.value(DequantOp(unpad(gathered), s2, out.element_type))
    if view_rows:
        sizes = [
            emit.value(tensor.DimOp(fused.x1, emit.index(axis))) for axis in (0, 1) if shape[axis] == DYNAMIC_INDEX
        ]
        result = emit.value(expand_rows(result, shape, sizes))
    return result


@dataclass
class UnfuseMc2(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, fused: QuantMatmulAllReduceOp, rewriter: PatternRewriter) -> None:
        emit = Emitter(rewriter, fused.location)
        out = fused.output.type
        assert isinstance(out, TensorType)
        acc_type = TensorType(element_attr("i32"), out.get_shape())
        acc = emit.value(MatmulOp(fused.x1, fused.x2, fused.bias, fused.transpose_x2, result_type=acc_type))
        z = emit.value(DequantOp(acc, fused.dequant_scale, out.element_type, fused.pertoken_scale))
        if fused.x3 is not None:
            z = emit.value(AddOp(z, fused.x3))
        if fused.comm_quant_scale_1 is None:
            result = emit.value(AllReduceOp(z, fused.group, fused.world_size))
        else:
            result = _quantized_all_reduce(emit, fused, z)
        rewriter.replace(fused, [], [result])


@dataclass(frozen=True)
class UnfuseMc2Pass(CheckedOptions, ModulePass):
    """Rewrite every fused mc2 op as the primitive qmm chain."""

    name = "unfuse-mc2"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        cases = GreedyRewritePatternApplier([
            UnfuseMc2(),
            UnfuseQuantMatmulReduceScatter(),
            UnfuseAllGatherQuantMatmul(),
        ])  # fmt: skip
        PatternRewriteWalker(cases, apply_recursively=False).rewrite_module(op)
        if not any(o.dialect_name() == "mc2" for o in op.walk()):  # the primitive chains run on every target
            op.attributes.pop(TARGET_ATTR, None)
