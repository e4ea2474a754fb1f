"""The exact int8 GEMM: both paths against int64 numpy, on the extremes and on generated shapes.

Exactness argument: an int8 product is at most 2**14 in magnitude (-128 * -128), so for
k <= 65535 (MC2-K-MAX) |x1 @ x2| <= 65535 * 2**14 < 2**31.  Integer adds wrap modulo 2**32,
so an int32 accumulator ends on the exact sum whatever order and intermediate wrap a kernel
uses; the f32 path sums chunks of 1024 products, each partial sum an integer <= 2**24.
"""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qmmar.dialects import numerics as nx
from qmmar.interpreter import gemm as ig

K_MAX = 65535


def _torch_gemm():
    pytest.importorskip("torch")
    return ig.gemm_int_mm


@pytest.fixture(params=["f32-blas", "torch-int-mm"])
def matmul_i32(request):
    """`numerics.matmul_i32` by each path in turn."""
    path = nx.gemm_f32_blas if request.param == "f32-blas" else _torch_gemm()
    return functools.partial(nx.matmul_i32, gemm=path)


def reference(x1, x2, bias=None, transpose_x2=False):
    """int64 numpy, then the int32 wrap of the bias add."""
    w = x2.T if transpose_x2 else x2
    acc = x1.astype(np.int64) @ w.astype(np.int64)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)


@pytest.mark.parametrize("v1, v2", [(-128, -128), (127, 127), (-128, 127), (127, -128)])
def test_extremes_at_k_max(matmul_i32, v1, v2):
    x1 = np.full((2, K_MAX), v1, dtype=np.int8)
    x2 = np.full((K_MAX, 3), v2, dtype=np.int8)
    assert matmul_i32(x1, x2).tolist() == [[v1 * v2 * K_MAX] * 3] * 2
    assert matmul_i32(x1, np.ascontiguousarray(x2.T), transpose_x2=True).tolist() == [[v1 * v2 * K_MAX] * 3] * 2


def test_mixed_signs_at_k_max(matmul_i32):
    """Alternating -128 / 127 rows and columns: every pairing of the extremes in one GEMM."""
    pattern = np.resize(np.array([-128, 127, -128, -128, 127, 127], dtype=np.int8), K_MAX)
    x1 = np.stack([pattern, -1 - pattern, np.full(K_MAX, -128, np.int8)])
    x2 = np.stack([pattern, np.roll(pattern, 1), np.full(K_MAX, -128, np.int8), np.full(K_MAX, 127, np.int8)], axis=1)
    assert np.array_equal(matmul_i32(x1, x2), reference(x1, x2))
    assert np.array_equal(matmul_i32(x1, np.ascontiguousarray(x2.T), transpose_x2=True), reference(x1, x2))


def test_k_of_one(matmul_i32):
    x1 = np.array([[-128], [127], [0]], dtype=np.int8)
    x2 = np.array([[-128, 127, 1]], dtype=np.int8)
    assert np.array_equal(matmul_i32(x1, x2), reference(x1, x2))


@pytest.mark.parametrize("bias_value, product", [(2**31 - 1, 127 * 127 * K_MAX), (-(2**31), -128 * 127 * K_MAX)])
def test_bias_wraps(matmul_i32, bias_value, product):
    x1 = np.full((1, K_MAX), 127 if product > 0 else -128, dtype=np.int8)
    x2 = np.full((K_MAX, 2), 127, dtype=np.int8)
    bias = np.array([bias_value, 0], dtype=np.int32)
    wrapped = (product + bias_value + 2**31) % 2**32 - 2**31
    assert matmul_i32(x1, x2, bias).tolist() == [[wrapped, product]]


def test_3d_x1_and_strided_read_only_operands(matmul_i32):
    rng = np.random.default_rng(1)
    x1 = rng.integers(-128, 128, size=(2, 3, 2 * 1500), dtype=np.int8)[..., ::2]  # strided k
    x2 = rng.integers(-128, 128, size=(1500, 7), dtype=np.int8)[::-1]  # negative strides
    x1.flags.writeable = False
    assert np.array_equal(matmul_i32(x1, x2), reference(x1, x2))


@pytest.mark.parametrize("x1_transposed, x2_transposed", [(False, False), (False, True), (True, False), (True, True)])
def test_every_layout_of_small_shapes(matmul_i32, x1_transposed, x2_transposed):
    """Row- and column-major operands with dimensions of 1, where numpy's strides are
    ambiguous (a transposed [2, 1] array has strides (1, 1))."""
    rng = np.random.default_rng(2)
    for m, k, n in itertools.product([0, 1, 2, 17], [1, 2, 64], [1, 2, 17]):
        x1 = (
            rng.integers(-128, 128, (k, m), dtype=np.int8).T
            if x1_transposed
            else rng.integers(-128, 128, (m, k), dtype=np.int8)
        )
        x2 = rng.integers(-128, 128, (n, k) if x2_transposed else (k, n), dtype=np.int8)
        assert np.array_equal(matmul_i32(x1, x2, transpose_x2=x2_transposed), reference(x1, x2, None, x2_transposed))


int8s = st.one_of(st.sampled_from([-128, 127, -1, 0, 1]), st.integers(-128, 127))


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    m=st.integers(0, 9),
    k=st.one_of(st.integers(1, 40), st.integers(1000, 2100)),  # 1, 2 or 3 chunks of 1024
    n=st.integers(1, 9),
    x1_column_major=st.booleans(),
    transpose_x2=st.booleans(),
    with_bias=st.booleans(),
)
def test_both_paths_match_int64(data, m, k, n, x1_column_major, transpose_x2, with_bias):
    x1 = data.draw(hnp.arrays(np.int8, (k, m) if x1_column_major else (m, k), elements=int8s))
    x1 = x1.T if x1_column_major else x1
    x2 = data.draw(hnp.arrays(np.int8, (n, k) if transpose_x2 else (k, n), elements=int8s))
    bias = data.draw(hnp.arrays(np.int32, (n,))) if with_bias else None
    expected = reference(x1, x2, bias, transpose_x2)
    paths = [nx.gemm_f32_blas] + ([ig.gemm_int_mm] if _has_torch() else [])
    for path in paths:
        w = x2.T if transpose_x2 else x2
        acc = path(x1, w)
        if bias is not None:
            acc = acc + bias  # int32 + int32 wraps in numpy
        assert np.array_equal(acc, expected), path.__name__


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_one_place_chooses():
    """Large GEMMs, and small ones once torch is loaded, use torch's int8 kernel where this CPU
    has int8 units, f32 BLAS otherwise (small ones without torch loaded: the next test)."""
    big = ig.int8_gemm(1024, 4096, 1024)
    if not _has_torch():
        assert big is nx.gemm_f32_blas
        return
    import torch

    caps = torch.cpu.get_capabilities()
    has_units = any(caps.get(unit) for unit in ("avx512_vnni", "avx_vnni", "amx_int8"))
    assert big is (ig.gemm_int_mm if has_units else nx.gemm_f32_blas)
    assert ig.int8_gemm(64, 64, 64) is big  # torch is loaded: importing it costs nothing more


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_without_torch_the_f32_path_is_chosen():
    code = "import sys; sys.modules['torch'] = None\nfrom qmmar.interpreter import gemm\n"
    code += "print(gemm.int8_gemm(1024, 4096, 1024).__name__)"
    assert _python(code) == "gemm_f32_blas"


def test_torch_is_loaded_only_by_a_large_gemm():
    code = """import sys
import numpy as np
import qmmar.dialects, qmmar.interpreter.spmd
from qmmar.interpreter.gemm import exact_matmul, int8_gemm
exact_matmul(np.ones((64, 64), np.int8), np.ones((64, 64), np.int8), None, False)
print('torch' in sys.modules, int8_gemm(64, 64, 64).__name__)"""
    assert _python(code) == "False gemm_f32_blas"


def test_every_interpreter_reaches_the_one_choice(monkeypatch):
    """qmm.matmul, the fused mc2 op (which the torch.compile custom op runs) and the ideal of
    --ideal all compute step 1 by `int8_gemm`'s choice."""
    from test_ideal import CHAIN, chain_inputs

    from helpers import parse
    from qmmar.api import ideal_run
    from qmmar.passes.fuse_quant_matmul_all_reduce import fuse

    asked = []

    def spy(m, k, n):
        asked.append((m, k, n))
        return nx.gemm_f32_blas

    monkeypatch.setattr(ig, "int8_gemm", spy)
    fused = parse(CHAIN, "chain.mlir")
    assert [v.rewritten for v in fuse(fused)] == [True]
    for module in (parse(CHAIN, "chain.mlir"), fused):
        asked.clear()
        run = ideal_run(module, "main")
        run.run(chain_inputs(1.0, 2.0), 2)
        assert asked == [(2, 1, 2)] * 2  # one GEMM a rank
        run.figures()
        assert asked == [(2, 1, 2)] * 4  # and the ideal's, a rank


# --- steps 1 and 2 by blocks of rows ----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(lead=st.lists(st.integers(0, 7), min_size=1, max_size=2).map(tuple), k=st.integers(1, 9),
       n=st.integers(1, 6), block_bytes=st.sampled_from([1, 4, 24, 1 << 22]), transpose_x2=st.booleans(),
       with_bias=st.booleans(), with_pertoken=st.booleans(),
       out=st.sampled_from([nx.F16, nx.BF16]), scale_dtype=st.sampled_from([nx.F32, nx.BF16]),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_the_product_by_row_blocks_is_the_product_whole(
    lead, k, n, block_bytes, transpose_x2, with_bias, with_pertoken, out, scale_dtype, seed
):
    """`dequantized_matmul` with blocks of 1 row up to the whole: the bits of step 2 applied to
    step 1's whole product (scales from tiny to f16-overflowing, so inf and subnormals too)."""
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, (*lead, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, (n, k) if transpose_x2 else (k, n), dtype=np.int8)
    bias = rng.integers(-(2**31), 2**31, n, dtype=np.int32) if with_bias else None
    scale = (10.0 ** rng.uniform(-9, 2, n)).astype(np.float32).astype(scale_dtype)
    pertoken = (10.0 ** rng.uniform(-3, 3, int(np.prod(lead)))).astype(np.float32) if with_pertoken else None
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(ig, "ROW_BLOCK_BYTES", block_bytes)
        got = ig.dequantized_matmul(x1, x2, bias, transpose_x2, scale, pertoken, out)
        whole = nx.dequant_i32(nx.matmul_i32(x1, x2, bias, transpose_x2), scale, pertoken, out)
    assert got.dtype == whole.dtype and got.shape == whole.shape
    assert np.array_equal(got.view(np.uint16), whole.view(np.uint16))
