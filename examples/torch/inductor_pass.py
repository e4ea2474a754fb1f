"""qmmar inside stock Inductor: `QmmarInductorPass` as Inductor's post-grad custom pass, on W CPU
processes (a gloo group on localhost), compiling the tensor-parallel decoder block of
tp_decoder.py with `torch.compile(model)` (backend "inductor").  Prints each rank's verdicts,
the pass's uuid (in the key of Inductor's and AOTAutograd's caches),
and whether a second process, served from the warm cache, computes the same bits.

    python examples/torch/inductor_pass.py [--world-size 2] [--variant bf16-static]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

import qmmar.frontends.torch.standins  # noqa: F401  (npu.npu_quant_matmul and vllm.all_reduce for the f16 variants)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tp_decoder  # noqa: E402
from ranks import run_ranks  # noqa: E402

from qmmar.frontends.torch.inductor_pass import QmmarInductorPass  # noqa: E402


def rank_main(rank: int, world_size: int, variant: str, cache: str) -> tuple[str, list[str], bool, torch.Tensor]:
    """This rank's shard compiled by Inductor with qmmar's pass: (the pass's uuid, its remarks,
    whether AOTAutograd's cache served the compile, the output)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # one cache for both runs of the example
    qmmar_pass = QmmarInductorPass({"scenario": "prefill"})
    torch._inductor.config.post_grad_custom_post_pass = qmmar_pass
    model = tp_decoder.build(variant, rank, world_size)
    with torch.no_grad():
        out = torch.compile(model)(*tp_decoder.example_inputs(variant, world_size, rank=rank))
    hit = torch._dynamo.utils.counters["aot_autograd"]["autograd_cache_hit"] > 0
    return qmmar_pass.uuid(), [r for v in qmmar_pass.recorded for r in v.remarks], hit, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-size", type=int, default=2)
    p.add_argument("--variant", choices=sorted(tp_decoder.VARIANTS), default="bf16-static")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        first, again = (run_ranks(rank_main, args.world_size, args.variant, cache) for _ in range(2))
    uuid, remarks, _, _ = first[0]
    print(f"QmmarInductorPass uuid: {uuid}")
    for remark in remarks:
        print(remark)
    served = all(hit for _, _, hit, _ in again)
    same = all(torch.equal(a[3], b[3]) for a, b in zip(first, again, strict=True))
    print(f"{args.world_size} ranks, {args.variant}: the second process served from the cache: "
          f"{'yes' if served else 'no'}; the same output bits on every rank: {'yes' if same else 'no'}")  # fmt: skip


if __name__ == "__main__":
    main()
