"""The aclnn-cpp target end to end: lowered, emitted, compiled with g++ -Wall -Werror against
the genuine ACL and HCCL headers, linked with the recording runtime, run, and the call log
compared with what the IR says; then every call made to fail in turn, leaking nothing."""

import shutil
from dataclasses import dataclass

import pytest

from cxx.harness import ACL_DTYPES, Program
from helpers import parse
from programs import ChainSpec, unfused_program
from qmmar.context import qmmar_context
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.source import verify

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

ND, NZ = 2, 29
CODES = {name: code for name, (code, _) in ACL_DTYPES.items()}
ACL_CODE = {
    "ACL_INT8": 2,
    "ACL_INT32": 3,
    "ACL_INT64": 9,
    "ACL_UINT64": 10,
    "ACL_FLOAT16": 1,
    "ACL_BF16": 27,
    "ACL_FLOAT": 0,
}  # the aclDataType values of acl_base_rt.h


@dataclass(frozen=True)
class Variant:
    name: str
    out: str = "bf16"
    lead: tuple = (48,)  # x1's leading dims; "?" is dynamic
    k: int = 64
    n: int = 32
    bias: bool = False
    x3: bool = False
    pertoken: bool = False
    comm: bool = False
    transpose: bool = False
    weight_format: str = "nd"
    f32_scale: bool = False  # f16 without pertoken from an f32 argument: TransQuantParamV2 on device

    @property
    def scale_type(self) -> str:
        if self.out == "bf16":
            return "bf16"
        return "f32" if self.pertoken or self.f32_scale else "ui64"

    def program(self) -> str:
        """The unfused chain of this variant (fused by the pass, so fusion is exercised too)."""
        spec = ChainSpec(world_size=8, out=self.out, lead=self.lead, k=self.k, n=self.n,
                         transpose_x2=self.transpose, bias=self.bias, pertoken=self.pertoken, x3=self.x3,
                         comm=self.comm, scale_dtype=self.scale_type, scale_shape="n", comm_shape="n",
                         collapse=False, extreme=False)  # fmt: skip
        return unfused_program(spec)


VARIANTS = [
    Variant("bf16 plain"),
    Variant("bf16 everything", bias=True, x3=True, pertoken=True, comm=True),
    Variant("f16 packed scale", out="f16"),
    Variant("f16 f32 scale on device", out="f16", f32_scale=True, bias=True),
    Variant("f16 pertoken comm", out="f16", pertoken=True, comm=True, x3=True),
    Variant("3-D x1", lead=(2, 24), pertoken=True, x3=True),
    Variant("transposed x2", transpose=True, bias=True),
    Variant("nz weight", weight_format="nz", comm=True),
    Variant("nz transposed", weight_format="nz", transpose=True),
    Variant("dynamic m", lead=("?",), pertoken=True, x3=True),
]
DIMS = {"x1_d0": 48, "pt_d0": 48, "x3_d0": 48, "result0_d0": 48}


def lowered(variant: Variant):
    module = parse(variant.program())
    assert [v.legal for v in fuse(module)] == [True]
    LowerMc2ToAclnnPass(weight_format=variant.weight_format).apply(qmmar_context(), module)
    verify(module)
    return module


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.name)
def built(request, tmp_path_factory):
    variant = request.param
    return variant, Program.build(lowered(variant), tmp_path_factory.mktemp("cxx"), DIMS)


def concrete(shape):
    return [48 if d == "?" else d for d in shape]


def test_calls_match_the_ir(built):
    v, program = built
    run = program.run()
    assert run.violations == [] and run.status == 0 and run.leaks == 0, (run.violations, run.stderr)
    (call,) = run.calls("aclnnQuantMatmulAllReduceV3GetWorkspaceSize")
    lead = concrete(v.lead)
    m = 1
    for d in lead:
        m *= d
    x1, x2, out = call["x1"], call["x2"], call["output"]
    assert (x1["view"], x1["dtype"], x1["data"]) == (lead + [v.k], ACL_CODE["ACL_INT8"], "x1")
    assert x1["strides"] == ([v.k * lead[1], v.k, 1] if len(lead) == 2 else [v.k, 1])
    assert x2["view"] == [v.k, v.n] and x2["format"] == (NZ if v.weight_format == "nz" else ND)
    assert x2["strides"] == ([1, v.k] if v.transpose else [v.n, 1])
    assert x2["storage"] == ([v.n, v.k] if v.transpose else [v.k, v.n])
    assert x2["data"] == "x2" if v.weight_format == "nd" else x2["data"].startswith("alloc")
    assert (out["view"], out["dtype"], out["data"]) == (lead + [v.n], ACL_CODE[CODES[v.out]], "result0")
    assert (call["bias"] is not None) == v.bias and (call["x3"] is not None) == v.x3
    assert (call["pertoken_scale"] is not None) == v.pertoken
    assert (call["comm_quant_scale_1"] is not None) == (call["comm_quant_scale_2"] is not None) == v.comm
    if v.pertoken:
        assert call["pertoken_scale"]["view"] == [m]
    scale_dtype = "ui64" if v.out == "f16" and not v.pertoken else v.scale_type
    assert call["dequant_scale"]["dtype"] == ACL_CODE[CODES[scale_dtype]]
    assert (call["group"], call["reduce_op"], call["comm_turn"], call["stream_mode"]) == (
        "hccl_world_group",
        "sum",
        0,
        1,
    )
    assert len(run.calls("aclnnQuantMatmulAllReduceV3")) == 1
    assert len(run.calls("aclnnTransQuantParamV2")) == int(v.f32_scale)
    assert len(run.calls("aclnnTransMatmulWeight")) == int(v.weight_format == "nz")
    created = len(run.calls("aclCreateTensor"))
    assert created == len(run.calls("aclDestroyTensor"))


def test_a_zero_workspace_is_not_allocated(built):
    _, program = built
    run = program.run(workspace="0")
    assert run.violations == [] and run.status == 0 and run.leaks == 0
    assert all(c["workspace"] is None for c in run.calls("aclnnQuantMatmulAllReduceV3"))
    assert len(run.calls("aclrtMalloc")) == len(run.calls("aclrtFree"))


FALLIBLE = [
    "HcclGetCommName",
    "aclCreateTensor",
    "aclCreateIntArray",
    "aclnnCalculateMatmulWeightSizeV2",
    "aclrtMalloc",
    "aclrtMemcpy",
    "aclnnTransMatmulWeightGetWorkspaceSize",
    "aclnnTransMatmulWeight",
    "aclnnTransQuantParamV2GetWorkspaceSize",
    "aclnnTransQuantParamV2",
    "aclnnQuantMatmulAllReduceV3GetWorkspaceSize",
    "aclnnQuantMatmulAllReduceV3",
    "aclrtSynchronizeStream",
]


def test_every_failure_is_reported_and_leaks_nothing(built):
    _, program = built
    made = {c["call"]: len(program.run().calls(c["call"])) for c in program.run().log}
    tried = 0
    for call in FALLIBLE:
        for nth in range(1, made.get(call, 0) + 1):
            run = program.run(fail=f"{call}#{nth}")
            assert run.calls("injected_failure"), call
            assert run.status != 0, call
            assert f"{call} failed with status" in run.stderr or call in run.stderr, (call, run.stderr)
            assert run.stderr.startswith("qmmar: test.mlir:"), run.stderr
            assert run.violations == [] and run.leaks == 0, (call, nth, run.violations)
            tried += 1
    assert tried >= 8


def test_dynamic_dims_are_guarded_by_the_rule_table(tmp_path):
    variant = next(v for v in VARIANTS if v.name == "dynamic m")
    program = Program.build(lowered(variant), tmp_path, {**DIMS, "pt_d0": 40})
    run = program.run()
    assert run.status == 161002 and run.leaks == 0 and run.violations == []
    assert "run-time check failed: [MC2-PERTOKEN-SHAPE] pertoken_scale must be [m]" in run.stderr
    assert run.calls("aclnnQuantMatmulAllReduceV3GetWorkspaceSize") == []


def test_the_readme_example_emits_cpp_that_compiles(tmp_path):
    import subprocess
    import sys

    from cxx.harness import ROOT, compile_cxx

    cpp = tmp_path / "layer.cpp"
    r = subprocess.run([sys.executable, "-m", "qmmar.cli.opt", str(ROOT / "examples/layer.mlir"), "-p",
                        "fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn{weight-format=nz}", "-t", "aclnn-cpp",
                        "-o", str(cpp)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    main = tmp_path / "main.cpp"
    main.write_text("int main() { return 0; }\n")
    obj = tmp_path / "layer.o"
    compile_cxx([cpp, main, ROOT / "tests/cxx/recording_runtime.cpp"], obj)
