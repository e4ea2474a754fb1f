"""`lower-qmm-to-aclnn`: every qmm op, and the tensor reshapes and padding around them, to
aclnn and HCCL calls; with `lower-mc2-to-aclnn`, every function fusion outputs.

    qmm.matmul + qmm.dequant (i32)  aclnnQuantMatmulV4, an f32 scale for f16 output without
                                    pertoken packed by aclnnTransQuantParamV2 first (a row
                                    reshape between them moved after the dequant first)
    qmm.add                         aclnnAdd, alpha 1
    qmm.quant                       aclnnCast(s1 -> f32), aclnnDiv(z, s1 -> f16), aclnnQuantize(h, 1)
    qmm.reducesum with s1, s2       aclnnReduceSum(-> f32), aclnnCast(s1, s2 -> f32), aclnnDiv(s1, s2),
                                    aclnnMul(S, s1/s2 -> f16), aclnnQuantize(h, 1)
    qmm.reducesum without scales    aclnnReduceSum(-> f32), aclnnCast(-> D)
    qmm.dequant (i8)                aclnnCast(s2 -> f32), aclnnMul(t, s2 -> D)
    qmm.all_reduce / alltoall /     HcclAllReduce (sum) / HcclAlltoAll / HcclAllGather /
        allgather / reduce_scatter  HcclReduceScatter (sum)
    tensor.collapse_shape,          a view of the same memory
        expand_shape
    tensor.empty, insert_slice,     a buffer, zeroed, a copy into its leading rows, a view of
        extract_slice               the leading rows (the row padding unfuse-mc2 writes)
    arith.constant (dense tensor)   device memory holding it (static data in the C++)
    arith.extf, arith.truncf        aclnnCast (to nearest even; f16/bf16 to f32 is exact)

Each op becomes its calls before it, at its location; its result becomes the buffer they
write.  Why these calls compute SEMANTICS.md's numerics is said in the README.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX, DenseIntOrFPElementsAttr, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from qmmar.dialects import aclnn, qmm
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import dtype_name, element_attr, scale_is_packed
from qmmar.dialects.qmm import tensor_type_of
from qmmar.passes.aclnn_calls import CallSequence, Size, dtype_cast
from qmmar.passes.lower_mc2_to_aclnn import pack_scale
from qmmar.passes.options import CheckedOptions, TargetOptions


def _like(value: SSAValue) -> list[Size]:
    """Every axis of `value`, as the sizes of a result of its shape."""
    return [(value, axis) for axis in range(len(tensor_type_of(value).get_shape()))]


def _buffer(seq: CallSequence, like: SSAValue, dtype: str, sizes: list[Size] | None = None) -> SSAValue:
    """A new buffer of `like`'s shape (or `sizes`) and `dtype`."""
    return seq.alloc(TensorType(element_attr(dtype), tensor_type_of(like).get_shape()), sizes or _like(like))


def _saturate_to_int8(seq: CallSequence, h: SSAValue, out_type: TensorType, sizes: list[Size]) -> SSAValue:
    """sat8(h) of an f16 tensor: aclnnQuantize with a unit scale rounds half to even and
    saturates, and x / 1 is exact."""
    one = seq.alloc(TensorType(element_attr("f16"), [1]))
    seq.call(aclnn.InplaceOneGetWorkspaceSizeOp, seq.handle(one))
    out = seq.alloc(out_type, sizes)
    seq.call(aclnn.QuantizeGetWorkspaceSizeOp, seq.handle(h), seq.handle(one), seq.handle(out))
    return out


@dataclass
class LowerMatmulDequant(RewritePattern):
    """qmm.dequant of a qmm.matmul's int32: one aclnnQuantMatmulV4 over 2-D row views."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: qmm.DequantOp, rewriter: PatternRewriter) -> None:
        if dtype_name(tensor_type_of(op.x).element_type) != "i32":
            return
        matmul = op.x.owner
        if not isinstance(matmul, qmm.MatmulOp):
            raise LocatedError.at(op, "of an int32 value that no qmm.matmul produced has no aclnn form")
        if not op.x.has_one_use():
            raise LocatedError.at(matmul, "result must have one user, a qmm.dequant: aclnnQuantMatmulV4 computes both")
        seq = CallSequence(rewriter, op)
        out_dtype, scale = dtype_name(tensor_type_of(op.result).element_type), seq.channels(op.scale)
        if scale_is_packed(dtype_name(tensor_type_of(scale).element_type), out_dtype, op.pertoken is not None):
            scale = pack_scale(seq, scale)  # SEMANTICS.md: Ascend dequantises so, and so does qmmar
        if not aclnn.quant_matmul_v4_scale_ok(
            out_dtype, dtype_name(tensor_type_of(scale).element_type), op.pertoken is not None
        ):
            raise LocatedError.at(op, f"has no aclnn form: {aclnn.QMM_V4_SCALE_RULE}")
        transpose = matmul.transpose_x2.value.data
        lead = len(tensor_type_of(matmul.x1).get_shape()) - 1
        n: Size = (matmul.x2, 0 if transpose else 1)
        out = seq.alloc(tensor_type_of(op.result), [*((matmul.x1, a) for a in range(lead)), n])
        handles = [[seq.handle(seq.rows(matmul.x1))], [seq.handle(matmul.x2)], [seq.handle(scale)],
                   [seq.handle(op.pertoken)] if op.pertoken else [],
                   [seq.handle(matmul.bias)] if matmul.bias else [], [seq.handle(seq.rows(out))]]  # fmt: skip
        seq.call(aclnn.QuantMatmulV4GetWorkspaceSizeOp, *handles, properties={"transpose_x2": matmul.transpose_x2})
        seq.release()
        rewriter.replace(op, [], [out])
        rewriter.erase(matmul)


@dataclass
class SinkRowReshape(RewritePattern):
    """qmm.dequant of a row reshape (its last axis kept) of an int32 value: the reshape moved
    after the dequant, which reads rows alike, so that the dequant meets its qmm.matmul."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: qmm.DequantOp, rewriter: PatternRewriter) -> None:
        reshape = op.x.owner
        if not isinstance(reshape, tensor.CollapseShapeOp | tensor.ExpandShapeOp) or not op.x.has_one_use():
            return
        # a last group of one axis: the last dimension is kept, only rows are reshaped
        if dtype_name(tensor_type_of(op.x).element_type) != "i32" or len(reshape.reassociation.data[-1]) != 1:
            return
        dequant = qmm.DequantOp(reshape.src, op.scale, tensor_type_of(op.result).element_type, op.pertoken)
        moved = type(reshape).create(operands=[dequant.result, *reshape.operands[1:]],
                                     result_types=[op.result.type], properties=dict(reshape.properties),
                                     attributes=dict(reshape.attributes))  # fmt: skip
        dequant.location = moved.location = op.location
        rewriter.replace(op, [dequant, moved])
        rewriter.erase(reshape)


@dataclass
class LowerDequantInt8(RewritePattern):
    """D(f32(t) * f32(s2)): the int8 and the f32 scale promote to f32, whose product is
    exact; aclnnMul rounds it once into D."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: qmm.DequantOp, rewriter: PatternRewriter) -> None:
        if dtype_name(tensor_type_of(op.x).element_type) != "i8":
            return
        seq = CallSequence(rewriter, op)
        s2 = dtype_cast(seq, op.scale, "f32")
        out = seq.alloc(tensor_type_of(op.result), _like(op.x))
        seq.call(aclnn.MulGetWorkspaceSizeOp, seq.handle(op.x), seq.handle(s2), seq.handle(out))
        seq.release()
        rewriter.replace(op, [], [out])


@dataclass
class LowerAdd(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: qmm.AddOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        out = seq.alloc(tensor_type_of(op.result), _like(op.lhs))
        seq.call(aclnn.AddGetWorkspaceSizeOp, seq.handle(op.lhs), seq.handle(op.rhs), seq.scalar(1.0), seq.handle(out))
        seq.release()
        rewriter.replace(op, [], [out])


@dataclass
class LowerQuant(RewritePattern):
    """sat8(f16(f32(z) / f32(s1))): z (D) and s1 (cast to f32) promote to f32; aclnnDiv
    rounds the quotient once into f16, then a unit-scale aclnnQuantize takes sat8."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: qmm.QuantOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        s1 = dtype_cast(seq, op.scale, "f32")
        h = _buffer(seq, op.x, "f16")
        seq.call(aclnn.DivGetWorkspaceSizeOp, seq.handle(op.x), seq.handle(s1), seq.handle(h))
        out = _saturate_to_int8(seq, h, tensor_type_of(op.result), _like(op.x))
        seq.release()
        rewriter.replace(op, [], [out])


@dataclass
class LowerReduceSum(RewritePattern):
    """The sum over ranks in f32 (exact for int8 parts); with scales, the requantisation
    sat8(f16(S * f32(f32(s1) / f32(s2)))), else D(S)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: qmm.ReduceSumOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        sizes = _like(op.x)[1:]
        total = _buffer(seq, op.result, "f32", sizes)
        seq.call(aclnn.ReduceSumGetWorkspaceSizeOp, seq.handle(op.x), seq.int_array([0]), seq.handle(total))
        if op.s1 is None or op.s2 is None:
            out = seq.alloc(tensor_type_of(op.result), sizes)
            seq.call(aclnn.CastGetWorkspaceSizeOp, seq.handle(total), seq.handle(out))
        else:
            # s1 and s2 are each [n] or [1, n]: both as [n], so that their ratio has one shape
            s1, s2 = (dtype_cast(seq, seq.channels(s), "f32") for s in (op.s1, op.s2))
            ratio = _buffer(seq, s1, "f32")
            seq.call(aclnn.DivGetWorkspaceSizeOp, seq.handle(s1), seq.handle(s2), seq.handle(ratio))
            h = _buffer(seq, op.result, "f16", sizes)
            seq.call(aclnn.MulGetWorkspaceSizeOp, seq.handle(total), seq.handle(ratio), seq.handle(h))
            out = _saturate_to_int8(seq, h, tensor_type_of(op.result), sizes)
        seq.release()
        rewriter.replace(op, [], [out])


COLLECTIVES: dict[type[Operation], type[aclnn.HcclCollective]] = {
    qmm.AllReduceOp: aclnn.HcclAllReduceOp,
    qmm.AllToAllOp: aclnn.HcclAlltoAllOp,
    qmm.AllGatherOp: aclnn.HcclAllGatherOp,
    qmm.ReduceScatterOp: aclnn.HcclReduceScatterOp,
}


@dataclass
class LowerCollective(RewritePattern):
    """One HCCL call from x into a new buffer of the result's shape."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if type(op) not in COLLECTIVES:
            return
        assert isinstance(op, qmm.CollectiveOp)
        seq = CallSequence(rewriter, op)
        x, result, w = op.operands[0], op.results[0], op.world_size.value.data
        rest: list[Size] = _like(x)[1:]
        if isinstance(op, qmm.AllToAllOp):
            rows: Size = tensor_type_of(result).get_shape()[1]
            if rows == DYNAMIC_INDEX:
                rows = seq.value(arith.DivUIOp(seq.index((x, 0)), seq.index(w)))
            sizes: list[Size] = [w, rows, *rest]
        elif isinstance(op, qmm.AllGatherOp | qmm.ReduceScatterOp):
            rows = tensor_type_of(result).get_shape()[0]
            if rows == DYNAMIC_INDEX:
                scaled = arith.MuliOp if isinstance(op, qmm.AllGatherOp) else arith.DivUIOp
                rows = seq.value(scaled(seq.index((x, 0)), seq.index(w)))
            sizes = [rows, *rest]
        else:
            sizes = _like(x)
        out = seq.alloc(tensor_type_of(result), sizes)
        seq.emit(COLLECTIVES[type(op)].create(operands=[x, out], result_types=[],
                                              properties={"group": op.group, "world_size": op.world_size}))  # fmt: skip
        rewriter.replace(op, [], [out])


@dataclass
class LowerReshape(RewritePattern):
    """collapse_shape / expand_shape of contiguous memory: the same bytes, another shape."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, tensor.CollapseShapeOp):
            seq = CallSequence(rewriter, op)
            groups = [[a.value.data for a in group] for group in op.reassociation]
            shape = tensor_type_of(op.result).get_shape()
            sizes: list[Size] = [seq.product([(op.src, a) for a in group]) if self._dynamic(op.result, i)
                                 else shape[i] for i, group in enumerate(groups)]  # fmt: skip
        elif isinstance(op, tensor.ExpandShapeOp):
            seq = CallSequence(rewriter, op)
            dynamic = iter(op.dynamic_output_shape)
            sizes = [next(dynamic) if d == DYNAMIC_INDEX else d for d in op.static_output_shape.get_values()]
        else:
            return
        rewriter.replace(op, [], [seq.view(op.operands[0], sizes)])

    @staticmethod
    def _dynamic(value: SSAValue, axis: int) -> bool:
        return tensor_type_of(value).get_shape()[axis] == DYNAMIC_INDEX


@dataclass
class LowerConstant(RewritePattern):
    """A dense tensor constant (a scale written as arith.constant, or one fusion packed):
    device memory initialised from the translation unit's static data."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: arith.ConstantOp, rewriter: PatternRewriter) -> None:
        if not isinstance(op.value, DenseIntOrFPElementsAttr):
            return  # an index: a size the C++ target reads
        seq = CallSequence(rewriter, op)
        constant = seq.value(aclnn.ConstantOp.create(properties={"value": op.value}, result_types=[op.result.type]))
        rewriter.replace(op, [], [constant])


@dataclass
class LowerFloatCast(RewritePattern):
    """A tensor's float cast (fusion widens a bf16 scale to the f32 a kernel takes): aclnnCast
    into a new buffer, which rounds to nearest even as arith.truncf does."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, arith.ExtFOp | arith.TruncFOp) or not isinstance(op.result.type, TensorType):
            return
        seq = CallSequence(rewriter, op)
        out = dtype_cast(seq, op.input, dtype_name(tensor_type_of(op.result).element_type))
        seq.release()
        rewriter.replace(op, [], [out])


@dataclass
class LowerEmpty(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.EmptyOp, rewriter: PatternRewriter) -> None:
        seq = CallSequence(rewriter, op)
        dynamic = iter(op.dynamic_sizes)
        sizes = [next(dynamic) if d == DYNAMIC_INDEX else d for d in tensor_type_of(op.tensor).get_shape()]
        rewriter.replace(op, [], [seq.alloc(tensor_type_of(op.tensor), sizes)])


def _leading_rows(op: tensor.InsertSliceOp | tensor.ExtractSliceOp, whole: SSAValue, part: SSAValue) -> bool:
    """Offsets 0, strides 1, the sizes of `part`, the trailing dims of `whole`: the part
    is `whole`'s leading rows, a prefix of its contiguous memory."""
    static = op.static_sizes.get_values()
    trailing = list(static[1:])
    trailing_ok = trailing == list(tensor_type_of(whole).get_shape()[1:]) == list(tensor_type_of(part).get_shape()[1:])
    return (
        all(o == 0 for o in op.static_offsets.get_values())
        and all(s == 1 for s in op.static_strides.get_values())
        and not op.offsets
        and not op.strides
        and trailing_ok
        and DYNAMIC_INDEX not in static[1:]
    )


@dataclass
class LowerInsertSlice(RewritePattern):
    """Rows inserted at the top of a fresh buffer (unfuse-mc2's padding): the buffer zeroed,
    then a copy into it."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.InsertSliceOp, rewriter: PatternRewriter) -> None:
        fresh = isinstance(op.dest.owner, tensor.EmptyOp | aclnn.AllocTensorOp) and op.dest.has_one_use()
        if not fresh or not _leading_rows(op, op.dest, op.source):
            raise LocatedError.at(
                op, "has no aclnn form: only leading rows inserted into a fresh tensor.empty are lowered"
            )
        seq = CallSequence(rewriter, op)
        seq.emit(aclnn.MemsetZeroOp.create(operands=[op.dest]))  # the padding rows: zero, not garbage
        seq.emit(aclnn.MemcpyOp.create(operands=[op.dest, op.source]))
        rewriter.replace(op, [], [op.dest])


@dataclass
class LowerExtractSlice(RewritePattern):
    """Leading rows of a tensor: a prefix view of its memory."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.ExtractSliceOp, rewriter: PatternRewriter) -> None:
        if not _leading_rows(op, op.source, op.result):
            raise LocatedError.at(op, "has no aclnn form: only a tensor's leading rows are lowered")
        seq = CallSequence(rewriter, op)
        dynamic = iter(op.sizes)
        sizes = [next(dynamic) if d == DYNAMIC_INDEX else d for d in op.static_sizes.get_values()]
        rewriter.replace(op, [], [seq.view(op.source, sizes, prefix=True)])


@dataclass(frozen=True)
class LowerQmmToAclnnPass(TargetOptions, CheckedOptions, ModulePass):
    """Lower qmm ops and the tensor reshapes and padding around them to aclnn and HCCL calls."""

    name = "lower-qmm-to-aclnn"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.target_of(op)  # the module's target, or an error when the options contradict it
        PatternRewriteWalker(SinkRowReshape()).rewrite_module(op)
        patterns = [LowerMatmulDequant(), LowerDequantInt8(), LowerAdd(), LowerQuant(), LowerReduceSum(),
                    LowerCollective(), LowerReshape(), LowerConstant(), LowerEmpty(), LowerInsertSlice(),
                    LowerExtractSlice(), LowerFloatCast()]  # fmt: skip
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns), apply_recursively=False).rewrite_module(op)
        for left in op.walk():
            if isinstance(left, qmm.MatmulOp):
                raise LocatedError.at(
                    left, "result must have one user, a qmm.dequant: aclnnQuantMatmulV4 computes both"
                )
