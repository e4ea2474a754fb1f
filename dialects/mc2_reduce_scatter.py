"""`mc2.quant_matmul_reduce_scatter`: Ascend's aclnnMatmulReduceScatterV2 on its int8 path
(commMode "aiv", Atlas A2 and A3).

Per rank, out = reduce_scatter(D(f32(x1 @ x2) * x2_scale [* x1_scale] [+ bias])): rank r keeps
rows r*m/W .. (r+1)*m/W - 1 of the sum over ranks (docs/sequence-parallel.md).  Operands follow
the aclnn signature; the verifier is the rule table of `mrs_rules` for the module's SoC.
"""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import I64, BoolAttr, IntegerAttr, StringAttr, TensorType, i64
from xdsl.ir import SSAValue
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

from qmmar.dialects.mc2_rules import TensorSig
from qmmar.dialects.mrs_rules import COMM_MODE, OPERANDS, TABLES, Signature, first_violation
from qmmar.dialects.target import verified_target


def _int(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


@irdl_op_definition
class QuantMatmulReduceScatterOp(IRDLOperation):
    """The fused int8 matmul, dequant and reduce-scatter of a row-parallel sequence-parallel layer.

    Operand types are checked by the rule table, not by IRDL constraints, so that every
    violation names its rule id."""

    name = "mc2.quant_matmul_reduce_scatter"
    x1 = operand_def(TensorType)
    x2 = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    x1_scale = opt_operand_def(TensorType)
    x2_scale = opt_operand_def(TensorType)
    quant_scale = opt_operand_def(TensorType)

    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])
    reduce_op = prop_def(StringAttr, default_value=StringAttr("sum"))
    comm_turn = prop_def(IntegerAttr[I64], default_value=_int(0))
    stream_mode = prop_def(IntegerAttr[I64], default_value=_int(1))
    group_size = prop_def(IntegerAttr[I64], default_value=_int(0))
    block_size = prop_def(IntegerAttr[I64], default_value=_int(0))
    comm_mode = prop_def(StringAttr, default_value=StringAttr(COMM_MODE))
    transpose_x2 = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    output = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(Pure())
    assembly_format = (
        "$x1 `,` $x2 "
        "(`bias` `(` $bias^ `:` type($bias) `)`)? "
        "(`x1_scale` `(` $x1_scale^ `:` type($x1_scale) `)`)? "
        "(`x2_scale` `(` $x2_scale^ `:` type($x2_scale) `)`)? "
        "(`quant_scale` `(` $quant_scale^ `:` type($quant_scale) `)`)? "
        "`on` $group `world_size` `=` $world_size (`reduce_op` `=` $reduce_op^)? "
        "(`comm_turn` `=` $comm_turn^)? (`stream_mode` `=` $stream_mode^)? "
        "(`group_size` `=` $group_size^)? (`block_size` `=` $block_size^)? "
        "(`comm_mode` `=` $comm_mode^)? (`transpose_x2` `=` $transpose_x2^)? "
        "attr-dict `:` type($x1) `,` type($x2) `->` type($output)"
    )

    def __init__(self, operands: Mapping[str, SSAValue | None], *, group: str, world_size: int,
                 transpose_x2: bool, output_type: TensorType):  # fmt: skip
        """The op from its operands by name (`OPERANDS`; None or absent: not given); the output
        type is the caller's ([m / W, n], f16 or bf16: an f32 x2_scale serves both)."""
        values = [operands.get(name) for name in OPERANDS]
        super().__init__(
            operands=[[] if v is None else [v] for v in values],
            result_types=[output_type],
            properties={
                "group": StringAttr(group),
                "world_size": _int(world_size),
                "transpose_x2": BoolAttr.from_bool(transpose_x2),
            },  # fmt: skip
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
            group_size=self.group_size.value.data,
            block_size=self.block_size.value.data,
            comm_mode=self.comm_mode.data,
        )

    def verify_(self) -> None:
        soc = verified_target(self).soc
        if soc not in TABLES:
            raise VerifyException(f"aclnnMatmulReduceScatterV2 has no int8 path on {soc}")
        if (rule := first_violation(self.signature(), soc)) is not None:
            raise VerifyException(rule.message())
