"""qmmar's public Python API: read a program, fuse its chains, run it on ranks.

from qmmar import read_module, fuse, FuseOptions, run_spmd

module = read_module("examples/two_layers.mlir")        # parsed and verified
verdicts = fuse(module, FuseOptions(group="tp"))          # rewrites in place
outputs = run_spmd(module, arrays, world_size=8)          # each (W,) + result shape
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from qmmar.context import qmmar_context
from qmmar.interpreter.spmd import run_spmd
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, Verdict, fuse
from qmmar.source import SourceError
from qmmar.source import parse_module as _parse_module
from qmmar.source import read_module as _read_module

__all__ = ["FuseOptions", "SourceError", "Verdict", "fuse", "parse_module", "qmmar_context", "read_module", "run_spmd"]


def read_module(path: str, ctx: Context | None = None) -> ModuleOp:
    """Parse and verify the MLIR file at `path`; a problem raises one located `SourceError`."""
    return _read_module(ctx or qmmar_context(), path)


def parse_module(text: str, name: str = "<string>", ctx: Context | None = None) -> ModuleOp:
    """Parse and verify MLIR text; `name` is the file name that locations and errors carry."""
    return _parse_module(ctx or qmmar_context(), text, name)
