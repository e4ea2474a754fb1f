"""qmmar-import against PyTorch itself: which chains of the examples fuse, which rule stops the
others, at which Python line; and the patterns that stay as PyTorch wrote them, and why."""

import inspect

import pytest

torch = pytest.importorskip("torch")

import torch_models as tm  # noqa: E402
from torch_models import exported, imported  # noqa: E402

from qmmar.dialects.diagnostics import LocatedError  # noqa: E402
from qmmar.frontends.torch import ImportOptions, import_exported_program  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse  # noqa: E402

INT_MM = tm.source_line(r"torch\._int_mm\(")
NPU = tm.source_line(r"torch\.ops\.npu\.npu_quant_matmul\(")
PLAIN = "qmm.matmul -> qmm.dequant -> qmm.all_reduce"
INT8_COMM = ("qmm.matmul -> qmm.dequant -> qmm.add -> qmm.quant -> qmm.alltoall -> qmm.reducesum -> "
             "qmm.allgather -> qmm.dequant")  # fmt: skip

# variant -> [(line, module, chain, rule)] for the attention output projection, then the MLP down projection
EXPECTED = {
    "bf16-dynamic": [(INT_MM, "o_proj", PLAIN, None), (INT_MM, "down_proj", PLAIN, "MC2-SCALE-DTYPE")],
    "bf16-static": [(INT_MM, "o_proj", PLAIN, None), (INT_MM, "down_proj", PLAIN, None)],
    "f16-dynamic": [(NPU, "o_proj", PLAIN, None), (NPU, "down_proj", PLAIN, None)],
    "f16-static": [(NPU, "o_proj", PLAIN, None), (NPU, "down_proj", PLAIN, None)],
    "int8-comm": [(INT_MM, "proj", INT8_COMM, None)],
}


def located(line: int, module: str) -> str:
    """A verdict's location: the Python line, and the module (nn_module_stack) that ran it."""
    return f"examples/torch/tp_decoder.py:{line}:0 ({module})"


@pytest.mark.parametrize("world_size", tm.WORLD_SIZES)
@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_examples_fuse_exactly_the_chains_the_operator_allows(variant, world_size):
    program = imported(variant, world_size)
    assert program.notes == []
    verdicts = fuse(program.module)
    got = [(v.location, v.chain, v.rule) for v in verdicts]
    assert got == [(located(line, module), chain, rule) for line, module, chain, rule in EXPECTED[variant]]
    assert all(v.rewritten == (v.rule is None) for v in verdicts)
    mc2 = [op for op in program.module.walk() if op.name == "mc2.quant_matmul_all_reduce"]
    assert len(mc2) == sum(rule is None for *_, rule in EXPECTED[variant])
    assert {op.world_size.value.data for op in mc2} == {world_size} and {op.group.data for op in mc2} == {"tp"}


def test_arguments_are_parameters_and_buffers_by_qualified_name_then_inputs():
    program = imported("bf16-dynamic", 2)
    names = [a.name for a in program.arguments]
    assert names[:3] == ["input_norm.weight", "post_norm.weight", "qkv_proj.weight"]
    assert names[-1] == "hidden" and [a.kind for a in program.arguments][-1] == "input"
    fn = next(op for op in program.module.walk() if op.name == "func.func")
    assert [a.name_hint for a in fn.body.block.args] == names


def test_every_op_remembers_its_fx_nodes():
    program = imported("int8-comm", 2)
    by_name = {op.name: [n.name for n in nodes] for op, nodes in program.origins.items()}
    assert by_name["qmm.allgather"] == ["all_gather_into_tensor"]
    reducesum = next(op for op in program.origins if op.name == "qmm.reducesum")
    covered = {str(n.target) for n in program.origins[reducesum]}
    assert {"aten.sum.dim_IntList", "aten.div.Tensor", "aten.round.default", "aten.clamp.default"} <= covered
    assert all(program.origins[op] for op in program.module.walk() if op.name.startswith("qmm."))
    # the wait of a collective has the collective's value
    waits = [n for n in program.values if str(n.target) == "_c10d_functional.wait_tensor.default"]
    assert {program.values[n][0].owner.name for n in waits} == {"qmm.allgather", "qmm.alltoall"}


def _export(module, *args, **kwargs):
    return torch.export.export(module, args, **kwargs)


class Dequant(torch.nn.Module):
    """One row-parallel W8A8 linear whose dequant is written by `self.form`."""

    def __init__(self, form, scale_dtype=torch.bfloat16, out=torch.bfloat16):
        super().__init__()
        self.form, self.out = form, out
        self.register_buffer("w", torch.randint(-128, 128, (64, 32), dtype=torch.int8))
        self.register_buffer("w_scale", torch.rand(32).to(scale_dtype))

    def forward(self, x, token_scale):
        acc = torch._int_mm(x, self.w)
        y = self.form(acc, self.w_scale, token_scale, self.out)
        return torch.ops._c10d_functional.wait_tensor(torch.ops._c10d_functional.all_reduce(y, "sum", "tp"))


NEAR_MISSES = {
    "in bf16, not f32": lambda acc, s, t, out: acc.to(out) * s,
    "the per-token scale before the channel scale": lambda acc, s, t, out: (acc.float() * t[:, None] * s).to(out),
}


@pytest.mark.parametrize("why", sorted(NEAR_MISSES))
def test_a_dequant_with_other_numerics_stays_as_pytorch_wrote_it(why):
    program = import_exported_program(_export(Dequant(NEAR_MISSES[why]), *_inputs()), ImportOptions(2))
    assert [op.name for op in program.module.walk() if op.name.startswith("qmm.")] == ["qmm.matmul", "qmm.all_reduce"]
    [note] = program.notes
    assert why in note.message and "not imported as qmm.dequant" in note.message
    # PyTorch records the frames of `forward` methods: the line that calls the helper
    assert note.location == f"tests/test_torch_import.py:{_line(Dequant.forward, 'self.form(')}:0"
    assert fuse(program.module) == []  # no chain: the importer's note is the verdict


def test_f16_dequant_by_an_f32_scale_without_pertoken_is_not_the_mc2_numerics():
    module = Dequant(lambda acc, s, t, out: (acc.float() * s).to(out), torch.float32, torch.float16)
    [note] = import_exported_program(_export(module, *_inputs()), ImportOptions(2)).notes
    assert "TransQuantParamV2 keeps 10 mantissa bits" in note.message


def test_a_quant_without_the_f16_step_is_not_qmm_quant():
    class Quant(torch.nn.Module):
        def forward(self, x, s):
            return (x / s).round().clamp(-128, 127).to(torch.int8)

    args = (torch.randn(8, 16).bfloat16(), torch.rand(16).bfloat16())
    program = import_exported_program(_export(Quant(), *args))
    [note] = program.notes
    assert "rounds a bf16 quotient, not an f16 one" in note.message
    assert not [op for op in program.module.walk() if op.name.startswith("qmm.")]


def test_a_dynamic_m_becomes_a_question_mark_and_still_fuses():
    m = torch.export.Dim("m", min=16, max=4096)
    module = Dequant(lambda acc, s, t, out: (acc.float() * s * t[:, None]).to(out))
    program = import_exported_program(_export(module, *_inputs(), dynamic_shapes=({0: m}, {0: m})), ImportOptions(4))
    assert "tensor<?x64xi8>" in str(program.module) and "tensor<?xf32>" in str(program.module)
    [verdict] = fuse(program.module)
    assert verdict.rewritten


def test_a_dynamic_dimension_the_importer_cannot_express_is_one_located_error():
    class Expand(torch.nn.Module):
        def forward(self, x):
            return (x * 2).view(2, -1, 8)

    m = torch.export.Dim("m", min=2, max=512)
    program = _export(Expand(), torch.randn(8, 8), dynamic_shapes=({0: 2 * m},))
    with pytest.raises(LocatedError, match=r"test_torch_import.py:\d+:0: error: .*dynamic shape"):
        import_exported_program(program)


def test_a_group_without_a_size_is_one_located_error():
    module = Dequant(lambda acc, s, t, out: (acc.float() * s).to(out))
    with pytest.raises(LocatedError, match="cannot resolve the process group 'tp'.*--world-size"):
        import_exported_program(_export(module, *_inputs()))


def test_a_higher_order_op_is_one_located_error():
    class Branch(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda x: x + 1, lambda x: x - 1, (x,))

    with pytest.raises(
        LocatedError, match="cannot import the get_attr node true_graph_0.*qmmar imports ATen and custom operators"
    ):
        import_exported_program(_export(Branch(), torch.randn(4)))


def test_group_names_are_mapped_and_sizes_read_from_the_program():
    program = import_exported_program(exported("int8-comm", 4), ImportOptions(group_map={"0": "tp"}))
    collectives = [op for op in program.module.walk() if op.name in ("qmm.alltoall", "qmm.allgather")]
    assert [(op.group.data, op.world_size.value.data) for op in collectives] == [("tp", 4), ("tp", 4)]
    with pytest.raises(LocatedError, match="runs on 4 ranks of group '0', but the world size is 8"):
        import_exported_program(exported("int8-comm", 4), ImportOptions(world_size=8))


def _inputs():
    return torch.randint(-128, 128, (32, 64), dtype=torch.int8), torch.rand(32)


def _line(fn, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)
