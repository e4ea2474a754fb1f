"""transformers' Llama and Qwen2 from small configs (examples/torch/llama_w8a8.py), W8A8 as vLLM-Ascend
writes it and as torchao's quantize_ makes it, sharded for W = 2 and 4: every row-parallel chain
(o_proj and down_proj of each layer) fuses, through torch.export and through torch.compile on
gloo, its verdict located at its module; bit for bit under exact, within a measured difference
under relaxed; and under exact, where the numerics differ, every chain is refused with the
remedy, or the importer's remark names numerics=relaxed.  vLLM-Ascend's static f32 deq_scales
whose values are bf16 values (vllm-static-bf16) fuse under exact, bit for bit: the importer
reads the values, on both routes."""

import re
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("torchao")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "torch"))
import llama_w8a8 as lw  # noqa: E402

LAYERS = 2
ROW_PARALLEL = [f"model.layers.{i}.{m}" for i in range(LAYERS) for m in ("self_attn.o_proj", "mlp.down_proj")]
RELAXED_BOUND = 0.1
"""The largest difference relative to max |y| that relaxed may make of the two-layer model's
output (measured: 0.9% for torchao, 3-4% for vLLM-Ascend's static scales, where a bf16-rounded
deq_scale moves some activation across a rounding boundary of the next layer's static int8 quant)."""


def module_paths(row: lw.Row) -> list[str]:
    return [re.search(r"\(([^)]*)\)", v).group(1) for v in row.verdicts]


def check_fused(row: lw.Row) -> None:
    assert (row.found, row.fused, row.refused) == (2 * LAYERS, 2 * LAYERS, []), row.verdicts
    assert module_paths(row) == ROW_PARALLEL
    if row.numerics == "exact":
        assert row.exact, (row.max_abs, row.max_rel)
    else:
        assert not row.exact and 0 < row.max_rel < RELAXED_BOUND


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("quant", lw.QUANTS)
def test_every_row_parallel_chain_of_llama_fuses_through_torch_export(quant, world_size):
    check_fused(lw.export_route("llama", quant, world_size, lw.numerics_for(quant)))


@pytest.mark.parametrize("quant", ["vllm-dynamic", "vllm-static-bf16", "torchao"])
def test_every_row_parallel_chain_of_qwen2_fuses_through_torch_export(quant):
    check_fused(lw.export_route("qwen2", quant, 2, lw.numerics_for(quant)))


def test_under_exact_static_scales_are_refused_with_the_remedy():
    row = lw.export_route("llama", "vllm-static", 2, "exact")
    assert (row.found, row.fused, row.refused) == (4, 0, ["MC2-SCALE-DTYPE"] * 4) and row.exact
    assert module_paths(row) == ROW_PARALLEL
    assert all("or fuse with numerics=relaxed" in v for v in row.verdicts)


def test_under_exact_torchao_is_a_near_miss_at_every_projection_naming_relaxed():
    row = lw.export_route("llama", "torchao", 2, "exact")
    assert (row.found, row.fused) == (0, 0) and row.exact
    assert len(row.notes) == 7 * LAYERS  # q, k, v, o, gate, up, down
    assert all(n.endswith("or numerics=relaxed, which imports it as qmm.dequant (the channel scale first, one "
                          "rounding)") for n in row.notes)  # fmt: skip
    assert [p for p in ROW_PARALLEL if any(f"({p})" in n for n in row.notes)] == ROW_PARALLEL


def test_bf16_valued_static_scales_are_narrowed_with_a_remark_at_every_projection():
    row = lw.export_route("llama", "vllm-static-bf16", 2, "exact")
    assert len(row.notes) == 7 * LAYERS and all("every value is a bf16 value" in n for n in row.notes)
    assert all("widened to f32" in v and "(exact)" in v for v in row.verdicts)


JOBS = [lw.Job("llama", "vllm-dynamic", "exact"), lw.Job("llama", "torchao", "relaxed"),
        lw.Job("llama", "vllm-static", "relaxed"), lw.Job("llama", "torchao", "exact"),
        lw.Job("llama", "vllm-static-bf16", "exact")]  # fmt: skip


@pytest.fixture(scope="module", params=[2, 4])
def compiled(request) -> tuple[int, list[lw.Row]]:
    """At W = 4, where gloo's sum of bf16 values is not SEMANTICS.md's, with torchao's near misses."""
    jobs = JOBS if request.param == 2 else [JOBS[0], JOBS[1], JOBS[3], JOBS[4]]
    return request.param, lw.compile_route(jobs, request.param)


def test_every_row_parallel_chain_fuses_under_torch_compile(compiled):
    """Compiled against eager (whose all-reduce sums as the compiled model's does): bit for bit
    under exact, torchao's near misses included (nothing fuses)."""
    _, rows = compiled
    for row in rows:
        if row.quant != "torchao" or row.numerics == "relaxed":
            check_fused(row)
        else:
            assert (row.found, row.exact) == (0, True)


def test_the_backend_warns_of_the_importer_s_remarks_and_reports_them(compiled):
    """Those that change what the program computes are warned of; a scale's values, reported only."""
    _, rows = compiled
    for row in rows:
        if row.quant == "torchao":
            assert len(row.notes) == 7 * LAYERS and row.warnings
            assert all(n in row.warnings[0] for n in row.notes)
            assert all(("numerics=relaxed" in n) for n in row.notes)
        elif row.quant == "vllm-static-bf16":
            assert len(row.notes) == 7 * LAYERS and row.warnings == []
            assert all("torch.ops.qmmar.to_bf16_exact raises" in n for n in row.notes)
        else:
            assert row.notes == [] and row.warnings == []
