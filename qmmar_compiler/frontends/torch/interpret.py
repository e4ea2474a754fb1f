"""Running an imported program's opaque ops on qmmar's interpreter: each one calls its
PyTorch op again, on CPU tensors that share memory with the interpreter's numpy arrays
(torch_npu's and vLLM's ops through the CPU stand-ins, which this module loads)."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp, UnregisteredOp
from xdsl.interpreter import Interpreter, InterpreterFunctions, OpImplResult, PythonValues, register_impls

import qmmar.frontends.torch.standins  # noqa: F401  (CPU kernels for torch_npu's and vLLM's ops)
from qmmar.frontends import TORCH_OPS
from qmmar.frontends.torch.opaque import replay
from qmmar.interpreter.numerics_torch import to_numpy, to_torch


def _run(ft: InterpreterFunctions, interpreter: Interpreter, op: UnregisteredOp, args: PythonValues) -> OpImplResult:
    result = replay(op)([to_torch(a) for a in args])
    results = result if isinstance(result, list | tuple) else (result,)
    return OpImplResult(tuple(to_numpy(r) for r in results), None)


@register_impls
class _TorchOps(InterpreterFunctions):
    pass


def torch_op_functions(module: ModuleOp) -> InterpreterFunctions:
    """Implementations of the module's opaque `torch.*` ops, for `run_spmd(..., functions=)`.

    The interpreter finds an implementation by the op's class, and xDSL gives each
    unregistered op name a class of its own: the table is made for this module's classes."""
    classes = {
        type(op) for op in module.walk() if isinstance(op, UnregisteredOp) and op.op_name.data.startswith(TORCH_OPS)
    }

    @register_impls
    class TorchOpFunctions(_TorchOps):
        pass

    setattr(TorchOpFunctions, "__impl_dict", dict.fromkeys(classes, _run))  # noqa: B010 (xDSL's key)
    return TorchOpFunctions()
