"""torch.compile(backend="qmmar") on the CPU: compile time and run time of the tensor-parallel decoder
block of examples/torch, against the model run eagerly and compiled by stock Inductor.

    python benchmarks/torch_compile.py [--world-size 2 4] [--rows 2x16 8x256] [--repeats 20] [--cold]

W processes in one gloo group (examples/torch/ranks.py).  "first call" is the first call of the
compiled model (Dynamo, AOTAutograd, qmmar's import, fusion and rewrite, the inner compiler);
"per call" the median of the calls after it, each started together on every rank (a barrier),
timed on rank 0.  --cold turns Inductor's on-disk graph cache off (a first compile on a fresh
machine); without it, a graph Inductor compiled before comes from the cache.  On the CPU the
fused op is qmmar's exact numpy implementation plus gloo's all-gather, not a kernel: the run
times say what the CPU path costs, not what MC2 gains on an NPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "torch"))
import tp_decoder  # noqa: E402
from ranks import run_ranks  # noqa: E402

WAYS = ("eager", "qmmar, inner=eager", "qmmar, inner=inductor", "inductor")


def threads(world_size: int) -> int:
    return max(1, (os.cpu_count() or 1) // world_size)


def _compiled(way: str, model: torch.nn.Module):
    if way == "eager":
        return model
    if way == "inductor":
        return torch.compile(model, backend="inductor")
    return torch.compile(model, backend="qmmar", options={"inner": way.removeprefix("qmmar, inner=")})


def _timed(fn, *args) -> float:
    dist.barrier()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(rank: int, world_size: int, variant: str, rows: tuple[int, int], repeats: int, cold: bool):
    """{way: (first call s, median per-call s)} on this rank."""
    torch._inductor.config.fx_graph_cache = not cold
    torch.set_num_threads(threads(world_size))  # the ranks share the machine's cores
    model = tp_decoder.build(variant, rank, world_size)
    v = tp_decoder.VARIANTS[variant]
    hidden = torch.randn(*rows, tp_decoder.HIDDEN, generator=torch.Generator().manual_seed(0)).to(v.dtype)
    found = {}
    with torch.no_grad():
        for way in WAYS:
            torch._dynamo.reset()
            fn = _compiled(way, model)
            first = _timed(fn, hidden)
            found[way] = (first, statistics.median(_timed(fn, hidden) for _ in range(repeats)))
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-size", type=int, nargs="+", default=[2, 4])
    p.add_argument("--rows", nargs="+", default=["2x16", "8x256"], help="batch x sequence length")
    p.add_argument("--variant", choices=sorted(tp_decoder.VARIANTS), default="bf16-static")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--cold", action="store_true", help="without Inductor's on-disk graph cache")
    args = p.parse_args()
    cache = "off" if args.cold else "on"
    print(f"{args.variant} decoder block (hidden {tp_decoder.HIDDEN}, ffn {tp_decoder.FFN}); medians of {args.repeats} "
          f"calls on rank 0; Inductor cache {cache}; {os.cpu_count()} cores, cores // W threads a rank")  # fmt: skip
    print("|  W |    m | way                    | first call s | per call ms | vs eager |")
    print("|----|------|------------------------|--------------|-------------|----------|")
    for world_size in args.world_size:
        for text in args.rows:
            b, s = (int(d) for d in text.split("x"))
            found = run_ranks(measure, world_size, args.variant, (b, s), args.repeats, args.cold, timeout=3600)[0]
            eager = found["eager"][1]
            for way, (first, per_call) in found.items():
                print(f"| {world_size:2} | {b * s:4} | {way:22} | {first:12.2f} | {per_call * 1e3:11.2f} | "
                      f"{per_call / eager:7.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
