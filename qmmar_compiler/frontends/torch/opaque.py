"""Ops qmmar has no counterpart for: imported as they are, and run again by PyTorch.

An opaque op keeps the ATen/custom op's name (`torch.aten.rms_norm`, `torch.aten.mean.dim`:
the overload is dropped when it is `default`), its tensor operands and result types, in
MLIR's generic form.  Its other arguments are attributes in MLIR's own syntax, so that the
interpreter can call the same PyTorch op again: `torch.args` (positional) and `torch.kwargs`
(by name), where a tensor operand is its operand number as an `index`, an element type is
the MLIR type (`bf16`), None is `unit`, and devices, layouts and memory formats are strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.fx import Node
from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DictionaryAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    StringAttr,
    UnitAttr,
    UnregisteredOp,
    f64,
    i64,
)
from xdsl.ir import Attribute, Operation

from qmmar.dialects.diagnostics import LocatedError
from qmmar.frontends import TORCH_OPS
from qmmar.frontends.torch.meta import DTYPES, ELEMENT_TYPES, fake_value, is_tensor, where

ARGS, KWARGS = "torch.args", "torch.kwargs"


def op_name(target: torch._ops.OpOverload) -> str:
    """`torch.aten.mean.dim`: the namespace, the op, and the overload unless it is `default`."""
    packet = target._schema.name.replace("::", ".")
    overload = target._overloadname
    return f"{TORCH_OPS}{packet}" if overload == "default" else f"{TORCH_OPS}{packet}.{overload}"


def overload_of(name: str) -> torch._ops.OpOverload:
    """The PyTorch op an opaque op's name stands for."""
    parts = name.removeprefix(TORCH_OPS).split(".")
    namespace, op = parts[0], parts[1]
    packet = getattr(getattr(torch.ops, namespace), op)
    overload = getattr(packet, parts[2] if len(parts) > 2 else "default")
    if not isinstance(overload, torch._ops.OpOverload):
        raise ValueError(f"{name} names {overload!r}, not a PyTorch op overload")
    return overload


class _Encoder:
    """Turns FX arguments into attributes, collecting tensor operands in order."""

    def __init__(self, node: Node, runnable: bool) -> None:
        self.node, self.runnable = node, runnable
        self.operands: list[Node] = []

    def encode(self, value: object) -> Attribute:
        if isinstance(value, Node):
            if not is_tensor(value) and not self.runnable:
                return StringAttr(str(fake_value(value)))  # the size's expression, for the reader
            if not is_tensor(value):
                raise LocatedError(
                    where(self.node),
                    f"{self.node.target}: argument {value.name} is a symbolic size (a dynamic dimension); qmmar "
                    "keeps dynamic dimensions only in tensor types and row reshapes: export this op with static shapes",
                )
            self.operands.append(value)
            return IntegerAttr(len(self.operands) - 1, IndexType())
        if isinstance(value, list | tuple):
            return ArrayAttr([self.encode(v) for v in value])
        try:
            return constant(value)
        except ValueError as err:
            raise LocatedError(where(self.node), f"{self.node.target}: {err}") from None


def constant(value: object) -> Attribute:
    """An argument that holds no tensor, as an attribute; ValueError when MLIR has no form for it."""
    if isinstance(value, bool):
        return BoolAttr.from_bool(value)
    if isinstance(value, int):
        return IntegerAttr(value, i64)
    if isinstance(value, float):
        return FloatAttr(value, f64)
    if value is None:
        return UnitAttr()
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, list | tuple):
        return ArrayAttr([constant(v) for v in value])
    if isinstance(value, torch.dtype) and value in ELEMENT_TYPES:
        return ELEMENT_TYPES[value]
    if isinstance(value, torch.dtype | torch.device | torch.layout | torch.memory_format):
        return StringAttr(str(value))
    raise ValueError(f"cannot represent the argument {value!r} in MLIR")


def opaque_op(node: Node, results: Sequence[Attribute], runnable: bool = True) -> tuple[Operation, list[Node]]:
    """The op, and the FX nodes whose values are its operands (in operand order); not
    `runnable`: a symbolic-size argument is recorded as the text of its expression."""
    encoder = _Encoder(node, runnable)
    attributes: dict[str, Attribute] = {ARGS: ArrayAttr([encoder.encode(a) for a in node.args])}
    if node.kwargs:
        attributes[KWARGS] = DictionaryAttr({k: encoder.encode(v) for k, v in node.kwargs.items()})
    assert isinstance(node.target, torch._ops.OpOverload)  # the importer imports op overloads only
    op_type = UnregisteredOp.with_name(op_name(node.target))
    # operands are set by the importer, which knows the SSA values of the nodes
    return op_type.create(result_types=list(results), attributes=attributes), encoder.operands


NAMED_BY_TORCH = frozenset({"ScalarType", "Layout", "MemoryFormat"})
"""Schema types whose values are attributes of the torch module (`torch.strided`)."""


def decode(attr: Attribute, operands: Sequence[object], kind: str) -> object:
    """The Python value of an argument attribute; `kind` is the schema's `real_type` of the
    argument (`Optional[Layout]`), which says what a string stands for."""
    if isinstance(attr, IntegerAttr) and isinstance(attr.type, IndexType):
        return operands[attr.value.data]
    if isinstance(attr, IntegerAttr) and isinstance(attr.type, IntegerType) and attr.type.width.data == 1:
        return bool(attr.value.data)
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, UnitAttr):
        return None
    if isinstance(attr, ArrayAttr):
        return [decode(a, operands, kind) for a in attr.data]
    if isinstance(attr, StringAttr):
        text, base = attr.data, kind.removeprefix("Optional[").removesuffix("]")
        if base in NAMED_BY_TORCH:
            return getattr(torch, text.removeprefix("torch."))
        return torch.device(text) if base == "Device" else text
    if attr in DTYPES:
        return DTYPES[attr]
    raise ValueError(f"cannot read the argument {attr}")


def replay(op: UnregisteredOp) -> Callable[[Sequence[torch.Tensor]], object]:
    """A function calling the op's PyTorch op on tensors given in operand order."""
    target = overload_of(op.op_name.data)
    schema = {a.name: str(a.real_type) for a in target._schema.arguments}
    kinds = list(schema.values())
    args = op.attributes[ARGS]
    kwargs = op.attributes.get(KWARGS)
    assert isinstance(args, ArrayAttr)

    def call(tensors: Sequence[torch.Tensor]) -> object:
        positional = [decode(a, tensors, kinds[i] if i < len(kinds) else "") for i, a in enumerate(args.data)]
        named = {}
        if isinstance(kwargs, DictionaryAttr):
            named = {k: decode(v, tensors, schema.get(k, "")) for k, v in kwargs.data.items()}
        return target(*positional, **named)

    return call
