"""The driver's costs: qmmar-opt against stock xdsl-opt on the same file, and the in-process
communicator at large world sizes.

    python benchmarks/driver.py [--layers 40 160] [--world-sizes 8 128 1000] [--repeat 5]

qmmar-opt and xdsl-opt (which loads qmmar's dialects through the xdsl.universe entry point)
parse, verify and print the same model of layers.py's transformer layers (25 ops a layer,
no pass), run alternately as separate processes; CPU is the child's user + system time.
Goal: qmmar-opt within 1.1x of xdsl-opt.  The world-size table runs a tiny int8-
communication chain (m = W rows: one row a rank) and an all-reduce of an [8] vector on W
ranks in this process: each rank's own data does not grow with W, what it receives does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import chain_ops, chain_types, median_child, run_child, table, timed
from layers import model

from qmmar.api import parse_module, random_inputs, run_spmd


def opt_versus_xdsl(layers: list[int], repeat: int) -> None:
    bin_dir = Path(sys.executable).parent
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in layers:
            path = Path(tmp) / f"model{n}.mlir"
            path.write_text(model(n))
            runs: dict[str, list] = {"qmmar-opt": [], "xdsl-opt": []}
            for _ in range(repeat):  # interleaved, so that both see the same machine
                for tool, done in runs.items():
                    done.append(run_child([str(bin_dir / tool), str(path), "-o", "/dev/null"]))
            q, x = (median_child(r) for r in runs.values())
            rows.append([25 * n + 3, q.wall, x.wall, q.cpu, x.cpu, f"{q.cpu / x.cpu:.2f}x"])
    print(f"qmmar-opt FILE -o /dev/null vs xdsl-opt FILE -o /dev/null; medians of {repeat}, interleaved")
    print(table(["ops", "qmmar wall", "xdsl wall", "qmmar CPU", "xdsl CPU", "CPU ratio"], rows))
    print("goal: CPU ratio at most 1.10")


def chain(world_size: int) -> str:
    """One int8-communication chain with one row a rank, and an all-reduce of its s1."""
    t = chain_types(world_size, 16, 8, world_size)
    ops = chain_ops(0, "%x1", "%w", "%res", t, world_size)
    ops.append(f'%r = qmm.all_reduce %s1 on "tp" world_size = {world_size} : {t["s"]}')
    body = "\n".join(f"  {op}" for op in ops)
    results = f"{t['h']}, {t['s']}"
    return (f"func.func @main(%x1: {t['x']}, %w: {t['w']}, %res: {t['h']}, %sc: {t['s']}, %s1: {t['s']}, "
            f"%s2: {t['s']}) -> ({results}) {{\n{body}\n  func.return %h0, %r : {results}\n}}\n")  # fmt: skip


def world_sizes(sizes: list[int], repeat: int) -> None:
    rows = []
    for w in sizes:
        module = parse_module(chain(w), f"w{w}.mlir")
        inputs = random_inputs(module, w, seed=0)
        t = timed(lambda: run_spmd(module, inputs, w), repeat)  # noqa: B023  # called right here
        rows.append([w, t.wall, t.cpu, t.wall / w * 1e3])
    print(f"\nin-process run of a tiny chain (3 collectives + 1 agreement check); medians of {repeat}")
    print(table(["W", "wall s", "CPU s", "wall / W ms"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[40, 160])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[8, 128, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    opt_versus_xdsl(args.layers, args.repeat)
    world_sizes(args.world_sizes, args.repeat)


if __name__ == "__main__":
    main()
