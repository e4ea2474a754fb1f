"""No illegal chain is ever fused: each defect a chain can carry is found, by its rule, and
the module is left exactly as it was."""

import re
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import parse, printed
from programs import WORLD_SIZES, ChainSpec, chain_specs, unfused_program
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse


@dataclass(frozen=True)
class Defect:
    """A defect planted in a chain's text, and the chains it can be planted in: those with
    (comm True) or without (False) int8 communication, or either (None), of these world sizes."""

    mutate: Callable[[str], str]
    comm: bool | None = None
    world_sizes: tuple[int, ...] = WORLD_SIZES

    def applies(self, spec: ChainSpec) -> bool:
        return self.comm in (None, spec.comm) and spec.world_size in self.world_sizes

    def specs(self) -> st.SearchStrategy[ChainSpec]:
        """Only chains the defect applies to: every example plants it."""
        return chain_specs(self.world_sizes, self.comm)


def second_user(text: str) -> str:
    """The dequant result also returned: the chain is no longer its only user."""
    ret = re.search(r"func.return %r : (tensor<[^>]*>)", text)
    y_type = re.search(r"%y = qmm.dequant .* -> (tensor<[^>]*>)", text).group(1)
    text = text.replace(f") -> {ret.group(1)} {{", f") -> ({ret.group(1)}, {y_type}) {{", 1)
    return text.replace(f"func.return %r : {ret.group(1)}", f"func.return %r, %y : {ret.group(1)}, {y_type}")


DEFECTS = {
    "CHAIN-SINGLE-USE": Defect(second_user),
    "MC2-WORLD-SIZE": Defect(lambda text: text.replace("world_size = 1 ", "world_size = 16 "), comm=False,
                             world_sizes=(1,)),
    "CHAIN-SAME-GROUP": Defect(lambda text: text.replace('qmm.allgather %rs on "tp"', 'qmm.allgather %rs on "dp"'),
                               comm=True),
    "CHAIN-SAME-S2": Defect(lambda text: text.replace("qmm.dequant %g, %s2", "qmm.dequant %g, %s1"), comm=True),
    "POLICY-DECODE": Defect(lambda text: text.replace("{\n", ' attributes {qmmar.scenario = "decode"} {\n', 1)),
}  # fmt: skip

PLANTED = st.one_of([st.tuples(st.just(name), defect.specs()) for name, defect in sorted(DEFECTS.items())])
"""(rule, chain): a chain the rule's defect is then planted in."""


@settings(max_examples=200, deadline=None)
@given(planted=PLANTED)
def test_an_illegal_chain_is_never_fused(planted):
    rule, spec = planted
    text = DEFECTS[rule].mutate(unfused_program(spec))
    module = parse(text)
    before = printed(module)
    verdicts = fuse(module)
    assert [(v.legal, v.rule) for v in verdicts] == [(False, rule)], text
    assert printed(module) == before
