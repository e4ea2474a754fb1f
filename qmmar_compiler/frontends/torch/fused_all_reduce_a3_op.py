"""`torch.ops.qmmar.quant_matmul_all_reduce_a3`: the A3 form of a matmul + all-reduce chain
(`passes/mc2_all_reduce_a3.py`) as a PyTorch custom op, which the torch.compile backend writes in
place of each such chain it fuses for `soc="a3"`: `qmmar.quant_matmul_reduce_scatter`'s
[m / world_size, n] block of this rank, then the blocks of every rank gathered in rank order into
[m, n].  Its arguments are the reduce-scatter op's, checked by that op's kernels against its rule
table.

- CPU: the reduce-scatter op's CPU kernel, then the interpreter's qmm.allgather through
  torch.distributed on the named process group (bytes only: an exact copy).
- NPU: the reduce-scatter op's NPU kernel (`torch_npu.npu_mm_reduce_scatter_base(...,
  comm_mode="aiv")`), then `torch.distributed.all_gather_into_tensor` on the group (HcclAllGather);
  registered with that op's (`fused_reduce_scatter_op.register_npu_kernels`).
- Meta: the output's shape [m, n] and dtype.
"""

import inspect

import torch
import torch.distributed as dist
from torch import Tensor

from qmmar.dialects.mrs_rules import OPERANDS
from qmmar.frontends.torch import fused_reduce_scatter_op as reduce_scatter
from qmmar.frontends.torch.fused_op import Call, process_group
from qmmar.interpreter.comm import Site
from qmmar.interpreter.functions import all_gather_rows
from qmmar.interpreter.numerics_torch import to_numpy, to_torch

NAME = "qmmar.quant_matmul_all_reduce_a3"


_SIGNATURE = inspect.signature(reduce_scatter.fused_output)
"""The reduce-scatter op's: the same arguments."""


def _call(args: tuple[object, ...], kwargs: dict[str, object]) -> Call:
    return Call.bind(_SIGNATURE, OPERANDS, args, kwargs)[0]


def _fake(*args: object, **kwargs: object) -> Tensor:
    """The gathered blocks: x1's m rows of the block's n."""
    named = _SIGNATURE.bind(*args, **kwargs).arguments
    block = reduce_scatter.fused_output(**named)
    return block.new_empty((named["x1"].shape[0], block.shape[1]))


def _cpu_kernel(*args: object, **kwargs: object) -> Tensor:
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    block = reduce_scatter.quant_matmul_reduce_scatter(*args, **kwargs)
    call = _call(args, kwargs)
    comm = TorchDistributedCommunicator(process_group(call.group, call.world_size))
    site = Site(NAME, f"torch.ops.{NAME}", call.group, call.world_size)
    return to_torch(all_gather_rows(comm, to_numpy(block), site))


quant_matmul_all_reduce_a3 = torch.library.custom_op(
    "qmmar::quant_matmul_all_reduce_a3", _cpu_kernel, mutates_args=(), device_types="cpu",
    schema=torch.library.infer_schema(reduce_scatter.fused_output, mutates_args=()),
)  # fmt: skip
quant_matmul_all_reduce_a3.register_fake(_fake)


def npu_quant_matmul_all_reduce_a3(*args: object, **kwargs: object) -> Tensor:
    """The A3 form as torch_npu runs it: one aclnnMatmulReduceScatterV2 ("aiv"), then HCCL's
    all-gather of its output on the same group."""
    block = reduce_scatter.npu_quant_matmul_reduce_scatter(*args, **kwargs)
    call = _call(args, kwargs)
    out = block.new_empty((block.shape[0] * call.world_size, block.shape[1]))
    dist.all_gather_into_tensor(out, block, group=process_group(call.group, call.world_size))
    return out
