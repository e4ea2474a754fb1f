"""Step 4's all-reduce with each rank summing only its 1/W share (`functions.all_reduce_sum`):
bit for bit what the kernel gave when every rank summed all W values, for qmm.all_reduce and
the fused op (whose kernel the torch.compile custom op runs), on threads and on gloo, over
shapes with no rows or rows that W does not divide and over every kind of extreme value."""

import functools

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from threaded_ranks import run_ranks

from helpers import EXTREME_BITS, same_bits
from qmmar.dialects import numerics as nx
from qmmar.interpreter.comm import Site
from qmmar.interpreter.functions import all_reduce_sum, quant_matmul_all_reduce

DTYPES = {"f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16)}


def summed_before(parts, dtype):
    """The kernel before the change, verbatim (every rank summed all W values, in f32 in rank
    order), one element at a time: on a whole array numpy's SIMD loop keeps the second of two
    NaNs in the array's last < 16 elements, the first elsewhere (`numerics.reduce_sum`)."""
    flat = [np.asarray(p).reshape(-1) for p in parts]
    out = np.empty(flat[0].shape, dtype=dtype)
    for i in range(out.size):
        one = [p[i : i + 1] for p in flat]
        out[i : i + 1] = nx.round_to(functools.reduce(lambda t, p: t + nx.to_f32(p), one[1:], nx.to_f32(one[0])), dtype)
    return out.reshape(np.shape(parts[0]))


def values(name, shape):
    bits = st.one_of(st.sampled_from(EXTREME_BITS[name]), st.integers(0, 0xFFFF))
    return arrays(np.uint16, shape, elements=bits).map(lambda a: a.view(DTYPES[name]))


def site(w):
    return Site("qmm.all_reduce", "test.mlir:1:1", "tp", w)


def quietly(fn, *args):
    """fn(*args) with numpy silent on inf and NaN (its error state is per thread, as in run_rank)."""
    with np.errstate(all="ignore"):
        return fn(*args)


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 9), shape=st.lists(st.integers(0, 9), max_size=3).map(tuple),
       name=st.sampled_from(sorted(DTYPES)), data=st.data())  # fmt: skip
def test_all_reduce_sums_as_before(w, shape, name, data):
    z = [data.draw(values(name, shape)) for _ in range(w)]
    results, errors = run_ranks(w, lambda comm: quietly(all_reduce_sum, comm, z[comm.rank], site(w)))
    expected = quietly(summed_before, z, DTYPES[name])
    assert errors == [None] * w
    for got in results:
        assert same_bits(got, expected)


@settings(max_examples=120, deadline=None)
@given(w=st.sampled_from([1, 2, 4, 8]), m=st.integers(0, 19), k=st.integers(1, 24), n=st.integers(1, 8),
       name=st.sampled_from(sorted(DTYPES)), transpose=st.booleans(), data=st.data())  # fmt: skip
def test_the_fused_kernel_sums_as_before(w, m, k, n, name, transpose, data):
    """The fused op without communication scales, x3's and the dequant scale's values extreme
    (so z holds inf, NaN, -0, subnormals and the largest values)."""
    d = DTYPES[name]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scale = data.draw(values(name, (n,))) if name == "bf16" else rng.uniform(-1, 1, n).astype(np.float32)
    ranks = [{"x1": rng.integers(-128, 128, (m, k), dtype=np.int8),
              "x2": rng.integers(-128, 128, (n, k) if transpose else (k, n), dtype=np.int8),
              "bias": None, "x3": data.draw(values(name, (m, n))), "dequant_scale": scale, "pertoken_scale": None,
              "comm_quant_scale_1": None, "comm_quant_scale_2": None} for _ in range(w)]  # fmt: skip
    fused_at = Site("mc2.quant_matmul_all_reduce", "test.mlir:1:1", "tp", w)
    results, errors = run_ranks(w, lambda c: quietly(quant_matmul_all_reduce, c, fused_at, ranks[c.rank], transpose, d))
    with np.errstate(all="ignore"):
        z = [nx.add(nx.dequant_i32(nx.matmul_i32(r["x1"], r["x2"], None, transpose), scale, None, d), r["x3"])
             for r in ranks]  # fmt: skip
        expected = summed_before(z, d)
    assert errors == [None] * w
    for got in results:
        assert same_bits(got, expected)


# --- on gloo: the torch.compile custom op's communicator -------------------------------------

GLOO_WORLD = 3  # W that divides none of the sizes below but 0
GLOO_CASES = [(name, shape) for name in sorted(DTYPES) for shape in ((0, 4), (5, 3), (7,), (2, 2, 2), ())]


def extreme_values(name, shape, seed):
    """Values of dtype `name`, half of them extremes, half random bit patterns."""
    rng = np.random.default_rng(seed)
    bits = np.where(rng.random(shape) < 0.5, rng.choice(EXTREME_BITS[name], shape), rng.integers(0, 0x10000, shape))
    return np.asarray(bits, dtype=np.uint16).view(DTYPES[name])


def gloo_values(case, rank):
    return extreme_values(*GLOO_CASES[case], seed=case * 100 + rank)


def summed_by_gloo(rank, world_size):
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    comm = TorchDistributedCommunicator()
    with np.errstate(all="ignore"):
        return [all_reduce_sum(comm, gloo_values(case, rank), site(world_size)) for case in range(len(GLOO_CASES))]


def test_on_gloo_the_sum_is_as_before():
    pytest.importorskip("torch")
    from torch_ranks import run_ranks as run_processes

    results = run_processes(summed_by_gloo, GLOO_WORLD, timeout=300)
    for case, (name, _) in enumerate(GLOO_CASES):
        with np.errstate(all="ignore"):
            expected = summed_before([gloo_values(case, r) for r in range(GLOO_WORLD)], DTYPES[name])
        for rank in range(GLOO_WORLD):
            assert same_bits(results[rank][case], expected), (GLOO_CASES[case], rank)
