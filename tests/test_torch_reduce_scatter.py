"""qmmar-import of `_c10d_functional.reduce_scatter_tensor`: a summed f16/bf16 one becomes
qmm.reduce_scatter, which runs as PyTorch's eager reduce-scatter (an f32 rank-order sum,
SEMANTICS.md) bit for bit on every rank; any other stays an opaque torch op."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
import torch.distributed._functional_collectives as funcol  # noqa: E402
import torch_models as tm  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402
from torch_eager import run_lockstep  # noqa: E402

from helpers import printed, same_bits  # noqa: E402
from qmmar.frontends.torch import import_exported_program  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.interpreter.values import for_file  # noqa: E402

WORLD = 4


class ReduceScatter(torch.nn.Module):
    """A sequence-parallel layer's end: its rows summed over the ranks, each rank keeping its 1/W."""

    def __init__(self, reduce_op: str) -> None:
        super().__init__()
        self.reduce_op = reduce_op

    def forward(self, x):
        return funcol.reduce_scatter_tensor(x * 2, self.reduce_op, 0, dist.group.WORLD)


def exported(reduce_op: str, dtype: torch.dtype) -> torch.export.ExportedProgram:
    """The module on rank 0 of PyTorch's fake process group of WORLD ranks (as examples/torch/export.py)."""
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=WORLD)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(ReduceScatter(reduce_op), (torch.randn(16, 8).to(dtype),))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("dtype, name", [(torch.bfloat16, "bf16"), (torch.float16, "f16")])
def test_a_summed_reduce_scatter_is_qmm_reduce_scatter_and_runs_as_eager(dtype, name):
    program = exported("sum", dtype)
    imported = import_exported_program(program)
    assert imported.notes == []
    text = printed(imported.module)
    assert f'qmm.reduce_scatter %0 on "0" world_size = 4 : tensor<16x8x{name}> -> tensor<4x8x{name}>' in text
    assert "torch._c10d_functional" not in text
    inputs = [torch.randn(16, 8).to(dtype) for _ in range(WORLD)]
    envs = run_lockstep(program.graph, [{"x": x} for x in inputs])
    output = next(n for n in program.graph.nodes if n.op == "output").args[0][0]
    [got] = tm.run(imported.module, [np.stack([for_file(to_numpy(x)) for x in inputs])], WORLD)
    assert same_bits(got, np.stack([to_numpy(env[output]) for env in envs]))


@pytest.mark.parametrize("reduce_op, dtype", [("max", torch.bfloat16), ("sum", torch.float32)])
def test_other_reduce_scatters_stay_torch_ops(reduce_op, dtype):
    text = printed(import_exported_program(exported(reduce_op, dtype)).module)
    assert "qmm.reduce_scatter" not in text
    assert '"torch._c10d_functional.reduce_scatter_tensor"' in text
