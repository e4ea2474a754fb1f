"""The fused op's steps 1 to 4 on torch's kernels (`interpreter.numerics_torch`, what the
torch.compile custom op runs) give `dialects.numerics`' bits: over shapes (no rows, 3-D x1),
f16 and bf16 outputs, every kind of dequant scale (f32, bf16, packed int64), per-token scales,
biases that wrap, x3, and extreme values (inf, NaN with payloads, overflow, subnormals, -0.0)."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

pytest.importorskip("torch")

from threaded_ranks import run_ranks  # noqa: E402

from helpers import EXTREME_BITS, same_bits  # noqa: E402
from qmmar.dialects import numerics as nx  # noqa: E402
from qmmar.interpreter import numerics_torch as nt  # noqa: E402
from qmmar.interpreter.comm import Site  # noqa: E402
from qmmar.interpreter.functions import quant_matmul_all_reduce  # noqa: E402
from qmmar.interpreter.gemm import dequantized_matmul  # noqa: E402

DTYPES = {"f16": nx.F16, "bf16": nx.BF16}
EXTREMES = EXTREME_BITS | {  # f32's: the same kinds of value
    "f32": [0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000,
            0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC00001, 0x3F800000, 0x33800000, 0x477FF000, 0x47800000],
}  # fmt: skip
"""f32 adds 2**-24 (f16's smallest subnormal), 65520 - 16 and 65536 (f16's overflow around them)."""
_BITS = {"f16": np.uint16, "bf16": np.uint16, "f32": np.uint32}
_NP = DTYPES | {"f32": nx.F32}


def values(name, shape, nans=True):
    """Arrays of dtype `name`: extreme values, random bit patterns and ordinary values; without
    NaNs unless `nans` (a step that meets a NaN is numerics' own: without, torch's kernels run)."""
    top = np.iinfo(_BITS[name]).max
    ordinary = st.floats(-4, 4, width=32).map(lambda f: int(np.array(f, _NP[name]).view(_BITS[name])))
    bits = st.one_of(st.sampled_from(EXTREMES[name]), st.integers(0, top), ordinary)
    drawn = arrays(_BITS[name], shape, elements=bits).map(lambda a: a.view(_NP[name]))
    return drawn if nans else drawn.map(lambda a: np.where(np.isnan(a), a.dtype.type(-0.0), a))


def int8s(shape):
    return arrays(np.int8, shape, elements=st.integers(-128, 127) | st.sampled_from([-128, 127]))


def scales(data, kind, n, nans):
    """A dequant scale [n] of `kind`: f32, bf16, or f32 packed by TransQuantParamV2 (int64)."""
    if kind == "packed":
        return nx.trans_quant_param(data.draw(values("f32", (n,), nans))).view(np.int64)
    return data.draw(values(kind, (n,), nans))


@settings(max_examples=300, deadline=None)
@given(lead=st.lists(st.integers(0, 9), min_size=1, max_size=2).map(tuple), k=st.integers(1, 40), n=st.integers(1, 24),
       out=st.sampled_from(sorted(DTYPES)), kind=st.sampled_from(["f32", "bf16", "packed"]), pertoken=st.booleans(),
       bias=st.booleans(), transpose=st.booleans(), nans=st.booleans(), data=st.data())  # fmt: skip
def test_the_dequantized_matmul_has_the_bits_of_numerics(lead, k, n, out, kind, pertoken, bias, transpose, nans, data):
    m = int(np.prod(lead))
    x1 = data.draw(int8s((*lead, k)))
    x2 = data.draw(int8s((n, k) if transpose else (k, n)))
    b = data.draw(arrays(np.int32, (n,), elements=st.integers(-(2**31), 2**31 - 1))) if bias else None
    scale = scales(data, kind, n, nans)
    tokens = data.draw(values("f32", (m,), nans)) if pertoken else None
    with np.errstate(all="ignore"):
        expected = dequantized_matmul(x1, x2, b, transpose, scale, tokens, DTYPES[out])
        got = nt.dequantized_matmul(x1, x2, b, transpose, scale, tokens, DTYPES[out])
    assert same_bits(got, expected)


@settings(max_examples=300, deadline=None)
@given(shape=st.lists(st.integers(0, 40), min_size=1, max_size=3).map(tuple), name=st.sampled_from(sorted(DTYPES)),
       nans=st.booleans(), data=st.data())  # fmt: skip
def test_the_add_has_the_bits_of_numerics(shape, name, nans, data):
    y, x3 = data.draw(values(name, shape, nans)), data.draw(values(name, shape, nans))
    with np.errstate(all="ignore"):
        assert same_bits(nt.add(y, x3), nx.add(y, x3))


@settings(max_examples=300, deadline=None)
@given(w=st.integers(1, 9), shape=st.lists(st.integers(0, 40), max_size=3).map(tuple),
       name=st.sampled_from(sorted(DTYPES)), nans=st.booleans(), data=st.data())  # fmt: skip
def test_the_rank_order_sum_has_the_bits_of_numerics(w, shape, name, nans, data):
    parts = [data.draw(values(name, shape, nans)) for _ in range(w)]
    with np.errstate(all="ignore"):
        assert same_bits(nt.reduce_sum(parts), nx.reduce_sum(parts))


def test_a_nan_keeps_the_bits_numerics_gives_it():
    """torch writes 0xFFFF for every bf16 NaN; numerics keeps the sign and quiets the payload."""
    y = np.array([0x7FC0, 0xFFC1, 0x7F81, 0x3F80] * 9, dtype=np.uint16).view(ml_dtypes.bfloat16)
    zero = np.zeros_like(y)
    with np.errstate(all="ignore"):
        assert same_bits(nt.add(y, zero), nx.add(y, zero))
        assert same_bits(nt.reduce_sum([y, zero, y[::-1].copy()]), nx.reduce_sum([y, zero, y[::-1].copy()]))


@settings(max_examples=60, deadline=None)
@given(w=st.sampled_from([1, 2, 3, 4]), m=st.integers(0, 12), k=st.integers(1, 24), n=st.integers(1, 8),
       out=st.sampled_from(sorted(DTYPES)), nans=st.booleans(), data=st.data())  # fmt: skip
def test_the_fused_op_on_torchs_kernels_has_the_bits_of_numerics(w, m, k, n, out, nans, data):
    """The composition (`functions.quant_matmul_all_reduce`) with these steps, x3 and the scale
    extreme: the all-reduce by shares (W > 2) and of whole values (W = 2) alike."""
    ranks = [{"x1": data.draw(int8s((m, k))), "x2": data.draw(int8s((k, n))), "bias": None,
              "x3": data.draw(values(out, (m, n), nans)), "dequant_scale": data.draw(values("bf16", (n,), nans)),
              "pertoken_scale": None, "comm_quant_scale_1": None, "comm_quant_scale_2": None}
             for _ in range(w)]  # fmt: skip
    site = Site("mc2.quant_matmul_all_reduce", "test.mlir:1:1", "tp", w)

    def fused(steps):
        def on_rank(comm):
            with np.errstate(all="ignore"):
                return quant_matmul_all_reduce(comm, site, ranks[comm.rank], False, DTYPES[out], *steps)

        results, errors = run_ranks(w, on_rank)
        assert errors == [None] * w
        return results

    for got, expected in zip(fused([nt.STEPS]), fused([]), strict=True):
        assert same_bits(got, expected)
