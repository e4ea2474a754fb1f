"""The compiler's own cost on a model of many 8-op chains: the fusion pass against parsing,
qmmar-opt against stock xdsl-opt on the same file, and memory per op against mlir-opt.

    python benchmarks/compile_time.py [--chains 1000 4000] [--repeat 3]

Chain i: qmm.matmul, dequant, add (the previous chain's output as residual), quant,
all-to-all, reduce-sum, all-gather, dequant: every chain is legal and fused.  Goals: the
pass at most 10% of parsing and linear in the model's size; qmmar-opt at most 1.1x xdsl-opt
(both run the pass on the same file, parse to print).  Memory per op: (peak RSS at the largest size - at the smallest) /
(ops between them), each tool reading the generic form and printing it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from common import chain_ops, chain_types, median_child, python_child, run_child, table

M, H, W = 64, 128, 8
PASS = "fuse-quant-matmul-all-reduce"


def chains(n: int) -> str:
    t = chain_types(M, H, H, W)
    lines = [f"func.func @model(%x: {t['x']}, %w: {t['w']}, %h: {t['h']}, %sc: {t['s']}, %s1: {t['s']}, "
             f"%s2: {t['s']}) -> {t['h']} {{"]  # fmt: skip
    h = "%h"
    for i in range(n):
        lines += [f"  {op}" for op in chain_ops(i, "%x", "%w", h, t, W)]
        h = f"%h{i}"
    lines += [f"  func.return {h} : {t['h']}", "}"]
    return "\n".join(lines) + "\n"


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def child(custom: str, generic: str, n: int, repeat: int) -> dict:
    """Median (wall, CPU) of parsing the file `custom` and of fusing the parsed module; the
    module written in MLIR's generic form (what mlir-opt reads) to `generic`, and its ops."""
    from xdsl.printer import Printer

    from qmmar.context import qmmar_context
    from qmmar.passes.fuse_quant_matmul_all_reduce import fuse
    from qmmar.source import LocatingParser

    with open(custom) as f:
        text = f.read()
    parse, fused = [], []
    for _ in range(repeat):
        t0 = _clock()
        module = LocatingParser(qmmar_context(), text, "chains.mlir").parse_module()
        t1 = _clock()
        verdicts = fuse(module)
        t2 = _clock()
        assert sum(v.rewritten for v in verdicts) == n, "every chain must fuse"
        parse.append((t1[0] - t0[0], t1[1] - t0[1]))
        fused.append((t2[0] - t1[0], t2[1] - t1[1]))
    module = LocatingParser(qmmar_context(), text, "chains.mlir").parse_module()
    with open(generic, "w") as f:
        Printer(stream=f, print_generic_format=True).print_op(module)
    medians = {name: [statistics.median(x[i] for x in runs) for i in (0, 1)]
               for name, runs in (("parse", parse), ("pass", fused))}  # fmt: skip
    return {**medians, "ops": sum(1 for _ in module.walk())}


def tool(name: str) -> str | None:
    """An executable: beside this Python first (the venv's), then on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else shutil.which(name)


def section(sizes, repeat: int):
    """The tables, their notes, and the goals' figures: (what, figure, goal).  Everything that
    parses runs in a child: this process stays small, so children's peak RSS is their own."""
    rows, opt_rows, goals = [], [], []
    rss: dict[str, dict[int, int]] = {}
    pass_cpu: dict[int, float] = {}
    op_counts: dict[int, int] = {}
    mlir_opt = tool("mlir-opt-19") or tool("mlir-opt")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            custom, generic = os.path.join(tmp, f"c{n}.mlir"), os.path.join(tmp, f"g{n}.mlir")
            with open(custom, "w") as f:
                f.write(chains(n))
            t = python_child("compile_time.py", custom, generic, str(n), str(repeat)).report()
            op_counts[n], pass_cpu[n] = t["ops"], t["pass"][1]
            ratio = t["pass"][1] / t["parse"][1]
            rows.append((n, t["ops"], *t["parse"], *t["pass"], f"{ratio:.1%}"))
            goals.append((f"pass / parse at {n} chains (CPU)", f"{ratio:.1%}", "at most 10%"))
            runs = {}
            for exe in ("qmmar-opt", "xdsl-opt"):
                cmd = [tool(exe) or exe, custom, "-p", PASS, "-o", os.devnull]
                runs[exe] = median_child([run_child(cmd) for _ in range(repeat)])
            q, x = runs["qmmar-opt"], runs["xdsl-opt"]
            opt_rows.append((n, q.wall, q.cpu, x.wall, x.cpu, q.wall / x.wall, q.cpu / x.cpu))
            goals.append((f"qmmar-opt / xdsl-opt at {n} chains (wall, CPU)",
                          f"{q.wall / x.wall:.2f}, {q.cpu / x.cpu:.2f}", "at most 1.1"))  # fmt: skip
            readers = {"qmmar-opt": [tool("qmmar-opt") or "qmmar-opt", generic, "-o", os.devnull]}
            if mlir_opt:
                readers["mlir-opt"] = [mlir_opt, "--allow-unregistered-dialect", generic, "-o", os.devnull]
            for name, cmd in readers.items():
                rss.setdefault(name, {})[n] = run_child(cmd).peak_rss
    small, large = min(sizes), max(sizes)
    if large == 4 * small:
        growth = pass_cpu[large] / pass_cpu[small]
        goals.append((f"pass CPU t({large}) / t({small})", f"{growth:.2f}", "at most 4.5 (linear)"))
    per_op = {name: (r[large] - r[small]) / (op_counts[large] - op_counts[small]) for name, r in rss.items()}
    memory = ", ".join(f"{name} {b / 1024:.2f} KiB" for name, b in per_op.items()) or "(one size only)"
    if not mlir_opt:
        memory += " (no mlir-opt on PATH)"
    header = f"{'/'.join(map(str, sizes))} chains of 8 ops (m={M}, k=n={H}, W={W}); medians of {repeat}"
    body = table(("chains", "ops", "parse wall s", "parse CPU s", "pass wall s", "pass CPU s", "pass/parse CPU"), rows)
    opt_body = table(("chains", "qmmar-opt wall s", "CPU s", "xdsl-opt wall s", "CPU s", "ratio wall", "ratio CPU"),
                     opt_rows)  # fmt: skip
    notes = f"memory per op, reading and printing the generic form ({small} -> {large} chains): {memory}"
    return "\n".join([header, body, "", f"-p {PASS}, same file, parse to print:", opt_body, notes]), goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("CUSTOM", "GENERIC", "N", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        custom, generic, n, repeat = args.child
        print(json.dumps(child(custom, generic, int(n), int(repeat))))
        return
    text, goals = section(args.chains, args.repeat)
    print(text)
    for what, figure, goal in goals:
        print(f"{what}: {figure} (goal: {goal})")


if __name__ == "__main__":
    main()
