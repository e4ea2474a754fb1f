"""The matcher, the verdicts and the pass's options, piece by piece (the whole-model properties
are in test_models.py)."""

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.passes import PassPipeline

from helpers import parse, printed
from qmmar.dialects.diagnostics import LocatedError
from qmmar.passes.cost_model import CostEstimate, distinct
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, FuseQuantMatmulAllReducePass, fuse
from qmmar.universe import QMMAR_UNIVERSE

CHAIN = """
  %acc{i} = qmm.matmul %x1, %w : (tensor<16x32xi8>, tensor<32x32xi8>) -> tensor<16x32xi32>
  %y{i} = qmm.dequant %acc{i}, %s : (tensor<16x32xi32>, tensor<32xbf16>) -> tensor<16x32xbf16>
  %r{i} = qmm.all_reduce %y{i} on "tp" world_size = 2 : tensor<16x32xbf16>"""


def model(chains: int, attrs: str = "") -> str:
    body = "".join(CHAIN.format(i=i) for i in range(chains))
    results = ", ".join(f"%r{i}" for i in range(chains))
    types = ", ".join(["tensor<16x32xbf16>"] * chains)
    return (f"func.func @main(%x1: tensor<16x32xi8>, %w: tensor<32x32xi8>, %s: tensor<32xbf16>) -> ({types}){attrs} {{"
            f"{body}\n  func.return {results} : {types}\n}}\n")  # fmt: skip


def test_a_must_fuse_failure_is_located_by_the_pass():
    module = parse(model(1, ' attributes {qmmar.scenario = "decode"}').replace(
        "world_size = 2 :", "world_size = 2 {qmmar.must_fuse} :"), "m.mlir")  # fmt: skip
    with pytest.raises(LocatedError) as err:
        FuseQuantMatmulAllReducePass(check_only=True, remarks="none").apply(None, module)  # type: ignore[arg-type]
    assert re.match(r"m\.mlir:2:3: error: a chain marked qmmar.must_fuse cannot be fused: \[POLICY-DECODE\]",
                    str(err.value))  # fmt: skip
    assert str(err.value).count("m.mlir") == 1


def pipeline(spec: str) -> FuseQuantMatmulAllReducePass:
    (fuse_pass,) = PassPipeline.parse_spec(QMMAR_UNIVERSE.all_passes, spec).passes
    assert isinstance(fuse_pass, FuseQuantMatmulAllReducePass)
    return fuse_pass


@pytest.mark.parametrize("spec, field, value", [
    ("int8-tops=320", "int8_tops", 320.0), ("link-gbps=1e9", "link_gbps", 1e9),
    ("link-gbps=2.5", "link_gbps", 2.5), ("check-only=true", "check_only", True),
    ("scenario=prefill", "scenario", "prefill"), ("min-m=64", "min_m", 64),
    ('group="tp"', "group", "tp"), ("group=tp", "group", "tp"),
])  # fmt: skip
def test_options_take_ordinary_literals(spec, field, value):
    assert getattr(pipeline(f"fuse-quant-matmul-all-reduce{{{spec}}}"), field) == value


@pytest.mark.parametrize("spec, message", [
    ("scenario=fast", "scenario must be one of auto, prefill, decode, not 'fast'"),
    ("remarks=1", "remarks must be one of missed, all, none, not 1"),
    ("int8-tops=0", "int8-tops must be a positive number, not 0"),
    ("int8-tops=-1.5", "int8-tops must be a positive number, not -1.5"),
    ("link-gbps=nan", "link-gbps must be a positive number, not nan"),
    ("link-gbps=true", "link-gbps must be a number, not true"),  # as typed
    ("check-only=1", "check-only must be true or false, not 1"),
    ("min-m=1.5", "min-m must be a whole number, not 1.5"),
])  # fmt: skip
def test_bad_options_are_refused_when_the_pipeline_is_parsed(spec, message):
    with pytest.raises(ValueError, match=re.escape(f"fuse-quant-matmul-all-reduce: {message}")):
        pipeline(f"fuse-quant-matmul-all-reduce{{{spec}}}")


@pytest.mark.parametrize("options", [dict(int8_tops=0.0), dict(link_gbps=-56.0), dict(scenario="fast"),
                                     dict(min_m=-1), dict(link_gbps=math.inf)])  # fmt: skip
def test_the_python_api_checks_options_alike(options):
    with pytest.raises(ValueError):
        FuseOptions(**options)


@settings(max_examples=500)
@given(a=st.floats(0, 1e7, allow_nan=False), b=st.floats(0, 1e7, allow_nan=False))
def test_cost_notes_show_enough_digits_to_tell_the_times_apart(a, b):
    sa, sb = distinct(a, b)
    if a != b and float(f"{a:.17f}") != float(f"{b:.17f}"):
        assert sa != sb
        assert (float(sa) < float(sb)) == (a < b)
    kind, numbers = CostEstimate(a, b).describe().split(": ", 1)
    assert kind == ("communication-bound" if b > a else "compute-bound")
    assert numbers == f"compute {sa} us, communication {sb} us"


def test_cost_parameters_are_positive():
    assert FuseOptions(int8_tops=640).int8_tops == 640.0
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="int8-tops must be a positive number"):
            FuseOptions(int8_tops=bad)
    for bad in ("1", True):  # not a number at all
        with pytest.raises(ValueError, match="int8-tops must be a number"):
            FuseOptions(int8_tops=bad)


PADDED = """
func.func @main(%x1: tensor<10x64xi8>, %w: tensor<64x64xi8>, %s: tensor<64xbf16>, %s1: tensor<64xbf16>,
                %s2: tensor<64xbf16>) -> tensor<10x64xbf16> {
  %acc = qmm.matmul %x1, %w : (tensor<10x64xi8>, tensor<64x64xi8>) -> tensor<10x64xi32>
  %y = qmm.dequant %acc, %s : (tensor<10x64xi32>, tensor<64xbf16>) -> tensor<10x64xbf16>
  %q = qmm.quant %y, %s1 : (tensor<10x64xbf16>, tensor<64xbf16>) -> tensor<10x64xi8>
  %e = tensor.empty() : tensor<12x64xi8>
  %p = tensor.insert_slice %q into %e[0, 0] [10, 64] [1, 1] : tensor<10x64xi8> into tensor<12x64xi8>
  %a = qmm.alltoall %p on "tp" world_size = 4 : tensor<12x64xi8> -> tensor<4x3x64xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<64xbf16>) s2(%s2 : tensor<64xbf16>) : tensor<4x3x64xi8> -> tensor<3x64xi8>
  %g = qmm.allgather %r on "tp" world_size = 4 : tensor<3x64xi8> -> tensor<12x64xi8>
  %u = tensor.extract_slice %g[0, 0] [10, 64] [1, 1] : tensor<12x64xi8> to tensor<10x64xi8>
  %o = qmm.dequant %u, %s2 : (tensor<10x64xi8>, tensor<64xbf16>) -> tensor<10x64xbf16>
  func.return %o : tensor<10x64xbf16>
}
"""

NOT_THE_PADDING = {
    "insert offset": ("into %e[0, 0]", "into %e[2, 0]"),
    "extract offset": ("%g[0, 0] [10, 64]", "%g[2, 0] [10, 64]"),
    "insert stride": ("[10, 64] [1, 1] : tensor<10x64xi8> into", "[5, 64] [2, 1] : tensor<10x64xi8> into"),
    "more padding than needed": ("tensor<12x64xi8>", "tensor<16x64xi8>"),
}


def test_the_padding_unfuse_writes_is_looked_through():
    verdicts = fuse(module := parse(PADDED))
    assert [v.legal for v in verdicts] == [True]
    assert "tensor.insert_slice" not in printed(module)


@pytest.mark.parametrize("change", NOT_THE_PADDING, ids=str)
def test_only_that_padding_is_looked_through(change):
    old, new = NOT_THE_PADDING[change]
    text = PADDED.replace(old, new)
    if change == "more padding than needed":  # keep the collectives' shapes consistent
        text = text.replace("tensor<4x3x64xi8>", "tensor<4x4x64xi8>").replace("tensor<3x64xi8>", "tensor<4x64xi8>")
    module = parse(text)
    [verdict] = fuse(module)
    assert not verdict.legal and verdict.rule == "CHAIN-PADDING" and printed(module) == printed(parse(text))


@given(insert_at=st.integers(0, 2), extract_at=st.integers(0, 2), rows=st.sampled_from([12, 16]))
@settings(max_examples=60, deadline=None)
def test_every_chain_through_slices_gets_a_verdict(insert_at, extract_at, rows):
    """Slices around the all-to-all: unfuse's padding fuses, any other is judged CHAIN-PADDING."""
    text = (PADDED.replace("into %e[0, 0]", f"into %e[{insert_at}, 0]").replace("%g[0, 0]", f"%g[{extract_at}, 0]")
            .replace("tensor<12x64xi8>", f"tensor<{rows}x64xi8>").replace("4x3x64", f"4x{rows // 4}x64")
            .replace("tensor<3x64xi8>", f"tensor<{rows // 4}x64xi8>"))  # fmt: skip
    [verdict] = fuse(parse(text))
    unfuse_padding = insert_at == extract_at == 0 and rows == 12
    assert verdict.legal == unfuse_padding and (unfuse_padding or verdict.rule == "CHAIN-PADDING")


def _with_constants(spec, names: set[str]) -> str:
    """The chain's program with the named arguments as constants in the body, each read only
    by the chain."""
    from programs import arguments, tensor, unfused_program

    header, body = unfused_program(spec).split("\n", 1)
    kept, constants = [], []
    for name, shape, dtype in arguments(spec):
        value = "1" if dtype[0] in "iu" else "0.5"
        if name in names:
            constants.append(f"  %{name} = arith.constant dense<{value}> : {tensor(shape, dtype)}\n")
        else:
            kept.append(f"%{name}: {tensor(shape, dtype)}")
    header = re.sub(r"\(.*\) ->", f"({', '.join(kept)}) ->", header, count=1)
    body = "".join(constants) + body
    return f"{header}\n{body}"


@settings(max_examples=150, deadline=None)
@given(data=st.data(), drop=st.booleans())
def test_fusion_leaves_no_constant_unused(data, drop):
    """Whatever operands are constants (a folded f32 scale, dropped communication scales), a
    constant the chain read and the fused op does not is erased; the others stay."""
    from programs import arguments, chain_specs
    from qmmar.source import verify

    spec = data.draw(chain_specs(world_sizes=(1, 2)))
    names = data.draw(st.sets(st.sampled_from([name for name, _, _ in arguments(spec)])))
    module = parse(_with_constants(spec, names))
    # A tiny int8 rate makes every chain compute-bound: with drop, the communication scales go.
    options = FuseOptions(remarks="none", drop_compute_bound_int8_comm=drop, int8_tops=1e-9)
    assert [v.rewritten for v in fuse(module, options)] == [True]
    verify(module)
    constants = [op for op in module.walk() if op.name == "arith.constant"]
    assert all(op.results[0].uses for op in constants), printed(module)
    dropped = {"s1", "s2"} if drop and spec.comm else set()
    assert len(constants) == len(names - dropped), printed(module)
