"""The `qmm` dialect: the unfused quantised-matmul + all-reduce chain, op by op.

Generic names, operand order and properties follow SEMANTICS.md; the collectives take a
`group` name and a `world_size`, in the manner of MLIR's Shard collectives.  A dynamic
dimension `?` passes every static check; the interpreter checks it at run time.
"""

from __future__ import annotations

from abc import ABC
from typing import ClassVar

from xdsl.dialects.builtin import BoolAttr, IntegerAttr, StringAttr, TensorType, i64
from xdsl.ir import Dialect
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from qmmar.dialects.dtypes import dtype_name, shape_of
from qmmar.dialects.logic import Dim, StaticLogic

_LOGIC = StaticLogic()
FLOAT_OUT = ("f16", "bf16")


def require(verdict: bool | None, message: str) -> None:
    """Fail only on a definite violation: an undecided (dynamic) check moves to run time."""
    if verdict is False:
        raise VerifyException(message)


def same_dims(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> bool | None:
    if len(a) != len(b):
        return False
    return _LOGIC.all(*(_LOGIC.eq(x, y) for x, y in zip(a, b, strict=True)))


def is_channel_vector(shape: tuple[Dim, ...], n: Dim, per_tensor: bool) -> bool | None:
    """[n] or [1, n]; also [1] when per_tensor."""
    if len(shape) == 1:
        return _LOGIC.any(_LOGIC.eq(shape[0], n), per_tensor and _LOGIC.eq(shape[0], 1))
    if len(shape) == 2:
        return _LOGIC.all(_LOGIC.eq(shape[0], 1), _LOGIC.eq(shape[1], n))
    return False


def contraction(x2_shape: tuple[Dim, ...], transpose_x2: bool) -> tuple[Dim, Dim]:
    """(k, n) of a 2-D x2: [k, n], or [n, k] when transposed."""
    return (x2_shape[1], x2_shape[0]) if transpose_x2 else (x2_shape[0], x2_shape[1])


def typed(op: IRDLOperation, value_name: str) -> tuple[str, tuple[Dim, ...]]:
    """(element type name, shape) of an operand or result, which must be a ranked tensor."""
    value = getattr(op, value_name)
    if not isinstance(value.type, TensorType):
        raise VerifyException(f"{value_name} must be a ranked tensor, got {value.type}")
    return dtype_name(value.type.element_type), shape_of(value.type, value_name)


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """acc = x1 @ x2 (+ bias): int8 x int8 -> int32, exact; x1 is [m, k] or [b, s, k]."""

    name = "qmm.matmul"
    x1 = operand_def(TensorType)
    x2 = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    transpose_x2 = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = (
        "$x1 `,` $x2 (`bias` `(` $bias^ `)`)? (`transpose_x2` `=` $transpose_x2^)? "
        "attr-dict `:` functional-type(operands, results)"
    )

    def verify_(self) -> None:
        (t1, s1), (t2, s2), (tr, sr) = (typed(self, n) for n in ("x1", "x2", "result"))
        require(t1 == "i8" and t2 == "i8", "x1 and x2 must be int8")
        require(len(s1) in (2, 3), "x1 must be 2-D [m, k] or 3-D [b, s, k]")
        require(len(s2) == 2, "x2 must be 2-D")
        k, n = contraction(s2, bool(self.transpose_x2.value.data))
        require(_LOGIC.eq(s1[-1], k), "the k dimensions of x1 and x2 must be equal")
        if self.bias is not None:
            tb, sb = typed(self, "bias")
            require(tb == "i32" and len(sb) == 1 and _LOGIC.eq(sb[0], n), "bias must be int32 [n]")
        require(tr == "i32", "the result must be int32")
        require(same_dims(sr, (*s1[:-1], n)), "the result must be x1's leading dims + [n]")


@irdl_op_definition
class DequantOp(IRDLOperation):
    """int32 -> D with a dequant scale (and pertoken scale); int8 -> D with a comm scale."""

    name = "qmm.dequant"
    x = operand_def(TensorType)
    scale = operand_def(TensorType)
    pertoken = opt_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$x `,` $scale (`pertoken` `(` $pertoken^ `)`)? attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        (tx, sx), (ts, ss), (tr, sr) = (typed(self, n) for n in ("x", "scale", "result"))
        require(tx in ("i32", "i8"), "x must be int32 (a matmul) or int8 (a reduction)")
        require(tr in FLOAT_OUT, "the result must be f16 or bf16")
        require(same_dims(sx, sr), "the result must have x's shape")
        if tx == "i32":
            require(
                ts in ("bf16", "f32", "i64", "ui64"), "the scale of an int32 input must be bf16, f32, int64 or uint64"
            )
        else:
            require(ts in FLOAT_OUT, "the scale of an int8 input must be f16 or bf16")
            require(self.pertoken is None, "pertoken applies to an int32 input only")
        require(is_channel_vector(ss, sx[-1], per_tensor=True), "scale must be [1], [n] or [1, n]")
        if self.pertoken is not None:
            tp, sp = typed(self, "pertoken")
            require(tp == "f32", "pertoken must be f32")
            require(
                len(sp) == 1 and _LOGIC.eq(sp[0], _LOGIC.prod(sx[:-1])),
                "pertoken must be [m] (m = b*s for a 3-D input)",
            )


@irdl_op_definition
class AddOp(IRDLOperation):
    """z = D(f32(lhs) + f32(rhs))."""

    name = "qmm.add"
    T: ClassVar = VarConstraint("T", base(TensorType))
    lhs = operand_def(T)
    rhs = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` type($result)"

    def verify_(self) -> None:
        require(typed(self, "result")[0] in FLOAT_OUT, "qmm.add works on f16 or bf16")


@irdl_op_definition
class QuantOp(IRDLOperation):
    """q = sat8(f16(f32(x) / f32(scale))): D -> int8, per channel."""

    name = "qmm.quant"
    x = operand_def(TensorType)
    scale = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$x `,` $scale attr-dict `:` functional-type(operands, results)"

    def verify_(self) -> None:
        (tx, sx), (ts, ss), (tr, sr) = (typed(self, n) for n in ("x", "scale", "result"))
        require(tx in FLOAT_OUT and ts == tx, "x and scale must both be f16 or both bf16")
        require(tr == "i8" and same_dims(sx, sr), "the result must be int8 of x's shape")
        require(is_channel_vector(ss, sx[-1], per_tensor=False), "scale must be [n] or [1, n]")


class CollectiveOp(IRDLOperation, ABC):
    """A collective over the ranks of one communication group."""

    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[i64])

    def verify_world_size(self) -> int:
        w = self.world_size.value.data
        require(w >= 1, "world_size must be at least 1")
        return w


class RowCollectiveOp(CollectiveOp, ABC):
    """A collective that moves rows: its result's shape differs from x's."""

    x = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$x `on` $group `world_size` `=` $world_size attr-dict `:` type($x) `->` type($result)"


@irdl_op_definition
class AllToAllOp(RowCollectiveOp):
    """[d0, ...] -> [W, d0/W, ...]: result[j] is this rank's chunk of rank j's x."""

    name = "qmm.alltoall"

    def verify_(self) -> None:
        w = self.verify_world_size()
        (tx, sx), (tr, sr) = typed(self, "x"), typed(self, "result")
        require(len(sx) >= 1, "x must have a leading dimension to split")
        require(tx == tr, "the result must have x's element type")
        d0 = sx[0]
        require(isinstance(d0, str) or d0 % w == 0, "x's leading dim must be divisible by world_size")
        chunk = d0 if isinstance(d0, str) else d0 // w
        require(same_dims(sr, (w, chunk, *sx[1:])), "the result must be [world_size, d0 / world_size, ...]")


@irdl_op_definition
class ReduceSumOp(IRDLOperation):
    """Sum over axis 0 ([W, c, ...] -> [c, ...]): int8 with scales s1, s2, or D without."""

    name = "qmm.reducesum"
    x = operand_def(TensorType)
    s1 = opt_operand_def(TensorType)
    s2 = opt_operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(Pure())
    assembly_format = (
        "$x (`s1` `(` $s1^ `:` type($s1) `)`)? (`s2` `(` $s2^ `:` type($s2) `)`)? "
        "attr-dict `:` type($x) `->` type($result)"
    )

    def verify_(self) -> None:
        (tx, sx), (tr, sr) = typed(self, "x"), typed(self, "result")
        require(len(sx) >= 2, "x must be [world_size, c, ...]")
        require(same_dims(sr, sx[1:]) and tx == tr, "the result must be x without its leading dim")
        require((self.s1 is None) == (self.s2 is None), "s1 and s2 must both be given or both absent")
        if self.s1 is None:
            require(tx in FLOAT_OUT, "without scales, x must be f16 or bf16")
            return
        require(tx == "i8", "with scales, x must be int8")
        for name in ("s1", "s2"):
            ts, ss = typed(self, name)
            require(ts in FLOAT_OUT, f"{name} must be f16 or bf16")
            require(is_channel_vector(ss, sx[-1], per_tensor=False), f"{name} must be [n] or [1, n]")


@irdl_op_definition
class AllGatherOp(RowCollectiveOp):
    """[c, ...] -> [W*c, ...]: every rank's x, concatenated in rank order."""

    name = "qmm.allgather"

    def verify_(self) -> None:
        w = self.verify_world_size()
        (tx, sx), (tr, sr) = typed(self, "x"), typed(self, "result")
        require(len(sx) >= 1 and tx == tr, "x must be a tensor of the result's element type")
        d0 = sx[0] if isinstance(sx[0], str) else sx[0] * w
        require(same_dims(sr, (d0, *sx[1:])), "the result must be [world_size * c, ...]")


@irdl_op_definition
class AllReduceOp(CollectiveOp):
    """out = D(sum over ranks of f32(x)), in rank order; every rank receives out."""

    name = "qmm.all_reduce"
    T: ClassVar = VarConstraint("T", base(TensorType))
    x = operand_def(T)
    reduce_op = prop_def(StringAttr, default_value=StringAttr("sum"))
    result = result_def(T)
    assembly_format = (
        "$x `on` $group `world_size` `=` $world_size (`reduce_op` `=` $reduce_op^)? attr-dict `:` type($result)"
    )

    def verify_(self) -> None:
        self.verify_world_size()
        require(self.reduce_op.data == "sum", 'reduce_op must be "sum"')
        require(typed(self, "x")[0] in FLOAT_OUT, "qmm.all_reduce works on f16 or bf16")


Qmm = Dialect(
    "qmm",
    [MatmulOp, DequantOp, AddOp, QuantOp, AllToAllOp, ReduceSumOp, AllGatherOp, AllReduceOp],
)
