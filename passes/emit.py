"""Writing ops in place of one op: what every rewrite of qmmar's passes does."""

from __future__ import annotations

from typing import TypeVar

from xdsl.dialects import arith
from xdsl.dialects.builtin import IndexType, IntegerAttr, LocationAttr
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter

OpT = TypeVar("OpT", bound=Operation)


class Emitter:
    """Inserts ops at the rewriter's insertion point (before the matched op), each at one
    source location, so that the ops a rewrite writes point where the user wrote the original."""

    def __init__(self, rewriter: PatternRewriter, location: LocationAttr) -> None:
        self.rewriter, self.location = rewriter, location
        self._indices: dict[int, SSAValue] = {}

    def op(self, op: OpT) -> OpT:
        op.location = self.location
        self.rewriter.insert(op)
        return op

    def value(self, op: Operation) -> SSAValue:
        """Insert an op of one result; its result."""
        return self.op(op).results[0]

    def index(self, value: int) -> SSAValue:
        """`arith.constant value : index`, written once per emitter."""
        if value not in self._indices:
            self._indices[value] = self.value(arith.ConstantOp(IntegerAttr(value, IndexType())))
        return self._indices[value]
