"""Reading and printing MLIR: values survive a round trip bit for bit, and every failure of
xDSL's parser on bad input is one located error."""

import io
import struct

import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import BytesAttr, DenseIntOrFPElementsAttr, FloatAttr, TensorType, bf16, f16, f32, f64
from xdsl.utils.exceptions import ParseError

from helpers import deadline
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError
from qmmar.source import LocatingParser, parse_module
from qmmar.xdsl_workarounds import FaithfulPrinter

FLOATS = {"f16": (f16, np.float16), "bf16": (bf16, ml_dtypes.bfloat16),
          "f32": (f32, np.float32), "f64": (f64, np.float64)}  # fmt: skip
BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def printed(attr) -> str:
    out = io.StringIO()
    FaithfulPrinter(stream=out).print_attribute(attr)
    return out.getvalue()


def read_attr(text: str):
    return LocatingParser(qmmar_context(), text, "t.mlir").parse_attribute()


def dense(type_name: str, bits, shape: list[int]) -> DenseIntOrFPElementsAttr:
    element, dtype = FLOATS[type_name]
    raw = np.asarray(bits, dtype=BITS[np.dtype(dtype).itemsize]).tobytes()
    return DenseIntOrFPElementsAttr(TensorType(element, shape), BytesAttr(raw))


def assert_round_trips(attr: DenseIntOrFPElementsAttr) -> None:
    text = printed(attr)
    back = read_attr(text)
    assert back.data.data == attr.data.data, text
    assert printed(back) == text


@pytest.mark.parametrize("type_name", ["f16", "bf16"])
def test_every_16_bit_value_round_trips_in_lists_and_splats(type_name):
    every = np.arange(1 << 16, dtype=np.uint16)
    for chunk in np.split(every, len(every) // 64):  # lists: xDSL prints up to 100 elements one by one
        assert_round_trips(dense(type_name, chunk, [8, 8]))
    specials = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE01] if type_name == "f16" else [
        0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1]  # fmt: skip
    for bits in [*specials, *every[::257]]:  # splats
        assert_round_trips(dense(type_name, [bits] * 3, [3]))


wide_bits = st.one_of(st.integers(0, 2**32 - 1).map(lambda b: ("f32", b)),
                      st.integers(0, 2**64 - 1).map(lambda b: ("f64", b)))  # fmt: skip


@given(st.lists(wide_bits, min_size=1, max_size=6), st.booleans())
@example([("f32", 0x4D9553D0)], False)  # 313162240.0: xDSL prints it as its bit pattern
@example([("f32", 0x7FC00001), ("f32", 0x00000000), ("f32", 0x80000000), ("f32", 0xFF800000)], False)
@example([("f32", 0x00000000), ("f32", 0x80000000)], False)  # [0.0, -0.0] is no splat
@example([("f64", 0x7FF0000000000001)], True)
@settings(max_examples=300)
def test_random_f32_and_f64_round_trip(values, splat):
    type_name = values[0][0]
    bits = [b for t, b in values if t == type_name]
    shape = [4] if splat else [len(bits)]
    assert_round_trips(dense(type_name, [bits[0]] * 4 if splat else bits, shape))


@given(st.integers(0, 2**32 - 1))
@example(0x4D9553D0)
def test_float_attributes_round_trip(bits):
    value = struct.unpack("<f", struct.pack("<I", bits))[0]
    attr = FloatAttr(value, f32)
    back = read_attr(printed(attr))
    assert struct.pack("<f", back.value.data) == struct.pack("<f", value) or value != value


@pytest.mark.parametrize(
    "literal, message",
    [("dense<-0x3C00> : tensor<2xf16>", "hexadecimal float literal should not have a leading minus"),
     ("dense<0x13C00> : tensor<2xf16>", "hexadecimal float constant out of range for type f16"),
     ("dense<[1.0, (2.0, 3.0)]> : tensor<2xf32>", "expected a real value for element type f32, not a complex one"),
     ("dense<[(1, 2), 3]> : tensor<2xcomplex<i32>>",
      "expected a complex value (re, im) for element type complex<i32>")],
)  # fmt: skip
def test_bad_dense_elements_are_located_errors(literal, message):
    with pytest.raises(ParseError) as err:
        read_attr(literal)
    assert err.value.msg == message


def test_hex_elements_are_bit_patterns():
    assert read_attr("dense<[0x3C00, 0xC000]> : tensor<2xf16>").get_values() == (1.0, -2.0)
    assert read_attr("dense<0x4D9553D0> : tensor<2xf32>").get_values() == (313162240.0, 313162240.0)


def elementwise(type_name: str, bits: list[int], splat: bool = False) -> str:
    """A dense literal as MLIR writes it element by element, each element as its bit pattern."""
    body = f"{bits[0]:#x}" if splat else f"[{', '.join(f'{b:#x}' for b in bits)}]"
    return f"dense<{body}> : tensor<{len(bits)}x{type_name}>"


def stored(attr: DenseIntOrFPElementsAttr, type_name: str) -> list[int]:
    return np.frombuffer(attr.data.data, dtype=BITS[np.dtype(FLOATS[type_name][1]).itemsize]).tolist()


@pytest.mark.parametrize("type_name", ["f16", "bf16"])
def test_every_16_bit_pattern_written_by_mlir_is_read_as_those_bits(type_name):
    """mlir-opt writes NaN payloads and signalling NaNs as bit patterns; a Python float on the
    way would quiet them (f32 0x7F800001 became 0x7FC00001, f16 0x7C01 became 0x7E00)."""
    every = np.arange(1 << 16, dtype=np.uint16).tolist()
    for start in range(0, len(every), 4096):
        chunk = every[start : start + 4096]
        assert stored(read_attr(elementwise(type_name, chunk)), type_name) == chunk
    for bits in (0x7C01, 0x7E01, 0xFD00, 0x7F81, 0xFFC1):
        assert stored(read_attr(elementwise(type_name, [bits] * 3, splat=True)), type_name) == [bits] * 3


@given(st.lists(wide_bits, min_size=1, max_size=6), st.booleans())
@example([("f32", 0x7F800001), ("f32", 0x4D9553D0)], False)
@example([("f64", 0x7FF0000000000001)], True)
@settings(max_examples=300)
def test_f32_and_f64_bit_patterns_written_by_mlir_are_read_as_those_bits(values, splat):
    type_name = values[0][0]
    bits = [b for t, b in values if t == type_name]
    bits = [bits[0]] * len(bits) if splat else bits
    assert stored(read_attr(elementwise(type_name, bits, splat)), type_name) == bits


# xDSL's string regex backtracks exponentially on these: 40 characters used to never return.
@given(st.text(alphabet='ab \\"\t', max_size=60), st.integers(0, 3))
@example("abcdefghijklmnopqrstuvwxyz0123456789abcd", 0)
@example("\\" * 41, 0)
@example(" a" * 30, 2)
@settings(max_examples=200)
def test_string_literals_lex_in_linear_time(body, line_breaks):
    text = f'func.func @f() {{\n  %0 = "qmm.x{body}' + "\n" * line_breaks + "  func.return\n}\n"
    with deadline(10):
        try:
            parse_module(qmmar_context(), text, "s.mlir")
        except LocatedError as err:
            assert str(err).startswith("s.mlir:")


def test_a_long_unclosed_string_is_one_error_at_its_quote():
    text = 'func.func @f() {\n  %0 = "qmm.all_reduce' + " abcdefgh" * 20_000 + "\n}\n"
    with deadline(10), pytest.raises(LocatedError) as err:
        parse_module(qmmar_context(), text, "s.mlir")
    assert str(err.value) == "s.mlir:2:8: error: expected '\"' in string literal: it is not closed on its line"


@pytest.mark.parametrize(
    "body, error",
    [('"a\\qb"', "s.mlir:1:13: error: unknown escape in string literal"),
     ("@\"abc", "s.mlir:1:12: error: expected '\"' in string literal: it is not closed on its line")],
)  # fmt: skip
def test_string_literal_errors_are_mlirs(body, error):
    with pytest.raises(LocatedError) as err:
        parse_module(qmmar_context(), f"func.func {body}() {{\n}}\n", "s.mlir")
    assert str(err.value) == error


def test_ops_are_located_where_they_are_written():
    module = parse_module(qmmar_context(), "func.func @f() {\n  func.return\n}\n", "p.mlir")
    ret = next(op for op in module.walk() if op.name == "func.return")
    assert (ret.location.filename.data, ret.location.line.data, ret.location.column.data) == ("p.mlir", 2, 3)
