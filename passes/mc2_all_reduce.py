"""The family member `mc2.quant_matmul_all_reduce` (aclnnQuantMatmulAllReduceV3): its chain
shape (`chain.py`), its rules (`legality.py`, over `dialects.mc2_rules`) and its op."""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from qmmar.dialects.mc2 import QuantMatmulAllReduceOp
from qmmar.dialects.qmm import AllReduceOp, DequantOp
from qmmar.dialects.target import SOC_NAMES
from qmmar.passes.chain import match_chains, why_not_a_chain
from qmmar.passes.family import FusedOpKind
from qmmar.passes.legality import KIND, judge


def build(operands: Mapping[str, SSAValue | None], properties: Mapping[str, str | int | bool],
          output_type: TensorType) -> QuantMatmulAllReduceOp:  # fmt: skip
    return QuantMatmulAllReduceOp.of_operands(
        operands, group=str(properties["group"]), world_size=int(properties["world_size"]),
        transpose_x2=bool(properties["transpose_x2"]), output_type=output_type,
    )  # fmt: skip


# every SoC: on A3, which has no such operator, each chain's verdict says so (MC2-SOC)
QUANT_MATMUL_ALL_REDUCE = FusedOpKind(
    KIND, (AllReduceOp, DequantOp), match_chains, judge, why_not_a_chain, build, socs=tuple(SOC_NAMES),
    torch_op="quant_matmul_all_reduce",
)  # fmt: skip
