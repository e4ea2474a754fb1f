"""The aclnn-cpp target end to end: lowered (lower-mc2-to-aclnn, lower-qmm-to-aclnn), emitted
with its header, compiled with g++ -Wall -Wextra -Werror and AddressSanitizer/UBSan against the
genuine ACL and HCCL headers, linked with the recording runtime, run, and every logged call
compared with what the source IR says; then every call made to fail in turn, leaking nothing."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects import func, tensor
from xdsl.dialects.builtin import ModuleOp, TensorType

from cxx.harness import ROOT, SANITIZERS, Program, compile_cxx, emit_cpp, include_flags, runtime_object
from helpers import parse
from programs import ChainSpec, unfused_program
from qmmar.context import qmmar_context
from qmmar.dialects import mc2, qmm
from qmmar.dialects.dtypes import dtype_name
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass
from qmmar.source import verify
from qmmar.targets.aclnn_cpp import memory_plan
from qmmar.targets.prelude import ARENA_ALIGNMENT, SYNC_TIMEOUT_MS

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

ND, NZ = 2, 29
ACL = {"i8": 2, "i32": 3, "i64": 9, "ui64": 10, "f16": 1, "bf16": 27, "f32": 0}  # acl_base_rt.h
HCCL = {"i8": 0, "i32": 2, "f16": 3, "f32": 4, "bf16": 11}  # hccl_types.h
HCCL_REDUCE_SUM = 0


def lower(text: str, weight_format: str = "nd", fuse_options: FuseOptions | None = None) -> tuple[ModuleOp, ModuleOp]:
    """(the program as fusion leaves it, its lowered form)."""
    module = parse(text)
    fuse(module, fuse_options or FuseOptions())
    source = module.clone()
    LowerMc2ToAclnnPass(weight_format=weight_format).apply(qmmar_context(), module)  # type: ignore[arg-type]
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    verify(module)
    return source, module


# --- what the source IR says each call must receive ------------------------------------------


def _dims(value, dims: dict[str, int], prefix: str | None = None) -> list[int]:
    t = value.type
    assert isinstance(t, TensorType)
    return [d if d >= 0 else dims[f"{prefix}_d{i}"] if prefix else -1 for i, d in enumerate(t.get_shape())]


def _dtype(value) -> str:
    return dtype_name(value.type.element_type)


def _rows(shape: list[int]) -> list[int]:
    m = 1
    for d in shape[:-1]:
        m *= d
    return [m, shape[-1]]


def expected_calls(fn: func.FuncOp, weight_format: str = "nd") -> list[tuple[str, dict]]:
    """Each call the source ops stand for, in order, with the fields the IR fixes; a field
    is left out where a dim is dynamic (-1)."""
    out: list[tuple[str, dict]] = []

    def add(call: str, **fields) -> None:
        out.append((call, {k: v for k, v in fields.items() if not (isinstance(v, list) and -1 in v)}))

    for op in fn.body.walk():
        match op:
            case mc2.TransQuantParamOp():
                add("aclnnTransQuantParamV2GetWorkspaceSize", out_dtype=ACL["ui64"])
            case mc2.QuantMatmulAllReduceOp():
                if weight_format == "nz":
                    add("aclnnTransMatmulWeightGetWorkspaceSize")
                add("aclnnQuantMatmulAllReduceV3GetWorkspaceSize", x1=_dims(op.x1, {}), out=_dims(op.output, {}),
                    out_dtype=ACL[_dtype(op.output)], comm=op.comm_quant_scale_1 is not None)  # fmt: skip
            case qmm.DequantOp() if _dtype(op.x) == "i32":
                mm = op.x.owner
                assert isinstance(mm, qmm.MatmulOp)
                scale = _dtype(op.scale)
                if _dtype(op.result) == "f16" and op.pertoken is None and scale == "f32":
                    add("aclnnTransQuantParamV2GetWorkspaceSize", out_dtype=ACL["ui64"])
                    scale = "ui64"
                add("aclnnQuantMatmulV4GetWorkspaceSize", x1=_rows(_dims(mm.x1, {})), x2=_dims(mm.x2, {}),
                    transpose_x2=bool(mm.transpose_x2.value.data), scale_dtype=ACL[scale],
                    out=_rows(_dims(op.result, {})), out_dtype=ACL[_dtype(op.result)],
                    pertoken=op.pertoken is not None, bias=mm.bias is not None)  # fmt: skip
            case qmm.DequantOp():
                add("aclnnCastGetWorkspaceSize", out_dtype=ACL["f32"])
                add("aclnnMulGetWorkspaceSize", self=_dims(op.x, {}), self_dtype=ACL["i8"], other_dtype=ACL["f32"],
                    out_dtype=ACL[_dtype(op.result)])  # fmt: skip
            case qmm.AddOp():
                add("aclnnAddGetWorkspaceSize", self=_dims(op.lhs, {}), out_dtype=ACL[_dtype(op.result)], alpha=1)
            case qmm.QuantOp():
                add("aclnnCastGetWorkspaceSize", out_dtype=ACL["f32"])
                add("aclnnDivGetWorkspaceSize", self=_dims(op.x, {}), self_dtype=ACL[_dtype(op.x)],
                    other_dtype=ACL["f32"], out_dtype=ACL["f16"])  # fmt: skip
                add("aclnnInplaceOneGetWorkspaceSize")
                add("aclnnQuantizeGetWorkspaceSize", self=_dims(op.x, {}), out_dtype=ACL["i8"], scales=[1], axis=-1)
            case qmm.ReduceSumOp():
                add("aclnnReduceSumGetWorkspaceSize", self=_dims(op.x, {}), dims=[0], out_dtype=ACL["f32"])
                if op.s1 is None:
                    add("aclnnCastGetWorkspaceSize", out_dtype=ACL[_dtype(op.result)])
                    continue
                add("aclnnCastGetWorkspaceSize", out_dtype=ACL["f32"])
                add("aclnnCastGetWorkspaceSize", out_dtype=ACL["f32"])
                add("aclnnDivGetWorkspaceSize", out_dtype=ACL["f32"])
                add("aclnnMulGetWorkspaceSize", out_dtype=ACL["f16"])
                add("aclnnInplaceOneGetWorkspaceSize")
                add("aclnnQuantizeGetWorkspaceSize", out_dtype=ACL["i8"], scales=[1], axis=-1)
            case qmm.AllReduceOp() | qmm.AllToAllOp() | qmm.AllGatherOp():
                shape, w = _dims(op.operands[0], {}), op.world_size.value.data
                n = -1 if -1 in shape else math.prod(shape)
                call = {qmm.AllReduceOp: "HcclAllReduce", qmm.AllToAllOp: "HcclAlltoAll",
                        qmm.AllGatherOp: "HcclAllGather"}[type(op)]  # fmt: skip
                recv = n * w if isinstance(op, qmm.AllGatherOp) and n >= 0 else n
                add(call, send_count=[n], recv_count=[recv], dtype=HCCL[_dtype(op.operands[0])],
                    op=HCCL_REDUCE_SUM if isinstance(op, qmm.AllReduceOp) else -1)  # fmt: skip
            case tensor.InsertSliceOp():
                add("aclrtMemcpyAsync")
    return out


CHECKED = {"aclnnTransQuantParamV2GetWorkspaceSize", "aclnnTransMatmulWeightGetWorkspaceSize",
           "aclnnQuantMatmulAllReduceV3GetWorkspaceSize", "aclnnQuantMatmulV4GetWorkspaceSize",
           "aclnnCastGetWorkspaceSize", "aclnnMulGetWorkspaceSize", "aclnnAddGetWorkspaceSize",
           "aclnnDivGetWorkspaceSize", "aclnnInplaceOneGetWorkspaceSize", "aclnnQuantizeGetWorkspaceSize",
           "aclnnReduceSumGetWorkspaceSize", "HcclAllReduce", "HcclAlltoAll", "HcclAllGather"}  # fmt: skip


def _observed(entry: dict) -> dict:
    """The fields of a logged call, named as expected_calls names them."""
    t = {k: entry.get(k) for k in ("self", "x", "out", "output", "x1", "x2", "scale", "other", "scales")}
    seen: dict = {}
    first = t["self"] or t["x"]
    if first:
        seen |= {"self": first["view"], "self_dtype": first["dtype"]}
    if t["other"]:
        seen["other_dtype"] = t["other"]["dtype"]
    if out := t["out"] or t["output"]:
        seen |= {"out": out["view"], "out_dtype": out["dtype"]}
    if t["x1"]:
        seen["x1"] = t["x1"]["view"]
    if t["x2"]:
        seen["x2"] = t["x2"]["storage"]
    if t["scale"]:
        seen["scale_dtype"] = t["scale"]["dtype"]
    if t["scales"]:
        seen["scales"] = t["scales"]["view"]
    for key in ("transpose_x2", "axis", "dims", "alpha", "send_count", "recv_count", "dtype", "op"):
        if key in entry:
            seen[key] = [entry[key]] if key in ("send_count", "recv_count") else entry[key]
    seen["pertoken"] = entry.get("pertoken_scale") is not None
    seen["bias"] = entry.get("bias") is not None
    seen["comm"] = entry.get("comm_quant_scale_1") is not None
    return seen


def check_against_ir(run, fn: func.FuncOp, weight_format: str = "nd") -> None:
    """Prepare first asks every call's first phase, in the IR's order, for its workspace size;
    then prepare's own calls and run's make every call once more (constant work at prepare)."""
    expected = [(c, f) for c, f in expected_calls(fn, weight_format) if c in CHECKED]
    logged = [e for e in run.log if e["call"] in CHECKED]
    queries = [(c, f) for c, f in expected if c.endswith("GetWorkspaceSize")]
    asked, made = logged[: len(queries)], logged[len(queries) :]
    assert sorted(c for c, _ in expected) == sorted(e["call"] for e in made)
    collectives = [(c, f) for c, f in expected if not c.endswith("GetWorkspaceSize")]
    made_collectives = [e for e in made if not e["call"].endswith("GetWorkspaceSize")]
    for (call, fields), entry in zip(queries + collectives, asked + made_collectives, strict=True):
        assert call == entry["call"]
        seen = _observed(entry)
        for key, value in fields.items():
            assert seen.get(key) == value, (call, key, value, seen.get(key))


def check_clean(run) -> None:
    assert run.clean() and run.status == 0, (run.violations, run.stderr)
    assert len(run.calls("aclCreateTensor")) == len(run.calls("aclDestroyTensor"))
    assert len(run.calls("aclrtMalloc")) == len(run.calls("aclrtFree"))


# --- the programs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    dims: tuple = ()  # (name, value) of the run-time sizes
    weight_format: str = "nd"
    ranks: int = 8


def chain(lead=(48,), comm=False, out="bf16", w=8, **kw) -> str:
    spec = dict(world_size=w, out=out, lead=lead, k=64, n=32, transpose_x2=False, bias=False, pertoken=False,
                x3=False, comm=comm, scale_dtype="bf16" if out == "bf16" else "ui64", scale_shape="n",
                comm_shape="n", collapse=False, extreme=False) | kw  # fmt: skip
    return unfused_program(ChainSpec(**spec))


def decode(text: str) -> str:
    return text.replace("func.func @main(", "func.func @decode(", 1).replace(
        ") -> tensor", ') -> tensor', 1).replace(" {\n", ' attributes {qmmar.scenario = "decode"} {\n', 1)  # fmt: skip


PADDING_STATIC = """
func.func @pad(%q: tensor<6x32xi8>, %s1: tensor<32xbf16>, %s2: tensor<32xbf16>) -> tensor<6x32xbf16> {
  %e = tensor.empty() : tensor<8x32xi8>
  %i = tensor.insert_slice %q into %e[0, 0] [6, 32] [1, 1] : tensor<6x32xi8> into tensor<8x32xi8>
  %a = qmm.alltoall %i on "tp" world_size = 4 : tensor<8x32xi8> -> tensor<4x2x32xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<4x2x32xi8> -> tensor<2x32xi8>
  %g = qmm.allgather %r on "tp" world_size = 4 : tensor<2x32xi8> -> tensor<8x32xi8>
  %x = tensor.extract_slice %g[0, 0] [6, 32] [1, 1] : tensor<8x32xi8> to tensor<6x32xi8>
  %o = qmm.dequant %x, %s2 : (tensor<6x32xi8>, tensor<32xbf16>) -> tensor<6x32xbf16>
  func.return %o : tensor<6x32xbf16>
}
"""

# unfuse-mc2's form for a dynamic m with int8 communication (written by hand here).
PADDING_DYNAMIC = """
func.func @pad(%q: tensor<?x32xi8>, %s1: tensor<32xbf16>, %s2: tensor<32xbf16>) -> tensor<?x32xbf16> {
  %c0 = arith.constant 0 : index
  %m = tensor.dim %q, %c0 : tensor<?x32xi8>
  %w = arith.constant 4 : index
  %n = arith.ceildivui %m, %w : index
  %padded = arith.muli %n, %w : index
  %e = tensor.empty(%padded) : tensor<?x32xi8>
  %i = tensor.insert_slice %q into %e[0, 0] [%m, 32] [1, 1] : tensor<?x32xi8> into tensor<?x32xi8>
  %a = qmm.alltoall %i on "tp" world_size = 4 : tensor<?x32xi8> -> tensor<4x?x32xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<4x?x32xi8> -> tensor<?x32xi8>
  %g = qmm.allgather %r on "tp" world_size = 4 : tensor<?x32xi8> -> tensor<?x32xi8>
  %x = tensor.extract_slice %g[0, 0] [%m, 32] [1, 1] : tensor<?x32xi8> to tensor<?x32xi8>
  %o = qmm.dequant %x, %s2 : (tensor<?x32xi8>, tensor<32xbf16>) -> tensor<?x32xbf16>
  func.return %o : tensor<?x32xbf16>
}
"""

RESIDUAL = """
func.func @main(%x1: tensor<48x64xi8>, %x2: tensor<64x32xi8>, %s: tensor<32xbf16>, %res: tensor<48x32xbf16>)
    -> tensor<48x32xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<48x64xi8>, tensor<64x32xi8>) -> tensor<48x32xi32>
  %y = qmm.dequant %acc, %s : (tensor<48x32xi32>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %h = qmm.all_reduce %y on "tp" world_size = 8 : tensor<48x32xbf16>
  %o = qmm.add %h, %res : tensor<48x32xbf16>
  func.return %o : tensor<48x32xbf16>
}
"""

DYNAMIC_M_INT8 = re.sub(r"tensor<(48|8x6|6)x", lambda m: "tensor<8x?x" if m[1] == "8x6" else "tensor<?x",
                        chain(comm=True, pertoken=True))  # fmt: skip

CASES = [
    Case("mc2 bf16 everything", chain(bias=True, x3=True, pertoken=True, comm=True)),
    Case("mc2 f16 f32 scale on device", chain(out="f16", scale_dtype="f32", bias=True)),
    Case("mc2 nz transposed", chain(transpose_x2=True, comm=True), weight_format="nz"),
    Case("mc2 dynamic 3-D x1", chain(lead=("?", 16), pertoken=True, x3=True),
         (("x1_d0", 3), ("pt_d0", 48), ("x3_d0", 3), ("result0_d0", 3))),
    Case("mc2 dynamic k", chain().replace("48x64xi8", "48x?xi8").replace("64x32xi8", "?x32xi8"),
         (("x1_d1", 64), ("x2_d0", 64))),
    Case("decode function left unfused", decode(chain(comm=True, x3=True))),
    Case("residual add after the fused op", RESIDUAL),
    Case("refused by MC2, accepted by QuantMatmulV4", chain(scale_dtype="f32", pertoken=True)),
    Case("f16 f32 scale unfused: packed for V4", decode(chain(out="f16", scale_dtype="f32"))),
    Case("3-D chain with reshapes", (ROOT / "examples/two_layers.mlir").read_text()),
    Case("unfused int8 communication, dynamic m", decode(DYNAMIC_M_INT8),
         (("x1_d0", 48), ("pt_d0", 48), ("result0_d0", 48))),
    Case("unfuse's padding, static", PADDING_STATIC, ranks=4),
    Case("unfuse's padding, dynamic m", PADDING_DYNAMIC, (("q_d0", 6), ("result0_d0", 6)), ranks=4),
    Case("prefill and decode in one module",
         chain(comm=True) + decode(chain(comm=True)).replace("@main", "@decode_step")),
]  # fmt: skip


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def built(request, tmp_path_factory):
    case = request.param
    source, lowered = lower(case.text, case.weight_format)
    program = Program.build(lowered, tmp_path_factory.mktemp("cxx"), dict(case.dims))
    return case, source, program


def functions(module: ModuleOp) -> list[func.FuncOp]:
    return [op for op in module.walk() if isinstance(op, func.FuncOp)]


def test_calls_match_the_ir(built):
    case, source, program = built
    for fn in functions(source):
        run = program.run(fn.sym_name.data, ranks=str(case.ranks))
        check_clean(run)
        check_against_ir(run, fn, case.weight_format)
        assert all(c["stream"] if "stream" in c else True for c in run.log)


def test_a_zero_workspace_is_not_allocated(built):
    case, source, program = built
    run = program.run(functions(source)[0].sym_name.data, ranks=str(case.ranks), workspace="0")
    check_clean(run)
    assert all(e["workspace"] is None for e in run.log if "workspace" in e)


def test_every_failure_is_reported_with_its_location_and_leaks_nothing(built):
    case, source, program = built
    entry = functions(source)[0].sym_name.data
    good = program.run(entry, ranks=str(case.ranks))
    counts: dict[str, int] = {}
    for e in good.log:
        counts[e["call"]] = counts.get(e["call"], 0) + 1
    fallible = [c for c in counts if not c.startswith(("aclDestroy", "aclrtFree", "violation"))]
    assert fallible
    for call in fallible:
        for nth in range(1, counts[call] + 1):
            run = program.run(entry, ranks=str(case.ranks), fail=f"{call}#{nth}")
            assert run.calls("injected_failure") and run.status != 0, (call, nth)
            assert run.stderr.startswith("qmmar: test.mlir:") or "two_layers" in run.stderr, run.stderr
            assert f"{call} failed with status" in run.stderr or "aclCreate" in call, (call, run.stderr)
            assert run.clean(), (call, nth, run.violations)


def test_a_wrong_rank_count_is_refused_before_any_side_effect(built):
    case, source, program = built
    run = program.run(functions(source)[0].sym_name.data, ranks=str(case.ranks * 2))
    assert run.status == 161002 and run.clean(), run.stderr
    assert "[HCCL-RANK-SIZE] the communicator has" in run.stderr
    assert [e["call"] for e in run.log] == ["HcclGetRankSize"]


# --- run-time checks ---------------------------------------------------------------------------


def test_dynamic_dims_are_guarded_before_any_call(tmp_path):
    _, lowered = lower(chain(lead=("?", 16), pertoken=True, x3=True))
    program = Program.build(lowered, tmp_path, {"x1_d0": 3, "pt_d0": 48, "x3_d0": 3, "result0_d0": 3})
    run = program.run(dims={"pt_d0": 40})
    assert run.status == 161002 and run.clean() and run.log == []
    assert "run-time check failed: [MC2-PERTOKEN-SHAPE] pertoken_scale must be [m]" in run.stderr
    # b = 2^61 + 2 once made b * 16 wrap to 32: every guard passed
    run = program.run(dims={"x1_d0": 2**61 + 2, "pt_d0": 32, "x3_d0": 2**61 + 2, "result0_d0": 2**61 + 2})
    assert run.status == 161002 and run.log == [], run.stderr
    assert "[SIZE]" in run.stderr


def test_dynamic_k_is_guarded(tmp_path):
    _, lowered = lower(decode(chain().replace("48x64xi8", "48x?xi8").replace("64x32xi8", "?x32xi8")))
    program = Program.build(lowered, tmp_path, {"x1_d1": 64, "x2_d0": 64})
    check_clean(program.run())
    run = program.run(dims={"x2_d0": 65})
    assert run.status == 161002 and run.log == [], run.stderr
    assert "the k dimension of x1 must equal that of x2" in run.stderr


@st.composite
def dynamic_chains(draw) -> tuple[str, dict[str, int]]:
    """A chain (fused or, in a decode function, not) with a random set of its tensor types'
    dims made dynamic, and the true run-time size of each dynamic argument and result dim."""
    three_d = draw(st.booleans())
    lead = (8, draw(st.sampled_from([2, 3]))) if three_d else (48,)
    static = chain(lead=lead, pertoken=draw(st.booleans()), x3=draw(st.booleans()), comm=draw(st.booleans()),
                   transpose_x2=draw(st.booleans()), bias=draw(st.booleans()))  # fmt: skip
    if draw(st.booleans()):
        static = decode(static)
    fn = functions(parse(static))[0]
    text = static
    for shape in sorted(set(re.findall(r"tensor<([0-9x]+)x(?:i8|i32|bf16|f32|f16|ui64|i64)>", static)), key=len,
                        reverse=True):  # fmt: skip
        dims = shape.split("x")
        dynamic = "x".join("?" if draw(st.booleans()) else d for d in dims)
        text = re.sub(rf"tensor<{shape}x(?=[a-z])", f"tensor<{dynamic}x", text)
    dynamic_fn = functions(parse(text))[0]
    named = [(arg, twin, arg.name_hint) for arg, twin in
             zip(dynamic_fn.body.blocks.first.args, fn.body.blocks.first.args, strict=True)]  # fmt: skip
    named.append((*(f.body.blocks.first.last_op.operands[0] for f in (dynamic_fn, fn)), "result0"))
    true = {}
    for value, twin, name in named:
        pairs = zip(_dims(value, {}), _dims(twin, {}), strict=True)
        true |= {f"{name}_d{i}": d for i, (x, d) in enumerate(pairs) if x < 0}
    return text, true


@settings(max_examples=20, deadline=None)
@given(dynamic_chains())
def test_guards_compile_and_hold_for_any_dynamic_dims(tmp_path_factory, generated):
    """Any combination of dynamic dims emits guards that compile with -Werror (each one
    parenthesised whole), pass on the true sizes and refuse a wrong one before any call."""
    text, true = generated
    _, lowered = lower(text)
    program = Program.build(lowered, tmp_path_factory.mktemp("g"), true)
    check_clean(program.run())
    for name in true:
        run = program.run(dims={name: true[name] + 1})
        assert run.status == 161002 and run.log == [], (name, run.stderr)


def test_readme_pipeline_on_the_two_layer_example_compiles(tmp_path):
    cpp, header = tmp_path / "two_layers.cpp", tmp_path / "two_layers.h"
    pipeline = "fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn,lower-qmm-to-aclnn"
    for target, out in (("aclnn-cpp", cpp), ("aclnn-cpp{header=true}", header)):
        r = subprocess.run([sys.executable, "-m", "qmmar.cli.opt", str(ROOT / "examples/two_layers.mlir"), "-p",
                            pipeline, "-t", target, "-o", str(out)], capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 0, r.stderr
    compile_cxx([cpp], tmp_path / "two_layers.o", object_only=True, sanitize=False)
    assert "int32_t qmmar_main(aclrtStream stream, HcclComm comm, const void *attn" in header.read_text()


def test_a_function_with_two_groups_takes_a_communicator_for_each(tmp_path):
    """A data-parallel all-reduce beside a tensor-parallel chain: `comm` and `comm_tp`, each
    with its rank count checked and each collective on its own (once refused)."""
    second = '%h2 = qmm.all_reduce %h on "tp" world_size = 8 : tensor<48x32xbf16>\n  %o = qmm.add %h2, %res'
    text = RESIDUAL.replace('%y on "tp"', '%y on "dp"').replace("%o = qmm.add %h, %res", second)
    _, lowered = lower(text)
    program = Program.build(lowered, tmp_path)
    assert "HcclComm comm, HcclComm comm_tp, const void *x1" in (tmp_path / "generated.h").read_text()
    run = program.run()
    check_clean(run)
    assert [e["call"] for e in run.log].count("HcclGetRankSize") == 2


# --- prepare once, run many ---------------------------------------------------------------------

CONSTANT_WORK = ("aclnnTransMatmulWeight", "aclnnInplaceOne")


def is_static(fn: func.FuncOp) -> bool:
    values = [*fn.body.blocks.first.args, *fn.body.blocks.first.last_op.operands]  # type: ignore[union-attr]
    return all(d >= 0 for v in values for d in v.type.get_shape())


def test_runs_after_prepare_are_capturable(built):
    """Prepare once, then three runs inside a capture (the recording runtime reports any
    aclrtMalloc, aclrtFree, aclrtMemcpy or stream synchronisation in one): each run makes the
    same launches, and none of prepare's constant work. Where every shape is static, a run
    launches the executors prepare made (the same ones each run, repeatable) and creates,
    asks and destroys nothing; dynamic shapes ask each first phase again."""
    case, source, program = built
    for fn in functions(source):
        run = program.run(fn.sym_name.data, ranks=str(case.ranks), runs="3")
        check_clean(run)
        calls = [e["call"] for e in run.log]
        start, end = calls.index("capture_begin") + 1, calls.index("capture_end")
        inside = calls[start:end]
        assert inside and len(inside) % 3 == 0
        third = len(inside) // 3
        assert inside[:third] == inside[third : 2 * third] == inside[2 * third :]
        assert not {"aclrtMalloc", "aclrtFree", "aclrtSynchronizeStream", "aclrtSynchronizeStreamWithTimeout",
                    "HcclGetRankSize"} & set(inside)  # fmt: skip
        assert not set(CONSTANT_WORK) & set(inside)
        asked = {c for c in inside if c.endswith("GetWorkspaceSize") or c.startswith(("aclCreate", "aclDestroy"))}
        launches = [e for e in run.log[start:end] if "executor" in e and "workspace" in e]
        if is_static(fn):
            assert not asked, asked
            third = len(launches) // 3
            assert [e["executor"] for e in launches[:third]] == [e["executor"] for e in launches[third : 2 * third]]
            assert [e["launch"] for e in launches[2 * third :]] == [3] * third  # each executor's third launch
        else:
            assert any(c.endswith("GetWorkspaceSize") for c in asked)
            assert all(e["launch"] == 1 for e in launches)


STAND_IN = r"""
// The recording runtime's executor contract: a repeatable executor is launched again after its
// tensors moved; a second launch of one that is not, or a move at the wrong index, is refused.
#include <cstdio>
#include <initializer_list>
#include "acl/acl.h"
#include "hccl/hccl.h"
#include "aclnn/acl_meta.h"
#include "aclnnop/aclnn_cast.h"
extern "C" void qmmar_test_begin(aclrtStream, HcclComm);
extern "C" void qmmar_test_name(void *, const char *, size_t);
static float in[4], in2[4], out[4];
int main() {
  aclrtStream stream = reinterpret_cast<aclrtStream>(0x5);
  qmmar_test_begin(stream, nullptr);
  qmmar_test_name(in, "in", sizeof in);
  qmmar_test_name(in2, "in2", sizeof in2);
  qmmar_test_name(out, "out", sizeof out);
  const int64_t dims[] = {4}, strides[] = {1};
  aclTensor *x = aclCreateTensor(dims, 1, ACL_FLOAT, strides, 0, ACL_FORMAT_ND, dims, 1, in);
  aclTensor *y = aclCreateTensor(dims, 1, ACL_FLOAT, strides, 0, ACL_FORMAT_ND, dims, 1, out);
  for (bool repeatable : {true, false}) {
    uint64_t size = 0;
    aclOpExecutor *e = nullptr;
    aclnnCastGetWorkspaceSize(x, ACL_FLOAT, y, &size, &e);
    if (repeatable) aclSetAclOpExecutorRepeatable(e);
    void *ws = nullptr;
    aclrtMalloc(&ws, size, ACL_MEM_MALLOC_HUGE_FIRST);
    aclnnCast(ws, size, e, stream);
    if (repeatable) {
      aclSetTensorAddr(e, 0, x, in2);
      aclSetTensorAddr(e, 0, y, out);  // y is at index 1
    }
    aclnnCast(ws, size, e, stream);
    if (repeatable) aclDestroyAclOpExecutor(e);
    aclrtFree(ws);
  }
  aclDestroyTensor(x);
  aclDestroyTensor(y);
  std::printf("0\n");
  return 0;
}
"""


def test_the_stand_in_holds_the_repeatable_executor_contract(tmp_path):
    (tmp_path / "contract.cpp").write_text(STAND_IN)
    compile_cxx([tmp_path / "contract.cpp", runtime_object()], tmp_path / "contract")
    log = tmp_path / "contract.log"
    r = subprocess.run([str(tmp_path / "contract")], capture_output=True, text=True, env={"QMMAR_LOG": str(log)})
    assert r.returncode == 0, r.stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["launch"] for e in entries if e["call"] == "aclnnCast"] == [1, 2, 1, 0]
    assert [e["what"] for e in entries if e["call"] == "violation"] == [
        "aclSetTensorAddr: index is not the tensor's position among its first phase's tensors",
        "aclnnCast: executor launched twice without being repeatable, or destroyed",
    ]


def test_a_run_larger_than_its_prepare_is_refused_before_any_call(tmp_path):
    """Dynamic dims: run takes its memory from the arena prepare sized for prepare's dims."""
    _, lowered = lower(PADDING_DYNAMIC)
    program = Program.build(lowered, tmp_path, {"q_d0": 6, "result0_d0": 6})
    check_clean(program.run(ranks="4", runs="2"))
    # the driver prepares and runs with the same dims: a plan prepared for fewer rows is
    # simulated by a run whose rows the arena cannot hold, which the prepare refuses the same way
    source = (tmp_path / "emitted.cpp").read_text()
    assert "[PLAN-CAPACITY] a buffer is larger than at prepare" in source


FOUR_LAYERS = (ROOT / "examples/decode_layers.mlir").read_text()
OLD_BYTES = 380_936  # issue 19: four decode layers, one aclrtMalloc per buffer and workspace


@pytest.mark.parametrize("path", ["examples/decode_layers.mlir", "examples/two_layers.mlir"])
def test_the_arena_is_within_five_percent_of_the_live_peak(tmp_path, path):
    """The arena prepare allocates against the most bytes live at once (the recording runtime's
    workspaces are 4096 B each): no placement needs less than the unaligned peak; with each slot
    a multiple of the alignment, the placement stays within 1.05x of that aligned peak."""
    _, lowered = lower((ROOT / path).read_text())
    program = Program.build(lowered, tmp_path)
    run = program.run(runs="1")
    check_clean(run)
    plan = memory_plan(functions(lowered)[0])
    arena = run.calls("aclrtMalloc")[-1]["size"]  # prepare's kept buffers first, then the arena
    least, aligned = plan.live_peak(4096), plan.live_peak(4096, ARENA_ALIGNMENT)
    assert least is not None and aligned is not None and least <= arena <= 1.05 * aligned, (arena, least, aligned)
    assert f"// memory plan of @{functions(lowered)[0].sym_name.data}" in (tmp_path / "emitted.cpp").read_text()
    if path.endswith("decode_layers.mlir"):
        assert arena + sum(m["size"] for m in run.calls("aclrtMalloc")[:-1]) < OLD_BYTES


# --- bounded waits ------------------------------------------------------------------------------


def test_a_stream_that_never_completes_times_out_instead_of_hanging(tmp_path):
    """A rank whose peer failed: its collective never completes (the recording runtime's hang
    mode, where a wait without a bound is a violation). The one-shot entry's wait gives up after
    the caller's bound, aborts the stream's tasks before freeing their memory, and returns the
    timeout, its message naming the call and the bound."""
    _, lowered = lower(RESIDUAL)
    program = Program.build(lowered, tmp_path)
    run = program.run(hang="1", timeout_ms="50")
    assert run.status == 507046 and run.clean(), (run.violations, run.stderr)  # ACL_ERROR_RT_STREAM_SYNC_TIMEOUT
    assert "aclrtSynchronizeStreamWithTimeout failed with status 507046 (a wait bounded by 50 ms" in run.stderr
    calls = [e["call"] for e in run.log]
    waits = run.calls("aclrtSynchronizeStreamWithTimeout")
    assert waits and all(w["timeout"] == 50 for w in waits) and "aclrtSynchronizeStream" not in calls
    assert calls.index("aclrtStreamAbort") < calls.index("aclrtFree")
    # by default the wait is bounded too: HCCL_EXEC_TIMEOUT's default plus a minute
    assert {w["timeout"] for w in program.run(hang="1").calls("aclrtSynchronizeStreamWithTimeout")} == {SYNC_TIMEOUT_MS}


# --- the C ABI ----------------------------------------------------------------------------------

C_CALLER = r"""
/* A C99 caller of a lowered program: prepare once, run twice, release; then a refused call,
   whose message qmmar_last_error() returns. */
#include <stdio.h>
#include "generated.h"
void qmmar_test_begin(aclrtStream, HcclComm);
void qmmar_test_name(void *, const char *, size_t);
int qmmar_test_finish(void);
static char x1[48 * 64], x2[64 * 32], s[32 * 2], res[48 * 32 * 2], out[48 * 32 * 2];
int main(void) {
  aclrtStream stream = (aclrtStream)0x5;
  HcclComm comm = (HcclComm)0x7;
  qmmar_main_plan *plan = NULL;
  int32_t status, refused;
  int i;
  qmmar_test_begin(stream, comm);
  qmmar_test_name(x1, "x1", sizeof x1); qmmar_test_name(x2, "x2", sizeof x2); qmmar_test_name(s, "s", sizeof s);
  qmmar_test_name(res, "res", sizeof res); qmmar_test_name(out, "result0", sizeof out);
  status = qmmar_main_prepare(&plan, stream, comm, x1, x2, s, res, out);
  for (i = 0; i < 2 && status == 0; ++i) status = qmmar_main_run(plan, stream, comm, x1, x2, s, res, out);
  if (aclrtSynchronizeStreamWithTimeout(stream, qmmar_sync_timeout()) != 0 || qmmar_main_release(plan) != 0) return 1;
  refused = qmmar_main_run(NULL, stream, comm, x1, x2, s, res, out);
  printf("%d %d %s\n", (int)status, (int)refused, qmmar_last_error());
  return qmmar_test_finish();
}
"""


def test_a_c_program_prepares_runs_and_reads_the_last_error(tmp_path):
    _, lowered = lower(RESIDUAL)
    (tmp_path / "emitted.cpp").write_text(emit_cpp(lowered))
    (tmp_path / "generated.h").write_text(emit_cpp(lowered, header=True))
    (tmp_path / "caller.c").write_text(C_CALLER)
    c = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", *SANITIZERS, *include_flags(),
                        f"-I{tmp_path}", "-c", str(tmp_path / "caller.c"), "-o", str(tmp_path / "caller.o")],
                       capture_output=True, text=True)  # fmt: skip
    assert c.returncode == 0, c.stderr
    compile_cxx([tmp_path / "emitted.cpp", tmp_path / "caller.o", runtime_object()], tmp_path / "caller")
    log = tmp_path / "caller.log"
    r = subprocess.run([str(tmp_path / "caller")], capture_output=True, text=True, env={"QMMAR_LOG": str(log)})
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith("0 161002 test.mlir:") and "[PLAN-NULL] plan must not be null" in r.stdout
    calls = [json.loads(line)["call"] for line in log.read_text().splitlines()]
    assert calls.count("aclnnAdd") == 2 and "violation" not in calls


def test_every_guard_names_its_rule(built):
    """V4 and collective guards once had no [RULE] id, although the README promises one."""
    _, _, program = built
    text = (program.binary.parent / "emitted.cpp").read_text()
    messages = re.findall(r'qmmar_guard\([^,]+, "((?:\\.|[^"\\])*)"\);', text)
    assert messages and all(re.match(r"\[[A-Z0-9-]+\] ", m) for m in messages), messages
