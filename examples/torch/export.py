"""Export the tensor-parallel examples with torch.export, one .pt2 per variant and world size.

    python examples/torch/export.py -o build/pt2 [--world-size 2 4 8] [--variant bf16-dynamic ...]

Each program is rank 0's shard, traced under PyTorch's fake process group (no devices, no
other processes): the collectives are recorded, not run.  Writes VARIANT-wW.pt2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch
import torch.distributed as dist
from torch.testing._internal.distributed.fake_pg import FakeStore

import qmmar.frontends.torch.standins  # noqa: F401  (npu.npu_quant_matmul for the f16 variants)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tp_decoder  # noqa: E402


def export(variant: str, world_size: int, rank: int = 0, seed: int = 0) -> torch.export.ExportedProgram:
    """The variant's program on `rank` of a fake process group of `world_size` ranks."""
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    model = tp_decoder.build(variant, rank, world_size, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(model, tp_decoder.example_inputs(variant, world_size, seed, rank))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output-dir", required=True)
    p.add_argument("--world-size", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--variant", nargs="+", choices=sorted(tp_decoder.VARIANTS), default=sorted(tp_decoder.VARIANTS))
    args = p.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    for w in args.world_size:
        for variant in args.variant:
            path = os.path.join(args.output_dir, f"{variant}-w{w}.pt2")
            torch.export.save(export(variant, w), path)
            print(path)


if __name__ == "__main__":
    main()
