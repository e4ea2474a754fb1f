"""qmmar-run --ideal: each op's error against its full-precision ideal, on cases whose errors
are known by hand, in both the unfused and the fused form."""

import math
import subprocess
import sys
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import parse
from programs import chain_specs, fused_program, random_inputs, unfused_program
from qmmar.api import ideal_run
from qmmar.interpreter.ideal import figure_cells, load_figures, round_once
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse

# One int8-communication chain on 2 ranks: acc = x1 @ x2 = 100 everywhere, scale 1.
CHAIN = """\
func.func @main(%x1: tensor<2x1xi8>, %x2: tensor<1x2xi8>, %scale: tensor<2xbf16>,
                %s1: tensor<2xbf16>, %s2: tensor<2xbf16>) -> tensor<2x2xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<2x1xi8>, tensor<1x2xi8>) -> tensor<2x2xi32>
  %y = qmm.dequant %acc, %scale : (tensor<2x2xi32>, tensor<2xbf16>) -> tensor<2x2xbf16>
  %q = qmm.quant %y, %s1 : (tensor<2x2xbf16>, tensor<2xbf16>) -> tensor<2x2xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<2x2xi8> -> tensor<2x1x2xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<2xbf16>) s2(%s2 : tensor<2xbf16>) : tensor<2x1x2xi8> -> tensor<1x2xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<1x2xi8> -> tensor<2x2xi8>
  %out = qmm.dequant %g, %s2 : (tensor<2x2xi8>, tensor<2xbf16>) -> tensor<2x2xbf16>
  func.return %out : tensor<2x2xbf16>
}
"""

# (s1, s2) -> (the int8 result, max abs error, quant saturated, requant saturated); ideal 200.
KNOWN = {
    # z/s1 = 100, S = 200, t = 200 * 1/2 = 100, out = 100 * 2 = 200: exact.
    "exact": ((1.0, 2.0), 200.0, 0.0, 0.0, 0.0),
    # z/s1 = 200 saturates to 127, S = 254, t = rint(254 * 0.25 = 63.5) = 64 (ties to even), out 128.
    "quant saturates": ((0.5, 2.0), 128.0, 72.0, 1.0, 0.0),
    # q = 100, S = 200, t = 200 * 1 saturates to 127, out 127.
    "requant saturates": ((1.0, 1.0), 127.0, 73.0, 0.0, 1.0),
}


def chain_inputs(s1: float, s2: float) -> list[np.ndarray]:
    bf16 = ml_dtypes.bfloat16
    return [np.ones((2, 1), np.int8), np.full((1, 2), 100, np.int8), np.ones(2, bf16),
            np.full(2, s1, bf16), np.full(2, s2, bf16)]  # fmt: skip


def forms() -> dict[str, object]:
    unfused, fused = parse(CHAIN, "chain.mlir"), parse(CHAIN, "chain.mlir")
    assert [v.rewritten for v in fuse(fused)] == [True]
    return {"qmm chain": unfused, "mc2 op": fused}


@pytest.mark.parametrize("case", sorted(KNOWN))
def test_known_int8_errors_in_both_forms(case):
    (s1, s2), result, err, quant_sat, requant_sat = KNOWN[case]
    for kind, module in forms().items():
        run = ideal_run(module, "main")
        (out,) = run.run(chain_inputs(s1, s2), 2)
        assert np.all(out.astype(np.float64) == result)
        (f,) = run.figures()
        assert (f.op, f.comm, f.dtype, f.location, f.elements) == (kind, "int8", "bf16", "chain.mlir:3:3", 4)
        assert (f.max_abs, f.mean_abs) == (err, err)
        assert f.rel_rms == pytest.approx(err / 200)
        assert f.snr_db == (math.inf if err == 0 else pytest.approx(20 * math.log10(200 / err)))
        assert (f.quant_sat, f.requant_sat, f.non_finite) == (quant_sat, requant_sat, 0)
        assert (f.plain_rel_rms, f.plain_snr_db) == (0.0, math.inf)  # 100 + 100 in bf16 is exact


def test_a_plain_mc2_op_has_no_saturation():
    module = parse(fused_program(4, (8,), 3, 5, "bf16", "bf16", False, False), "plain.mlir")
    run = ideal_run(module, "main")
    inputs = [np.full((8, 3), 2, np.int8), np.full((3, 5), 4, np.int8), np.full(5, 0.5, ml_dtypes.bfloat16)]
    (out,) = run.run(inputs, 4)
    (f,) = run.figures()
    assert np.all(out.astype(np.float64) == 4 * 12.0)  # each rank 2 * 4 * 3 * 0.5 = 12, exactly
    assert (f.comm, f.max_abs, f.snr_db, f.plain_snr_db) == ("bf16", 0.0, math.inf, math.inf)
    assert math.isnan(f.quant_sat) and math.isnan(f.requant_sat)


def test_the_cli_prints_the_figures_and_stores_them(tmp_path):
    source = tmp_path / "chain.mlir"
    source.write_text(CHAIN)
    np.savez(tmp_path / "in.npz", **{f"arg{i}": a.astype(np.float32) if a.dtype == ml_dtypes.bfloat16 else a
                                     for i, a in enumerate(chain_inputs(0.5, 2.0))})  # fmt: skip
    args = [source, "-w", 2, "-i", tmp_path / "in.npz", "--ideal", "-o", tmp_path / "out.npz"]
    r = subprocess.run([sys.executable, "-m", "qmmar.cli.run", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[-2:]
    assert header.split() == ["location", "op", "comm", "max", "abs", "mean", "abs", "rel", "RMS", "SNR", "dB",
                              "sat.", "quant", "sat.", "requant", "SNR", "dB", "without", "int8", "vs", "program",
                              "(relaxed)"]  # fmt: skip
    assert row.split() == [f"{source}:3:3", "qmm", "chain", "int8", "72", "72", "0.36", "8.874", "100.00%",
                           "0.00%", "inf", "-"]  # fmt: skip
    (f,) = load_figures(str(tmp_path / "out.npz"))
    assert (f.location, f.max_abs, f.quant_sat) == (f"{source}:3:3", 72.0, 1.0)
    with np.load(tmp_path / "out.npz") as out:
        assert sorted(out.files) == ["ideal", "result0"]


# One plain chain on 2 ranks with an f32 scale for bf16 output: acc = 100 everywhere.
F32_SCALE = """\
func.func @main(%x1: tensor<2x1xi8>, %x2: tensor<1x2xi8>, %scale: tensor<2xf32>) -> tensor<2x2xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<2x1xi8>, tensor<1x2xi8>) -> tensor<2x2xi32>
  %y = qmm.dequant %acc, %scale : (tensor<2x2xi32>, tensor<2xf32>) -> tensor<2x2xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<2x2xbf16>
  func.return %r : tensor<2x2xbf16>
}
"""


def test_a_relaxed_fusion_is_measured_against_the_program_and_its_ideal():
    """scale = 1 + 3 * 2^-10 rounds to bf16 1.0.  The program: each rank's z = bf16(100.29...)
    = 100.5, the sum 201.  The fused op: z = 100, the sum 200.  The ideal, 2 * 100.29... =
    200.59, rounds to 201: the fused op is 1 from the program and from the ideal."""
    module = parse(F32_SCALE, "f32.mlir")
    assert [v.rewritten for v in fuse(module, FuseOptions(numerics="relaxed"))] == [True]
    run = ideal_run(module, "main")
    inputs = [np.ones((2, 1), np.int8), np.full((1, 2), 100, np.int8), np.full(2, 1 + 3 * 2.0**-10, np.float32)]
    (out,) = run.run(inputs, 2)
    assert np.all(out.astype(np.float64) == 200.0)
    (f,) = run.figures()
    assert (f.op, f.max_abs, f.program_max_abs, f.program_max_rel) == ("mc2 op", 1.0, 1.0, 1 / 201)
    assert figure_cells(f)[-1] == "1 (0.50%)"


def test_an_exact_fusion_has_no_difference_to_the_program_to_show():
    module = parse(fused_program(4, (8,), 3, 5, "bf16", "bf16", False, False), "plain.mlir")
    run = ideal_run(module, "main")
    run.run([np.full((8, 3), 2, np.int8), np.full((3, 5), 4, np.int8), np.full(5, 0.5, ml_dtypes.bfloat16)], 4)
    (f,) = run.figures()
    assert math.isnan(f.program_max_abs) and math.isnan(f.program_max_rel) and figure_cells(f)[-1] == "-"


def test_a_rounding_the_program_wrote_is_the_programs_not_a_relaxed_fusions():
    """The torch importer writes truncf + extf for a scale whose values are bf16 values; exact
    fusion takes the truncf's result.  That rounding is the program's: no 'vs program'."""
    text = F32_SCALE.replace(
        "  %y = qmm.dequant %acc, %scale :",
        "  %t = arith.truncf %scale : tensor<2xf32> to tensor<2xbf16>\n"
        "  %w = arith.extf %t : tensor<2xbf16> to tensor<2xf32>\n"
        "  %y = qmm.dequant %acc, %w :",
    )
    module = parse(text, "widened.mlir")
    assert [v.rewritten for v in fuse(module)] == [True]  # exact
    run = ideal_run(module, "main")
    run.run([np.ones((2, 1), np.int8), np.full((1, 2), 100, np.int8), np.full(2, 1 + 3 * 2.0**-10, np.float32)], 2)
    (f,) = run.figures()
    assert math.isnan(f.program_max_abs) and figure_cells(f)[-1] == "-"
    assert f.max_abs == 0.0  # the ideal is the program's: the scale it rounds, 1.0


def test_chains_outside_the_entry_body_are_named_not_measured():
    text = CHAIN + CHAIN.replace("@main", "@other")
    run = ideal_run(parse(text, "two.mlir"), "main")
    assert [t.location for t in run.targets] == ["two.mlir:3:3"] and run.not_measured == ["two.mlir:14:3"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs(comm=True), seed=st.integers(0, 2**32 - 1))  # a plain chain is not measured; its mc2 op is
def test_the_fused_op_and_its_chain_have_the_same_figures(spec, seed):
    """Both forms name the same operands, so their ideals and errors agree: an operand one
    form forgot (bias, pertoken, x3, a reshape) would show here."""
    text = unfused_program(spec)
    unfused, fused = parse(text), parse(text)
    fuse(fused)
    inputs = random_inputs(spec, seed)
    figures = []
    for module in (unfused, fused):
        run = ideal_run(module, "main")
        run.run(inputs, spec.world_size)
        (f,) = run.figures()
        figures.append([x for name, x in vars(f).items() if name != "op"])
    np.testing.assert_equal(figures[0], figures[1])


def exact_round(x: Fraction, dtype) -> float:
    """The representable value of dtype nearest to x (ties to even), by exact arithmetic."""
    finfo = ml_dtypes.finfo(dtype)
    if x == 0:
        return 0.0
    mant_bits, min_exp = int(finfo.nmant), int(finfo.minexp)
    exp = max(math.floor(math.log2(abs(x))), min_exp)
    while Fraction(2) ** exp > abs(x):
        exp -= 1
    while Fraction(2) ** (exp + 1) <= abs(x):
        exp += 1
    exp = max(exp, min_exp)
    ulp = Fraction(2) ** (exp - mant_bits)
    q, r = divmod(x / ulp, 1)
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and q % 2 == 1):
        q += 1
    value = q * ulp
    return math.copysign(math.inf, x) if abs(value) > finfo.max else float(value)


@settings(max_examples=2000, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=False), dtype=st.sampled_from([ml_dtypes.bfloat16, np.float16]))
def test_the_ideal_is_rounded_once(x, dtype):
    got = float(round_once(np.array([x]), np.dtype(dtype))[0])
    assert got == exact_round(Fraction(x), dtype)


def test_rounding_through_f32_would_round_twice():
    x = 1 + 2.0**-8 + 2.0**-40  # just above a bf16 tie: the tie is what f32 keeps of it
    assert float(round_once(np.array([x]), np.dtype(ml_dtypes.bfloat16))[0]) == 1 + 2.0**-7
    assert float(np.float32(x).astype(ml_dtypes.bfloat16)) == 1.0
