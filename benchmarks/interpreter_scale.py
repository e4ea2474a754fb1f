"""The interpreter at model scale: an L-layer tensor-parallel prefill program run by qmmar-run
as threads and under MPI, its time beside numpy's f32 GEMM time for the same products, and
each process's peak RSS beside its inputs.

    python benchmarks/interpreter_scale.py [--layers 32] [--hidden 4096] [--ffn 11008] [--m 2048] [-w 8]
                                           [--torch-in-ranks]

Each layer is the row-parallel down projection of a Llama-style MLP: the fused op without
communication scales (mc2.quant_matmul_all_reduce, bf16 out, step 4's f32 sum over the ranks)
of x [m, ffn/W] and the rank's weight [ffn/W, hidden], then qmm.quant of the result and its
first ffn/W columns as the next layer's x (a stand-in for the column-parallel half, which
needs no communication).  Every rank has its own L weights: the inputs are W * L * ffn/W *
hidden bytes of weights, plus x.  The f32 GEMM figure is one [m, ffn/W] @ [ffn/W, hidden]
np.matmul timed in this process (median of 3), times W * L: what the same products cost in
numpy's BLAS.  Goal: peak RSS of each process at most 1.5x the inputs it holds (all of them
for threads, its rank's share under MPI).  A rank reads each argument at its first use and
lets it go after its last (`values.ReadOnUse`): it holds about one layer's weights at a time,
while the inputs figure stays the bytes of every argument it is given.  Ranks as threads
compute the GEMMs by torch's int8 kernel where it is available; MPI ranks by f32 BLAS, since
torch would cost each process about 240 MiB (`gemm.keep_torch_out`): --torch-in-ranks adds a
run of MPI ranks that load torch (`--library torch`) and use its kernel too.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import Timing, table, timed
from mpi import MEASURED, measure, same_outputs

from qmmar.dialects import numerics as nx

GOAL = 1.5
"""Issue 20: each process's peak RSS at most this many times the inputs it holds."""


def program(w: int, layers: int, m: int, k: int, hidden: int) -> str:
    x, wt, out = f"tensor<{m}x{k}xi8>", f"tensor<{k}x{hidden}xi8>", f"tensor<{m}x{hidden}xbf16>"
    q, vec = f"tensor<{m}x{hidden}xi8>", f"tensor<{hidden}xbf16>"
    params = [f"%x0: {x}", *(f"%w{i}: {wt}" for i in range(layers)), f"%s: {vec}", f"%sa: {vec}"]
    ops = []
    for i in range(layers):
        ops += [f"%h{i} = mc2.quant_matmul_all_reduce %x{i}, %w{i} dequant_scale(%s : {vec}) "
                f'on "tp" world_size = {w} : {x}, {wt} -> {out}',
                f"%q{i} = qmm.quant %h{i}, %sa : ({out}, {vec}) -> {q}",
                f"%x{i + 1} = tensor.extract_slice %q{i}[0, 0] [{m}, {k}] [1, 1] : {q} to {x}"]  # fmt: skip
    body = "\n  ".join([*ops, f"func.return %h{layers - 1} : {out}"])
    return f"func.func @main({', '.join(params)}) -> {out} {{\n  {body}\n}}\n"


def write_inputs(path: Path, w: int, layers: int, m: int, k: int, hidden: int) -> int:
    """Per-rank int8 x and weights, calibrated bf16 scales; the bytes of all the inputs."""
    rng = np.random.default_rng(0)
    acc_std = np.sqrt(k) * 128 * 128 / 3
    arrays = {"arg0": rng.integers(-128, 128, (w, m, k), dtype=np.int8)}
    for i in range(layers):
        arrays[f"arg{i + 1}"] = rng.integers(-128, 128, (w, k, hidden), dtype=np.int8)
    # The dequant scale makes one rank's output about N(0, 1) for uniform int8 x (std 74); the
    # sum of W has std sqrt(W), which sa = sqrt(W) / 80 quantises a little wider than it came
    # (the int8 saturation caps it): x keeps its spread through every layer instead of decaying
    # to zeros, which would make the deep layers cheap.
    for i, scale in enumerate((1 / acc_std, np.sqrt(w) / 80)):
        arrays[f"arg{layers + 1 + i}"] = nx.round_to(np.full(hidden, scale, np.float32), nx.BF16).view(np.uint16)
    np.savez(path, **arrays)
    return sum(a.nbytes for a in arrays.values())


def output_digest(path: Path) -> str:
    """Of the arrays' bytes in the file (not of the zip file, which holds times)."""
    with np.load(path) as results:
        return hashlib.blake2b(b"".join(results[name].tobytes() for name in sorted(results.files)),
                               digest_size=6).hexdigest()  # fmt: skip


def f32_gemm(m: int, k: int, n: int) -> Timing:
    """One [m, k] @ [k, n] product in numpy's f32 BLAS: median of 3."""
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    return timed(lambda: np.matmul(a, b), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--ffn", type=int, default=11008)
    p.add_argument("--m", type=int, default=2048)
    p.add_argument("--world-size", "-w", type=int, default=8)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--torch-in-ranks", action="store_true", help="also run MPI ranks with torch loaded")
    args = p.parse_args()
    w, k = args.world_size, args.ffn // args.world_size
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    python = [sys.executable, "-c", MEASURED]
    gemm = f32_gemm(args.m, k, args.hidden)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start; {os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.mlir").write_text(program(w, args.layers, args.m, k, args.hidden))
        size = write_inputs(folder / "in.npz", w, args.layers, args.m, k, args.hidden)
        common = [str(folder / "p.mlir"), "-i", str(folder / "in.npz"), "--progress", "none"]
        mpi = [mpiexec, "-n", str(w), *python, *common]
        runs = {
            "threads": ([*python, *common, "-w", str(w), "-o", str(folder / "threads.npz")], size),
            "MPI": ([*mpi, "-o", str(folder / "mpi.npz")], size // w),
        }
        if args.torch_in_ranks:
            runs["MPI + torch"] = ([*mpi, "--library", "torch", "-o", str(folder / "torch.npz")], size // w)
        for mode, (command, inputs) in runs.items():
            found = [measure(command) for _ in range(args.repeat)]
            seconds = sorted(f[0] for f in found)[len(found) // 2]
            cpu = sorted(f[2] for f in found)[len(found) // 2]
            peak = max(max(f[1]) for f in found)
            met = "yes" if peak <= GOAL * inputs else "no"
            rows.append((mode, len(found[0][1]), seconds, cpu, gemm.wall * w * args.layers, gemm.cpu * w * args.layers,
                         inputs / 2**20, peak / 2**20, peak / inputs, met))  # fmt: skip
        outputs = ["mpi.npz", *(["torch.npz"] if args.torch_in_ranks else [])]
        same = all(same_outputs(folder / "threads.npz", folder / name) for name in outputs)
        digest = output_digest(folder / "threads.npz")
    print(f"{args.layers} layers, hidden {args.hidden}, ffn {args.ffn}, m {args.m}, W {w}: per rank and layer "
          f"[{args.m}, {k}] @ [{k}, {args.hidden}]; one f32 GEMM {gemm.wall * 1e3:.0f} ms wall, "
          f"{gemm.cpu * 1e3:.0f} ms CPU")  # fmt: skip
    header = ("ranks as", "processes", "wall s", "CPU s", "f32 GEMMs s", "f32 GEMMs CPU s", "inputs MiB/process",
              "peak RSS MiB", "peak / inputs", f"<= {GOAL}")  # fmt: skip
    print(table(header, rows))
    print(f"threads and MPI outputs identical: {same}; output digest {digest}")
    met = "; ".join(f"{row[0]}: {row[-1]}" for row in rows)
    print(f"goal (issue 20): each process's peak RSS at most {GOAL}x the inputs it holds; met: {met}")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
