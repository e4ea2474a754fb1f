"""The driver's costs: qmmar-opt against stock xdsl-opt on the same file, and the in-process
communicator at large world sizes.

    python benchmarks/driver.py [--layers 40 160] [--world-sizes 8 128 1000] [--repeat 5]

qmmar-opt and xdsl-opt (which loads qmmar's dialects through the xdsl.universe entry point)
parse, verify and print the same model of fusion.py's transformer layers (25 ops a layer,
no pass), run alternately as separate processes; CPU is the child's user + system time.
Goal: qmmar-opt within 1.1x of xdsl-opt.  The world-size table runs a tiny int8-
communication chain (m = W rows: one row a rank) and an all-reduce of an [8] vector on W
ranks in this process: each rank's own data does not grow with W, what it receives does.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fusion import model

from qmmar.api import parse_module, random_inputs, run_spmd


def timed(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of `command`, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def opt_versus_xdsl(layers: list[int], repeat: int) -> None:
    bin_dir = Path(sys.executable).parent
    print(f"qmmar-opt FILE -o /dev/null vs xdsl-opt FILE -o /dev/null; medians of {repeat}, interleaved")
    columns = ["qmmar wall", "xdsl wall", "qmmar CPU", "xdsl CPU"]
    print(f"| {'ops':>6} | " + " | ".join(f"{c:>10}" for c in columns) + f" | {'CPU ratio':>9} |")
    print(f"|{'-' * 8}|{'-' * 12}|{'-' * 12}|{'-' * 12}|{'-' * 12}|{'-' * 11}|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in layers:
            path = Path(tmp) / f"model{n}.mlir"
            path.write_text(model(n))
            runs: dict[str, list[tuple[float, float]]] = {"qmmar-opt": [], "xdsl-opt": []}
            for _ in range(repeat):
                for tool in runs:
                    runs[tool].append(timed([str(bin_dir / tool), str(path), "-o", "/dev/null"]))
            (qw, qc), (xw, xc) = ((statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
                                  for r in runs.values())  # fmt: skip
            ops = 25 * n + 3
            print(f"| {ops:>6} | {qw:10.3f} | {xw:10.3f} | {qc:10.3f} | {xc:10.3f} | {qc / xc:8.2f}x |")
    print("goal: CPU ratio at most 1.10")


def chain(world_size: int) -> str:
    m, k, n, w = world_size, 16, 8, world_size
    t = {"x": f"tensor<{m}x{k}xi8>", "w": f"tensor<{k}x{n}xi8>", "acc": f"tensor<{m}x{n}xi32>",
         "h": f"tensor<{m}x{n}xbf16>", "s": f"tensor<{n}xbf16>", "q": f"tensor<{m}x{n}xi8>",
         "a": f"tensor<{w}x1x{n}xi8>", "p": f"tensor<1x{n}xi8>"}  # fmt: skip
    return f"""\
func.func @main(%x1: {t["x"]}, %w: {t["w"]}, %scale: {t["s"]}, %s1: {t["s"]}, %s2: {t["s"]}) -> ({t["h"]}, {t["s"]}) {{
  %acc = qmm.matmul %x1, %w : ({t["x"]}, {t["w"]}) -> {t["acc"]}
  %y = qmm.dequant %acc, %scale : ({t["acc"]}, {t["s"]}) -> {t["h"]}
  %q = qmm.quant %y, %s1 : ({t["h"]}, {t["s"]}) -> {t["q"]}
  %a = qmm.alltoall %q on "tp" world_size = {w} : {t["q"]} -> {t["a"]}
  %r = qmm.reducesum %a s1(%s1 : {t["s"]}) s2(%s2 : {t["s"]}) : {t["a"]} -> {t["p"]}
  %g = qmm.allgather %r on "tp" world_size = {w} : {t["p"]} -> {t["q"]}
  %out = qmm.dequant %g, %s2 : ({t["q"]}, {t["s"]}) -> {t["h"]}
  %h = qmm.all_reduce %s1 on "tp" world_size = {w} : {t["s"]}
  func.return %out, %h : {t["h"]}, {t["s"]}
}}
"""


def world_sizes(sizes: list[int], repeat: int) -> None:
    print(f"\nin-process run of a tiny chain (3 collectives + 1 agreement check); medians of {repeat}")
    print(f"| {'W':>5} | {'wall s':>8} | {'CPU s':>8} | {'wall / W ms':>11} |")
    print(f"|{'-' * 7}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    for w in sizes:
        module = parse_module(chain(w), f"w{w}.mlir")
        inputs = random_inputs(module, w, seed=0)
        walls, cpus = [], []
        for _ in range(repeat):
            start, cpu = time.perf_counter(), time.process_time()
            run_spmd(module, inputs, w)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        wall = statistics.median(walls)
        print(f"| {w:>5} | {wall:8.3f} | {statistics.median(cpus):8.3f} | {wall / w * 1e3:11.3f} |")


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
