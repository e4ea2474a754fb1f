"""MLIR text in and out, the way a compiler user expects: every op located, every error one
line, and nothing that reads back as another value.

xDSL keeps a location only where the source spells `loc(...)`; `LocatingParser` gives every
other op the `file:line:col` where it was written, as mlir-opt does, so that verifier errors
and fusion remarks can point at the source.  It also turns whatever xDSL's parser raises on
bad input (a verifier, an assertion, the recursion limit) into a located `ParseError`, lexes
string literals in linear time, and reads a hexadecimal literal of a float element as its
bit pattern, as MLIR does.  `FaithfulPrinter` prints every float constant so that it reads
back bit for bit.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from typing import IO, Any

from xdsl.context import Context
from xdsl.dialects.builtin import (
    AnyFloat,
    BytesAttr,
    ComplexType,
    DenseIntOrFPElementsAttr,
    FileLineColLoc,
    IntAttr,
    ModuleOp,
    StringAttr,
    UnknownLoc,
    UnregisteredOp,
)
from xdsl.ir import Attribute, Operation
from xdsl.parser import AttrParser, Parser, ParserState
from xdsl.printer import Printer
from xdsl.targets.mlir import MLIRTarget
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.utils.lexer import Input, Span
from xdsl.utils.mlir_lexer import MLIRLexer, MLIRToken, MLIRTokenKind

from qmmar.dialects.location import location_text
from qmmar.passes.options import CheckedOptions

STDIN = "-"
"""The file name that means standard input, on every tool."""


class SourceError(DiagnosticException):
    """A user-facing error: printed as `file:line:col: error: message`, exit code 1."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: error: {message}")
        self.where, self.message = where, message


def display_name(path: str) -> str:
    """The name a file has in locations and messages: `<stdin>` for standard input, as MLIR."""
    return "<stdin>" if path == STDIN else path


def first_line(err: BaseException) -> str:
    """An exception's message on one line (xDSL appends notes and IR dumps after it)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _nested_too_deeply() -> str:
    return f"nested too deeply: Python's recursion limit ({sys.getrecursionlimit()}) is reached here"


class _Lexer(MLIRLexer):
    """xDSL's lexer, with string literals checked before its regex sees them.

    xDSL matches a string literal with `"(?:[^"...]+|\\...)*"`, which backtracks
    exponentially when the closing quote is missing: a line with an unmatched `"` and forty
    more characters never returns.  One pass over the literal finds the closing quote or the
    first broken escape (the messages are MLIR's); xDSL's regex then only ever matches.
    """

    _PLAIN = re.compile(r'[^"\\\n\v\f]*')
    _ESCAPE = re.compile(r'\\(?:["nt\\]|[0-9A-Fa-f]{2})')

    def _lex_string_literal(self, start_pos: int) -> MLIRToken:
        text = self.input.content
        pos = start_pos + 1
        while True:
            pos = self._PLAIN.match(text, pos).end()  # type: ignore[union-attr]  # `*` always matches
            if text.startswith('"', pos):
                return super()._lex_string_literal(start_pos)
            if not text.startswith("\\", pos):
                raise ParseError(Span(start_pos, start_pos + 1, self.input),
                                 "expected '\"' in string literal: it is not closed on its line")  # fmt: skip
            escape = self._ESCAPE.match(text, pos)
            if escape is None:
                raise ParseError(Span(pos, pos + 1, self.input), "unknown escape in string literal")
            pos = escape.end()


class _TensorLiteralElement(AttrParser._TensorLiteralElement):
    """An element of a `dense<...>` literal, converted as MLIR converts it.

    A hexadecimal integer for a float element type is the element's bit pattern: xDSL prints
    f32 313162240.0 as 0x4D9553D0 (MLIR's form) and would read it back as 1301632976.0.
    """

    def to_type(self, parser: AttrParser, type: Any) -> Any:
        position = parser._elements_converted if isinstance(parser, LocatingParser) else 0
        if isinstance(parser, LocatingParser):
            parser._elements_converted += 1
        if isinstance(type, AnyFloat) and isinstance(self.value, tuple):
            parser.raise_error(f"expected a real value for element type {type}, not a complex one", self.span)
        if isinstance(type, ComplexType) and not isinstance(self.value, tuple):
            parser.raise_error(f"expected a complex value (re, im) for element type {type}", self.span)
        hexadecimal = self.span.text.lstrip("-")[:2] in ("0x", "0X")
        if isinstance(type, AnyFloat) and isinstance(self.value, int) and hexadecimal:
            value = self._from_bits(parser, type, self.value)
            if isinstance(parser, LocatingParser):
                parser._bit_patterns.append((position, self.value))
            return value
        return super().to_type(parser, type)

    def _from_bits(self, parser: AttrParser, type: AnyFloat, bits: int) -> float:
        if self.is_negative or self.span.text.startswith("-"):
            parser.raise_error("hexadecimal float literal should not have a leading minus", self.span)
        size = type.compile_time_size
        if bits >= 1 << (8 * size):
            parser.raise_error(f"hexadecimal float constant out of range for type {type}", self.span)
        return type.unpack(bits.to_bytes(size, "little"), 1)[0]


def _with_bit_patterns(
    attr: DenseIntOrFPElementsAttr, patterns: list[tuple[int, int]], elements: int
) -> DenseIntOrFPElementsAttr:
    """`attr` with the elements written as bit patterns set to exactly those bits.  Through a
    Python float a NaN loses its payload and a signalling NaN is quieted; MLIR keeps both.
    `elements` literal elements were read: one, for a splat, stands for them all."""
    size = attr.type.element_type.compile_time_size
    data = bytearray(attr.data.data)
    for position, bits in patterns:
        for start in range(0, len(data), size) if elements == 1 else [position * size]:
            data[start : start + size] = bits.to_bytes(size, "little")
    return DenseIntOrFPElementsAttr(attr.type, BytesAttr(bytes(data)))


class LocatingParser(Parser):
    """xDSL's parser with mlir-opt's locations and one located `ParseError` for any failure."""

    _TensorLiteralElement = _TensorLiteralElement
    _custom_form = False  # whether the op being parsed is written in its custom form

    def __init__(self, ctx: Context, text: str, name: str, line_offset: int = 0) -> None:
        super().__init__(ctx, "", name)
        self._parser_state = ParserState(_Lexer(Input(text, name)))
        self._name = StringAttr(name)
        self._line_offset = line_offset
        self._line_starts = [0]
        pos = text.find("\n")
        while pos != -1:
            self._line_starts.append(pos + 1)
            pos = text.find("\n", pos + 1)
        self._op_names: list[str] = []  # the ops being parsed, outermost first
        self._elements_converted = 0  # of the dense literal being read
        self._bit_patterns: list[tuple[int, int]] = []  # its elements written as float bit patterns

    def parse_dense_int_or_fp_elements_attr(self, type: Any) -> DenseIntOrFPElementsAttr:
        outer = self._elements_converted, self._bit_patterns
        self._elements_converted, self._bit_patterns = 0, []
        try:
            attr = super().parse_dense_int_or_fp_elements_attr(type)
            if not self._bit_patterns:
                return attr
            return _with_bit_patterns(attr, self._bit_patterns, self._elements_converted)
        finally:
            self._elements_converted, self._bit_patterns = outer

    def parse_module(self, allow_implicit_module: bool = True) -> ModuleOp:
        try:
            return super().parse_module(allow_implicit_module)
        except ParseError:
            raise
        except RecursionError:
            self.raise_error(_nested_too_deeply())
        except Exception as err:  # outside any op: an attribute alias, say
            self.raise_error(f"cannot parse this: xDSL's parser raised {type(err).__name__}: {first_line(err)}")

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
                self.raise_error(f"{name}{first_line(err)}", start)
            self.raise_error(f"{name}cannot be parsed: xDSL's parser raised {type(err).__name__}: "
                             f"{first_line(err)}", start)  # fmt: skip
        finally:
            del self._op_names[depth:]
        if isinstance(op.location, UnknownLoc):
            line = bisect_right(self._line_starts, start.start)
            col = start.start - self._line_starts[line - 1] + 1
            op.location = FileLineColLoc(self._name, IntAttr(line + self._line_offset), IntAttr(col))
        return op


def parse_error(err: ParseError) -> SourceError:
    loc = err.span.get_location()
    return SourceError(f"{loc.file}:{loc.line}:{loc.col}", err.msg)


def decode(data: bytes, name: str) -> str:
    """The source text; bytes that are not UTF-8 are a located error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, line_start) + 1
        col = len(data[line_start : err.start].decode("utf-8")) + 1
        byte = data[err.start]
        raise SourceError(f"{name}:{line}:{col}", f"the input is not UTF-8 text (byte 0x{byte:02x})") from None


def parse_module(ctx: Context, text: str, name: str) -> ModuleOp:
    """Parse and verify a module; any problem becomes one located `SourceError`."""
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
        raise SourceError(name, f"cannot read the input: {err.strerror or err}") from None


def read_module(ctx: Context, path: str) -> ModuleOp:
    """Parse and verify the file at `path` (`-`: standard input)."""
    return parse_module(ctx, read_source(path), display_name(path))


def op_error(op: Operation, message: str) -> SourceError:
    return SourceError(location_text(op.location), f"'{op.name}' op {message}")


def verify(module: ModuleOp) -> None:
    """Verify op by op in source order; the first failure becomes a located `SourceError`."""
    op: Operation = module
    try:
        for op in module.walk():
            op.verify(verify_nested_ops=False)
    except DiagnosticException as err:
        raise op_error(op, first_line(err)) from None
    except RecursionError:
        raise op_error(op, f"is {_nested_too_deeply()}") from None
    except Exception as err:  # a verifier that crashed on this op is still about this op
        raise op_error(op, f"cannot be verified: xDSL raised {type(err).__name__}: {first_line(err)}") from None


class FaithfulPrinter(Printer):
    """xDSL's printer, except for the few float constants that it prints lossily.

    xDSL prints a `dense<...>` of at most 100 floats element by element, a splat when the
    values compare equal, and a NaN as the canonical NaN of its type: `[0.0, -0.0]` becomes
    the splat `dense<0.0>`, and a NaN's payload is lost.  Those constants are printed as
    MLIR's hexadecimal blob, `dense<"0x...">`, which holds the exact bytes.
    """

    def print_attribute(self, attribute: Attribute) -> None:
        if isinstance(attribute, DenseIntOrFPElementsAttr) and _printed_lossily(attribute):
            self.print_string(f'dense<"0x{attribute.data.data.hex().upper()}"> : ')
            self.print_attribute(attribute.get_type())
            return
        super().print_attribute(attribute)


def _printed_lossily(attr: DenseIntOrFPElementsAttr) -> bool:
    if not isinstance(attr.get_element_type(), AnyFloat) or not 0 < len(attr) <= 100:
        return False  # integers, empty tensors, and the hexadecimal form for more than 100
    values = attr.get_values()
    if any(v != v for v in values):  # NaN
        return True
    raw, size = attr.data.data, len(attr.data.data) // len(attr)
    value_splat = all(v == values[0] for v in values)
    return value_splat and raw != raw[:size] * len(attr)


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
