"""`qmmar-opt`: xDSL's opt driver with qmmar's dialects, passes and targets, and errors a
script can trust: one located line on stderr, exit code 1, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import get_pass_option_infos
from xdsl.utils.exceptions import (
    ArgSpecParseError,
    DiagnosticException,
    ParseError,
    PassFailedException,
    VerifyException,
)
from xdsl.xdsl_opt_main import xDSLOptMain

from qmmar.source import LocatingParser, SourceError, parse_error, verify
from qmmar.universe import QMMAR_UNIVERSE

DESCRIPTION = """\
qmmar's MLIR optimizer: xdsl-opt with the qmm and mc2 dialects, the qmmar passes and the
aclnn-cpp target. Reads FILE (or stdin), verifies it (every constraint of
aclnnQuantMatmulAllReduceV3 for mc2 ops), runs the -p pipeline and prints the result.
Errors print as FILE:LINE:COL: error: MESSAGE and exit with code 1."""


def qmmar_help() -> str:
    """qmmar's passes with their options and defaults, and its target, for --help."""
    lines = ["qmmar passes (-p 'name{option=value ...}', options in kebab-case):"]
    for name, factory in QMMAR_UNIVERSE.all_passes.items():
        pass_type = factory()
        options = " ".join(f"{o.name.replace('_', '-')}={o.default_value}" for o in get_pass_option_infos(pass_type))
        lines.append(f"  {name}{{{options}}}" if options else f"  {name}")
        lines.append(f"      {(pass_type.__doc__ or '').strip().splitlines()[0]}")
    lines.append("qmmar targets (-t): " + ", ".join(QMMAR_UNIVERSE.all_targets))
    return "\n".join(lines)


class QmmarOptMain(xDSLOptMain):
    def __init__(self, args: Sequence[str] | None = None):
        self._module: ModuleOp | None = None
        self._chunk_offset = 0  # the line of the --split-input-file chunk being parsed
        super().__init__(description=DESCRIPTION, args=args)

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.formatter_class = argparse.RawDescriptionHelpFormatter
        arg_parser.epilog = qmmar_help()

    def register_all_frontends(self) -> None:
        def parse_mlir(io: IO[bytes]) -> ModuleOp:
            text = io.read().decode("utf-8")
            parser = LocatingParser(self.ctx, text, self.get_input_name(), self._chunk_offset)
            return parser.parse_module(not self.args.no_implicit_module)

        self.available_frontends["mlir"] = parse_mlir

    def parse_chunk(self, chunk: IO[bytes], file_extension: str, start_offset: int = 0):
        self._chunk_offset = start_offset
        return super().parse_chunk(chunk, file_extension, start_offset)

    def apply_passes(self, prog: ModuleOp) -> None:
        self._module = prog
        verify(prog)  # before the pipeline, so that the error is located
        super().apply_passes(prog)

    def located(self, err: Exception) -> SourceError:
        """Turn whatever xDSL raised into one located error line."""
        if isinstance(err, SourceError):
            return err
        if isinstance(err, ParseError):
            return parse_error(err)
        if isinstance(err, VerifyException | DiagnosticException) and self._module is not None:
            try:
                verify(self._module)
            except SourceError as located:
                return located
        return SourceError(self.get_input_name(), str(err).split("\n\n")[0])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        tool = QmmarOptMain(args=argv)
    except (ValueError, PassFailedException, ArgSpecParseError) as err:  # a bad -p pipeline
        print(f"qmmar-opt: error: {err}", file=sys.stderr)
        return 1
    try:
        tool.run()
    except OSError as err:
        print(f"{tool.get_input_name()}: error: cannot read the input: {err.strerror}", file=sys.stderr)
        return 1
    except (ParseError, DiagnosticException) as err:  # SourceError, verifier and pass failures
        print(tool.located(err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
