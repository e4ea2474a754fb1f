"""Frontends: programs written in other frameworks, imported into qmm."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp, UnregisteredOp
from xdsl.interpreter import InterpreterFunctions

from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.location import location_text

TORCH_OPS = "torch."
"""The prefix of the opaque ops qmmar-import keeps (`"torch.aten.rms_norm"(...)`)."""


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
