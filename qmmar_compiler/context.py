"""The xDSL context qmmar's own tools parse with: qmm, mc2 and the upstream dialects a
tensor-parallel program uses, and the opaque `torch.*` ops of a program qmmar-import wrote."""

from xdsl.dialects import arith, builtin, func, tensor

from qmmar.dialects.mc2 import Mc2
from qmmar.dialects.qmm import Qmm
from qmmar.frontends import QmmarContext


def qmmar_context(allow_unregistered: bool = False) -> QmmarContext:
    """A fresh context with builtin, func, arith, tensor, qmm and mc2 loaded, reading `torch.*`
    ops as opaque ops (and, when allowed, any unregistered op in MLIR's generic form)."""
    ctx = QmmarContext(allow_unregistered=allow_unregistered)
    for dialect in (builtin.Builtin, func.Func, arith.Arith, tensor.Tensor, Qmm, Mc2):
        ctx.load_dialect(dialect)
    return ctx
