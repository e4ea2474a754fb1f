"""Reading MLIR the way a compiler user expects: every op located, every error one line.

xDSL keeps a location only where the source spells `loc(...)`; `LocatingParser` gives every
other op the `file:line:col` where it was written, as mlir-opt does, so that verifier errors
and fusion remarks can point at the source.
"""

from __future__ import annotations

from bisect import bisect_right

from xdsl.context import Context
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr, UnknownLoc
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException

from qmmar.dialects.location import location_text


class SourceError(DiagnosticException):
    """A user-facing error: printed as `file:line:col: error: message`, exit code 1."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: error: {message}")
        self.where, self.message = where, message


class LocatingParser(Parser):
    def __init__(self, ctx: Context, text: str, name: str, line_offset: int = 0) -> None:
        super().__init__(ctx, text, name)
        self._name = StringAttr(name)
        self._line_offset = line_offset
        self._op_name = ""  # the op being parsed, for errors xDSL raises while building it
        self._line_starts = [0]
        pos = text.find("\n")
        while pos != -1:
            self._line_starts.append(pos + 1)
            pos = text.find("\n", pos + 1)

    def _get_op_by_name(self, name: str) -> type[Operation]:
        self._op_name = name
        return super()._get_op_by_name(name)

    def parse_operation(self) -> Operation:
        span = self._current_token.span
        start = span.start
        try:
            op = super().parse_operation()
        except VerifyException as err:  # xDSL's format parser checks operand types as it reads them
            self.raise_error(f"'{self._op_name}' op {err}", span)
        if isinstance(op.location, UnknownLoc):
            line = bisect_right(self._line_starts, start)
            col = start - self._line_starts[line - 1] + 1
            op.location = FileLineColLoc(self._name, IntAttr(line + self._line_offset), IntAttr(col))
        return op


def parse_error(err: ParseError) -> SourceError:
    loc = err.span.get_location()
    return SourceError(f"{loc.file}:{loc.line}:{loc.col}", err.msg)


def parse_module(ctx: Context, text: str, name: str) -> ModuleOp:
    """Parse and verify a module; any problem becomes one located `SourceError`."""
    try:
        module = LocatingParser(ctx, text, name).parse_module()
    except ParseError as err:
        raise parse_error(err) from None
    verify(module)
    return module


def read_module(ctx: Context, path: str) -> ModuleOp:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise SourceError(path, f"cannot read the input: {getattr(err, 'strerror', None) or err}") from None
    return parse_module(ctx, text, path)


def op_error(op: Operation, message: str) -> SourceError:
    return SourceError(location_text(op.location), f"'{op.name}' op {message}")


def verify(module: ModuleOp) -> None:
    """Verify op by op in source order; the first failure becomes a located `SourceError`."""
    for op in module.walk():
        try:
            op.verify(verify_nested_ops=False)
        except (VerifyException, DiagnosticException) as err:
            raise op_error(op, str(err)) from None
