"""torch.compile(model, backend="qmmar") on real multi-process PyTorch: 2 and 4 processes in a gloo
group on localhost.  Each example of examples/torch, compiled, equals qmmar's interpreter on the
imported and fused program bit for bit on every rank; the fused op runs once per legal chain;
a decode-shaped call stays unfused under scenario=auto with min_m; a new row count compiles
again, with a dynamic m, and is still right."""

import json
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
import torch_models as tm  # noqa: E402
import torch_ranks as tr  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402
from xdsl.dialects import func  # noqa: E402

from helpers import same_bits  # noqa: E402
from qmmar.frontends.torch import ImportOptions, import_exported_program, weight_arrays  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse  # noqa: E402

VARIANTS = sorted(tr.tp_decoder.VARIANTS)
MIN_M = 16
# bf16-static: both projections fuse.  Prefill (m=32), a decode step (m=2: seq 1, which Dynamo
# compiles static), then new sequence lengths, which Dynamo compiles with a dynamic m: m=16
# fuses (a guard m >= 16), m=8 does not (a guard m < 16), m=48 fuses again.
DYNAMIC_CALLS = ((2, 16), (2, 1), (2, 8), (2, 4), (2, 24))
INT8_ROWS = ((32,), (8,), (20,))


def jobs(world_size: int, reports) -> list[tr.Job]:
    found = [tr.Job(v, {"inner": "eager", "report": str(reports / f"{v}-{{rank}}.json")}) for v in VARIANTS]
    found.append(tr.Job("bf16-static", {"inner": "eager", "min_m": MIN_M}, DYNAMIC_CALLS, seed=1))
    found.append(tr.Job("bf16-dynamic", {"inner": "eager", "numerics": "relaxed"}, seed=3))
    if world_size == 2:  # Inductor compiles the rest of the graph: only a graph that is all chain is exact
        found.append(tr.Job("int8-comm", {"inner": "inductor"}, INT8_ROWS, seed=2))
    return found


@pytest.fixture(scope="module", params=[2, 4])
def compiled(request, tmp_path_factory):
    """Every job, run once per world size: (world_size, jobs, results[rank][job][call], reports)."""
    world_size = request.param
    out = tmp_path_factory.mktemp(f"w{world_size}")
    found = jobs(world_size, out)
    return world_size, found, tr.run_ranks(tr.compile_and_call, world_size, found, timeout=600), out


def oracle(job: tr.Job, world_size: int, rows: tuple[int, ...], options: FuseOptions):
    """qmmar's interpreter on the imported, fused program (exported at these rows), with every
    rank's weights and inputs: the output and each fused op's result ([W, ...] each), and
    whether an all-reduce stayed unfused."""
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        model = tr.tp_decoder.build(job.variant, 0, world_size)
        program = torch.export.export(model, tr.inputs(job.variant, world_size, 0, rows, job.seed))
    finally:
        dist.destroy_process_group()
    imported = import_exported_program(program, ImportOptions(world_size))
    fuse(imported.module, options)
    fn = next(op for op in imported.module.walk() if isinstance(op, func.FuncOp))
    fused = [op.results[0] for op in fn.walk() if op.name == "mc2.quant_matmul_all_reduce"]
    ret = fn.body.block.last_op
    ret.operands = [*ret.operands, *fused]  # each fused op's result, after the output
    fn.update_function_type()
    ranks = [tr.inputs(job.variant, world_size, r, rows, job.seed) for r in range(world_size)]
    arrays = weight_arrays(imported, tm.rank_states(job.variant, world_size)) | tm.activation_arrays(imported, ranks)
    out, *values = tm.run(imported.module, [arrays[f"arg{i}"] for i in range(len(arrays))], world_size)
    return out, values, any(op.name == "qmm.all_reduce" for op in fn.walk())


def check_job(job: tr.Job, world_size: int, results: list[list[tr.Called]]) -> None:
    """Every fused op's result is the interpreter's, bit for bit, on every rank; so is the
    output, except where an all-reduce stayed unfused on more than two ranks: gloo's bf16
    all-reduce rounds at every step (of two values, it rounds once, as SEMANTICS.md does), and
    then, when no chain fused, the output is PyTorch eager's on the same ranks."""
    for call, rows in enumerate(job.rows()):
        options = FuseOptions(min_m=job.options.get("min_m", 0), numerics=job.options.get("numerics", "exact"))
        expected, fused, gloo_sums = oracle(job, world_size, rows, options)
        assert [len(results[r][call].fused) for r in range(world_size)] == [len(fused)] * world_size, rows
        for i, value in enumerate(fused):
            assert same_bits(np.stack([to_numpy(results[r][call].fused[i]) for r in range(world_size)]), value)
        got = np.stack([to_numpy(results[r][call].output) for r in range(world_size)])
        if gloo_sums and world_size > 2:
            if not fused:
                assert same_bits(got, np.stack([to_numpy(results[r][call].eager) for r in range(world_size)]))
        else:
            assert same_bits(got, expected), f"{job.variant} rows {rows}: compiled != interpreter"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_example_compiled_is_the_interpreter_bit_for_bit(compiled, variant):
    world_size, found, results, _ = compiled
    i = next(i for i, j in enumerate(found) if j.variant == variant and not j.calls and "numerics" not in j.options)
    check_job(found[i], world_size, [results[r][i] for r in range(world_size)])


def test_decode_stays_unfused_and_a_new_row_count_compiles_again(compiled):
    world_size, found, results, _ = compiled
    i = next(i for i, j in enumerate(found) if j.calls == DYNAMIC_CALLS)
    runs = [[len(c.fused) for c in results[r][i]] for r in range(world_size)]
    assert runs == [[2, 0, 2, 0, 2]] * world_size  # m = 32, 2, 16, 8, 48 against min_m = 16
    check_job(found[i], world_size, [results[r][i] for r in range(world_size)])


def test_relaxed_numerics_fuses_the_projection_whose_scale_is_f32_too(compiled):
    """bf16-dynamic's down projection dequantises with an f32 scale: refused under exact, fused
    under relaxed, and then computing the fused op's numerics (the scale rounded to bf16), which
    the interpreter computes on the program fused under relaxed."""
    world_size, found, results, _ = compiled
    i = next(i for i, j in enumerate(found) if j.options.get("numerics") == "relaxed")
    assert [len(results[r][i][0].fused) for r in range(world_size)] == [2] * world_size
    check_job(found[i], world_size, [results[r][i] for r in range(world_size)])


def test_inductor_runs_the_fused_op_bit_for_bit(compiled):
    world_size, found, results, _ = compiled
    if world_size != 2:
        pytest.skip("one world size is enough for Inductor's slower compile")
    i = next(i for i, j in enumerate(found) if j.options.get("inner") == "inductor")
    check_job(found[i], world_size, [results[r][i] for r in range(world_size)])


def test_report_names_the_python_lines_and_the_replaced_nodes(compiled):
    world_size, _, _, reports = compiled
    model = "examples/torch/tp_decoder.py"
    int_mm, o_proj, down_proj = (
        tm.source_line(p) for p in (r"torch\._int_mm\(", r"o = self\.o_proj", r"= self\.down_proj")
    )
    for rank in range(world_size):
        report = json.loads((reports / f"bf16-dynamic-{rank}.json").read_text())
        fused, refused = report["verdicts"]
        assert fused["rewritten"] and fused["rule"] is None and fused["graph"] == 0
        assert fused["location"] == f"{model}:{int_mm}:0 (o_proj)"  # the line, and the module that ran it
        assert fused["python"] == [f"{model}:{o_proj}", f"{model}:{int_mm}"]
        assert {"_int_mm_1", "all_reduce", "wait_tensor"} <= set(fused["fx_nodes"]) and fused["fused_node"]
        assert refused["rule"] == "MC2-SCALE-DTYPE" and not refused["fx_nodes"] and refused["fused_node"] is None
        assert refused["python"] == [f"{model}:{down_proj}", f"{model}:{int_mm}"]


def test_a_failing_rank_ends_the_run_at_once():
    start = time.monotonic()
    with pytest.raises(Exception, match="rank 1 fails on purpose"):
        tr.run_ranks(tr.fail_on, 2, 1, timeout=120)
    assert time.monotonic() - start < 60


def test_communication_scales_that_differ_between_ranks_are_an_error_on_every_rank():
    with pytest.raises(Exception, match="comm_quant_scale_1 must be the same on every rank"):
        tr.run_ranks(tr.compile_with_rank_scales, 2, timeout=240)
