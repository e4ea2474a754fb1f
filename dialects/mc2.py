"""The `mc2` dialect: Ascend's fused quantised matmul + all-reduce, aclnnQuantMatmulAllReduceV3.

Operands follow the aclnn signature; the verifier reads the rule table of `mc2_rules`, the
one home of the operator's constraints.
"""

from __future__ import annotations

from xdsl.dialects.builtin import BoolAttr, IntegerAttr, StringAttr, TensorType, i64
from xdsl.ir import Dialect
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

from qmmar.dialects.dtypes import tensor_sig
from qmmar.dialects.mc2_rules import Signature, first_violation
from qmmar.dialects.qmm import require, same_dims, typed

OPTIONAL_OPERANDS = ("bias", "x3", "pertoken_scale", "comm_quant_scale_1", "comm_quant_scale_2")


def _opt(name: str) -> str:
    return f"(`{name}` `(` ${name}^ `:` type(${name}) `)`)? "


@irdl_op_definition
class QuantMatmulAllReduceOp(IRDLOperation):
    """out = allreduce(dequant(x1 @ x2 + bias) + x3), optionally with int8 communication."""

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
    world_size = prop_def(IntegerAttr[i64])
    reduce_op = prop_def(StringAttr, default_value=StringAttr("sum"))
    comm_turn = prop_def(IntegerAttr[i64], default_value=IntegerAttr(0, i64))
    stream_mode = prop_def(IntegerAttr[i64], default_value=IntegerAttr(1, i64))
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

    def signature(self) -> Signature:
        """The plain description of this op that the rule table reads."""

        def sig(name: str):
            value = getattr(self, name)
            return None if value is None else tensor_sig(value.type, name)

        return Signature(
            x1=sig("x1"), x2=sig("x2"), bias=sig("bias"), x3=sig("x3"),
            dequant_scale=sig("dequant_scale"), pertoken_scale=sig("pertoken_scale"),
            comm_quant_scale_1=sig("comm_quant_scale_1"),
            comm_quant_scale_2=sig("comm_quant_scale_2"),
            output=sig("output"), group=self.group.data, reduce_op=self.reduce_op.data,
            comm_turn=self.comm_turn.value.data, stream_mode=self.stream_mode.value.data,
            world_size=self.world_size.value.data,
            transpose_x2=bool(self.transpose_x2.value.data),
        )  # fmt: skip

    def verify_(self) -> None:
        if (rule := first_violation(self.signature())) is not None:
            raise VerifyException(rule.message())


@irdl_op_definition
class TransQuantParamOp(IRDLOperation):
    """aclnnTransQuantParamV2 (round_mode 0): an f32 scale packed into uint64 for f16 output."""

    name = "mc2.trans_quant_param"
    scale = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$scale attr-dict `:` type($scale) `->` type($result)"

    def verify_(self) -> None:
        (ts, ss), (tr, sr) = typed(self, "scale"), typed(self, "result")
        require(ts == "f32", "the scale must be f32")
        require(
            tr in ("ui64", "i64") and same_dims(ss, sr), "the result must be uint64 (or int64) of the scale's shape"
        )


Mc2 = Dialect("mc2", [QuantMatmulAllReduceOp, TransQuantParamOp])
