"""The fused op against SEMANTICS.md written out directly, with plain numpy: any m, including
one that world_size does not divide (the kernel pads the all-to-all)."""

import ml_dtypes
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import parse, run, same_bits
from programs import fused_program

DTYPES = {"f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16)}


def sat8(h):
    r = np.rint(h.astype(np.float32))
    return np.clip(np.nan_to_num(r, nan=0.0, posinf=127, neginf=-128), -128, 127).astype(np.int8)


def reference(x1, x2, scale, s1, s2, out, transpose):
    """Every rank's output, from the formula: x1, x2 per rank; the scales replicated."""
    f32 = np.float32
    with np.errstate(all="ignore"):
        zs = []
        for a, b in zip(x1, x2, strict=True):
            acc = a.astype(np.int64) @ (b.T if transpose else b).astype(np.int64)
            acc = ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)
            zs.append((acc.astype(f32) * scale.astype(f32)).astype(out))
        if s1 is None:
            total = zs[0].astype(f32)
            for z in zs[1:]:
                total = total + z.astype(f32)
            return total.astype(out)
        q = [sat8((z.astype(f32) / s1.astype(f32)).astype(np.float16)) for z in zs]
        total = np.sum([x.astype(f32) for x in q], axis=0)
        t = sat8((total * (s1.astype(f32) / s2.astype(f32))).astype(np.float16))
        return (t.astype(f32) * s2.astype(f32)).astype(out)


@settings(max_examples=150, deadline=None)
@given(w=st.sampled_from([1, 2, 4, 8]), m=st.integers(1, 19), k=st.integers(1, 40),
       n=st.integers(1, 12), out=st.sampled_from(["f16", "bf16"]), comm=st.booleans(),
       transpose=st.booleans(), seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_fused_op_matches_the_formula(w, m, k, n, out, comm, transpose, seed):
    d = DTYPES[out]
    rng = np.random.default_rng(seed)
    x2_shape = (n, k) if transpose else (k, n)
    x1 = rng.integers(-128, 128, size=(w, m, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, size=(w, *x2_shape), dtype=np.int8)
    scale_f32 = rng.uniform(2.0**-13, 2.0**-9, size=n).astype(np.float32)
    # f16 output without pertoken takes a packed scale; bf16 a bf16 one.
    if out == "f16":
        packed = (scale_f32.view(np.uint32).astype(np.uint64) & np.uint64(0xFFFFE000)) | np.uint64(1 << 46)
        scale_arg, scale_type = packed, "ui64"
        scale_value = (packed & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    else:
        scale_arg = scale_value = scale_f32.astype(d)
        scale_type = "bf16"
    s1 = rng.uniform(2.0**-6, 2.0**-2, size=n).astype(d) if comm else None
    s2 = rng.uniform(2.0**-6, 2.0**-2, size=n).astype(d) if comm else None
    text = fused_program(w, (m,), k, n, out, scale_type, comm, transpose)
    inputs = [x1, x2, scale_arg] + ([s1, s2] if comm else [])
    (actual,) = run(parse(text), inputs, w)
    expected = reference(x1, x2, scale_value, s1, s2, d, transpose)
    for rank in range(w):
        assert same_bits(actual[rank], expected), text


def test_rules_on_dynamic_dims_are_checked_at_run_time():
    import pytest

    from qmmar.dialects.diagnostics import LocatedError

    text = """func.func @main(%x1: tensor<?x8xi8>, %x2: tensor<8x4xi8>, %s: tensor<4xbf16>, %pt: tensor<?xf32>)
    -> tensor<?x4xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<4xbf16>) pertoken_scale(%pt : tensor<?xf32>) on "tp" world_size = 2 : tensor<?x8xi8>, tensor<8x4xi8> -> tensor<?x4xbf16>
  func.return %o : tensor<?x4xbf16>
}
"""  # noqa: E501
    args = [np.zeros((6, 8), np.int8), np.zeros((8, 4), np.int8), np.ones(4, ml_dtypes.bfloat16)]
    (ok,) = run(parse(text), [*args, np.ones(6, np.float32)], 2)
    assert ok.shape == (2, 6, 4)
    with pytest.raises(LocatedError, match=r"test.mlir:3:3: error: 'mc2.quant_matmul_all_reduce' op on rank 0: "
                                          r"at run time: \[MC2-PERTOKEN-SHAPE\]"):  # fmt: skip
        run(parse(text), [*args, np.ones(5, np.float32)], 2)
