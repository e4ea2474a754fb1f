"""The xDSL context qmmar's own tools parse with: qmm, mc2 and the upstream dialects a
tensor-parallel program uses."""

from xdsl.context import Context
from xdsl.dialects import arith, builtin, func, tensor

from qmmar.dialects.mc2 import Mc2
from qmmar.dialects.qmm import Qmm


def qmmar_context(allow_unregistered: bool = False) -> Context:
    """A fresh xDSL context with builtin, func, arith, tensor, qmm and mc2 loaded (and, when
    allowed, any unregistered op in MLIR's generic form)."""
    ctx = Context(allow_unregistered=allow_unregistered)
    for dialect in (builtin.Builtin, func.Func, arith.Arith, tensor.Tensor, Qmm, Mc2):
        ctx.load_dialect(dialect)
    return ctx
