"""torch_npu's W8A8 ops on the CPU, from their documented formulas (torch_npu's API reference;
the quantised matmul's numerics as SEMANTICS.md states the kernel's).  Float arithmetic is f32,
rounded once to the output type; integers are rounded half to even and saturated."""

from __future__ import annotations

import torch

from qmmar.frontends.torch.standins.registry import stand_in

F32 = torch.float32
Tensor = torch.Tensor
INTEGERS = {torch.qint8: torch.int8, torch.quint8: torch.uint8, torch.int8: torch.int8, torch.int32: torch.int32}
"""npu_quantize's `dtype` -> the dtype of the tensor it returns (torch_npu returns plain integer
tensors for the quantised dtypes)."""


def _saturated(y: Tensor, dtype: torch.dtype) -> Tensor:
    """round(y) to nearest even, saturated to the integer dtype's range (NaN: 0)."""
    info = torch.iinfo(dtype)
    return torch.nan_to_num(torch.round(y), nan=0.0).clamp(info.min, info.max).to(dtype)


def _dynamic_quant_fake(input: Tensor, **_: object) -> tuple[Tensor, Tensor]:
    return torch.empty_like(input, dtype=torch.int8), input.new_empty(input.shape[:-1], dtype=F32)


@stand_in("npu::npu_dynamic_quant", _dynamic_quant_fake)
def npu_dynamic_quant(
    input: Tensor,
    *,
    smooth_scales: Tensor | None = None,
    group_index: Tensor | None = None,
    dst_type: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Symmetric per-token quantisation: scale = rowMax(|x * smooth_scales|) / 127 (f32, one per
    row), y = round(x * smooth_scales / scale) in int8.  A row of zeros quantises to zeros."""
    if group_index is not None or dst_type not in (None, torch.int8):
        raise NotImplementedError("npu_dynamic_quant stand-in: int8 without group_index (MoE) only")
    x = input.to(F32) if smooth_scales is None else input.to(F32) * smooth_scales.to(F32)
    scale = x.abs().amax(dim=-1) / 127
    return _saturated(x / scale.unsqueeze(-1), torch.int8), scale


def _scales_along(scales: Tensor, input: Tensor, axis: int) -> Tensor:
    """A 1-D vector of scales (or offsets) laid along `axis` of input; a full-rank one as it is."""
    if scales.dim() != 1:
        return scales.to(F32)
    shape = [1] * input.dim()
    shape[axis] = -1
    return scales.to(F32).reshape(shape)


def _quantize_fake(input: Tensor, scales: Tensor, zero_points: Tensor | None, dtype: torch.dtype, *_: object) -> Tensor:
    return torch.empty_like(input, dtype=INTEGERS[dtype])


@stand_in("npu::npu_quantize", _quantize_fake)
def npu_quantize(
    input: Tensor, scales: Tensor, zero_points: Tensor | None, dtype: torch.dtype, axis: int = 1, div_mode: bool = True
) -> Tensor:
    """y = round(x / scales + zero_points) (div_mode) or round(x * scales + zero_points), in f32,
    saturated to `dtype` (qint8 and int8: int8; quint8: uint8; int32)."""
    s = _scales_along(scales, input, axis)
    y = input.to(F32) / s if div_mode else input.to(F32) * s
    if zero_points is not None:
        y = y + _scales_along(zero_points, input, axis)
    return _saturated(y, INTEGERS[dtype])


def _dequant_scale(scale: Tensor, out: torch.dtype | None, has_pertoken: bool) -> Tensor:
    """The f32 the kernel multiplies by: a packed int64 scale's low 32 bits; an f32 scale for f16
    output without pertoken scales packed first (TransQuantParamV2 keeps 10 mantissa bits)."""
    if scale.dtype == torch.int64:
        return scale.contiguous().view(torch.int32).reshape(-1, 2)[:, 0].view(F32)
    if scale.dtype == F32 and out == torch.float16 and not has_pertoken:
        return (scale.contiguous().view(torch.int32) & -8192).view(F32)
    return scale.to(F32)


def _quant_matmul_fake(
    x1: Tensor, x2: Tensor, *_: object, output_dtype: torch.dtype | None = None, **__: object
) -> Tensor:
    return x1.new_empty((*x1.shape[:-1], x2.shape[-1]), dtype=output_dtype or torch.int8)


@stand_in("npu::npu_quant_matmul", _quant_matmul_fake)
def npu_quant_matmul(
    x1: Tensor,
    x2: Tensor,
    scale: Tensor,
    *,
    offset: Tensor | None = None,
    pertoken_scale: Tensor | None = None,
    bias: Tensor | None = None,
    output_dtype: torch.dtype | None = None,
    group_sizes: list[int] | None = None,
) -> Tensor:
    """y = D(f32(x1 @ x2 [+ int32 bias]) * scale [* pertoken_scale] [+ f32(float bias)]), D the
    output dtype (f16 or bf16), multiplied left to right in f32 and rounded once."""
    if offset is not None or group_sizes is not None or output_dtype not in (torch.float16, torch.bfloat16):
        raise NotImplementedError("npu_quant_matmul stand-in: f16/bf16 output, no offset, no group_sizes")
    acc = torch.matmul(x1.to(torch.int32), x2.to(torch.int32))  # exact in int32
    if bias is not None and bias.dtype == torch.int32:
        acc = acc + bias
    y = acc.to(F32) * _dequant_scale(scale, output_dtype, pertoken_scale is not None).reshape(-1)
    if pertoken_scale is not None:
        y = y * pertoken_scale.reshape(-1, 1)
    if bias is not None and bias.dtype != torch.int32:
        y = y + bias.to(F32)
    return y.to(output_dtype)


def _add_rms_norm_fake(x1: Tensor, *_: object) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(x1), x1.new_empty((*x1.shape[:-1], 1), dtype=F32), torch.empty_like(x1)


@stand_in("npu::npu_add_rms_norm", _add_rms_norm_fake)
def npu_add_rms_norm(x1: Tensor, x2: Tensor, gamma: Tensor, epsilon: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """x = x1 + x2; rstd = 1 / sqrt(mean(x^2) + epsilon) over the last dimension;
    y = x * rstd * gamma.  Returns (y, rstd, x), y and x of x1's dtype, rstd f32 [..., 1]."""
    x = x1.to(F32) + x2.to(F32)
    rstd = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + epsilon)
    return (x * rstd * gamma.to(F32)).to(x1.dtype), rstd, x.to(x1.dtype)
