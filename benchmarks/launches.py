"""Launches, host synchronisations and device allocations per call of the emitted C++ (issue
19), counted on the recording runtime (tests/cxx, AddressSanitizer build), not timed on an NPU:

    python benchmarks/launches.py [--runs 1000]

For each program: the one-shot entry `qmmar_<f>` (prepare, run, synchronise, release on every
call) beside `qmmar_<f>_run` after one `qmmar_<f>_prepare`; and the device bytes: the arena
beside its live peak and beside the sum of its slots (one allocation per buffer and workspace,
no reuse).  Host time per run is the mean over --runs runs of the recording runtime, which
logs every call to a file: it counts the host work of a run, not an NPU's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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
WORKSPACE = 4096  # what the recording runtime's first phases answer


def is_launch(entry: dict) -> bool:
    """An aclnn launch (a second phase), an HCCL collective, or an asynchronous copy or memset."""
    call = entry["call"]
    if call in ("HcclGetRankSize", "HcclGetCommName"):
        return False
    return "workspace" in entry or call.startswith(("Hccl", "aclrtMemcpyAsync", "aclrtMemsetAsync"))


def counts(entries: list[dict], calls: int) -> tuple[float, float, float]:
    launches = sum(is_launch(e) for e in entries)
    syncs = sum(e["call"] == "aclrtSynchronizeStream" for e in entries)
    mallocs = sum(e["call"] == "aclrtMalloc" for e in entries)
    return launches / calls, syncs / calls, mallocs / calls


def measure(name: str, path: str, runs: int, workdir: Path) -> list[list[str]]:
    module = parse_module(qmmar_context(), (ROOT / path).read_text(), path)
    fuse(module, FuseOptions())
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)
    LowerQmmToAclnnPass().apply(qmmar_context(), module)
    program = Program.build(module, workdir)
    (fn,) = [op for op in module.walk() if isinstance(op, func.FuncOp)]
    one_shot = program.run()
    prepared = program.run(runs="3")
    log = [e["call"] for e in prepared.log]
    inside = prepared.log[log.index("capture_begin") + 1 : log.index("capture_end")]
    plan = memory_plan(fn)
    mallocs = prepared.calls("aclrtMalloc")
    arena = mallocs[-1]["size"] if plan.slots else 0
    slots = sum(WORKSPACE if s.query is not None else s.static_bytes() or 0 for s in plan.slots)
    peak = plan.live_peak(WORKSPACE, ARENA_ALIGNMENT)
    started = time.perf_counter()
    program.run(runs="1")
    once = time.perf_counter() - started
    started = time.perf_counter()
    program.run(runs=str(runs))
    per_run = (time.perf_counter() - started - once) / max(runs - 1, 1)
    rows = []
    for label, (launches, syncs, allocs) in (("one-shot qmmar_f", counts(one_shot.log, 1)),
                                             ("run after prepare", counts(inside, 3))):  # fmt: skip
        rows.append([name, label, f"{launches:g}", f"{syncs:g}", f"{allocs:g}"])
    rows[1] += [f"{arena:,}", f"{peak:,}" if peak is not None else "?", f"{slots:,}", f"{per_run * 1e6:.0f} us"]
    rows[0] += ["", "", "", ""]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs timed after one prepare")
    args = parser.parse_args()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, path) in enumerate(PROGRAMS.items()):
            workdir = Path(tmp) / str(i)
            workdir.mkdir()
            rows += measure(name, path, args.runs, workdir)
    print(table(["program", "entry", "launches", "host syncs", "aclrtMalloc", "arena B",
                 f"live peak B ({ARENA_ALIGNMENT} B slots)", "sum of slots B", "host time/run"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
