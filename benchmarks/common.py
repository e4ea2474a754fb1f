"""What every benchmark section shares: medians of wall and CPU time, child processes measured
one by one (wall, CPU, peak RSS), the thread settings a run had, and table printing.

Each measured figure is a median of repeated runs; CPU time (all threads of the process)
stands beside wall time because the machine is shared and noisy: wall time also counts the
time other processes took the cores.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Timing:
    wall: float  # seconds, median
    cpu: float  # seconds of CPU of this process (every thread), median


def timed(fn: Callable[[], object], repeat: int) -> Timing:
    """Medians over `repeat` calls of fn."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus))


@dataclass
class ChildRun:
    wall: float
    cpu: float  # user + system seconds of the child
    peak_rss: int  # bytes
    stdout: str

    def report(self) -> dict:
        """The child's last stdout line, a JSON object."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_child(cmd: Sequence[str], env: dict[str, str] | None = None) -> ChildRun:
    """Run cmd to completion and measure it alone: os.wait4 gives this child's own rusage
    (RUSAGE_CHILDREN would give the largest peak of every child so far).  Linux counts the
    parent's peak RSS at the fork into the child's, so the benchmarks keep the parent small
    and do every heavy thing in children."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{err.read()[-3000:]}")
        return ChildRun(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out.read())


def python_child(script: str, *args: str, python: str = sys.executable) -> ChildRun:
    """Run one of the benchmark scripts beside this file in child mode."""
    return run_child([python, os.path.join(os.path.dirname(__file__), script), "--child", *args])


def median_child(runs: Sequence[ChildRun]) -> ChildRun:
    """Median wall and CPU time, the largest peak RSS, the first run's output."""
    return ChildRun(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.peak_rss for r in runs),
        runs[0].stdout,
    )


def block_torch_if(no_torch: bool) -> None:
    """Make `import torch` fail in this process (call before importing qmmar): the run
    then takes the path a machine without torch takes."""
    if no_torch:
        sys.modules["torch"] = None  # type: ignore[assignment]


def thread_settings() -> dict[str, object]:
    """The thread pools of this process as a run left them (call after the run)."""
    settings: dict[str, object] = {"cpus": len(os.sched_getaffinity(0))}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS"):
        settings[var] = os.environ.get(var, "unset")
    torch = sys.modules.get("torch")
    settings["torch"] = f"{torch.__version__}, {torch.get_num_threads()} threads" if torch else "not loaded"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        settings["BLAS pools"] = "(install threadpoolctl to list them)"
    else:
        pools = [f"{p['internal_api']} {p['num_threads']} threads" for p in threadpool_info()]
        settings["BLAS pools"] = "; ".join(pools)
    return settings


def chain_types(m: int, k: int, n: int, world: int) -> dict[str, str]:
    """The tensor types of an unfused int8-communication chain, [m, k] @ [k, n] on `world` ranks."""
    return {"x": f"tensor<{m}x{k}xi8>", "w": f"tensor<{k}x{n}xi8>", "acc": f"tensor<{m}x{n}xi32>",
            "h": f"tensor<{m}x{n}xbf16>", "s": f"tensor<{n}xbf16>", "q": f"tensor<{m}x{n}xi8>",
            "a2a": f"tensor<{world}x{m // world}x{n}xi8>", "part": f"tensor<{m // world}x{n}xi8>"}  # fmt: skip


def chain_ops(i: int, x: str, w: str, residual: str, t: dict[str, str], world: int) -> list[str]:
    """Chain i, 8 ops: matmul of x and w, dequant (%sc), add of the residual, quant (%s1),
    all-to-all, reduce-sum (%s1, %s2), all-gather, dequant (%s2) into %h<i>."""
    return [
        f"%acc{i} = qmm.matmul {x}, {w} : ({t['x']}, {t['w']}) -> {t['acc']}",
        f"%y{i} = qmm.dequant %acc{i}, %sc : ({t['acc']}, {t['s']}) -> {t['h']}",
        f"%z{i} = qmm.add %y{i}, {residual} : {t['h']}",
        f"%q{i} = qmm.quant %z{i}, %s1 : ({t['h']}, {t['s']}) -> {t['q']}",
        f'%a{i} = qmm.alltoall %q{i} on "tp" world_size = {world} : {t["q"]} -> {t["a2a"]}',
        f"%r{i} = qmm.reducesum %a{i} s1(%s1 : {t['s']}) s2(%s2 : {t['s']}) : {t['a2a']} -> {t['part']}",
        f'%g{i} = qmm.allgather %r{i} on "tp" world_size = {world} : {t["part"]} -> {t["q"]}',
        f"%h{i} = qmm.dequant %g{i}, %s2 : ({t['q']}, {t['s']}) -> {t['h']}",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, numbers right-aligned, text left-aligned."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [[isinstance(c, int | float) for c in row] for row in rows]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row, is_number in zip(cells[1:], numeric, strict=True):
        padded = (c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, is_number, strict=True))
        lines.append("| " + " | ".join(padded) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)
