"""No illegal chain is ever fused: each defect a chain can carry is found, by its rule, and
the module is left exactly as it was."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import parse, printed
from programs import chain_specs, unfused_program
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse


def second_user(text: str) -> str:
    """The dequant result also returned: the chain is no longer its only user."""
    ret = re.search(r"func.return %r : (tensor<[^>]*>)", text)
    y_type = re.search(r"%y = qmm.dequant .* -> (tensor<[^>]*>)", text).group(1)
    text = text.replace(f") -> {ret.group(1)} {{", f") -> ({ret.group(1)}, {y_type}) {{", 1)
    return text.replace(f"func.return %r : {ret.group(1)}", f"func.return %r, %y : {ret.group(1)}, {y_type}")


def world_size_16(text: str) -> str:
    return text.replace("world_size = 1 ", "world_size = 16 ") if "alltoall" not in text else text


DEFECTS = {
    "CHAIN-SINGLE-USE": (lambda spec: True, second_user),
    "MC2-WORLD-SIZE": (lambda spec: not spec.comm and spec.world_size == 1, world_size_16),
    "CHAIN-SAME-GROUP": (lambda spec: spec.comm,
                         lambda text: text.replace('qmm.allgather %rs on "tp"', 'qmm.allgather %rs on "dp"')),
    "CHAIN-SAME-S2": (lambda spec: spec.comm,
                      lambda text: text.replace("qmm.dequant %g, %s2", "qmm.dequant %g, %s1")),
    "POLICY-DECODE": (lambda spec: True,
                      lambda text: text.replace("{\n", ' attributes {qmmar.scenario = "decode"} {\n', 1)),
}  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(spec=chain_specs(), defect=st.sampled_from(sorted(DEFECTS)))
def test_an_illegal_chain_is_never_fused(spec, defect):
    applies, mutate = DEFECTS[defect]
    if not applies(spec):
        return
    text = mutate(unfused_program(spec))
    module = parse(text)
    before = printed(module)
    verdicts = fuse(module)
    assert [(v.legal, v.rule) for v in verdicts] == [(False, defect)], text
    assert printed(module) == before
