"""`torch.ops.qmmar.quant_matmul_reduce_scatter`: aclnnMatmulReduceScatterV2's int8 path as a
PyTorch custom op, which the torch.compile backend writes in place of each sequence-parallel
chain it fuses (`passes/mc2_reduce_scatter.py`).

- CPU: the interpreter's function (`interpreter.reduce_scatter_op`: the int8 product, the
  kernel's dequant, qmm.reduce_scatter's f32 rank-order sum) on numpy views of the tensors, the
  collective through torch.distributed on the named process group.
- NPU: `torch_npu.npu_mm_reduce_scatter_base(..., comm_mode="aiv")` on the group's HCCL
  communicator (docs/mc2-family.md, section 6), registered by `register_npu_kernels` when
  torch_npu has been imported.
- Meta: the output's shape [m / world_size, n] and dtype.

Both check the operands against the rule table (`dialects.mrs_rules`) at run time.  The op
does not know its SoC; Atlas A2's and A3's tables hold the same rules (only their sentences
name the SoC), and the check reads A3's, the SoC this op exists for where MatmulAllReduce does not.
"""

import inspect
import sys

import numpy as np
import torch
from torch import Tensor

from qmmar.dialects.mrs_rules import OPERANDS, Signature, first_violation
from qmmar.frontends.torch.fused_op import Call, hccl_comm_name, process_group, tensor_sig
from qmmar.interpreter.comm import Site
from qmmar.interpreter.numerics_torch import NUMPY_DTYPES, to_numpy, to_torch
from qmmar.interpreter.reduce_scatter_op import quant_matmul_reduce_scatter as fused_on_one_rank

NAME = "qmmar.quant_matmul_reduce_scatter"


def fused_output(
    x1: Tensor, x2: Tensor, bias: Tensor | None, x1_scale: Tensor | None, x2_scale: Tensor | None,
    quant_scale: Tensor | None, group: str, world_size: int, transpose_x2: bool, output_dtype: torch.dtype,
) -> Tensor:  # fmt: skip
    """The op's signature, stated once (the schema is inferred from it, every kernel binds to
    it): the operands in the aclnn order, the properties, the output dtype.  Itself the fake
    kernel: this rank's [m / world_size, n] rows."""
    n = x2.shape[0] if transpose_x2 else x2.shape[1]
    return x1.new_empty((x1.shape[0] // world_size, n), dtype=output_dtype)


_SIGNATURE = inspect.signature(fused_output)


def _bind(args: tuple[object, ...], kwargs: dict[str, object]) -> Call:
    """The arguments of a call, once the rule table has accepted them (A3's: the op does not
    know its SoC, and the A2 and A3 tables hold the same rules)."""
    call, named = Call.bind(_SIGNATURE, OPERANDS, args, kwargs)
    sig = Signature.build(call.sigs(), tensor_sig(fused_output(**named)), group=call.group,
                          world_size=call.world_size, transpose_x2=call.transpose_x2)  # fmt: skip
    call.refuse(NAME, first_violation(sig, "a3"))
    return call


def _cpu_kernel(*args: object, **kwargs: object) -> Tensor:
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    call = _bind(args, kwargs)
    comm = TorchDistributedCommunicator(process_group(call.group, call.world_size))
    site = Site(NAME, f"torch.ops.{NAME}", call.group, call.world_size)
    arrays = {name: None if t is None else to_numpy(t) for name, t in call.tensors.items()}
    with np.errstate(all="ignore"):  # inf and NaN are the numerics', not accidents
        out = fused_on_one_rank(comm, site, arrays, call.transpose_x2, NUMPY_DTYPES[call.output_dtype])
    return to_torch(out)


quant_matmul_reduce_scatter = torch.library.custom_op(
    "qmmar::quant_matmul_reduce_scatter", _cpu_kernel, mutates_args=(), device_types="cpu",
    schema=torch.library.infer_schema(fused_output, mutates_args=()),
)  # fmt: skip
quant_matmul_reduce_scatter.register_fake(fused_output)


def npu_quant_matmul_reduce_scatter(*args: object, **kwargs: object) -> Tensor:
    """The op as torch_npu runs it: one aclnnMatmulReduceScatterV2 with commMode "aiv" (torch_npu's
    default, "ai_cpu", refuses quantised inputs below 950).  A transposed weight goes as its
    transposed view; the scales as the [m, 1] and [1, n] torch_npu documents."""
    import torch_npu

    call = _bind(args, kwargs)
    x1, x2, x1_scale, x2_scale = (call.tensors[name] for name in ("x1", "x2", "x1_scale", "x2_scale"))
    assert x1 is not None and x2 is not None and x2_scale is not None  # bound, and MRS-X2SCALE-PRESENT
    out: Tensor = torch_npu.npu_mm_reduce_scatter_base(
        x1, x2.t() if call.transpose_x2 else x2, hccl_comm_name(process_group(call.group, call.world_size)),
        call.world_size, reduce_op="sum", bias=call.tensors["bias"],
        x1_scale=None if x1_scale is None else x1_scale.reshape(-1, 1), x2_scale=x2_scale.reshape(1, -1),
        comm_turn=0, output_dtype=call.output_dtype, comm_mode="aiv",
    )  # fmt: skip
    if out.dtype != call.output_dtype:
        raise RuntimeError(f"npu_mm_reduce_scatter_base returned {out.dtype}, the graph expects {call.output_dtype}")
    return out


_NPU_REGISTERED: list[bool] = []


def register_npu_kernels() -> bool:
    """Register the NPU kernel, once, if torch_npu has been imported; True when it is registered."""
    if not _NPU_REGISTERED and "torch_npu" in sys.modules:
        quant_matmul_reduce_scatter.register_kernel("npu")(npu_quant_matmul_reduce_scatter)
        from qmmar.frontends.torch import fused_all_reduce_a3_op as a3  # it reads this module's kernels

        a3.quant_matmul_all_reduce_a3.register_kernel("npu")(a3.npu_quant_matmul_all_reduce_a3)
        _NPU_REGISTERED.append(True)
    return bool(_NPU_REGISTERED)
