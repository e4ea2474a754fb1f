"""`qmmar-run` under mpiexec: this process is one rank of the run.

Every rank reads the program, and only its own slice of each `(world_size,) + shape`
input; the shared inputs are read by all.  Each step is taken by every rank together and
fails on all when it fails on one, so that every rank exits with the same code; rank 0
prints the one line that says why, the summary and the profile, and writes the output.
"""

from __future__ import annotations

import argparse
import sys
import time

from qmmar.cli.run import error_line, interrupt_ends_the_run, load_inputs
from qmmar.context import qmmar_context
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.mpi import JobFailed, MPIJob, MPIUnavailable, abort
from qmmar.interpreter.npz import write_rank_results
from qmmar.interpreter.observe import Watch, profile_table
from qmmar.interpreter.results import summary
from qmmar.interpreter.spmd import entry_function
from qmmar.interpreter.values import InputError, random_args, rank_args
from qmmar.source import SourceError, read_module

_SHARED_OPTIONS = ("world_size", "output", "output_per_rank", "profile")
"""The options that decide which steps a rank takes: every rank must be given the same."""


def _setup(args: argparse.Namespace, job: MPIJob):
    """The program, its entry function and this rank's arguments."""
    module = read_module(qmmar_context(), args.file)
    fn = entry_function(module, args.entry)
    arg_types = fn.function_type.inputs.data
    if args.inputs is not None:
        arrays = load_inputs(args.inputs)
    else:
        arrays = random_args(arg_types, job.world_size, args.random_inputs, rank=job.rank)
    [mine] = rank_args(arg_types, arrays, job.world_size, [job.rank])  # type: ignore[arg-type]
    return module, fn, mine


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


class _UsageError(Exception):
    pass


def main_mpi(args: argparse.Namespace) -> int:
    try:
        job = MPIJob(error_line, (SourceError, InputError, RunError, OSError, _UsageError))
    except MPIUnavailable as err:
        print(f"qmmar-run: error: {err}", file=sys.stderr)
        return 1
    with interrupt_ends_the_run(say=job.rank == 0):
        try:
            job.step(lambda: _check_options(args, job), code=2)
            module, fn, rank_arguments = job.step(lambda: _setup(args, job))
            watch = Watch(fn, args.progress if job.rank == 0 else "none", args.profile)
            try:
                start = time.perf_counter()
                results = job.run(module, args.entry, rank_arguments, watch)
                seconds = time.perf_counter() - start
            finally:
                watch.close()
            stats = job.stats(results)
            if args.output is not None and args.output_per_rank:
                job.step(lambda: write_rank_results(args.output, job.rank, results))
            elif args.output is not None:
                job.write_gathered(args.output, results)
            profiles = job.gather((watch.records, watch.peak_bytes())) if args.profile else None
        except JobFailed as failure:
            if job.rank == 0:
                print(failure, file=sys.stderr)
            return failure.code
        except Exception as err:  # no step expected it: the other ranks may wait for this one
            abort(f"qmmar-run: error: on rank {job.rank}: {type(err).__name__}: {err}")
    if job.rank == 0:
        print(summary(stats, seconds, args.entry))
        if profiles is not None:
            records = [record for rank_records, _ in profiles for record in rank_records]
            peaks = {rank: peak for rank, (_, peak) in enumerate(profiles)}
            print(profile_table(records, peaks, ranks_are_processes=True))
    return 0
