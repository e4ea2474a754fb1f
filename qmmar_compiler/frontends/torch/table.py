"""THE dispatch table: how each ATen or custom op becomes qmm, tensor or func IR.

One entry per op overload (`aten._int_mm.default`, ...).  A handler returns a `Plan` (the
nodes it reads, the ops it builds) or None, and then the node is imported opaquely.  Every
qmm op written here computes exactly what PyTorch computes (SEMANTICS.md); where the
numerics differ, the node stays as PyTorch wrote it with a note that says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.fx import Node
from xdsl.dialects import tensor
from xdsl.dialects.builtin import ArrayAttr, BoolAttr, IntegerAttr, StringAttr, TensorType, i64
from xdsl.ir import Operation, SSAValue

from qmmar.dialects import qmm
from qmmar.dialects.diagnostics import LocatedError
from qmmar.frontends.torch import patterns as pt
from qmmar.frontends.torch.meta import (
    ELEMENT_TYPES,
    Dim,
    dtype_of,
    is_optional_tensor,
    is_tensor,
    mlir_shape,
    short,
    sym_shape,
    tensor_arg,
    tensor_type,
    where,
)

if TYPE_CHECKING:
    from qmmar.frontends.torch.importer import Importer


@dataclass(frozen=True)
class Plan:
    """How one FX node is imported: the nodes whose values it reads and a builder of its ops,
    which returns the node's values.  `covers` are the FX nodes the ops stand for (the root
    and the nodes a pattern read through); `note` says why a pattern was not imported, or what
    importing it under numerics=relaxed changes."""

    reads: tuple[Node, ...]
    build: Callable[[], Sequence[SSAValue]]
    covers: tuple[Node, ...] = ()
    note: str | None = None


Handler = Callable[[Node, "Importer"], Plan | None]
SKIPPED = frozenset({"aten._assert_tensor_metadata.default", "aten.sym_size.int", "aten.sym_numel.default",
                     "aten.sym_stride.int", "aten._assert_scalar.default"})  # fmt: skip
"""Nodes that carry no tensor value: checks and symbolic sizes."""


def _alias(node: Node, source: Node, imp: Importer) -> Plan:
    return Plan((source,), lambda: [imp.value(source)], (node,))


def _identity(node: Node, imp: Importer) -> Plan | None:
    source = tensor_arg(node)
    return None if source is None else _alias(node, source, imp)


def _full_slice(node: Node, imp: Importer) -> Plan | None:
    """slice(x, dim, 0, end) with end past the dimension and step 1 (`x[:, None]` in a graph
    with dynamic sizes) is x itself."""
    x, dim, start, end, step = (*node.args, None, None, None, None)[:5]
    axis = dim or 0
    if not is_tensor(x) or not isinstance(axis, int):
        return None
    size = sym_shape(x)[axis]
    past_end = end is None or (isinstance(end, int) and (end >= 2**63 - 1 or (isinstance(size, int) and end >= size)))
    return _alias(node, x, imp) if start in (None, 0) and past_end and step in (None, 1) else None


def _copy(node: Node, imp: Importer) -> Plan | None:
    """copy_(dst, src) in the functional form export writes for an in-place op: the value is src."""
    dst, src = node.args[:2]
    if not (is_tensor(src) and is_tensor(dst)) or dtype_of(src) != dtype_of(dst) or sym_shape(src) != sym_shape(dst):
        return None
    return _alias(node, src, imp)


def _matmul_op(imp: Importer, root: Node, x1: Node, w: Node, bias: Node | None) -> Operation:
    x2 = pt.transposed_source(w)
    operands = [imp.value(x1), imp.value(x2 or w)] + ([imp.value(bias)] if bias is not None else [])
    acc_shape = [*tensor_type(x1).get_shape()[:-1], tensor_type(w).get_shape()[-1]]
    return imp.emit(qmm.MatmulOp.create(
        operands=operands, result_types=[TensorType(ELEMENT_TYPES[torch.int32], acc_shape)],
        properties={"transpose_x2": BoolAttr.from_bool(x2 is not None)},
    ), root)  # fmt: skip


def _int_mm(node: Node, imp: Importer) -> Plan | None:
    x1, w = node.args
    if not (is_tensor(x1) and is_tensor(w)):
        return None
    x2 = pt.transposed_source(w)
    covers = (node, w) if x2 is not None else (node,)
    return Plan((x1, x2 or w), lambda: [_matmul_op(imp, node, x1, w, None).results[0]], covers)


def _unsigned_matmul(node: Node, imp: Importer) -> Plan | None:
    """torchao's u8s8 form of an int8 matmul (`pt.match_unsigned_matmul`): x1 @ x2 exactly."""
    match = pt.match_unsigned_matmul(node)
    if match is None:
        return None
    x2 = pt.transposed_source(match.x2)
    covers = (*match.covers, match.x2) if x2 is not None else match.covers
    build = lambda: [_matmul_op(imp, node, match.x1, match.x2, None).results[0]]  # noqa: E731
    return Plan((match.x1, x2 or match.x2), build, covers)


def _npu_quant_matmul(node: Node, imp: Importer) -> Plan | None:
    """torch_npu's quantised matmul is the operator's own step 1-2: qmm.matmul + qmm.dequant."""
    assert isinstance(node.target, torch._ops.OpOverload)  # the table dispatches on an overload's name
    schema = node.target._schema.arguments
    args = {a.name: v for a, v in zip(schema, node.args, strict=False)} | dict(node.kwargs)
    x1, w, scale, pertoken, bias = (args.get(k) for k in ("x1", "x2", "scale", "pertoken_scale", "bias"))
    if not (is_tensor(x1) and is_tensor(w) and is_tensor(scale)):
        return None
    if not (is_optional_tensor(pertoken) and is_optional_tensor(bias)):
        return None
    why = None
    if args.get("offset") is not None:
        why = "an offset (asymmetric quantisation) has no qmm counterpart"
    elif args.get("group_sizes") is not None:
        why = "group_sizes (a grouped matmul) has no qmm counterpart"
    elif dtype_of(scale) == torch.float16 and pertoken is not None:
        why = ("the scale is f16, which qmm.dequant does not take: every f16 value is exact in f32, and with a "
               "per-token scale an f32 scale computes the same (store the scale as f32)")  # fmt: skip
    elif dtype_of(node) not in pt.OUT_DTYPES:
        why = f"the output is {short(dtype_of(node))}: qmm dequantises to f16 or bf16"
    elif bias is not None and dtype_of(bias) != torch.int32:
        why = f"a {short(dtype_of(bias))} bias is added after the dequant: qmm adds an int32 bias to the accumulator"
    elif len(sym_shape(x1)) not in (2, 3) or len(sym_shape(w)) != 2:
        why = "qmm.matmul takes a 2-D or 3-D x1 and a 2-D x2"
    if why is not None:
        return Plan(
            tensor_args(node), lambda: imp.opaque(node), (node,), f"not imported as qmm.matmul + qmm.dequant: {why}"
        )
    x2 = pt.transposed_source(w)

    def build() -> list[SSAValue]:
        acc = _matmul_op(imp, node, x1, w, bias).results[0]
        operands = [acc, imp.scale(scale, node)] + ([imp.value(pertoken)] if pertoken is not None else [])
        return [imp.emit(qmm.DequantOp.create(operands=operands, result_types=[tensor_type(node)]), node).results[0]]

    reads = tuple(n for n in (x1, x2 or w, scale, pertoken, bias) if n is not None)
    return Plan(reads, build, (node, w) if x2 is not None else (node,))


def _dequant(node: Node, imp: Importer, match: pt.Dequant) -> Plan:
    """qmm.dequant, viewed as the root's shape where the root views its rows."""
    rows = sym_shape(match.x)

    def build() -> list[SSAValue]:
        operands: list[SSAValue] = [imp.value(match.x), imp.scale(match.scale, node)]
        if match.pertoken is not None:
            pertoken = imp.value(match.pertoken)
            column = sym_shape(match.pertoken)
            operands.append(imp.reshaped(pertoken, node, column, column[:1]) if match.pertoken_is_column else pertoken)
        result = TensorType(ELEMENT_TYPES[dtype_of(node)], mlir_shape(rows)) if match.viewed else tensor_type(node)
        op = imp.emit(qmm.DequantOp.create(operands=operands, result_types=[result]), node)
        value = SSAValue.get(op.results[0], type=TensorType)
        return [imp.reshaped(value, node, rows, sym_shape(node)) if match.viewed else value]

    reads = tuple(n for n in (match.x, match.scale, match.pertoken) if n is not None)
    return Plan(reads, build, match.covers, match.change)


def _quant(node: Node, imp: Importer, match: pt.Quant) -> Plan:
    def build() -> list[SSAValue]:
        operands = [imp.value(match.x), imp.value(match.scale)]
        return [imp.emit(qmm.QuantOp.create(operands=operands, result_types=[tensor_type(node)]), node).results[0]]

    return Plan((match.x, match.scale), build, match.covers)


def _requant_sum(node: Node, imp: Importer, match: pt.RequantSum) -> Plan:
    def build() -> list[SSAValue]:
        op = qmm.ReduceSumOp.build(
            operands=[imp.value(match.x), [imp.value(match.s1)], [imp.value(match.s2)]],
            result_types=[tensor_type(node)],
        )
        return [imp.emit(op, node).results[0]]

    return Plan((match.x, match.s1, match.s2), build, match.covers)


def _cast(node: Node, imp: Importer) -> Plan | None:
    """A cast ends a dequant (to f16/bf16) or a quant (to int8) pattern, or is opaque.  Under
    numerics=relaxed, a dequant also ends torchao's form (`pt.match_rounded_dequant`)."""
    relaxed = imp.options.numerics == "relaxed" and dtype_of(node) in pt.OUT_DTYPES
    match: pt.Dequant | pt.Quant | pt.RequantSum | pt.NearMiss | None = (
        pt.match_rounded_dequant(node) if relaxed else None
    )
    if match is None:
        match = pt.match_dequant(node) if dtype_of(node) in pt.OUT_DTYPES else pt.match_quant(node)
    if isinstance(match, pt.Dequant):
        return _dequant(node, imp, match)
    if isinstance(match, pt.Quant):
        return _quant(node, imp, match)
    if isinstance(match, pt.RequantSum):
        return _requant_sum(node, imp, match)
    if isinstance(match, pt.NearMiss):
        kind = "qmm.dequant" if dtype_of(node) in pt.OUT_DTYPES else "qmm.quant"
        return Plan(tensor_args(node), lambda: imp.opaque(node), (node,), f"not imported as {kind}: {match.reason}")
    return None


def _mul(node: Node, imp: Importer) -> Plan | None:
    """A multiply in f16/bf16 ends torchao's dequant with a scale in that dtype (under
    numerics=relaxed), or is a dequant that multiplies in low precision (a near miss)."""
    if imp.options.numerics == "relaxed" and (match := pt.match_rounded_dequant(node)) is not None:
        return _dequant(node, imp, match)
    miss = pt.match_low_precision_dequant(node)
    if miss is None:
        return None
    return Plan(tensor_args(node), lambda: imp.opaque(node), (node,), f"not imported as qmm.dequant: {miss.reason}")


def _add(node: Node, imp: Importer) -> Plan | None:
    """D(f32(a) + f32(b)) for two f16/bf16 tensors of one type, alpha 1: PyTorch's CPU add."""
    if len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    a, b = node.args
    if not (is_tensor(a) and is_tensor(b)) or tensor_type(a) != tensor_type(b) or dtype_of(a) not in pt.OUT_DTYPES:
        return None
    if tensor_type(node) != tensor_type(a):
        return None

    def build() -> list[SSAValue]:
        op = qmm.AddOp.create(operands=[imp.value(a), imp.value(b)], result_types=[tensor_type(node)])
        return [imp.emit(op, node).results[0]]

    return Plan((a, b), build, (node,))


def _view(node: Node, imp: Importer) -> Plan | None:
    """A view that regroups dimensions becomes a collapse or expand of the tensor dialect.  An
    expand to a dynamic shape needs its sizes at run time: when the module is not to be run,
    it stays opaque (unless it views a value of that shape again)."""
    source = node.args[0]
    assert isinstance(source, Node)
    shape = sym_shape(node)
    if imp.reassociation(sym_shape(source), shape) is None:
        return None
    dynamic_expand = len(shape) > len(sym_shape(source)) and not all(isinstance(d, int) for d in shape)

    def build() -> Sequence[SSAValue]:
        value = imp.value(source)
        if dynamic_expand and not imp.options.runnable and imp.earlier_view(value, shape) is None:
            return imp.opaque(node)
        return [imp.reshaped(value, node, sym_shape(source), shape)]

    return Plan((source,), build, (node,))


# --- collectives -------------------------------------------------------------------------


def _all_reduce(node: Node, imp: Importer, group: str, reduce_op: str = "sum") -> Plan | None:
    x = node.args[0]
    assert isinstance(x, Node)
    why = None
    if reduce_op != "sum":
        why = f'the reduction is "{reduce_op}": qmm.all_reduce sums'
    elif dtype_of(x) not in pt.OUT_DTYPES:
        why = f"the all-reduce works on {short(dtype_of(x))}: qmm.all_reduce takes f16 or bf16"
    if why is not None:
        return Plan(tensor_args(node), lambda: imp.opaque(node), (node,), f"not imported as qmm.all_reduce: {why}")

    def build() -> list[SSAValue]:
        name, size = imp.group(node, group)
        op = qmm.AllReduceOp.create(operands=[imp.value(x)], result_types=[tensor_type(node)],
                                    properties=_group_properties(name, size))  # fmt: skip
        return [imp.emit(op, node).results[0]]

    return Plan((x,), build, (node,))


def _group_properties(name: str, size: int) -> dict[str, StringAttr | IntegerAttr]:
    return {"group": StringAttr(name), "world_size": IntegerAttr(size, i64)}


def _c10d_all_reduce(node: Node, imp: Importer) -> Plan | None:
    _, reduce_op, group = node.args
    if not (isinstance(reduce_op, str) and isinstance(group, str)):
        return None
    return _all_reduce(node, imp, group, reduce_op)


def _vllm_all_reduce(node: Node, imp: Importer) -> Plan | None:
    group = node.args[1]
    return _all_reduce(node, imp, group) if isinstance(group, str) else None


def _row_exchange(x: SSAValue[TensorType], rows: Node, node: Node, imp: Importer, group: str,
                  size: int) -> tuple[SSAValue[TensorType], tuple[Dim, ...]]:  # fmt: skip
    """qmm.alltoall: [d0, ...] -> [W, d0/W, ...], d0 the rows of `rows` (symbolic: as torch states
    them, so that the view back to [d0, ...] matches); with the result's symbolic shape."""
    d0, *rest = sym_shape(rows)
    shape = (size, d0 // size if isinstance(d0, int) else d0 / size, *rest)
    result = TensorType(x.type.element_type, mlir_shape(shape))
    op = qmm.AllToAllOp.create(operands=[x], result_types=[result], properties=_group_properties(group, size))
    return imp.emit(op, node).result, shape


def _split_sizes(splits: object) -> tuple[object, ...]:
    """The sizes of an all-to-all's splits (None: equal splits, no sizes)."""
    return tuple(splits) if isinstance(splits, list | tuple) else ()


def _all_to_all_single(node: Node, imp: Importer) -> Plan | None:
    """Equal splits of the leading dimension: qmm.alltoall, viewed back as [d0, ...]."""
    x, out_splits, in_splits, group = node.args
    outs, ins = _split_sizes(out_splits), _split_sizes(in_splits)
    if len({*outs, *ins}) > 1 or not isinstance(x, Node) or not isinstance(group, str):
        return None

    def build() -> list[SSAValue]:
        name, size = imp.group(node, group, len(outs) or None)
        parts, shape = _row_exchange(imp.value(x), node, node, imp, name, size)  # rows in = rows out
        return [imp.reshaped(parts, node, shape, sym_shape(node))]

    return Plan((x,), build, (node,))


def _row_collective(op_type: type[qmm.RowCollectiveOp], x: Node, size: int, group: str, node: Node,
                    imp: Importer) -> Plan:  # fmt: skip
    """op_type (qmm.allgather, qmm.reduce_scatter) of x over the group, of the node's type."""

    def build() -> list[SSAValue]:
        name, w = imp.group(node, group, size)
        op = op_type.create(operands=[imp.value(x)], result_types=[tensor_type(node)],
                            properties=_group_properties(name, w))  # fmt: skip
        return [imp.emit(op, node).results[0]]

    return Plan((x,), build, (node,))


def _all_gather(node: Node, imp: Importer) -> Plan | None:
    x, size, group = node.args
    if not (is_tensor(x) and isinstance(size, int) and isinstance(group, str)):
        return None
    return _row_collective(qmm.AllGatherOp, x, size, group, node, imp)


def _reduce_scatter(node: Node, imp: Importer) -> Plan | None:
    """A summed reduce-scatter of f16/bf16 rows: qmm.reduce_scatter (f32, rank order)."""
    x, reduce_op, size, group = node.args
    if reduce_op != "sum" or not is_tensor(x) or dtype_of(x) not in pt.OUT_DTYPES:
        return None
    if not (isinstance(size, int) and isinstance(group, str)):
        return None
    return _row_collective(qmm.ReduceScatterOp, x, size, group, node, imp)


def tensor_args(node: Node) -> tuple[Node, ...]:
    found: list[Node] = []
    torch.fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if is_tensor(n) else None)
    return tuple(found)


TABLE: dict[str, Handler] = {
    "aten._int_mm.default": _int_mm,
    **{name: _unsigned_matmul for name in pt.SUBTRACTIONS},
    "npu.npu_quant_matmul.default": _npu_quant_matmul,
    **{name: _cast for name in pt.CASTS},
    "aten.mul.Tensor": _mul,
    "aten.add.Tensor": _add,
    **{name: _view for name in pt.VIEWS},
    "aten.copy_.default": _copy,
    "aten.copy.default": _copy,
    "aten.clone.default": _identity,
    "aten.alias.default": _identity,
    "aten.slice.Tensor": _full_slice,
    "_c10d_functional.wait_tensor.default": _identity,
    "_c10d_functional.all_reduce.default": _c10d_all_reduce,
    "_c10d_functional.all_to_all_single.default": _all_to_all_single,
    "_c10d_functional.all_gather_into_tensor.default": _all_gather,
    "_c10d_functional.reduce_scatter_tensor.default": _reduce_scatter,
    "vllm.all_reduce.default": _vllm_all_reduce,
}


def reassociation_attr(groups: list[list[int]]) -> ArrayAttr[ArrayAttr[IntegerAttr]]:
    return ArrayAttr([ArrayAttr([IntegerAttr(i, i64) for i in g]) for g in groups])


def reshape_op(value: SSAValue[TensorType], result: TensorType, groups: list[list[int]], node: Node) -> Operation:
    """tensor.collapse_shape or tensor.expand_shape between value and result."""
    source_rank = len(value.type.get_shape())
    if len(result.get_shape()) < source_rank:
        return tensor.CollapseShapeOp.create(operands=[value], result_types=[result],
                                             properties={"reassociation": reassociation_attr(groups)})  # fmt: skip
    if any(d < 0 for d in result.get_shape()):
        raise LocatedError(where(node), f"{node.target}: expanding to the dynamic shape {result} needs the "
                          "size of each new dimension at run time, which qmmar does not import: export "
                          "with static shapes")  # fmt: skip
    return tensor.ExpandShapeOp(value, [], reassociation_attr(groups), list(result.get_shape()), result)
