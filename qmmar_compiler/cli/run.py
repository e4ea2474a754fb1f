"""`qmmar-run`: interpret a program on a group of ranks, with SEMANTICS.md's numerics.

qmmar-run FILE --world-size W (--inputs in.npz | --random-inputs SEED) [--output out.npz]
          [--entry main] [--ideal]
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from collections.abc import Sequence

import numpy as np

from qmmar.context import qmmar_context
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.ideal import IdealRun, figures_for_file, figures_table
from qmmar.interpreter.spmd import entry_function, run_spmd
from qmmar.interpreter.values import InputError, for_file, random_args
from qmmar.source import SourceError, read_module

EPILOG = """\
input file (.npz): arg0, arg1, ... for the entry function's arguments, each either with the
argument's shape (the same on every rank) or with (world_size,) + shape (one slice per
rank). bf16 arguments may be float32 (rounded to nearest even) or uint16 raw bits.
output file (.npz): result0, result1, ... of shape (world_size,) + shape; bf16 as float32.
--random-inputs: integer arguments differ per rank, float arguments are replicated (1-D
floats are scale-like, others standard normal), int64/uint64 are packed dequant scales.
exit codes: 0 success, 1 bad input or a run-time error (one line on stderr), 2 bad usage."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmmar-run",
        description="Run an MLIR program of qmm/mc2 ops on a group of ranks (SPMD) on the "
        "CPU, bit-exact with aclnnQuantMatmulAllReduceV3's numerics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="the MLIR program")
    p.add_argument("--world-size", "-w", type=int, required=True, help="number of ranks")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--inputs", "-i", metavar="IN.npz", help="argument values")
    source.add_argument("--random-inputs", metavar="SEED", type=int, help="random arguments")
    p.add_argument("--output", "-o", metavar="OUT.npz", help="where to write the results")
    p.add_argument("--entry", default="main", help="the function to run (default: main)")
    p.add_argument("--ideal", action="store_true", help="also compute each mc2 op's and each "
                   "int8-communication chain's full-precision ideal and print this run's error against "
                   "it; with --output, the figures go into OUT.npz as `ideal` (for qmmar-check --run)")  # fmt: skip
    return p


def load_inputs(path: str) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            count = len(names)
            expected = {f"arg{i}" for i in range(count)}
            if names != expected:
                raise InputError(f"{path}: expected arrays arg0..arg{count - 1}, found {sorted(names)}")
            return [npz[f"arg{i}"] for i in range(count)]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: cannot read the inputs: {err}") from None


def summary(results: list[np.ndarray], world_size: int, seconds: float, entry: str) -> str:
    lines = [f"@{entry} on {world_size} ranks: {len(results)} result(s) in {seconds * 1e3:.1f} ms"]
    for i, r in enumerate(results):
        values = r.astype(np.float64)
        same = all(np.array_equal(r[0].view(np.uint8), x.view(np.uint8)) for x in r[1:])
        lines.append(
            f"result{i}: {r.dtype} {list(r.shape[1:])} per rank; ranks identical: "
            f"{'yes' if same else 'no'}; min {np.nanmin(values):.6g} max {np.nanmax(values):.6g} "
            f"mean {np.nanmean(values):.6g}; non-finite {int(np.sum(~np.isfinite(values)))}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        module = read_module(qmmar_context(), args.file)
        if args.inputs is not None:
            inputs = load_inputs(args.inputs)
        else:
            fn = entry_function(module, args.entry)
            inputs = random_args(fn.function_type.inputs.data, args.world_size, args.random_inputs)
        ideal = IdealRun(module, args.entry) if args.ideal else None
        start = time.perf_counter()
        results = ideal.run(inputs, args.world_size) if ideal else run_spmd(module, inputs, args.world_size, args.entry)
        seconds = time.perf_counter() - start
        if args.output is not None:
            np.savez(args.output, **{f"result{i}": for_file(r) for i, r in enumerate(results)},
                     **(figures_for_file(ideal.figures()) if ideal else {}))  # fmt: skip
    except (SourceError, InputError, RunError) as err:
        print(err if isinstance(err, SourceError) else f"qmmar-run: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"qmmar-run: error: cannot write {args.output}: {err.strerror}", file=sys.stderr)
        return 1
    print(summary(results, args.world_size, seconds, args.entry))
    if ideal:
        print(figures_table(ideal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
