"""Fused and unfused programs compute the same bits on every rank (SEMANTICS.md)."""

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ops_named, parse, run, same_bits
from programs import chain_specs, random_inputs, unfused_program
from qmmar.dialects.diagnostics import LocatedError
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


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs(comm=False), seed=st.integers(0, 2**32 - 1), empty=st.sampled_from(["m", "k", "n"]),
       dynamic=st.booleans(), fused=st.booleans())  # fmt: skip
def test_zero_size_dims_run_to_empty_or_exact_results(spec, seed, empty, dynamic, fused):
    """A chain with m, k or n zero (static, or a dynamic m that is 0 at run time) runs to a
    result of the right shape, the same bits fused and unfused; a static zero is refused fusion
    (MC2-NONEMPTY), a dynamic m of 0 is refused by the fused op's run-time guard (issue 21)."""
    spec = dataclasses.replace(spec, **{"m": {"lead": (0,) * len(spec.lead)}, "k": {"k": 0}, "n": {"n": 0}}[empty])
    inputs = random_inputs(spec, seed)
    program = dataclasses.replace(spec, lead=("?", *spec.lead[1:])) if dynamic else spec
    unfused = parse(unfused_program(program))
    (expected,) = run(unfused, inputs, spec.world_size)
    assert expected.shape == (spec.world_size, *spec.end_shape)
    if fused:
        module = parse(unfused_program(program))
        verdicts = fuse(module)
        if verdicts[0].rewritten:  # only a dynamic m can get past MC2-NONEMPTY when compiling
            assert dynamic and empty == "m"
            with pytest.raises(LocatedError, match=r"at run time: \[MC2-NONEMPTY\]"):
                run(module, inputs, spec.world_size)
        else:
            assert verdicts[0].rule == "MC2-NONEMPTY"
            (actual,) = run(module, inputs, spec.world_size)
            assert same_bits(expected, actual), unfused_program(program)
