"""The imported programs run on qmmar's interpreter with the models' own weights and random
activations, against PyTorch eager on the same inputs: bit for bit on every rank, for the
values that enter communication and for the outputs (the all-reduce done here as an f32
rank-order sum, SEMANTICS.md); and the fused program against the unfused one."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_models as tm  # noqa: E402
from torch_eager import run_lockstep  # noqa: E402
from xdsl.dialects import func  # noqa: E402

from helpers import same_bits  # noqa: E402
from qmmar.frontends.torch import import_exported_program, weight_arrays  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.interpreter.values import for_file  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse  # noqa: E402

VARIANTS = sorted(tm.tp_decoder.VARIANTS)
COMMUNICATING = ("qmm.all_reduce", "qmm.alltoall")


def expose_communicated(program) -> list:
    """Return, after the outputs, the value each collective sends: [(its FX node, ...)]."""
    fn = next(op for op in program.module.walk() if isinstance(op, func.FuncOp))
    collectives = [op for op in fn.walk() if op.name in COMMUNICATING]
    ret = fn.body.block.last_op
    ret.operands = [*ret.operands, *(op.operands[0] for op in collectives)]
    fn.update_function_type()
    return [program.origins[op][0].args[0] for op in collectives]


def _rank_values(envs, node) -> np.ndarray:
    return np.stack([to_numpy(env[node]) for env in envs])


@pytest.mark.parametrize("world_size", tm.WORLD_SIZES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_unfused_program_is_pytorch_eager_bit_for_bit(variant, world_size):
    program = tm.imported(variant, world_size)
    sent = expose_communicated(program)
    assert sent, "every example communicates"
    seed = 3
    results = tm.run(program.module, tm.interpreter_args(program, variant, world_size, seed), world_size)
    envs = tm.eager_values(variant, world_size, seed)
    output = next(n for n in tm.exported(variant, world_size).graph.nodes if n.op == "output").args[0][0]
    (*outputs,) = results[: len(results) - len(sent)]
    assert same_bits(outputs[0], _rank_values(envs, output))
    for node, value in zip(sent, results[len(outputs) :], strict=True):  # before communication, per rank
        assert same_bits(value, _rank_values(envs, node)), node.name
        assert not all(same_bits(value[0], v) for v in value[1:]), "ranks send different values"


@pytest.mark.parametrize("world_size", tm.WORLD_SIZES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_program_equals_unfused_bit_for_bit(variant, world_size):
    unfused = tm.imported(variant, world_size)
    args = tm.interpreter_args(unfused, variant, world_size, seed=5)
    fused = unfused.module.clone()
    assert any(v.rewritten for v in fuse(fused))
    [expected] = tm.run(unfused.module, args, world_size)
    [got] = tm.run(fused, args, world_size)
    assert same_bits(got, expected)


def merged_npz(*paths) -> dict[str, np.ndarray]:
    """qmmar-run's reading of several --inputs files: merged by name, a name given twice is an error."""
    arrays: dict[str, np.ndarray] = {}
    for path in paths:
        with np.load(path) as npz:
            for name in npz.files:
                assert name not in arrays, f"{name} given twice"
                arrays[name] = npz[name]
    return arrays


def test_weights_and_activations_from_two_files(tmp_path):
    variant, world_size, seed = "bf16-dynamic", 4, 11
    program = tm.imported(variant, world_size)
    np.savez(tmp_path / "weights.npz", **weight_arrays(program, tm.rank_states(variant, world_size)))
    np.savez(tmp_path / "activations.npz",
             **tm.activation_arrays(program, tm.rank_inputs(variant, world_size, seed)))  # fmt: skip
    arrays = merged_npz(tmp_path / "weights.npz", tmp_path / "activations.npz")
    [got] = tm.run(program.module, [arrays[f"arg{i}"] for i in range(len(arrays))], world_size)
    output = next(n for n in tm.exported(variant, world_size).graph.nodes if n.op == "output").args[0][0]
    assert same_bits(got, _rank_values(tm.eager_values(variant, world_size, seed), output))


class ReduceScatterGather(torch.nn.Module):
    """A summed reduce-scatter and an all-gather, as the functional collectives write them."""

    def forward(self, x):
        c10d = torch.ops._c10d_functional
        y = c10d.wait_tensor(c10d.reduce_scatter_tensor(x * 2, "sum", 4, "tp"))
        return c10d.wait_tensor(c10d.all_gather_into_tensor(y, 4, "tp"))


def test_reduce_scatter_and_all_gather_are_qmm_collectives_summed_in_rank_order():
    program = torch.export.export(ReduceScatterGather(), (torch.randn(8, 16).bfloat16(),))
    imported = import_exported_program(program)
    names = [op.name for op in imported.module.walk() if op.name.startswith("qmm.")]
    assert names == ["qmm.reduce_scatter", "qmm.allgather"]
    inputs = [torch.randn(8, 16).bfloat16() for _ in range(4)]
    envs = run_lockstep(program.graph, [{"x": x} for x in inputs])
    output = next(n for n in program.graph.nodes if n.op == "output").args[0][0]
    [got] = tm.run(imported.module, [np.stack([for_file(to_numpy(x)) for x in inputs])], 4)
    assert same_bits(got, _rank_values(envs, output))
