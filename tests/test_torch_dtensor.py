"""PyTorch's own tensor parallelism (DTensor, `parallelize_module`): under torch.compile,
AOTAutograd hands over local tensors and functional collectives, and keeps each DeviceMesh as a
placeholder nothing reads; qmmar imports such a graph (the meshes are no arguments).  A program
whose inputs are still DTensors, or that reads a mesh, is one error that says DTensor and what
to do."""

import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
from torch._functorch.aot_autograd import aot_module_simplified  # noqa: E402
from torch.distributed.device_mesh import init_device_mesh  # noqa: E402
from torch.distributed.tensor import DTensor, Replicate  # noqa: E402
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402

from qmmar.dialects.diagnostics import LocatedError  # noqa: E402
from qmmar.frontends.torch import ImportOptions, import_graph  # noqa: E402


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(16, 32, bias=False, dtype=torch.bfloat16)
        self.down = torch.nn.Linear(32, 16, bias=False, dtype=torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


@pytest.fixture
def mesh():
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    yield init_device_mesh("cpu", (2,))
    dist.destroy_process_group()


def aten_graphs(model: torch.nn.Module, *inputs: torch.Tensor) -> list[torch.fx.GraphModule]:
    """The ATen graphs AOTAutograd hands a torch.compile backend."""
    graphs = []

    def backend(gm, example_inputs):
        def keep(graph_module, _):
            graphs.append(graph_module)
            return graph_module.forward

        return aot_module_simplified(gm, example_inputs, fw_compiler=keep)

    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(model, backend=backend)(*inputs)
    return graphs


def test_a_compiled_dtensor_program_imports_without_its_meshes(mesh):
    model = parallelize_module(MLP(), mesh, {"up": ColwiseParallel(), "down": RowwiseParallel()})
    [gm] = aten_graphs(model, torch.randn(8, 16, dtype=torch.bfloat16))
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    meshes = [n for n in placeholders if not isinstance(n.meta["val"], torch.Tensor)]
    assert meshes and not any(n.users for n in meshes)
    imported = import_graph(gm.graph, options=ImportOptions(2, runnable=False))
    assert [a.node for a in imported.arguments] == [n for n in placeholders if n not in meshes]
    assert sum(op.name == "qmm.all_reduce" for op in imported.module.walk()) == 1


def test_a_mesh_the_program_reads_says_dtensor(mesh):
    model = parallelize_module(MLP(), mesh, {"up": ColwiseParallel(), "down": RowwiseParallel()})
    [gm] = aten_graphs(model, torch.randn(8, 16, dtype=torch.bfloat16))
    graph = gm.graph
    mesh_node = next(n for n in graph.nodes if n.op == "placeholder" and not isinstance(n.meta["val"], torch.Tensor))
    output = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(output):
        read = graph.call_function(torch.ops.aten.alias.default, (mesh_node,))
    read.meta["val"] = next(n for n in graph.nodes if n.op == "placeholder").meta["val"]
    output.args = ((*output.args[0], read),)
    with pytest.raises(LocatedError) as refused:
        import_graph(graph, options=ImportOptions(2, runnable=False))
    assert "DeviceMesh that the program reads: a DTensor program" in refused.value.message
    assert 'torch.compile(model, backend="qmmar")' in refused.value.message


def test_a_dtensor_input_says_dtensor_and_what_to_do(mesh):
    x = DTensor.from_local(torch.randn(8, 16), mesh, [Replicate()])
    gm = torch.fx.symbolic_trace(lambda t: t * 2)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            node.meta["val"] = x
        elif node.op == "call_function":
            node.target, node.meta["val"] = torch.ops.aten.mul.Tensor, x
    with pytest.raises(LocatedError) as refused:
        import_graph(gm.graph)
    assert "is a DTensor (sharded over a device mesh)" in refused.value.message
    assert "torch.export does not trace DTensors" in refused.value.message
