"""torch.compile(backend="qmmar") on the CPU: compile time and run time of the tensor-parallel decoder
block of examples/torch, against the model run eagerly and compiled by stock Inductor.

    python benchmarks/torch_compile.py [--world-size 2 4] [--rows 8x256] [--repeats 20] [--cold]

W processes in one gloo group (examples/torch/ranks.py).  "first call" is the first call of the
compiled model (Dynamo, AOTAutograd, qmmar's import, fusion and rewrite, the inner compiler),
"again" the same after torch._dynamo.reset() (what every cache holds is warm); "per call" the
median of the calls after that, each started together on every rank (a barrier), timed on rank
0, the ways taking turns call by call (so that a change in the machine's load weighs on every
way alike).  --cold gives each way an empty Inductor cache directory and empty in-memory caches
(`torch._inductor.utils.fresh_cache`: "first call" is a first compile on a fresh machine, "again"
is served by AOTAutograd's and Inductor's caches), after one compile of a trivial function (the
process's own start: imports, compile workers); without it, a graph compiled by an earlier run
comes from the default cache.  On the CPU the fused op is qmmar's exact numerics (on torch's
kernels, `interpreter/numerics_torch.py`) plus gloo's all-to-alls (the sum's shares, then the
summed shares), not a kernel: the run times say what the CPU path costs, not what MC2 gains on
an NPU.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch._inductor.utils import fresh_cache

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "torch"))
import tp_decoder  # noqa: E402
from common import table  # noqa: E402
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


@dataclass(frozen=True)
class Way:
    """One way of running the model, on rank 0: seconds, wall and CPU (every thread of the process)."""

    first: tuple[float, float]  # the first call: Dynamo, AOTAutograd, qmmar, the inner compiler
    again: tuple[float, float]  # the first call again after torch._dynamo.reset(): the caches warm
    per_call: tuple[float, float]  # medians of the calls after it
    digest: str  # of the output's bytes: the same before and after a change that keeps every bit


def _timed(fn, *args) -> tuple[float, float]:
    dist.barrier()
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def _median(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def measure(rank: int, world_size: int, variant: str, rows: tuple[int, int], repeats: int, cold: bool):
    """{way: Way} on this rank."""
    torch.set_num_threads(threads(world_size))  # the ranks share the machine's cores
    model = tp_decoder.build(variant, rank, world_size)
    v = tp_decoder.VARIANTS[variant]
    hidden = torch.randn(*rows, tp_decoder.HIDDEN, generator=torch.Generator().manual_seed(0)).to(v.dtype)
    compiles = {}
    with torch.no_grad():
        if cold:  # the process's start is no way's first call
            with fresh_cache():
                torch.compile(lambda x: x * 2)(hidden)
        for way in WAYS:
            with fresh_cache() if cold else contextlib.nullcontext():
                compiles[way] = _first_calls(way, model, hidden)
        torch._dynamo.reset()  # each way compiled once more, beside the others (served by the caches)
        fns = {way: _compiled(way, model) for way in WAYS}
        outputs = {way: fn(hidden).contiguous().view(torch.uint8).numpy().tobytes() for way, fn in fns.items()}
        calls: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
        for _ in range(repeats):
            for way, fn in fns.items():
                calls[way].append(_timed(fn, hidden))
    return {way: Way(*compiles[way], _median(calls[way]), hashlib.blake2b(outputs[way], digest_size=6).hexdigest())
            for way in WAYS}  # fmt: skip


def _first_calls(way: str, model: torch.nn.Module, hidden: torch.Tensor) -> tuple[tuple[float, float], ...]:
    """The first call, and the first call again after torch._dynamo.reset()."""
    torch._dynamo.reset()
    first = _timed(_compiled(way, model), hidden)
    torch._dynamo.reset()
    return first, _timed(_compiled(way, model), hidden)


def goals(found: dict[tuple[int, int], dict[str, Way]], cold: bool) -> list[tuple[str, str, str, str]]:
    """Issue 20's goals at m = 2048: (what, figure as wall (CPU), target, met: on wall time)."""
    rows = []

    def row(what: str, a: tuple[float, float], b: tuple[float, float], target: float | None) -> None:
        wall, cpu = a[0] / b[0], a[1] / b[1]
        met = "-" if target is None else "yes" if wall <= target else "no"
        rows.append((what, f"{wall:.2f}x ({cpu:.2f}x)", "-" if target is None else f"<= {target}x", met))

    for (w, m), ways in found.items():
        if m != 2048:
            continue
        eager, inductor = ways["eager"], ways["inductor"]
        for way, target in (("qmmar, inner=inductor", 1.0), ("qmmar, inner=eager", 1.1)):
            row(f"W={w}: {way} per call / eager", ways[way].per_call, eager.per_call, target)
        qmmar = ways["qmmar, inner=inductor"]
        row(f"W={w}: first call / stock Inductor's, {'cold' if cold else 'this run'}", qmmar.first, inductor.first,
            2.0 if cold else None)  # fmt: skip
        row(f"W={w}: first call after reset / stock Inductor's (warm cache)", qmmar.again, inductor.again, 1.5)
    return rows


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-size", type=int, nargs="+", default=[2, 4])
    p.add_argument("--rows", nargs="+", default=["8x256"], help="batch x sequence length")
    p.add_argument("--variant", choices=sorted(tp_decoder.VARIANTS), default="bf16-static")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--cold", action="store_true", help="each way from empty Inductor caches")
    args = p.parse_args()
    cache = "cold (empty, each way)" if args.cold else "as earlier runs left it"
    print(f"{args.variant} decoder block (hidden {tp_decoder.HIDDEN}, ffn {tp_decoder.FFN}); medians of {args.repeats} "
          f"calls on rank 0; Inductor cache {cache}; {os.cpu_count()} cores, cores // W threads a rank; "
          f"{load()} at the start")  # fmt: skip
    rows, found = [], {}
    for world_size in args.world_size:
        for text in args.rows:
            b, s = (int(d) for d in text.split("x"))
            ways = run_ranks(measure, world_size, args.variant, (b, s), args.repeats, args.cold, timeout=3600)[0]
            found[world_size, b * s] = ways
            eager = ways["eager"].per_call
            for way, t in ways.items():
                rows.append((world_size, b * s, way, t.first[0], t.first[1], t.again[0], t.again[1],
                             t.per_call[0] * 1e3, t.per_call[1] * 1e3, f"{t.per_call[0] / eager[0]:.2f}x",
                             t.digest))  # fmt: skip
    header = ("W", "m", "way", "first call s", "CPU s", "again s", "CPU s", "per call ms", "CPU ms", "vs eager",
              "output digest")  # fmt: skip
    print(table(header, rows))
    print("\n" + table(("goal", "figure: wall (CPU)", "target", "met (wall)"), goals(found, args.cold)))
    print(f"{load()} at the end; output digest: rank 0's output bytes (compare runs before and after a change)")


if __name__ == "__main__":
    main()
