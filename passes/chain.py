"""A quantised-matmul + all-reduce chain: its ops and operands, matched from its last op back.

The two forms of SEMANTICS.md:

    matmul -> dequant -> [add x3] -> all_reduce                                   (plain)
    matmul -> dequant -> [add x3] -> quant(s1) -> alltoall -> reducesum(s1, s2)
           -> allgather -> dequant(s2)                                             (int8 comm)

Row-only reshapes (tensor.collapse_shape / expand_shape that keep the last dimension, as
between 3-D and 2-D activations) may sit between any two links.  The matcher fills a
`Chain`; legality reads it; the rewrite consumes it; the report prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects import tensor
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from qmmar.dialects.qmm import (
    AddOp,
    AllGatherOp,
    AllReduceOp,
    AllToAllOp,
    DequantOp,
    MatmulOp,
    QuantOp,
    ReduceSumOp,
)

Reshape = tensor.CollapseShapeOp | tensor.ExpandShapeOp


@dataclass
class Chain:
    root: Operation
    matmul: MatmulOp
    dequant: DequantOp
    add: AddOp | None = None
    x3: SSAValue | None = None
    all_reduce: AllReduceOp | None = None
    quant: QuantOp | None = None
    alltoall: AllToAllOp | None = None
    reducesum: ReduceSumOp | None = None
    allgather: AllGatherOp | None = None
    ops: list[Operation] = field(default_factory=list[Operation])
    """Every op of the chain, root last, reshapes included: what the rewrite erases."""

    @property
    def int8_comm(self) -> bool:
        return self.quant is not None

    @property
    def collectives(self) -> list[AllReduceOp | AllToAllOp | AllGatherOp]:
        found = (self.all_reduce, self.alltoall, self.allgather)
        return [op for op in found if op is not None]

    @property
    def group(self) -> str:
        return self.collectives[0].group.data

    @property
    def world_size(self) -> int:
        return self.collectives[0].world_size.value.data

    @property
    def comm_scales(self) -> tuple[SSAValue, SSAValue] | None:
        """(s1, s2) as the quant and the last dequant read them."""
        if self.quant is None:
            return None
        assert isinstance(self.root, DequantOp)
        return self.quant.scale, self.root.scale

    @property
    def result_type(self) -> TensorType:
        return self.root.results[0].type  # type: ignore[return-value]


def is_row_reshape(op: Operation | None) -> bool:
    """A reshape that regroups leading dims only: its last reassociation group is the last dim."""
    return isinstance(op, Reshape) and len(op.reassociation.data[-1].data) == 1


class _Walk:
    """Walks a chain backwards from its root, collecting ops as it goes."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def producer(self, value: SSAValue, kind: type[Operation]) -> Operation | None:
        """The op of `kind` that defines value, looking through row-only reshapes."""
        while is_row_reshape(value.owner):
            self.ops.append(value.owner)  # type: ignore[arg-type]
            value = value.owner.src  # type: ignore[union-attr]
        if isinstance(value.owner, kind):
            self.ops.append(value.owner)
            return value.owner
        return None


def match_chain(root: Operation) -> Chain | None:
    """The chain ending at root, or None when root ends no quantised-matmul chain."""
    walk = _Walk()
    links: dict[str, Operation | None] = {}
    if isinstance(root, AllReduceOp):
        links["all_reduce"] = root
        value = root.x
    elif (
        isinstance(root, DequantOp)
        and isinstance(root.x.type, TensorType)
        and (
            root.x.type.element_type.bitwidth == 8  # type: ignore[attr-defined]
        )
    ):
        gather = walk.producer(root.x, AllGatherOp)
        reduce = gather and walk.producer(gather.x, ReduceSumOp)
        if reduce is None or reduce.s1 is None:
            return None
        a2a = walk.producer(reduce.x, AllToAllOp)
        quant = a2a and walk.producer(a2a.x, QuantOp)
        if quant is None:
            return None
        links.update(allgather=gather, reducesum=reduce, alltoall=a2a, quant=quant)
        value = quant.x
    else:
        return None

    x3 = None
    add = walk.producer(value, AddOp)
    if add is not None:
        # The chain runs through whichever operand comes from the dequant; the other is x3.
        for chained, other in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
            probe = _Walk()
            if probe.producer(chained, DequantOp) is not None:
                value, x3 = chained, other
                break
        else:
            return None
    dequant = walk.producer(value, DequantOp)
    if dequant is None or dequant.x.type.element_type.bitwidth != 32:  # type: ignore[attr-defined]
        return None
    matmul = walk.producer(dequant.x, MatmulOp)
    if matmul is None:
        return None
    ops = [root, *walk.ops]
    ops.reverse()
    return Chain(root=root, matmul=matmul, dequant=dequant, add=add, x3=x3, ops=ops, **links)  # type: ignore[arg-type]
