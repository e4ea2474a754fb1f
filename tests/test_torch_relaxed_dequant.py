"""torchao's int8 linear (`Int8Tensor` over `_int_scaled_matmul_cpu`), written out as it traces:
D(V(f32(D(f32(x1 @ x2) * pertoken[:, None])) * scale)), the per-token scale first and a rounding
to D in between, the rows viewed back as [b, s, n].  Under numerics=exact a near miss whose remark
names numerics=relaxed; under relaxed one qmm.matmul + qmm.dequant, with the bound in the remark,
and each output within that bound of PyTorch's; its all-reduce chain fuses under relaxed; the
torch.compile backend and qmmar-import report it."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402

from qmmar.frontends.torch import ImportOptions, import_exported_program, import_graph  # noqa: E402
from qmmar.frontends.torch.backend import BackendOptions, fuse_graph  # noqa: E402
from qmmar.frontends.torch.interpret import torch_op_functions  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.interpreter.spmd import run_spmd  # noqa: E402
from qmmar.interpreter.values import for_file  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse  # noqa: E402

B, S, K, N = 2, 8, 64, 32
c10d = torch.ops._c10d_functional
RELAXED_HINT = "or numerics=relaxed, which imports it as qmm.dequant (the channel scale first, one rounding)"


def linear(x: torch.Tensor, w: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
    """torchao's s8s8 path: x [b, s, k] int8, w [n, k] int8, x_scale [b, s, 1] f32, w_scale [n, 1]."""
    c = torch._int_mm(x.reshape(-1, K), w.t())
    y_dot = (c.to(torch.float32) * x_scale.reshape(-1, 1)).to(torch.bfloat16)
    return (y_dot * w_scale.flatten()).reshape(B, S, N).to(torch.bfloat16)


def reduced(x, w, x_scale, w_scale):
    return c10d.wait_tensor(c10d.all_reduce(linear(x, w, x_scale, w_scale), "sum", "0"))


def arguments(seed: int, scale_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-128, 128, (B, S, K), generator=g, dtype=torch.int8),
            torch.randint(-128, 128, (N, K), generator=g, dtype=torch.int8),
            torch.rand(B, S, 1, generator=g) * 1e-2 + 1e-3,
            (torch.rand(N, 1, generator=g) * 1e-2 + 1e-3).to(scale_dtype))  # fmt: skip


def imported(program, args, numerics: str):
    graph = make_fx(program, tracing_mode="fake")(*args).graph
    return import_graph(graph, options=ImportOptions(world_size=2, numerics=numerics))


def ran(program, args) -> np.ndarray:
    [got] = run_spmd(program.module, [for_file(to_numpy(t)) for t in args], 1,
                     functions=[torch_op_functions(program.module)])  # fmt: skip
    return got[0]


def ops(program) -> list[str]:
    return [op.name for op in program.module.walk() if op.name.startswith("qmm.")]


@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.bfloat16])
def test_under_exact_it_is_a_near_miss_that_names_relaxed(scale_dtype):
    args = arguments(0, scale_dtype)
    result = imported(linear, args, "exact")
    assert "qmm.dequant" not in ops(result) and "qmm.matmul" in ops(result)
    [note] = result.notes
    assert note.message.startswith("not imported as qmm.dequant: the dequant multiplies by the per-token scale before")
    assert note.message.endswith(RELAXED_HINT)
    assert np.array_equal(ran(result, args), to_numpy(linear(*args)).astype(np.float32))


def test_a_per_token_product_scaled_by_nothing_after_does_not_name_relaxed():
    def program(x, w, x_scale):
        return (torch._int_mm(x.reshape(-1, K), w.t()).to(torch.float32) * x_scale.reshape(-1, 1)).to(torch.bfloat16)

    args = arguments(0)[:3]
    [note] = imported(program, args, "relaxed").notes
    assert "per-token scale before the channel scale" in note.message and "relaxed" not in note.message


@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seed", range(3))
def test_under_relaxed_it_is_one_dequant_within_the_stated_bound(seed, scale_dtype):
    """|y - PyTorch's y| <= 2^-8 |acc * scale * pertoken| (plus f32 roundings) + one bf16 ulp."""
    args = arguments(seed, scale_dtype)
    result = imported(linear, args, "relaxed")
    assert ops(result) == ["qmm.matmul", "qmm.dequant"]
    [note] = result.notes
    assert note.message.startswith("numerics=relaxed: imported as qmm.dequant")
    assert "at most 2^-8 of |acc * scale * pertoken|" in note.message
    got, want = ran(result, args).astype(np.float64), to_numpy(linear(*args)).astype(np.float64)
    x, w, x_scale, w_scale = (t.double() for t in args)
    exact = ((x.reshape(-1, K) @ w.t()) * x_scale.reshape(-1, 1) * w_scale.flatten()).reshape(B, S, N).numpy()
    ulp = np.abs(want) * 2.0**-7  # a bf16 ulp is at most 2^-7 of the value
    assert np.all(np.abs(got - want) <= np.abs(exact) * (2.0**-8 + 2.0**-22) + ulp)
    assert not np.array_equal(got, want)  # the program's intermediate rounding is gone


def test_its_all_reduce_chain_fuses_under_relaxed_only():
    args = arguments(1)
    exact, relaxed = imported(reduced, args, "exact"), imported(reduced, args, "relaxed")
    assert fuse(exact.module) == []  # no qmm.dequant: no chain
    [verdict] = fuse(relaxed.module, FuseOptions(numerics="relaxed"))
    assert verdict.rewritten and "tensor.expand_shape -> qmm.all_reduce" in verdict.chain
    assert any("dequant_scale is rounded to bf16" in n for n in verdict.notes)


def test_the_backend_warns_of_and_reports_the_importer_s_remarks(tmp_path):
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        gm = make_fx(reduced, tracing_mode="fake")(*arguments(0))
        report = tmp_path / "report.json"
        with pytest.warns(UserWarning, match="qmmar: 1 pattern.* not imported as PyTorch wrote them") as caught:
            assert fuse_graph(gm, BackendOptions(report=str(report))) == []
        assert RELAXED_HINT in str(caught[0].message)
        [note] = json.loads(report.read_text())["import_notes"]
        assert note["graph"] == 0 and note["remark"].endswith(RELAXED_HINT)
        gm = make_fx(reduced, tracing_mode="fake")(*arguments(0))
        with pytest.warns(UserWarning, match="numerics=relaxed: imported as qmm.dequant"):
            [done] = fuse_graph(gm, BackendOptions(numerics="relaxed"))
        assert done.verdict.rewritten
    finally:
        dist.destroy_process_group()


class Linear(torch.nn.Module):
    def forward(self, x, w, x_scale, w_scale):
        return linear(x, w, x_scale, w_scale)


def test_qmmar_import_takes_numerics(tmp_path, capsys):
    from qmmar.cli.import_torch import run

    path = tmp_path / "linear.pt2"
    torch.export.save(torch.export.export(Linear(), arguments(0)), path)
    for numerics, remark in (("exact", RELAXED_HINT), ("relaxed", "numerics=relaxed: imported as qmm.dequant")):
        assert run([str(path), "-o", str(tmp_path / "out.mlir"), "--numerics", numerics]) == 3  # no chain
        assert remark in capsys.readouterr().err
        assert ("qmm.dequant" in (tmp_path / "out.mlir").read_text()) == (numerics == "relaxed")
    program = import_exported_program(torch.export.load(path), ImportOptions(numerics="relaxed"))
    assert ops(program) == ["qmm.matmul", "qmm.dequant"]
