"""mc2.all_gather_quant_matmul computes the bits of the chain it replaces, on every rank
(docs/all-gather-matmul.md): fused == unfused, and unfused again == unfused."""

import os

from gather_programs import gather_specs, random_gather_inputs, unfused_gather_program
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ops_named, parse, run, same_bits, unfuse
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.source import verify

CASES = int(os.environ.get("QMMAR_EQUIVALENCE_CASES", "1000")) // 4


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=gather_specs(), seed=st.integers(0, 2**32 - 1), soc=st.sampled_from(["a2", "a3"]))
def test_fused_equals_unfused_bit_for_bit(spec, seed, soc):
    text = unfused_gather_program(spec)
    unfused, fused = parse(text), parse(text)
    verdicts = fuse(fused, FuseOptions(soc=soc))
    assert [(v.kind, v.rule) for v in verdicts] == [("mc2.all_gather_quant_matmul", None)], (text, verdicts)
    verify(fused)
    assert ops_named(fused, "qmm.allgather") == [] and ops_named(fused, "mc2.all_gather_quant_matmul")

    inputs = random_gather_inputs(spec, seed)
    expected = run(unfused, inputs, spec.world_size)
    actual = run(fused, inputs, spec.world_size)
    again = run(unfuse(fused), inputs, spec.world_size)
    for want, got, back in zip(expected, actual, again, strict=True):
        assert same_bits(want, got), text
        assert same_bits(want, back), text
