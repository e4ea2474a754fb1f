"""mc2.quant_matmul_reduce_scatter's rule tables (A2, A3): each rule holds on a valid op, is the
first broken by its case, and has a lit case; a SoC-specific rule names the SoC."""

import dataclasses
import re
from pathlib import Path

import pytest

from qmmar.dialects.logic import CppLogic, StaticLogic
from qmmar.dialects.mc2_rules import TensorSig
from qmmar.dialects.mrs_rules import RULE_IDS, TABLES, Signature, first_violation

ROOT = Path(__file__).resolve().parent.parent


def t(dtype, *shape):
    return TensorSig(dtype, tuple(shape))


BASE = Signature.build({"x1": t("i8", 64, 256), "x2": t("i8", 256, 128), "x2_scale": t("f32", 1, 128)},
                       t("bf16", 16, 128), group="tp", world_size=4, transpose_x2=False)  # fmt: skip

VALID = {
    "bf16 full": dict(bias=t("f32", 128), x1_scale=t("f32", 64, 1)),
    "1-D scales": dict(x1_scale=t("f32", 64), x2_scale=t("f32", 128)),
    "f16 packed int64": dict(output=t("f16", 16, 128), x2_scale=t("i64", 128)),
    "f16 packed uint64": dict(output=t("f16", 16, 128), x2_scale=t("ui64", 1, 128)),
    "f16 pertoken": dict(output=t("f16", 16, 128), x1_scale=t("f32", 64), bias=t("f32", 128)),
    "transposed, k at its bounds": dict(x1=t("i8", 64, 65534), x2=t("i8", 128, 65534), transpose_x2=True),
    "k = 256": dict(x1=t("i8", 64, 256)),
    "world size 2": dict(world_size=2, output=t("bf16", 32, 128)),
    "world size 8": dict(world_size=8, output=t("bf16", 8, 128)),
    "dynamic m": dict(x1=t("i8", "m", 256), output=t("bf16", "om", 128)),
}

BROKEN = {
    "MRS-X1-DTYPE": dict(x1=t("f16", 64, 256), x2=t("f16", 256, 128)),
    "MRS-X2-DTYPE": dict(x2=t("i32", 256, 128)),
    "MRS-X1-RANK": dict(x1=t("i8", 2, 32, 256)),
    "MRS-X2-RANK": dict(x2=t("i8", 1, 256, 128)),
    "MRS-OUT-DTYPE": dict(output=t("f32", 16, 128)),
    "MRS-WORLD-SIZE": dict(world_size=16, output=t("bf16", 4, 128)),
    "MRS-NONEMPTY": dict(x1=t("i8", 0, 256), output=t("bf16", 0, 128)),
    "MRS-K-MATCH": dict(x2=t("i8", 512, 128)),
    "MRS-K-RANGE": dict(x1=t("i8", 64, 255), x2=t("i8", 255, 128)),
    "MRS-M-DIVISIBLE": dict(x1=t("i8", 66, 256)),
    "MRS-OUT-SHAPE": dict(output=t("bf16", 64, 128)),
    "MRS-X2SCALE-PRESENT": dict(x2_scale=None),
    "MRS-X2SCALE-DTYPE": dict(x2_scale=t("bf16", 1, 128)),
    "MRS-X2SCALE-SHAPE": dict(x2_scale=t("f32", 1)),
    "MRS-X1SCALE-DTYPE": dict(x1_scale=t("f16", 64, 1)),
    "MRS-X1SCALE-SHAPE": dict(x1_scale=t("f32", 1, 64)),
    "MRS-PERTOKEN-F16-SCALE": dict(output=t("f16", 16, 128), x2_scale=t("i64", 128), x1_scale=t("f32", 64)),
    "MRS-BIAS-DTYPE": dict(bias=t("bf16", 128)),
    "MRS-BIAS-SHAPE": dict(bias=t("f32", 1, 128)),
    "MRS-BIAS-PACKED-SCALE": dict(output=t("f16", 16, 128), x2_scale=t("i64", 128), bias=t("f32", 128)),
    "MRS-COMM-MODE": dict(comm_mode="ai_cpu"),
    "MRS-GROUP": dict(group=""),
    "MRS-REDUCE-OP": dict(reduce_op="max"),
    "MRS-COMM-TURN": dict(comm_turn=1),
    "MRS-STREAM-MODE": dict(stream_mode=0),
    "MRS-GROUP-SIZE": dict(group_size=128),
    "MRS-BLOCK-SIZE": dict(block_size=128),
    "MRS-QUANT-SCALE": dict(quant_scale=t("f32", 128)),
}

SOC_SPECIFIC = {"MRS-X1-DTYPE", "MRS-OUT-DTYPE", "MRS-WORLD-SIZE", "MRS-NONEMPTY", "MRS-K-RANGE",
                "MRS-X2SCALE-DTYPE", "MRS-X2SCALE-SHAPE", "MRS-X1SCALE-DTYPE", "MRS-X1SCALE-SHAPE",
                "MRS-PERTOKEN-F16-SCALE", "MRS-BIAS-DTYPE", "MRS-BIAS-PACKED-SCALE", "MRS-COMM-MODE",
                "MRS-GROUP-SIZE"}  # fmt: skip
"""The rules of the documentation's A2/A3 section that 950's section does not share."""


@pytest.mark.parametrize("soc", TABLES)
@pytest.mark.parametrize("name", VALID)
def test_valid_signatures_break_no_rule(name, soc):
    assert first_violation(dataclasses.replace(BASE, **VALID[name]), soc) is None


@pytest.mark.parametrize("soc", TABLES)
def test_every_rule_holds_on_a_valid_op(soc):
    assert all(rule.holds(BASE, StaticLogic()) is True for rule in TABLES[soc])


@pytest.mark.parametrize("soc", TABLES)
@pytest.mark.parametrize("rule_id", BROKEN)
def test_each_case_breaks_its_rule_first(rule_id, soc):
    violation = first_violation(dataclasses.replace(BASE, **BROKEN[rule_id]), soc)
    assert violation is not None and violation.id == rule_id
    named = f"on Atlas {soc.upper()}, " in violation.sentence
    assert named == (rule_id in SOC_SPECIFIC), violation.sentence


def test_both_socs_have_the_same_rules_in_the_same_order():
    assert [r.id for r in TABLES["a2"]] == [r.id for r in TABLES["a3"]] == list(RULE_IDS)


def test_every_rule_has_a_unit_case_and_a_lit_case():
    assert len(set(RULE_IDS)) == len(RULE_IDS)
    assert set(BROKEN) == set(RULE_IDS)
    lit = (ROOT / "tests/lit/mc2/mc2-reduce-scatter-invalid.mlir").read_text()
    assert set(re.findall(r"op \[(MRS-[A-Z0-9-]+)\]", lit)) == set(RULE_IDS)


def test_the_issue_sentence_of_k_range_on_a3():
    violation = first_violation(dataclasses.replace(BASE, **BROKEN["MRS-K-RANGE"]), "a3")
    assert violation.message() == "[MRS-K-RANGE] on Atlas A3, k must be in [256, 65535)"


def test_k_range_bounds():
    for k, ok in ((255, False), (256, True), (65534, True), (65535, False)):
        sig = dataclasses.replace(BASE, x1=t("i8", 64, k), x2=t("i8", k, 128))
        assert (first_violation(sig, "a2") is None) == ok, k


def test_dynamic_m_is_undecided_statically_and_guarded_at_run_time():
    sig = dataclasses.replace(BASE, **VALID["dynamic m"])
    rules = {r.id: r for r in TABLES["a2"]}
    assert rules["MRS-M-DIVISIBLE"].holds(sig, StaticLogic()) is None
    assert rules["MRS-M-DIVISIBLE"].holds(sig, CppLogic()) == "(m % INT64_C(4) == 0)"
    assert rules["MRS-OUT-SHAPE"].holds(sig, CppLogic()) == "(om == (m)/4)"
    assert rules["MRS-X1-DTYPE"].holds(sig, CppLogic()) is True  # static: no guard
