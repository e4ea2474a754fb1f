"""aclnnAllGatherMatmulV2's dequant (numerics.aiv_dequant_i32, docs/all-gather-matmul.md): step 2's
order and one rounding; an f32 scale as it is, a packed one as the fixpipe reads it."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qmmar.dialects import numerics as nx

ACC = hnp.arrays(np.int32, (4, 8), elements=st.integers(-(2**31), 2**31 - 1))
SCALE = hnp.arrays(np.float32, (8,), elements=st.floats(-1e3, 1e3, width=32))
PERTOKEN = hnp.arrays(np.float32, (4,), elements=st.floats(-1e3, 1e3, width=32))


@given(acc=ACC, scale=SCALE, pertoken=st.one_of(st.none(), PERTOKEN), out=st.sampled_from([nx.F16, nx.BF16]))
def test_an_f32_scale_is_multiplied_in_f32_left_to_right_and_rounded_once(acc, scale, pertoken, out):
    expected = acc.astype(np.float32) * scale
    if pertoken is not None:
        expected = expected * pertoken[:, None]
    actual = nx.aiv_dequant_i32(acc, scale, pertoken, out)
    assert actual.dtype == out
    assert np.array_equal(actual.view(np.uint16), nx.round_to(expected, out).view(np.uint16))


@given(acc=ACC, scale=SCALE, pertoken=st.one_of(st.none(), PERTOKEN), out=st.sampled_from([nx.F16, nx.BF16]))
def test_it_is_qmm_dequant_but_where_qmm_packs_an_f32_scale(acc, scale, pertoken, out):
    """qmm.dequant packs an f32 scale for f16 output without pertoken; the fusion passes that
    scale packed, and the two agree."""
    packs = out == nx.F16 and pertoken is None
    passed = nx.trans_quant_param(scale) if packs else scale
    assert np.array_equal(nx.aiv_dequant_i32(acc, passed, pertoken, out).view(np.uint16),
                          nx.dequant_i32(acc, scale, pertoken, out).view(np.uint16))  # fmt: skip


def test_an_f32_scale_for_f16_output_keeps_every_mantissa_bit():
    """The AIV epilogue does not truncate the scale as TransQuantParamV2 does."""
    acc, scale = np.array([[2048]], np.int32), np.array([1 + 2**-11 + 2**-20], np.float32)  # bits 11, 20 dropped
    assert nx.aiv_dequant_i32(acc, scale, None, nx.F16)[0, 0] == 2050  # 2049.002 rounds up
    assert nx.dequant_i32(acc, scale, None, nx.F16)[0, 0] == 2048  # the packed scale is 1.0
