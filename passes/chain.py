"""A quantised-matmul + all-reduce chain: its ops and operands, matched from its last op back.

The two forms of SEMANTICS.md:

    matmul -> dequant -> [add x3] -> all_reduce                                   (plain)
    matmul -> dequant -> [add x3] -> quant(s1) -> alltoall -> reducesum(s1, s2)
           -> allgather -> dequant(s2)                                             (int8 comm)

Row-only reshapes (tensor.collapse_shape / expand_shape that keep the last dimension, as
between 3-D and 2-D activations) may sit between any two links.  Two more shapes are what
`unfuse-mc2` writes, so that fusing gives its input back: the exact row padding around the
all-to-all (`tensor.insert_slice` of the quantised rows into a `tensor.empty` of
ceil(m / W) * W rows, and `tensor.extract_slice` of the first m rows after the all-gather,
static or through `tensor.dim` and index arithmetic), and a row `tensor.expand_shape` after the
chain's last op that gives a 3-D x1's layout back.

The matcher returns every chain that ends at an op: one per operand of the add that a
matmul's dequant produces (legality then picks one).  The rewrite consumes a `Chain`; the
report prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypedDict, TypeGuard, TypeVar

from xdsl.dialects import arith, tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX, IntegerAttr, TensorType
from xdsl.ir import Block, Operation, SSAValue

from qmmar.dialects.diagnostics import written_name
from qmmar.dialects.location import location_text
from qmmar.dialects.qmm import (
    AddOp,
    AllGatherOp,
    AllReduceOp,
    AllToAllOp,
    DequantOp,
    MatmulOp,
    QuantOp,
    ReduceSumOp,
    element,
    tensor_type_of,
)

Reshape = tensor.CollapseShapeOp | tensor.ExpandShapeOp
OpT = TypeVar("OpT", bound=Operation)


@dataclass
class Chain:
    root: AllReduceOp | DequantOp
    """The chain's collective end: its all-reduce, or its int8 communication's last dequant."""
    end: Operation
    """The op whose result the fused op replaces: the root, or a row expand right after it."""
    matmul: MatmulOp
    dequant: DequantOp
    add: AddOp | None = None
    x3: SSAValue | None = None
    all_reduce: AllReduceOp | None = None
    quant: QuantOp | None = None
    alltoall: AllToAllOp | None = None
    reducesum: ReduceSumOp | None = None
    allgather: AllGatherOp | None = None
    path: list[Operation] = field(default_factory=list[Operation])
    """The chain's ops along its data path, matmul first, `end` last."""
    side: list[Operation] = field(default_factory=list[Operation])
    """Ops that only size the padding or the final expand: erased with the chain."""
    leaves: list[Operation] = field(default_factory=list[Operation])
    """Index constants those ops read: erased when nothing else uses them."""
    foreign_slices: list[Operation] = field(default_factory=list[Operation])
    """Slices around the all-to-all that are not the row padding `unfuse-mc2` writes: the
    fused op has no place for them, so the chain cannot fuse (it is still judged)."""

    @property
    def int8_comm(self) -> bool:
        return self.quant is not None

    @cached_property
    def collectives(self) -> list[AllReduceOp | AllToAllOp | AllGatherOp]:
        found = (self.all_reduce, self.alltoall, self.allgather)
        return [op for op in found if op is not None]

    @cached_property
    def group(self) -> str:
        return self.collectives[0].group.data

    @cached_property
    def world_size(self) -> int:
        return self.collectives[0].world_size.value.data

    @cached_property
    def comm_scales(self) -> tuple[SSAValue, SSAValue] | None:
        """(s1, s2) as the quant and the last dequant read them."""
        if self.quant is None:
            return None
        assert isinstance(self.root, DequantOp)
        return self.quant.scale, self.root.scale

    @property
    def result(self) -> SSAValue:
        return self.end.results[0]

    @property
    def result_type(self) -> TensorType:
        return tensor_type_of(self.result)

    @cached_property
    def ops(self) -> frozenset[Operation]:
        """Every op the fusion erases or replaces."""
        return frozenset([*self.path, *self.side])

    def describe(self) -> str:
        return " -> ".join(op.name for op in self.path)

    def __repr__(self) -> str:
        return f"Chain({self.describe()})"


def is_row_reshape(op: Operation | Block | None) -> TypeGuard[Reshape]:
    """A reshape that regroups leading dims only: its last reassociation group is the last dim."""
    return isinstance(op, Reshape) and len(op.reassociation.data[-1].data) == 1


@dataclass
class _Walk:
    """A piece of a chain, walked backwards: ops in the order found (users first)."""

    path: list[Operation] = field(default_factory=list[Operation])
    side: list[Operation] = field(default_factory=list[Operation])
    leaves: list[Operation] = field(default_factory=list[Operation])

    def producer(self, value: SSAValue, kind: type[OpT]) -> OpT | None:
        """The op of `kind` that defines value, looking through row-only reshapes; the ops
        passed are recorded only when it is found."""
        passed: list[Operation] = []
        while is_row_reshape(value.owner):
            passed.append(value.owner)
            value = value.owner.src
        if not isinstance(value.owner, kind):
            return None
        self.path += [*passed, value.owner]
        return value.owner

    def extend(self, other: _Walk) -> _Walk:
        return _Walk([*self.path, *other.path], [*self.side, *other.side], [*self.leaves, *other.leaves])


def _index_constant(value: SSAValue, expected: int) -> arith.ConstantOp | None:
    """The op defining value, if it is the integer constant `expected`."""
    op = value.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr) and op.value.value.data == expected:
        return op
    return None


def _is_dim(value: SSAValue, of: SSAValue, axis: int, walk: _Walk) -> bool:
    """value is `tensor.dim %of, %c` with %c the index constant `axis`; recorded if so."""
    dim = value.owner
    if not (isinstance(dim, tensor.DimOp) and dim.source is of):
        return False
    constant = _index_constant(dim.index, axis)
    if constant is None:
        return False
    walk.side.append(dim)
    walk.leaves.append(constant)
    return True


def _unit_slice(op: tensor.InsertSliceOp | tensor.ExtractSliceOp, sizes: Sequence[int]) -> bool:
    """Offsets 0, strides 1, the given static sizes (`?` for a dynamic one)."""
    rank = len(sizes)
    return (
        not op.offsets
        and not op.strides
        and tuple(op.static_offsets.get_values()) == (0,) * rank
        and tuple(op.static_strides.get_values()) == (1,) * rank
        and tuple(op.static_sizes.get_values()) == tuple(sizes)
    )


def _padding(insert: tensor.InsertSliceOp, extract: tensor.ExtractSliceOp, world_size: int) -> _Walk | None:
    """The row padding `unfuse-mc2` writes around the all-to-all, or None.

    static:  insert_slice %q into tensor.empty() : [ceil(m/W)*W, ...] at [0, 0] sizes [m, ...]
    dynamic: %m = tensor.dim %q, 0;  %n = arith.ceildivui %m, %w;  %p = arith.muli %n, %w;
             insert_slice %q into tensor.empty(%p) at [0, 0] sizes [%m, ...]
    and extract_slice of the all-gather's result at [0, 0] sizes [m, ...] (the same %m).
    The side ops and leaves it finds; the insert itself is on the chain's path."""
    q = insert.source
    q_type, empty = q.type, insert.dest.owner
    if not (isinstance(q_type, TensorType) and isinstance(empty, tensor.EmptyOp) and extract.result.type == q_type):
        return None
    rows, *rest = q_type.get_shape()
    padded = rows if rows == DYNAMIC_INDEX else -(-rows // world_size) * world_size
    if DYNAMIC_INDEX in rest or empty.tensor.type != TensorType(q_type.element_type, [padded, *rest]):
        return None
    if not (_unit_slice(insert, [rows, *rest]) and _unit_slice(extract, [rows, *rest])):
        return None
    found = _Walk(side=[empty])
    if rows != DYNAMIC_INDEX:
        return None if insert.sizes or extract.sizes or empty.dynamic_sizes else found
    if len(insert.sizes) != 1 or list(extract.sizes) != list(insert.sizes) or len(empty.dynamic_sizes) != 1:
        return None
    m, muli = insert.sizes[0], empty.dynamic_sizes[0].owner
    ceildiv = muli.lhs.owner if isinstance(muli, arith.MuliOp) else None
    if not (isinstance(muli, arith.MuliOp) and isinstance(ceildiv, arith.CeilDivUIOp)):
        return None
    w = muli.rhs
    constant = _index_constant(w, world_size)
    if not (ceildiv.lhs is m and ceildiv.rhs is w and constant is not None and _is_dim(m, q, 0, found)):
        return None
    found.side += [muli, ceildiv]
    found.leaves.append(constant)
    return found


class _Links(TypedDict, total=False):
    """A chain's collectives and its quant, by their `Chain` field names."""

    all_reduce: AllReduceOp
    quant: QuantOp
    alltoall: AllToAllOp
    reducesum: ReduceSumOp
    allgather: AllGatherOp


def _comm_tail(root: DequantOp) -> tuple[_Walk, _Links, SSAValue, list[Operation]] | None:
    """quant -> alltoall -> reducesum -> allgather before the root dequant, through the
    padding unfuse writes; the walk, the links, the value the quant reads, and the slices
    around the all-to-all that are not that padding."""
    walk = _Walk()
    value = root.x
    extract = value.owner if isinstance(value.owner, tensor.ExtractSliceOp) else None
    if extract is not None:
        walk.path.append(extract)
        value = extract.source
    gather = walk.producer(value, AllGatherOp)
    if gather is None:
        return None
    reduce = walk.producer(gather.x, ReduceSumOp)
    if reduce is None or reduce.s1 is None:
        return None
    a2a = walk.producer(reduce.x, AllToAllOp)
    if a2a is None:
        return None
    value = a2a.x
    insert = value.owner if isinstance(value.owner, tensor.InsertSliceOp) else None
    padding = None
    if insert is not None and extract is not None:
        padding = _padding(insert, extract, a2a.world_size.value.data)
    if insert is not None:
        walk.path.append(insert)
        value = insert.source
    foreign: list[Operation] = []
    if padding is not None:
        walk = walk.extend(padding)
    else:
        foreign = [op for op in (extract, insert) if op is not None]
    quant = walk.producer(value, QuantOp)
    if quant is None:
        return None
    links: _Links = {"allgather": gather, "reducesum": reduce, "alltoall": a2a, "quant": quant}
    return walk, links, quant.x, foreign


def _head(value: SSAValue) -> tuple[_Walk, DequantOp, MatmulOp] | None:
    """matmul -> dequant (int32 in) defining value."""
    walk = _Walk()
    dequant = walk.producer(value, DequantOp)
    if dequant is None or element(dequant.x) != "i32":
        return None
    matmul = walk.producer(dequant.x, MatmulOp)
    if matmul is None:
        return None
    return walk, dequant, matmul


def _restoring_expand(result: SSAValue, x1: SSAValue) -> _Walk | None:
    """A row expand that is the root's only user and gives the result x1's 3-D layout back:
    each of its dimensions is x1's (static and equal, or `tensor.dim %x1, i`)."""
    x1_shape = tensor_type_of(x1).get_shape()
    if len(x1_shape) != 3:
        return None
    expand = result.get_user_of_unique_use()
    if not (is_row_reshape(expand) and isinstance(expand, tensor.ExpandShapeOp)):
        return None
    if len(tensor_type_of(expand.src).get_shape()) != 2 or len(expand.result.type.get_shape()) != 3:
        return None
    walk = _Walk(path=[expand])
    dynamic = iter(expand.dynamic_output_shape)
    for axis, size in enumerate(expand.static_output_shape.get_values()[:2]):
        if size == DYNAMIC_INDEX:
            if not _is_dim(next(dynamic), x1, axis, walk):
                return None
        elif size != x1_shape[axis]:
            return None
    return walk


def match_chains(root: Operation) -> list[Chain]:
    """Every chain ending at root: one for each operand of its add that a matmul's dequant
    produces (the other operand is x3), or one without an add; none when root ends no chain."""
    links: _Links = {}
    foreign: list[Operation] = []
    if isinstance(root, AllReduceOp):
        tail, value = _Walk(), root.x
        links["all_reduce"] = root
    elif isinstance(root, DequantOp) and element(root.x) == "i8":
        found = _comm_tail(root)
        if found is None:
            return []
        tail, comm_links, value, foreign = found
        links.update(comm_links)
    else:
        return []
    add_walk = _Walk()
    add = add_walk.producer(value, AddOp)
    operands: list[tuple[SSAValue, SSAValue | None]]
    if add is not None:
        operands = [(add.lhs, add.rhs)] if add.lhs is add.rhs else [(add.lhs, add.rhs), (add.rhs, add.lhs)]
    else:
        add_walk, operands = _Walk(), [(value, None)]
    chains = []
    for chained, x3 in operands:
        head = _head(chained)
        if head is None:
            continue
        head_walk, dequant, matmul = head
        walk = tail.extend(add_walk).extend(head_walk)
        end: Operation = root
        expand = _restoring_expand(root.results[0], matmul.x1)
        if expand is not None and (x3 is None or x3.type == expand.path[0].results[0].type):
            walk = expand.extend(_Walk(path=[root])).extend(walk)
            end = expand.path[0]
        else:
            walk = _Walk(path=[root]).extend(walk)
        chains.append(Chain(root=root, end=end, matmul=matmul, dequant=dequant, add=add, x3=x3,
                            path=walk.path[::-1], side=walk.side, leaves=walk.leaves, foreign_slices=foreign,
                            **links))  # fmt: skip
    return chains


def _described(value: SSAValue) -> str:
    op = value.owner
    if not isinstance(op, Operation):
        return f"%{value.name_hint}, an argument" if value.name_hint else "an argument"
    return f"'{written_name(op)}' at {location_text(op.location)}"


def why_not_a_chain(root: Operation) -> str | None:
    """Why no chain ends at an all-reduce, in words (None for any other op, or when one does):
    the first link, walking back, that is not what a chain needs."""
    if not isinstance(root, AllReduceOp) or match_chains(root):
        return None
    value = root.x
    while isinstance(value.owner, Reshape):
        if not is_row_reshape(value.owner):
            return (f"its operand comes through {_described(value)}, a reshape that regroups the last "
                    "dimension: the fused op keeps n last")  # fmt: skip
        value = value.owner.src
    if isinstance(value.owner, AddOp):
        add = value.owner
        sources = [v for v in (add.lhs, add.rhs) if isinstance(v.owner, DequantOp)]
        if not sources:
            return (f"neither operand of the add at {location_text(add.location)} is a qmm.dequant "
                    f"(they are {_described(add.lhs)} and {_described(add.rhs)})")  # fmt: skip
        value = sources[0]
    if not isinstance(value.owner, DequantOp):
        return f"its operand is {_described(value)}, not a qmm.dequant (or a qmm.add of one)"
    dequant = value.owner
    if element(dequant.x) != "i32":
        return f"the qmm.dequant at {location_text(dequant.location)} reads {element(dequant.x)}, not a matmul's i32"
    return f"the qmm.dequant at {location_text(dequant.location)} reads {_described(dequant.x)}, not a qmm.matmul"
