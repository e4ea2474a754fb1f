"""Three places where xDSL 0.74.0 reads or prints MLIR differently from MLIR, fixed by
overriding xDSL internals (each names the xDSL version it was written against: on an upgrade,
check whether xDSL still needs it, and that the internal it overrides is still there).

- `StringCheckingLexer`: a string literal lexed in linear time.
- `BitPatternParser`: a hexadecimal literal of a float element read as its bit pattern.
- `FaithfulPrinter`: every float constant printed so that it reads back bit for bit.
"""

from __future__ import annotations

import re
from typing import Any

from xdsl.dialects.builtin import AnyFloat, BytesAttr, ComplexType, DenseIntOrFPElementsAttr
from xdsl.ir import Attribute
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError
from xdsl.utils.lexer import Span
from xdsl.utils.mlir_lexer import MLIRLexer, MLIRToken


class StringCheckingLexer(MLIRLexer):
    """xDSL's lexer, with string literals checked before its regex sees them (xDSL 0.74.0:
    overrides `MLIRLexer._lex_string_literal`).

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
    """An element of a `dense<...>` literal, converted as MLIR converts it (xDSL 0.74.0:
    overrides `AttrParser._TensorLiteralElement.to_type`).

    A hexadecimal integer for a float element type is the element's bit pattern: xDSL prints
    f32 313162240.0 as 0x4D9553D0 (MLIR's form) and would read it back as 1301632976.0.
    """

    def to_type(self, parser: AttrParser, type: Any) -> Any:
        position = parser._elements_converted if isinstance(parser, BitPatternParser) else 0
        if isinstance(parser, BitPatternParser):
            parser._elements_converted += 1
        if isinstance(type, AnyFloat) and isinstance(self.value, tuple):
            parser.raise_error(f"expected a real value for element type {type}, not a complex one", self.span)
        if isinstance(type, ComplexType) and not isinstance(self.value, tuple):
            parser.raise_error(f"expected a complex value (re, im) for element type {type}", self.span)
        hexadecimal = self.span.text.lstrip("-")[:2] in ("0x", "0X")
        if isinstance(type, AnyFloat) and isinstance(self.value, int) and hexadecimal:
            value = self._from_bits(parser, type, self.value)
            if isinstance(parser, BitPatternParser):
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


class BitPatternParser(Parser):
    """xDSL's parser, reading a float element written in hexadecimal as its bits (xDSL 0.74.0:
    overrides `Parser._TensorLiteralElement` and `parse_dense_int_or_fp_elements_attr`)."""

    _TensorLiteralElement = _TensorLiteralElement
    _elements_converted = 0  # of the dense literal being read
    _bit_patterns: list[tuple[int, int]] = []  # its elements written as float bit patterns (never mutated here)

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


class FaithfulPrinter(Printer):
    """xDSL's printer, except for the few float constants that it prints lossily (xDSL
    0.74.0: overrides `Printer.print_attribute` for `DenseIntOrFPElementsAttr`).

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
