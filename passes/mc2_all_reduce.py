"""The family member `mc2.quant_matmul_all_reduce` (aclnnQuantMatmulAllReduceV3): its chain
shape (`chain.py`), its rules (`legality.py`, over `dialects.mc2_rules`) and its op."""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from qmmar.dialects.mc2 import QuantMatmulAllReduceOp
from qmmar.dialects.qmm import AllReduceOp, DequantOp
from qmmar.passes.chain import match_chains, why_not_a_chain
from qmmar.passes.family import FusedOpKind
from qmmar.passes.legality import KIND, judge


def build(operands: Mapping[str, SSAValue | None], properties: Mapping[str, str | int | bool],
          output_type: TensorType) -> QuantMatmulAllReduceOp:  # fmt: skip
    s1, s2 = operands["comm_quant_scale_1"], operands["comm_quant_scale_2"]
    x1, x2, scale = operands["x1"], operands["x2"], operands["dequant_scale"]
    assert x1 is not None and x2 is not None and scale is not None, "the plan's operands are complete"
    return QuantMatmulAllReduceOp(
        x1, x2, scale, group=str(properties["group"]), world_size=int(properties["world_size"]),
        transpose_x2=bool(properties["transpose_x2"]), bias=operands["bias"], x3=operands["x3"],
        pertoken_scale=operands["pertoken_scale"], comm_quant_scales=(s1, s2) if s1 and s2 else None,
        output_type=output_type,
    )  # fmt: skip


QUANT_MATMUL_ALL_REDUCE = FusedOpKind(
    KIND, (AllReduceOp, DequantOp), match_chains, judge, why_not_a_chain, build, torch_op="quant_matmul_all_reduce"
)
