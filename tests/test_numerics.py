"""Hand-computed cases for every rounding point of SEMANTICS.md."""

import ml_dtypes
import numpy as np
import pytest

from qmmar.dialects import numerics as nx

F16, BF16 = np.float16, ml_dtypes.bfloat16


def f32(*values):
    return np.array(values, dtype=np.float32)


def bits16(a):
    return a.view(np.uint16).tolist()


def test_round_to_f16_ties_to_even():
    # 1 + 2**-11 is halfway between 1 and the next f16 (1 + 2**-10): ties go to the even 1.
    # 1 + 3 * 2**-11 is halfway between 1 + 2**-10 and 1 + 2**-9: ties go to 1 + 2**-9.
    out = nx.round_to(f32(1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-11 + 2**-20), F16)
    assert out.tolist() == [1.0, 1 + 2**-9, 1 + 2**-10]


def test_round_to_bf16_ties_to_even():
    out = nx.round_to(f32(1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8)), BF16)
    assert out.astype(np.float32).tolist() == [1.0, 1 + 2**-6, -1.0]


def test_round_to_f16_overflow_matches_ieee():
    x = f32(65504.0, 65519.996, 65520.0, 70000.0, -65520.0, -65519.0, np.inf, -np.inf, 1e30)
    with np.errstate(over="ignore"):
        ieee = x.astype(F16)
    assert bits16(nx.round_to(x, F16)) == bits16(ieee)
    assert nx.round_to(x, F16).tolist()[:4] == [65504.0, 65504.0, np.inf, np.inf]
    assert np.isnan(nx.round_to(f32(np.nan), F16)).all()


@pytest.mark.parametrize(
    "h, q",
    [(2.5, 2), (3.5, 4), (-2.5, -2), (-3.5, -4), (0.5, 0), (1.5, 2), (127.4, 127), (127.5, 127),
     (200.0, 127), (-128.0, -128), (-128.5, -128), (-300.0, -128), (np.inf, 127), (-np.inf, -128),
     (np.nan, 0), (-0.0, 0)],
)  # fmt: skip
def test_sat8(h, q):
    assert nx.sat8(np.array([h], dtype=F16)).tolist() == [q]


def test_quant_rounds_to_f16_before_int8():
    # 1 / 0.39990234375 = 2.50061 in f32 rounds to exactly 2.5 in f16 (its neighbours are
    # 2.5 and 2.50195), then ties to the even 2: not the 3 that rounding the f32 gives.
    z = np.array([1.0, 1.0], dtype=F16)
    s1 = np.array([0.39990234375, 0.3994140625], dtype=F16)  # 1 / s1 = 2.50061, 2.50367
    assert np.rint(np.float32(1.0) / s1.astype(np.float32)).tolist() == [3.0, 3.0]
    assert nx.quant(z, s1).tolist() == [2, 3]


def test_quant_by_zero_saturates():
    z = np.array([1.0, -1.0, 0.0], dtype=F16)
    assert nx.quant(z, np.zeros(3, dtype=F16)).tolist() == [127, -128, 0]


def test_reduce_quantized_ratio_rounded_to_f32_first():
    s1 = np.array([3.0], dtype=BF16)
    s2 = np.array([7.0], dtype=BF16)
    parts = [np.array([[10]], dtype=np.int8), np.array([[11]], dtype=np.int8)]
    ratio = np.float32(3.0) / np.float32(7.0)  # 0.42857143 in f32
    expected = np.rint(np.float16(np.float32(21) * ratio))  # f16(9.0) = 9
    assert nx.reduce_quantized(parts, s1, s2).tolist() == [[int(expected)]] == [[9]]


def test_reduce_quantized_saturates():
    parts = [np.full((1, 2), 127, dtype=np.int8)] * 8
    s = np.array([1.0, 1.0], dtype=F16)
    assert nx.reduce_quantized(parts, s, s).tolist() == [[127, 127]]


def test_trans_quant_param_packs_and_truncates():
    packed = nx.trans_quant_param(f32(0.001))
    assert packed.dtype == np.uint64
    assert int(packed[0]) == (0x3A83126F & 0xFFFFE000) | (1 << 46) == 70369725841408
    assert nx.unpack_quant_param(packed).view(np.uint32).tolist() == [0x3A830000]
    assert nx.unpack_quant_param(packed.view(np.int64)).view(np.uint32).tolist() == [0x3A830000]


def test_dequant_f16_without_pertoken_uses_the_packed_scale():
    acc = np.array([[1 << 20]], dtype=np.int32)
    scale = f32(0.001)
    truncated = np.float32(np.array([0x3A830000], dtype=np.uint32).view(np.float32)[0])
    assert nx.dequant_i32(acc, scale, None, np.dtype(F16)).tolist() == [[np.float16(np.float32(1 << 20) * truncated)]]
    # with a pertoken scale, the f32 scale is used as it is
    pt = f32(1.0)
    exact = np.float16(np.float32(1 << 20) * np.float32(0.001))
    assert nx.dequant_i32(acc, scale, pt, np.dtype(F16)).tolist() == [[exact]]


def test_dequant_multiplies_left_to_right_and_rounds_once():
    acc = np.array([[3]], dtype=np.int32)
    sc = np.array([1 + 2**-7], dtype=BF16)
    pt = f32(1 + 2**-9)
    y = (np.float32(3) * np.float32(1 + 2**-7)) * np.float32(1 + 2**-9)
    out = nx.dequant_i32(acc, sc, pt, np.dtype(BF16))
    assert out.astype(np.float32).tolist() == [[float(np.float32(y).astype(BF16))]]


def test_matmul_exact_at_the_extremes():
    k = 65535
    x1 = np.full((2, k), -128, dtype=np.int8)
    x2 = np.full((k, 3), -128, dtype=np.int8)
    assert nx.matmul_i32(x1, x2).tolist() == [[k * 16384] * 3] * 2
    x2[:, 1] = 127
    assert nx.matmul_i32(x1, x2)[0, 1] == -128 * 127 * k
    assert nx.matmul_i32(x1, x2.T.copy(), transpose_x2=True)[0, 1] == -128 * 127 * k


def test_matmul_matches_integer_reference_across_chunks():
    rng = np.random.default_rng(0)
    x1 = rng.integers(-128, 128, size=(2, 3, 2500), dtype=np.int8)
    x2 = rng.integers(-128, 128, size=(2500, 5), dtype=np.int8)
    ref = x1.astype(np.int64) @ x2.astype(np.int64)
    assert np.array_equal(nx.matmul_i32(x1, x2), ref.astype(np.int32))


def test_bias_overflow_wraps():
    x1 = np.full((1, 65535), 127, dtype=np.int8)
    x2 = np.full((65535, 1), 127, dtype=np.int8)
    bias = np.array([2**31 - 1], dtype=np.int32)
    expected = (127 * 127 * 65535 + 2**31 - 1 + 2**31) % 2**32 - 2**31
    assert nx.matmul_i32(x1, x2, bias).tolist() == [[expected]]


def test_reduce_sum_is_in_rank_order():
    # (1 + 2**-24) + 2**-24 rounds twice in f32; summing the small terms first would not.
    parts = [f32(1.0), f32(2**-24), f32(2**-24)]
    parts = [p.astype(np.float32) for p in parts]
    total = np.float32(np.float32(1.0) + np.float32(2**-24)) + np.float32(2**-24)
    out = nx.reduce_sum([p.astype(F16) for p in parts])  # f16 inputs: 2**-24 is f16's min subnormal
    assert out.tolist() == [np.float16(total)]


def test_an_empty_k_is_the_empty_sum_in_every_caller():
    """k = 0 at the numerics module itself (not patched at one caller): zeros, plus the bias."""
    from qmmar.interpreter.gemm import exact_matmul

    x1, x2 = np.zeros((2, 3, 0), np.int8), np.zeros((0, 4), np.int8)
    assert (nx.matmul_i32(x1, x2) == 0).all() and nx.matmul_i32(x1, x2).shape == (2, 3, 4)
    bias = np.arange(4, dtype=np.int32)
    assert (exact_matmul(x1, x2.T, bias, True) == bias).all()
