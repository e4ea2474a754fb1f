"""A small tensor-parallel decoder block, W8A8, written in plain PyTorch as vLLM-Ascend-style
code writes it: one rank's shard of every weight, RMSNorm and residuals around attention and
the MLP, and the two row-parallel linears (attention output projection, MLP down projection)
followed by an all-reduce over the tensor-parallel group.

Variants (`VARIANTS`): bf16 or f16, static or dynamic (per-token) activation scales, and a
layer that writes its int8 communication by hand (quant, all-to-all, sum, requant,
all-gather, dequant).  bf16 variants call `torch._int_mm` and torch.distributed's all-reduce;
f16 variants call torch_npu's `npu_quant_matmul` and vLLM's `all_reduce` custom op
(qmmar.frontends.torch.standins defines both for the CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as fc
import torch.nn.functional as F
from torch import nn

HIDDEN, HEADS, FFN, EPS = 128, 8, 256, 1e-6
BATCH, SEQ = 2, 16


@dataclass(frozen=True)
class Variant:
    dtype: torch.dtype
    dynamic: bool  # per-token activation scales computed at run time (else static scales)
    down_scale: torch.dtype  # the MLP down projection's dequant scale dtype
    int8_comm: bool = False  # the int8-communication layer instead of the decoder block


VARIANTS = {
    # the down projection keeps the f32 scale a quantiser exports: not what MC2 takes for bf16
    "bf16-dynamic": Variant(torch.bfloat16, True, torch.float32),
    "bf16-static": Variant(torch.bfloat16, False, torch.bfloat16),
    "f16-dynamic": Variant(torch.float16, True, torch.float32),
    "f16-static": Variant(torch.float16, False, torch.int64),
    "int8-comm": Variant(torch.bfloat16, False, torch.bfloat16, int8_comm=True),
}


def _uniform(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return torch.rand(shape, generator=g) * (hi - lo) + lo


def pack_scale(scale: torch.Tensor) -> torch.Tensor:
    """An f32 scale packed as aclnnTransQuantParamV2 (round mode 0) does: int64."""
    bits = scale.view(torch.int32).to(torch.int64) & 0xFFFFE000
    return bits | (1 << 46)


def quant_static(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int8 with a static per-channel scale, through f16 as the Ascend kernels do."""
    return (x.float() / scale.float()).half().round().clamp(-128, 127).to(torch.int8)


def quant_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 with a per-token scale computed at run time: (q [m, k], scale [m] f32)."""
    scale = x.abs().amax(dim=-1).float().clamp(min=1e-5) / 127
    return (x.float() / scale[:, None]).round().clamp(-128, 127).to(torch.int8), scale


class RMSNorm(nn.Module):
    def __init__(self, dim: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
        return (h * self.weight.float()).to(x.dtype)


class W8A8Linear(nn.Module):
    """y = x @ w, int8 x int8 -> int32, dequantised to the model's dtype.  `k`, `n` are this
    rank's shard; `scale_dtype` is the dequant scale's (int64: packed for npu_quant_matmul)."""

    def __init__(self, g: torch.Generator, k: int, n: int, v: Variant, scale_dtype: torch.dtype) -> None:
        super().__init__()
        self.v, self.npu = v, v.dtype == torch.float16
        # torch_npu keeps weights as [n, k] and passes their transpose
        shape = (n, k) if self.npu else (k, n)
        self.register_buffer("weight", torch.randint(-128, 128, shape, generator=g, dtype=torch.int8))
        w_scale = _uniform(g, (n,), 2e-3, 8e-3)
        if v.dynamic:
            self.register_buffer("w_scale", w_scale.to(scale_dtype))
        else:
            self.register_buffer("act_scale", torch.full((k,), 0.02).to(v.dtype))
            deq = w_scale * 0.02
            self.register_buffer("deq_scale", pack_scale(deq) if scale_dtype == torch.int64 else deq.to(scale_dtype))

    def quantise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return quant_per_token(x) if self.v.dynamic else (quant_static(x, self.act_scale), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, token_scale = self.quantise(x)
        scale = self.w_scale if self.v.dynamic else self.deq_scale
        if self.npu:
            return torch.ops.npu.npu_quant_matmul(q, self.weight.t(), scale, pertoken_scale=token_scale,
                                                  output_dtype=self.v.dtype)  # fmt: skip
        acc = torch._int_mm(q, self.weight)
        if token_scale is None:
            return (acc.float() * scale).to(self.v.dtype)
        return (acc.float() * scale * token_scale[:, None]).to(self.v.dtype)


class DecoderBlock(nn.Module):
    """One rank's shard of a decoder block: heads and FFN columns split over `world_size`."""

    def __init__(self, v: Variant, rank: int, world_size: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed * 1000 + rank)
        self.heads, self.ffn = HEADS // world_size, FFN // world_size
        self.vllm = v.dtype == torch.float16  # the f16 variants are written as vLLM-Ascend writes them
        head_dim = HIDDEN // HEADS
        self.input_norm = RMSNorm(HIDDEN, v.dtype)
        self.qkv_proj = W8A8Linear(g, HIDDEN, 3 * self.heads * head_dim, v, _mc2_scale_dtype(v))
        self.o_proj = W8A8Linear(g, self.heads * head_dim, HIDDEN, v, _mc2_scale_dtype(v))
        self.post_norm = RMSNorm(HIDDEN, v.dtype)
        self.gate_up_proj = W8A8Linear(g, HIDDEN, 2 * self.ffn, v, _mc2_scale_dtype(v))
        self.down_proj = W8A8Linear(g, self.ffn, HIDDEN, v, v.down_scale)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        b, s, _ = hidden.shape
        x = hidden.view(b * s, HIDDEN)
        q, k, v = self.qkv_proj(self.input_norm(x)).view(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        attn = attn.transpose(1, 2).reshape(b * s, -1)
        o = self.o_proj(attn)
        if self.vllm:  # vLLM-Ascend's form: a custom op over the group's name
            o = torch.ops.vllm.all_reduce(o, dist.group.WORLD.group_name)
        else:
            dist.all_reduce(o)  # in place: exported as the functional all-reduce and a copy
        x = x + o
        gate, up = self.gate_up_proj(self.post_norm(x)).chunk(2, dim=-1)
        down = self.down_proj(F.silu(gate) * up)
        x = x + fc.all_reduce(down, "sum", dist.group.WORLD)
        return x.view(b, s, HIDDEN)


def _mc2_scale_dtype(v: Variant) -> torch.dtype:
    """The scale dtype MC2 takes: bf16 for bf16 output; for f16 output, f32 with per-token
    scales (dynamic) or a packed int64 (static)."""
    if v.dtype == torch.bfloat16:
        return torch.bfloat16
    return torch.float32 if v.dynamic else torch.int64


class Int8CommLayer(nn.Module):
    """A row-parallel linear whose all-reduce is written by hand with int8 communication:
    z = dequant(x @ w) + residual, quantised by s1 through f16, exchanged all-to-all, summed,
    requantised by s1 / s2, gathered and dequantised by s2 (aclnnQuantMatmulAllReduceV3)."""

    def __init__(self, v: Variant, rank: int, world_size: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed * 1000 + rank)
        self.world_size = world_size
        self.proj = W8A8Linear(g, FFN // world_size, HIDDEN, v, torch.bfloat16)
        shared = torch.Generator().manual_seed(seed)  # the communication scales agree on every rank
        self.register_buffer("s1", _uniform(shared, (HIDDEN,), 0.05, 0.1).to(v.dtype))
        self.register_buffer("s2", _uniform(shared, (HIDDEN,), 0.1, 0.2).to(v.dtype))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        z = self.proj(x) + residual
        q = (z.float() / self.s1.float()).half().round().clamp(-128, 127).to(torch.int8)
        parts = fc.all_to_all_single(q, None, None, dist.group.WORLD).view(self.world_size, -1, HIDDEN)
        total = parts.float().sum(0)
        t = (total * (self.s1.float() / self.s2.float())).half().round().clamp(-128, 127).to(torch.int8)
        gathered = fc.all_gather_tensor(t, 0, dist.group.WORLD)
        return (gathered.float() * self.s2.float()).to(z.dtype)


def build(name: str, rank: int, world_size: int, seed: int = 0) -> nn.Module:
    v = VARIANTS[name]
    return (Int8CommLayer if v.int8_comm else DecoderBlock)(v, rank, world_size, seed).eval()


def example_inputs(name: str, world_size: int, seed: int = 0, rank: int = 0) -> tuple[torch.Tensor, ...]:
    """The block's input (the same on every rank) or the int8 layer's (x and its residual
    share, different on every rank)."""
    v = VARIANTS[name]
    if v.int8_comm:
        g = torch.Generator().manual_seed(seed * 1000 + 100 + rank)
        m = BATCH * SEQ
        return (torch.randn(m, FFN // world_size, generator=g).to(v.dtype),
                torch.randn(m, HIDDEN, generator=g).to(v.dtype))  # fmt: skip
    g = torch.Generator().manual_seed(seed * 1000 + 100)
    return (torch.randn(BATCH, SEQ, HIDDEN, generator=g).to(v.dtype),)
