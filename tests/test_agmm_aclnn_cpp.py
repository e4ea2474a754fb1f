"""mc2.all_gather_quant_matmul lowered to aclnnAllGatherMatmulV2 (commMode "aiv"), emitted,
compiled against the genuine ACL/HCCL headers with the sanitizers, run on the recording runtime:
the call receives what the op says; a dynamic m is guarded by the rule table before any call."""

from __future__ import annotations

import shutil

import pytest

from cxx.harness import Program
from helpers import parse
from qmmar.context import qmmar_context
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass
from qmmar.source import verify

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

ACL = {"i8": 2, "f32": 0, "bf16": 27, "f16": 1, "ui64": 10}  # acl_base_rt.h

CHAIN = (
    "func.func @main(%x: tensor<M0x256xi8>, %w: tensor<128x256xi8>, %s: tensor<1x128xf32>, %pt: tensor<M1xf32>, "
    "%w2: tensor<256x64xi8>, %s2: tensor<64xbf16>) -> (tensor<M2x128xbf16>, tensor<M2x64xbf16>) {\n"
    '  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<M0x256xi8> -> tensor<M2x256xi8>\n'
    '  %t = qmm.allgather %pt on "tp" world_size = 4 : tensor<M1xf32> -> tensor<M2xf32>\n'
    "  %acc = qmm.matmul %g, %w transpose_x2 = true : (tensor<M2x256xi8>, tensor<128x256xi8>) "
    "-> tensor<M2x128xi32>\n"
    "  %y = qmm.dequant %acc, %s pertoken(%t) : (tensor<M2x128xi32>, tensor<1x128xf32>, tensor<M2xf32>) "
    "-> tensor<M2x128xbf16>\n"
    "  %acc2 = qmm.matmul %g, %w2 : (tensor<M2x256xi8>, tensor<256x64xi8>) -> tensor<M2x64xi32>\n"
    "  %o = qmm.dequant %acc2, %s2 : (tensor<M2x64xi32>, tensor<64xbf16>) -> tensor<M2x64xbf16>\n"
    "  func.return %y, %o : tensor<M2x128xbf16>, tensor<M2x64xbf16>\n"
    "}\n"
)  # fmt: skip


def lowered(m: str, soc: str):
    text = CHAIN.replace("M0", m).replace("M1", m).replace("M2", "?" if m == "?" else str(4 * int(m)))
    module = parse(text)
    assert [v.rule for v in fuse(module, FuseOptions(soc=soc))] == [None]
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)  # type: ignore[arg-type]
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    verify(module)
    return module


@pytest.mark.parametrize("soc", ["a2", "a3"])
def test_the_call_receives_what_the_op_says(tmp_path, soc):
    run = Program.build(lowered("16", soc), tmp_path).run(ranks="4")
    assert run.clean() and run.status == 0, (run.violations, run.stderr)
    *_, call = run.calls("aclnnAllGatherMatmulV2GetWorkspaceSize")  # run's (prepare's comes first)
    assert call["x1"]["view"] == [16, 256] and call["x1"]["dtype"] == ACL["i8"]
    assert call["x2"]["view"] == [256, 128] and call["x2"]["strides"] == [1, 256]  # a transposed view of [n, k]
    assert call["x1_scale"]["view"] == [16] and call["x2_scale"]["view"] == [1, 128]
    assert call["bias"] is None and call["quant_scale"] is None and call["amax_out"] is None
    assert (call["comm_mode"], call["gather_index"], call["comm_turn"], call["stream_mode"]) == ("aiv", 0, 0, 1)
    assert (call["block_size"], call["group_size"]) == (0, 0)
    assert call["output"]["view"] == [64, 128] and call["output"]["dtype"] == ACL["bf16"]
    assert call["gather_out"]["view"] == [64, 256] and call["gather_out"]["dtype"] == ACL["i8"]
    launches = [e for e in run.log if e["call"] == "aclnnAllGatherMatmulV2"]
    assert len(launches) == 1
    # the second matmul reads gather_out, the buffer the fused op wrote
    *_, mm = run.calls("aclnnQuantMatmulV4GetWorkspaceSize")
    assert mm["x1"]["data"] == call["gather_out"]["data"]


def test_a_dynamic_m_is_guarded_by_the_rule_table(tmp_path):
    program = Program.build(lowered("?", "a2"), tmp_path, {"x_d0": 16, "pt_d0": 16, "result0_d0": 64, "result1_d0": 64})
    good = program.run(ranks="4")
    assert good.clean() and good.status == 0, (good.violations, good.stderr)
    run = program.run(ranks="4", dims={"pt_d0": 64})  # the gathered scale's length: the op wants this rank's
    assert run.status == 161002 and run.log == [], run.stderr
    assert "[AGMM-X1SCALE-SHAPE]" in run.stderr


def test_no_workspace_is_refused_before_the_launch(tmp_path):
    """The launch phase returns success without running the op when the workspace is null."""
    run = Program.build(lowered("16", "a2"), tmp_path).run(ranks="4", workspace="0")
    assert run.status == 161002 and run.clean(), run.stderr
    assert "[AGMM-WORKSPACE]" in run.stderr
    assert run.calls("aclnnAllGatherMatmulV2GetWorkspaceSize") and not run.calls("aclnnAllGatherMatmulV2")


def test_a_small_hccl_buffer_is_refused_before_any_call(tmp_path, monkeypatch):
    program = Program.build(lowered("16", "a2"), tmp_path)
    monkeypatch.setenv("HCCL_BUFFSIZE", "200")
    assert program.run(ranks="4").status == 0
    monkeypatch.setenv("HCCL_BUFFSIZE", "199")
    run = program.run(ranks="4")
    assert run.status == 161002 and run.log == [] and run.clean(), run.stderr
    assert "[AGMM-CCL-BUFFER]" in run.stderr
