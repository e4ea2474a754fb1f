"""`qmmar-run`: interpret a program on a group of ranks, with SEMANTICS.md's numerics.

qmmar-run FILE --world-size W (--inputs IN.npz [--inputs MORE.npz] | --random-inputs SEED)
          [--output OUT.npz] [--entry main] [--ideal]

The steps, one function each: parse the arguments, read the program, load the inputs, run,
write the results, print a summary.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from qmmar.cli.common import EXIT_FAILURE, add_version, tool_main
from qmmar.context import qmmar_context
from qmmar.frontends import opaque_op_functions
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.ideal import IdealRun, figures_for_file, figures_table
from qmmar.interpreter.spmd import entry_function, run_spmd
from qmmar.interpreter.values import InputError, for_file, random_args
from qmmar.source import STDIN, SourceError, display_name, op_error, read_module

EPILOG = """\
input files (.npz, numpy.savez): arg0, arg1, ... for the entry function's arguments, each
either with the argument's shape (the same on every rank) or with (world_size,) + shape (one
slice per rank). bf16 arguments may be float32 (rounded to nearest even) or uint16 raw bits.
--inputs may be given more than once (weights.npz, activations.npz): the arrays are merged,
and an array given twice is an error. FILE or one --inputs may be - (standard input).
output file (.npz, written to exactly the path given): result0, result1, ... of shape
(world_size,) + shape; bf16 as float32.
--random-inputs: integer arguments differ per rank, float arguments are replicated (1-D
floats are scale-like, others standard normal), int64/uint64 are packed dequant scales.
exit codes: 0 success, 1 bad input or a run-time error (one line on stderr: FILE:LINE:COL:
error: ... where the program is at fault), 2 bad usage, 130 interrupted."""


def _integer_at_least(lowest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, got {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmmar-run",
        description="Run an MLIR program of qmm/mc2 ops on a group of ranks (SPMD) on the "
        "CPU, bit-exact with aclnnQuantMatmulAllReduceV3's numerics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="the MLIR program (- for standard input)")
    p.add_argument("--world-size", "-w", type=_integer_at_least(1), required=True, help="number of ranks")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--inputs", "-i", metavar="IN.npz", action="append", help="argument values (repeatable)")
    source.add_argument("--random-inputs", metavar="SEED", type=_integer_at_least(0), help="random arguments")
    p.add_argument("--output", "-o", metavar="OUT.npz", help="where to write the results")
    p.add_argument("--entry", default="main", help="the function to run (default: main)")
    add_version(p, "qmmar-run")
    p.add_argument("--ideal", action="store_true", help="also compute each mc2 op's and each "
                   "int8-communication chain's full-precision ideal and print this run's error against "
                   "it; with --output, the figures go into OUT.npz as `ideal` (for qmmar-check --run)")  # fmt: skip
    return p


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of one .npz archive (`-`: standard input)."""
    name = display_name(path)
    try:
        loaded = np.load(io.BytesIO(sys.stdin.buffer.read()) if path == STDIN else path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            raise SourceError(name, "holds one array (an .npy file); --inputs reads an .npz archive "
                                    "(numpy.savez) of arrays arg0, arg1, ...")  # fmt: skip
        with loaded as npz:
            return {key: npz[key] for key in npz.files}
    except OSError as err:
        raise SourceError(name, f"cannot read the inputs: {err.strerror or err}") from None
    except (ValueError, zipfile.BadZipFile, EOFError) as err:
        raise SourceError(name, f"is not an .npz archive (numpy.savez): {err}") from None


def load_inputs(paths: Sequence[str]) -> tuple[list[np.ndarray], list[str]]:
    """The arrays arg0, arg1, ... merged from every file, and the file each came from."""
    merged: dict[str, tuple[np.ndarray, str]] = {}
    for path in paths:
        for key, array in _read_npz(path).items():
            if key in merged:
                raise SourceError(display_name(path), f"{key} is given twice: also in {display_name(merged[key][1])}")
            merged[key] = (array, path)
    expected = [f"arg{i}" for i in range(len(merged))]
    if set(merged) != set(expected):
        where = ", ".join(display_name(p) for p in paths)
        raise SourceError(where, f"expected arrays arg0..arg{len(merged) - 1}, found {sorted(merged)}")
    return [merged[key][0] for key in expected], [display_name(merged[key][1]) for key in expected]


def check_writable(path: str) -> None:
    """Fail before the run, not after it, when the output cannot be written."""
    existed = os.path.exists(path)
    try:
        open(path, "ab").close()
    except OSError as err:
        raise SourceError(path, f"cannot write the output: {err.strerror}") from None
    if not existed:
        os.remove(path)


def write_results(path: str, results: list[np.ndarray], extra: dict[str, np.ndarray]) -> None:
    """result0, result1, ... and the `extra` arrays (the --ideal figures)."""
    arrays = {f"result{i}": for_file(r) for i, r in enumerate(results)} | extra
    try:
        with open(path, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **cast(dict[str, Any], arrays))
    except OSError as err:
        raise SourceError(path, f"cannot write the output: {err.strerror}") from None


def summary(results: list[np.ndarray], world_size: int, seconds: float, entry: str) -> str:
    lines = [f"@{entry} on {world_size} ranks: {len(results)} result(s) in {seconds * 1e3:.1f} ms"]
    for i, r in enumerate(results):
        values = r.astype(np.float64)
        finite = values[np.isfinite(values)]
        stats = (f"min {finite.min():.6g} max {finite.max():.6g} mean {finite.mean():.6g}" if finite.size
                 else "no finite value")  # fmt: skip
        same = all(np.array_equal(r[0].view(np.uint8), x.view(np.uint8)) for x in r[1:])
        lines.append(f"result{i}: {r.dtype} {list(r.shape[1:])} per rank; ranks identical: "
                     f"{'yes' if same else 'no'}; {stats}; non-finite {values.size - finite.size}")  # fmt: skip
    return "\n".join(lines)


def run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if [args.file, *(args.inputs or [])].count(STDIN) > 1:
        parser.error("standard input (-) can be read once: by FILE or by one --inputs")
    program = display_name(args.file)
    origins: list[str] = []
    try:
        if args.output is not None:
            check_writable(args.output)
        module = read_module(qmmar_context(allow_unregistered=True), args.file)
        functions = opaque_op_functions(module)  # the torch.* ops of an imported PyTorch program
        inputs, origins = _inputs(module, args)
        ideal = IdealRun(module, args.entry, functions) if args.ideal else None
        start = time.perf_counter()
        results = (ideal.run(inputs, args.world_size) if ideal
                   else run_spmd(module, inputs, args.world_size, args.entry, functions))  # fmt: skip
        seconds = time.perf_counter() - start
        if args.output is not None:
            write_results(args.output, results, figures_for_file(ideal.figures()) if ideal else {})
    except SourceError as err:
        print(err, file=sys.stderr)
        return EXIT_FAILURE
    except InputError as err:  # named after the file the argument came from
        where = origins[err.arg] if origins and err.arg is not None else ", ".join(dict.fromkeys(origins)) or program
        print(f"{where}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except RunError as err:
        print(f"{program}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(summary(results, args.world_size, seconds, args.entry))
    if ideal:
        print(figures_table(ideal))
    return 0


def _inputs(module: ModuleOp, args: argparse.Namespace) -> tuple[list[np.ndarray], list[str]]:
    """The arguments, and the file each came from ([] for random ones)."""
    if args.inputs is not None:
        return load_inputs(args.inputs)
    fn = entry_function(module, args.entry)
    try:
        return random_args(fn.function_type.inputs.data, args.world_size, args.random_inputs), []
    except InputError as err:
        raise op_error(fn, str(err)) from None


def main(argv: Sequence[str] | None = None) -> int:
    return tool_main("qmmar-run", lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
