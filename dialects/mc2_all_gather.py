"""`mc2.all_gather_quant_matmul`: Ascend's fused all-gather + int8 matmul + dequant,
aclnnAllGatherMatmulV2 with commMode "aiv" (Atlas A2 and A3).

Per rank: output = dequant(allgather(x1) @ x2, x2_scale, allgather(x1_scale)), [W*m, n] and the
same on every rank; gather_out = allgather(x1), [W*m, k].  Operands follow the aclnn signature;
the verifier is the rule table of `agmm_rules` for the module's SoC.
"""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import I64, BoolAttr, DenseArrayBase, IntegerAttr, StringAttr, TensorType, i32, i64
from xdsl.ir import Operation, SSAValue
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

from qmmar.dialects import rules
from qmmar.dialects.agmm_rules import COMM_MODE, OPERANDS, TABLES, Signature
from qmmar.dialects.mc2_rules import TensorSig
from qmmar.dialects.qmm import shape, tensor, tensor_type_of
from qmmar.dialects.shapes import allgather_shape
from qmmar.dialects.target import verified_target

_ZERO = IntegerAttr(0, i64)


@irdl_op_definition
class AllGatherQuantMatmulOp(IRDLOperation):
    """output = D(f32(allgather(x1) @ x2) * x2_scale [* allgather(x1_scale)]), and
    gather_out = allgather(x1).

    Operand types are checked by the rule table, not by IRDL constraints, so that every
    violation names its rule id."""

    name = "mc2.all_gather_quant_matmul"
    x1 = operand_def(TensorType)
    x2 = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    x1_scale = opt_operand_def(TensorType)
    x2_scale = opt_operand_def(TensorType)

    group = prop_def(StringAttr)
    world_size = prop_def(IntegerAttr[I64])
    comm_mode = prop_def(StringAttr, default_value=StringAttr(COMM_MODE))
    gather_index = prop_def(IntegerAttr[I64], default_value=_ZERO)
    comm_turn = prop_def(IntegerAttr[I64], default_value=_ZERO)
    stream_mode = prop_def(IntegerAttr[I64], default_value=IntegerAttr(1, i64))
    group_size = prop_def(IntegerAttr[I64], default_value=_ZERO)
    block_size = prop_def(IntegerAttr[I64], default_value=_ZERO)
    transpose_x2 = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    output = result_def(TensorType)
    gather_out = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(Pure())
    assembly_format = (
        "$x1 `,` $x2 (`bias` `(` $bias^ `:` type($bias) `)`)? "
        "(`x1_scale` `(` $x1_scale^ `:` type($x1_scale) `)`)? "
        "(`x2_scale` `(` $x2_scale^ `:` type($x2_scale) `)`)? "
        "`on` $group `world_size` `=` $world_size (`comm_mode` `=` $comm_mode^)? "
        "(`gather_index` `=` $gather_index^)? (`comm_turn` `=` $comm_turn^)? (`stream_mode` `=` $stream_mode^)? "
        "(`group_size` `=` $group_size^)? (`block_size` `=` $block_size^)? (`transpose_x2` `=` $transpose_x2^)? "
        "attr-dict `:` type($x1) `,` type($x2) `->` type($output) `,` type($gather_out)"
    )

    def __init__(self, operands: Mapping[str, SSAValue | None], *, group: str, world_size: int, transpose_x2: bool,
                 output_type: TensorType):  # fmt: skip
        """The op from its operands by name (`OPERANDS`; None or absent: not given); gather_out
        is x1 gathered, [W*m, k] of x1's dtype."""
        values = [operands.get(name) for name in OPERANDS]
        x1 = operands["x1"]
        assert x1 is not None, "x1 is required"
        gathered = tensor(allgather_shape(shape(x1, "x1"), world_size), tensor_type_of(x1).element_type)
        # Operation's own constructor, as `create` uses it: every operand is already in its segment.
        Operation.__init__(
            self,
            operands=[v for v in values if v is not None],
            result_types=[output_type, gathered],
            properties={
                "group": StringAttr(group),
                "world_size": IntegerAttr(world_size, i64),
                "transpose_x2": BoolAttr.from_bool(transpose_x2),
                "operandSegmentSizes": DenseArrayBase.from_list(i32, [int(v is not None) for v in values]),
            },
        )

    def signature(self) -> Signature:
        """The plain description of this op that the rule table reads."""
        tensors = {name: None if (v := getattr(self, name)) is None else TensorSig.of(v.type, name)
                   for name in OPERANDS}  # fmt: skip
        return Signature.build(
            tensors,
            TensorSig.of(self.output.type, "output"),
            TensorSig.of(self.gather_out.type, "gather_out"),
            group=self.group.data,
            world_size=self.world_size.value.data,
            transpose_x2=bool(self.transpose_x2.value.data),
            comm_mode=self.comm_mode.data,
            gather_index=self.gather_index.value.data,
            comm_turn=self.comm_turn.value.data,
            stream_mode=self.stream_mode.value.data,
            group_size=self.group_size.value.data,
            block_size=self.block_size.value.data,
        )

    def verify_(self) -> None:
        if (rule := rules.first_violation(TABLES[verified_target(self).soc], self.signature())) is not None:
            raise VerifyException(rule.message())
