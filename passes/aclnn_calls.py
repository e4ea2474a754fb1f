"""Writing aclnn call sequences before an op, at its location: what both lowering passes
(`lower-mc2-to-aclnn`, `lower-qmm-to-aclnn`) build with.

A sequence remembers the handles, scalars and int arrays it creates and destroys them when
released; every two-phase call is written the same way (first phase, a workspace only when
its size is not zero, the launch, the end of the call, the end of the workspace: the aclnn-cpp
target takes the workspace from its arena and synchronises nowhere in a run).  Sizes of
dynamic dimensions are SSA index values (`tensor.dim`, `arith`), as `tensor.empty` takes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BoolAttr,
    DenseArrayBase,
    FloatAttr,
    IndexType,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.dialects.tensor import DimOp
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter

from qmmar.dialects import aclnn
from qmmar.dialects.dtypes import element_attr

Size = tuple[SSAValue, int] | int | SSAValue
"""Where a result dimension's size comes from: (a tensor, its axis), a constant, an index."""


class CallSequence:
    """Inserts aclnn ops before an op, at its location, and remembers what to release."""

    def __init__(self, rewriter: PatternRewriter, anchor: Operation) -> None:
        self.rewriter, self.anchor = rewriter, anchor
        self.releases: list[Operation] = []

    def emit(self, op: Operation) -> Operation:
        op.location = self.anchor.location
        self.rewriter.insert(op)
        return op

    def value(self, op: Operation) -> SSAValue:
        return self.emit(op).results[0]

    # --- sizes ------------------------------------------------------------------------------

    def index(self, size: Size) -> SSAValue:
        if isinstance(size, int):
            return self.value(arith.ConstantOp.from_int_and_width(size, IndexType()))
        if isinstance(size, SSAValue):
            return size
        value, axis = size
        t = value.type
        assert isinstance(t, TensorType)
        if t.get_shape()[axis] != DYNAMIC_INDEX:
            return self.index(t.get_shape()[axis])
        return self.value(DimOp(value, self.index(axis)))

    def product(self, sizes: Sequence[Size]) -> SSAValue:
        result = self.index(sizes[0])
        for size in sizes[1:]:
            result = self.value(arith.MuliOp(result, self.index(size)))
        return result

    def dynamic(self, type_: TensorType, sizes: Sequence[Size]) -> list[SSAValue]:
        """The index values of type_'s dynamic dims, sizes[i] giving axis i's."""
        return [self.index(s) for d, s in zip(type_.get_shape(), sizes, strict=True) if d == DYNAMIC_INDEX]

    # --- memory and views -------------------------------------------------------------------

    def alloc(self, type_: TensorType, sizes: Sequence[Size] = (), bytes_: SSAValue | None = None) -> SSAValue:
        dynamic = self.dynamic(type_, sizes) if sizes else []
        return self.value(aclnn.AllocTensorOp.build(operands=[dynamic, [bytes_] if bytes_ else []],
                                                    result_types=[type_]))  # fmt: skip

    def view(self, value: SSAValue, shape: Sequence[Size], prefix: bool = False) -> SSAValue:
        """`value`'s memory as a tensor of `shape` (each axis a Size)."""
        t = value.type
        assert isinstance(t, TensorType)
        static = [s if isinstance(s, int) else self._static(s) for s in shape]
        type_ = TensorType(t.element_type, static)
        if type_ == t and not prefix:
            return value
        props = {"prefix": UnitAttr()} if prefix else {}
        return self.value(aclnn.ViewOp.build(operands=[value, self.dynamic(type_, shape)], properties=props,
                                              result_types=[type_]))  # fmt: skip

    @staticmethod
    def _static(size: Size) -> int:
        if isinstance(size, tuple):
            t = size[0].type
            assert isinstance(t, TensorType)
            return t.get_shape()[size[1]]
        return DYNAMIC_INDEX

    def rows(self, value: SSAValue) -> SSAValue:
        """[d0, ..., dk, n] viewed as 2-D rows [d0*...*dk, n]."""
        t = value.type
        assert isinstance(t, TensorType)
        shape = t.get_shape()
        if len(shape) == 2:
            return value
        lead = [(value, axis) for axis in range(len(shape) - 1)]
        static = 1
        for d in shape[:-1]:
            static = DYNAMIC_INDEX if DYNAMIC_INDEX in (d, static) else static * d
        rows: Size = static if static != DYNAMIC_INDEX else self.product(lead)
        return self.view(value, [rows, (value, len(shape) - 1)])

    def channels(self, value: SSAValue) -> SSAValue:
        """A [1, n] channel vector as the 1-D [n] the calls take."""
        t = value.type
        assert isinstance(t, TensorType)
        return self.view(value, [(value, 1)]) if len(t.get_shape()) == 2 else value

    # --- handles and calls ------------------------------------------------------------------

    def handle(self, data: SSAValue, transpose: bool = False) -> SSAValue:
        props = {"transpose": BoolAttr.from_bool(True)} if transpose else {}
        h = self.value(aclnn.CreateTensorOp.create(operands=[data], properties=props, result_types=[aclnn.TENSOR]))
        self.releases.append(aclnn.DestroyTensorOp.create(operands=[h]))
        return h

    def scalar(self, value: float) -> SSAValue:
        s = self.value(aclnn.CreateScalarOp.create(properties={"value": FloatAttr(value, f32)},
                                                   result_types=[aclnn.ScalarType()]))  # fmt: skip
        self.releases.append(aclnn.DestroyScalarOp.create(operands=[s]))
        return s

    def int_array(self, values: Sequence[int]) -> SSAValue:
        a = self.value(aclnn.CreateIntArrayOp.create(attributes={"values": DenseArrayBase.from_list(i64, values)},
                                                     result_types=[aclnn.IntArrayType()]))  # fmt: skip
        self.releases.append(aclnn.DestroyIntArrayOp.create(operands=[a]))
        return a

    def call(self, query: type[aclnn.WorkspaceQuery], *operands: SSAValue | Sequence[SSAValue],
             properties: dict[str, Attribute] | None = None) -> None:  # fmt: skip
        """First phase, workspace, launch, synchronisation, free: one two-phase call."""
        size, executor = self.emit(query.build(operands=list(operands), properties=properties or {},
                                               result_types=[i64, aclnn.EXECUTOR])).results  # fmt: skip
        ws = self.value(aclnn.MallocWorkspaceOp.create(operands=[size], result_types=[aclnn.BUFFER]))
        self.emit(aclnn.LaunchOp.create(operands=[ws, size, executor], properties={"api": StringAttr(query.API)}))
        self.emit(aclnn.SynchronizeStreamOp.create())
        self.emit(aclnn.FreeOp.create(operands=[ws]))

    def release(self) -> None:
        for op in reversed(self.releases):
            self.emit(op)
        self.releases.clear()


def dtype_cast(seq: CallSequence, value: SSAValue, dtype: str) -> SSAValue:
    """aclnnCast of `value` into a new buffer of `dtype`, same shape."""
    t = value.type
    assert isinstance(t, TensorType)
    out = seq.alloc(TensorType(element_attr(dtype), t.get_shape()), [(value, a) for a in range(len(t.get_shape()))])
    seq.call(aclnn.CastGetWorkspaceSizeOp, seq.handle(value), seq.handle(out))
    return out


def enclosing_function(op: Operation) -> func.FuncOp:
    fn = op.parent_op()
    while not isinstance(fn, func.FuncOp):
        assert fn is not None, f"{op.name} outside a function"
        fn = fn.parent_op()
    return fn
