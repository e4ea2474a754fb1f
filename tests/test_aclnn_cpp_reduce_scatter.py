"""mc2.quant_matmul_reduce_scatter through lower-mc2-to-aclnn and the aclnn-cpp target: compiled
with -Werror and AddressSanitizer/UBSan against the genuine ACL and HCCL headers, run under the
recording runtime; the call takes what the fused op holds, and its run-time guards (the rule
table on dynamic shapes, the HCCL buffer, a workspace) stop the function before any call."""

from __future__ import annotations

import shutil

import pytest
from xdsl.dialects.builtin import DYNAMIC_INDEX

from cxx.harness import Program
from helpers import parse
from qmmar.context import qmmar_context
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass
from qmmar.source import verify

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

ACL_F32, ACL_BF16 = 0, 27
PARAM_INVALID = 161002


def chain(m: str = "64") -> str:
    return f"""
func.func @main(%x1: tensor<{m}x256xi8>, %w: tensor<128x256xi8>, %s: tensor<1x128xf32>, %t: tensor<{m}xf32>)
    -> tensor<?x128xbf16> {{
  %acc = qmm.matmul %x1, %w transpose_x2 = true : (tensor<{m}x256xi8>, tensor<128x256xi8>) -> tensor<{m}x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%t)
      : (tensor<{m}x128xi32>, tensor<1x128xf32>, tensor<{m}xf32>) -> tensor<{m}x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 4 : tensor<{m}x128xbf16> -> tensor<?x128xbf16>
  func.return %rs : tensor<?x128xbf16>
}}
"""


@pytest.fixture(scope="module", params=["64", "?"], ids=["static m", "dynamic m"])
def program(request, tmp_path_factory):
    module = parse(chain(request.param))
    assert [v.kind for v in fuse(module, FuseOptions(soc="a3")) if v.rewritten] == ["mc2.quant_matmul_reduce_scatter"]
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    verify(module)
    dims = {"x1_d0": 64, "t_d0": 64, "result0_d0": 16}
    return Program.build(module, tmp_path_factory.mktemp("mrs"), dims)


def test_the_call_takes_the_fused_ops_operands(program):
    run = program.run(ranks="4")
    assert run.clean() and run.status == 0, (run.violations, run.stderr)
    calls = run.calls("aclnnMatmulReduceScatterV2GetWorkspaceSize")  # at prepare, and at run
    assert calls
    for call in calls:
        assert (
            call["x1"]["view"] == [64, 256] and call["x2"]["view"] == [256, 128] and call["x2"]["strides"] == [1, 256]
        )
        assert call["x1_scale"]["view"] == [64] and call["x1_scale"]["dtype"] == ACL_F32
        assert call["x2_scale"]["view"] == [1, 128] and call["x2_scale"]["dtype"] == ACL_F32
        assert call["output"]["view"] == [16, 128] and call["output"]["dtype"] == ACL_BF16
        assert (call["bias"], call["quant_scale"], call["amax_out"]) == (None, None, None)
        assert (call["comm_mode"], call["reduce_op"], call["block_size"], call["group_size"]) == ("aiv", "sum", 0, 0)
    assert len(run.calls("aclnnMatmulReduceScatterV2")) == 1


def test_a_small_hccl_buffer_is_refused_before_any_call(program, monkeypatch):
    monkeypatch.setenv("HCCL_BUFFSIZE", "199")
    run = program.run(ranks="4")
    assert run.status == PARAM_INVALID and run.log == [] and "[MRS-CCL-BUFFER]" in run.stderr
    monkeypatch.setenv("HCCL_BUFFSIZE", "200")
    assert program.run(ranks="4").status == 0


def test_a_launch_without_workspace_is_refused(program):
    run = program.run(ranks="4", workspace="0")
    assert run.status == PARAM_INVALID and run.clean() and "[MRS-WORKSPACE]" in run.stderr
    assert run.calls("aclnnMatmulReduceScatterV2") == []


def test_a_dynamic_m_is_guarded_by_the_rule_table(program):
    if program.fn.function_type.inputs.data[0].get_shape()[0] != DYNAMIC_INDEX:
        pytest.skip("a static m is checked when compiling")
    run = program.run(ranks="4", dims={"x1_d0": 66, "t_d0": 66})
    assert run.status == PARAM_INVALID and run.log == []
    assert "[MRS-M-DIVISIBLE] m, the rows of x1, must be a multiple of world_size" in run.stderr
