"""Frontends: programs written in other frameworks, imported into qmm."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, UnregisteredOp
from xdsl.interpreter import InterpreterFunctions
from xdsl.ir import Operation

from qmmar.dialects.diagnostics import LocatedError, one_line
from qmmar.dialects.location import location_text

TORCH_OPS = "torch."
"""The prefix of the opaque ops qmmar-import keeps (`"torch.aten.rms_norm"(...)`)."""


@dataclass
class QmmarContext(Context):
    """xDSL's context, which also reads every op named `torch.*` as an opaque op: qmmar-import
    writes what it has no qmm counterpart for so (in MLIR's generic form), and its output is
    read without --allow-unregistered-dialect.  Any other op no dialect defines is an error,
    unless unregistered ops are allowed."""

    def get_optional_op(self, name: str, *, dialect_stack: Sequence[str] = ()) -> type[Operation] | None:
        found = super().get_optional_op(name, dialect_stack=dialect_stack)
        if found is None and name.startswith(TORCH_OPS):
            found = UnregisteredOp.with_name(name)
            self._loaded_ops[name] = found
        return found

    def clone(self) -> QmmarContext:
        copy = super().clone()
        return QmmarContext(**{f.name: getattr(copy, f.name) for f in fields(copy)})


def opaque_op_functions(module: ModuleOp) -> list[InterpreterFunctions]:
    """How the interpreter runs a module's unregistered ops: the `torch.*` ops of an imported
    PyTorch program through PyTorch (imported only when there is such an op); any other
    unregistered op is an error at its location."""
    opaque = [op for op in module.walk() if isinstance(op, UnregisteredOp)]
    stranger = next((op for op in opaque if not op.op_name.data.startswith(TORCH_OPS)), None)
    if stranger is not None:
        runs = "qmm, mc2, func, arith and tensor ops, and the torch.* ops of an imported program"
        raise LocatedError(location_text(stranger.location),
                          f"Operation {stranger.op_name.data} is not registered (qmmar runs {runs})")  # fmt: skip
    if not opaque:
        return []
    try:
        from qmmar.frontends.torch.interpret import torch_op_functions
    except ImportError as err:
        raise LocatedError(location_text(opaque[0].location), f"{opaque[0].op_name.data} runs through PyTorch, "
                          f"which cannot be imported ({err}): pip install 'qmmar[torch]'") from None  # fmt: skip
    return [torch_op_functions(module)]


def load_libraries(names: Sequence[str]) -> None:
    """Import each Python module that defines custom ops (`torch.library`), by module name
    (`my_ops`) or by the path of its `.py` file (`--library`)."""
    for name in names:
        _load_library(name)


def _load_library(name: str) -> None:
    try:
        if name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(name).stem, name)
            if spec is None or spec.loader is None:
                raise ImportError(f"no module at {name}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(name)
    except Exception as err:  # whatever the module raises while it loads
        raise LocatedError(name, f"cannot load the library: {type(err).__name__}: {one_line(err)}") from None
