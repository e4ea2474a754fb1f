"""The A3 form of a matmul + all-reduce chain through both lowerings and the aclnn-cpp target:
compiled with -Werror and AddressSanitizer/UBSan against the genuine ACL and HCCL headers, run
under the recording runtime.  aclnnMatmulReduceScatterV2 writes this rank's [m / W, n] block and
HcclAllGather sends exactly that block into the [m, n] result; a bf16 dequant scale reaches the
kernel as an f32 x2_scale through aclnnCast."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cxx.harness import Program
from helpers import parse
from programs import plain_chain, unfused_program
from qmmar.context import qmmar_context
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass
from qmmar.source import read_module, verify

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

TWO_LAYERS = Path(__file__).resolve().parent.parent / "examples" / "two_layers.mlir"
ACL_F32, ACL_BF16, HCCL_BF16 = 0, 27, 11
A3_FORM = "mc2.quant_matmul_reduce_scatter+qmm.allgather"


def lowered(module):
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    verify(module)
    return module


def block_then_gather(run, rows: int, n: int, world_size: int) -> dict:
    """The MRS launch's output, and the all-gather that sends it, checked against each other."""
    order = [e["call"] for e in run.log]
    launch = order.index("aclnnMatmulReduceScatterV2")
    gather = run.log[order.index("HcclAllGather", launch)]
    query = run.calls("aclnnMatmulReduceScatterV2GetWorkspaceSize")[-1]  # at run (the first is at prepare)
    assert query["output"]["view"] == [rows, n] and query["output"]["dtype"] == ACL_BF16
    assert (gather["send_count"], gather["recv_count"], gather["dtype"]) == (rows * n, rows * n * world_size, HCCL_BF16)
    assert gather["send"] == query["output"]["data"]
    return query


def test_two_layers_on_a3_compiles_and_runs_the_a3_form(tmp_path):
    module = read_module(qmmar_context(), str(TWO_LAYERS))
    verdicts = fuse(module, FuseOptions(soc="a3"))
    assert [(v.rule, v.rewritten) for v in verdicts] == [("CHAIN-A3-INT8-COMM", False), (None, True)]
    run = Program.build(lowered(module), tmp_path).run(ranks="8")
    assert run.clean() and run.status == 0, (run.violations, run.stderr)
    assert not [e for e in run.log if e["call"].startswith("aclnnQuantMatmulAllReduce")]
    assert len(run.calls("HcclAlltoAll")) == 1  # layer 0's int8 communication, unfused
    query = block_then_gather(run, 16, 256, 8)  # layer 1: m = 128 on 8 ranks
    assert query["x2_scale"]["dtype"] == ACL_F32 and query["x1_scale"] is None


def test_a_bf16_scale_is_cast_to_f32_before_the_call(tmp_path):
    module = parse(unfused_program(plain_chain(4, 64, 256, 128, "bf16")))
    assert [v.kind for v in fuse(module, FuseOptions(soc="a3")) if v.rewritten] == [A3_FORM]
    run = Program.build(lowered(module), tmp_path).run(ranks="4")
    assert run.clean() and run.status == 0, (run.violations, run.stderr)
    query = block_then_gather(run, 16, 128, 4)
    cast = run.calls("aclnnCastGetWorkspaceSize")[-1]
    assert (cast["self"]["dtype"], cast["out"]["dtype"]) == (ACL_BF16, ACL_F32)
    assert query["x2_scale"]["data"] == cast["out"]["data"] and query["x2_scale"]["dtype"] == ACL_F32
