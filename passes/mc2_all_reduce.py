"""The family member `mc2.quant_matmul_all_reduce` (aclnnQuantMatmulAllReduceV3): its chain
shape (`chain.py`), its rules (`legality.py`, over `dialects.mc2_rules`) and its op."""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from qmmar.dialects.mc2 import QuantMatmulAllReduceOp
from qmmar.dialects.mc2_rules import TABLES
from qmmar.dialects.qmm import AllReduceOp, DequantOp
from qmmar.passes.chain import match_chains, why_not_a_chain
from qmmar.passes.family import FusedOpKind
from qmmar.passes.legality import KIND, judge


def build(operands: Mapping[str, SSAValue | None], properties: Mapping[str, str | int | bool],
          output_type: TensorType) -> QuantMatmulAllReduceOp:  # fmt: skip
    return QuantMatmulAllReduceOp.of_operands(
        operands, group=str(properties["group"]), world_size=int(properties["world_size"]),
        transpose_x2=bool(properties["transpose_x2"]), output_type=output_type,
    )  # fmt: skip


# Atlas A2 only: A3 has no MatmulAllReduce, and its chains are the A3 form's (mc2_all_reduce_a3.py)
QUANT_MATMUL_ALL_REDUCE = FusedOpKind(
    KIND, (AllReduceOp, DequantOp), match_chains, judge, why_not_a_chain, build, socs=tuple(TABLES),
    torch_op="quant_matmul_all_reduce",
)  # fmt: skip
