"""The interpreter's speed on a real layer shape, against numpy's own matmuls.

    python benchmarks/interpreter.py [--repeat 5]

Runs the fused op (mc2.quant_matmul_all_reduce, bf16, communication scales) at world size
8, m = 1024, k = 4096, n = 1024: every rank's exact int8 GEMM, dequant, int8 all-to-all,
reduce, all-gather.  Beside it, in the same run: numpy float32 matmul of the same shapes,
8 times (the BLAS roofline on this machine), and numpy int32 matmul once (the naive path).
Prints medians; GFLOP/s count 2*m*k*n per rank.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from qmmar.context import qmmar_context
from qmmar.dialects import numerics as nx
from qmmar.interpreter.spmd import entry_function, run_spmd
from qmmar.interpreter.values import random_args
from qmmar.source import parse_module

W, M, K, N = 8, 1024, 4096, 1024
PROGRAM = f"""
func.func @main(%x1: tensor<{M}x{K}xi8>, %x2: tensor<{K}x{N}xi8>, %s: tensor<{N}xbf16>,
                %s1: tensor<{N}xbf16>, %s2: tensor<{N}xbf16>) -> tensor<{M}x{N}xbf16> {{
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<{N}xbf16>)
       comm_quant_scale_1(%s1 : tensor<{N}xbf16>) comm_quant_scale_2(%s2 : tensor<{N}xbf16>)
       on "tp" world_size = {W} : tensor<{M}x{K}xi8>, tensor<{K}x{N}xi8> -> tensor<{M}x{N}xbf16>
  func.return %o : tensor<{M}x{N}xbf16>
}}
"""


def timed(fn, repeat: int) -> tuple[float, int]:
    """Median seconds over `repeat` runs (the first, traced for the peak memory, is timed
    only when it is the only one)."""
    tracemalloc.start()
    start = time.perf_counter()
    fn()
    times = [time.perf_counter() - start]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if repeat > 1:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times), peak


def layer_inputs(module) -> list[np.ndarray]:
    """int8 shards per rank, and scales as a calibrated layer has them: the dequantised
    output near unit scale, the int8 communication using most of its range."""
    inputs = random_args(entry_function(module, "main").function_type.inputs.data, W, seed=0)
    acc_std = np.sqrt(K) * 128 * 128 / 3
    inputs[2] = np.full(N, 1 / acc_std, dtype=np.float32).astype(nx.BF16)
    inputs[3] = np.full(N, 4 / 127, dtype=np.float32).astype(nx.BF16)
    inputs[4] = np.full(N, 4 * np.sqrt(W) / 127, dtype=np.float32).astype(nx.BF16)
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    module = parse_module(qmmar_context(), PROGRAM, "benchmark.mlir")
    inputs = layer_inputs(module)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    ai, bi = inputs[0][0].astype(np.int32), inputs[1][0].astype(np.int32)

    flop = 2.0 * M * K * N
    rows = [
        ("fused op, 8 ranks (exact int8 GEMM)", *timed(lambda: run_spmd(module, inputs, W), args.repeat), W),
        ("numpy f32 matmul x 8 (BLAS)", *timed(lambda: [a @ b for _ in range(W)], args.repeat), W),
        ("numpy int32 matmul x 1 (naive)", *timed(lambda: ai @ bi, 1), 1),
    ]
    print(f"world size {W}, m={M}, k={K}, n={N}, bf16 with communication scales; medians of {args.repeat}")
    print(f"| {'what':<38} | {'wall s':>8} | {'GFLOP/s':>8} | {'peak MiB':>8} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for name, seconds, peak, gemms in rows:
        print(f"| {name:<38} | {seconds:8.3f} | {flop * gemms / seconds / 1e9:8.1f} | {peak / 2**20:8.1f} |")
    fused, blas = rows[0][1] / rows[0][3], rows[1][1] / rows[1][3]
    print(f"fused / f32 BLAS throughput: {blas / fused:.2f} (goal: at least 0.5)")


if __name__ == "__main__":
    main()
