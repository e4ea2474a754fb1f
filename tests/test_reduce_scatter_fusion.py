"""mc2.quant_matmul_reduce_scatter computes its chain's bits on every rank: fused == unfused ==
fused then unfused, on Atlas A2 and A3, at W = 2, 4, 8 on threads (docs/sequence-parallel.md)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sp_programs import random_inputs, reduce_scatter_specs, unfused_program

from helpers import ops_named, parse, run, same_bits, unfuse
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.source import verify


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=reduce_scatter_specs(), soc=st.sampled_from(["a2", "a3"]), seed=st.integers(0, 2**32 - 1))
def test_fused_equals_unfused_bit_for_bit(spec, soc, seed):
    text = unfused_program(spec)
    unfused, fused = parse(text), parse(text)
    verdicts = fuse(fused, FuseOptions(soc=soc))
    assert [(v.kind, v.rule) for v in verdicts] == [("mc2.quant_matmul_reduce_scatter", None)], (text, verdicts)
    verify(fused)
    assert ops_named(fused, "qmm.") == [] and ops_named(fused, "mc2.quant_matmul_reduce_scatter")

    inputs = random_inputs(spec, seed)
    (expected,) = run(unfused, inputs, spec.world_size)
    (actual,) = run(fused, inputs, spec.world_size)
    assert expected.shape == (spec.world_size, spec.m // spec.world_size, spec.n)
    assert same_bits(expected, actual), text
    (again,) = run(unfuse(fused), inputs, spec.world_size)
    assert same_bits(expected, again), text
