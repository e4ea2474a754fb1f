"""A 16-layer model of unfused int8 chains in the interpreter: time and peak RSS per world size.

    python benchmarks/model.py [--world-sizes 1 2 4 8] [--repeat 3] [--no-torch]

Each layer: qmm.matmul (m = 512, k = n = 4096), dequant, residual add, quant, all-to-all,
reduce-sum with communication scales, all-gather, dequant, and the quant that feeds the next
layer's matmul: 9 ops.  Every rank has its own 16 weights, so the inputs grow with the world
size (2 GiB at 8 ranks).  Each world size runs in a child process, which makes its inputs
(int8 drawn directly, no wider temporary), loads the GEMM (torch, if used) and then times
`run_spmd`; its peak RSS covers all of that.  Goal at W=8: peak RSS at most 1.5x the inputs.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import block_torch_if, chain_ops, chain_types, median_child, python_child, table, timed

LAYERS, M, K, N = 16, 512, 4096, 4096


def program(world: int) -> str:
    t = chain_types(M, K, N, world)
    params = [f"%x: {t['x']}", f"%h: {t['h']}", *(f"%w{i}: {t['w']}" for i in range(LAYERS))]
    params += [f"%{s}: {t['s']}" for s in ("sc", "s1", "s2", "sa")]
    ops, x, h = [], "%x", "%h"
    for i in range(LAYERS):
        ops += chain_ops(i, x, f"%w{i}", h, t, world)
        ops.append(f"%n{i} = qmm.quant %h{i}, %sa : ({t['h']}, {t['s']}) -> {t['x']}")  # the next layer's input
        x, h = f"%n{i}", f"%h{i}"
    body = "\n  ".join([*ops, f"func.return {h} : {t['h']}"])
    return f"func.func @main({', '.join(params)}) -> {t['h']} {{\n  {body}\n}}\n"


def inputs(world: int) -> list:
    """Per-rank int8 activations and weights; bf16 residual and calibrated scales."""
    import numpy as np

    from qmmar.dialects import numerics as nx

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (world, M, K), dtype=np.int8)
    h = nx.round_to(rng.standard_normal((M, N), dtype=np.float32), nx.BF16)
    weights = [rng.integers(-128, 128, (world, K, N), dtype=np.int8) for _ in range(LAYERS)]
    scales = [3 / (np.sqrt(K) * 128 * 128), 4 / 127, 4 * np.sqrt(world) / 127, 4 / 127]
    return [x, h, *weights, *(np.full(N, s, dtype=np.float32).astype(nx.BF16) for s in scales)]


def child(world: int, repeat: int) -> dict:
    from qmmar.context import qmmar_context
    from qmmar.interpreter.gemm import exact_matmul
    from qmmar.interpreter.spmd import run_spmd
    from qmmar.source import parse_module

    module = parse_module(qmmar_context(), program(world), "model.mlir")
    args = inputs(world)
    exact_matmul(args[0][0], args[2][0], None, False)  # loads the GEMM (torch, if it is used) outside the timing
    timing = timed(lambda: run_spmd(module, args, world), repeat)
    return {"wall": timing.wall, "cpu": timing.cpu, "inputs": sum(a.nbytes for a in args),
            "torch": sys.modules.get("torch") is not None}  # fmt: skip


def section(worlds, repeat: int, no_torch: bool, python: str = sys.executable):
    """The table and the goals' figures: (what, figure, goal)."""
    rows, goals = [], []
    flags = ["--no-torch"] if no_torch else []
    for world in worlds:
        run = median_child([python_child("model.py", "--world-sizes", str(world), "--repeat", str(repeat),
                                         *flags, python=python)])  # fmt: skip
        report = run.report()
        ratio = run.peak_rss / report["inputs"]
        gemm = "torch int8" if report["torch"] else "f32 BLAS"
        rows.append((world, gemm, report["wall"], report["cpu"], report["inputs"] / 2**30, run.peak_rss / 2**30, ratio))
        if world == 8:
            goals.append(("16-layer model at W=8: peak RSS / inputs", f"{ratio:.2f}", "at most 1.5"))
            goals.append(("16-layer model at W=8: wall s, CPU s", f"{report['wall']:.1f}, {report['cpu']:.1f}",
                          "at most half of the time before (README)"))  # fmt: skip
    header = f"{LAYERS}-layer unfused int8 chains, m={M}, k=n={K}; medians of {repeat} runs, one child per W"
    body = table(("W", "GEMM", "run wall s", "run CPU s", "inputs GiB", "peak RSS GiB", "RSS / inputs"), rows)
    return f"{header}\n{body}", goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true", help="run as on a machine without torch")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        block_torch_if(args.no_torch)
        print(json.dumps(child(args.world_sizes[0], args.repeat)))
        return
    text, goals = section(args.world_sizes, args.repeat, args.no_torch)
    print(text)
    for what, figure, goal in goals:
        print(f"{what}: {figure} (goal: {goal})")


if __name__ == "__main__":
    main()
