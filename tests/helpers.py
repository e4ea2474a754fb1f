"""Shared test plumbing: parse MLIR text, run it on ranks, compare bit for bit."""

from __future__ import annotations

from io import StringIO

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from qmmar.context import qmmar_context
from qmmar.interpreter.spmd import run_spmd
from qmmar.passes.unfuse_mc2 import UnfuseMc2Pass
from qmmar.source import parse_module, verify


def parse(text: str, name: str = "test.mlir") -> ModuleOp:
    return parse_module(qmmar_context(), text, name)


def run(module: ModuleOp, inputs, world_size: int) -> list[np.ndarray]:
    return run_spmd(module, inputs, world_size)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def ops_named(module: ModuleOp, prefix: str) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith(prefix)]


def printed(module: ModuleOp) -> str:
    out = StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def unfuse(module: ModuleOp) -> ModuleOp:
    """unfuse-mc2 in place; the result must verify."""
    UnfuseMc2Pass().apply(qmmar_context(), module)
    verify(module)
    return module
