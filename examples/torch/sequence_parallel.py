"""A two-layer sequence-parallel block, W8A8, in plain PyTorch (Megatron-style sequence
parallelism: the row-parallel layer's all-reduce split into a reduce-scatter, the next
column-parallel layer starting with an all-gather), on one rank of W:

    row-parallel:    q, t = quant_per_token(x)                  x [S, 256]: this rank's features
                     y = dequant(_int_mm(q, w_row), t)          [S, HIDDEN], a partial sum
                     h = reduce_scatter_tensor(y, "sum")        [S / W, HIDDEN]: this rank's rows
    column-parallel: q2, t2 = quant_per_token(h)
                     g, gt = all_gather_into_tensor(q2), all_gather_into_tensor(t2)   int8 [S, HIDDEN], f32 [S]
                     out = dequant(_int_mm(g, w_col), gt)       [S, COLUMNS]: this rank's columns

qmmar fuses the first chain into mc2.quant_matmul_reduce_scatter (aclnnMatmulReduceScatterV2)
and the second into mc2.all_gather_quant_matmul (aclnnAllGatherMatmulV2); under torch.compile
(backend="qmmar") each becomes its custom op, torch.ops.qmmar.quant_matmul_reduce_scatter and
torch.ops.qmmar.all_gather_quant_matmul.  Every rank holds 256 of the inner features (k of the
reduce-scatter's matmul must be at least 256) and ROWS of the sequence's rows.

    python examples/torch/sequence_parallel.py [--world-size 4] [--export build/sp-w4.pt2]
                                               [--inner eager] [--report sp.json]

compiles the block on W CPU processes (a gloo group on localhost), prints qmmar's verdicts and
compares each rank's output with the block run eagerly; --export also writes rank 0's program
(torch.export, under PyTorch's fake process group) for
`qmmar-import build/sp-w4.pt2 -o sp.mlir -w 4` then `qmmar-opt sp.mlir -p 'fuse-mc2{remarks=all}'`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ranks import ContractSums, compile_on_ranks  # noqa: E402
from tp_decoder import quant_per_token  # noqa: E402

c10d = torch.ops._c10d_functional
"""PyTorch's functional collectives as funcol's
reduce_scatter_tensor and all_gather_tensor call them, awaited at once."""

SHARD, HIDDEN, COLUMNS, ROWS = 256, 256, 128, 8
"""Each rank's inner features (the row-parallel k), the hidden size (the column-parallel k),
each rank's output columns, and each rank's rows of the sequence."""
DTYPE = torch.bfloat16


class Int8Linear(nn.Module):
    """y = dequant(x @ w) with a per-token activation scale computed at run time and an f32
    per-channel weight scale (the scale both MC2 operators take)."""

    def __init__(self, g: torch.Generator, k: int, n: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randint(-128, 128, (k, n), generator=g, dtype=torch.int8))
        self.register_buffer("w_scale", torch.rand(n, generator=g) * 6e-3 + 2e-3)

    def matmul(self, q: torch.Tensor, token_scale: torch.Tensor) -> torch.Tensor:
        acc = torch._int_mm(q, self.weight)
        return (acc.float() * self.w_scale * token_scale[:, None]).to(DTYPE)


class SequenceParallelBlock(nn.Module):
    """One rank's shard: the row-parallel layer's SHARD inner features, the column-parallel
    layer's COLUMNS output columns."""

    def __init__(self, rank: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed * 1000 + rank)
        self.row = Int8Linear(g, SHARD, HIDDEN)
        self.col = Int8Linear(g, HIDDEN, COLUMNS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        group, w = dist.group.WORLD.group_name, dist.get_world_size()
        y = self.row.matmul(*quant_per_token(x))
        h = c10d.wait_tensor(c10d.reduce_scatter_tensor(y, "sum", w, group))  # this rank's rows of the sum
        q, token_scale = quant_per_token(h)
        gathered = c10d.wait_tensor(c10d.all_gather_into_tensor(q, w, group))  # the sequence's rows, int8
        gathered_scale = c10d.wait_tensor(c10d.all_gather_into_tensor(token_scale, w, group))
        return self.col.matmul(gathered, gathered_scale)


def build(rank: int, seed: int = 0) -> SequenceParallelBlock:
    return SequenceParallelBlock(rank, seed).eval()


def example_inputs(world_size: int, seed: int = 0, rank: int = 0) -> tuple[torch.Tensor]:
    """This rank's activation: the sequence's ROWS * W rows, its own SHARD features."""
    g = torch.Generator().manual_seed(seed * 1000 + 100 + rank)
    return (torch.randn(ROWS * world_size, SHARD, generator=g).to(DTYPE),)


def export(world_size: int, rank: int = 0, seed: int = 0) -> torch.export.ExportedProgram:
    """Rank `rank`'s program on PyTorch's fake process group of `world_size` ranks: the
    collectives are recorded, not run."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(build(rank, seed), example_inputs(world_size, seed, rank))
    finally:
        dist.destroy_process_group()


def rank_main(rank: int, world_size: int, seed: int, options: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's shard, compiled with backend="qmmar": (its output, its output eagerly, with
    the contract's sums)."""
    model = build(rank, seed)
    compiled = torch.compile(model, backend="qmmar", options=options)  # found by its entry point
    inputs = example_inputs(world_size, seed, rank)
    with torch.no_grad():
        out = compiled(*inputs)
        with ContractSums():
            return out, model(*inputs)


def main() -> None:
    p = argparse.ArgumentParser(
        description='A two-layer sequence-parallel W8A8 block, compiled with torch.compile(backend="qmmar")\n'
        "on W gloo processes (each chain one custom op), every rank's output compared with eager's.",
        epilog="--export writes rank 0's program, which fuses from the command line:\n"
        "  qmmar-import PT2 -o sp.mlir -w W\n  qmmar-opt sp.mlir -p 'fuse-mc2{remarks=all}'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--world-size", type=int, choices=(2, 4, 8), default=4, help="W, the ranks (default: 4)")
    p.add_argument("--export", metavar="PT2", help="also write rank 0's exported program here")
    p.add_argument("--inner", choices=("inductor", "eager"), default="eager",
                   help="what compiles the rest of the graph (default: eager)")  # fmt: skip
    p.add_argument("--report", help="keep qmmar's JSON report here")
    args = p.parse_args()
    if args.export:
        torch.export.save(export(args.world_size), args.export)
        print(f"{args.export}: rank 0 of {args.world_size}, exported")
    ranks = compile_on_ranks(rank_main, args.world_size, 0, inner=args.inner, report=args.report)
    out = ranks[0][0]
    same = all(torch.equal(o, e) for o, e in ranks)
    print(f"{args.world_size} ranks, inner={args.inner}: output {list(out.shape)} "
          f"{str(out.dtype).removeprefix('torch.')} on each rank; the same as eager on every rank: "
          f"{'yes' if same else 'no'}")  # fmt: skip


if __name__ == "__main__":
    main()
