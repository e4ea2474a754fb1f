"""What an FX node's metadata says in MLIR terms: its tensor type (from `meta["val"]`), its
location (from `meta["stack_trace"]`: the user's Python line) and a valid SSA name."""

from __future__ import annotations

import os
import re
from typing import TypeAlias, TypeGuard

import sympy
import torch
import torch.distributed as dist
from torch.fx import Graph, Node
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    FileLineColLoc,
    IntAttr,
    IntegerType,
    LocationAttr,
    NameLoc,
    Signedness,
    StringAttr,
    TensorType,
    UnknownLoc,
    bf16,
    f16,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute

from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.location import location_text

ELEMENT_TYPES: dict[torch.dtype, Attribute] = {
    torch.int8: i8, torch.int16: i16, torch.int32: i32, torch.int64: i64, torch.bool: i1,
    torch.uint8: IntegerType(8, Signedness.UNSIGNED), torch.uint64: IntegerType(64, Signedness.UNSIGNED),
    torch.float16: f16, torch.bfloat16: bf16, torch.float32: f32, torch.float64: f64,
}  # fmt: skip
DTYPES = {attr: dtype for dtype, attr in ELEMENT_TYPES.items()}

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _frames(node: Node) -> list[tuple[str, int]]:
    """(file, line) of each frame of the node's stack trace, outermost first.  A file under
    the working directory is named relative to it, as a compiler names its inputs."""
    found = []
    for path, line in _FRAME.findall(node.meta.get("stack_trace") or ""):
        relative = os.path.relpath(path) if os.path.isabs(path) else path
        found.append((path if relative.startswith("..") else relative, int(line)))
    return found


def python_stack(node: Node) -> list[str]:
    """`file:line` of each frame that made the node, outermost first."""
    return [f"{path}:{line}" for path, line in _frames(node)]


_DYNAMO_ROOT = re.compile(r"^L\['[^']*'\]\.?")
_INDEX = re.compile(r"\[(\d+)\]")


def module_path(node: Node) -> str:
    """The qualified name of the innermost module whose forward made the node
    (`model.layers.0.self_attn.o_proj`), from `nn_module_stack`; '' for the root module's own
    code.  torch.compile writes it from Dynamo's view (`L['self'].layers[0].o_proj`)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    name = str(list(stack.values())[-1][0])
    return _INDEX.sub(r".\1", _DYNAMO_ROOT.sub("", name))


def location(node: Node) -> LocationAttr:
    """The innermost frame of the node's stack trace (the line of code that made it), named
    after the module whose forward it ran in: `loc("layers.0.o_proj"("model.py":12:0))`.  A
    linear layer's frame is PyTorch's own `linear.py` for every layer; the name tells them apart."""
    frames = _frames(node)
    loc: LocationAttr = UnknownLoc()
    if frames:
        path, line = frames[-1]
        loc = FileLineColLoc(StringAttr(path), IntAttr(line), IntAttr(0))
    name = module_path(node)
    return NameLoc(StringAttr(name), loc) if name else loc


def where(node: Node) -> str:
    """`file:line:col (module)` of a node, for an error message (the node's name when it has no trace)."""
    loc = location(node)
    child = loc.location if isinstance(loc, NameLoc) else loc
    return location_text(loc) if isinstance(child, FileLineColLoc) else f"<node {node.name}>"


def resolve_group(name: str) -> dist.ProcessGroup:
    """The process group torch knows by this name (torch's own lookup, which raises if none)."""
    from torch.distributed.distributed_c10d import GroupName, _resolve_process_group  # type: ignore[attr-defined]  # private, re-exported from torch._C unmarked

    group: dist.ProcessGroup = _resolve_process_group(GroupName(name))
    return group


def short(dtype: torch.dtype) -> str:
    """The MLIR name of a dtype (bf16, f32, i8), as messages print it."""
    return str(ELEMENT_TYPES.get(dtype, dtype))


Dim: TypeAlias = int | sympy.Expr
"""A dimension's size: an int, or a symbolic (dynamic) size as a sympy expression."""


def graph_nodes(graph: Graph) -> list[Node]:
    """The graph's nodes in order (torch's node list does not state its element type)."""
    return list(graph.nodes)


def fake_value(node: Node) -> object:
    """What the node computes, as the tracer saw it: a fake tensor, a symbolic size, a list..."""
    return node.meta.get("val")


def is_tensor(node: object) -> TypeGuard[Node]:
    """A node whose value is a tensor (not a symbolic size, a list or anything else)."""
    return isinstance(node, Node) and isinstance(fake_value(node), torch.Tensor)


def is_optional_tensor(node: object) -> TypeGuard[Node | None]:
    """An absent optional tensor argument (None), or a tensor node."""
    return node is None or is_tensor(node)


def tensor_arg(node: Node, index: int = 0) -> Node | None:
    """The node's positional argument `index` when it is a tensor node."""
    arg = node.args[index]
    return arg if is_tensor(arg) else None


def fake_tensor(node: Node) -> torch.Tensor:
    """The fake tensor of a node whose value is a tensor."""
    value = fake_value(node)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{node.name} ({node.target}) computes {type(value).__name__}, not a tensor")
    return value


def dtype_of(node: Node) -> torch.dtype:
    return fake_tensor(node).dtype


def shape_of(value: torch.Tensor) -> tuple[int | None, ...]:
    """A fake tensor's shape: an int per static dimension, None for a symbolic (dynamic) one."""
    return tuple(_static(s) for s in value.shape)


def sym_shape(node: Node) -> tuple[Dim, ...]:
    """The node's shape with symbolic sizes as sympy expressions (for comparing products)."""
    return tuple(s if isinstance(s, int) else s.node.expr for s in fake_tensor(node).shape)


def _static(size: object) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, torch.SymInt) and size.node.is_constant():
        return int(size)
    return None


def mlir_shape(shape: tuple[Dim, ...]) -> list[int]:
    """A shape as an MLIR tensor type states it: a symbolic size is MLIR's dynamic size (`?`)."""
    return [d if isinstance(d, int) else DYNAMIC_INDEX for d in shape]


def tensor_type(node: Node) -> TensorType:
    return value_type(fake_tensor(node), node)


def value_type(value: torch.Tensor, node: Node) -> TensorType:
    """The MLIR type of a (fake) tensor: symbolic sizes become `?`."""
    element = ELEMENT_TYPES.get(value.dtype)
    if element is None:
        raise LocatedError(where(node), f"{node.name}: element type {value.dtype} has no MLIR counterpart in qmmar")
    return TensorType(element, mlir_shape(shape_of(value)))


_INVALID = re.compile(r"[^A-Za-z0-9_$.-]")


def ssa_name(name: str) -> str:
    """A name MLIR accepts for an SSA value: [A-Za-z0-9_$.-], not starting with a digit."""
    name = _INVALID.sub("_", name)
    return f"_{name}" if not name or name[0].isdigit() else name
