"""`torch.ops.qmmar.all_gather_quant_matmul`: aclnnAllGatherMatmulV2 (int8, commMode "aiv") as a
PyTorch custom op, the operands in the op's order, then its properties, then the output dtype.
It returns (output [W*m, n], gather_out [W*m, k]).

- CPU: qmmar's numerics of the op (`interpreter.all_gather_matmul`, docs/all-gather-matmul.md)
  on numpy views of the tensors, the gathers through torch.distributed on the named group.
- NPU: `torch_npu.npu_all_gather_base_mm(..., comm_mode="aiv")` on the group's HCCL
  communicator (registered by `fused_op.register_npu_kernels` when torch_npu is imported).
- Meta: the two results' shapes and dtypes.

Every kernel checks its operands against the op's rule table (`dialects.agmm_rules`, one table
for Atlas A2 and A3) first.
"""

import inspect

import numpy as np
import torch
from torch import Tensor

from qmmar.dialects import rules
from qmmar.dialects.agmm_rules import OPERANDS, RULES, Signature
from qmmar.frontends.torch.fused_op import Call, hccl_comm_name, process_group, tensor_sig
from qmmar.interpreter.all_gather_matmul import all_gather_quant_matmul as on_one_rank
from qmmar.interpreter.comm import Site
from qmmar.interpreter.numerics_torch import NUMPY_DTYPES, to_numpy, to_torch

NAME = "qmmar.all_gather_quant_matmul"


def all_gather_results(
    x1: Tensor, x2: Tensor, bias: Tensor | None, x1_scale: Tensor | None, x2_scale: Tensor | None,
    group: str, world_size: int, transpose_x2: bool, output_dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The op's signature, stated once (the schema is inferred from it, every kernel binds its
    arguments to it); itself the fake kernel: (output [W*m, n], gather_out [W*m, k] of x1's dtype)."""
    rows, n = x1.shape[0] * world_size, x2.shape[0] if transpose_x2 else x2.shape[1]
    return x1.new_empty((rows, n), dtype=output_dtype), x1.new_empty((rows, x1.shape[1]))


_SIGNATURE = inspect.signature(all_gather_results)


def _bind(args: tuple[object, ...], kwargs: dict[str, object]) -> Call:
    """The arguments of a call, once the rule table has accepted them."""
    call, named = Call.bind(_SIGNATURE, OPERANDS, args, kwargs)
    output, gather_out = all_gather_results(**named)
    sig = Signature.build(call.sigs(), tensor_sig(output), tensor_sig(gather_out), group=call.group,
                          world_size=call.world_size, transpose_x2=call.transpose_x2)  # fmt: skip
    call.refuse(NAME, rules.first_violation(RULES, sig))
    return call


def _cpu_kernel(*args: object, **kwargs: object) -> tuple[Tensor, Tensor]:
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    call = _bind(args, kwargs)
    comm = TorchDistributedCommunicator(process_group(call.group, call.world_size))
    site = Site(NAME, f"torch.ops.{NAME}", call.group, call.world_size)
    arrays = {name: None if t is None else to_numpy(t) for name, t in call.tensors.items()}
    with np.errstate(all="ignore"):  # inf and NaN are the numerics', not accidents
        output, gather_out = on_one_rank(comm, site, arrays, call.transpose_x2, NUMPY_DTYPES[call.output_dtype])
    return to_torch(output), to_torch(gather_out)


all_gather_quant_matmul = torch.library.custom_op(
    "qmmar::all_gather_quant_matmul", _cpu_kernel, mutates_args=(), device_types="cpu",
    schema=torch.library.infer_schema(all_gather_results, mutates_args=()),
)  # fmt: skip
all_gather_quant_matmul.register_fake(all_gather_results)


def npu_all_gather_quant_matmul(*args: object, **kwargs: object) -> tuple[Tensor, Tensor]:
    """The op as torch_npu runs it: one aclnnAllGatherMatmulV2 with commMode "aiv" (torch_npu's
    default "ai_cpu" refuses int8).  The scales go as the documentation shapes them, x1_scale
    [m, 1] and x2_scale [1, n]; a transposed weight as the transposed view."""
    import torch_npu

    call = _bind(args, kwargs)
    x1, x2, x1_scale, x2_scale = (call.tensors[name] for name in ("x1", "x2", "x1_scale", "x2_scale"))
    assert x1 is not None and x2 is not None and x2_scale is not None  # bound, and AGMM-X2SCALE-PRESENT
    output, gather_out = torch_npu.npu_all_gather_base_mm(
        x1, x2.t() if call.transpose_x2 else x2, hccl_comm_name(process_group(call.group, call.world_size)),
        call.world_size, bias=None, x1_scale=None if x1_scale is None else x1_scale.reshape(-1, 1),
        x2_scale=x2_scale.reshape(1, -1), gather_index=0, gather_output=True, comm_turn=0,
        output_dtype=call.output_dtype, comm_mode="aiv",
    )  # fmt: skip
    if output.dtype != call.output_dtype:
        raise RuntimeError(f"npu_all_gather_base_mm returned {output.dtype}, the graph expects {call.output_dtype}")
    return output, gather_out
