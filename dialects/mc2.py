"""The `mc2` dialect: Ascend's fused quantised matmul + all-reduce, aclnnQuantMatmulAllReduceV3.

Operands follow the aclnn signature; the verifier reads the rule table of `mc2_rules`, the
one home of the operator's constraints.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from xdsl.dialects.builtin import I64, BoolAttr, DenseArrayBase, IntegerAttr, StringAttr, TensorType, i32, i64
from xdsl.ir import Dialect, Operation, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from qmmar.dialects.dtypes import PACKED_SCALE_DTYPES, element_attr, output_dtype_for_scale
from qmmar.dialects.mc2_all_gather import AllGatherQuantMatmulOp
from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.mc2_rules import NOT_ON_A3, OPERANDS, SOC_RULE, TABLES, Signature, TensorSig, first_violation
from qmmar.dialects.qmm import element, require, shape, tensor, tensor_of
from qmmar.dialects.shapes import STATIC, matmul_shape, same_shape
from qmmar.dialects.target import verified_target


@cache
def _segments(present: tuple[bool, ...]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i32, [int(p) for p in present])


def _opt(name: str) -> str:
    return f"(`{name}` `(` ${name}^ `:` type(${name}) `)`)? "


@irdl_op_definition
class QuantMatmulAllReduceOp(IRDLOperation):
    """out = allreduce(dequant(x1 @ x2 + bias) + x3), optionally with int8 communication.

    Operand types are checked by the rule table, not by IRDL constraints, so that every
    violation names its rule id."""

    name = "mc2.quant_matmul_all_reduce"
    x1 = operand_def(TensorType)
    x2 = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    x3 = opt_operand_def(TensorType)
    dequant_scale = operand_def(TensorType)
    pertoken_scale = opt_operand_def(TensorType)
    comm_quant_scale_1 = opt_operand_def(TensorType)
    comm_quant_scale_2 = opt_operand_def(TensorType)

    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])
    reduce_op = prop_def(StringAttr, default_value=StringAttr("sum"))
    comm_turn = prop_def(IntegerAttr[I64], default_value=IntegerAttr(0, i64))
    stream_mode = prop_def(IntegerAttr[I64], default_value=IntegerAttr(1, i64))
    transpose_x2 = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    output = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(Pure())
    assembly_format = (
        "$x1 `,` $x2 "
        + _opt("bias")
        + _opt("x3")
        + "`dequant_scale` `(` $dequant_scale `:` type($dequant_scale) `)` "
        + _opt("pertoken_scale")
        + _opt("comm_quant_scale_1")
        + _opt("comm_quant_scale_2")
        + "`on` $group `world_size` `=` $world_size (`reduce_op` `=` $reduce_op^)? "
        + "(`comm_turn` `=` $comm_turn^)? (`stream_mode` `=` $stream_mode^)? "
        + "(`transpose_x2` `=` $transpose_x2^)? "
        + "attr-dict `:` type($x1) `,` type($x2) `->` type($output)"
    )

    def __init__(self, x1: SSAValue, x2: SSAValue, dequant_scale: SSAValue, *, group: str | StringAttr,
                 world_size: int | IntegerAttr, transpose_x2: bool | BoolAttr = False,
                 bias: SSAValue | None = None, x3: SSAValue | None = None,
                 pertoken_scale: SSAValue | None = None,
                 comm_quant_scales: tuple[SSAValue, SSAValue] | None = None,
                 output_type: TensorType | None = None):  # fmt: skip
        """The output type is x1's leading dimensions + [n], bf16 for a bf16 dequant scale and
        f16 otherwise (as MC2-SCALE-DTYPE requires), unless given (a refinement)."""
        transpose = BoolAttr.from_bool(transpose_x2) if isinstance(transpose_x2, bool) else transpose_x2
        if output_type is None:
            dims = matmul_shape(shape(x1, "x1"), shape(x2, "x2"), bool(transpose.value.data))
            output_type = tensor(dims, element_attr(output_dtype_for_scale(element(dequant_scale))))
        s1, s2 = comm_quant_scales or (None, None)
        named = {"x1": x1, "x2": x2, "bias": bias, "x3": x3, "dequant_scale": dequant_scale,
                 "pertoken_scale": pertoken_scale, "comm_quant_scale_1": s1, "comm_quant_scale_2": s2}  # fmt: skip
        self._construct(named, group, world_size, transpose, output_type)

    @classmethod
    def of_operands(cls, operands: Mapping[str, SSAValue | None], *, group: str, world_size: int,
                    transpose_x2: bool, output_type: TensorType) -> QuantMatmulAllReduceOp:  # fmt: skip
        """The op from its operands by name (`OPERANDS`; None or absent: not given)."""
        op = cls.__new__(cls)
        op._construct(operands, group, world_size, BoolAttr.from_bool(transpose_x2), output_type)
        return op

    def _construct(self, named: Mapping[str, SSAValue | None], group: str | StringAttr, world_size: int | IntegerAttr,
                   transpose: BoolAttr, output_type: TensorType) -> None:  # fmt: skip
        operands = [named.get(name) for name in OPERANDS]
        # Operation's own constructor, as `create` uses it: every operand is already in its
        # segment, and IRDL's generic builder costs as much as the rest of a fusion.
        Operation.__init__(
            self,
            operands=[v for v in operands if v is not None],
            result_types=[output_type],
            properties={
                "group": StringAttr(group) if isinstance(group, str) else group,
                "world_size": IntegerAttr(world_size, i64) if isinstance(world_size, int) else world_size,
                "transpose_x2": transpose,
                "operandSegmentSizes": _segments(tuple(v is not None for v in operands)),
            },
        )

    def signature(self) -> Signature:
        """The plain description of this op that the rule table reads."""
        tensors = {name: None if (v := getattr(self, name)) is None else TensorSig.of(v.type, name)
                   for name in OPERANDS}  # fmt: skip
        return Signature.build(
            tensors,
            TensorSig.of(self.output.type, "output"),
            group=self.group.data,
            world_size=self.world_size.value.data,
            transpose_x2=bool(self.transpose_x2.value.data),
            reduce_op=self.reduce_op.data,
            comm_turn=self.comm_turn.value.data,
            stream_mode=self.stream_mode.value.data,
        )

    def verify_(self) -> None:
        if verified_target(self).soc not in TABLES:
            raise VerifyException(f"[{SOC_RULE}] {NOT_ON_A3}")
        if (rule := first_violation(self.signature())) is not None:
            raise VerifyException(rule.message())


@irdl_op_definition
class TransQuantParamOp(IRDLOperation):
    """aclnnTransQuantParamV2 (round_mode 0): an f32 scale packed into uint64 for f16 output."""

    name = "mc2.trans_quant_param"
    scale = operand_def(tensor_of("f32", message="the scale must be f32"))
    result = result_def(
        tensor_of(*PACKED_SCALE_DTYPES, message="the result must be uint64 (or int64) of the scale's shape")
    )
    traits = traits_def(Pure())
    assembly_format = "$scale attr-dict `:` type($scale) `->` type($result)"

    def __init__(self, scale: SSAValue):
        """The result is the scale's shape, uint64."""
        super().__init__(operands=[scale], result_types=[tensor(shape(scale, "scale"), element_attr("ui64"))])

    def verify_(self) -> None:
        require(same_shape(shape(self.scale, "scale"), shape(self.result, "result"), STATIC),
                "the result must be uint64 (or int64) of the scale's shape")  # fmt: skip


Mc2 = Dialect(
    "mc2",
    [
        QuantMatmulAllReduceOp,
        TransQuantParamOp,
        QuantMatmulReduceScatterOp,
        AllGatherQuantMatmulOp,
    ],
)
