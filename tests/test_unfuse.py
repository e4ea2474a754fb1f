"""unfuse-mc2: the inverse of fusion, and a second oracle for the fused op's numerics."""

import ml_dtypes
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import ops_named, parse, printed, run, same_bits, unfuse
from programs import chain_specs, fused_program, unfused_program
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse


@settings(max_examples=150, deadline=None)
@given(spec=chain_specs())
def test_unfuse_then_fuse_is_the_identity(spec):
    module = parse(unfused_program(spec))
    fuse(module)
    fused_text = printed(module)
    unfuse(module)
    assert ops_named(module, "mc2.quant_matmul_all_reduce") == []
    assert [v.legal for v in fuse(module)] == [True]
    assert printed(module) == fused_text


@settings(max_examples=100, deadline=None)
@given(w=st.sampled_from([1, 2, 4, 8]), lead=st.lists(st.integers(1, 7), min_size=1, max_size=2),
       k=st.integers(1, 24), n=st.integers(1, 9), comm=st.booleans(), transpose=st.booleans(),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_unfused_runs_like_the_fused_op_for_any_m(w, lead, k, n, comm, transpose, seed):
    text = fused_program(w, tuple(lead), k, n, "bf16", "bf16", comm, transpose)
    rng = np.random.default_rng(seed)
    lead = tuple(lead)
    x2_shape = (n, k) if transpose else (k, n)
    bf16 = ml_dtypes.bfloat16
    inputs = [rng.integers(-128, 128, size=(w, *lead, k), dtype=np.int8),
              rng.integers(-128, 128, size=(w, *x2_shape), dtype=np.int8),
              rng.uniform(2.0**-13, 2.0**-9, size=n).astype(bf16)]  # fmt: skip
    if comm:
        inputs += [rng.uniform(2.0**-6, 2.0**-2, size=n).astype(bf16) for _ in range(2)]
    (fused,) = run(parse(text), inputs, w)
    (unfused,) = run(unfuse(parse(text)), inputs, w)
    assert same_bits(fused, unfused), text
