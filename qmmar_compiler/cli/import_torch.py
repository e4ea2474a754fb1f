"""`qmmar-import`: a torch.export program (.pt2) as a qmm MLIR program.

qmmar-import PROGRAM.pt2|- [-o OUT.mlir] [--world-size W] [--group-map TORCH=NAME ...]
             [--weights OUT.npz] [--library MODULE ...] [--numerics exact|relaxed]
"""

from __future__ import annotations

import argparse
import sys
import time
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from xdsl.printer import Printer

from qmmar.cli.common import EXIT_FAILURE, add_library, add_version, check_writable, integer_at_least, tool_main
from qmmar.dialects.diagnostics import LocatedError
from qmmar.frontends import load_libraries
from qmmar.passes.policy import Numerics
from qmmar.source import display_name

EPILOG = """\
Parameters and buffers become the function's first arguments, named after their fully
qualified names; the user's inputs follow. Ops the importer has no qmm counterpart for stay
as they are, in MLIR's generic form ("torch.aten.rms_norm"(...)), which qmmar-opt, qmmar-run
and qmmar-check read as opaque ops (no flag needed). Each op is located at the Python line that made it,
so the fusion pass's remarks point at the model's source. A pattern whose numerics are not
exactly the operator's is left as PyTorch wrote it, with a remark that says why; with
--numerics relaxed, one that computes the same function up to rounding (torchao's int8 linear:
the per-token scale first, an intermediate rounding) is imported, with a remark that says what
changes and by how much at most (fuse with numerics=relaxed too).
The program's parameter values are read: an f32 dequant scale for bf16 output whose every value
is a bf16 value is imported as arith.truncf + arith.extf (the same values: fusing under
numerics=exact takes it as the bf16 scale the operator takes), with a remark; the program then
computes PyTorch's bits for these values (those --weights writes).
--weights writes the program's parameters and buffers as arg0, arg1, ... (qmmar-run's
--inputs convention); the activations take the numbers that follow.
custom ops: torch_npu's npu_dynamic_quant, npu_quantize, npu_quant_matmul, npu_add_rms_norm and
vLLM's quantize and all_reduce are known by name (a program calling them loads without torch_npu
or vLLM; qmmar.frontends.torch.standins runs them on the CPU). Any other custom op needs the
module that defines it: --library MODULE (a module name, or a .py file; repeatable).
exit codes: 0 imported; 1 bad input (one FILE:LINE:COL: error: line); 2 bad usage;
3 imported, but the program holds no quantised matmul + all-reduce chain to fuse."""

NO_CHAIN = 3


def _group_entry(text: str) -> tuple[str, str]:
    torch_name, sep, name = text.partition("=")
    if not sep or not torch_name or not name:
        raise argparse.ArgumentTypeError(f"expected TORCH_GROUP=NAME, got {text!r}")
    return torch_name, name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmmar-import",
        description="Import a torch.export program (.pt2, written by torch.export.save) into "
        "qmmar's qmm dialect, ready for fuse-quant-matmul-all-reduce.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("program", metavar="PROGRAM.pt2", help="the program (- for standard input)")
    p.add_argument("-o", "--output", metavar="OUT.mlir", help="where to write the MLIR (default: stdout)")
    p.add_argument("--world-size", "-w", type=integer_at_least(1), help="ranks in the communication group (default: "
                   "what the program states, or the size of the process group of that name)")  # fmt: skip
    p.add_argument("--group-map", type=_group_entry, action="append", default=[], metavar="TORCH=NAME",
                   help="name torch's process group TORCH (e.g. 0) NAME in the IR (e.g. tp); repeatable")  # fmt: skip
    p.add_argument("--weights", metavar="OUT.npz", help="write the parameters and buffers for qmmar-run")
    p.add_argument("--numerics", choices=typing.get_args(Numerics), default="exact",
                   help="exact (default): import as qmm only what computes PyTorch's bits; relaxed: also what "
                   "computes the same function up to rounding, with a remark saying what changes")  # fmt: skip
    add_library(p)
    add_version(p, "qmmar-import")
    return p


@contextmanager
def _writing(path: str, what: str) -> Iterator[None]:
    """Writing `path`: a failure (a full disk, say) is one line naming the file."""
    try:
        yield
    except OSError as err:
        raise LocatedError(path, f"cannot write {what}: {err.strerror or err}") from None


def run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        from qmmar.frontends.torch import ImportOptions, import_exported_program, load_program
        from qmmar.frontends.torch.program import write_weights
    except ImportError as err:
        print(f"qmmar-import: error: PyTorch is needed ({err}): pip install 'qmmar[torch]'", file=sys.stderr)
        return EXIT_FAILURE
    from qmmar.passes.family import family

    try:
        for path, what in ((args.output, "the output"), (args.weights, "the weights")):
            if path:
                check_writable(path, what)
        load_libraries(args.library)
        program = load_program(args.program)
        start = time.perf_counter()
        options = ImportOptions(args.world_size, dict(args.group_map), numerics=args.numerics)
        imported = import_exported_program(program, options)
        seconds = time.perf_counter() - start
        if args.weights:
            with _writing(args.weights, "the weights"):
                write_weights(args.weights, imported, program)
        if args.output:
            with _writing(args.output, "the output"), open(args.output, "w", encoding="utf-8") as f:
                Printer(stream=f, print_debuginfo=True).print_op(imported.module)
                f.write("\n")
        else:
            Printer(stream=sys.stdout, print_debuginfo=True).print_op(imported.module)
            print(flush=True)  # before the summary: a reader that has gone ends the run here (141)
    except LocatedError as err:
        print(err, file=sys.stderr)
        return EXIT_FAILURE
    for note in imported.notes:
        print(note.remark(), file=sys.stderr)
    ops = list(imported.module.walk())
    kinds = family()
    chains = sum(any(isinstance(op, k.roots) and k.match(op) for k in kinds) for op in ops)
    qmm = sum(op.name.startswith("qmm.") for op in ops)
    opaque = sum(op.name == "builtin.unregistered" for op in ops)
    inputs = ", ".join(f"arg{i} {a.name}" for i, a in enumerate(imported.arguments) if a.kind == "input")
    program_name = display_name(args.program)
    print(f"{program_name}: {len(imported.arguments)} arguments (inputs: {inputs or 'none'}); "
          f"{qmm} qmm ops, {opaque} opaque ops; {chains} chain(s) to judge; imported in {seconds * 1e3:.1f} ms",
          file=sys.stderr)  # fmt: skip
    if not chains:
        print(f"{program_name}: warning: no quantised matmul + all-reduce chain: nothing for MC2 to fuse",
              file=sys.stderr)  # fmt: skip
        return NO_CHAIN
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return tool_main("qmmar-import", lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
