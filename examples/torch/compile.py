"""torch.compile(model, backend="qmmar") on W CPU processes (a gloo group on localhost): the
tensor-parallel decoder block of tp_decoder.py, each legal chain run as one call of
torch.ops.qmmar.quant_matmul_all_reduce.  Prints the verdicts of qmmar's report and compares
every rank's output with the model run eagerly.

    python examples/torch/compile.py [--world-size 2] [--variant bf16-dynamic] [--inner inductor]
                                     [--report mc2.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import qmmar.frontends.torch.standins  # noqa: F401  (npu.npu_quant_matmul and vllm.all_reduce for the f16 variants)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tp_decoder  # noqa: E402
from ranks import compile_on_ranks  # noqa: E402


def rank_main(rank: int, world_size: int, variant: str, options: dict) -> tuple[float, torch.Tensor, torch.Tensor]:
    """This rank's shard, compiled: (seconds of the first call, the output, the output eagerly)."""
    model = tp_decoder.build(variant, rank, world_size)
    compiled = torch.compile(model, backend="qmmar", options=options)  # found by its entry point
    inputs = tp_decoder.example_inputs(variant, world_size, rank=rank)
    with torch.no_grad():
        start = time.perf_counter()
        out = compiled(*inputs)
        return time.perf_counter() - start, out, model(*inputs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-size", type=int, default=2)
    p.add_argument("--variant", choices=sorted(tp_decoder.VARIANTS), default="bf16-dynamic")
    p.add_argument("--inner", choices=("inductor", "eager"), default="inductor")
    p.add_argument("--report", help="keep qmmar's JSON report here")
    args = p.parse_args()
    ranks = compile_on_ranks(rank_main, args.world_size, args.variant, inner=args.inner, report=args.report)
    first, out, _ = ranks[0]
    same = all(torch.equal(o, e) for _, o, e in ranks)
    print(f"{args.world_size} ranks, {args.variant}, inner={args.inner}: first call (compiling) {first:.1f} s; "
          f"output {list(out.shape)} {str(out.dtype).removeprefix('torch.')}; the same as eager on every rank: "
          f"{'yes' if same else 'no'}")  # fmt: skip


if __name__ == "__main__":
    main()
