"""Every chain rule of the two sequence-parallel members (mc2.quant_matmul_reduce_scatter,
mc2.all_gather_quant_matmul) has a unit case here, a program that breaks it and nothing before
it, whose verdict names the rule at the op it is about; and a lit case in the member's lit file
(the rule tables' own cases: test_mrs_rules.py, test_agmm_rules.py)."""

import re
from pathlib import Path

import pytest

from helpers import parse
from qmmar.passes import mc2_all_gather, mc2_reduce_scatter
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse

LIT = Path(__file__).resolve().parent / "lit" / "fuse"
MRS, AGMM = mc2_reduce_scatter.KIND, mc2_all_gather.KIND


def reduce_scatter(name: str, x1: str = "%x1", group: str = "tp", bias: bool = False, lead: str = "64") -> list[str]:
    """One reduce-scatter chain: %acc{name} -> %y{name} -> %rs{name}; `lead`: x1's leading dims."""
    acc, y = f"tensor<{lead}x128xi32>", f"tensor<{lead}x128xbf16>"
    out = "tensor<32x128xbf16>" if lead == "64" else "tensor<1x32x128xbf16>"
    operands, types = f"{x1}, %w", f"tensor<{lead}x256xi8>, tensor<256x128xi8>"
    if bias:
        operands, types = f"{operands} bias(%b)", f"{types}, tensor<128xi32>"
    return [f"  %acc{name} = qmm.matmul {operands} : ({types}) -> {acc}",
            f"  %y{name} = qmm.dequant %acc{name}, %s : ({acc}, tensor<128xf32>) -> {y}",
            f'  %rs{name} = qmm.reduce_scatter %y{name} on "{group}" world_size = 2 : {y} -> {out}']  # fmt: skip


def all_gather(name: str, group: str = "tp", scale_group: str | None = None) -> list[str]:
    """One all-gather chain: %g{name} [+ %t{name}] -> %acc{name} -> %y{name}."""
    x1, acc, y = "tensor<64x256xi8>", "tensor<64x128xi32>", "tensor<64x128xbf16>"
    lines = [f'  %g{name} = qmm.allgather %x on "{group}" world_size = 4 : tensor<16x256xi8> -> {x1}',
             f"  %acc{name} = qmm.matmul %g{name}, %w : ({x1}, tensor<256x128xi8>) -> {acc}"]  # fmt: skip
    if scale_group is None:
        return [*lines, f"  %y{name} = qmm.dequant %acc{name}, %s : ({acc}, tensor<128xf32>) -> {y}"]
    t = "tensor<64xf32>"
    return [
        *lines,
        f'  %t{name} = qmm.allgather %pt on "{scale_group}" world_size = 2 : tensor<32xf32> -> {t}',
        f"  %y{name} = qmm.dequant %acc{name}, %s pertoken(%t{name}) : ({acc}, tensor<128xf32>, {t}) -> {y}",
    ]


def program(body: list[str], results: list[tuple[str, str]]) -> str:
    args = ("%x1: tensor<64x256xi8>, %x3: tensor<2x32x256xi8>, %x: tensor<16x256xi8>, %w: tensor<256x128xi8>, "
            "%b: tensor<128xi32>, %s: tensor<128xf32>, %pt: tensor<32xf32>")  # fmt: skip
    values, types = ", ".join(v for v, _ in results), ", ".join(t for _, t in results)
    return "\n".join([f"func.func @main({args}) -> ({types}) {{", *body, f"  func.return {values} : {types}", "}"])


RS, G = "tensor<32x128xbf16>", "tensor<64x128xbf16>"
CASES = {
    # member -> rule -> (program, the value whose op the verdict is about)
    MRS: {
        "CHAIN-SINGLE-USE": (program(reduce_scatter(""), [("%rs", RS), ("%y", G)]), "%y"),
        "CHAIN-ONE-GROUP": (
            program(reduce_scatter("") + reduce_scatter("2", group="dp"), [("%rs", RS), ("%rs2", RS)]),
            "%rs2",
        ),
        "CHAIN-RS-INT32-BIAS": (program(reduce_scatter("", bias=True), [("%rs", RS)]), "%acc"),
        "CHAIN-RS-ROWS": (
            program(reduce_scatter("", x1="%x3", lead="2x32"), [("%rs", "tensor<1x32x128xbf16>")]),
            "%rs",
        ),
    },
    AGMM: {
        "AGMM-CHAIN-SINGLE-USE": (program(all_gather(""), [("%y", G), ("%acc", "tensor<64x128xi32>")]), "%acc"),
        "AGMM-CHAIN-GATHER-USERS": (
            program(
                [
                    *all_gather("")[:1],
                    "  %early = qmm.matmul %g, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>",
                    *all_gather("")[1:],
                ],
                [("%y", G), ("%early", "tensor<64x128xi32>")],
            ),
            "%g",
        ),
        "AGMM-CHAIN-SAME-GROUP": (program(all_gather("", scale_group="tp"), [("%y", G)]), "%t"),
        "CHAIN-ONE-GROUP": (program(all_gather("") + all_gather("2", group="dp"), [("%y", G), ("%y2", G)]), "%g2"),
    },
}
LIT_FILES = {MRS: LIT / "reduce-scatter-refused.mlir", AGMM: LIT / "all-gather-reject.mlir"}
MEMBERS = {MRS: mc2_reduce_scatter, AGMM: mc2_all_gather}


@pytest.mark.parametrize("soc", ["a2", "a3"])
@pytest.mark.parametrize("kind, rule", [(k, r) for k, rules in CASES.items() for r in rules])
def test_each_case_breaks_its_chain_rule_at_the_op_it_is_about(kind, rule, soc):
    text, value = CASES[kind][rule]
    refused = [v for v in fuse(parse(text), FuseOptions(soc=soc, check_only=True)) if not v.legal]
    assert [(v.kind, v.rule) for v in refused] == [(kind, rule)], text
    [at] = refused[0].plan.finding.at.results
    assert f"%{at.name_hint}" == value


@pytest.mark.parametrize("kind", list(CASES))
def test_every_chain_rule_has_a_unit_case_and_a_lit_case(kind):
    ids = {r.id for r in MEMBERS[kind].CHAIN_RULES}
    assert set(CASES[kind]) == ids
    assert set(re.findall(r"// CHECK: .*remark: not fused: \[([A-Z0-9-]+)\]", LIT_FILES[kind].read_text())) >= ids
