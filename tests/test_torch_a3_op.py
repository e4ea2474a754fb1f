"""torch.ops.qmmar.quant_matmul_all_reduce_a3, the A3 form of a matmul + all-reduce chain: its CPU
kernel is the interpreter's fused A3 program bit for bit (2 and 4 gloo processes); its NPU
kernel calls torch_npu.npu_mm_reduce_scatter_base with comm_mode="aiv" and all-gathers that
block on the group (against the recording stand-in torch_npu, tests/npu_standin.py); and the
backend with soc="a3" writes it in place of a plain chain, a bf16 scale converted to f32."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
import torch_sp_ranks as spr  # noqa: E402
from sp_programs import ReduceScatterSpec, random_inputs, unfused_program  # noqa: E402
from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402
from torch.testing._internal.distributed.fake_pg import FakeStore  # noqa: E402

from helpers import npu_standin_calls, parse, run, same_bits  # noqa: E402
from qmmar.frontends.torch.backend import BackendOptions, fuse_graph  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse  # noqa: E402

A3_OP = "quant_matmul_all_reduce_a3"
SPECS = [
    ReduceScatterSpec(2, "bf16", (8,), 256, 16, True, True, "f32", "1n", False, "all_reduce"),
    ReduceScatterSpec(4, "f16", (2, 6), 260, 7, False, False, "i64", "n", True, "all_reduce"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"W{s.world_size}-{s.out}-{s.scale_dtype}")
def test_the_cpu_kernel_is_the_interpreters_a3_form(spec):
    seed = 5
    module = parse(unfused_program(spec))
    assert [v.kind for v in fuse(module, FuseOptions(soc="a3")) if v.rewritten] == [
        "mc2.quant_matmul_reduce_scatter+qmm.allgather"
    ]
    [expected] = run(module, random_inputs(spec, seed), spec.world_size)
    results = spr.run_ranks(spr.run_op, spec.world_size, spec, seed, A3_OP, timeout=300)
    actual = np.stack([to_numpy(r) for r in results])
    assert same_bits(actual, expected.reshape(spec.world_size, spec.m, spec.n)), results


def test_the_npu_kernel_is_npu_mm_reduce_scatter_base_then_an_all_gather_of_its_block():
    found = npu_standin_calls()
    assert found["registered_a3"] is True
    own, a3 = found["mm_reduce_scatter"]  # the reduce-scatter op's call, then the A3 form's: the same
    assert a3 == own and a3["kwargs"]["comm_mode"] == "aiv"
    [gather] = found["all_gather_into_tensor"]
    assert gather == {"output": [[16, 8], "torch.bfloat16"], "input": "mm_reduce_scatter_2", "group_size": 4,
                      "async_op": False}  # fmt: skip


def test_the_backend_for_a3_writes_the_a3_op_in_place_of_the_chain():
    c10d = torch.ops._c10d_functional

    def program(x, w, scale):
        y = (torch._int_mm(x, w).float() * scale.float()).to(torch.bfloat16)
        return c10d.wait_tensor(c10d.all_reduce(y, "sum", "0"))

    args = (torch.ones(32, 256, dtype=torch.int8), torch.ones(256, 8, dtype=torch.int8), torch.ones(8).bfloat16())
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        gm = make_fx(program, tracing_mode="fake")(*args)
        [done] = fuse_graph(gm, BackendOptions(soc="a3", world_size=2))
    finally:
        dist.destroy_process_group()
    assert done.verdict.rewritten, done.verdict
    calls = [n for n in gm.graph.nodes if n.op == "call_function"]
    [fused] = [n for n in calls if n.target == getattr(torch.ops.qmmar, A3_OP).default]
    assert not [n for n in calls if n.target == c10d.all_reduce.default]
    widened = fused.args[4]  # x2_scale: the bf16 scale converted to f32 (the same values)
    assert widened.target == torch.ops.prims.convert_element_type.default and widened.args[1] == torch.float32
    assert fused.meta["val"].shape == (32, 8) and fused.meta["val"].dtype == torch.bfloat16
