"""Where an imported op comes from: the Python line that made it and the module that ran it
(`nn_module_stack`), so that the many layers a model's linears share one line of PyTorch's
`linear.py` for are told apart, in remarks, verdicts and the printed MLIR."""

import pytest

torch = pytest.importorskip("torch")

from torch.fx import Graph  # noqa: E402
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, NameLoc, StringAttr  # noqa: E402

from qmmar.dialects.location import location_text  # noqa: E402
from qmmar.frontends.torch import import_exported_program  # noqa: E402
from qmmar.frontends.torch.meta import module_path  # noqa: E402


class Layer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.o_proj = torch.nn.Linear(8, 8, dtype=torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o_proj(x)


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([Layer(), Layer()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x + x


def test_each_layer_is_located_at_its_module():
    program = torch.export.export(Model(), (torch.randn(2, 8, dtype=torch.bfloat16),))
    imported = import_exported_program(program)
    linears = [op for op in imported.module.walk() if getattr(op, "op_name", None) == StringAttr("torch.aten.linear")]
    located = [location_text(op.location) for op in linears]
    assert [text.rpartition(" ")[2] for text in located] == ["(layers.0.o_proj)", "(layers.1.o_proj)"]
    assert all(text.split(":")[0].endswith("torch/nn/modules/linear.py") for text in located), located
    [add] = [op for op in imported.module.walk() if op.name == "qmm.add"]
    assert isinstance(add.location, FileLineColLoc)  # the root module's own code: the line alone


@pytest.mark.parametrize("stack_name, path", [
    ("layers.0.self_attn.o_proj", "layers.0.self_attn.o_proj"),  # torch.export
    ("L['self'].layers.0.self_attn.o_proj", "layers.0.self_attn.o_proj"),  # torch.compile (Dynamo)
    ("L['self'].layers[3].mlp", "layers.3.mlp"),
    ("", ""),  # the root module
])  # fmt: skip
def test_module_path_reads_both_tracers(stack_name, path):
    node = Graph().placeholder("x")
    node.meta["nn_module_stack"] = {"root": ("", object), "inner": (stack_name, object)}
    assert module_path(node) == path


def test_a_named_location_reads_file_line_col_then_the_module():
    loc = NameLoc(StringAttr("layers.0.o_proj"), FileLineColLoc(StringAttr("model.py"), IntAttr(12), IntAttr(0)))
    assert location_text(loc) == "model.py:12:0 (layers.0.o_proj)"
