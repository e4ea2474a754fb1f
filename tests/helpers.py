"""Shared test plumbing: parse MLIR text, run it on ranks, compare bit for bit."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from qmmar.context import qmmar_context
from qmmar.interpreter.spmd import run_spmd
from qmmar.source import parse_module


def parse(text: str, name: str = "test.mlir") -> ModuleOp:
    return parse_module(qmmar_context(), text, name)


def run(module: ModuleOp, inputs, world_size: int) -> list[np.ndarray]:
    return run_spmd(module, inputs, world_size)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def ops_named(module: ModuleOp, prefix: str) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith(prefix)]


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail, rather than hang, when the body does not return in time (main thread only)."""

    def expire(*_: object) -> None:
        raise TimeoutError(f"did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def tool(
    name: str, *args: object, cwd=None, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run qmmar-opt, qmmar-run or qmmar-check as a script would (text output)."""
    module = {"qmmar-opt": "opt", "qmmar-run": "run", "qmmar-check": "check"}[name]
    done = subprocess.run([sys.executable, "-m", f"qmmar.cli.{module}", *map(str, args)], input=stdin,
                          capture_output=True, cwd=cwd, timeout=timeout)  # fmt: skip
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
