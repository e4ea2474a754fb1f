"""Launches, host synchronisations, first phases, device allocations and host time per call of
the emitted C++ (issue 19), counted and timed on the recording runtime (tests/cxx,
AddressSanitizer build), not on an NPU:

    python benchmarks/launches.py [--runs 1000] [--before REV]

For each program, "before" is the one-shot entry `qmmar_<f>` of the code that revision REV emits
(default: where this branch left main, `git merge-base HEAD main`; a git worktree of it, its
package on PYTHONPATH; it must have the prepare/run entry points the driver also calls, issue 19's
C ABI), called once per call as a caller of it would; "after" is this tree's
`qmmar_<f>_run` after one `qmmar_<f>_prepare`. Device bytes: what a call allocates (before) or
what prepare allocated once (after), beside the live peak: the kept buffers and the most arena
bytes live at once (the recording runtime's workspaces are 4096 B), and in parentheses with each
slot a multiple of the alignment. Host time: the median over --runs calls of the call alone (clock_gettime in the
driver), wall and process CPU, with the load average before and after; the recording runtime
logs every call to a file, so it measures host work, not an NPU's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import table  # noqa: E402
from xdsl.dialects import func  # noqa: E402

from cxx.harness import Program  # noqa: E402
from qmmar.context import qmmar_context  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse  # noqa: E402
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass  # noqa: E402
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass  # noqa: E402
from qmmar.source import parse_module  # noqa: E402
from qmmar.targets.aclnn_cpp import memory_plan  # noqa: E402
from qmmar.targets.prelude import ARENA_ALIGNMENT  # noqa: E402

PROGRAMS = {"two_layers": "examples/two_layers.mlir", "four decode layers": "examples/decode_layers.mlir"}
PIPELINE = "fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn,lower-qmm-to-aclnn"
WORKSPACE = 4096  # what the recording runtime's first phases answer
SYNCS = ("aclrtSynchronizeStream", "aclrtSynchronizeStreamWithTimeout")
WAIT_STAND_IN = """\
// Code emitted before the bounded waits has no qmmar_sync_timeout: the driver's wait is unbounded.
#include <cstdint>
extern "C" void qmmar_set_sync_timeout(int32_t) noexcept {}
extern "C" int32_t qmmar_sync_timeout(void) noexcept { return -1; }
"""


def is_launch(entry: dict) -> bool:
    """An aclnn launch (a second phase), an HCCL collective, or an asynchronous copy or memset."""
    call = entry["call"]
    if call in ("HcclGetRankSize", "HcclGetCommName"):
        return False
    return "workspace" in entry or call.startswith(("Hccl", "aclrtMemcpyAsync", "aclrtMemsetAsync"))


def counts(entries: list[dict], calls: int) -> list[str]:
    """Launches, host syncs, first phases, aclrtMalloc and bytes allocated, per call."""
    per_call = [sum(is_launch(e) for e in entries), sum(e["call"] in SYNCS for e in entries),
                sum(e["call"].endswith("GetWorkspaceSize") for e in entries),
                sum(e["call"] == "aclrtMalloc" for e in entries),
                sum(e["size"] for e in entries if e["call"] == "aclrtMalloc")]  # fmt: skip
    return [f"{n // calls:,}" if n % calls == 0 else f"{n / calls:,.2f}" for n in per_call]


def timed(program: Program, workdir: Path, **env: str) -> list[str]:
    """Median wall and CPU time, in us, of each call the driver timed."""
    times = workdir / "times.txt"
    run = program.run(times=str(times), **env)
    assert run.status == 0 and run.clean(), (run.violations, run.stderr)
    walls, cpus = zip(*(map(int, line.split()) for line in times.read_text().splitlines()), strict=True)
    return [f"{statistics.median(walls) / 1e3:,.1f}", f"{statistics.median(cpus) / 1e3:,.1f}"]


def before_package(rev: str, workdir: Path) -> Path:
    """The qmmar package of revision `rev`, as the editable install lays it out: a git worktree
    of it and a link tree (qmmar.dialects = dialects/, qmmar.passes = passes/, the rest =
    qmmar_compiler/)."""
    tree = workdir / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev], check=True)
    package = workdir / "package" / "qmmar"
    package.mkdir(parents=True)
    for child in [*(tree / "qmmar_compiler").iterdir(), tree / "dialects", tree / "passes"]:
        (package / child.name).symlink_to(child)
    return package.parent


def before_program(package: Path, path: str, functions: list[func.FuncOp], workdir: Path) -> Program:
    """The program revision `rev` emits for `path` (its own qmmar-opt)."""
    env = os.environ | {"PYTHONPATH": str(package)}
    opt = [sys.executable, "-m", "qmmar.cli.opt", str(ROOT / path), "-p", PIPELINE, "-t"]
    outputs = [subprocess.run([*opt, target], env=env, capture_output=True, text=True, check=True).stdout
               for target in ("aclnn-cpp", "aclnn-cpp{header=true}")]  # fmt: skip
    (workdir / "wait_stand_in.cpp").write_text(WAIT_STAND_IN)
    return Program.compile(*outputs, functions, workdir, extra=[workdir / "wait_stand_in.cpp"])


def measure(name: str, path: str, runs: int, package: Path, workdir: Path) -> list[list[str]]:
    module = parse_module(qmmar_context(), (ROOT / path).read_text(), path)
    fuse(module, FuseOptions())
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    (fn,) = [op for op in module.walk() if isinstance(op, func.FuncOp)]
    (workdir / "before").mkdir()
    (workdir / "after").mkdir()
    before = before_program(package, path, [fn], workdir / "before")
    after = Program.build(module, workdir / "after")
    one_shot, prepared = before.run(), after.run(runs="3")
    calls = [e["call"] for e in prepared.log]
    inside = prepared.log[calls.index("capture_begin") + 1 : calls.index("capture_end")]
    mallocs = [e["size"] for e in prepared.log[: calls.index("capture_begin")] if e["call"] == "aclrtMalloc"]
    plan = memory_plan(fn)
    least, aligned = plan.live_peak(WORKSPACE), plan.live_peak(WORKSPACE, ARENA_ALIGNMENT)
    kept = sum(mallocs[:-1] if plan.slots else mallocs)  # prepare allocates the kept buffers, then the arena
    peak = f"{kept + least:,} ({kept + aligned:,})" if least is not None and aligned is not None else "?"
    return [[name, "before: one-shot", *counts(one_shot.log, 1), peak,
             *timed(before, workdir / "before", calls=str(runs))],
            [name, "after: run after prepare", *counts(inside, 3)[:4], f"0 ({sum(mallocs):,} at prepare)", peak,
             *timed(after, workdir / "after", runs=str(runs))]]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="calls timed, before and after")
    parser.add_argument(
        "--before", help="the revision whose one-shot entry is 'before' (default: HEAD's merge base with main)"
    )
    args = parser.parse_args()
    rev = args.before or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True,
                                        text=True, check=True).stdout.strip()  # fmt: skip
    load = os.getloadavg()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        package = before_package(rev, Path(tmp))
        try:
            for i, (name, path) in enumerate(PROGRAMS.items()):
                workdir = Path(tmp) / str(i)
                workdir.mkdir()
                rows += measure(name, path, args.runs, package, workdir)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(tmp) / "tree")],
                           check=True)  # fmt: skip
    print(f"before: {rev[:12]}'s one-shot entry; after: this tree's run after prepare; "
          f"median of {args.runs} calls each")  # fmt: skip
    print(table(["program", "entry", "launches", "host syncs", "first phases", "aclrtMalloc", "device B allocated",
                 f"live peak B ({ARENA_ALIGNMENT} B slots)", "wall us", "CPU us"], rows))  # fmt: skip
    print(
        f"load average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in load)}; "
        f"after {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)"
    )


if __name__ == "__main__":
    main()
