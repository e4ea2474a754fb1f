"""torch.ops.qmmar.quant_matmul_reduce_scatter: its CPU kernel is the interpreter's fused op bit
for bit (2 and 4 gloo processes), its rule check refuses what the table refuses, and its NPU
kernel calls torch_npu.npu_mm_reduce_scatter_base with comm_mode="aiv", argument by argument
(against the recording stand-in torch_npu, tests/npu_standin.py)."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch")

import torch_sp_ranks as spr  # noqa: E402
from sp_programs import ReduceScatterSpec, random_inputs, unfused_program  # noqa: E402

from helpers import npu_standin_calls, parse, run, same_bits  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse  # noqa: E402

SPECS = [
    ReduceScatterSpec(2, "bf16", (8,), 256, 16, True, True, "f32", "1n", False),
    ReduceScatterSpec(2, "f16", (2, 3), 300, 5, False, False, "i64", "n", True),
    ReduceScatterSpec(4, "f16", (8,), 260, 7, False, True, "f32", "n", True),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"W{s.world_size}-{s.out}-{s.scale_dtype}")
def test_the_cpu_kernel_is_the_interpreters_fused_op(spec):
    seed = 11
    module = parse(unfused_program(spec))
    assert [v.rewritten for v in fuse(module, FuseOptions(soc="a3"))] == [True]
    [expected] = run(module, random_inputs(spec, seed), spec.world_size)
    results = spr.run_ranks(spr.run_op, spec.world_size, spec, seed, timeout=300)
    assert same_bits(np.stack([to_numpy(r) for r in results]), expected), results


def test_the_rule_table_refuses_at_run_time():
    spec = dataclasses.replace(SPECS[0], k=128)  # MRS-K-RANGE
    results = spr.run_ranks(spr.run_op, 2, spec, 3, timeout=300)
    assert all("[MRS-K-RANGE] on Atlas A3, k must be in [256, 65535)" in r for r in results), results


def test_the_npu_kernel_calls_npu_mm_reduce_scatter_base_with_comm_mode_aiv():
    found = npu_standin_calls()
    assert found["registered_reduce_scatter"] is True
    call = found["mm_reduce_scatter"][0]  # the op's own (the A3 form's follows: test_torch_a3_op.py)
    assert call["args"] == ["x1", "x2.t()", "hcom-of-rank-3", 4]  # a transposed weight goes as the transposed view
    assert call["kwargs"] == {"reduce_op": "sum", "bias": None, "x1_scale": [16, 1], "x2_scale": [1, 8],
                              "comm_turn": 0, "output_dtype": "torch.bfloat16", "comm_mode": "aiv"}  # fmt: skip
