"""Shared test plumbing: parse MLIR text, run it on ranks, compare bit for bit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import numpy as np
import tomllib
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from qmmar.context import qmmar_context
from qmmar.interpreter.spmd import run_spmd
from qmmar.passes.unfuse_mc2 import UnfuseMc2Pass
from qmmar.source import parse_module, verify

ROOT = Path(__file__).resolve().parent.parent


def parse(text: str, name: str = "test.mlir") -> ModuleOp:
    return parse_module(qmmar_context(), text, name)


def run(module: ModuleOp, inputs, world_size: int) -> list[np.ndarray]:
    return run_spmd(module, inputs, world_size)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bits (of 0-d and strided arrays too)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


EXTREME_BITS = {  # +-0, +-smallest subnormal, largest subnormal, smallest normal, +-max, +-inf, NaNs
    # (quiet, signalling, negative, with payloads), 1
    "f16": [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE01,
            0x7FFF, 0x3C00],
    "bf16": [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1,
             0x7FFF, 0x3F80],
}  # fmt: skip
"""The 16-bit floats' extreme values, as bits."""


def ops_named(module: ModuleOp, prefix: str) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith(prefix)]


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail, rather than hang, when the body spends more than `seconds` of this process's CPU
    time (main thread only).  CPU time, not wall time: a loaded machine does not stretch it,
    and a body that loops forever spends it."""

    def expire(*_: object) -> None:
        raise TimeoutError(f"did not return within {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
"""Every console script qmmar installs, and its entry point: {"qmmar-opt": "qmmar.cli.opt:main", ...}."""


def tool(
    name: str, *args: object, cwd=None, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run one of qmmar's tools (`SCRIPTS`) as a script would (text output).  qmmar-run runs
    with `--progress none` unless told otherwise: its automatic progress line appears after
    two seconds of wall time, which a loaded machine reaches in any run."""
    module = SCRIPTS[name].partition(":")[0]
    if name == "qmmar-run" and "--progress" not in map(str, args):
        args = (*args, "--progress", "none")
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], input=stdin,
                          capture_output=True, cwd=cwd, timeout=timeout)  # fmt: skip
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def mpi_computes_the_threaded_bits(workdir: Path, unfused: str, fused: str, world_size: int, seed: int) -> None:
    """qmmar-run of `fused` under mpiexec (one process per rank) gives, bit for bit, what the
    threaded run of `unfused` gives, on the same random inputs (qmmar-compare's verdict)."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    (workdir / "unfused.mlir").write_text(unfused)
    (workdir / "fused.mlir").write_text(fused)
    qmmar_run = [sys.executable, "-m", "qmmar.cli.run", "--progress", "none", "--random-inputs", str(seed)]
    jobs = {"threads": [*qmmar_run, "unfused.mlir", "-w", str(world_size), "-o", "threads.npz"],
            "mpi": [str(mpiexec), "-n", str(world_size), *qmmar_run, "fused.mlir", "-o", "mpi.npz"]}  # fmt: skip
    for name, job in jobs.items():
        done = subprocess.run(job, cwd=workdir, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (name, done.stderr)
    compare = [sys.executable, "-m", "qmmar.cli.compare", "threads.npz", "mpi.npz"]
    done = subprocess.run(compare, cwd=workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "identical" in done.stdout, done.stdout + done.stderr


def npu_standin_calls() -> dict:
    """What qmmar's NPU kernels called, as tests/npu_standin.py records it in a process of its own
    (its stand-in torch_npu renames the PrivateUse1 device for good)."""
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "npu_standin.py")], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    found: dict = json.loads(r.stdout)
    return found


def printed(module: ModuleOp) -> str:
    out = StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def unfuse(module: ModuleOp) -> ModuleOp:
    """unfuse-mc2 in place; the result must verify."""
    UnfuseMc2Pass().apply(qmmar_context(), module)
    verify(module)
    return module
