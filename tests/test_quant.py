"""The quant step (SEMANTICS.md step 5): exhaustive over f16, and the fast formulas against
the plain ones they replace, on generated bit patterns."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qmmar.dialects import numerics as nx

F16, BF16, F32 = np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32)
EVERY_F16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(F16)


def plain_f16(t: np.ndarray) -> np.ndarray:
    """f16(t) by numpy's own cast: RNE, inf beyond the range."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(t, dtype=F32).astype(F16)


def plain_sat8(h: np.ndarray) -> np.ndarray:
    """sat8 as SEMANTICS.md words it: RNE to an integer, saturate, NaN to 0."""
    with np.errstate(invalid="ignore"):
        r = np.rint(np.asarray(h).astype(F32))
    r = np.where(np.isnan(r), np.float32(0), r)
    return np.clip(r, -128, 127).astype(np.int8)


def plain_quant(z, s1):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return plain_sat8(plain_f16(z.astype(F32) / s1.astype(F32).reshape(-1)))


def test_sat8_on_every_f16_value():
    assert np.array_equal(nx.sat8(EVERY_F16), plain_sat8(EVERY_F16))


def test_quant_of_every_f16_value_by_one():
    """f32(z) / 1 is z itself, so quant runs its own f16 rounding on every half value."""
    z = EVERY_F16.reshape(256, 256)
    assert np.array_equal(nx.quant(z, np.ones(256, F16)), plain_sat8(z))


def test_quant_next_to_every_f16_rounding_boundary():
    """Every f32 value within 4 ulps of a half value or of a midpoint between two, over the
    range where rounding decides the int8 result: where a double rounding would show."""
    h = EVERY_F16[np.isfinite(EVERY_F16) & (np.abs(EVERY_F16.astype(F32)) <= 300)].astype(F32)
    h = np.sort(h)
    points = np.concatenate([h, (h[:-1] + h[1:]) / 2])  # midpoints are exact in f32
    bits = points.view(np.int32)[:, None] + np.arange(-4, 5, dtype=np.int32)
    t = bits.reshape(-1).view(F32)
    assert np.array_equal(nx.quant(t, np.ones(1, F16)), plain_sat8(plain_f16(t)))


def test_quant_of_the_special_values():
    t = np.array([np.nan, -np.nan, np.inf, -np.inf, 65504, 65520, -1e38, 1e-45, -0.0, 255.9, 256.1, 127.5, -128.5],
                 dtype=F32)  # fmt: skip
    assert nx.quant(t, np.ones(1, F16)).tolist() == [0, 0, 127, -128, 127, 127, -128, 0, 0, 127, 127, 127, -128]


def bit_patterns(dtype: np.dtype, shape) -> st.SearchStrategy[np.ndarray]:
    """Arrays of any bit patterns (NaNs, infinities, subnormals, zeros of both signs)."""
    uint = np.dtype(f"u{dtype.itemsize}")
    return hnp.arrays(uint, shape).map(lambda a: a.view(dtype))


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([F16, BF16]),
    rows=st.integers(0, 5),
    n=st.integers(1, 40),
    scale_shape=st.sampled_from(["n", "1n"]),
)
def test_quant_matches_the_plain_formula(data, dtype, rows, n, scale_shape):
    z = data.draw(bit_patterns(dtype, (rows, n)))
    s1 = data.draw(bit_patterns(dtype, (n,) if scale_shape == "n" else (1, n)))
    assert np.array_equal(nx.quant(z, s1), plain_quant(z, s1))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), world=st.sampled_from([1, 2, 4, 8]), n=st.integers(1, 30), dtype=st.sampled_from([F16, BF16]))
def test_reduce_quantized_matches_the_plain_formula(data, world, n, dtype):
    parts = [data.draw(hnp.arrays(np.int8, (3, n))) for _ in range(world)]
    s1, s2 = data.draw(bit_patterns(dtype, (n,))), data.draw(bit_patterns(dtype, (n,)))
    total = np.sum([p.astype(F32) for p in parts], axis=0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = s1.astype(F32) / s2.astype(F32)
        expected = plain_sat8(plain_f16(total * ratio))
    assert np.array_equal(nx.reduce_quantized(parts, s1, s2), expected)


def test_quant_blocks_cover_large_and_wide_values():
    """Row blocks of the quant steps: many rows, and one row wider than a block."""
    rng = np.random.default_rng(3)
    for shape in [(300, 1000), (2, 70_000), (3, 5, 7)]:
        z = nx.round_to(rng.standard_normal(shape, dtype=np.float32) * 100, BF16)
        s1 = nx.round_to(rng.uniform(0.1, 2, shape[-1]).astype(np.float32), BF16)
        assert np.array_equal(nx.quant(z, s1), plain_quant(z, s1))


@settings(max_examples=60, deadline=None)
@given(x=bit_patterns(F32, st.integers(0, 50)))
def test_round_to_f16_is_ieee(x):
    assert np.array_equal(nx.round_to(x, F16).view(np.uint16), plain_f16(x).view(np.uint16))
