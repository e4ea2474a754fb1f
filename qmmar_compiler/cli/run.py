"""`qmmar-run`: interpret a program on a group of ranks, with SEMANTICS.md's numerics.

qmmar-run FILE [--world-size W] (--inputs IN.npz [--inputs MORE.npz] | --random-inputs SEED)
          [--output OUT.npz [--output-per-rank]] [--entry main] [--ideal]
          [--comm auto|threads|mpi] [--progress auto|bar|lines|none] [--profile] [--library MODULE ...]

The steps, one function each: parse the arguments, read the program, load the inputs, run,
write the results, print a summary.  Ranks run as threads of this process, or, under
`mpiexec`, one rank per process (`qmmar.cli.run_mpi`, which takes the same steps).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from qmmar.api import ideal_run
from qmmar.cli.common import EXIT_FAILURE, add_library, add_version, check_writable, integer_at_least, tool_main
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError
from qmmar.frontends import load_libraries, opaque_op_functions
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.ideal import figures_for_file, figures_table
from qmmar.interpreter.mpi import launched_by_mpi
from qmmar.interpreter.npz import NpzMember, open_npz, rank_output_path, write_results
from qmmar.interpreter.observe import Watch, profile_table
from qmmar.interpreter.results import RankStats, summary
from qmmar.interpreter.spmd import entry_function, run_spmd
from qmmar.interpreter.values import InputError, random_args
from qmmar.source import STDIN, display_name, read_module

EPILOG = """\
input files (.npz, numpy.savez): arg0, arg1, ... for the entry function's arguments, each
either with the argument's shape (the same on every rank) or with (world_size,) + shape (one
slice per rank). bf16 arguments may be float32 (rounded to nearest even) or uint16 raw bits.
--inputs may be given more than once (weights.npz, activations.npz): the arrays are merged,
and an array given twice is an error. FILE or one --inputs may be - (standard input), except
under mpiexec.
output file (.npz, written to exactly the path given): result0, result1, ... of shape
(world_size,) + shape; bf16 as float32. With --output-per-rank, OUT.rank<r>.npz instead:
rank r's result0, result1, ... alone (and the --ideal figures in rank 0's).
--random-inputs: integer arguments differ per rank, float arguments are replicated (1-D
floats are scale-like, others standard normal), int64/uint64 are packed dequant scales.
many processes: under mpiexec (`mpiexec -n W qmmar-run FILE ...`, or --comm mpi) each
process is one rank and reads only its own slices of the input files; rank 0 writes the
output and prints; --world-size may be left out. --ideal gathers the values it measures on
rank 0, one op at a time. A rank's GEMMs run on f32 BLAS unless torch is loaded (--library
torch: faster, about 240 MiB more per process). Needs `pip install 'qmmar[mpi]'`.
progress: rank 0 shows its progress through the ops on stderr: a bar on a terminal, a line
per op otherwise; `auto` (the default) only once a run has lasted 2 s.
--profile: a table of seconds (compute, collectives) and peak memory per op and per rank.
torch.* ops (an imported PyTorch program) run through PyTorch; torch_npu's and vLLM's W8A8 ops
through qmmar's CPU stand-ins (qmmar.frontends.torch.standins); any other custom op needs the
module that defines it: --library MODULE (a module name or a .py file; repeatable).
exit codes: 0 success, 1 bad input or a run-time error (one line on stderr: FILE:LINE:COL:
error: ... where the program is at fault), 2 bad usage, 130 interrupted (Ctrl-C ends every
rank)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmmar-run",
        description="Run an MLIR program of qmm/mc2 ops on a group of ranks (SPMD) on the "
        "CPU, bit-exact with aclnnQuantMatmulAllReduceV3's numerics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="the MLIR program (- for standard input)")
    p.add_argument("--world-size", "-w", type=integer_at_least(1),
                   help="number of ranks (under mpiexec: the number of processes, and optional)")  # fmt: skip
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--inputs", "-i", metavar="IN.npz", action="append", help="argument values (repeatable)")
    source.add_argument("--random-inputs", metavar="SEED", type=integer_at_least(0), help="random arguments")
    p.add_argument("--output", "-o", metavar="OUT.npz", help="where to write the results")
    p.add_argument("--output-per-rank", action="store_true", help="write OUT.rank<r>.npz, one file per rank")
    p.add_argument("--entry", default="main", help="the function to run (default: main)")
    add_version(p, "qmmar-run")
    p.add_argument("--ideal", action="store_true", help="also compute each mc2 op's and each "
                   "int8-communication chain's full-precision ideal and print this run's error against "
                   "it; with --output, the figures go into OUT.npz as `ideal` (for qmmar-check --run)")  # fmt: skip
    p.add_argument("--comm", choices=("auto", "threads", "mpi"), default="auto",
                   help="ranks as threads, or as MPI processes (default: MPI when started by mpiexec)")  # fmt: skip
    p.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                   help="progress per op on stderr (default: auto, after 2 s)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="print time and peak memory per op and per rank")
    add_library(p)
    return p


def load_inputs(paths: Sequence[str]) -> tuple[list[NpzMember], list[str]]:
    """The arrays arg0, arg1, ... merged from every file, and the file each came from.  None is
    read yet: each rank reads its own slices when it needs them."""
    merged: dict[str, NpzMember] = {}
    for path in paths:
        for key, member in open_npz(path).items():
            if key in merged:
                raise LocatedError(display_name(path), f"{key} is given twice: also in {merged[key].where}")
            merged[key] = member
    expected = [f"arg{i}" for i in range(len(merged))]
    if set(merged) != set(expected):
        where = ", ".join(display_name(p) for p in paths)
        raise LocatedError(where, f"expected arrays arg0..arg{len(merged) - 1}, found {sorted(merged)}")
    return [merged[key] for key in expected], [merged[key].where for key in expected]


def inputs(
    module: ModuleOp, args: argparse.Namespace, world_size: int, rank: int | None = None
) -> tuple[Sequence[np.ndarray | NpzMember], list[str]]:
    """The arguments, and the file each came from ([] for random ones); with `rank`, random
    per-rank arguments are that rank's shards alone."""
    if args.inputs is not None:
        return load_inputs(args.inputs)
    fn = entry_function(module, args.entry)
    try:
        return random_args(fn.function_type.inputs.data, world_size, args.random_inputs, rank), []
    except InputError as err:
        raise LocatedError.at(fn, str(err)) from None


def error_line(err: Exception, program: str, origins: Sequence[str]) -> str:
    """The one line a user reads for a failure: named after the program, or after the file
    the argument at fault came from."""
    if isinstance(err, LocatedError):
        return str(err)
    if isinstance(err, InputError):
        where = origins[err.arg] if origins and err.arg is not None else ", ".join(dict.fromkeys(origins)) or program
        return f"{where}: error: {err}"
    if isinstance(err, RunError):
        return f"{program}: error: {err}"
    return f"qmmar-run: error: {err}"


def output_files(args: argparse.Namespace, ranks: Sequence[int]) -> list[str]:
    """The files that `ranks` write: each its own with --output-per-rank, else rank 0 the one."""
    if args.output is None:
        return []
    if args.output_per_rank:
        return [rank_output_path(args.output, r) for r in ranks]
    return [args.output] if 0 in ranks else []


def run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if [args.file, *(args.inputs or [])].count(STDIN) > 1:
        parser.error("standard input (-) can be read once: by FILE or by one --inputs")
    if args.output_per_rank and args.output is None:
        parser.error("--output-per-rank needs --output")
    try:
        load_libraries(args.library)
    except LocatedError as err:
        print(err, file=sys.stderr)
        return EXIT_FAILURE
    if args.comm == "mpi" or (args.comm == "auto" and launched_by_mpi()):
        from qmmar.cli.run_mpi import run_mpi

        return run_mpi(args)
    if args.world_size is None:
        parser.error("--world-size is required when ranks run as threads (it is optional under mpiexec)")
    return _run_threads(args)


def _run_threads(args: argparse.Namespace) -> int:
    world_size, program = args.world_size, display_name(args.file)
    origins: list[str] = []
    try:
        for path in output_files(args, range(world_size)):
            check_writable(path)
        module = read_module(qmmar_context(allow_unregistered=True), args.file)
        functions = opaque_op_functions(module)  # the torch.* ops of an imported PyTorch program
        arrays, origins = inputs(module, args, world_size)
        ideal = ideal_run(module, args.entry, functions) if args.ideal else None
        watch = Watch(entry_function(ideal.module if ideal else module, args.entry), args.progress, args.profile)
        try:
            start = time.perf_counter()
            if ideal:
                results = ideal.run(arrays, world_size, watch)
            else:
                results = run_spmd(module, arrays, world_size, args.entry, functions, watch=watch)
            seconds = time.perf_counter() - start
        finally:
            watch.close()
        figures = ideal.figures() if ideal else []
        extra = figures_for_file(figures)
        if args.output is not None and args.output_per_rank:
            for rank in range(world_size):  # the figures in rank 0's file
                mine = [r[rank] for r in results]
                write_results(rank_output_path(args.output, rank), mine, extra if rank == 0 else {})
        elif args.output is not None:
            write_results(args.output, results, extra)
    except (LocatedError, InputError, RunError) as err:
        print(error_line(err, program, origins), file=sys.stderr)
        return EXIT_FAILURE
    print(summary([[RankStats.of(r[rank]) for r in results] for rank in range(world_size)], seconds, args.entry))
    if ideal:
        print(figures_table(ideal, figures))
    if args.profile:
        peak = watch.peak_bytes() or 0
        print(profile_table(watch.records, dict.fromkeys(range(world_size), peak), ranks_are_processes=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return tool_main("qmmar-run", lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
