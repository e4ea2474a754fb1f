"""The numerics policy (SEMANTICS.md, `numerics=exact|relaxed`): under exact a chain fuses only
when its fused op computes every bit the program computes; under relaxed an f32 dequant scale for
bf16 output fuses too, rounded to bf16, and the result is then the fused op's numerics: the
program's with that rounded scale, bit for bit."""

import dataclasses

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers import ops_named, parse, printed, run, same_bits
from programs import arguments, chain_specs, random_inputs, unfused_program
from qmmar.dialects import numerics as nx
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.source import verify

RELAXED = FuseOptions(numerics="relaxed")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs(), seed=st.integers(0, 2**32 - 1))
def test_relaxed_fuses_an_f32_scale_for_bf16_output_as_the_program_with_that_scale_rounded(spec, seed):
    assume(spec.out == "bf16")
    program = dataclasses.replace(spec, scale_dtype="f32")
    text = unfused_program(program)
    (exact,) = fuse(parse(text))
    assert exact.rule == "MC2-SCALE-DTYPE" and "or fuse with numerics=relaxed" in (exact.sentence or "")

    fused = parse(text)
    (verdict,) = fuse(fused, RELAXED)
    assert verdict.rewritten and any("numerics=relaxed" in note and "2^-8" in note for note in verdict.notes)
    verify(fused)
    assert ops_named(fused, "qmm.") == []

    inputs = random_inputs(program, seed)
    at = [name for name, _, _ in arguments(program)].index("scale")
    rounded = [nx.round_to(x, nx.BF16) if i == at else x for i, x in enumerate(inputs)]
    (expected,) = run(parse(unfused_program(spec)), rounded, spec.world_size)  # spec: the same chain, a bf16 scale
    (actual,) = run(fused, inputs, spec.world_size)
    assert same_bits(expected, actual), text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs())
def test_relaxed_fuses_every_chain_that_exact_fuses_into_the_same_ops(spec):
    """The generated chains take their scales as the operator does: the policy changes nothing."""
    text = unfused_program(spec)
    exact, relaxed = parse(text), parse(text)
    assert [v.record() for v in fuse(exact)] == [v.record() for v in fuse(relaxed, RELAXED)]
    assert printed(exact) == printed(relaxed)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-(2.0**127), max_value=2.0**127))
def test_rounding_to_bf16_moves_a_normal_value_by_at_most_2_to_the_minus_8_of_it(value):
    v = np.float32(value)
    assume(v == 0 or abs(v) >= np.finfo(np.float32).tiny)  # normal (bf16 shares f32's exponent range)
    change = nx.relative_narrowing(np.array([v]))
    assert change <= 2.0**-8
    assert (change == 0) == nx.is_bf16_exact(np.array([v]))


@settings(max_examples=50, deadline=None)
@given(shape=st.sampled_from([(1,), (4,), (1, 4)]), bf16_values=st.booleans(), data=st.data())
def test_a_constant_scale_of_any_layout_is_folded_when_rounding_keeps_it(shape, bf16_values, data):
    """A constant of bf16 values is folded to bf16, in the scale's own shape ([1], [n] and
    [1, n] alike); one that rounding changes stays beside its `arith.truncf` (what `--ideal`
    measures the fused op against)."""
    values = np.array(data.draw(st.lists(st.floats(-4.0, 4.0, width=32), min_size=int(np.prod(shape)),
                                         max_size=int(np.prod(shape)))), dtype=np.float32).reshape(shape)  # fmt: skip
    if bf16_values:
        values = nx.round_to(values, nx.BF16).astype(np.float32)
    scale_type = f"tensor<{'x'.join(map(str, shape))}xf32>"
    literal = np.array2string(values, separator=", ", floatmode="unique").replace("\n", "")
    text = f"""func.func @main(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>) -> tensor<8x4xbf16> {{
  %s = arith.constant dense<{literal}> : {scale_type}
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x4xi32>, {scale_type}) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}}"""
    module = parse(text)
    (verdict,) = fuse(module, RELAXED)
    assert verdict.rewritten
    (constant,) = [op for op in module.walk() if op.name == "arith.constant"]
    kept = np.array(constant.value.get_values(), dtype=np.float32).reshape(constant.value.get_shape())
    assert kept.shape == shape and np.array_equal(kept, values)
    truncf = [op for op in module.walk() if op.name == "arith.truncf"]
    assert len(truncf) == (0 if nx.is_bf16_exact(values) else 1)
    assert str(constant.value.get_element_type()) == ("bf16" if nx.is_bf16_exact(values) else "f32")
