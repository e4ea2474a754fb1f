"""The A3 form of a quantised matmul + all-reduce chain.  Atlas A3 has no MatmulAllReduce, so

    matmul -> dequant [-> row views] -> all_reduce

becomes `mc2.quant_matmul_reduce_scatter` (aclnnMatmulReduceScatterV2, commMode "aiv"), which
leaves rank r row block r of the sum, [m / W, n], followed by `qmm.allgather` (HcclAllGather)
of those blocks in rank order into [m, n], and the chain's own 3-D view where it ends in one.
In qmmar's numerics that is the all-reduce bit for bit: the reduce-scatter is the all-reduce's
sum restricted to the rank's rows, and the all-gather copies (docs/reduce-scatter.md).  What the
hardware does differently is docs/mc2-family.md section 4's.

The chains are V3's (`chain.match_chains`).  Chain rules refuse what the A3 form cannot take
(int8 communication, x3, an int32 bias), then the fused op's rule table for the SoC
(`dialects.mrs_rules`) judges the signature it would have: `mc2_reduce_scatter.judged`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from xdsl.dialects.builtin import DYNAMIC_INDEX, TensorType
from xdsl.ir import Operation

from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.mrs_rules import RULE_IDS
from qmmar.dialects.qmm import AllGatherOp, AllReduceOp, DequantOp
from qmmar.passes.chain import Chain, match_chains, why_not_a_chain
from qmmar.passes.family import FusedOpKind
from qmmar.passes.legality import LAYOUT, ONE_GROUP, SINGLE_USE, Broken, _end_view
from qmmar.passes.markers import MUST_FUSE
from qmmar.passes.mc2_reduce_scatter import INT32_BIAS, ChainRule, build, judged, operands_of
from qmmar.passes.plan import Finding, FusionPlan, OutputView
from qmmar.passes.policy import POLICY_RULES, Policy

KIND = f"{QuantMatmulReduceScatterOp.name}+{AllGatherOp.name}"
"""Not an op's name: the fused op and its epilogue, the form a chain becomes on Atlas A3."""


def _int8_comm(c: Chain, p: Policy) -> Broken | None:
    return None if not c.int8_comm else (INT8_COMM.sentence, c.collectives[0])


def _x3(c: Chain, p: Policy) -> Broken | None:
    return None if c.add is None else (X3.sentence, c.add)


INT8_COMM: ChainRule[Chain] = ChainRule(
    "CHAIN-A3-INT8-COMM", "on Atlas A3, int8 communication (comm_quant_scale_1/2) has no fused form: there is "
    "no MatmulAllReduce, and aclnnMatmulReduceScatterV2 and aclnnAllGatherMatmulV2 take no "
    "communication-quantisation operand; the chain runs unfused, as separate aclnn and HCCL calls",
    _int8_comm)  # fmt: skip
X3: ChainRule[Chain] = ChainRule(
    "CHAIN-A3-X3", "on Atlas A3, the chain cannot add x3: aclnnMatmulReduceScatterV2 has no x3, and the "
    "all-reduce sums every rank's x3 (world_size of them), which the A3 form could only add after its "
    "all-gather, rounding once more; the chain runs unfused (an add after the all-reduce is outside the chain "
    "and does not stop it)", _x3)  # fmt: skip

CHAIN_RULES: tuple[ChainRule[Chain], ...] = (
    ChainRule(SINGLE_USE.id, SINGLE_USE.sentence, SINGLE_USE.check),
    ChainRule(ONE_GROUP.id, ONE_GROUP.sentence, ONE_GROUP.check),
    INT8_COMM,
    X3,
    INT32_BIAS,
    ChainRule(LAYOUT.id, LAYOUT.sentence, LAYOUT.check),
)
RULE_ORDER = {rule_id: i for i, rule_id in enumerate([*(r.id for r in CHAIN_RULES), *RULE_IDS, *POLICY_RULES])}
"""Every rule in the order it is checked: how far a chain got before one stopped it."""


def _output(c: Chain) -> tuple[TensorType, OutputView | None]:
    """The fused op's [m / W, n] output (m the rows of the chain's end), and the view of the
    all-gather's [m, n] that replaces a 3-D end.  A world_size that does not divide m leaves
    its rows short, which MRS-M-DIVISIBLE refuses."""
    end = c.result_type
    *leading, n = end.get_shape()
    rows = DYNAMIC_INDEX if DYNAMIC_INDEX in leading else math.prod(leading) // c.world_size
    return TensorType(end.element_type, [rows, n]), _end_view(c) if len(leading) == 2 else None


def judge(chain: Chain, policy: Policy) -> FusionPlan:
    """The chain rules, then the reduce-scatter op's own judgement (`judged`): one plan."""
    properties: dict[str, str | int | bool] = {"group": chain.group, "world_size": chain.world_size,
                                               "transpose_x2": bool(chain.matmul.transpose_x2.value.data)}  # fmt: skip
    must_fuse = MUST_FUSE in chain.root.attributes or MUST_FUSE in chain.end.attributes
    plan = FusionPlan(KIND, chain, operands_of(chain), properties, chain.result_type, None, must_fuse=must_fuse)
    for rule in CHAIN_RULES:
        if (broken := rule.check(chain, policy)) is not None:
            return dataclasses.replace(plan, finding=Finding(rule.id, *broken), progress=RULE_ORDER[rule.id])
    output_type, view = _output(chain)
    plan = dataclasses.replace(plan, output_type=output_type, output_view=view)
    return judged(plan, chain.matmul, chain.root, policy, RULE_ORDER)


def all_gather(fused: Operation, properties: Mapping[str, str | int | bool]) -> list[Operation]:
    """The epilogue: every rank's [m / W, n] block, gathered in rank order into [m, n]."""
    return [AllGatherOp(fused.results[0], str(properties["group"]), int(properties["world_size"]))]


QUANT_MATMUL_ALL_REDUCE_A3 = FusedOpKind(
    KIND, (AllReduceOp, DequantOp), match_chains, judge, why_not_a_chain, build, socs=("a3",),
    torch_op="quant_matmul_all_reduce_a3", epilogue=all_gather,
)  # fmt: skip
