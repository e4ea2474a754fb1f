"""The sequence-parallel example (examples/sequence_parallel.mlir), written for W = 2, 4 and 8:
both of its chains fuse on Atlas A2 and A3 (the all-gather into mc2.all_gather_quant_matmul,
the reduce-scatter into mc2.quant_matmul_reduce_scatter), the fused program computes the
unfused one's bits on threads and under mpiexec, and it lowers to C++ that compiles against
the genuine headers and runs under the recording runtime with the sanitizers."""

import re
import shutil
from pathlib import Path

import pytest

from helpers import mpi_computes_the_threaded_bits, parse, printed, run, same_bits
from qmmar.api import random_inputs
from qmmar.context import qmmar_context
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass
from qmmar.source import verify

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sequence_parallel.mlir"
ROWS = 16
"""Each rank's rows; the example's world size is 4, so its sequence has 64 rows."""
FUSED = ["mc2.all_gather_quant_matmul", "mc2.quant_matmul_reduce_scatter"]


def example(w: int) -> str:
    """The example for W ranks: its sequence's 64 rows become 16 * W."""
    text = EXAMPLE.read_text().replace("world_size = 4", f"world_size = {w}")
    return re.sub(r"\b64x", f"{ROWS * w}x", text)


def fused(w: int, soc: str) -> str:
    module = parse(example(w))
    verdicts = fuse(module, FuseOptions(soc=soc))
    assert [(v.kind, v.rewritten) for v in verdicts] == [(kind, True) for kind in FUSED]
    return printed(module)


@pytest.mark.parametrize("soc", ["a2", "a3"])
@pytest.mark.parametrize("w", [2, 4, 8])
def test_both_chains_fuse_and_compute_the_same_bits_on_threads(w, soc):
    unfused, after = parse(example(w)), parse(fused(w, soc))
    inputs = random_inputs(unfused, w, seed=w)
    (expected,), (actual,) = run(unfused, inputs, w), run(after, inputs, w)
    assert expected.shape == (w, ROWS, 512)
    assert same_bits(expected, actual)


@pytest.mark.parametrize("w", [2, 4, 8])
def test_under_mpiexec_the_fused_program_computes_the_threaded_bits(tmp_path, w):
    pytest.importorskip("mpi4py", reason="needs the mpi extra")
    mpi_computes_the_threaded_bits(tmp_path, example(w), fused(w, "a3"), w, seed=3)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("soc", ["a2", "a3"])
def test_the_fused_example_lowers_compiles_and_runs_under_the_recording_runtime(tmp_path, soc):
    from cxx.harness import Program

    module = parse(fused(4, soc))
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    verify(module)
    result = Program.build(module, tmp_path).run(ranks="4")
    assert result.clean() and result.status == 0, (result.violations, result.stderr)
    launched = [e["call"] for e in result.log if e["call"] in ("aclnnAllGatherMatmulV2", "aclnnMatmulReduceScatterV2")]
    assert launched == ["aclnnAllGatherMatmulV2", "aclnnMatmulReduceScatterV2"]
