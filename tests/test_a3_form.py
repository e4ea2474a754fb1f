"""The A3 form of a matmul + all-reduce chain (passes/mc2_all_reduce_a3.py): on Atlas A3 the
chain becomes mc2.quant_matmul_reduce_scatter + qmm.allgather, which computes the all-reduce's
bits on every rank (fused == unfused == fused then unfused) at W = 2, 4, 8 on threads and under
mpiexec; each chain rule of the form refuses its case, at the op it is about."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sp_programs import ReduceScatterSpec, all_reduce_specs, random_inputs, unfused_program

from helpers import mpi_computes_the_threaded_bits, ops_named, parse, printed, run, same_bits, unfuse
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.source import verify

A3_FORM = "mc2.quant_matmul_reduce_scatter+qmm.allgather"


@pytest.mark.parametrize("w", [2, 4, 8])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_the_a3_form_computes_the_all_reduce_bit_for_bit(w, data, seed):
    spec = data.draw(all_reduce_specs(world_sizes=(w,)))
    text = unfused_program(spec)
    unfused, fused = parse(text), parse(text)
    verdicts = fuse(fused, FuseOptions(soc="a3"))
    assert [(v.kind, v.rule) for v in verdicts] == [(A3_FORM, None)], (text, verdicts)
    verify(fused)
    packed = spec.scale_dtype == "f32" and spec.out == "f16" and not spec.pertoken
    assert ops_named(fused, "mc2.") == ["mc2.trans_quant_param"] * packed + ["mc2.quant_matmul_reduce_scatter"]
    assert ops_named(fused, "qmm.") == ["qmm.allgather"]
    assert ("arith.extf" in printed(fused)) == (spec.scale_dtype == "bf16")

    inputs = random_inputs(spec, seed)
    (expected,) = run(unfused, inputs, spec.world_size)
    (actual,) = run(fused, inputs, spec.world_size)
    assert expected.shape == (spec.world_size, *spec.lead, spec.n)
    assert same_bits(expected, actual), text
    unfuse(fused)  # the reduce-scatter's chain, then the all-gather
    assert ops_named(fused, "qmm.")[-2:] == ["qmm.reduce_scatter", "qmm.allgather"]
    (again,) = run(fused, inputs, spec.world_size)
    assert same_bits(expected, again), text


SPECS = {w: ReduceScatterSpec(w, "bf16", (2, 4 * w), 288, 12, True, True, "bf16", "1n", True, "all_reduce")
         for w in (2, 4, 8)}  # fmt: skip
"""A 3-D chain per world size: a transposed weight, a per-token scale, a bf16 scale widened."""


def test_on_a2_the_same_chain_is_v3s():
    spec = SPECS[4]
    assert [v.kind for v in fuse(parse(unfused_program(spec)), FuseOptions(soc="a2"))] == [
        "mc2.quant_matmul_all_reduce"
    ]


def chain(body: str, args: str = "") -> str:
    return f"""
func.func @main(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xbf16>{args}) -> tensor<64x128xbf16> {{
{body}
}}
"""


MATMUL = "  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>"
DEQUANT = "  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xbf16>"
REFUSED = {
    "CHAIN-A3-X3": (chain("\n".join([MATMUL, DEQUANT, "  %z = qmm.add %y, %r : tensor<64x128xbf16>",
                                     '  %h = qmm.all_reduce %z on "tp" world_size = 2 : tensor<64x128xbf16>',
                                     "  func.return %h : tensor<64x128xbf16>"]), ", %r: tensor<64x128xbf16>"),
                    "qmm.add"),
    "CHAIN-RS-INT32-BIAS": (chain("\n".join([
        "  %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<64x256xi8>, tensor<256x128xi8>, tensor<128xi32>) "
        "-> tensor<64x128xi32>", DEQUANT, '  %h = qmm.all_reduce %y on "tp" world_size = 2 : tensor<64x128xbf16>',
        "  func.return %h : tensor<64x128xbf16>"]), ", %b: tensor<128xi32>"), "qmm.matmul"),
    "CHAIN-SINGLE-USE": (chain("\n".join([MATMUL, DEQUANT, '  %h = qmm.all_reduce %y on "tp" world_size = 2 : '
                                          "tensor<64x128xbf16>", "  %u = qmm.add %h, %y : tensor<64x128xbf16>",
                                          "  func.return %u : tensor<64x128xbf16>"])), "qmm.dequant"),
    "MRS-M-DIVISIBLE": (chain("\n".join([MATMUL, DEQUANT, '  %h = qmm.all_reduce %y on "tp" world_size = 8 : '
                                         "tensor<64x128xbf16>", "  func.return %h : tensor<64x128xbf16>"]).replace(
                                             "64x", "60x")).replace("64x", "60x"), "qmm.all_reduce"),
}  # fmt: skip


@pytest.mark.parametrize("rule", REFUSED)
def test_each_chain_rule_refuses_its_case_at_its_op(rule):
    text, at = REFUSED[rule]
    module = parse(text)
    (verdict,) = fuse(module, FuseOptions(soc="a3"))
    assert (verdict.kind, verdict.rule, verdict.plan.finding.at.name) == (A3_FORM, rule, at), verdict
    assert "mc2." not in printed(module)


def test_int8_communication_has_no_a3_form():
    two_layers = (Path(__file__).resolve().parent.parent / "examples" / "two_layers.mlir").read_text()
    verdict = fuse(parse(two_layers), FuseOptions(soc="a3"))[0]
    assert (verdict.rule, verdict.plan.finding.at.name) == ("CHAIN-A3-INT8-COMM", "qmm.alltoall")
    assert "take no communication-quantisation operand" in verdict.sentence


@pytest.mark.parametrize("w", [2, 4, 8])
def test_under_mpiexec_the_a3_form_computes_the_threaded_bits(tmp_path, w):
    pytest.importorskip("mpi4py", reason="needs the mpi extra")
    text = unfused_program(SPECS[w])
    fused = parse(text)
    assert [v.kind for v in fuse(fused, FuseOptions(soc="a3")) if v.rewritten] == [A3_FORM]
    mpi_computes_the_threaded_bits(tmp_path, text, printed(fused), w, seed=5)


def test_the_interpreter_runs_float_casts_to_nearest_even():
    """arith.truncf rounds to nearest, ties to even, and overflows to inf; arith.extf is exact."""
    module = parse("""
func.func @main(%x: tensor<4xf32>) -> (tensor<4xbf16>, tensor<4xf16>, tensor<4xf32>) {
  %b = arith.truncf %x : tensor<4xf32> to tensor<4xbf16>
  %h = arith.truncf %x : tensor<4xf32> to tensor<4xf16>
  %w = arith.extf %b : tensor<4xbf16> to tensor<4xf32>
  func.return %b, %h, %w : tensor<4xbf16>, tensor<4xf16>, tensor<4xf32>
}
""")
    bits = np.array([0x3F808000, 0x3F818000, 0x477FF000, 0x477FEFFF], dtype=np.uint32)  # two bf16 ties; f16's edge
    bf16, f16, widened = (r[0] for r in run(module, [bits.view(np.float32)], 1))
    assert bf16.view(np.uint16).tolist() == [0x3F80, 0x3F82, 0x4780, 0x4780]
    assert f16.tolist() == [1.00390625, 1.01171875, np.inf, 65504.0]
    assert widened.view(np.uint32).tolist() == [0x3F800000, 0x3F820000, 0x47800000, 0x47800000]


def test_chains_on_another_group_than_the_first_are_refused():
    text = chain(
        "\n".join(
            [
                MATMUL,
                DEQUANT,
                '  %h = qmm.all_reduce %y on "tp" world_size = 2 : tensor<64x128xbf16>',
                "  %acc2 = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>",
                "  %y2 = qmm.dequant %acc2, %s : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xbf16>",
                '  %h2 = qmm.all_reduce %y2 on "dp" world_size = 2 : tensor<64x128xbf16>',
                "  %u = qmm.add %h, %h2 : tensor<64x128xbf16>",
                "  func.return %u : tensor<64x128xbf16>",
            ]
        )
    )
    first, second = fuse(parse(text), FuseOptions(soc="a3"))
    assert (first.rewritten, second.rule, second.plan.finding.at.name) == (True, "CHAIN-ONE-GROUP", "qmm.all_reduce")
