"""mc2.quant_matmul_reduce_scatter's dequant (`numerics.dequant_reduce_scatter`): the kernel's
order, element by element, and where it is exactly `qmm.dequant`'s (docs/sequence-parallel.md)."""

import ml_dtypes
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qmmar.dialects import numerics as nx

F32 = np.float32
finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e4, max_value=1e4)


@st.composite
def dequant_case(draw):
    m, n = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    acc = draw(hnp.arrays(np.int32, (m, n), elements=st.integers(-(2**31), 2**31 - 1)))
    x2s = draw(hnp.arrays(np.float32, (n,), elements=finite_f32))
    x1s = draw(st.none() | hnp.arrays(np.float32, (m,), elements=finite_f32))
    bias = draw(st.none() | hnp.arrays(np.float32, (n,), elements=finite_f32))
    out = draw(st.sampled_from([np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]))
    return acc, x2s, x1s, bias, out


def reference(acc, x2s, x1s, bias, out):
    """The kernel's epilogue one element at a time, in f32 scalars: scale, per-token, bias, round."""
    y = np.empty(acc.shape, F32)
    with np.errstate(over="ignore", invalid="ignore"):
        for (i, j), a in np.ndenumerate(acc):
            p = F32(a) * x2s[j]
            if x1s is not None:
                p = p * x1s[i]
            if bias is not None:
                p = p + bias[j]
            y[i, j] = p
    return nx.round_to(y, out)


def bits(a):
    return a.view(np.uint16)


@given(dequant_case())
def test_the_kernels_order_one_rounding(case):
    acc, x2s, x1s, bias, out = case
    assert np.array_equal(bits(nx.dequant_reduce_scatter(acc, x2s, x1s, bias, out)), bits(reference(*case)))


@given(dequant_case())
def test_without_bias_it_is_qmm_dequant_wherever_the_scale_is_taken_as_is(case):
    acc, x2s, x1s, _, out = case
    if out == np.float16 and x1s is None:  # qmm.dequant packs this scale; MRS takes it packed
        packed = nx.trans_quant_param(x2s).view(np.int64)
        ours, theirs = nx.dequant_reduce_scatter(acc, packed, None, None, out), nx.dequant_i32(acc, x2s, None, out)
    else:
        ours, theirs = nx.dequant_reduce_scatter(acc, x2s, x1s, None, out), nx.dequant_i32(acc, x2s, x1s, out)
    assert np.array_equal(bits(ours), bits(theirs))


def test_an_f32_scale_for_f16_output_is_not_truncated():
    """V3 packs it (10 mantissa bits kept); this kernel multiplies by the f32 scale itself."""
    acc, scale = np.array([[1024]], np.int32), np.array([1 + 2**-11 + 2**-12], F32)  # below the 10 kept bits
    f16 = np.dtype(np.float16)
    assert nx.dequant_reduce_scatter(acc, scale, None, None, f16)[0, 0] == 1025  # 1024.75, rounded once
    assert nx.dequant_i32(acc, scale, None, f16)[0, 0] == 1024  # V3: the scale truncated to 1


def test_the_bias_is_added_after_the_scales():
    acc, scale, bias = np.array([[3]], np.int32), np.array([0.5], F32), np.array([1.0], F32)
    assert nx.dequant_reduce_scatter(acc, scale, None, bias, np.dtype(ml_dtypes.bfloat16))[0, 0] == 2.5
