"""Fused and unfused programs compute the same bits on every rank (SEMANTICS.md)."""

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ops_named, parse, run, same_bits
from programs import chain_specs, random_inputs, unfused_program
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse
from qmmar.source import verify

CASES = int(os.environ.get("QMMAR_EQUIVALENCE_CASES", "1000"))


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs(), seed=st.integers(0, 2**32 - 1))
def test_fused_equals_unfused_bit_for_bit(spec, seed):
    text = unfused_program(spec)
    unfused, fused = parse(text), parse(text)
    verdicts = fuse(fused)
    assert [v.rule for v in verdicts] == [None], (text, verdicts)
    verify(fused)
    assert ops_named(fused, "qmm.") == [] and ops_named(fused, "mc2.quant_matmul_all_reduce")

    inputs = random_inputs(spec, seed)
    (expected,) = run(unfused, inputs, spec.world_size)
    (actual,) = run(fused, inputs, spec.world_size)
    assert same_bits(expected, actual), text
    for rank in range(1, spec.world_size):
        assert same_bits(actual[0], actual[rank])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs(comm=False), seed=st.integers(0, 2**32 - 1))
def test_a_dynamic_leading_dim_gives_the_static_programs_bits(spec, seed):
    """The chain with its leading dim dynamic: every op is verified again on its run-time
    shapes (qmm.add's and qmm.all_reduce's type variables too) and computes the same bits.
    (The unfused int8-communication chain's all-to-all has a static row count.)"""
    dynamic = dataclasses.replace(spec, lead=("?", *spec.lead[1:]))
    inputs = random_inputs(spec, seed)
    (expected,) = run(parse(unfused_program(spec)), inputs, spec.world_size)
    (actual,) = run(parse(unfused_program(dynamic)), inputs, spec.world_size)
    assert same_bits(expected, actual), unfused_program(dynamic)
