"""Generated programs (tests/lowerable.py) through fuse-quant-matmul-all-reduce,
lower-mc2-to-aclnn, lower-qmm-to-aclnn and -t aclnn-cpp, then g++ -fsyntax-only: each compiles,
or is refused with a located error that the README lists as a known limit."""

from __future__ import annotations

import re
import shutil

import pytest
from hypothesis import HealthCheck, assume, given, settings
from lowerable import KNOWN_LIMITS, lower_and_compile, programs

from cxx.harness import ROOT

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_every_fused_program_lowers_and_compiles_or_is_a_known_limit(generated):
    text, weight_format = generated
    outcome = lower_and_compile(text, weight_format)
    assume(outcome.kind != "invalid")
    assert outcome.kind in ("compiled", "refused"), f"{outcome.detail}\n{weight_format}\n{text}"


def test_the_readme_lists_every_known_limit():
    section = (ROOT / "README.md").read_text().split("### Lowering to Ascend", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"`\[([A-Z0-9-]+)\]`", section))
    assert set(KNOWN_LIMITS) <= listed, set(KNOWN_LIMITS) - listed
