"""The `aclnn` dialect: CANN's runtime calls, one op each, as the C++ target emits them.

Tensor SSA values stand for device memory (an argument's, or a buffer the function
allocates); the handle types stand for what the runtime hands back.  Launch ops and HCCL
collectives run on the function's stream and communicator.

Each call states its shape contract once (`contract`), over a `Logic`: the verifier reads it
with `StaticLogic` (a definite violation is an error), the C++ target with `CppLogic` (an
undecided one becomes a run-time guard before the function's first call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    I64,
    BoolAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Dialect, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_attr_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    var_operand_def,
)
from xdsl.utils.exceptions import VerifyException

from qmmar.dialects import agmm_rules, mrs_rules
from qmmar.dialects.dtypes import PACKED_SCALE_DTYPES, dtype_name, shape_of
from qmmar.dialects.logic import Dim, Logic, Truth
from qmmar.dialects.mc2_rules import OPERANDS, RULES, Signature, TensorSig
from qmmar.dialects.shapes import STATIC, contraction, same_shape, transposed
from qmmar.dialects.target import target_of

Dims = Callable[[SSAValue], tuple[Dim, ...]]
"""The dimensions of a tensor value (device memory): static, or named at run time."""

Contract = list[tuple[Truth, str]]
"""What a call needs of its operands' shapes: (verdict, the sentence a user reads)."""


class Contracted(Protocol):
    """An op that states a shape contract: the verifier and the C++ target read it."""

    def contract(self, lg: Logic, dims: Dims) -> Contract: ...


@irdl_attr_definition
class TensorHandleType(ParametrizedAttribute, TypeAttribute):
    """aclTensor*"""

    name = "aclnn.tensor"


@irdl_attr_definition
class ExecutorType(ParametrizedAttribute, TypeAttribute):
    """aclOpExecutor*: created by a first phase, consumed by its launch"""

    name = "aclnn.executor"


@irdl_attr_definition
class BufferType(ParametrizedAttribute, TypeAttribute):
    """void*: device memory, a workspace"""

    name = "aclnn.buffer"


@irdl_attr_definition
class IntArrayType(ParametrizedAttribute, TypeAttribute):
    """aclIntArray*"""

    name = "aclnn.int_array"


@irdl_attr_definition
class ScalarType(ParametrizedAttribute, TypeAttribute):
    """aclScalar*"""

    name = "aclnn.scalar"


@irdl_attr_definition
class CommNameType(ParametrizedAttribute, TypeAttribute):
    """char[COMM_NAME_MAX_LENGTH]: the group name HcclGetCommName writes"""

    name = "aclnn.comm_name"


TENSOR, EXECUTOR, BUFFER = TensorHandleType(), ExecutorType(), BufferType()


def static_dims(value: SSAValue) -> tuple[Dim, ...]:
    """A value's dims as its type states them, a dynamic one named (undecided statically)."""
    assert isinstance(value.type, TensorType)
    return shape_of(value.type, "v")


def elements(lg: Logic, dims: tuple[Dim, ...]) -> Dim:
    return lg.prod(list(dims))


def broadcasts(lg: Logic, small: tuple[Dim, ...], big: tuple[Dim, ...]) -> Truth:
    """numpy's rule: aligned from the right, each dim of `small` equals big's or is 1."""
    if len(small) > len(big):
        return False
    return lg.all(*(lg.any(lg.eq(s, 1), lg.eq(s, b)) for s, b in zip(reversed(small), reversed(big), strict=False)))


def verify_contract(contract: Contract) -> None:
    for verdict, sentence in contract:
        if verdict is False:
            raise VerifyException(sentence)


@irdl_op_definition
class HcclGetCommNameOp(IRDLOperation):
    """HcclGetCommName(comm, name): the group name of the function's communicator of `group`."""

    name = "aclnn.hccl_get_comm_name"
    group = prop_def(StringAttr)
    group_name = result_def(CommNameType)
    assembly_format = "$group attr-dict `:` type($group_name)"


@irdl_op_definition
class AllocTensorOp(IRDLOperation):
    """aclrtMalloc for a tensor's bytes (or `bytes`, for a prepacked weight), with a size
    for each dynamic dimension as tensor.empty takes them.  A buffer that a function returns
    is placed in the caller's result memory instead."""

    name = "aclnn.alloc_tensor"
    dynamic_sizes = var_operand_def(IndexType)
    bytes = opt_operand_def(i64)
    result = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = "(`(` $dynamic_sizes^ `)`)? (`bytes` `(` $bytes^ `)`)? attr-dict `:` type($result)"

    def verify_(self) -> None:
        assert isinstance(self.result.type, TensorType)
        if len(self.dynamic_sizes) != self.result.type.get_shape().count(DYNAMIC_INDEX):
            raise VerifyException("one size is needed for each dynamic dimension")


@irdl_op_definition
class ConstantOp(IRDLOperation):
    """Device memory holding a dense tensor constant of the program: aclrtMalloc, then
    aclrtMemcpy (host to device) from the static data the translation unit holds."""

    name = "aclnn.constant"
    value = prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)
    assembly_format = "$value attr-dict `:` type($result)"

    def verify_(self) -> None:
        if self.value.type != self.result.type:
            raise VerifyException("the result must have the constant's type")


@irdl_op_definition
class ViewOp(IRDLOperation):
    """The same device memory under another shape (a reshape); with `prefix`, its first
    elements only (a leading slice of rows).  No data moves."""

    name = "aclnn.view"
    source = operand_def(TensorType)
    dynamic_sizes = var_operand_def(IndexType)
    prefix = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    assembly_format = (
        "$source (`(` $dynamic_sizes^ `)`)? (`prefix` $prefix^)? attr-dict `:` type($source) `->` type($result)"
    )

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        kept, whole = elements(lg, dims(self.result)), elements(lg, dims(self.source))
        if self.prefix is not None:
            return [(lg.le(kept, whole), "[VIEW-PREFIX] a prefix view may not reach beyond its source")]
        return [(lg.eq(kept, whole), "[VIEW-RESHAPE] a reshape must keep the number of elements")]

    def verify_(self) -> None:
        assert isinstance(self.result.type, TensorType) and isinstance(self.source.type, TensorType)
        if self.result.type.element_type != self.source.type.element_type:
            raise VerifyException("a view keeps the element type")
        if len(self.dynamic_sizes) != self.result.type.get_shape().count(DYNAMIC_INDEX):
            raise VerifyException("one size is needed for each dynamic dimension")
        verify_contract(self.contract(STATIC, static_dims))


@irdl_op_definition
class MemcpyOp(IRDLOperation):
    """aclrtMemcpyAsync(dst, ..., src, ..., ACL_MEMCPY_DEVICE_TO_DEVICE, stream): src's
    bytes to the start of dst, in stream order."""

    name = "aclnn.memcpy"
    dst = operand_def(TensorType)
    src = operand_def(TensorType)
    assembly_format = "$dst `,` $src attr-dict `:` type($dst) `,` type($src)"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        if self.dst.owner is not None and isinstance(self.dst.owner, AllocTensorOp) and self.dst.owner.bytes:
            return []  # a prepacked weight's buffer: its byte size is the runtime's answer
        return [(lg.le(elements(lg, dims(self.src)), elements(lg, dims(self.dst))),
                 "[COPY-BOUNDS] a copy may not write beyond its destination")]  # fmt: skip

    def verify_(self) -> None:
        assert isinstance(self.dst.type, TensorType) and isinstance(self.src.type, TensorType)
        if self.dst.type.element_type != self.src.type.element_type:
            raise VerifyException("a copy keeps the element type")
        verify_contract(self.contract(STATIC, static_dims))


@irdl_op_definition
class MemsetZeroOp(IRDLOperation):
    """aclrtMemsetAsync(dst, size, 0, size, stream): every byte of dst zero, in stream order
    (the padding rows of a fresh buffer, before HCCL and the kernels read them)."""

    name = "aclnn.memset_zero"
    dst = operand_def(TensorType)
    assembly_format = "$dst attr-dict `:` type($dst)"


@irdl_op_definition
class CreateTensorOp(IRDLOperation):
    """aclCreateTensor over `data`: contiguous ND; with `transpose`, the [k, n] view of an
    [n, k] buffer (strides [1, k]), as the MC2 operator takes a transposed x2."""

    name = "aclnn.create_tensor"
    data = operand_def(TensorType)
    transpose = opt_prop_def(BoolAttr)
    handle = result_def(TensorHandleType)
    assembly_format = "$data (`transpose` `=` $transpose^)? attr-dict `:` type($data)"

    @property
    def transposed(self) -> bool:
        return self.transpose is not None and bool(self.transpose.value.data)


def creator_of(handle: SSAValue) -> CreateTensorOp:
    owner = handle.owner
    if not isinstance(owner, CreateTensorOp):
        raise VerifyException("a tensor handle must come from aclnn.create_tensor")
    return owner


def view_dims(handle: SSAValue, dims: Dims) -> tuple[Dim, ...]:
    """The shape a handle presents: its memory's, with the last two swapped when transposed."""
    create = creator_of(handle)
    return transposed(dims(create.data)) if create.transposed else dims(create.data)


def dtype_of(handle: SSAValue) -> str:
    t = creator_of(handle).data.type
    assert isinstance(t, TensorType)
    return dtype_name(t.element_type)


@irdl_op_definition
class DestroyTensorOp(IRDLOperation):
    name = "aclnn.destroy_tensor"
    handle = operand_def(TensorHandleType)
    assembly_format = "$handle attr-dict"


@irdl_op_definition
class CreateIntArrayOp(IRDLOperation):
    """aclCreateIntArray: of a tensor's dims (with `transpose`, its last two swapped: the
    view of a transposed x2), or of constant `values`."""

    name = "aclnn.create_int_array"
    of = opt_operand_def(TensorType)
    transpose = opt_prop_def(UnitAttr)
    values = opt_attr_def(DenseArrayBase)
    array = result_def(IntArrayType)
    assembly_format = "($of^ (`transpose` $transpose^)? `:` type($of))? attr-dict"

    def dims(self, dims: Dims) -> tuple[Dim, ...]:
        """The values the array holds."""
        if self.of is None:
            assert self.values is not None
            return tuple(self.values.get_values())
        return transposed(dims(self.of)) if self.transpose is not None else dims(self.of)

    def verify_(self) -> None:
        if (self.of is None) == (self.values is None):
            raise VerifyException("an int array holds either a tensor's dims or constant values")


@irdl_op_definition
class DestroyIntArrayOp(IRDLOperation):
    name = "aclnn.destroy_int_array"
    array = operand_def(IntArrayType)
    assembly_format = "$array attr-dict"


@irdl_op_definition
class CreateScalarOp(IRDLOperation):
    """aclCreateScalar of an f32 constant (aclnnAdd's alpha)."""

    name = "aclnn.create_scalar"
    value = prop_def(FloatAttr)
    scalar = result_def(ScalarType)
    assembly_format = "$value attr-dict"


@irdl_op_definition
class DestroyScalarOp(IRDLOperation):
    name = "aclnn.destroy_scalar"
    scalar = operand_def(ScalarType)
    assembly_format = "$scalar attr-dict"


@irdl_op_definition
class CalculateMatmulWeightSizeV2Op(IRDLOperation):
    """aclnnCalculateMatmulWeightSizeV2(shape, ACL_INT8, &size): bytes of an NZ weight."""

    name = "aclnn.calculate_matmul_weight_size_v2"
    shape = operand_def(IntArrayType)
    size = result_def(i64)
    assembly_format = "$shape attr-dict"


# --- two-phase calls -----------------------------------------------------------------------


class WorkspaceQuery(IRDLOperation):
    """A first phase, `<api>GetWorkspaceSize`: its workspace size and executor."""

    API: ClassVar[str]
    workspace_size = result_def(i64)
    executor = result_def(ExecutorType)

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        return []

    def verify_(self) -> None:
        verify_contract(self.contract(STATIC, static_dims))


@irdl_op_definition
class LaunchOp(IRDLOperation):
    """A second phase, `<api>(workspace, size, executor, stream)`: it consumes the executor,
    which the first phase of the same `api` created (one op for every two-phase call)."""

    name = "aclnn.launch"
    api = prop_def(StringAttr)
    workspace = operand_def(BufferType)
    workspace_size = operand_def(i64)
    executor = operand_def(ExecutorType)
    assembly_format = "$api $workspace `,` $workspace_size `,` $executor attr-dict"

    def verify_(self) -> None:
        query = self.executor.owner
        if not isinstance(query, WorkspaceQuery) or query.API != self.api.data:
            raise VerifyException(f"the executor must come from {self.api.data}GetWorkspaceSize")


@irdl_op_definition
class TransMatmulWeightGetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnTransMatmulWeightGetWorkspaceSize(weight, &size, &executor): to FRACTAL_NZ."""

    name = "aclnn.trans_matmul_weight_get_workspace_size"
    API: ClassVar[str] = "aclnnTransMatmulWeight"
    weight = operand_def(TensorHandleType)
    assembly_format = "$weight attr-dict"


class _SameShape(WorkspaceQuery):
    """A call from one tensor into another of its shape."""

    input = operand_def(TensorHandleType)
    out = operand_def(TensorHandleType)

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        same = same_shape(view_dims(self.input, dims), view_dims(self.out, dims), lg)
        return [(same, "[ACLNN-OUT-SHAPE] out must have self's shape")]


@irdl_op_definition
class TransQuantParamV2GetWorkspaceSizeOp(_SameShape):
    """aclnnTransQuantParamV2GetWorkspaceSize(scale, nullptr, out, &size, &executor)."""

    name = "aclnn.trans_quant_param_v2_get_workspace_size"
    API: ClassVar[str] = "aclnnTransQuantParamV2"
    assembly_format = "$input `,` $out attr-dict"


def view_sig(value: SSAValue, dims: Dims) -> TensorSig:
    """A tensor handle as a rule table reads it: its dtype and its view."""
    return TensorSig(dtype_of(value), view_dims(value, dims))


def mc2_operand_sigs(query: WorkspaceQuery, dims: Dims, names: Sequence[str]) -> dict[str, TensorSig | None]:
    """A fused op's operands, by name, as its rule table reads them from the query's handles:
    x2 as its buffer holds it (the handle's transpose is transpose_x2), so that the table reads
    one x2 both ways; the others as their views (an operand the call passes as null is None)."""
    operands = {name: None if (v := getattr(query, name, None)) is None else view_sig(v, dims) for name in names}
    x2 = query.operands[1]
    operands["x2"] = TensorSig(dtype_of(x2), dims(creator_of(x2).data))
    return operands


class QuantMatmulAllReduceQuery(WorkspaceQuery):
    """The first phase of aclnnQuantMatmulAllReduce (V3 or V5), operands in the mc2 op's order;
    its contract is the rule table of `mc2_rules` (V5 on A2 computes what V3 does, and checks
    the same: docs/mc2-family.md, section 1).  The C++ target writes each version's argument
    order.

    `group` and `world_size` keep the compile-time view for messages and run-time guards;
    the call itself passes the name HcclGetCommName returned."""

    x1 = operand_def(TensorHandleType)
    x2 = operand_def(TensorHandleType)
    bias = opt_operand_def(TensorHandleType)
    x3 = opt_operand_def(TensorHandleType)
    dequant_scale = operand_def(TensorHandleType)
    pertoken_scale = opt_operand_def(TensorHandleType)
    comm_quant_scale_1 = opt_operand_def(TensorHandleType)
    comm_quant_scale_2 = opt_operand_def(TensorHandleType)
    group_name = operand_def(CommNameType)
    output = operand_def(TensorHandleType)
    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])
    reduce_op = prop_def(StringAttr)
    comm_turn = prop_def(IntegerAttr[I64])
    stream_mode = prop_def(IntegerAttr[I64])
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = (
        "$x1 `,` $x2 (`bias` `(` $bias^ `)`)? (`x3` `(` $x3^ `)`)? `dequant_scale` `(` $dequant_scale `)` "
        "(`pertoken_scale` `(` $pertoken_scale^ `)`)? (`comm_quant_scale_1` `(` $comm_quant_scale_1^ `)`)? "
        "(`comm_quant_scale_2` `(` $comm_quant_scale_2^ `)`)? `group` `(` $group_name `)` `out` `(` $output `)` "
        "`on` $group `world_size` `=` $world_size `reduce_op` `=` $reduce_op `comm_turn` `=` $comm_turn "
        "`stream_mode` `=` $stream_mode attr-dict"
    )

    def signature(self, dims: Dims) -> Signature:
        """The mc2 op's signature (`QuantMatmulAllReduceOp.signature`): x2 as its buffer holds
        it and the handle's transpose as transpose_x2, so the rule table reads one x2 both ways."""

        return Signature.build(
            mc2_operand_sigs(self, dims, OPERANDS), view_sig(self.output, dims), group=self.group.data,
            world_size=self.world_size.value.data, reduce_op=self.reduce_op.data, comm_turn=self.comm_turn.value.data,
            stream_mode=self.stream_mode.value.data, transpose_x2=creator_of(self.x2).transposed,
        )  # fmt: skip

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        signature = self.signature(dims)
        return [(rule.holds(signature, lg), rule.message()) for rule in RULES]


@irdl_op_definition
class QuantMatmulAllReduceV3GetWorkspaceSizeOp(QuantMatmulAllReduceQuery):
    """aclnnQuantMatmulAllReduceV3GetWorkspaceSize: every CANN release qmmar compiles for."""

    name = "aclnn.quant_matmul_all_reduce_v3_get_workspace_size"
    API: ClassVar[str] = "aclnnQuantMatmulAllReduceV3"


@irdl_op_definition
class QuantMatmulAllReduceV5GetWorkspaceSizeOp(QuantMatmulAllReduceQuery):
    """aclnnQuantMatmulAllReduceV5GetWorkspaceSize: CANN 9.1 on (`Target.all_reduce_entry`)."""

    name = "aclnn.quant_matmul_all_reduce_v5_get_workspace_size"
    API: ClassVar[str] = "aclnnQuantMatmulAllReduceV5"


ALL_REDUCE_QUERIES: dict[str, type[QuantMatmulAllReduceQuery]] = {
    q.API: q for q in (QuantMatmulAllReduceV3GetWorkspaceSizeOp, QuantMatmulAllReduceV5GetWorkspaceSizeOp)
}
"""The all-reduce's first phase by entry point (`Target.all_reduce_entry`)."""


QMM_V4_MAX_DIM = 65535
"""aclnnQuantMatmulV4 on Atlas A2: the last dims of x1 and x2 are at most 65535."""

QMM_V4_SCALE_RULE = (
    "[V4-SCALE-DTYPE] aclnnQuantMatmulV4 on Atlas A2 takes, for bf16 output, a bf16 or f32 scale (pertoken "
    "optional); for f16 output, an f32 scale with pertoken, else an int64 or uint64 scale "
    "(an f32 one is packed by TransQuantParamV2)"
)


def quant_matmul_v4_scale_ok(out: str, scale: str, pertoken: bool) -> bool:
    """The documentation's dtype table for int8 x int8 on Atlas A2 (offset absent)."""
    if out == "bf16":
        return scale in ("bf16", "f32")
    return out == "f16" and (scale == "f32" if pertoken else scale in PACKED_SCALE_DTYPES)


@irdl_op_definition
class QuantMatmulV4GetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnQuantMatmulV4GetWorkspaceSize(x1, x2, scale, nullptr, pertokenScaleOptional, bias,
    false, transposeX2, out, ...): out = (x1 @ x2 + bias) * scale [* pertoken], x1 [m, k],
    x2 [k, n] or, with transpose_x2, [n, k]."""

    name = "aclnn.quant_matmul_v4_get_workspace_size"
    API: ClassVar[str] = "aclnnQuantMatmulV4"
    x1 = operand_def(TensorHandleType)
    x2 = operand_def(TensorHandleType)
    scale = operand_def(TensorHandleType)
    pertoken_scale = opt_operand_def(TensorHandleType)
    bias = opt_operand_def(TensorHandleType)
    out = operand_def(TensorHandleType)
    transpose_x2 = prop_def(BoolAttr)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = (
        "$x1 `,` $x2 `scale` `(` $scale `)` (`pertoken_scale` `(` $pertoken_scale^ `)`)? "
        "(`bias` `(` $bias^ `)`)? `out` `(` $out `)` `transpose_x2` `=` $transpose_x2 attr-dict"
    )

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        x1, x2, out = (view_dims(h, dims) for h in (self.x1, self.x2, self.out))
        if len(x1) != 2 or len(x2) != 2 or len(out) != 2:
            return [(False, "[V4-RANK] x1, x2 and out must be 2-D")]
        k, n = contraction(x2, bool(self.transpose_x2.value.data))
        scale_ok = quant_matmul_v4_scale_ok(dtype_of(self.out), dtype_of(self.scale), self.pertoken_scale is not None)
        contract: Contract = [
            (scale_ok, QMM_V4_SCALE_RULE),
            (
                lg.all(*(lg.gt(d, 0) for d in (*x1, *x2, *out))),
                "[V4-NONEMPTY] no operand or result may be an empty tensor",
            ),
            (lg.eq(x1[1], k), "[V4-K-MATCH] the k dimension of x1 must equal that of x2"),
            (lg.le(x1[1], QMM_V4_MAX_DIM), f"[V4-K-MAX] k, the last dimension of x1, must be at most {QMM_V4_MAX_DIM}"),
            (lg.le(x2[1], QMM_V4_MAX_DIM), f"[V4-X2-DIM-MAX] x2's last dimension must be at most {QMM_V4_MAX_DIM}"),
            (same_shape(out, (x1[0], n), lg), "[V4-OUT-SHAPE] out must be [m, n]"),
        ]
        scale = view_dims(self.scale, dims)
        per_channel = len(scale) == 1 and lg.any(lg.eq(scale[0], 1), lg.eq(scale[0], n))
        contract.append((per_channel, "[V4-SCALE-SHAPE] scale must be [1] or [n]"))
        if self.pertoken_scale is not None:
            pertoken = same_shape(view_dims(self.pertoken_scale, dims), (x1[0],), lg)
            contract.append((pertoken, "[V4-PERTOKEN-SHAPE] pertoken must be [m]"))
        if self.bias is not None:
            contract.append((same_shape(view_dims(self.bias, dims), (n,), lg), "[V4-BIAS-SHAPE] bias must be [n]"))
        return contract


@irdl_op_definition
class AddGetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnAddGetWorkspaceSize(self, other, alpha, out, ...): out = self + alpha * other."""

    name = "aclnn.add_get_workspace_size"
    API: ClassVar[str] = "aclnnAdd"
    lhs = operand_def(TensorHandleType)
    rhs = operand_def(TensorHandleType)
    alpha = operand_def(ScalarType)
    out = operand_def(TensorHandleType)
    assembly_format = "$lhs `,` $rhs `alpha` `(` $alpha `)` `out` `(` $out `)` attr-dict"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        lhs, rhs, out = (view_dims(h, dims) for h in (self.lhs, self.rhs, self.out))
        same = lg.all(same_shape(lhs, rhs, lg), same_shape(lhs, out, lg))
        return [(same, "[ACLNN-ADD-SHAPE] self, other and out must share a shape")]


@irdl_op_definition
class CastGetWorkspaceSizeOp(_SameShape):
    """aclnnCastGetWorkspaceSize(self, <out's dtype>, out, ...)."""

    name = "aclnn.cast_get_workspace_size"
    API: ClassVar[str] = "aclnnCast"
    assembly_format = "$input `out` `(` $out `)` attr-dict"


class _Broadcasting(WorkspaceQuery):
    """An element-wise binary call: other broadcasts to self; out has self's shape."""

    lhs = operand_def(TensorHandleType)
    rhs = operand_def(TensorHandleType)
    out = operand_def(TensorHandleType)
    assembly_format = "$lhs `,` $rhs `out` `(` $out `)` attr-dict"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        lhs, rhs, out = (view_dims(h, dims) for h in (self.lhs, self.rhs, self.out))
        return [(broadcasts(lg, rhs, lhs), "[ACLNN-BROADCAST] other must broadcast to self's shape"),
                (same_shape(lhs, out, lg), "[ACLNN-OUT-SHAPE] out must have self's shape")]  # fmt: skip


@irdl_op_definition
class DivGetWorkspaceSizeOp(_Broadcasting):
    """aclnnDivGetWorkspaceSize(self, other, out, ...): out = self / other."""

    name = "aclnn.div_get_workspace_size"
    API: ClassVar[str] = "aclnnDiv"


@irdl_op_definition
class MulGetWorkspaceSizeOp(_Broadcasting):
    """aclnnMulGetWorkspaceSize(self, other, out, ...): out = self * other."""

    name = "aclnn.mul_get_workspace_size"
    API: ClassVar[str] = "aclnnMul"


@irdl_op_definition
class ReduceSumGetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnReduceSumGetWorkspaceSize(self, dims, false, <out's dtype>, out, ...) over the
    leading axis: [W, c, ...] -> [c, ...]."""

    name = "aclnn.reduce_sum_get_workspace_size"
    API: ClassVar[str] = "aclnnReduceSum"
    input = operand_def(TensorHandleType)
    dims = operand_def(IntArrayType)
    out = operand_def(TensorHandleType)
    assembly_format = "$input `dims` `(` $dims `)` `out` `(` $out `)` attr-dict"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        return [(same_shape(view_dims(self.input, dims)[1:], view_dims(self.out, dims), lg),
                 "[ACLNN-REDUCE-SHAPE] out must be self without its leading axis")]  # fmt: skip


@irdl_op_definition
class QuantizeGetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnQuantizeGetWorkspaceSize(x, scales, nullptr, <out's dtype>, -1, out, ...):
    out = round_half_even(x / scales), saturated; scales per tensor ([1]) or per channel."""

    name = "aclnn.quantize_get_workspace_size"
    API: ClassVar[str] = "aclnnQuantize"
    input = operand_def(TensorHandleType)
    scales = operand_def(TensorHandleType)
    out = operand_def(TensorHandleType)
    assembly_format = "$input `scales` `(` $scales `)` `out` `(` $out `)` attr-dict"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        x, scales = view_dims(self.input, dims), view_dims(self.scales, dims)
        per = len(scales) == 1 and lg.any(lg.eq(scales[0], 1), lg.eq(scales[0], x[-1]))
        return [(per, "[ACLNN-QUANTIZE-SCALES] scales must be [1] or [n]"),
                (same_shape(x, view_dims(self.out, dims), lg),
                 "[ACLNN-OUT-SHAPE] out must have x's shape")]  # fmt: skip


@irdl_op_definition
class InplaceOneGetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnInplaceOneGetWorkspaceSize(selfRef, ...): fills a tensor with ones."""

    name = "aclnn.inplace_one_get_workspace_size"
    API: ClassVar[str] = "aclnnInplaceOne"
    input = operand_def(TensorHandleType)
    assembly_format = "$input attr-dict"


@irdl_op_definition
class MallocWorkspaceOp(IRDLOperation):
    """A workspace of `size` bytes, nullptr when it is 0 (in the aclnn-cpp target, a slot of
    the arena prepare allocates)."""

    name = "aclnn.malloc_workspace"
    size = operand_def(i64)
    workspace = result_def(BufferType)
    assembly_format = "$size attr-dict"


@irdl_op_definition
class SynchronizeStreamOp(IRDLOperation):
    """The end of a call: launches are asynchronous, so its workspace is free only once the
    stream has run it.  The aclnn-cpp target needs no code for it: one stream orders the calls
    and the workspace is an arena slot (the caller synchronises after a run)."""

    name = "aclnn.synchronize_stream"
    assembly_format = "attr-dict"


@irdl_op_definition
class FreeOp(IRDLOperation):
    """The end of a workspace's life (the aclnn-cpp target's arena slot needs no code)."""

    name = "aclnn.free"
    workspace = operand_def(BufferType)
    assembly_format = "$workspace attr-dict"


# --- HCCL collectives: one call each, on the function's communicator and stream -------------


class HcclCollective(IRDLOperation):
    """An HCCL collective from `send` into `recv` (device memory), over every rank of the
    function's communicator; `group` and `world_size` are the program's view of it."""

    API: ClassVar[str]
    send = operand_def(TensorType)
    recv = operand_def(TensorType)
    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])
    assembly_format = (
        "$send `into` $recv `on` $group `world_size` `=` $world_size attr-dict `:` type($send) `,` type($recv)"
    )

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        raise NotImplementedError

    def verify_(self) -> None:
        assert isinstance(self.send.type, TensorType) and isinstance(self.recv.type, TensorType)
        if self.send.type.element_type != self.recv.type.element_type:
            raise VerifyException("send and recv must share an element type")
        verify_contract(self.contract(STATIC, static_dims))


@irdl_op_definition
class HcclAllReduceOp(HcclCollective):
    """HcclAllReduce(send, recv, count, dtype, HCCL_REDUCE_SUM, comm, stream)."""

    name = "aclnn.hccl_all_reduce"
    API: ClassVar[str] = "HcclAllReduce"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        same = same_shape(dims(self.send), dims(self.recv), lg)
        return [(same, "[HCCL-ALLREDUCE-SHAPE] recv must have send's shape")]


@irdl_op_definition
class HcclAlltoAllOp(HcclCollective):
    """HcclAlltoAll(send, count, dtype, recv, count, dtype, comm, stream), count = d0/W * ...:
    [d0, ...] -> [W, d0/W, ...]."""

    name = "aclnn.hccl_all_to_all"
    API: ClassVar[str] = "HcclAlltoAll"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        send, recv, w = dims(self.send), dims(self.recv), self.world_size.value.data
        if len(recv) != len(send) + 1:
            return [(False, "[HCCL-ALLTOALL-SHAPE] recv must be [world_size, d0 / world_size, ...] of send [d0, ...]")]
        return [(lg.all(lg.eq(recv[0], w), lg.eq(lg.prod([w, recv[1]]), send[0]), same_shape(recv[2:], send[1:], lg)),
                 "[HCCL-ALLTOALL-SHAPE] send's leading dimension must split evenly: "
                 "recv is [world_size, d0 / world_size, ...]")]  # fmt: skip


def _rows_times_w(lg: Logic, small: tuple[Dim, ...], big: tuple[Dim, ...], w: int, message: str) -> Contract:
    """big is [w * c, ...] of small [c, ...]: an all-gather's recv of its send, a reduce-scatter's
    send of its recv."""
    if len(big) != len(small):
        return [(False, message)]
    return [(lg.all(lg.eq(big[0], lg.prod([w, small[0]])), same_shape(big[1:], small[1:], lg)), message)]


@irdl_op_definition
class HcclAllGatherOp(HcclCollective):
    """HcclAllGather(send, recv, count of send, dtype, comm, stream): [c, ...] -> [W*c, ...]."""

    name = "aclnn.hccl_all_gather"
    API: ClassVar[str] = "HcclAllGather"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        return _rows_times_w(lg, dims(self.send), dims(self.recv), self.world_size.value.data,
                             "[HCCL-ALLGATHER-SHAPE] recv must be [world_size * c, ...] of send [c, ...]")  # fmt: skip


@irdl_op_definition
class HcclReduceScatterOp(HcclCollective):
    """HcclReduceScatter(send, recv, count of recv, dtype, HCCL_REDUCE_SUM, comm, stream):
    [W*c, ...] -> this rank's [c, ...] of the sum."""

    name = "aclnn.hccl_reduce_scatter"
    API: ClassVar[str] = "HcclReduceScatter"

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        message = "[HCCL-REDUCESCATTER-SHAPE] recv must be [c, ...] of send [world_size * c, ...]"
        return _rows_times_w(lg, dims(self.recv), dims(self.send), self.world_size.value.data, message)


@irdl_op_definition
class MatmulReduceScatterV2GetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnMatmulReduceScatterV2GetWorkspaceSize on its int8 path, operands in the signature's
    order (quantScale and amaxOutOptional null); its contract is the rule table of `mrs_rules`
    for the module's SoC.  The launch phase returns success without running when the workspace
    is null or of size 0, which the C++ target refuses (docs/mc2-family.md, 2(a))."""

    name = "aclnn.matmul_reduce_scatter_v2_get_workspace_size"
    API: ClassVar[str] = "aclnnMatmulReduceScatterV2"
    x1 = operand_def(TensorHandleType)
    x2 = operand_def(TensorHandleType)
    bias = opt_operand_def(TensorHandleType)
    x1_scale = opt_operand_def(TensorHandleType)
    x2_scale = opt_operand_def(TensorHandleType)
    group_name = operand_def(CommNameType)
    output = operand_def(TensorHandleType)
    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])
    reduce_op = prop_def(StringAttr)
    comm_turn = prop_def(IntegerAttr[I64])
    stream_mode = prop_def(IntegerAttr[I64])
    group_size = prop_def(IntegerAttr[I64])
    block_size = prop_def(IntegerAttr[I64])
    comm_mode = prop_def(StringAttr)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = (
        "$x1 `,` $x2 (`bias` `(` $bias^ `)`)? (`x1_scale` `(` $x1_scale^ `)`)? (`x2_scale` `(` $x2_scale^ `)`)? "
        "`group` `(` $group_name `)` `out` `(` $output `)` `on` $group `world_size` `=` $world_size "
        "`reduce_op` `=` $reduce_op `comm_turn` `=` $comm_turn `stream_mode` `=` $stream_mode "
        "`group_size` `=` $group_size `block_size` `=` $block_size `comm_mode` `=` $comm_mode attr-dict"
    )

    def signature(self, dims: Dims) -> mrs_rules.Signature:
        """The mc2 op's signature (`mc2_operand_sigs`)."""
        return mrs_rules.Signature.build(
            mc2_operand_sigs(self, dims, mrs_rules.OPERANDS), view_sig(self.output, dims), group=self.group.data,
            world_size=self.world_size.value.data, transpose_x2=creator_of(self.x2).transposed,
            reduce_op=self.reduce_op.data, comm_turn=self.comm_turn.value.data,
            stream_mode=self.stream_mode.value.data, group_size=self.group_size.value.data,
            block_size=self.block_size.value.data, comm_mode=self.comm_mode.data,
        )  # fmt: skip

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        signature = self.signature(dims)
        return [(rule.holds(signature, lg), rule.message()) for rule in mrs_rules.TABLES[target_of(self).soc]]


AGMM_WORKSPACE = (
    "[AGMM-WORKSPACE] aclnnAllGatherMatmulV2GetWorkspaceSize reported no workspace: the launch would return success "
    "without running the op (aclnn_all_gather_matmul_v2.cpp l.676)"
)

AGMM_CCL_BUFFER_MB = 200
AGMM_CCL_BUFFER = (
    f"[AGMM-CCL-BUFFER] on Atlas A2/A3, the HCCL buffer (HCCL_BUFFSIZE, in MB) must be at least {AGMM_CCL_BUFFER_MB} "
    "MB for aclnnAllGatherMatmulV2 (its documentation l.444; unset: not checked, as the tiling does)"
)


@irdl_op_definition
class AllGatherMatmulV2GetWorkspaceSizeOp(WorkspaceQuery):
    """aclnnAllGatherMatmulV2GetWorkspaceSize (int8, commMode "aiv"), operands in the signature's
    order (quantScale and amaxOut null); its contract is the rule table of `agmm_rules` for the
    module's SoC.  It also writes the gathered x1 (gather_out)."""

    name = "aclnn.all_gather_matmul_v2_get_workspace_size"
    API: ClassVar[str] = "aclnnAllGatherMatmulV2"
    x1 = operand_def(TensorHandleType)
    x2 = operand_def(TensorHandleType)
    bias = opt_operand_def(TensorHandleType)
    x1_scale = opt_operand_def(TensorHandleType)
    x2_scale = opt_operand_def(TensorHandleType)
    group_name = operand_def(CommNameType)
    output = operand_def(TensorHandleType)
    gather_out = operand_def(TensorHandleType)
    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])
    comm_turn = prop_def(IntegerAttr[I64])
    stream_mode = prop_def(IntegerAttr[I64])
    group_size = prop_def(IntegerAttr[I64])
    block_size = prop_def(IntegerAttr[I64])
    comm_mode = prop_def(StringAttr)
    gather_index = prop_def(IntegerAttr[I64])
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = (
        "$x1 `,` $x2 (`bias` `(` $bias^ `)`)? (`x1_scale` `(` $x1_scale^ `)`)? (`x2_scale` `(` $x2_scale^ `)`)? "
        "`group` `(` $group_name `)` `out` `(` $output `,` $gather_out `)` `on` $group `world_size` `=` $world_size "
        "`comm_mode` `=` $comm_mode `gather_index` `=` $gather_index `comm_turn` `=` $comm_turn "
        "`stream_mode` `=` $stream_mode `group_size` `=` $group_size `block_size` `=` $block_size attr-dict"
    )

    def signature(self, dims: Dims) -> agmm_rules.Signature:
        """The mc2 op's signature (`mc2_operand_sigs`)."""
        return agmm_rules.Signature.build(
            mc2_operand_sigs(self, dims, agmm_rules.OPERANDS), view_sig(self.output, dims),
            view_sig(self.gather_out, dims), group=self.group.data, world_size=self.world_size.value.data,
            transpose_x2=creator_of(self.x2).transposed, comm_mode=self.comm_mode.data,
            gather_index=self.gather_index.value.data, comm_turn=self.comm_turn.value.data,
            stream_mode=self.stream_mode.value.data, group_size=self.group_size.value.data,
            block_size=self.block_size.value.data,
        )  # fmt: skip

    def contract(self, lg: Logic, dims: Dims) -> Contract:
        signature = self.signature(dims)
        return [(rule.holds(signature, lg), rule.message()) for rule in agmm_rules.TABLES[target_of(self).soc]]


QUERIES: tuple[type[WorkspaceQuery], ...] = (
    TransMatmulWeightGetWorkspaceSizeOp, TransQuantParamV2GetWorkspaceSizeOp, *ALL_REDUCE_QUERIES.values(),
    QuantMatmulV4GetWorkspaceSizeOp, AddGetWorkspaceSizeOp, CastGetWorkspaceSizeOp, DivGetWorkspaceSizeOp,
    MulGetWorkspaceSizeOp, ReduceSumGetWorkspaceSizeOp, QuantizeGetWorkspaceSizeOp, InplaceOneGetWorkspaceSizeOp,
    MatmulReduceScatterV2GetWorkspaceSizeOp,
    AllGatherMatmulV2GetWorkspaceSizeOp,
)  # fmt: skip


Aclnn = Dialect(
    "aclnn",
    [
        HcclGetCommNameOp, AllocTensorOp, ConstantOp, ViewOp, MemcpyOp, MemsetZeroOp, CreateTensorOp, DestroyTensorOp,
        CreateIntArrayOp, DestroyIntArrayOp, CreateScalarOp, DestroyScalarOp, CalculateMatmulWeightSizeV2Op,
        *QUERIES, LaunchOp, MallocWorkspaceOp, SynchronizeStreamOp, FreeOp,
        HcclAllReduceOp, HcclAlltoAllOp, HcclAllGatherOp, HcclReduceScatterOp,
    ],
    [TensorHandleType, ExecutorType, BufferType, IntArrayType, ScalarType, CommNameType],
)  # fmt: skip
