"""The `qmm` dialect: the unfused quantised-matmul + all-reduce chain, op by op.

Generic names, operand order and properties follow SEMANTICS.md; the collectives take a
`group` name and a `world_size`, in the manner of MLIR's Shard collectives.  A dynamic
dimension `?` passes every static check; the interpreter checks it at run time.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, cast

from typing_extensions import TypeVar
from xdsl.dialects.builtin import I64, BoolAttr, IntegerAttr, StringAttr, TensorType, i64
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    AttrConstraint,
    AttrSizedOperandSegments,
    IntConstraint,
    IRDLOperation,
    VarConstraint,
    VerificationContext,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from qmmar.dialects.dtypes import (
    DEQUANT_SCALE_DTYPES,
    OUTPUT_DTYPES,
    dtype_name,
    element_attr,
    shape_of,
    static_shape,
)
from qmmar.dialects.logic import Truth
from qmmar.dialects.shapes import (
    STATIC,
    Shape,
    allgather_shape,
    alltoall_shape,
    channel_vector,
    contraction,
    divides,
    matmul_shape,
    pertoken_vector,
    reduce_scatter_shape,
    reducesum_shape,
    same_shape,
)


@dataclass(frozen=True)
class TensorOf(AttrConstraint[TensorType]):
    """A ranked tensor whose element type is one of `dtypes` (names as in `dtypes.py`); else
    the op's own sentence, which xDSL's parser reports while it reads the op's types."""

    dtypes: frozenset[str]
    message: str

    def verify(self, attr: Attribute, constraint_context: VerificationContext) -> None:
        # By name: comparing type attributes hashes them, which costs more than parsing them.
        if not (isinstance(attr, TensorType) and dtype_name(attr.element_type) in self.dtypes):
            raise VerifyException(self.message)

    def get_bases(self) -> set[type[Attribute]]:
        return {TensorType}

    def mapping_type_vars(self, type_var_mapping: Mapping[TypeVar, AttrConstraint | IntConstraint]) -> TensorOf:
        return self


def tensor_of(*dtypes: str, message: str) -> TensorOf:
    return TensorOf(frozenset(dtypes), message)


def require(verdict: Truth, message: str) -> None:
    """Fail only on a definite violation: an undecided (dynamic) check moves to run time."""
    if verdict is False:
        raise VerifyException(message)


def tensor_type_of(value: SSAValue) -> TensorType:
    """The value's type, a tensor: the op's IRDL constraints checked it before its verifier
    runs, and a builder's operand is one by its contract."""
    return cast(TensorType, value.type)


def shape(value: SSAValue, name: str) -> Shape:
    """The value's shape, dynamic dimensions named after `name`."""
    return shape_of(tensor_type_of(value), name)


def element(value: SSAValue) -> str:
    return dtype_name(tensor_type_of(value).element_type)


def tensor(dims: Shape, element_type: Attribute) -> TensorType:
    return TensorType(element_type, static_shape(dims))


def _group(group: str | StringAttr) -> StringAttr:
    return StringAttr(group) if isinstance(group, str) else group


def _world_size(world_size: int | IntegerAttr) -> IntegerAttr:
    return IntegerAttr(world_size, i64) if isinstance(world_size, int) else world_size


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """acc = x1 @ x2 (+ bias): int8 x int8 -> int32, exact; x1 is [m, k] or [b, s, k]."""

    name = "qmm.matmul"
    x1 = operand_def(tensor_of("i8", message="x1 and x2 must be int8"))
    x2 = operand_def(tensor_of("i8", message="x1 and x2 must be int8"))
    bias = opt_operand_def(tensor_of("i32", message="bias must be int32 [n]"))
    transpose_x2 = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    result = result_def(tensor_of("i32", message="the result must be int32"))
    traits = traits_def(Pure())
    assembly_format = (
        "$x1 `,` $x2 (`bias` `(` $bias^ `)`)? (`transpose_x2` `=` $transpose_x2^)? "
        "attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, x1: SSAValue, x2: SSAValue, bias: SSAValue | None = None,
                 transpose_x2: bool | BoolAttr = False, result_type: TensorType | None = None):  # fmt: skip
        """The result type is x1's leading dimensions + [n], int32, unless given (a refinement)."""
        transpose = BoolAttr.from_bool(transpose_x2) if isinstance(transpose_x2, bool) else transpose_x2
        if result_type is None:
            dims = matmul_shape(shape(x1, "x1"), shape(x2, "x2"), bool(transpose.value.data))
            result_type = tensor(dims, element_attr("i32"))
        super().__init__(operands=[x1, x2, [bias] if bias else []], result_types=[result_type],
                         properties={"transpose_x2": transpose})  # fmt: skip

    def verify_(self) -> None:
        s1, s2, sr = shape(self.x1, "x1"), shape(self.x2, "x2"), shape(self.result, "result")
        require(len(s1) in (2, 3), "x1 must be 2-D [m, k] or 3-D [b, s, k]")
        require(len(s2) == 2, "x2 must be 2-D")
        k, n = contraction(s2, bool(self.transpose_x2.value.data))
        require(STATIC.eq(s1[-1], k), "the k dimensions of x1 and x2 must be equal")
        if self.bias is not None:
            require(same_shape(shape(self.bias, "bias"), (n,), STATIC), "bias must be int32 [n]")
        require(same_shape(sr, matmul_shape(s1, s2, bool(self.transpose_x2.value.data)), STATIC),
                "the result must be x1's leading dims + [n]")  # fmt: skip


_SCALE_DTYPES = "the scale of an int32 input must be bf16, f32, int64 or uint64; of an int8 input, f16 or bf16"


@irdl_op_definition
class DequantOp(IRDLOperation):
    """int32 -> D with a dequant scale (and pertoken scale); int8 -> D with a comm scale."""

    name = "qmm.dequant"
    x = operand_def(tensor_of("i32", "i8", message="x must be int32 (a matmul) or int8 (a reduction)"))
    scale = operand_def(tensor_of(*DEQUANT_SCALE_DTYPES, *OUTPUT_DTYPES, message=_SCALE_DTYPES))
    pertoken = opt_operand_def(tensor_of("f32", message="pertoken must be f32"))
    result = result_def(tensor_of(*OUTPUT_DTYPES, message="the result must be f16 or bf16"))
    traits = traits_def(Pure())
    assembly_format = "$x `,` $scale (`pertoken` `(` $pertoken^ `)`)? attr-dict `:` functional-type(operands, results)"

    def __init__(self, x: SSAValue, scale: SSAValue, output: Attribute, pertoken: SSAValue | None = None):
        """The result has x's shape and the element type `output` (f16 or bf16)."""
        super().__init__(operands=[x, scale, [pertoken] if pertoken else []],
                         result_types=[tensor(shape(x, "x"), output)])  # fmt: skip

    def verify_(self) -> None:
        sx, ss = shape(self.x, "x"), shape(self.scale, "scale")
        require(same_shape(sx, shape(self.result, "result"), STATIC), "the result must have x's shape")
        if element(self.x) == "i32":
            require(element(self.scale) in DEQUANT_SCALE_DTYPES,
                    "the scale of an int32 input must be bf16, f32, int64 or uint64")  # fmt: skip
        else:
            require(element(self.scale) in OUTPUT_DTYPES, "the scale of an int8 input must be f16 or bf16")
            require(self.pertoken is None, "pertoken applies to an int32 input only")
        require(channel_vector(ss, sx[-1], STATIC, per_tensor=True), "scale must be [1], [n] or [1, n]")
        if self.pertoken is not None:
            require(pertoken_vector(shape(self.pertoken, "pertoken"), sx[:-1], STATIC),
                    "pertoken must be [m] (m = b*s for a 3-D input)")  # fmt: skip


@irdl_op_definition
class AddOp(IRDLOperation):
    """z = D(f32(lhs) + f32(rhs))."""

    name = "qmm.add"
    T: ClassVar = VarConstraint("T", tensor_of(*OUTPUT_DTYPES, message="qmm.add works on f16 or bf16"))
    lhs = operand_def(T)
    rhs = operand_def(T)
    result = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` type($result)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue):
        super().__init__(operands=[lhs, rhs], result_types=[lhs.type])


@irdl_op_definition
class QuantOp(IRDLOperation):
    """q = sat8(f16(f32(x) / f32(scale))): D -> int8, per channel."""

    name = "qmm.quant"
    x = operand_def(tensor_of(*OUTPUT_DTYPES, message="x and scale must both be f16 or both bf16"))
    scale = operand_def(tensor_of(*OUTPUT_DTYPES, message="x and scale must both be f16 or both bf16"))
    result = result_def(tensor_of("i8", message="the result must be int8 of x's shape"))
    traits = traits_def(Pure())
    assembly_format = "$x `,` $scale attr-dict `:` functional-type(operands, results)"

    def __init__(self, x: SSAValue, scale: SSAValue):
        super().__init__(operands=[x, scale], result_types=[tensor(shape(x, "x"), element_attr("i8"))])

    def verify_(self) -> None:
        sx = shape(self.x, "x")
        require(element(self.x) == element(self.scale), "x and scale must both be f16 or both bf16")
        require(same_shape(sx, shape(self.result, "result"), STATIC), "the result must be int8 of x's shape")
        require(channel_vector(shape(self.scale, "scale"), sx[-1], STATIC, per_tensor=False),
                "scale must be [n] or [1, n]")  # fmt: skip


class CollectiveOp(IRDLOperation, ABC):
    """A collective over the ranks of one communication group."""

    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])

    def verify_properties(self) -> int:
        """Check the properties; the world size."""
        w = self.world_size.value.data
        require(w >= 1, "world_size must be at least 1")
        return w


class SumCollectiveOp(CollectiveOp, ABC):
    """A collective whose result is step 4's sum over ranks: f32, in rank order from rank 0's
    value, one rounding to D."""

    reduce_op = prop_def(StringAttr, default_value=StringAttr("sum"))

    def verify_properties(self) -> int:
        w = super().verify_properties()
        require(self.reduce_op.data == "sum", 'reduce_op must be "sum"')
        return w


class RowCollectiveOp(CollectiveOp, ABC):
    """A collective that moves rows: its result's shape differs from x's."""

    x = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$x `on` $group `world_size` `=` $world_size attr-dict `:` type($x) `->` type($result)"

    def __init__(self, x: SSAValue, group: str | StringAttr, world_size: int | IntegerAttr):
        w = _world_size(world_size)
        dims = self.result_shape(shape(x, "x"), w.value.data)
        super().__init__(operands=[x], result_types=[tensor(dims, tensor_type_of(x).element_type)],
                         properties={"group": _group(group), "world_size": w})  # fmt: skip

    @staticmethod
    def result_shape(x: Shape, world_size: int) -> Shape:
        raise NotImplementedError

    def verify_(self) -> None:
        w = self.verify_properties()
        sx = shape(self.x, "x")
        require(len(sx) >= 1, "x must have a leading dimension")
        require(element(self.x) == element(self.result), "the result must have x's element type")
        self.verify_rows(sx, w)
        require(same_shape(shape(self.result, "result"), self.result_shape(sx, w), STATIC), self.SHAPE_RULE)

    SHAPE_RULE: ClassVar[str]

    def verify_rows(self, x: Shape, world_size: int) -> None:
        """Row checks beyond the result shape (none by default)."""


@irdl_op_definition
class AllToAllOp(RowCollectiveOp):
    """[d0, ...] -> [W, d0/W, ...]: result[j] is this rank's chunk of rank j's x."""

    name = "qmm.alltoall"
    SHAPE_RULE: ClassVar[str] = "the result must be [world_size, d0 / world_size, ...]"

    @staticmethod
    def result_shape(x: Shape, world_size: int) -> Shape:
        return alltoall_shape(x, world_size)

    def verify_rows(self, x: Shape, world_size: int) -> None:
        require(divides(world_size, x[0]), "x's leading dim must be divisible by world_size")


@irdl_op_definition
class ReduceSumOp(IRDLOperation):
    """Sum over axis 0 ([W, c, ...] -> [c, ...]): int8 with scales s1, s2, or D without."""

    name = "qmm.reducesum"
    SHAPE_RULE: ClassVar[str] = "the result must be x without its leading dim"
    x = operand_def(tensor_of("i8", *OUTPUT_DTYPES, message="x must be int8 (with scales) or f16 or bf16"))
    s1 = opt_operand_def(tensor_of(*OUTPUT_DTYPES, message="s1 must be f16 or bf16"))
    s2 = opt_operand_def(tensor_of(*OUTPUT_DTYPES, message="s2 must be f16 or bf16"))
    result = result_def(tensor_of("i8", *OUTPUT_DTYPES, message=SHAPE_RULE))
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(Pure())
    assembly_format = (
        "$x (`s1` `(` $s1^ `:` type($s1) `)`)? (`s2` `(` $s2^ `:` type($s2) `)`)? "
        "attr-dict `:` type($x) `->` type($result)"
    )

    def __init__(self, x: SSAValue, s1: SSAValue | None = None, s2: SSAValue | None = None):
        """The result is x without its leading dimension, of x's element type."""
        dims = reducesum_shape(shape(x, "x"))
        super().__init__(operands=[x, [s1] if s1 else [], [s2] if s2 else []],
                         result_types=[tensor(dims, tensor_type_of(x).element_type)])  # fmt: skip

    def verify_(self) -> None:
        sx = shape(self.x, "x")
        require(len(sx) >= 2, "x must be [world_size, c, ...]")
        same = same_shape(shape(self.result, "result"), reducesum_shape(sx), STATIC)
        require(same is not False and element(self.x) == element(self.result), self.SHAPE_RULE)
        require((self.s1 is None) == (self.s2 is None), "s1 and s2 must both be given or both absent")
        if self.s1 is None:
            require(element(self.x) in OUTPUT_DTYPES, "without scales, x must be f16 or bf16")
            return
        require(element(self.x) == "i8", "with scales, x must be int8")
        for name in ("s1", "s2"):
            require(channel_vector(shape(getattr(self, name), name), sx[-1], STATIC, per_tensor=False),
                    f"{name} must be [n] or [1, n]")  # fmt: skip


@irdl_op_definition
class AllGatherOp(RowCollectiveOp):
    """[c, ...] -> [W*c, ...]: every rank's x, concatenated in rank order."""

    name = "qmm.allgather"
    SHAPE_RULE: ClassVar[str] = "the result must be [world_size * c, ...]"

    @staticmethod
    def result_shape(x: Shape, world_size: int) -> Shape:
        return allgather_shape(x, world_size)


@irdl_op_definition
class AllReduceOp(SumCollectiveOp):
    """out = D(sum over ranks of f32(x)), in rank order; every rank receives out."""

    name = "qmm.all_reduce"
    T: ClassVar = VarConstraint("T", tensor_of(*OUTPUT_DTYPES, message="qmm.all_reduce works on f16 or bf16"))
    x = operand_def(T)
    result = result_def(T)
    assembly_format = (
        "$x `on` $group `world_size` `=` $world_size (`reduce_op` `=` $reduce_op^)? attr-dict `:` type($result)"
    )

    def __init__(self, x: SSAValue, group: str | StringAttr, world_size: int | IntegerAttr):
        super().__init__(operands=[x], result_types=[x.type],
                         properties={"group": _group(group), "world_size": _world_size(world_size)})  # fmt: skip

    def verify_(self) -> None:
        self.verify_properties()


@irdl_op_definition
class ReduceScatterOp(RowCollectiveOp, SumCollectiveOp):
    """[m, ...] -> [m/W, ...]: the all-reduce's sum, of which rank r keeps rows r*m/W .. (r+1)*m/W - 1."""

    name = "qmm.reduce_scatter"
    SHAPE_RULE: ClassVar[str] = "the result must be [m / world_size, ...]"
    x = operand_def(tensor_of(*OUTPUT_DTYPES, message="qmm.reduce_scatter works on f16 or bf16"))
    result = result_def(tensor_of(*OUTPUT_DTYPES, message="qmm.reduce_scatter works on f16 or bf16"))
    assembly_format = (
        "$x `on` $group `world_size` `=` $world_size (`reduce_op` `=` $reduce_op^)? attr-dict "
        "`:` type($x) `->` type($result)"
    )

    @staticmethod
    def result_shape(x: Shape, world_size: int) -> Shape:
        return reduce_scatter_shape(x, world_size)

    def verify_rows(self, x: Shape, world_size: int) -> None:
        require(divides(world_size, x[0]), "x's leading dim m must be divisible by world_size")


Qmm = Dialect(
    "qmm",
    [MatmulOp, DequantOp, AddOp, QuantOp, AllToAllOp, ReduceSumOp, AllGatherOp, AllReduceOp, ReduceScatterOp],
)
