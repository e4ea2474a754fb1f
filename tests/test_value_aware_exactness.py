"""Value-aware exactness on the torch routes: where the importer holds a parameter's values, an
f32 dequant scale for bf16 output whose every value is a bf16 value is imported as arith.truncf +
arith.extf (the same values), with a remark, and fuses under numerics=exact; a scale with any
other value is imported as it is and refused.  The compiled graph narrows such a scale through
`qmmar.to_bf16_exact`, which raises, naming the parameter, once a value is not a bf16 value."""

import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402

from qmmar.frontends.torch import ImportOptions, import_exported_program  # noqa: E402
from qmmar.frontends.torch.exact_narrow_op import to_bf16_exact  # noqa: E402
from qmmar.frontends.torch.parameter_values import Parameter, _module_state_name  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "torch"))
import vllm_ascend as va  # noqa: E402

BF16_VALUES = torch.tensor([0.5, 0.1015625, -3.0, 2.0**-20])  # 0.1015625 = 13 / 128: a bf16 value
OTHER_VALUES = torch.tensor([0.5, 0.1, -3.0, 2.0**-20])


@pytest.fixture
def world():
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    yield
    dist.destroy_process_group()


def block(deq_scale: torch.Tensor | None = None) -> va.Block:
    """vLLM-Ascend's static bf16 block; its f32 deq_scale replaced when given."""
    b = va.Block(va.VARIANTS["bf16-static"], 0, 2)
    if deq_scale is not None:
        b.o_proj.deq_scale = deq_scale.repeat(va.HIDDEN // len(deq_scale))
    return b


def imported(b: va.Block):
    v = va.VARIANTS["bf16-static"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(b, va.example_inputs(v))
    return import_exported_program(program, ImportOptions(2))


def test_parameter_reads_whether_every_value_is_a_bf16_value():
    assert Parameter.of("s", BF16_VALUES).bf16_valued and not Parameter.of("s", OTHER_VALUES).bf16_valued
    assert not Parameter.of("s", BF16_VALUES.to(torch.bfloat16)).bf16_valued  # already bf16: nothing to narrow


def test_dynamo_sources_name_a_module_s_state_only():
    source = "L['self']._modules['layers']._modules['0']._modules['o_proj']._buffers['deq_scale']"
    assert _module_state_name(source) == "layers.0.o_proj.deq_scale"
    assert _module_state_name("L['self']._parameters['weight']") == "weight"
    assert _module_state_name("L['hidden']") is None


def test_a_bf16_valued_scale_is_narrowed_and_widened_with_a_remark_and_fuses_under_exact(world):
    program = imported(block(BF16_VALUES))
    names = [op.name for op in program.module.walk()]
    assert names.index("arith.truncf") < names.index("arith.extf") < names.index("qmm.dequant")
    [note] = program.notes
    assert not note.changes and note.message.startswith("dequant_scale o_proj.deq_scale: every value is a bf16 value")
    assert "for these values" in note.message
    assert list(program.narrowed.values()) == ["o_proj.deq_scale"]
    [verdict] = fuse(program.module)
    assert verdict.rewritten and any("widened to f32" in n and "(exact)" in n for n in verdict.notes)
    names = [op.name for op in program.module.walk()]
    assert "arith.truncf" in names and "arith.extf" not in names  # the fused op reads the bf16 value


def test_a_scale_with_another_value_is_imported_as_it_is_and_refused(world):
    program = imported(block(OTHER_VALUES))
    assert program.notes == [] and program.narrowed == {}
    assert not any(op.name in ("arith.truncf", "arith.extf") for op in program.module.walk())
    [verdict] = fuse(program.module)
    assert verdict.rule == "MC2-SCALE-DTYPE"


def test_to_bf16_exact_narrows_bf16_values_and_raises_naming_the_parameter_for_another():
    assert torch.equal(to_bf16_exact(BF16_VALUES, "s").float(), BF16_VALUES)
    with pytest.raises(RuntimeError, match=r"layers\.0\.o_proj\.deq_scale\[1\] = 0\.1.* is not a bf16 value"):
        to_bf16_exact(OTHER_VALUES, "layers.0.o_proj.deq_scale")


@pytest.mark.parametrize("inner", ["eager", "inductor"])
def test_a_compiled_graph_raises_once_a_narrowed_parameter_is_no_longer_bf16_valued(world, inner):
    torch._dynamo.reset()
    b = block(BF16_VALUES)
    compiled = torch.compile(b, backend="qmmar", options={"inner": inner})
    v = va.VARIANTS["bf16-static"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled(*va.example_inputs(v))
        b.o_proj.deq_scale[1] = 0.1  # in place, as a checkpoint loaded after compiling: Dynamo guards no value
        with pytest.raises(RuntimeError, match=r"o_proj\.deq_scale\[1\] = 0\.1.* is not a bf16 value"):
            compiled(*va.example_inputs(v))


def test_qmmar_import_narrows_with_its_remark_and_fusing_the_output_is_exact(world, tmp_path, capsys):
    from qmmar.api import read_module
    from qmmar.cli.import_torch import run

    v = va.VARIANTS["bf16-static"]
    path, out = tmp_path / "block.pt2", tmp_path / "block.mlir"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(block(BF16_VALUES), va.example_inputs(v)), path)
    assert run([str(path), "-o", str(out), "--weights", str(tmp_path / "w.npz")]) == 0
    assert "remark: dequant_scale o_proj.deq_scale: every value is a bf16 value" in capsys.readouterr().err
    [verdict] = fuse(read_module(str(out)))
    assert verdict.rewritten
