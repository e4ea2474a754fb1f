"""MLIR text in and out, the way a compiler user expects: every op located, every error one
located line that says why, and nothing that reads back as another value.

xDSL keeps a location only where the source spells `loc(...)`; `LocatingParser` gives every
other op the `file:line:col` where it was written, as mlir-opt does, so that verifier errors
and fusion remarks can point at the source.  It turns whatever xDSL's parser raises on bad
input (a verifier, an assertion, the recursion limit) into a `LocatedError` at the place
mlir-opt would name.  The fixes of xDSL's reading and printing of MLIR are in
`xdsl_workarounds`.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr, UnknownLoc, UnregisteredOp
from xdsl.ir import AttributeInvT, Operation, SSAValue
from xdsl.parser import ParserState, UnresolvedOperand
from xdsl.targets.mlir import MLIRTarget
from xdsl.utils.exceptions import DiagnosticException, MultipleSpansParseError, ParseError
from xdsl.utils.lexer import Input, Span
from xdsl.utils.mlir_lexer import MLIRTokenKind

from qmmar.dialects.diagnostics import LocatedError, one_line
from qmmar.passes.options import CheckedOptions
from qmmar.xdsl_workarounds import BitPatternParser, FaithfulPrinter, StringCheckingLexer

STDIN = "-"
"""The file name that means standard input, on every tool."""

_NOTHING_PARSED = "Could not parse entire input!"  # xDSL 0.74.0's words for an input without an op, too
_UNDEFINED_VALUES = "values used but not defined"  # xDSL 0.74.0's words, at the end of the input


def display_name(path: str) -> str:
    """The name a file has in locations and messages: `<stdin>` for standard input, as MLIR."""
    return "<stdin>" if path == STDIN else path


def _nested_too_deeply() -> str:
    return f"nested too deeply: Python's recursion limit ({sys.getrecursionlimit()}) is reached here"


class LocatingParser(BitPatternParser):
    """xDSL's parser with mlir-opt's locations and one located `ParseError` for any failure."""

    _custom_form = False  # whether the op being parsed is written in its custom form

    def __init__(self, ctx: Context, text: str, name: str, line_offset: int = 0) -> None:
        super().__init__(ctx, "", name)
        self._parser_state = ParserState(StringCheckingLexer(Input(text, name)))
        self._name = StringAttr(name)
        self._line_offset = line_offset
        self._line_starts = [0]
        pos = text.find("\n")
        while pos != -1:
            self._line_starts.append(pos + 1)
            pos = text.find("\n", pos + 1)
        self._op_names: list[str] = []  # the ops being parsed, outermost first
        self._first_uses: dict[str, Span] = {}  # of each value used before its definition

    def parse_module(self, allow_implicit_module: bool = True) -> ModuleOp:
        try:
            return super().parse_module(allow_implicit_module)
        except ParseError as err:
            at_end = self._current_token.kind == MLIRTokenKind.EOF
            if at_end and err.msg == _NOTHING_PARSED and allow_implicit_module:
                return ModuleOp([])  # an empty module, as mlir-opt reads an input of no op
            if at_end and err.msg == _NOTHING_PARSED:
                self.raise_error("source must contain a single top-level operation, found: 0", 0)
            if err.msg.startswith(_UNDEFINED_VALUES):  # at its first use, as mlir-opt says it
                name, span = min(((n, s) for n, s in self._first_uses.items() if n in self.forward_ssa_references),
                                 key=lambda use: use[1].start)  # fmt: skip
                self.raise_error(f"use of undeclared SSA value name %{name}", span)
            raise
        except RecursionError:
            self.raise_error(_nested_too_deeply())
        except Exception as err:  # outside any op: an attribute alias, say
            self.raise_error(f"cannot parse this: xDSL's parser raised {type(err).__name__}: {one_line(err)}")

    def resolve_operand(self, operand: UnresolvedOperand, type: AttributeInvT) -> SSAValue[AttributeInvT]:
        if operand.operand_name not in self.ssa_values:
            self._first_uses.setdefault(operand.operand_name, operand.span)
        return super().resolve_operand(operand, type)

    def _parse_op_result_list(self) -> list[tuple[Span, int]]:
        results = super()._parse_op_result_list()
        self._custom_form = self._current_token.kind == MLIRTokenKind.BARE_IDENT  # else "name"(...)
        return results

    def _get_op_by_name(self, name: str) -> type[Operation]:
        op_type = super()._get_op_by_name(name)
        if issubclass(op_type, UnregisteredOp) and (self._custom_form or self._known_namespace(name)):
            # A context that allows unregistered ops (qmmar-run, for an imported program's torch.*
            # ops) allows them as MLIR does: in generic form, outside the dialects it knows.  A
            # typo'd qmm op is what an unregistering context would say it is.
            self.raise_error(f"Operation {name} is not registered")
        self._op_names.append(name)
        return op_type

    def _known_namespace(self, name: str) -> bool:
        namespace = name.partition(".")[0]
        return namespace in self.ctx.registered_dialect_names or any(
            d.name == namespace for d in self.ctx.loaded_dialects
        )

    def parse_operation(self) -> Operation:
        start = self._current_token.span
        depth = len(self._op_names)
        try:
            op = super().parse_operation()
        except (ParseError, RecursionError):
            raise
        except Exception as err:  # raised while building this op: name it and locate it
            name = f"'{self._op_names[depth]}' op " if len(self._op_names) > depth else ""
            if isinstance(err, DiagnosticException):
                self.raise_error(f"{name}{one_line(err)}", start)
            self.raise_error(f"{name}cannot be parsed: xDSL's parser raised {type(err).__name__}: "
                             f"{one_line(err)}", start)  # fmt: skip
        finally:
            del self._op_names[depth:]
        if isinstance(op.location, UnknownLoc):
            line = bisect_right(self._line_starts, start.start)
            col = start.start - self._line_starts[line - 1] + 1
            op.location = FileLineColLoc(self._name, IntAttr(line + self._line_offset), IntAttr(col))
        return op


def parse_error(err: ParseError) -> LocatedError:
    """The parser's error where mlir-opt puts it: a missing token (`expected ...`) is missing
    at the end of the text before it, not at the next line's first token; a block that is
    never defined is named where it is used, not at the end of its region."""
    span, message = err.span, err.msg
    if isinstance(err, MultipleSpansParseError) and err.refs and (first_use := err.refs[0][1]) is not None:
        span, message = err.refs[0][0], first_use  # a block used and never defined: where it is used
    if message[:8].lower() == "expected" and isinstance(span.input.content, str):
        end = _end_of_text_before(span.input.content, span.start)
        span = Span(end, end, span.input)  # a plain span: a token's own (a string literal) checks its text
    loc = span.get_location()
    return LocatedError(f"{loc.file}:{loc.line}:{loc.col}", message)


def _end_of_text_before(text: str, pos: int) -> int:
    """`pos`, or, when it starts its line, the end of the last text before it that is neither
    blank nor a comment (MLIR's `Parser::emitWrongTokenError`)."""
    before = text[:pos].rstrip(" \t")
    if before and not before.endswith(("\n", "\r")):
        return pos  # the token is not the first on its line
    while before.endswith(("\n", "\r")):
        before = before[:-1]
        line_start = max(before.rfind("\n"), before.rfind("\r")) + 1
        if (comment := before.find("//", line_start)) != -1:
            before = before[:comment]
        before = before.rstrip(" \t")
    return len(before) if before else pos


def decode(data: bytes, name: str) -> str:
    """The source text; bytes that are not UTF-8 are a located error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, line_start) + 1
        col = len(data[line_start : err.start].decode("utf-8")) + 1
        byte = data[err.start]
        raise LocatedError(f"{name}:{line}:{col}", f"the input is not UTF-8 text (byte 0x{byte:02x})") from None


def parse_module(ctx: Context, text: str, name: str) -> ModuleOp:
    """Parse and verify a module; any problem becomes one `LocatedError`."""
    try:
        module = LocatingParser(ctx, text, name).parse_module()
    except ParseError as err:
        raise parse_error(err) from None
    verify(module)
    return module


def read_source(path: str) -> str:
    """The text of the file at `path` (`-`: standard input)."""
    name = display_name(path)
    try:
        if path == STDIN:
            return decode(sys.stdin.buffer.read(), name)
        with open(path, "rb") as f:
            return decode(f.read(), name)
    except OSError as err:
        raise LocatedError(name, f"cannot read the input: {err.strerror or err}") from None


def read_module(ctx: Context, path: str) -> ModuleOp:
    """Parse and verify the file at `path` (`-`: standard input)."""
    return parse_module(ctx, read_source(path), display_name(path))


def verify(module: ModuleOp) -> None:
    """Verify op by op in source order; the first failure becomes a `LocatedError`."""
    op: Operation = module
    try:
        for op in module.walk():
            op.verify(verify_nested_ops=False)
    except DiagnosticException as err:
        raise LocatedError.at(op, one_line(err)) from None
    except RecursionError:
        raise LocatedError.at(op, f"is {_nested_too_deeply()}") from None
    except Exception as err:  # a verifier that crashed on this op is still about this op
        raise LocatedError.at(op, f"cannot be verified: xDSL raised {type(err).__name__}: {one_line(err)}") from None


class FaithfulMLIRTarget(CheckedOptions, MLIRTarget):
    """The `mlir` target of qmmar-opt: MLIR text through `FaithfulPrinter`."""

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        if self.syntax_highlight:  # colours for a terminal: xDSL's own printer
            return super().emit(ctx, module, output)
        printer = FaithfulPrinter(
            stream=output,
            print_generic_format=self.print_generic_format,
            print_properties_as_attributes=self.print_properties_as_attributes,
            print_debuginfo=self.print_debuginfo,
        )
        printer.print_op(module)
        printer.print_metadata(ctx.loaded_dialects)
        print("\n", file=output)
