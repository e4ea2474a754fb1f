"""`qmmar-run` under mpiexec: this process is one rank of the run.

Every rank reads the program, and from every input file only its own slice of each
`(world_size,) + shape` array; the shared arrays are read by all.  Each step is taken by
every rank together and fails on all when it fails on one, so that every rank exits with the
same code; rank 0 prints the one line that says why, the summary, the --ideal figures and the
profile, and writes the output.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import InterpreterFunctions

from qmmar.api import ideal_run
from qmmar.cli.common import EXIT_FAILURE, EXIT_USAGE, check_writable
from qmmar.cli.interrupt import EXIT_INTERRUPTED
from qmmar.cli.run import error_line, inputs, output_files
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError
from qmmar.frontends import opaque_op_functions
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.gemm import keep_torch_out
from qmmar.interpreter.ideal import IdealRun, figures_for_file, figures_table
from qmmar.interpreter.mpi import JobFailed, MPIJob, MPIUnavailable, abort
from qmmar.interpreter.npz import rank_output_path, write_results
from qmmar.interpreter.observe import Watch, profile_table
from qmmar.interpreter.results import summary
from qmmar.interpreter.spmd import entry_function
from qmmar.interpreter.values import Argument, InputError, rank_args
from qmmar.source import STDIN, display_name, read_module

_SHARED_OPTIONS = ("world_size", "output", "output_per_rank", "ideal", "profile")
"""The options that decide which steps a rank takes: every rank must be given the same."""


class _UsageError(Exception):
    pass


def _check_options(args: argparse.Namespace, job: MPIJob) -> None:
    options = {name: getattr(args, name) for name in _SHARED_OPTIONS}
    every = job.allgather(options)  # every rank judges alike, so all fail alike
    different = next((r for r, theirs in enumerate(every) if theirs != every[0]), None)
    if different is not None:
        raise _UsageError(f"ranks 0 and {different} were started with different options: "
                          f"{every[0]} and {every[different]}")  # fmt: skip
    if args.world_size not in (None, job.world_size):
        raise _UsageError(f"--world-size is {args.world_size}, but mpiexec started {job.world_size} "
                          "processes (under mpiexec, --world-size may be left out)")  # fmt: skip
    if STDIN in (args.file, *(args.inputs or ())):
        raise _UsageError("standard input (-) cannot be read under mpiexec, which gives it to rank 0 alone: "
                          "give the program and the inputs as files")  # fmt: skip


def _setup(
    args: argparse.Namespace, job: MPIJob, origins: list[str]
) -> tuple[IdealRun | None, ModuleOp, func.FuncOp, list[Argument], list[InterpreterFunctions]]:
    """The --ideal run, the program to run (with --ideal, its probed copy), its entry function,
    this rank's arguments and how to run its opaque ops (the threaded run's); `origins` learns
    the file each argument came from."""
    module = read_module(qmmar_context(allow_unregistered=True), args.file)
    functions = opaque_op_functions(module)  # the torch.* ops of an imported PyTorch program
    ideal = ideal_run(module, args.entry, functions) if args.ideal else None
    runnable = ideal.module if ideal else module
    fn = entry_function(runnable, args.entry)
    arrays, found = inputs(module, args, job.world_size, rank=job.rank)
    origins.extend(found)
    [mine] = rank_args(fn.function_type.inputs.data, arrays, job.world_size, [job.rank])
    return ideal, runnable, fn, mine, functions


@contextmanager
def _interrupt_ends_the_rank(say: bool) -> Iterator[None]:
    """Ctrl-C ends this process at once, without MPI's finalisation (which would wait for the
    other ranks); mpiexec forwards the signal to every process and ends those still running."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        if say:
            os.write(2, b"qmmar-run: interrupted\n")
        os._exit(EXIT_INTERRUPTED)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_mpi(args: argparse.Namespace) -> int:
    program = display_name(args.file)
    origins: list[str] = []

    def describe(err: Exception) -> str:
        return error_line(err, program, origins)

    def check_outputs() -> None:
        for path in output_files(args, [job.rank]):
            check_writable(path)

    try:
        job = MPIJob(describe, (LocatedError, InputError, RunError, _UsageError))
    except MPIUnavailable as err:
        print(f"qmmar-run: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    keep_torch_out()  # of the GEMMs: each rank's process would hold a torch of its own
    with _interrupt_ends_the_rank(say=job.rank == 0):
        try:
            job.step(lambda: _check_options(args, job), code=EXIT_USAGE)
            job.step(check_outputs)
            ideal, runnable, fn, rank_arguments, functions = job.step(lambda: _setup(args, job, origins))
            watch = Watch(fn, args.progress if job.rank == 0 else "none", args.profile)
            try:
                start = time.perf_counter()
                outputs = job.run(runnable, args.entry, rank_arguments, watch, functions)
                seconds = time.perf_counter() - start
            finally:
                watch.close()
            results = ideal.keep_probes(outputs) if ideal else outputs
            stats = job.stats(results)
            figures = job.measure(ideal) if ideal else None  # on rank 0
            extra = figures_for_file(figures or [])
            if args.output is not None and args.output_per_rank:
                job.step(lambda: write_results(rank_output_path(args.output, job.rank), results, extra))
            elif args.output is not None:
                job.write_gathered(args.output, results, extra)
            profiles = job.gather((watch.records, watch.peak_bytes())) if args.profile else None
        except JobFailed as failure:
            if job.rank == 0:
                print(failure, file=sys.stderr)
            return failure.code
        except Exception as err:  # no step expected it: the other ranks may wait for this one
            abort(f"qmmar-run: error: on rank {job.rank}: {type(err).__name__}: {err}")
    if job.rank == 0:
        print(summary(stats, seconds, args.entry))
        if ideal:
            print(figures_table(ideal, figures or []))
        if profiles is not None:
            records = [record for rank_records, _ in profiles for record in rank_records]
            peaks = {rank: peak or 0 for rank, (_, peak) in enumerate(profiles)}
            print(profile_table(records, peaks, ranks_are_processes=True))
    return 0
