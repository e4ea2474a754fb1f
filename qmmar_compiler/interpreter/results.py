"""The summary `qmmar-run` prints, built from small per-rank statistics.

Each rank reduces each of its results to a `RankStats` (a digest of its bytes, min, max, sum,
counts); the summary combines them.  Ranks run as threads or as MPI processes give the same
statistics, and an MPI run moves only these few numbers to rank 0 to print the summary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qmmar.dialects.diagnostics import ranks

STATS_BLOCK = 1 << 20
"""How many elements of a result `RankStats.of` takes at a time (8 MiB of float64)."""


@dataclass(frozen=True)
class RankStats:
    """One result on one rank."""

    dtype: str
    shape: tuple[int, ...]
    digest: bytes  # of the bytes: ranks whose digests match hold the same bits
    min: float  # of the finite values; NaN when there is none
    max: float
    total: float  # the sum of the finite values
    count: int  # finite values
    nonfinite: int

    @classmethod
    def of(cls, x: np.ndarray) -> RankStats:
        """x's statistics, STATS_BLOCK elements at a time: its float64 image whole would take
        8 bytes an element, and the finite values as many again (a [2048, 4096] bf16 result:
        128 MiB beside its 16)."""
        flat = np.ascontiguousarray(x).reshape(-1)
        lo, hi, total, count = np.inf, -np.inf, 0.0, 0
        for start in range(0, flat.size, STATS_BLOCK):
            values = flat[start : start + STATS_BLOCK].astype(np.float64)
            finite = values[np.isfinite(values)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
                total, count = total + float(finite.sum()), count + finite.size
        return cls(
            dtype=str(x.dtype), shape=tuple(x.shape),
            digest=hashlib.blake2b(flat.view(np.uint8).data, digest_size=16).digest(),
            min=lo if count else float("nan"), max=hi if count else float("nan"),
            total=total, count=count, nonfinite=flat.size - count,
        )  # fmt: skip


def mismatch(stats: Sequence[Sequence[RankStats]]) -> str | None:
    """What differs between the ranks' results other than values (stats[rank][i]), or None."""
    first = [(s.dtype, s.shape) for s in stats[0]]
    for rank, mine in enumerate(stats):
        if [(s.dtype, s.shape) for s in mine] != first:
            theirs = [(s.dtype, list(s.shape)) for s in mine]
            return f"ranks 0 and {rank} return different results: {[(d, list(s)) for d, s in first]} and {theirs}"
    return None


def summary(stats: Sequence[Sequence[RankStats]], seconds: float, entry: str) -> str:
    """stats[rank][i]: result i on each rank."""
    world_size, count = len(stats), len(stats[0])
    lines = [f"@{entry} on {ranks(world_size)}: {count} result(s) in {seconds * 1e3:.1f} ms"]
    for i in range(count):
        per_rank = [mine[i] for mine in stats]
        first = per_rank[0]
        same = all(s.digest == first.digest for s in per_rank)
        finite = sum(s.count for s in per_rank)
        lo, hi = np.fmin.reduce([s.min for s in per_rank]), np.fmax.reduce([s.max for s in per_rank])
        nonfinite = sum(s.nonfinite for s in per_rank)
        if finite:
            values = (
                f"min {lo:.6g} max {hi:.6g} mean {sum(s.total for s in per_rank) / finite:.6g}; non-finite {nonfinite}"
            )
        else:
            values = f"no finite value; non-finite {nonfinite}" if nonfinite else "no elements"
        identical = "yes" if same else "no"
        lines.append(f"result{i}: {first.dtype} {list(first.shape)} per rank; ranks identical: {identical}; {values}")
    return "\n".join(lines)
