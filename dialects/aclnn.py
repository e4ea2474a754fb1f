"""The `aclnn` dialect: CANN's runtime calls, one op each, as the C++ target emits them.

Tensor SSA values stand for device memory (an argument's, or a buffer the function
allocates); the handle types stand for what the runtime hands back.  Launch ops run on the
function's stream; `hccl_get_comm_name` reads the function's HCCL communicator.
"""

from __future__ import annotations

from xdsl.dialects.builtin import BoolAttr, IntegerAttr, StringAttr, TensorType, i64
from xdsl.ir import Dialect, ParametrizedAttribute, TypeAttribute
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
)


@irdl_attr_definition
class TensorHandleType(ParametrizedAttribute, TypeAttribute):
    """aclTensor*"""

    name = "aclnn.tensor"


@irdl_attr_definition
class ExecutorType(ParametrizedAttribute, TypeAttribute):
    """aclOpExecutor*"""

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
class CommNameType(ParametrizedAttribute, TypeAttribute):
    """char[128]: the group name HcclGetCommName writes"""

    name = "aclnn.comm_name"


TENSOR, EXECUTOR, BUFFER = TensorHandleType(), ExecutorType(), BufferType()


@irdl_op_definition
class HcclGetCommNameOp(IRDLOperation):
    """HcclGetCommName(comm, name): the function's communicator's group name."""

    name = "aclnn.hccl_get_comm_name"
    group_name = result_def(CommNameType)
    assembly_format = "attr-dict `:` type($group_name)"


@irdl_op_definition
class AllocTensorOp(IRDLOperation):
    """aclrtMalloc for a tensor's bytes (or `bytes`, for a prepacked weight); freed when the
    function returns.  A function result's buffer is the caller's, and allocates nothing."""

    name = "aclnn.alloc_tensor"
    bytes = opt_operand_def(i64)
    result = result_def(TensorType)
    assembly_format = "(`bytes` `(` $bytes^ `)`)? attr-dict `:` type($result)"


@irdl_op_definition
class MemcpyOp(IRDLOperation):
    """aclrtMemcpy(dst, ..., src, ..., ACL_MEMCPY_DEVICE_TO_DEVICE) of src's bytes."""

    name = "aclnn.memcpy"
    dst = operand_def(TensorType)
    src = operand_def(TensorType)
    assembly_format = "$dst `,` $src attr-dict `:` type($dst) `,` type($src)"


@irdl_op_definition
class CreateTensorOp(IRDLOperation):
    """aclCreateTensor over `data`: contiguous ND; with `transpose`, the [k, n] view of an
    [n, k] buffer (strides [1, k]), as the operator takes a transposed x2."""

    name = "aclnn.create_tensor"
    data = operand_def(TensorType)
    transpose = opt_prop_def(BoolAttr)
    handle = result_def(TensorHandleType)
    assembly_format = "$data (`transpose` `=` $transpose^)? attr-dict `:` type($data)"


@irdl_op_definition
class DestroyTensorOp(IRDLOperation):
    name = "aclnn.destroy_tensor"
    handle = operand_def(TensorHandleType)
    assembly_format = "$handle attr-dict"


@irdl_op_definition
class CreateIntArrayOp(IRDLOperation):
    """aclCreateIntArray of a tensor's dims."""

    name = "aclnn.create_int_array"
    of = operand_def(TensorType)
    array = result_def(IntArrayType)
    assembly_format = "$of attr-dict `:` type($of)"


@irdl_op_definition
class DestroyIntArrayOp(IRDLOperation):
    name = "aclnn.destroy_int_array"
    array = operand_def(IntArrayType)
    assembly_format = "$array attr-dict"


@irdl_op_definition
class CalculateMatmulWeightSizeV2Op(IRDLOperation):
    """aclnnCalculateMatmulWeightSizeV2(shape, ACL_INT8, &size): bytes of an NZ weight."""

    name = "aclnn.calculate_matmul_weight_size_v2"
    shape = operand_def(IntArrayType)
    size = result_def(i64)
    assembly_format = "$shape attr-dict"


class _WorkspaceQuery(IRDLOperation):
    workspace_size = result_def(i64)
    executor = result_def(ExecutorType)


class _Launch(IRDLOperation):
    workspace = operand_def(BufferType)
    workspace_size = operand_def(i64)
    executor = operand_def(ExecutorType)
    assembly_format = "$workspace `,` $workspace_size `,` $executor attr-dict"


@irdl_op_definition
class TransMatmulWeightGetWorkspaceSizeOp(_WorkspaceQuery):
    """aclnnTransMatmulWeightGetWorkspaceSize(weight, &size, &executor): to FRACTAL_NZ."""

    name = "aclnn.trans_matmul_weight_get_workspace_size"
    weight = operand_def(TensorHandleType)
    assembly_format = "$weight attr-dict"


@irdl_op_definition
class TransMatmulWeightOp(_Launch):
    name = "aclnn.trans_matmul_weight"


@irdl_op_definition
class TransQuantParamV2GetWorkspaceSizeOp(_WorkspaceQuery):
    """aclnnTransQuantParamV2GetWorkspaceSize(scale, nullptr, out, &size, &executor)."""

    name = "aclnn.trans_quant_param_v2_get_workspace_size"
    scale = operand_def(TensorHandleType)
    out = operand_def(TensorHandleType)
    assembly_format = "$scale `,` $out attr-dict"


@irdl_op_definition
class TransQuantParamV2Op(_Launch):
    name = "aclnn.trans_quant_param_v2"


@irdl_op_definition
class QuantMatmulAllReduceV3GetWorkspaceSizeOp(_WorkspaceQuery):
    """aclnnQuantMatmulAllReduceV3GetWorkspaceSize, operands in the signature's order.

    `group` and `world_size` keep the compile-time view for messages and run-time guards;
    the call itself passes the name HcclGetCommName returned."""

    name = "aclnn.quant_matmul_all_reduce_v3_get_workspace_size"
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
    world_size = prop_def(IntegerAttr[i64])
    reduce_op = prop_def(StringAttr)
    comm_turn = prop_def(IntegerAttr[i64])
    stream_mode = prop_def(IntegerAttr[i64])
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = (
        "$x1 `,` $x2 (`bias` `(` $bias^ `)`)? (`x3` `(` $x3^ `)`)? `dequant_scale` `(` $dequant_scale `)` "
        "(`pertoken_scale` `(` $pertoken_scale^ `)`)? (`comm_quant_scale_1` `(` $comm_quant_scale_1^ `)`)? "
        "(`comm_quant_scale_2` `(` $comm_quant_scale_2^ `)`)? `group` `(` $group_name `)` `out` `(` $output `)` "
        "`on` $group `world_size` `=` $world_size `reduce_op` `=` $reduce_op `comm_turn` `=` $comm_turn "
        "`stream_mode` `=` $stream_mode attr-dict"
    )


@irdl_op_definition
class QuantMatmulAllReduceV3Op(_Launch):
    name = "aclnn.quant_matmul_all_reduce_v3"


@irdl_op_definition
class MallocWorkspaceOp(IRDLOperation):
    """aclrtMalloc(&ws, size, ACL_MEM_MALLOC_HUGE_FIRST) when size > 0, else nullptr."""

    name = "aclnn.malloc_workspace"
    size = operand_def(i64)
    workspace = result_def(BufferType)
    assembly_format = "$size attr-dict"


@irdl_op_definition
class SynchronizeStreamOp(IRDLOperation):
    """aclrtSynchronizeStream(stream): launches are asynchronous; memory they use is freed
    only after this."""

    name = "aclnn.synchronize_stream"
    assembly_format = "attr-dict"


@irdl_op_definition
class FreeOp(IRDLOperation):
    """aclrtFree of a workspace (nothing for nullptr)."""

    name = "aclnn.free"
    workspace = operand_def(BufferType)
    assembly_format = "$workspace attr-dict"


Aclnn = Dialect(
    "aclnn",
    [
        HcclGetCommNameOp, AllocTensorOp, MemcpyOp, CreateTensorOp, DestroyTensorOp,
        CreateIntArrayOp, DestroyIntArrayOp, CalculateMatmulWeightSizeV2Op,
        TransMatmulWeightGetWorkspaceSizeOp, TransMatmulWeightOp,
        TransQuantParamV2GetWorkspaceSizeOp, TransQuantParamV2Op,
        QuantMatmulAllReduceV3GetWorkspaceSizeOp, QuantMatmulAllReduceV3Op,
        MallocWorkspaceOp, SynchronizeStreamOp, FreeOp,
    ],
    [TensorHandleType, ExecutorType, BufferType, IntArrayType, CommNameType],
)  # fmt: skip
