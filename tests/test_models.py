"""Fusion on whole models (tests/models.py): several chains; residuals from earlier chains,
fused or not; the add's operands in either order, or two matmul dequants, or the same value
twice; an unrelated data-parallel collective first; chains written already fused, whose
unfused form pads rows or has a dynamic m.  For every model:

* nothing raises, and every chain gets one verdict, naming the rule the model was built to break;
* check-only mode judges exactly the chains that fusing judges, and rewrites nothing;
* the fused model computes the original's bits on every rank, and so does its unfused form;
* unfusing the fused model and fusing it again gives it back.

QMMAR_MODEL_CASES sets the number of models run on the interpreter (default 200); the
judging-only property runs twice as many.
"""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import model_inputs, model_plans, model_program

from helpers import parse, printed, run, same_bits, unfuse
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.source import verify

CASES = int(os.environ.get("QMMAR_MODEL_CASES", "200"))
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def judged(text: str):
    """The model parsed, checked and fused: (fused module, check-only verdicts, verdicts)."""
    original = parse(text)
    checked, fused = original.clone(), original.clone()
    check = fuse(checked, FuseOptions(check_only=True))
    verdicts = fuse(fused)
    assert printed(checked) == printed(original), "check-only mode rewrote the IR"
    verify(fused)
    return fused, check, verdicts


@settings(max_examples=2 * CASES, deadline=None, suppress_health_check=SLOW)
@given(plan=model_plans())
def test_every_chain_gets_its_verdict_and_unfusing_gives_the_model_back(plan):
    text, _ = model_program(plan)
    fused, check, verdicts = judged(text)
    assert [v.rule for v in verdicts] == plan.expected_rules(), text
    assert [(v.location, v.legal, v.rule) for v in check] == [(v.location, v.legal, v.rule) for v in verdicts]
    # In a decode function nothing fuses, so the round trip is checked as prefill.
    options = FuseOptions(scenario="prefill") if plan.decode else FuseOptions()
    if plan.decode:
        fuse(fused := parse(text), options)
    fused_text = printed(fused)
    again = unfuse(parse(fused_text))
    assert not [op for op in again.walk() if op.name == "mc2.quant_matmul_all_reduce"]
    fuse(again, options)
    assert printed(again) == fused_text, text


@settings(max_examples=CASES, deadline=None, suppress_health_check=SLOW)
@given(plan=model_plans(max_chains=3), seed=st.integers(0, 2**32 - 1))
def test_fusion_and_unfusion_change_no_bit(plan, seed):
    text, args = model_program(plan)
    fused, _, _ = judged(text)
    inputs = model_inputs(plan, args, seed)
    w = plan.world_size
    expected = run(parse(text), inputs, w)
    for form in (fused, unfuse(parse(printed(fused)))):
        actual = run(form, inputs, w)
        assert all(same_bits(a, b) for a, b in zip(expected, actual, strict=True)), text
