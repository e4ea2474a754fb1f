"""qmmar's public Python API: read a program, fuse its chains, print it, run it on ranks.

Everything here is re-exported by `qmmar` itself (lazily: `import qmmar` loads neither
xDSL's parser nor numpy until a name is used):

    from qmmar import FuseOptions, fuse, print_module, random_inputs, read_module, run_spmd

    module = read_module("examples/two_layers.mlir")      # parsed and verified
    verdicts = fuse(module, FuseOptions(group="tp"))       # rewrites in place
    outputs = run_spmd(module, random_inputs(module, 8, seed=1), world_size=8)

Errors are exceptions whose message is one line, as the tools print it: `LocatedError` for
the program (`file:line:col: error: ...`, also for an op that fails at run time),
`InputError` for arguments that do not fit the entry function, `RunError` for a run that
cannot start or that fails outside any op.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import InterpreterFunctions

from qmmar import source
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.ideal import IdealRun, Target, target
from qmmar.interpreter.spmd import entry_function, run_spmd
from qmmar.interpreter.values import InputError, random_args
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse, register_html_report
from qmmar.passes.plan import FusionPlan, Verdict
from qmmar.universe import html_report
from qmmar.xdsl_workarounds import FaithfulPrinter

if TYPE_CHECKING:  # PyTorch is an extra: loaded only by import_program's caller
    from torch.export import ExportedProgram

register_html_report(html_report)  # fuse(module, FuseOptions(report="x.html")) draws qmmar's page

__all__ = [
    "FuseOptions", "InputError", "RunError", "LocatedError", "Verdict", "fuse", "ideal_run", "import_program",
    "include_dir", "parse_module", "plans", "print_module", "qmmar_context", "random_inputs", "read_module",
    "run_spmd",
]  # fmt: skip


def read_module(path: str, ctx: Context | None = None) -> ModuleOp:
    """Parse and verify the MLIR file at `path` (`-`: standard input).

    Every op without a `loc(...)` gets the `file:line:col` where it is written; a problem
    raises one located `LocatedError`.  `ctx` defaults to `qmmar_context()`."""
    return source.read_module(ctx or qmmar_context(), path)


def parse_module(text: str, name: str = "<string>", ctx: Context | None = None) -> ModuleOp:
    """Parse and verify MLIR text; `name` is the file name that locations and errors carry."""
    return source.parse_module(ctx or qmmar_context(), text, name)


def print_module(module: ModuleOp, generic: bool = False) -> str:
    """The module as MLIR text that reads back to the same module, bit for bit (xDSL's own
    printer loses -0.0 in a splat and NaN payloads); `generic`: MLIR's generic op form."""
    out = io.StringIO()
    FaithfulPrinter(stream=out, print_generic_format=generic).print_op(module)
    return out.getvalue() + "\n"


def random_inputs(module: ModuleOp, world_size: int, seed: int, entry: str = "main") -> list[np.ndarray]:
    """Arguments for `@entry` as `qmmar-run --random-inputs SEED` draws them: integer
    tensors differ per rank (`(world_size,) + shape`), float tensors are the same on every
    rank (1-D ones scale-like), int64/uint64 ones are packed dequant scales."""
    return random_args(entry_function(module, entry).function_type.inputs.data, world_size, seed)


def include_dir() -> str:
    """The directory of the aclnn headers that the C++ of the aclnn-cpp target includes
    (`-I$(qmmar-opt --print-include-dir)`), inside the installed package."""
    return str(files("qmmar.targets") / "cann_include")


def import_program(
    program: ExportedProgram, *, world_size: int | None = None, group_map: dict[str, str] | None = None
) -> ModuleOp:
    """A `torch.export` program (an `ExportedProgram`) as a verified qmm module, ready for `fuse`
    (the PyTorch frontend, `qmmar.frontends.torch`: it needs `pip install 'qmmar[torch]'`, and
    loads PyTorch only when called).  `world_size` and `group_map` as for `qmmar-import`."""
    from qmmar.frontends.torch import import_program as from_torch

    return from_torch(program, world_size=world_size, group_map=group_map)


def plans(module: ModuleOp, options: FuseOptions | None = None) -> list[FusionPlan]:
    """Every chain of the module judged, nothing rewritten: one plan per chain."""
    verdicts = fuse(module, replace(options or FuseOptions(), check_only=True, report="", remarks="none"))
    return [v.plan for v in verdicts if v.plan is not None]


def chain_targets(module: ModuleOp) -> list[Target]:
    """The unfused chains with int8 communication, as `--ideal` measures them: what the fused
    op would read, from each chain's plan, and its result."""
    return [target(p.chain.end, p.location, "qmm chain", bool(p.properties["transpose_x2"]),
                   {name: o.value if o else None for name, o in p.operands.items()}, p.chain.end.results[0])
            for p in plans(module) if p.operands.get("comm_quant_scale_1") is not None]  # fmt: skip


def ideal_run(module: ModuleOp, entry: str = "main", functions: Sequence[InterpreterFunctions] = ()) -> IdealRun:
    """A run of `@entry` that also measures every mc2 op and every unfused int8-communication
    chain against its full-precision ideal (`qmmar-run --ideal`)."""
    return IdealRun(module, entry, functions, chain_targets(module))
