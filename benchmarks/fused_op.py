"""The fused op in the interpreter against f32 BLAS and the int8 path, with and without torch.

    python benchmarks/fused_op.py [--repeat 5]

mc2.quant_matmul_all_reduce at world size 8, m = 1024, k = 4096, n = 1024, bf16 with
communication scales: every rank's exact int8 GEMM, dequant, quant, all-to-all, reduce,
all-gather.  Beside it, in the same process: numpy f32 matmul of the same shapes once per
rank (the BLAS roofline), torch._int_mm once per rank (the int8 units' roofline), and the
two alternated (do their thread pools get in each other's way?).  Each configuration runs
in a child process: one with torch, one where `import torch` fails.  GFLOP/s count
2*m*k*n per rank.  Exact: rank 0's GEMM equals f64 BLAS (exact for int8 products), and both
children's outputs have the same bits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from common import block_torch_if, median_child, python_child, table, thread_settings, timed

W, M, K, N = 8, 1024, 4096, 1024
GFLOP = 2.0 * M * K * N * W / 1e9
BLAS, INT_MM, ALTERNATED = "f32 BLAS matmul x 8", "torch._int_mm x 8", "f32 BLAS, _int_mm alternated x 8"
PROGRAM = f"""
func.func @main(%x1: tensor<{M}x{K}xi8>, %x2: tensor<{K}x{N}xi8>, %s: tensor<{N}xbf16>,
                %s1: tensor<{N}xbf16>, %s2: tensor<{N}xbf16>) -> tensor<{M}x{N}xbf16> {{
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<{N}xbf16>)
       comm_quant_scale_1(%s1 : tensor<{N}xbf16>) comm_quant_scale_2(%s2 : tensor<{N}xbf16>)
       on "tp" world_size = {W} : tensor<{M}x{K}xi8>, tensor<{K}x{N}xi8> -> tensor<{M}x{N}xbf16>
  func.return %o : tensor<{M}x{N}xbf16>
}}
"""


def layer_inputs():
    """int8 shards per rank, and scales as a calibrated layer has them: the dequantised
    output near unit scale, the int8 communication using most of its range."""
    import numpy as np

    from qmmar.dialects import numerics as nx

    rng = np.random.default_rng(0)
    x1 = rng.integers(-128, 128, (W, M, K), dtype=np.int8)
    x2 = rng.integers(-128, 128, (W, K, N), dtype=np.int8)
    acc_std = np.sqrt(K) * 128 * 128 / 3
    scales = [1 / acc_std, 4 / 127, 4 * np.sqrt(W) / 127]
    return [x1, x2, *(np.full(N, s, dtype=np.float32).astype(nx.BF16) for s in scales)]


def child(repeat: int) -> dict:
    import numpy as np

    from qmmar.context import qmmar_context
    from qmmar.interpreter.gemm import exact_matmul
    from qmmar.interpreter.spmd import run_spmd
    from qmmar.source import parse_module

    module = parse_module(qmmar_context(), PROGRAM, "fused_op.mlir")
    inputs = layer_inputs()
    x1, x2 = inputs[0], inputs[1]
    out = run_spmd(module, inputs, W)  # warm-up: loads torch when the GEMM uses it
    exact = np.array_equal(exact_matmul(x1[0], x2[0], None, False), x1[0].astype(np.float64) @ x2[0].astype(np.float64))
    rows = {"fused op": timed(lambda: run_spmd(module, inputs, W), repeat)}
    a, b = x1.astype(np.float32), x2.astype(np.float32)
    rows[BLAS] = timed(lambda: [a[r] @ b[r] for r in range(W)], repeat)
    if sys.modules.get("torch") is not None:  # the GEMM loaded it
        import torch

        ta, tb = torch.from_numpy(x1), torch.from_numpy(x2)
        rows[INT_MM] = timed(lambda: [torch._int_mm(ta[r], tb[r]) for r in range(W)], repeat)
        rows[ALTERNATED] = timed(lambda: [(a[r] @ b[r], torch._int_mm(ta[r], tb[r])) for r in range(W)], repeat)
    return {
        "rows": {name: [t.wall, t.cpu] for name, t in rows.items()},
        "exact": bool(exact),
        "output": hashlib.sha256(out[0].tobytes()).hexdigest(),
        "threads": thread_settings(),
    }


def section(repeat: int, python: str = sys.executable) -> tuple[str, list[tuple[str, str, str]]]:
    """The table, its notes, and the goals' figures: (what, figure, goal)."""
    rows, notes, goals = [], [], []
    reports = {}
    for label, flags in (("torch", []), ("no torch", ["--no-torch"])):
        run = median_child([python_child("fused_op.py", "--repeat", str(repeat), *flags, python=python)])
        reports[label] = report = run.report()
        t = report["rows"]
        for name, (wall, cpu) in t.items():
            if name == ALTERNATED:  # two GEMMs a rank: no throughput of its own
                rows.append((label, name, wall, cpu, "", "", ""))
            else:
                rows.append((label, name, wall, cpu, GFLOP / wall, t[BLAS][0] / wall, t[BLAS][1] / cpu))
        fused = t["fused op"]
        goal = "at least 2" if label == "torch" else "at least 0.66"
        goals.append((f"fused op / f32 BLAS throughput, {label} (wall, CPU)",
                      f"{t[BLAS][0] / fused[0]:.2f}, {t[BLAS][1] / fused[1]:.2f}", goal))  # fmt: skip
        goals.append((f"fused op bit-exact, {label}", str(report["exact"]), "True"))
        if ALTERNATED in t:
            alone = t[BLAS][1] + t[INT_MM][1]
            notes.append(f"alternating f32 BLAS and _int_mm: {t[ALTERNATED][1] / alone:.2f}x their CPU time apart")
        notes.append(f"{label}: peak RSS {run.peak_rss / 2**20:.0f} MiB; threads: "
                     + ", ".join(f"{k} {v}" for k, v in report["threads"].items()))  # fmt: skip
    same = reports["torch"]["output"] == reports["no torch"]["output"]
    goals.append(("fused op, torch and no torch: same output bits", str(same), "True"))
    header = f"fused op at W={W}, m={M}, k={K}, n={N}, bf16, communication scales; medians of {repeat}"
    body = table(("run", "what", "wall s", "CPU s", "GFLOP/s", "x f32 BLAS (wall)", "x f32 BLAS (CPU)"), rows)
    return "\n".join([header, body, *notes]), goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-torch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        block_torch_if(args.no_torch)
        print(json.dumps(child(args.repeat)))
        return
    text, goals = section(args.repeat)
    print(text)
    for what, figure, goal in goals:
        print(f"{what}: {figure} (goal: {goal})")


if __name__ == "__main__":
    main()
