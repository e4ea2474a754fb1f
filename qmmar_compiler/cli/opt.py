"""`qmmar-opt`: xDSL's opt driver with qmmar's dialects, passes and targets, and errors a
script can trust: one located line on stderr, exit code 1, never a traceback."""

from __future__ import annotations

import argparse
import difflib
import inspect
import io
import re
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, cast

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline, get_pass_option_infos
from xdsl.utils.arg_spec import parse_pipeline, parse_spec
from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException, ParseError
from xdsl.utils.target import Target
from xdsl.xdsl_opt_main import xDSLOptMain

from qmmar.cli.common import EXIT_FAILURE, EXIT_USAGE, tool_main, version_format
from qmmar.dialects.diagnostics import LocatedError, one_line
from qmmar.frontends import QmmarContext
from qmmar.source import (
    STDIN,
    FaithfulMLIRTarget,
    LocatingParser,
    decode,
    display_name,
    parse_error,
    verify,
)
from qmmar.universe import QMMAR_UNIVERSE

DESCRIPTION = """\
qmmar's MLIR optimizer: xdsl-opt with the qmm, mc2 and aclnn dialects, the qmmar passes and
the aclnn-cpp target. Reads FILE (or stdin: no FILE, or -), verifies it (every constraint of
aclnnQuantMatmulAllReduceV3 for mc2 ops), runs the -p pipeline, verifying after each pass,
and prints the result. Errors print as FILE:LINE:COL: error: MESSAGE and exit with code 1;
bad usage exits with code 2."""


def qmmar_help() -> str:
    """qmmar's passes with their options and defaults, and its target, for --help."""
    lines = ["qmmar passes (-p 'name{option=value ...}', options in kebab-case):"]
    for name, factory in QMMAR_UNIVERSE.all_passes.items():
        pass_type = factory()
        options = " ".join(f"{o.name.replace('_', '-')}={o.default_value}" for o in get_pass_option_infos(pass_type))
        lines.append(f"  {name}{{{options}}}" if options else f"  {name}")
        lines.append(f"      {(pass_type.__doc__ or '').strip().splitlines()[0]}")
    lines.append("qmmar targets (-t): " + ", ".join(QMMAR_UNIVERSE.all_targets))
    lines.append("--print-include-dir prints the directory of the aclnn headers that the C++ of -t aclnn-cpp includes.")
    return "\n".join(lines)


def xdsl_help(passes: Mapping[str, object], targets: Mapping[str, object]) -> str:
    """The rest of the universe, after qmmar's own: xDSL's ~150 passes and its targets."""
    others = [name for name in passes if name not in QMMAR_UNIVERSE.all_passes]
    wrap = textwrap.TextWrapper(width=100, initial_indent="  ", subsequent_indent="  ")
    return "\n".join([
        "xDSL's own passes (-p):", wrap.fill(", ".join(others)),
        "xDSL's own targets (-t):", wrap.fill(", ".join(t for t in targets if t not in QMMAR_UNIVERSE.all_targets)),
    ])  # fmt: skip


def _lead_help_with_qmmar(parser: argparse.ArgumentParser, passes: Mapping[str, object],
                          targets: Mapping[str, object]) -> None:  # fmt: skip
    """--help shows qmmar's passes, options and targets first and xDSL's last.  Both are
    built only when --help is asked for: qmmar_help imports the passes (and numpy)."""
    format_help = parser.format_help

    def qmmar_first() -> str:
        parser.description = f"{DESCRIPTION}\n\n{qmmar_help()}"
        parser.epilog = xdsl_help(passes, targets)
        return format_help()

    parser.format_help = qmmar_first  # type: ignore[method-assign]  # argparse has no hook for it
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    short_help = {
        "passes": "the pass pipeline, e.g. 'fuse-quant-matmul-all-reduce{min-m=64}': qmmar's passes are "
        "listed above, xDSL's below",
        "target": "the output: mlir (the default), aclnn-cpp, or one of xDSL's targets listed below",
    }
    for action in parser._actions:  # argparse keeps no public handle on an added argument
        action.help = short_help.get(action.dest, action.help)


class _PrintIncludeDir(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from qmmar.api import include_dir

        print(include_dir())
        parser.exit()


class QmmarOptMain(xDSLOptMain):
    def __init__(self, args: Sequence[str] | None = None):
        self.version_format = version_format("qmmar-opt")  # type: ignore[misc]  # xDSL formats it
        self._chunk_offset = 0  # the line of the --split-input-file chunk being parsed
        self._pass_start = 0.0
        super().__init__(description=DESCRIPTION, args=args)
        self._check_target()

    def _check_target(self) -> None:
        """Build the target once at the start (xDSL builds it to print the result): a bad
        option, `-t 'aclnn-cpp{header=maybe}'`, is bad usage, found before any work."""
        spec = parse_spec(self.args.target)
        entry = self.available_targets[spec.name]
        if not inspect.signature(entry).parameters:  # a Target's factory, not a printing function
            cast(Callable[[], type[Target]], entry)().from_spec(spec)

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--print-include-dir", action=_PrintIncludeDir, help="print where the aclnn headers are (-t aclnn-cpp)"
        )
        _lead_help_with_qmmar(arg_parser, self.available_passes, self.available_targets)

    def register_all_dialects(self) -> None:
        self.ctx = QmmarContext()  # reads qmmar-import's opaque torch.* ops without --allow-unregistered-dialect
        super().register_all_dialects()  # type: ignore[no-untyped-call]  # unannotated in xDSL

    def register_all_targets(self) -> None:
        super().register_all_targets()  # type: ignore[no-untyped-call]  # unannotated in xDSL
        self.available_targets["mlir"] = lambda: FaithfulMLIRTarget

    def register_all_frontends(self) -> None:
        def parse_mlir(io: IO[bytes]) -> ModuleOp:
            name = self.get_input_name()
            parser = LocatingParser(self.ctx, decode(io.read(), name), name, self._chunk_offset)
            return parser.parse_module(not self.args.no_implicit_module)

        self.available_frontends["mlir"] = parse_mlir

    def get_input_name(self) -> str:
        return display_name(self.args.input_file or STDIN)

    def get_input_stream(self) -> tuple[IO[bytes], str]:
        """The input (`-` or none: stdin), read as MLIR whatever its extension."""
        if self.args.input_file in (None, STDIN):
            return sys.stdin.buffer, "mlir"
        try:
            return open(self.args.input_file, "rb"), "mlir"
        except OSError as err:
            raise LocatedError(self.get_input_name(), f"cannot read the input: {err.strerror}") from None

    def prepare_output(self) -> IO[str]:
        try:
            return super().prepare_output()
        except OSError as err:
            raise LocatedError(self.args.output_file, f"cannot write the output: {err.strerror}") from None

    def parse_chunk(self, chunk: IO[bytes], file_extension: str, start_offset: int = 0) -> ModuleOp | None:
        self._chunk_offset = start_offset
        return super().parse_chunk(chunk, file_extension, start_offset)

    def setup_pipeline(self) -> None:
        for name in (spec.name for spec in parse_pipeline(self.args.passes)):
            if name not in self.available_passes:
                close = difflib.get_close_matches(name, self.available_passes, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"unknown pass '{name}' in -p: {hint}qmmar-opt --help lists the passes")
        super().setup_pipeline()  # type: ignore[no-untyped-call]  # unannotated in xDSL
        self.pipeline = PassPipeline(self.pipeline.passes, self._between_passes)

    def _between_passes(self, done: ModulePass | None, module: ModuleOp, following: ModulePass | None) -> None:
        """Before the first pass and after each: the module is verified once per step, with
        located errors (xDSL's own callback would verify it again, unlocated)."""
        if self.args.time_passes and done is not None:
            print(f"Pass {done.name} took {time.perf_counter() - self._pass_start} seconds")
        if not self.args.disable_verify:
            try:
                verify(module)
            except LocatedError as err:
                if done is None:
                    raise
                raise LocatedError(err.where, f"{err.message} (after pass {done.name})") from None
        if done is not None and following is not None and self.args.print_between_passes:
            print(f"IR after {done.name}:\n{self._intermediate_ir(module)}\n\n\n")
        self._pass_start = time.perf_counter()

    def _intermediate_ir(self, module: ModuleOp) -> str:
        """The IR between two passes, as MLIR text whatever -t says: the target is the form of
        the result only (mlir-opt's --mlir-print-ir-after-all prints IR too)."""
        out = io.StringIO()
        target = FaithfulMLIRTarget(
            print_generic_format=self.args.print_op_generic,
            print_properties_as_attributes=self.args.print_no_properties,
            print_debuginfo=self.args.print_debuginfo,
        )
        target.emit(self.ctx, module, out)
        return out.getvalue()


_LOCATED = re.compile(r"(\S+:\d+:\d+): (?:error: )?(.*)", re.DOTALL)


def located(err: Exception, input_name: str) -> str:
    """One `file:line:col: error: message` line, whether or not the message carries its
    location (a pass writes `file:line:col: message`); `file: error: message` if none."""
    if isinstance(err, LocatedError):
        return str(err)
    if isinstance(err, ParseError):
        return str(parse_error(err))
    text = one_line(err)
    if (m := _LOCATED.fullmatch(text)) is not None:
        return f"{m[1]}: error: {m[2]}"
    return f"{input_name}: error: {text}"


def spec_error(err: ArgSpecParseError) -> str:
    """xDSL's message for a -p or -t text it cannot parse (a header, `pass-pipeline:LINE:COL`,
    the text with a caret under the fault, the reason) as one line that keeps the reason."""
    lines = str(err).splitlines()
    position = next((m for line in lines if (m := _SPEC_POSITION.fullmatch(line))), None)
    if position is None:
        return one_line(err)
    text = lines[lines.index(position[0]) + 1]
    return f"in '{text}' at column {position[1]}: {lines[-1].strip()}"


_SPEC_POSITION = re.compile(r"pass-pipeline:\d+:(\d+)")


def run(argv: Sequence[str] | None) -> int:
    try:
        tool = QmmarOptMain(args=argv)
    except ArgSpecParseError as err:  # -p or -t text that does not parse
        print(f"qmmar-opt: error: {spec_error(err)}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, DiagnosticException) as err:  # an unknown pass, a bad pass or target option
        print(f"qmmar-opt: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        tool.run()  # type: ignore[no-untyped-call]  # unannotated in xDSL
    except (ParseError, DiagnosticException) as err:  # LocatedError, verifier and pass failures
        print(located(err, tool.get_input_name()), file=sys.stderr)
        return EXIT_FAILURE
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return tool_main("qmmar-opt", lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
