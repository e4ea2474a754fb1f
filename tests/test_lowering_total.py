"""Lowering is total over what fusion outputs: each program of issues 19 and 21 that fusion
accepted but lowering refused or broke, lowered, compiled with AddressSanitizer against the
genuine headers, run on the recording runtime and checked."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from test_aclnn_cpp import PADDING_DYNAMIC, PADDING_STATIC, chain, check_clean, lower

from cxx.harness import Program

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

ACL_MEMCPY_HOST_TO_DEVICE = 1  # acl_rt.h
ACL_UINT64 = 10

BF16_CONSTANT_SCALE = """
func.func @main(%x1: tensor<48x64xi8>, %x2: tensor<64x32xi8>) -> tensor<48x32xbf16> {
  %s = arith.constant dense<0.5> : tensor<32xbf16>
  %acc = qmm.matmul %x1, %x2 : (tensor<48x64xi8>, tensor<64x32xi8>) -> tensor<48x32xi32>
  %y = qmm.dequant %acc, %s : (tensor<48x32xi32>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 8 : tensor<48x32xbf16>
  func.return %r : tensor<48x32xbf16>
}
"""


def test_a_dense_constant_becomes_a_device_buffer_from_static_data(tmp_path):
    """288 of 1,200 programs: `'arith.constant' op has no aclnn C++ form`."""
    source, lowered = lower(BF16_CONSTANT_SCALE)
    run = Program.build(lowered, tmp_path).run()
    check_clean(run)
    (upload,) = run.calls("aclrtMemcpy")
    assert upload["kind"] == ACL_MEMCPY_HOST_TO_DEVICE and upload["count"] == 32 * 2
    assert run.calls("aclnnQuantMatmulAllReduceV3GetWorkspaceSize")  # fused, with the uploaded scale


def test_an_f32_scale_folded_to_uint64_by_fusion_lowers(tmp_path):
    """f16 output, constant f32 scale: fusion folds TransQuantParamV2 into a ui64 constant."""
    text = BF16_CONSTANT_SCALE.replace("bf16", "f16").replace(
        "dense<0.5> : tensor<32xf16>", "dense<0.5> : tensor<32xf32>"
    )
    text = text.replace("(tensor<48x32xi32>, tensor<32xf16>)", "(tensor<48x32xi32>, tensor<32xf32>)")
    source, lowered = lower(text)
    assert "ui64" in str(source)
    run = Program.build(lowered, tmp_path).run()
    check_clean(run)
    (upload,) = run.calls("aclrtMemcpy")
    assert upload["count"] == 32 * 8
    _, mc2 = run.calls("aclnnQuantMatmulAllReduceV3GetWorkspaceSize")  # prepare's size query, the launched
    assert mc2["dequant_scale"]["dtype"] == ACL_UINT64


def test_arguments_of_one_name_hint_get_distinct_cxx_names(tmp_path):
    """%x_1 and %x_2 both became `x`: `redefinition of 'const void* x'`."""
    text = """
func.func @main(%x_1: tensor<16x16xbf16>, %x_2: tensor<16x16xbf16>, %v1: tensor<16x16xbf16>,
                %x_d0: tensor<?x16xbf16>) -> tensor<16x16xbf16> {
  %o = qmm.add %x_1, %x_2 : tensor<16x16xbf16>
  %p = qmm.add %o, %v1 : tensor<16x16xbf16>
  func.return %p : tensor<16x16xbf16>
}
"""
    _, lowered = lower(text)
    program = Program.build(lowered, tmp_path)
    check_clean(program.run(dims={"arg_x_d0_d0": 16}))


def test_a_row_collapse_between_matmul_and_dequant_lowers(tmp_path):
    """`'qmm.dequant' op of an int32 value that no qmm.matmul produced has no aclnn form`."""
    text = """
func.func @main(%x1: tensor<2x3x64xi8>, %x2: tensor<64x32xi8>, %s: tensor<32xbf16>, %pt: tensor<6xf32>)
    -> tensor<6x32xbf16> attributes {qmmar.scenario = "decode"} {
  %acc = qmm.matmul %x1, %x2 : (tensor<2x3x64xi8>, tensor<64x32xi8>) -> tensor<2x3x32xi32>
  %c = tensor.collapse_shape %acc [[0, 1], [2]] : tensor<2x3x32xi32> into tensor<6x32xi32>
  %y = qmm.dequant %c, %s pertoken(%pt) : (tensor<6x32xi32>, tensor<32xbf16>, tensor<6xf32>) -> tensor<6x32xbf16>
  func.return %y : tensor<6x32xbf16>
}
"""
    _, lowered = lower(text)
    run = Program.build(lowered, tmp_path).run()
    check_clean(run)
    _, v4 = run.calls("aclnnQuantMatmulV4GetWorkspaceSize")  # prepare's size query, the launched
    assert v4["x1"]["view"] == [6, 64] and v4["out"]["view"] == [6, 32]


def test_an_int8_chain_with_s1_n_and_s2_1n_lowers(tmp_path):
    """`'aclnn.div_get_workspace_size' op other must broadcast to self's shape`."""
    text = PADDING_STATIC.replace("%s2: tensor<32xbf16>", "%s2: tensor<1x32xbf16>").replace(
        "s2(%s2 : tensor<32xbf16>)", "s2(%s2 : tensor<1x32xbf16>)").replace(
        "(tensor<6x32xi8>, tensor<32xbf16>)", "(tensor<6x32xi8>, tensor<1x32xbf16>)")  # fmt: skip
    _, lowered = lower(text)
    run = Program.build(lowered, tmp_path).run(ranks="4")
    check_clean(run)
    _, div = run.calls("aclnnDivGetWorkspaceSize")  # prepare's size query, the launched
    assert div["self"]["view"] == div["other"]["view"] == [32]


def test_the_nz_weight_of_a_transposed_x2_is_sized_from_its_view(tmp_path):
    """x2 tensor<48x64xi8>, transpose_x2: 3,072 B allocated, 4,096 B written (heap overflow)."""
    _, lowered = lower(chain(n=48, transpose_x2=True), weight_format="nz")
    run = Program.build(lowered, tmp_path).run()  # AddressSanitizer ends the run on an overflow
    check_clean(run)
    (size,) = run.calls("aclnnCalculateMatmulWeightSizeV2")
    assert size["shape"] == [64, 48] and size["size"] == 64 * 64


def test_no_zero_byte_malloc_when_the_row_count_is_zero(tmp_path):
    """A communication-only chain whose dynamic row count is 0: aclrtMalloc(..., 0, ...)."""
    _, lowered = lower(PADDING_DYNAMIC)
    run = Program.build(lowered, tmp_path).run(ranks="4", dims={"q_d0": 0, "result0_d0": 0})
    check_clean(run)
    assert all(m["size"] > 0 for m in run.calls("aclrtMalloc"))


def test_padding_rows_are_zeroed_before_hccl_reads_them(tmp_path):
    _, lowered = lower(PADDING_STATIC)
    run = Program.build(lowered, tmp_path).run(ranks="4")
    check_clean(run)
    order = [e["call"] for e in run.log if e["call"] in ("aclrtMemsetAsync", "aclrtMemcpyAsync", "HcclAlltoAll")]
    assert order[:3] == ["aclrtMemsetAsync", "aclrtMemcpyAsync", "HcclAlltoAll"]
    (zero,) = run.calls("aclrtMemsetAsync")
    assert zero["count"] == 8 * 32 and zero["value"] == 0


def test_an_executor_never_launched_is_destroyed_as_cann_documents(tmp_path):
    """aclDestroyAclOpExecutor is documented for repeatable executors only."""
    _, lowered = lower(chain())
    run = Program.build(lowered, tmp_path).run(fail="aclrtMalloc#1")  # the workspace, after phase one
    assert run.status != 0 and run.clean(), run.violations
    assert run.calls("aclSetAclOpExecutorRepeatable") and run.calls("aclDestroyAclOpExecutor")


def test_a_world_size_beyond_uint32_is_a_located_refusal(tmp_path):
    """world_size = 2^63 - 1 verified, but its C++ failed -Werror (narrowing to uint32_t)."""
    path = tmp_path / "w.mlir"
    path.write_text("""func.func @main(%x: tensor<16x16xbf16>) -> tensor<16x16xbf16> {
  %o = qmm.all_reduce %x on "tp" world_size = 9223372036854775807 : tensor<16x16xbf16>
  func.return %o : tensor<16x16xbf16>
}
""")
    r = subprocess.run([sys.executable, "-m", "qmmar.cli.opt", "w.mlir", "-p",
                        "fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn,lower-qmm-to-aclnn", "-t", "aclnn-cpp"],
                       capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr == (
        "w.mlir:2:3: remark: not a chain: 'qmm.all_reduce' its operand is %x, an argument, not a qmm.dequant (or a "
        "qmm.add of one)\n"
        "w.mlir:2:3: error: [HCCL-RANKS-UINT32] world_size = 9223372036854775807 has no aclnn C++ form: HCCL "
        "counts ranks in a uint32_t (HcclGetRankSize), from 1 to 4294967295\n"
    )


@pytest.mark.parametrize("rows", ["64", "?"])
def test_a_reduce_scatter_lowers_to_hccl_reduce_scatter(tmp_path, rows):
    """qmm.reduce_scatter (a PyTorch reduce_scatter_tensor) was left to the target, which had no
    form for it: now one HcclReduceScatter of this rank's rows."""
    out = "16" if rows == "64" else "?"
    text = f"""
func.func @main(%y: tensor<{rows}x32xbf16>) -> tensor<{out}x32xbf16> {{
  %r = qmm.reduce_scatter %y on "tp" world_size = 4 : tensor<{rows}x32xbf16> -> tensor<{out}x32xbf16>
  func.return %r : tensor<{out}x32xbf16>
}}
"""
    _, lowered = lower(text)
    dims = {"y_d0": 64, "result0_d0": 16} if rows == "?" else {}
    run = Program.build(lowered, tmp_path, dims).run(ranks="4")
    check_clean(run)
    (call,) = run.calls("HcclReduceScatter")
    assert (call["send_count"], call["recv_count"]) == (64 * 32, 16 * 32)
