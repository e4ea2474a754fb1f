"""The mc2 rule table: each rule holds on a valid op and is the first broken by its case."""

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmmar.dialects.logic import CppLogic, StaticLogic
from qmmar.dialects.mc2_rules import RULES, RULES_BY_ID, Signature, TensorSig, first_violation

ROOT = Path(__file__).resolve().parent.parent


def t(dtype, *shape):
    return TensorSig(dtype, tuple(shape))


BASE = Signature(
    x1=t("i8", 32, 64), x2=t("i8", 64, 128), bias=None, x3=None, dequant_scale=t("bf16", 128),
    pertoken_scale=None, comm_quant_scale_1=None, comm_quant_scale_2=None,
    output=t("bf16", 32, 128), group="tp", reduce_op="sum", comm_turn=0, stream_mode=1,
    world_size=8, transpose_x2=False,
)  # fmt: skip

VALID = {
    "full bf16": dict(bias=t("i32", 128), x3=t("bf16", 32, 128), pertoken_scale=t("f32", 32),
                      comm_quant_scale_1=t("bf16", 128), comm_quant_scale_2=t("bf16", 128)),
    "f16 packed": dict(output=t("f16", 32, 128), dequant_scale=t("ui64", 128)),
    "f16 int64 per-tensor": dict(output=t("f16", 32, 128), dequant_scale=t("i64", 1)),
    "f16 pertoken": dict(output=t("f16", 32, 128), dequant_scale=t("f32", 1, 128),
                         pertoken_scale=t("f32", 32), comm_quant_scale_1=t("f16", 1, 128),
                         comm_quant_scale_2=t("f16", 1, 128)),
    "3-D transposed": dict(x1=t("i8", 2, 16, 64), x2=t("i8", 128, 64), transpose_x2=True,
                           output=t("bf16", 2, 16, 128), pertoken_scale=t("f32", 32)),
    "largest": dict(x1=t("i8", 2**31 - 1, 65535), x2=t("i8", 65535, 65535),
                    output=t("bf16", 2**31 - 1, 65535), dequant_scale=t("bf16", 65535)),
    # x2's first dimension is bounded by INT32_MAX, its last by 65535: a transposed
    # vocabulary-sized projection (n = 100000, stored [n, k]) is the operator's.
    "transposed vocabulary": dict(x2=t("i8", 100000, 64), transpose_x2=True, output=t("bf16", 32, 100000),
                                  dequant_scale=t("bf16", 100000)),
    "widest transposed": dict(x2=t("i8", 2**31 - 1, 64), transpose_x2=True, output=t("bf16", 32, 2**31 - 1),
                              dequant_scale=t("bf16", 1)),
    "dynamic": dict(x1=t("i8", "x1.d0", "x1.d1"), output=t("bf16", "output.d0", 128)),
    "world size 1": dict(world_size=1),
}  # fmt: skip

BROKEN = {
    "MC2-X1-DTYPE": dict(x1=t("i16", 32, 64)),
    "MC2-X1-RANK": dict(x1=t("i8", 64), output=t("bf16", 128)),
    "MC2-X2-DTYPE": dict(x2=t("f16", 64, 128)),
    "MC2-X2-RANK": dict(x2=t("i8", 1, 64, 128)),
    "MC2-OUT-DTYPE": dict(output=t("f32", 32, 128)),
    "MC2-NONEMPTY": dict(x1=t("i8", 0, 64), output=t("bf16", 0, 128)),
    "MC2-K-MATCH": dict(x2=t("i8", 64, 128), transpose_x2=True),
    "MC2-K-MAX": dict(x1=t("i8", 32, 65536), x2=t("i8", 65536, 128)),
    "MC2-X2-DIM-MAX": dict(x2=t("i8", 64, 65536), output=t("bf16", 32, 65536), dequant_scale=t("bf16", 1)),
    "MC2-M-MAX": dict(x1=t("i8", 2**16, 2**15, 64), output=t("bf16", 2**16, 2**15, 128)),
    "MC2-OUT-SHAPE": dict(output=t("bf16", 32, 1, 128)),
    "MC2-BIAS-DTYPE": dict(bias=t("f32", 128)),
    "MC2-BIAS-SHAPE": dict(bias=t("i32", 1, 128)),
    "MC2-X3-DTYPE": dict(x3=t("f16", 32, 128)),
    "MC2-X3-SHAPE": dict(x3=t("bf16", 128)),
    "MC2-SCALE-DTYPE": dict(output=t("f16", 32, 128), dequant_scale=t("f32", 128)),
    "MC2-SCALE-SHAPE": dict(dequant_scale=t("bf16", 2, 128)),
    "MC2-PERTOKEN-DTYPE": dict(pertoken_scale=t("f16", 32)),
    "MC2-PERTOKEN-SHAPE": dict(x1=t("i8", 2, 16, 64), output=t("bf16", 2, 16, 128),
                               pertoken_scale=t("f32", 16)),
    "MC2-COMM-PAIR": dict(comm_quant_scale_2=t("bf16", 128)),
    "MC2-COMM-DTYPE": dict(comm_quant_scale_1=t("f32", 128), comm_quant_scale_2=t("f32", 128)),
    "MC2-COMM-SHAPE": dict(comm_quant_scale_1=t("bf16", 1), comm_quant_scale_2=t("bf16", 1)),
    "MC2-WORLD-SIZE": dict(world_size=16),
    "MC2-GROUP": dict(group="g" * 128),
    "MC2-REDUCE-OP": dict(reduce_op="max"),
    "MC2-COMM-TURN": dict(comm_turn=2),
    "MC2-STREAM-MODE": dict(stream_mode=2),
}  # fmt: skip


@pytest.mark.parametrize("name", VALID)
def test_valid_signatures_break_no_rule(name):
    sig = dataclasses.replace(BASE, **VALID[name])
    assert first_violation(sig) is None


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_holds_on_a_valid_op(rule):
    assert rule.holds(BASE, StaticLogic()) is True


@pytest.mark.parametrize("rule_id", BROKEN)
def test_each_case_breaks_its_rule_first(rule_id):
    sig = dataclasses.replace(BASE, **BROKEN[rule_id])
    violation = first_violation(sig)
    assert violation is not None and violation.id == rule_id
    assert violation.message().startswith(f"[{rule_id}] ")


def test_every_rule_has_a_unit_case_and_a_lit_case():
    ids = {r.id for r in RULES}
    assert len(ids) == len(RULES)
    assert set(BROKEN) == ids
    lit = (ROOT / "tests/lit/mc2/mc2-invalid.mlir").read_text()
    assert set(re.findall(r"op \[(MC2-[A-Z0-9-]+)\]", lit)) == ids


def test_dynamic_dims_are_undecided_statically_and_guarded_at_run_time():
    sig = dataclasses.replace(BASE, x1=t("i8", "m", 64), output=t("bf16", "m", 128),
                              pertoken_scale=t("f32", "pm"))  # fmt: skip
    rule = RULES_BY_ID["MC2-M-MAX"]
    assert rule.holds(sig, StaticLogic()) is None
    assert rule.holds(sig, CppLogic()) == "(m <= INT64_C(2147483647))"
    assert RULES_BY_ID["MC2-PERTOKEN-SHAPE"].holds(sig, CppLogic()) == "(pm == m)"
    nonempty = "((m > INT64_C(0)) && (pm > INT64_C(0)))"  # each term once (-Wlogical-op)
    assert RULES_BY_ID["MC2-NONEMPTY"].holds(sig, CppLogic()) == nonempty
    assert RULES_BY_ID["MC2-X1-DTYPE"].holds(sig, CppLogic()) is True  # static: no guard


@pytest.mark.parametrize("x2, transpose", [((64, 65536), False), ((2**31, 64), True)],
                         ids=["last dim over 65535", "first dim over INT32_MAX"])  # fmt: skip
def test_x2_dims_bounded_as_cann_bounds_them(x2, transpose):
    n = x2[0] if transpose else x2[1]
    sig = dataclasses.replace(BASE, x2=t("i8", *x2), transpose_x2=transpose, output=t("bf16", 32, n),
                              dequant_scale=t("bf16", 1))  # fmt: skip
    assert first_violation(sig).id == "MC2-X2-DIM-MAX"


def test_x2_dim_guard_reads_the_stored_layout():
    sig = dataclasses.replace(BASE, x2=t("i8", "n", 64), transpose_x2=True, output=t("bf16", 32, "n"),
                              dequant_scale=t("bf16", 1))  # fmt: skip
    assert RULES_BY_ID["MC2-X2-DIM-MAX"].holds(sig, CppLogic()) == "(n <= INT64_C(2147483647))"  # parenthesised whole


def test_three_d_m_is_a_product():
    sig = dataclasses.replace(BASE, x1=t("i8", "b", 16, 64), output=t("bf16", "b", 16, 128))
    # a checked product (no signed overflow), and the comparison parenthesised whole
    assert RULES_BY_ID["MC2-M-MAX"].holds(sig, CppLogic()) == "(qmmar_mul_sat(b, INT64_C(16)) <= INT64_C(2147483647))"


def test_readme_table_is_generated_from_the_code():
    from qmmar.rules_doc import markdown

    readme = (ROOT / "README.md").read_text()
    assert markdown() in readme, "regenerate with: python -m qmmar.rules_doc"


def cann_axis_sizes_ok(m: int, k: int, x2: tuple[int, int], transpose: bool) -> bool:
    """CANN's QuantMatmulAllReduceTiling::CheckAxisSize, its typo fixed: m <= INT32_MAX,
    k <= UINT16_MAX, x2's stored first dim <= INT32_MAX and last dim <= UINT16_MAX."""
    n = x2[0] if transpose else x2[1]
    first, last = (n, k) if transpose else (k, n)
    return m <= 2**31 - 1 and k <= 2**16 - 1 and first <= 2**31 - 1 and last <= 2**16 - 1


@settings(max_examples=500)
@given(m=st.sampled_from([1, 2**31 - 1, 2**31]), k=st.sampled_from([1, 65535, 65536]),
       n=st.sampled_from([1, 65535, 65536, 100000, 2**31 - 1, 2**31]), transpose=st.booleans())  # fmt: skip
def test_the_size_rules_agree_with_cann(m, k, n, transpose):
    x2 = (n, k) if transpose else (k, n)
    sig = dataclasses.replace(BASE, x1=t("i8", m, k), x2=t("i8", *x2), transpose_x2=transpose,
                              output=t("bf16", m, n), dequant_scale=t("bf16", 1))  # fmt: skip
    size_rules = ("MC2-K-MAX", "MC2-X2-DIM-MAX", "MC2-M-MAX")
    ours = all(RULES_BY_ID[r].holds(sig, StaticLogic()) for r in size_rules)
    assert ours == cann_axis_sizes_ok(m, k, x2, transpose)
    assert first_violation(sig) is None if ours else first_violation(sig).id in size_rules
