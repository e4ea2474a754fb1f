"""torch.ops.qmmar.all_gather_quant_matmul: its CPU kernel is qmmar's numerics of the op over a
gloo group, its rule table refuses as the verifier does, and its NPU kernel calls
torch_npu.npu_all_gather_base_mm with comm_mode "aiv" (against the recording stand-in)."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_all_gather_ranks as ranks  # noqa: E402
import torch_ranks as tr  # noqa: E402

from helpers import npu_standin_calls, same_bits  # noqa: E402
from qmmar.dialects import numerics as nx  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASES = [(torch.bfloat16, True), (torch.bfloat16, False), (torch.float16, True), (torch.float16, False)]


def test_the_cpu_kernel_is_the_numerics_of_the_op():
    world_size, seed = 2, 5
    results = tr.run_ranks(ranks.call, world_size, seed, CASES, timeout=300)
    for i, (out, pertoken) in enumerate(CASES):
        operands = [ranks.operands(r, seed, out, pertoken) for r in range(world_size)]
        gathered = np.concatenate([to_numpy(o["x1"]) for o in operands])
        t = np.concatenate([to_numpy(o["x1_scale"]).reshape(-1) for o in operands]) if pertoken else None
        for r in range(world_size):
            acc = nx.matmul_i32(gathered, to_numpy(operands[r]["x2"]), None, transpose_x2=True)
            want = nx.aiv_dequant_i32(acc, to_numpy(operands[r]["x2_scale"]), t, nx.BF16 if out == torch.bfloat16
                                      else nx.F16)  # fmt: skip
            output, gather_out = results[r][i]
            assert output.dtype == out and list(output.shape) == [world_size * ranks.M, ranks.N]
            assert same_bits(to_numpy(output), want), (out, pertoken, r)
            assert same_bits(to_numpy(gather_out), gathered)


def test_the_rule_table_refuses_at_run_time():
    """A bf16 x2_scale (qmm.dequant's bf16 form) is not an x2_scale the operator takes."""
    args = ranks.operands(0, 1, torch.bfloat16, False)
    args["x2_scale"] = args["x2_scale"].to(torch.bfloat16)
    with pytest.raises(RuntimeError, match=r"qmmar.all_gather_quant_matmul at run time: \[AGMM-X2SCALE-DTYPE\]"):
        torch.ops.qmmar.all_gather_quant_matmul(*args.values(), "tp", 2, True, torch.bfloat16)


def test_the_npu_kernel_calls_npu_all_gather_base_mm_with_comm_mode_aiv():
    found = npu_standin_calls()
    assert found["registered_all_gather"] is True
    [call] = found["all_gather_base_mm"]
    assert call["args"] == ["x1", "x2.t()", "hcom-of-rank-3", 4]  # a transposed weight as the transposed view
    assert call["kwargs"] == {"bias": None, "x1_scale": [8, 1], "x2_scale": [1, 16], "gather_index": 0,
                              "gather_output": True, "comm_turn": 0, "output_dtype": "torch.bfloat16",
                              "comm_mode": "aiv"}  # fmt: skip
