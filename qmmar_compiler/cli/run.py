"""`qmmar-run`: interpret a program on a group of ranks, with SEMANTICS.md's numerics.

qmmar-run FILE [--world-size W] (--inputs in.npz | --random-inputs SEED) [--output out.npz
          [--output-per-rank]] [--entry main] [--comm auto|threads|mpi]
          [--progress auto|bar|lines|none] [--profile]

Ranks run as threads of this process, or, under `mpiexec`, one rank per process
(`qmmar.cli.run_mpi`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from qmmar.context import qmmar_context
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.mpi import launched_by_mpi
from qmmar.interpreter.npz import NpzMember, open_npz, write_rank_results
from qmmar.interpreter.observe import Watch, profile_table
from qmmar.interpreter.results import RankStats, summary
from qmmar.interpreter.spmd import entry_function, run_spmd
from qmmar.interpreter.values import InputError, for_file, random_args
from qmmar.source import SourceError, read_module

EPILOG = """\
input file (.npz): arg0, arg1, ... for the entry function's arguments, each either with the
argument's shape (the same on every rank) or with (world_size,) + shape (one slice per
rank). bf16 arguments may be float32 (rounded to nearest even) or uint16 raw bits.
output file (.npz): result0, result1, ... of shape (world_size,) + shape; bf16 as float32.
With --output-per-rank, OUT.rank<r>.npz instead: rank r's result0, result1, ... alone.
--random-inputs: integer arguments differ per rank, float arguments are replicated (1-D
floats are scale-like, others standard normal), int64/uint64 are packed dequant scales.
many processes: under mpiexec (`mpiexec -n W qmmar-run FILE ...`, or --comm mpi) each
process is one rank and reads only its own slice of the inputs; rank 0 writes the output
and prints; --world-size may be left out. Needs `pip install 'qmmar[mpi]'`.
progress: rank 0 shows its progress through the ops on stderr: a bar on a terminal, a line
per op otherwise; `auto` (the default) only once a run has lasted 2 s.
--profile: a table of seconds (compute, collectives) and peak memory per op and per rank.
exit codes: 0 success, 1 bad input or a run-time error (one line on stderr), 2 bad usage,
130 interrupted (Ctrl-C ends every rank)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmmar-run",
        description="Run an MLIR program of qmm/mc2 ops on a group of ranks (SPMD) on the "
        "CPU, bit-exact with aclnnQuantMatmulAllReduceV3's numerics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="the MLIR program")
    p.add_argument("--world-size", "-w", type=int, help="number of ranks (under mpiexec: the number of processes)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--inputs", "-i", metavar="IN.npz", help="argument values")
    source.add_argument("--random-inputs", metavar="SEED", type=int, help="random arguments")
    p.add_argument("--output", "-o", metavar="OUT.npz", help="where to write the results")
    p.add_argument("--output-per-rank", action="store_true", help="write OUT.rank<r>.npz, one file per rank")
    p.add_argument("--entry", default="main", help="the function to run (default: main)")
    p.add_argument("--comm", choices=("auto", "threads", "mpi"), default="auto",
                   help="ranks as threads, or as MPI processes (default: MPI when started by mpiexec)")  # fmt: skip
    p.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                   help="progress per op on stderr (default: auto, after 2 s)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="print time and peak memory per op and per rank")
    return p


def load_inputs(path: str) -> list[NpzMember]:
    """The arguments in an .npz file, each read when (and as far as) a rank needs it."""
    members = open_npz(path)
    count = len(members)
    if set(members) != {f"arg{i}" for i in range(count)}:
        raise InputError(f"{path}: expected arrays arg0..arg{count - 1}, found {sorted(members)}")
    return [members[f"arg{i}"] for i in range(count)]


def error_line(err: Exception) -> str:
    """The one line a user reads for a failure."""
    if isinstance(err, SourceError):
        return str(err)
    if isinstance(err, OSError):
        return f"qmmar-run: error: cannot write {err.filename or 'the output'}: {err.strerror or err}"
    return f"qmmar-run: error: {err}"


@contextmanager
def interrupt_ends_the_run(say: bool) -> Iterator[None]:
    """Ctrl-C ends the process at once, every rank with it (threads die with the process;
    mpiexec forwards the signal to every process and ends those still running)."""

    def interrupted(signum, frame) -> None:
        if say:
            os.write(2, b"qmmar-run: interrupted\n")
        os._exit(130)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.output_per_rank and args.output is None:
        parser.error("--output-per-rank needs --output")
    if args.comm == "mpi" or (args.comm == "auto" and launched_by_mpi()):
        from qmmar.cli.run_mpi import main_mpi

        return main_mpi(args)
    if args.world_size is None:
        parser.error("--world-size is required when ranks run as threads (it is optional under mpiexec)")
    with interrupt_ends_the_run(say=True):
        return _main_threads(args)


def _main_threads(args: argparse.Namespace) -> int:
    try:
        module = read_module(qmmar_context(), args.file)
        fn = entry_function(module, args.entry)
        if args.inputs is not None:
            inputs: Sequence[np.ndarray | NpzMember] = load_inputs(args.inputs)
        else:
            inputs = random_args(fn.function_type.inputs.data, args.world_size, args.random_inputs)
        watch = Watch(fn, args.progress, args.profile)
        try:
            start = time.perf_counter()
            results = run_spmd(module, inputs, args.world_size, args.entry, watch)  # type: ignore[arg-type]
            seconds = time.perf_counter() - start
        finally:
            watch.close()
        if args.output is not None and args.output_per_rank:
            for rank in range(args.world_size):
                write_rank_results(args.output, rank, [r[rank] for r in results])
        elif args.output is not None:
            np.savez(args.output, **{f"result{i}": for_file(r) for i, r in enumerate(results)})
    except (SourceError, InputError, RunError, OSError) as err:
        print(error_line(err), file=sys.stderr)
        return 1
    stats = [[RankStats.of(r[rank]) for r in results] for rank in range(args.world_size)]
    print(summary(stats, seconds, args.entry))
    if args.profile:
        peak = watch.peak_bytes() or 0
        print(profile_table(watch.records, dict.fromkeys(range(args.world_size), peak), ranks_are_processes=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
