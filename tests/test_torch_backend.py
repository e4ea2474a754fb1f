"""The torch.compile backend's parts: its options, its entry point, the FX rewrite (never moving
a collective across another side effect), the fused op's CPU kernel over every kind of operand
against the interpreter (2 gloo processes), and the NPU call against a stand-in torch_npu."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
import torch_ranks as tr  # noqa: E402
from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402

from helpers import npu_standin_calls, parse, run, same_bits  # noqa: E402
from qmmar.dialects.diagnostics import LocatedError  # noqa: E402
from qmmar.frontends.torch.backend import BackendOptions, QmmarOptionsError, fuse_graph, qmmar_backend  # noqa: E402
from qmmar.frontends.torch.meta import ELEMENT_TYPES  # noqa: E402
from qmmar.frontends.torch.rewrite import is_side_effect  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
c10d = torch.ops._c10d_functional


# --- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min-m": 4}, "unknown option 'min-m'; the options are soc, cann, scenario, min_m, group"),
        ({"min_m": "16"}, "option min_m must be a whole number, not '16'"),
        ({"min_m": -1}, "option min_m must be a whole number of rows, at least 0, not -1"),
        ({"scenario": "serve"}, "option scenario must be one of auto, prefill, decode, not 'serve'"),
        ({"inner": "aot_eager"}, "option inner must be one of inductor, eager, not 'aot_eager'"),
        ({"link_gbps": 0}, "option link_gbps must be a positive number, not 0"),
        ({"world_size": True}, "option world_size must be a whole number, not True"),
        ({"report": "r.html"}, "option report names a JSON file"),
    ],
)
def test_a_bad_option_is_one_clear_error(options, message):
    with pytest.raises(QmmarOptionsError, match="^qmmar backend: " + message.replace("(", r"\(").replace(")", r"\)")):
        BackendOptions.parse(options)


def test_a_torch_compile_mode_is_refused_in_one_line():
    with pytest.raises(QmmarOptionsError, match="^qmmar backend: torch.compile's mode='max-autotune' is not for qmmar"):
        qmmar_backend(None, [], mode="max-autotune")


def test_good_options_reach_the_fusion_pass():
    opts = BackendOptions.parse({"scenario": "prefill", "min_m": 8, "int8_tops": 100, "group": "tp"})
    fuse = opts.fuse_options()
    assert (fuse.scenario, fuse.min_m, fuse.int8_tops, fuse.group, opts.inner) == (
        "prefill",
        8,
        100.0,
        "tp",
        "inductor",
    )


def test_the_backend_is_found_by_name_with_nothing_imported():
    """Only torch is imported: Dynamo finds `qmmar` through the torch_dynamo_backends entry point,
    and a bad option reaches the user as qmmar's one line."""
    script = (
        "import torch\n"
        "f = torch.compile(lambda x: x + 1, backend='qmmar', options={'inner': 'eager'})\n"
        "print(f(torch.ones(2)).tolist())\n"
        "g = torch.compile(lambda x: x * 2, backend='qmmar', options={'inner': 'jit'})\n"
        "try:\n    g(torch.ones(2))\nexcept Exception as err:\n    print(str(err).splitlines()[1])\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "[2.0, 2.0]",
        "QmmarOptionsError: qmmar backend: option inner must be one of inductor, eager, not 'jit'",
    ]


# --- the FX rewrite ------------------------------------------------------------------------

CHAIN = ("chain", 0)


def traced(events: list[tuple[str, int]], world_size: int = 2) -> torch.fx.GraphModule:
    """An ATen graph of one plain chain (int8 matmul, dequant, all-reduce) and other all-reduces,
    their issues and waits in the order of `events`: (what, i) with what issue|wait."""

    def program(x, w, scale, *others):
        y = (torch._int_mm(x, w).float() * scale.float()).to(torch.bfloat16)
        sent, done = {}, {}
        for what, i in events:
            if what == "issue":
                sent[i] = c10d.all_reduce(y if i == 0 else others[i - 1], "sum", "0")
            else:
                done[i] = c10d.wait_tensor(sent[i])
        return [done[i] for i in sorted(done)]

    count = len(events) // 2 - 1
    args = (torch.ones(32, 16, dtype=torch.int8), torch.ones(16, 8, dtype=torch.int8), torch.ones(8).bfloat16(),
            *(torch.ones(4).bfloat16() for _ in range(count)))  # fmt: skip
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        return make_fx(program, tracing_mode="fake")(*args)
    finally:
        dist.destroy_process_group()


@st.composite
def interleavings(draw) -> list[tuple[str, int]]:
    """The chain (0) and up to 3 other all-reduces (1..3), each issued before it is waited for."""
    count = draw(st.integers(0, 3))
    slots = draw(st.permutations([(what, i) for i in range(count + 1) for what in ("issue", "wait")]))
    issued, order = set(), []
    for what, i in slots:  # a wait drawn before its issue moves after it
        if what == "wait" and i not in issued:
            continue
        order.append((what, i))
        issued.add(i)
    waits = [("wait", i) for i in range(count + 1) if ("wait", i) not in order]
    return order + waits


@given(interleavings())
@settings(max_examples=30, deadline=None)
def test_the_rewrite_never_moves_a_collective_across_another_side_effect(events):
    gm = traced(events)
    before = [n.name for n in gm.graph.nodes if is_side_effect(n)]
    issue = next(n for n in gm.graph.nodes if "all_reduce" in n.name and n.args[0].op != "placeholder")
    chain = [issue.name, next(iter(issue.users)).name]  # the chain's all-reduce (of the dequant) and its wait
    first, last = events.index(("issue", 0)), events.index(("wait", 0))
    [done] = fuse_graph(gm, BackendOptions(world_size=2))
    after = [n.name for n in gm.graph.nodes if is_side_effect(n)]
    if last == first + 1:  # nothing else happens between the chain's issue and its wait
        assert done.verdict.rewritten and done.call is not None
        expected = [done.call if name == chain[0] else name for name in before if name != chain[1]]
        assert after == expected and set(chain) <= set(done.replaced)
    else:
        assert not done.verdict.rewritten and done.verdict.legal
        assert "runs between the chain's collectives" in done.verdict.notes[-1]
        assert after == before


def test_a_collective_that_another_node_reads_keeps_its_chain():
    """An int8-communication chain whose all-to-all result a check reads (the importer skips
    checks, so the fusion pass cannot see that reader): the chain stays."""

    def program(x, w, scale, s1, s2, residual):
        z = (torch._int_mm(x, w).float() * scale.float()).to(torch.bfloat16) + residual
        q = (z.float() / s1.float()).half().round().clamp(-128, 127).to(torch.int8)
        parts = c10d.wait_tensor(c10d.all_to_all_single(q, [4, 4], [4, 4], "0"))
        t = (parts.view(2, 4, 8).float().sum(0) * (s1.float() / s2.float())).half().round().clamp(-128, 127)
        gathered = c10d.wait_tensor(c10d.all_gather_into_tensor(t.to(torch.int8), 2, "0"))
        out = (gathered.float() * s2.float()).to(torch.bfloat16)
        torch.ops.aten._assert_tensor_metadata(parts, dtype=torch.int8)
        return out

    i8, bf16 = torch.int8, torch.bfloat16
    args = (torch.ones(8, 16, dtype=i8), torch.ones(16, 8, dtype=i8), torch.ones(8, dtype=bf16),
            torch.ones(8, dtype=bf16), torch.ones(8, dtype=bf16), torch.ones(8, 8, dtype=bf16))  # fmt: skip
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        gm = make_fx(program, tracing_mode="fake")(*args)
        [done] = fuse_graph(gm, BackendOptions())
    finally:
        dist.destroy_process_group()
    assert done.verdict.legal and "qmm.alltoall" in done.verdict.chain
    assert (
        not done.verdict.rewritten
        and "_assert_tensor_metadata (aten._assert_tensor_metadata.default) reads wait_tensor" in done.verdict.notes[-1]
    )
    assert not any("quant_matmul_all_reduce" in str(n.target) for n in gm.graph.nodes)


def test_a_world_size_that_is_not_the_process_group_s_is_one_clear_error():
    gm = traced([("issue", 0), ("wait", 0)], world_size=2)
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        with pytest.raises(
            QmmarOptionsError, match="^qmmar backend: option world_size is 4, but process group '0' has 2"
        ):
            fuse_graph(gm, BackendOptions(world_size=4))
    finally:
        dist.destroy_process_group()


def test_a_graph_qmmar_cannot_import_is_compiled_unfused_with_a_warning(tmp_path):
    def program(x):
        return c10d.wait_tensor(c10d.all_reduce(x, "sum", "no-such-group"))

    gm = make_fx(program, tracing_mode="fake")(torch.ones(4).bfloat16())
    report = tmp_path / "report.json"
    with pytest.warns(UserWarning, match="qmmar: this graph is compiled unfused: .*cannot resolve the process group"):
        assert fuse_graph(gm, BackendOptions(report=str(report))) == []
    assert "cannot resolve the process group" in json.loads(report.read_text())["errors"][0]["error"]
    with pytest.raises(LocatedError):  # the importer itself says why
        from qmmar.frontends.torch import import_graph

        import_graph(gm.graph)


def dynamo_graph_verdicts(variant: str, world_size: int, dynamic: frozenset[int]) -> list[tuple]:
    """The verdicts qmmar gives the ATen graph Dynamo and AOTAutograd make of an example, the
    dims in `dynamic` of its inputs marked dynamic (traced under the fake process group)."""
    from torch._dynamo.backends.common import aot_autograd

    from qmmar.frontends.torch import ImportOptions, import_graph
    from qmmar.passes.fuse_quant_matmul_all_reduce import fuse

    found: list[tuple] = []

    def judge(gm, inputs):
        imported = import_graph(gm.graph, options=ImportOptions(runnable=False))
        found.extend((v.chain, v.legal, v.rule) for v in fuse(imported.module))
        return gm.forward

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        torch._dynamo.reset()
        inputs = tr.inputs(variant, world_size, 0, tr.default_rows(variant), 0)
        for dim in dynamic:  # every input's: the inputs share their rows
            for tensor in inputs:
                torch._dynamo.mark_dynamic(tensor, dim)
        with torch.no_grad():
            torch.compile(tr.tp_decoder.build(variant, 0, world_size), backend=aot_autograd(fw_compiler=judge))(*inputs)
    finally:
        dist.destroy_process_group()
    return found


@given(st.sampled_from(sorted(tr.tp_decoder.VARIANTS)), st.sampled_from([2, 4, 8]), st.data())
@settings(max_examples=12, deadline=None)
def test_a_graph_with_dynamic_sizes_is_judged_as_the_static_one(variant, world_size, data):
    """Every example, with any of its row dimensions dynamic, imports whole (what the IR cannot
    state stays opaque) and gets the verdicts of its static graph."""
    rows = len(tr.default_rows(variant))
    dynamic = data.draw(st.frozensets(st.integers(0, rows - 1), min_size=1))
    static = dynamo_graph_verdicts(variant, world_size, frozenset())
    assert static and dynamo_graph_verdicts(variant, world_size, dynamic) == static


# --- the fused op's CPU kernel: every kind of operand, 2 gloo processes --------------------

FUSED_CASES = [
    tr.FusedCase(out, transpose, bias, x3, pertoken, comm, rows)
    for out, transpose, bias, x3, pertoken, comm, rows in itertools.product(
        (torch.bfloat16, torch.float16), (False, True), (False, True), (False, True), (False, True), (False, True),
        ((6,), (2, 3)),
    )
]  # fmt: skip


def mc2_program(case: tr.FusedCase, world_size: int) -> str:
    """The same op as an mc2 program (with mc2.trans_quant_param where the case packs its scale)."""
    rows = "x".join(map(str, case.rows))
    m = int(np.prod(case.rows))
    out = ELEMENT_TYPES[case.out]
    x2 = f"{case.N}x{case.K}" if case.transpose_x2 else f"{case.K}x{case.N}"
    scale = "bf16" if case.out == torch.bfloat16 else "f32"
    args = [f"%x1: tensor<{rows}x{case.K}xi8>", f"%x2: tensor<{x2}xi8>"]
    args += [f"%bias: tensor<{case.N}xi32>"] if case.bias else []
    args += [f"%x3: tensor<{rows}x{case.N}x{out}>"] if case.x3 else []
    args += [f"%scale: tensor<{case.N}x{scale}>"]
    args += [f"%pt: tensor<{m}xf32>"] if case.pertoken else []
    args += [f"%s1: tensor<{case.N}x{out}>", f"%s2: tensor<{case.N}x{out}>"] if case.comm else []
    body = []
    operand = f"%scale : tensor<{case.N}x{scale}>"
    if case.packs_scale:
        body.append(f"%packed = mc2.trans_quant_param %scale : tensor<{case.N}xf32> -> tensor<{case.N}xui64>")
        operand = f"%packed : tensor<{case.N}xui64>"
    optional = (
        (f" bias(%bias : tensor<{case.N}xi32>)" if case.bias else "")
        + (f" x3(%x3 : tensor<{rows}x{case.N}x{out}>)" if case.x3 else "")
        + f" dequant_scale({operand})"
        + (f" pertoken_scale(%pt : tensor<{m}xf32>)" if case.pertoken else "")
        + (f" comm_quant_scale_1(%s1 : tensor<{case.N}x{out}>) comm_quant_scale_2(%s2 : tensor<{case.N}x{out}>)"
           if case.comm else "")
    )  # fmt: skip
    result = f"tensor<{rows}x{case.N}x{out}>"
    transpose = str(case.transpose_x2).lower()
    body.append(f'%y = mc2.quant_matmul_all_reduce %x1, %x2{optional} on "tp" world_size = {world_size} '
                f"transpose_x2 = {transpose} : tensor<{rows}x{case.K}xi8>, tensor<{x2}xi8> -> {result}")  # fmt: skip
    lines = "\n    ".join(body)
    return f"func.func @main({', '.join(args)}) -> {result} {{\n    {lines}\n    func.return %y : {result}\n}}\n"


def test_the_fused_op_cpu_kernel_is_the_interpreter_over_every_kind_of_operand():
    world_size, seed = 2, 7
    results = tr.run_ranks(tr.run_fused_cases, world_size, FUSED_CASES, seed, timeout=300)
    refused = 0
    for i, case in enumerate(FUSED_CASES):
        try:
            module = parse(mc2_program(case, world_size))
        except LocatedError as err:  # the rule table refuses the op: so does the kernel, with the same rule
            rule = err.message.split("[")[1].split("]")[0]
            assert all(isinstance(r[i], str) and f"[{rule}]" in r[i] for r in results), (case, err.message)
            refused += 1
            continue
        operands = [case.operands(r, seed) for r in range(world_size)]
        arrays = [
            np.stack([to_numpy(o[name]) for o in operands]) for name in operands[0] if operands[0][name] is not None
        ]
        [expected] = run(module, arrays, world_size)
        got = np.stack([to_numpy(r[i]) for r in results])
        assert same_bits(got, expected), case
    assert refused < len(FUSED_CASES) // 2


def test_ranks_that_send_different_shapes_get_a_collective_error():
    with pytest.raises(Exception, match="ranks 0 and 1 disagree at 'test.gather' at here"):
        tr.run_ranks(tr.disagreeing_shapes, 2, timeout=120)


def test_the_ranks_compare_each_site_and_layout_once_and_alike():
    for found in tr.run_ranks(tr.rounds_of_agreement, 2, timeout=120):
        assert found[:4] == [2, 1, 2, 1] and found[5:] == [2], found  # compared, then exchanged; exchanged only; ...
        assert "ranks 0 and 1 disagree at 'test.gather' at here" in str(found[4])


def test_ranks_that_expect_different_shapes_get_a_collective_error():
    with pytest.raises(Exception, match="ranks 0 and 1 disagree at 'test.sum' at here"):
        tr.run_ranks(tr.disagreeing_expectations, 2, timeout=120)


# --- the NPU: the call qmmar makes, against a stand-in torch_npu -----------------------------


def test_the_npu_kernel_calls_npu_mm_all_reduce_base_as_documented():
    found = npu_standin_calls()
    assert found["registered"] == {"qmmar::quant_matmul_all_reduce": True, "qmmar::trans_quant_param": True}
    assert found["hccl"] == {"device": "npu", "rank": 3}  # the communicator of the group, asked with the global rank
    [call, plain] = found["mm_all_reduce"]
    assert call["args"] == ["x1", "x2.t()", "hcom-of-rank-3"]  # a transposed weight goes as the transposed view
    assert call["kwargs"] == {"reduce_op": "sum", "bias": "bias", "x3": "x3", "dequant_scale": "dequant_scale",
                              "pertoken_scale": "pertoken_scale", "comm_quant_scale_1": "comm_quant_scale_1",
                              "comm_quant_scale_2": "comm_quant_scale_2", "comm_turn": 0}  # fmt: skip
    assert plain["args"] == ["x1", "x2", "hcom-of-rank-3"] and plain["kwargs"]["bias"] is None
    assert plain["kwargs"]["dequant_scale"] == "packed"  # f16 without per-token scales: the packed int64
    assert found["trans_quant_param"] == ["scale"]
