"""vLLM-Ascend's W8A8 linears (examples/torch/vllm_ascend.py): torch_npu's and vLLM's ops through
qmmar's CPU stand-ins.  Every variant imports (an op qmm cannot take stays opaque, with a remark);
the chains fuse where MC2 computes exactly what the program does; the imported program is
PyTorch eager bit for bit on every rank, and so is the fused one."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402
from torch_eager import run_lockstep  # noqa: E402

from helpers import same_bits  # noqa: E402
from qmmar.frontends.torch import ImportOptions, import_exported_program, weight_arrays  # noqa: E402
from qmmar.frontends.torch.interpret import torch_op_functions  # noqa: E402
from qmmar.frontends.torch.parameter_values import narrowing_remark  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.interpreter.spmd import run_spmd  # noqa: E402
from qmmar.interpreter.values import for_file  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "torch"))
import vllm_ascend as va  # noqa: E402

PLAIN = "qmm.matmul -> qmm.dequant -> qmm.all_reduce"
F16_SCALE = ("not imported as qmm.matmul + qmm.dequant: the scale is f16, which qmm.dequant does not take: every "
             "f16 value is exact in f32, and with a per-token scale an f32 scale computes the same (store the scale "
             "as f32)")  # fmt: skip
EXPECTED = {  # variant -> (the chains and the rule that stops each, the importer's remarks)
    "bf16-dynamic": ([(PLAIN, None)], []),
    "f16-dynamic": ([], [F16_SCALE]),  # vLLM-Ascend's f16 weight_scale: npu_quant_matmul stays opaque
    "bf16-static": ([(PLAIN, "MC2-SCALE-DTYPE")], []),  # deq_scale f32 for bf16 output
    "bf16-static-bf16-scales": ([(PLAIN, None)], [narrowing_remark("o_proj.deq_scale", runnable=True)]),
    "f16-static": ([(PLAIN, None)], []),
    "f16-static-bias": ([(PLAIN, None)], []),
}


def exported(variant: str, world_size: int, rank: int) -> torch.export.ExportedProgram:
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    try:
        v = va.VARIANTS[variant]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(va.Block(v, rank, world_size), va.example_inputs(v, 0, rank))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_every_variant_imports_and_fuses_where_mc2_computes_the_same(variant, rank):
    program = import_exported_program(exported(variant, 2, rank), ImportOptions(2))
    chains, remarks = EXPECTED[variant]
    assert [n.message for n in program.notes] == remarks
    if variant.endswith("bias"):  # vLLM-Ascend adds the int32 bias on rank 0 only
        matmul = next(op for op in program.module.walk() if op.name == "qmm.matmul")
        assert (matmul.bias is not None) == (rank == 0)
    assert [(v.chain, v.rule) for v in fuse(program.module)] == chains


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("variant", [v for v in sorted(EXPECTED) if not va.VARIANTS[v].bias])
def test_imported_and_fused_programs_are_eager_bit_for_bit(variant, world_size):
    program = exported(variant, world_size, 0)  # the same program on every rank: no rank-0 bias
    imported = import_exported_program(program, ImportOptions(world_size))
    v = va.VARIANTS[variant]
    blocks = [va.Block(v, r, world_size) for r in range(world_size)]
    states = [dict(b.named_buffers()) for b in blocks]
    inputs = [va.example_inputs(v, 5, r) for r in range(world_size)]
    arrays = weight_arrays(imported, states)
    user = [i for i, a in enumerate(imported.arguments) if a.kind == "input"]
    arrays |= {f"arg{i}": np.stack([for_file(to_numpy(x[j])) for x in inputs]) for j, i in enumerate(user)}
    args = [arrays[f"arg{i}"] for i in range(len(imported.arguments))]

    kinds = {s.arg.name: s for s in program.graph_signature.input_specs}
    placeholders = []
    for rank in range(world_size):
        given = iter(inputs[rank])
        placeholders.append({n: states[rank][s.target] if s.target else next(given) for n, s in kinds.items()})
    envs = run_lockstep(program.graph, placeholders)
    outputs = next(n for n in program.graph.nodes if n.op == "output").args[0]
    eager = [np.stack([to_numpy(env[node]) for env in envs]) for node in outputs]

    unfused = run_spmd(imported.module, args, world_size, functions=[torch_op_functions(imported.module)])
    assert all(same_bits(got, want) for got, want in zip(unfused, eager, strict=True))
    fused = imported.module.clone()
    assert [v.rewritten for v in fuse(fused)] == [rule is None for _, rule in EXPECTED[variant][0]]
    again = run_spmd(fused, args, world_size, functions=[torch_op_functions(fused)])
    assert all(same_bits(got, want) for got, want in zip(again, eager, strict=True))
