"""What a run shows while it runs, and what it measures: progress per op and `--profile`.

A `Watch` attaches to each rank an interpreter listener that sees the entry function's ops
start and end, and a communicator that times the collectives, so that an op's time splits
into compute and collective (waiting for the other ranks included).  Rank 0 drives the
progress display: a bar on a terminal, a line per op otherwise; by default (`auto`) it
appears only once a run has lasted `QUIET_SECONDS`, so short runs print nothing extra.
Peak memory is the process's resident set (Linux VmHWM, reset after each reading), sampled
every `SAMPLE_SECONDS` and at every op's start and end: per rank in MPI mode, where a rank
is a process; for the whole process (every rank) when ranks are threads.
"""

from __future__ import annotations

import importlib.util
import re
import resource
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NoReturn

import numpy as np
from xdsl.dialects import func
from xdsl.interpreter import Interpreter, PythonValues
from xdsl.ir import Operation

from qmmar.dialects.diagnostics import written_name
from qmmar.dialects.location import location_text
from qmmar.interpreter.comm import Communicator, Site

if TYPE_CHECKING:
    from tqdm import tqdm  # annotations only: the bar imports tqdm when it is first drawn

QUIET_SECONDS = 2.0
SAMPLE_SECONDS = 0.01
ProgressMode = Literal["auto", "bar", "lines", "none"]


@dataclass(frozen=True)
class OpRecord:
    """One op of the entry function on one rank."""

    index: int  # 1-based, in program order
    op: str
    location: str
    rank: int
    seconds: float
    collective_seconds: float
    peak_bytes: int


class PeakMemory:
    """The process's peak resident memory over intervals of time.

    Each reading takes Linux's high-water mark (VmHWM) and resets it, so a reading is the
    peak since the previous one, short spikes included.  Without /proc, the lifetime peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: list[float] = []  # when each reading was taken, in order
        self._peaks: list[int] = []  # each reading: the peak since the reading before
        self._stop = threading.Event()
        self._resettable = _reset_high_water_mark()
        self.read()
        self._thread = threading.Thread(target=self._sample, name="qmmar-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.read()

    def read(self) -> float:
        """Take a reading; its time."""
        with self._lock:
            peak = high_water_mark()
            if self._resettable:
                _reset_high_water_mark()
            now = time.perf_counter()
            self._times.append(now)
            self._peaks.append(peak)
            return now

    def peak(self, start: float, end: float) -> int:
        """The peak over [start, end], both of them times of readings."""
        with self._lock:
            return max(self._peaks[bisect_right(self._times, start) : bisect_right(self._times, end)], default=0)

    def overall(self) -> int:
        with self._lock:
            return max(self._peaks)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def high_water_mark() -> int:
    """The process's peak resident memory in bytes (VmHWM; getrusage's where /proc has none)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            match = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # 5: reset the peak resident set size, and nothing else
        return True
    except OSError:
        return False


class Progress:
    """Rank 0's progress through the entry function's ops, on stderr."""

    def __init__(self, total: int, mode: ProgressMode) -> None:
        self.total, self.done = total, 0
        # A bar needs tqdm (the `mpi` extra); without it, lines.
        self._bar_wanted = (mode == "bar" or (mode == "auto" and sys.stderr.isatty())) and _has_tqdm()
        self._bar: tqdm[NoReturn] | None = None
        self._current = ""
        self._start = time.perf_counter()
        self._lock = threading.Lock()
        self._shown = mode in ("bar", "lines")
        self._timer = threading.Timer(QUIET_SECONDS, self._show) if mode == "auto" else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        with self._lock:
            self._shown = True
            if self._bar_wanted:
                self._draw()
            else:
                self._line(f"[{self.done + 1}/{self.total}] running {self._current}")

    def _line(self, text: str) -> None:
        print(f"qmmar-run: {text} ({time.perf_counter() - self._start:.1f} s so far)", file=sys.stderr, flush=True)

    def _draw(self) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.done, unit="op", file=sys.stderr, leave=False)
        self._bar.set_description_str(self._current, refresh=False)
        self._bar.n = self.done
        self._bar.refresh()

    def started(self, index: int, what: str) -> None:
        with self._lock:
            self._current = what
            if self._shown and self._bar_wanted:
                self._draw()

    def finished(self, index: int, what: str, seconds: float) -> None:
        with self._lock:
            self.done = index
            if self._shown and self._bar_wanted:
                self._draw()
            elif self._shown:
                self._line(f"[{index}/{self.total}] {what} done in {seconds:.3f} s")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._bar is not None:
                self._bar.close()


class Watch:
    """The observers of one run, shared by the ranks that run in this process."""

    def __init__(self, fn: func.FuncOp, progress: ProgressMode, profile: bool) -> None:
        self._ops = [op for op in fn.body.block.ops if not isinstance(op, func.ReturnOp)]
        self._index = {id(op): i for i, op in enumerate(self._ops, start=1)}
        self._progress = None if progress == "none" else Progress(len(self._ops), progress)
        self._memory = PeakMemory() if profile else None
        self._lock = threading.Lock()
        self.records: list[OpRecord] = []

    def attach(self, rank: int, comm: Communicator) -> tuple[Communicator, tuple[Interpreter.Listener, ...]]:
        """The communicator and listeners of `rank`, watched."""
        watched = _RankWatch(self, rank, comm)
        return watched, (watched,)

    def peak_bytes(self) -> int | None:
        """The process's peak resident memory while watched (None without --profile)."""
        return None if self._memory is None else self._memory.overall()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._memory is not None:
            self._memory.close()


class _RankWatch(Communicator, Interpreter.Listener):
    """One rank's listener, and its communicator with the time in collectives counted."""

    def __init__(self, watch: Watch, rank: int, comm: Communicator) -> None:
        self._watch, self._comm = watch, comm
        self.rank, self.world_size = rank, comm.world_size
        self._start = 0.0
        self._collective = 0.0

    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        start = time.perf_counter()
        try:
            return self._comm.all_gather(x, site)
        finally:
            self._collective += time.perf_counter() - start

    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        start = time.perf_counter()
        try:
            return self._comm.all_to_all(chunks, site)
        finally:
            self._collective += time.perf_counter() - start

    def will_interpret_op(self, op: Operation, args: PythonValues) -> None:
        index = self._watch._index.get(id(op))
        if index is None:
            return
        memory = self._watch._memory
        self._start = memory.read() if memory is not None else time.perf_counter()
        self._collective = 0.0
        if self.rank == 0 and self._watch._progress is not None:
            self._watch._progress.started(index, _describe(op))

    def did_interpret_op(self, op: Operation, results: PythonValues) -> None:
        index = self._watch._index.get(id(op))
        if index is None:
            return
        memory = self._watch._memory
        end = memory.read() if memory is not None else time.perf_counter()
        seconds = end - self._start
        if memory is not None:
            record = OpRecord(index, op.name, location_text(op.location), self.rank, seconds,
                              self._collective, memory.peak(self._start, end))  # fmt: skip
            with self._watch._lock:
                self._watch.records.append(record)
        if self.rank == 0 and self._watch._progress is not None:
            self._watch._progress.finished(index, _describe(op), seconds)


def _describe(op: Operation) -> str:
    return f"'{written_name(op)}' at {location_text(op.location)}"


def profile_table(records: Sequence[OpRecord], peaks: dict[int, int], ranks_are_processes: bool) -> str:
    """Time and peak memory per op and per rank; then each rank's totals, with `peaks[rank]`,
    the peak of the rank's process over the whole run."""
    memory = "the rank's process" if ranks_are_processes else "the process, every rank's thread together"
    title = (
        "profile: seconds per op and rank; compute = time outside collectives; collective = time in "
        f"all_gather/all_to_all, waiting for the other ranks included; peak = resident memory of {memory}"
    )

    def row(
        index: str, op: str, location: str, rank: int, seconds: float, collective: float, peak: int
    ) -> tuple[str, ...]:
        return (index, op, location, str(rank), f"{seconds - collective:.3f}", f"{collective:.3f}",
                f"{peak / 2**20:.1f}")  # fmt: skip

    rows = [row(str(r.index), r.op, r.location, r.rank, r.seconds, r.collective_seconds, r.peak_bytes)
            for r in sorted(records, key=lambda r: (r.index, r.rank))]  # fmt: skip
    for rank in sorted({r.rank for r in records}):
        mine = [r for r in records if r.rank == rank]
        seconds, collective = sum(r.seconds for r in mine), sum(r.collective_seconds for r in mine)
        rows.append(row("all", "(every op)", "", rank, seconds, collective, peaks[rank]))
    header = ("#", "op", "location", "rank", "compute s", "collective s", "peak MiB")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        left = (1, 2)  # op and location; numbers to the right
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([title, line(header), rule, *map(line, rows)])


def _has_tqdm() -> bool:
    return importlib.util.find_spec("tqdm") is not None
