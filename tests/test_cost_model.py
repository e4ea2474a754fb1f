"""The cost model of the three members: what each collective moves (a reduce-scatter half an
all-reduce's bytes; an all-gather the int8 x1 and its f32 per-token scale), the costs each
judge sets on its plan, the note that says whether a chain is compute- or communication-bound,
and qmmar-check printing it."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import parse
from programs import plain_chain, unfused_program
from qmmar.cli.check import main
from qmmar.passes.cost_model import all_gather_bytes, all_reduce_bytes, estimate, reduce_scatter_bytes
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sequence_parallel.mlir"
LINK_GBPS = 56.0
dims = st.integers(1, 1 << 14)
world_sizes = st.sampled_from([2, 4, 8, 16])


def link_us(payload: float, w: int, link_gbps: float = LINK_GBPS) -> float:
    """Each rank moves (W - 1) / W of the payload over its W - 1 links: payload / (W * link)."""
    return payload / (w * link_gbps * 1e9) * 1e6


@given(m=dims, k=dims, n=dims, w=world_sizes)
def test_a_reduce_scatter_moves_half_the_bytes_of_an_all_reduce(m, k, n, w):
    scatter = estimate(m, k, n, w, reduce_scatter_bytes(m, n, 2))
    reduce = estimate(m, k, n, w, all_reduce_bytes(m, n, 2))
    assert scatter.compute_us == reduce.compute_us == pytest.approx(2 * m * k * n / 640e12 * 1e6)
    assert scatter.comm_us == pytest.approx(reduce.comm_us / 2) == pytest.approx(link_us(m * n * 2, w))


@given(m=dims, k=dims, n=dims, w=world_sizes, pertoken=st.booleans())
def test_an_all_gather_moves_the_int8_x1_and_its_f32_per_token_scale(m, k, n, w, pertoken):
    gather = estimate(m, k, n, w, all_gather_bytes(m, k, pertoken))
    assert gather.comm_us == pytest.approx(link_us(m * k + (4 * m if pertoken else 0), w))


def judged(text: str, **options) -> dict:
    """Each chain's plan by its fused op's name."""
    return {v.kind: v.plan for v in fuse(parse(text), FuseOptions(check_only=True, **options))}


@pytest.mark.parametrize("link_gbps", [56.0, 7.0])
def test_each_judge_sets_its_collectives_cost_and_says_which_bound(link_gbps):
    plans = judged(EXAMPLE.read_text(), link_gbps=link_gbps)
    gather, scatter = plans["mc2.all_gather_quant_matmul"], plans["mc2.quant_matmul_reduce_scatter"]
    assert gather.dims == (64, 512, 256) and scatter.dims == (64, 256, 512)  # the gathered rows; x1's rows
    for plan, label, payload in ((gather, "int8 all-gather", 64 * 512 + 4 * 64),
                                 (scatter, "16-bit reduce-scatter", 64 * 512 * 2)):  # fmt: skip
        [cost] = plan.costs
        assert (cost.label, cost.chosen) == (label, True)
        assert cost.estimate.comm_us == pytest.approx(link_us(payload, 4, link_gbps))
        assert cost.estimate.compute_us == pytest.approx(2 * 64 * 256 * 512 / 640e12 * 1e6)
        [note] = [n for n in plan.notes if "COST-OVERLAP" in n]
        assert note.startswith(cost.estimate.describe())
        bound = "communication-bound" if cost.estimate.comm_us > cost.estimate.compute_us else "compute-bound"
        assert note.startswith(bound)
        share = min(cost.estimate.comm_us, cost.estimate.compute_us) / (
            cost.estimate.comm_us + cost.estimate.compute_us
        )
        assert f"hides at most the shorter, {share:.0%} of the unfused chain's time" in note


def test_a_compute_bound_chain_says_so():
    """On a chip of 1 int8 TOPS, the matmuls outlast both collectives."""
    plans = judged(EXAMPLE.read_text(), int8_tops=1.0)
    for plan in plans.values():
        assert [n for n in plan.notes if "COST-OVERLAP" in n][0].startswith("compute-bound: ")


DYNAMIC = """
func.func @main(%q: tensor<?x256xi8>, %w: tensor<256x512xi8>, %s: tensor<512xf32>, %t: tensor<?xf32>)
    -> tensor<?x512xbf16> {
  %acc = qmm.matmul %q, %w : (tensor<?x256xi8>, tensor<256x512xi8>) -> tensor<?x512xi32>
  %y = qmm.dequant %acc, %s pertoken(%t) : (tensor<?x512xi32>, tensor<512xf32>, tensor<?xf32>) -> tensor<?x512xbf16>
  %r = qmm.reduce_scatter %y on "tp" world_size = 4 : tensor<?x512xbf16> -> tensor<?x512xbf16>
  func.return %r : tensor<?x512xbf16>
}
"""


def test_a_dynamic_m_has_no_estimate_and_no_note():
    [plan] = judged(DYNAMIC).values()
    assert plan.legal and plan.costs == () and not any("COST-OVERLAP" in n for n in plan.notes)


def test_qmmar_check_prints_each_chains_cost_note(capsys):
    assert main([str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    for line, collective in ((11, "all-gather"), (16, "reduce-scatter")):
        assert re.search(
            rf"sequence_parallel.mlir:{line}:3: note: communication-bound: compute [0-9.]+ us, "
            rf"communication [0-9.]+ us; fused, the {collective} runs under the matmul",
            out,
        ), out


ALL_REDUCE = unfused_program(plain_chain(4, 64, 256, 512, "f32"))


def test_an_all_reduce_chain_moves_twice_what_its_a3_forms_fused_op_moves():
    """On A2 the all-reduce is V3's, both ways; on A3 the chain's fused op is the reduce-scatter
    (its all-gather epilogue runs after it)."""
    [(a2_kind, a2)], [(a3_kind, a3)] = judged(ALL_REDUCE, soc="a2").items(), judged(ALL_REDUCE, soc="a3").items()
    assert (a2_kind, a3_kind) == ("mc2.quant_matmul_all_reduce", "mc2.quant_matmul_reduce_scatter+qmm.allgather")
    assert [(c.label, c.chosen) for c in a2.costs] == [("16-bit all-reduce", True), ("int8 communication", False)]
    [scatter] = a3.costs
    assert scatter.label == "16-bit reduce-scatter"
    assert a2.costs[0].estimate.comm_us == pytest.approx(2 * scatter.estimate.comm_us)
    assert scatter.estimate.comm_us == pytest.approx(link_us(64 * 512 * 2, 4))
    assert any("the reduce-scatter runs under the matmul" in n for n in a3.notes)
