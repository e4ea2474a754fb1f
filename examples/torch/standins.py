"""CPU stand-ins for the custom ops vLLM-Ascend graphs hold, under their real names and
schemas: `torch.ops.npu.npu_quant_matmul` (torch_npu) and `torch.ops.vllm.all_reduce` (vLLM).

Written in plain PyTorch from the operator's documented numerics (SEMANTICS.md), not with
qmmar's code, so that a test comparing qmmar's interpreter with these is not circular.
Import this module before loading a program that calls them, to run it eagerly.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from qmmar.frontends.torch.program import declare_known_ops

declare_known_ops()  # the schemas, as torch_npu and vLLM define them


def _dequant_scale(scale: torch.Tensor, out: torch.dtype, has_pertoken: bool) -> torch.Tensor:
    """The f32 the kernel multiplies by: a packed int64 scale's low 32 bits; an f32 scale for f16
    output without pertoken scales packed first (TransQuantParamV2 keeps 10 mantissa bits)."""
    if scale.dtype == torch.int64:
        return scale.contiguous().view(torch.int32).reshape(-1, 2)[:, 0].view(torch.float32)
    if scale.dtype == torch.float32 and out == torch.float16 and not has_pertoken:
        return (scale.contiguous().view(torch.int32) & -8192).view(torch.float32)
    return scale.to(torch.float32)


@torch.library.impl("npu::npu_quant_matmul", "cpu")
def npu_quant_matmul(x1, x2, scale, *, offset=None, pertoken_scale=None, bias=None, output_dtype=None):
    acc = torch.matmul(x1.to(torch.int32), x2.to(torch.int32))  # exact in int32
    if bias is not None:
        acc = acc + bias
    y = acc.to(torch.float32) * _dequant_scale(scale, output_dtype, pertoken_scale is not None).reshape(-1)
    if pertoken_scale is not None:
        y = y * pertoken_scale.reshape(-1, 1)
    return y.to(output_dtype)


@torch.library.register_fake("npu::npu_quant_matmul")
def _(x1, x2, scale, *, offset=None, pertoken_scale=None, bias=None, output_dtype=None):
    return x1.new_empty((*x1.shape[:-1], x2.shape[-1]), dtype=output_dtype or torch.int8)


@torch.library.impl("vllm::all_reduce", "cpu")
def all_reduce(tensor, group_name):
    out = tensor.clone()
    dist.all_reduce(out, group=dist.distributed_c10d._resolve_process_group(group_name))
    return out


@torch.library.register_fake("vllm::all_reduce")
def _(tensor, group_name):
    return torch.empty_like(tensor)
