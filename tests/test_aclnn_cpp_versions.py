"""The CANN version chooses aclnnQuantMatmulAllReduce's entry point (V3 before 9.1, V5 from
9.1): the emitted C++ compiles against the declared headers, runs under the recording runtime
with AddressSanitizer/UBSan, and passes each scale in the slot its version declares (V5 takes
the per-token scale first)."""

import shutil
from pathlib import Path

import pytest

from cxx.harness import Program
from qmmar.context import qmmar_context
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass
from qmmar.source import read_module, verify

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

TWO_LAYERS = Path(__file__).resolve().parent.parent / "examples" / "two_layers.mlir"


@pytest.mark.parametrize(("cann", "entry"), [("9.0", "V3"), ("9.1", "V5")])
def test_each_cann_version_calls_its_entry_point_with_the_scales_in_place(tmp_path, cann, entry):
    module = read_module(qmmar_context(), str(TWO_LAYERS))
    fuse(module, FuseOptions(cann=cann))
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    verify(module)
    run = Program.build(module, tmp_path).run(ranks="8")
    assert run.clean() and run.status == 0, (run.violations, run.stderr)
    calls = run.calls(f"aclnnQuantMatmulAllReduce{entry}GetWorkspaceSize")  # at prepare, and at run
    assert calls and not run.calls(f"aclnnQuantMatmulAllReduce{'V3' if entry == 'V5' else 'V5'}GetWorkspaceSize")
    for call in calls:  # layer 0 of the example: a bf16 dequant scale [256], an f32 per-token scale [128]
        assert (call["dequant_scale"]["dtype"], call["dequant_scale"]["view"]) == (27, [256])
        assert (call["pertoken_scale"]["dtype"], call["pertoken_scale"]["view"]) == (0, [128])
    assert len(run.calls(f"aclnnQuantMatmulAllReduce{entry}")) == 1
