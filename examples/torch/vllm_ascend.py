"""A row-parallel W8A8 linear as vLLM-Ascend writes it (`w8a8_dynamic.py`, `w8a8_static.py`), with
the residual add and RMSNorm of the next layer fused as `npu_add_rms_norm`, on one rank of W:

    x, _, residual = npu_add_rms_norm(hidden, residual, gamma)        # torch_npu, opaque
    dynamic:  q, token_scale = npu_dynamic_quant(x)
              y = npu_quant_matmul(q, w, weight_scale, pertoken_scale=token_scale, output_dtype=D)
    static:   q = vllm.quantize(x, input_scale, 1 / input_scale, input_offset)
              y = npu_quant_matmul(q, w, deq_scale, bias=quant_bias (rank 0 only), output_dtype=D)
    out = vllm.all_reduce(y, group)

vLLM-Ascend keeps the weight transposed ([k, n]) and its scales in the model's dtype D; the static
deq_scale is f32 for bf16 (`bf16_scales`: holding bf16 values) and packed int64 for f16.
`qmmar.frontends.torch.standins` runs every op on the CPU.  Variants: `VARIANTS` (D, dynamic or
static, the static bias on rank 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

import qmmar.frontends.torch.standins  # noqa: F401  (torch_npu's and vLLM's ops on the CPU)

HIDDEN, TOKENS = 64, 32


@dataclass(frozen=True)
class Variant:
    dtype: torch.dtype
    dynamic: bool
    bias: bool = False  # the static quant_bias, which vLLM-Ascend passes on tensor-parallel rank 0 only
    bf16_scales: bool = False
    """The static f32 deq_scale holds bf16 values (as a checkpoint whose scales were calibrated in
    bf16 and stored as f32 has): the operator's bf16 scale computes the same, so it fuses exactly."""


VARIANTS = {
    "bf16-dynamic": Variant(torch.bfloat16, True),
    "f16-dynamic": Variant(torch.float16, True),
    "bf16-static": Variant(torch.bfloat16, False),
    "bf16-static-bf16-scales": Variant(torch.bfloat16, False, bf16_scales=True),
    "f16-static": Variant(torch.float16, False),
    "f16-static-bias": Variant(torch.float16, False, bias=True),
}


def pack_scale(scale: torch.Tensor) -> torch.Tensor:
    """An f32 scale packed as torch_npu.npu_trans_quant_param (TransQuantParamV2) does: int64."""
    return (scale.view(torch.int32).to(torch.int64) & 0xFFFFE000) | (1 << 46)


class W8A8Linear(nn.Module):
    """A W8A8 linear as vLLM-Ascend runs it: the weight int8 [k, n], its per-channel scale `scale`
    (f32 [n]) kept in D (dynamic) or folded with the input scale into deq_scale (static).  An
    input of more than two dimensions ([b, s, k], as transformers' models pass it) is quantised
    and multiplied as [b * s, k] rows (vLLM's own layout), and viewed back as [b, s, n]."""

    def __init__(self, v: Variant, weight: torch.Tensor, scale: torch.Tensor, input_scale: float = 0.02,
                 quant_bias: torch.Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.v = v
        self.register_buffer("weight", weight)
        if v.dynamic:
            self.register_buffer("weight_scale", scale.to(v.dtype))
            return
        k = weight.shape[0]
        self.register_buffer("input_scale", torch.full((k,), input_scale).to(v.dtype))
        self.register_buffer("input_scale_reciprocal", (1 / torch.full((k,), input_scale)).to(v.dtype))
        self.register_buffer("input_offset", torch.zeros(k, dtype=v.dtype))
        deq = scale * input_scale
        if v.bf16_scales:
            deq = deq.to(torch.bfloat16).float()
        self.register_buffer("deq_scale", pack_scale(deq) if v.dtype == torch.float16 else deq)
        self.register_buffer("quant_bias", quant_bias)

    @classmethod
    def quantised(cls, v: Variant, weight: torch.Tensor, input_scale: float = 0.02) -> W8A8Linear:
        """nn.Linear's weight [n, k] quantised per output channel, symmetric: scale = max|w| / 127."""
        scale = weight.float().abs().amax(dim=1).clamp(min=1e-8) / 127
        q = (weight.float() / scale[:, None]).round().clamp(-128, 127).to(torch.int8)
        return cls(v, q.t().contiguous(), scale, input_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
        if self.v.dynamic:
            q, token_scale = torch.ops.npu.npu_dynamic_quant(rows)
            y = torch.ops.npu.npu_quant_matmul(q, self.weight, self.weight_scale, pertoken_scale=token_scale,
                                               output_dtype=self.v.dtype)  # fmt: skip
        else:
            q = torch.ops.vllm.quantize(rows, self.input_scale, self.input_scale_reciprocal, self.input_offset)
            y = torch.ops.npu.npu_quant_matmul(q, self.weight, self.deq_scale, bias=self.quant_bias,
                                               output_dtype=self.v.dtype)  # fmt: skip
        return y.view(*x.shape[:-1], y.shape[-1]) if x.dim() != 2 else y


def row_parallel_shard(v: Variant, rank: int, k: int, n: int, g: torch.Generator) -> W8A8Linear:
    """One rank's shard of a row-parallel W8A8 linear with random int8 weights: k / W input
    features, all n outputs (the static quant_bias, when the variant has one, on rank 0 only)."""
    weight = torch.randint(-128, 128, (n, k), generator=g, dtype=torch.int8).t().contiguous()
    scale = torch.rand(n, generator=g) * 6e-3 + 2e-3
    bias = torch.randint(-5000, 5000, (n,), generator=g, dtype=torch.int32)
    return W8A8Linear(v, weight, scale, quant_bias=bias if v.bias and rank == 0 and not v.dynamic else None)


class Block(nn.Module):
    """The residual add and RMSNorm, then the row-parallel linear and its all-reduce."""

    def __init__(self, v: Variant, rank: int, world_size: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed * 1000 + rank)
        self.register_buffer("gamma", (torch.rand(HIDDEN, generator=g) + 0.5).to(v.dtype))
        self.o_proj = row_parallel_shard(v, rank, HIDDEN, HIDDEN, g)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, _, residual = torch.ops.npu.npu_add_rms_norm(hidden, residual, self.gamma, 1e-6)
        return torch.ops.vllm.all_reduce(self.o_proj(x), dist.group.WORLD.group_name), residual


def example_inputs(v: Variant, seed: int = 0, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 7919 + rank)
    return tuple(torch.randn(TOKENS, HIDDEN, generator=g).to(v.dtype) for _ in range(2))  # type: ignore[return-value]
