"""vLLM's and vLLM-Ascend's custom ops on the CPU: the all-reduce over a named process group, and
vLLM-Ascend's static activation quantisation (`npu_quantize` by the reciprocal scale)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from qmmar.frontends.torch.meta import resolve_group
from qmmar.frontends.torch.standins import npu
from qmmar.frontends.torch.standins.registry import stand_in

Tensor = torch.Tensor


def _quantize_fake(in_tensor: Tensor, *_: object) -> Tensor:
    return torch.empty_like(in_tensor, dtype=torch.int8)


@stand_in("vllm::quantize", _quantize_fake)
def quantize(in_tensor: Tensor, input_scale: Tensor, input_scale_reciprocal: Tensor, input_offset: Tensor) -> Tensor:
    """vLLM-Ascend's static W8A8 activation quantisation: npu_quantize(x, 1/scale, offset, qint8,
    -1, div_mode=False), i.e. int8(round(x * input_scale_reciprocal + input_offset))."""
    return npu.npu_quantize(in_tensor, input_scale_reciprocal, input_offset, torch.qint8, -1, False)


def _all_reduce_fake(tensor: Tensor, *_: object) -> Tensor:
    return torch.empty_like(tensor)


@stand_in("vllm::all_reduce", _all_reduce_fake)
def all_reduce(tensor: Tensor, group_name: str) -> Tensor:
    """The sum of `tensor` over the process group named `group_name` (torch.distributed's)."""
    out = tensor.clone()
    dist.all_reduce(out, group=resolve_group(group_name))
    return out
