"""What the ranks of the sequence-parallel custom ops' tests run (examples/torch/ranks.py: W gloo
processes on localhost): torch.ops.qmmar.quant_matmul_reduce_scatter, or the A3 form of an
all-reduce chain (quant_matmul_all_reduce_a3, the same arguments), on sp_programs' inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "torch"))

from ranks import run_ranks  # noqa: E402,F401  (W gloo processes, bounded in time)


def run_op(rank: int, world_size: int, spec, seed: int, op: str = "quant_matmul_reduce_scatter") -> torch.Tensor | str:
    """This rank's operands of `spec` (sp_programs.random_inputs) through the custom op `op`; the
    rule table's refusal as its message."""
    from sp_programs import random_inputs

    from qmmar.frontends.torch import fused_all_reduce_a3_op, fused_reduce_scatter_op  # noqa: F401  (the ops)
    from qmmar.interpreter.numerics_torch import to_torch

    x1, x2, scale, *pt = random_inputs(spec, seed)  # per rank, per rank, replicated, per rank
    x1_scale = to_torch(pt[0][rank]) if pt else None
    out = torch.float16 if spec.out == "f16" else torch.bfloat16
    try:
        return getattr(torch.ops.qmmar, op)(to_torch(x1[rank].reshape(-1, spec.k)), to_torch(x2[rank]), None,
                                            x1_scale, to_torch(scale), None, dist.group.WORLD.group_name,
                                            world_size, spec.transpose_x2, out)  # fmt: skip
    except RuntimeError as err:
        return str(err)
