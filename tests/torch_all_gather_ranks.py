"""What the ranks of test_torch_all_gather.py run (spawned by `torch_ranks.run_ranks`): the
custom op torch.ops.qmmar.all_gather_quant_matmul on this rank's operands, made from a seed."""

from __future__ import annotations

import torch
import torch.distributed as dist

from qmmar.frontends.torch import all_gather_op  # noqa: F401  (registers the op, and qmmar.trans_quant_param)

M, K, N = 3, 256, 8


def operands(rank: int, seed: int, out: torch.dtype, pertoken: bool) -> dict[str, torch.Tensor | None]:
    """This rank's x1 and x1_scale; x2 (each rank its own columns); one x2_scale for every rank
    (f32, or packed by qmmar.trans_quant_param for f16 output without a per-token scale)."""
    g = torch.Generator().manual_seed(seed * 100 + rank)
    shared = torch.Generator().manual_seed(seed)
    scale = torch.rand(N, generator=shared) * 3e-3 + 1e-3
    if out == torch.float16 and not pertoken:
        scale = torch.ops.qmmar.trans_quant_param(scale)
    return {
        "x1": torch.randint(-128, 128, (M, K), generator=g, dtype=torch.int8),
        "x2": torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8),  # transposed: [n, k]
        "bias": None,
        "x1_scale": torch.rand(M, 1, generator=g) + 0.5 if pertoken else None,
        "x2_scale": scale,
    }


def call(rank: int, world_size: int, seed: int, cases: list[tuple[torch.dtype, bool]]) -> list[object]:
    """Each case's (output, gather_out), or the error the rule table raised."""
    found: list[object] = []
    for out, pertoken in cases:
        args = operands(rank, seed, out, pertoken)
        try:
            found.append(torch.ops.qmmar.all_gather_quant_matmul(*args.values(), dist.group.WORLD.group_name,
                                                                 world_size, True, out))  # fmt: skip
        except RuntimeError as err:
            found.append(str(err))
    return found
