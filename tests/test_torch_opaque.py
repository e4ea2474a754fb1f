"""The arguments of an opaque `torch.*` op: every value of every enum type an ATen schema
takes (dtypes, layouts, memory formats, devices) is written as an attribute, read back from
the printed text and replayed as the value it was; and a program that passes them imports,
reads without flags and runs on qmmar-run as PyTorch runs it."""

from io import StringIO

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xdsl.parser import Parser  # noqa: E402
from xdsl.printer import Printer  # noqa: E402

from helpers import same_bits, tool  # noqa: E402
from qmmar.context import qmmar_context  # noqa: E402
from qmmar.frontends.torch.opaque import constant, decode  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402

ENUMS = {
    "ScalarType": sorted({v for v in vars(torch).values() if isinstance(v, torch.dtype)}, key=str),
    "Layout": sorted({v for v in vars(torch).values() if isinstance(v, torch.layout)}, key=str),
    "MemoryFormat": sorted({v for v in vars(torch).values() if isinstance(v, torch.memory_format)}, key=str),
    "Device": [torch.device("cpu"), torch.device("meta"), torch.device("cuda", 1), torch.device("privateuseone", 0)],
}


def _enum_kinds() -> list[str]:
    """Every argument type of every registered schema that holds one of ENUMS' types."""
    kinds = {str(a.real_type) for s in torch._C._jit_get_all_schemas() for a in s.arguments}
    return sorted(k for k in kinds if k.removeprefix("Optional[").removesuffix("]") in ENUMS)


def _round_trip(attr):
    out = StringIO()
    Printer(stream=out).print_attribute(attr)
    return Parser(qmmar_context(), out.getvalue()).parse_attribute()


@pytest.mark.parametrize("kind", _enum_kinds())
def test_every_enum_argument_replays_as_itself(kind):
    values = ENUMS[kind.removeprefix("Optional[").removesuffix("]")]
    for value in values:
        assert decode(_round_trip(constant(value)), [], kind) == value
        assert decode(_round_trip(constant([value, None])), [], kind) == [value, None]


class Factories(torch.nn.Module):
    """What a transformers model writes: tensors made with dtype, layout, device and memory
    format arguments (rotary positions, masks, casts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(0, x.shape[0], dtype=torch.float32, layout=torch.strided, device="cpu")
        mask = torch.full(x.shape, 0.5, dtype=torch.bfloat16, layout=torch.strided, device=torch.device("cpu"))
        made = torch.empty_like(mask, memory_format=torch.contiguous_format).copy_(mask)
        y = (x + pos[:, None]).to(torch.bfloat16, memory_format=torch.preserve_format)
        return y * made + torch.ones_like(y, dtype=torch.bfloat16, layout=torch.strided)


def test_an_imported_program_with_enum_arguments_runs_as_pytorch_does(tmp_path):
    x = torch.randn(4, 8)
    torch.export.save(torch.export.export(Factories(), (x,)), tmp_path / "p.pt2")
    imported = tool("qmmar-import", tmp_path / "p.pt2", "-o", tmp_path / "p.mlir")
    assert imported.returncode == 3, imported.stderr  # imported; no chain in it
    assert '"torch.strided"' in (tmp_path / "p.mlir").read_text()
    opt = tool("qmmar-opt", tmp_path / "p.mlir")  # read without --allow-unregistered-dialect
    assert opt.returncode == 0 and '"torch.aten.arange.start"' in opt.stdout, opt.stderr
    np.savez(tmp_path / "x.npz", arg0=x.numpy())
    run = tool("qmmar-run", tmp_path / "p.mlir", "-w", 1, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    assert run.returncode == 0, run.stderr
    eager = to_numpy(Factories()(x)).astype(np.float32)
    assert same_bits(np.load(tmp_path / "y.npz")["result0"][0], eager)


def test_an_opaque_op_that_fails_at_run_time_is_named_as_written(tmp_path):
    op = '"torch.aten.arange.start"() {torch.args = [0 : i64, 4 : i64], torch.kwargs = {layout = "torch.bogus"}}'
    (tmp_path / "p.mlir").write_text(f"func.func @main() -> tensor<4xi64> {{\n  %0 = {op} : () -> tensor<4xi64>\n"
                                     "  func.return %0 : tensor<4xi64>\n}\n")  # fmt: skip
    run = tool("qmmar-run", tmp_path / "p.mlir", "-w", 1, "--random-inputs", 0)
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"{tmp_path / 'p.mlir'}:2:3: error: 'torch.aten.arange.start' op on rank 0: "), line
