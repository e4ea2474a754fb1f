"""Every speed and memory figure of qmmar in one run, with the goals they are held to.

    python benchmarks/run_all.py            # the whole table: several minutes on 2 cores
    python benchmarks/run_all.py --quick    # fewer sizes and repeats: about two minutes
    python benchmarks/run_all.py --only fused model

Sections: the fused op in the interpreter against f32 BLAS and torch's int8 GEMM, with and
without torch (fused_op.py); the 16-layer model's time and peak RSS at W = 1, 2, 4, 8
(model.py); the fusion pass against parsing, qmmar-opt against xdsl-opt, and memory per op
(compile_time.py).  Times are medians of repeated runs, CPU time beside wall time: on a
shared machine wall time also counts what other processes took.  `--python` runs the
interpreter sections with another installation (for example a baseline checkout's venv).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import compile_time
import fused_op
import model
from common import table

SECTIONS = ("fused", "model", "compile")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    units = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16") if f in flags]
    cores = len(os.sched_getaffinity(0))
    return f"{cpu}, {cores} cores, int8 units: {', '.join(units) or 'none'}; Python {platform.python_version()}"


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeat", type=int, help="runs per figure (default 5 for the fused op, else 3; quick: 1)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the interpreter sections")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)

    start = time.perf_counter()
    print(f"{machine()}\n{load()} at the start\n")
    goals = []
    if "fused" in args.only:
        text, section_goals = fused_op.section(args.repeat or (2 if args.quick else 5), args.python)
        print(text + "\n")
        goals += section_goals
    if "model" in args.only:
        worlds = [1, 8] if args.quick else [1, 2, 4, 8]
        text, section_goals = model.section(worlds, repeat, False, args.python)
        print(text + "\n")
        goals += section_goals
    if "compile" in args.only:
        text, section_goals = compile_time.section([250, 1000] if args.quick else [1000, 4000], repeat)
        print(text + "\n")
        goals += section_goals
    print(table(("goal", "figure", "target"), goals))
    print(f"\n{load()} at the end; {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
