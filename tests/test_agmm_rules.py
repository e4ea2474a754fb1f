"""The mc2.all_gather_quant_matmul rule table (aclnnAllGatherMatmulV2 on Atlas A2/A3): each rule
holds on a valid op and is the first broken by its case; every rule has a unit and a lit case."""

import dataclasses
import re
from pathlib import Path

import pytest

from qmmar.dialects import rules
from qmmar.dialects.agmm_rules import RULES, RULES_BY_ID, TABLES, Signature
from qmmar.dialects.logic import CppLogic, StaticLogic
from qmmar.dialects.mc2_rules import TensorSig

ROOT = Path(__file__).resolve().parent.parent


def t(dtype, *shape):
    return TensorSig(dtype, tuple(shape))


BASE = Signature(
    x1=t("i8", 16, 256), x2=t("i8", 256, 128), bias=None, x1_scale=None, x2_scale=t("f32", 128),
    output=t("bf16", 64, 128), gather_out=t("i8", 64, 256), group="tp", world_size=4, transpose_x2=False,
    comm_mode="aiv", gather_index=0, comm_turn=0, stream_mode=1, group_size=0, block_size=0,
)  # fmt: skip

VALID = {
    "bf16 pertoken [m]": dict(x1_scale=t("f32", 16)),
    "pertoken [m, 1], scale [1, n]": dict(x1_scale=t("f32", 16, 1), x2_scale=t("f32", 1, 128)),
    "f16 packed": dict(output=t("f16", 64, 128), x2_scale=t("ui64", 128)),
    "f16 int64": dict(output=t("f16", 64, 128), x2_scale=t("i64", 1, 128)),
    "f16 f32 pertoken": dict(output=t("f16", 64, 128), x1_scale=t("f32", 16)),
    "transposed, k = 65534, W = 8": dict(x1=t("i8", 16, 65534), x2=t("i8", 128, 65534), transpose_x2=True,
                                         world_size=8, output=t("bf16", 128, 128), gather_out=t("i8", 128, 65534)),
    "W = 2": dict(world_size=2, output=t("bf16", 32, 128), gather_out=t("i8", 32, 256)),
    "dynamic m": dict(x1=t("i8", "m", 256), output=t("bf16", "o", 128), gather_out=t("i8", "g", 256)),
}  # fmt: skip

BROKEN = {
    "AGMM-X1-DTYPE": dict(x1=t("i16", 16, 256)),
    "AGMM-X2-DTYPE": dict(x2=t("i32", 256, 128)),
    "AGMM-X1-RANK": dict(x1=t("i8", 2, 8, 256)),
    "AGMM-X2-RANK": dict(x2=t("i8", 1, 256, 128)),
    "AGMM-OUT-DTYPE": dict(output=t("f32", 64, 128)),
    "AGMM-NONEMPTY": dict(x1=t("i8", 0, 256), output=t("bf16", 0, 128), gather_out=t("i8", 0, 256)),
    "AGMM-K-MATCH": dict(x2=t("i8", 256, 128), transpose_x2=True),
    "AGMM-K-RANGE": dict(x1=t("i8", 16, 65535), x2=t("i8", 65535, 128), gather_out=t("i8", 64, 65535)),
    "AGMM-BIAS-NULL": dict(bias=t("i32", 128)),
    "AGMM-OUT-SHAPE": dict(output=t("bf16", 16, 128)),
    "AGMM-GATHER-OUT": dict(gather_out=t("i16", 64, 256)),
    "AGMM-X2SCALE-PRESENT": dict(x2_scale=None),
    "AGMM-X2SCALE-DTYPE": dict(x2_scale=t("i64", 128)),  # packed needs f16 output (the tiling's rule)
    "AGMM-X2SCALE-SHAPE": dict(x2_scale=t("f32", 1)),
    "AGMM-X1SCALE-DTYPE": dict(x1_scale=t("bf16", 16)),
    "AGMM-X1SCALE-SHAPE": dict(x1_scale=t("f32", 64)),  # the gathered scale: the op gathers it itself
    "AGMM-PERTOKEN-F16-SCALE": dict(output=t("f16", 64, 128), x2_scale=t("ui64", 128), x1_scale=t("f32", 16)),
    "AGMM-WORLD-SIZE": dict(world_size=1, output=t("bf16", 16, 128), gather_out=t("i8", 16, 256)),
    "AGMM-GROUP": dict(group="g" * 128),
    "AGMM-COMM-MODE": dict(comm_mode="ai_cpu"),
    "AGMM-GATHER-INDEX": dict(gather_index=1),
    "AGMM-COMM-TURN": dict(comm_turn=1),
    "AGMM-STREAM-MODE": dict(stream_mode=0),
    "AGMM-GROUP-SIZE": dict(group_size=128),
    "AGMM-BLOCK-SIZE": dict(block_size=128),
}  # fmt: skip


@pytest.mark.parametrize("soc", sorted(TABLES))
@pytest.mark.parametrize("name", VALID)
def test_valid_signatures_break_no_rule(name, soc):
    assert rules.first_violation(TABLES[soc], dataclasses.replace(BASE, **VALID[name])) is None


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_holds_on_a_valid_op(rule):
    assert rule.holds(BASE, StaticLogic()) is True


@pytest.mark.parametrize("soc", sorted(TABLES))
@pytest.mark.parametrize("rule_id", BROKEN)
def test_each_case_breaks_its_rule_first(rule_id, soc):
    violation = rules.first_violation(TABLES[soc], dataclasses.replace(BASE, **BROKEN[rule_id]))
    assert violation is not None and violation.id == rule_id
    assert violation.message().startswith(f"[{rule_id}] ")


def test_every_rule_has_a_unit_case_and_a_lit_case():
    ids = {r.id for r in RULES}
    assert len(ids) == len(RULES)
    assert set(BROKEN) == ids
    lit = (ROOT / "tests/lit/mc2/agmm-invalid.mlir").read_text()
    assert set(re.findall(r"op \[(AGMM-[A-Z0-9-]+)\]", lit)) == ids


def test_a_soc_specific_rule_names_the_soc():
    """The SoC-specific rules of docs/mc2-family.md 3(b) say where they hold."""
    specific = {"AGMM-X1-DTYPE", "AGMM-OUT-DTYPE", "AGMM-NONEMPTY", "AGMM-BIAS-NULL", "AGMM-X2SCALE-DTYPE",
                "AGMM-X2SCALE-SHAPE", "AGMM-X1SCALE-DTYPE", "AGMM-X1SCALE-SHAPE", "AGMM-PERTOKEN-F16-SCALE",
                "AGMM-WORLD-SIZE", "AGMM-COMM-MODE", "AGMM-GROUP-SIZE"}  # fmt: skip
    assert {r.id for r in RULES if r.sentence.startswith("on Atlas A2/A3, ")} == specific


def test_k_range_is_half_open():
    def k_sig(k):
        return dataclasses.replace(BASE, x1=t("i8", 16, k), x2=t("i8", k, 128), gather_out=t("i8", 64, k))

    rule = RULES_BY_ID["AGMM-K-RANGE"]
    assert [rule.holds(k_sig(k), StaticLogic()) for k in (255, 256, 65534, 65535)] == [False, True, True, False]


def test_dynamic_rows_are_guarded_at_run_time():
    sig = dataclasses.replace(BASE, x1=t("i8", "m", 256), output=t("bf16", "o", 128), gather_out=t("i8", "g", 256),
                              x1_scale=t("f32", "p"))  # fmt: skip
    assert RULES_BY_ID["AGMM-OUT-SHAPE"].holds(sig, StaticLogic()) is None
    assert RULES_BY_ID["AGMM-OUT-SHAPE"].holds(sig, CppLogic()) == "(o == (m)*4)"
    assert RULES_BY_ID["AGMM-X1SCALE-SHAPE"].holds(sig, CppLogic()) == "(p == m)"
