"""The family member `mc2.quant_matmul_reduce_scatter` (aclnnMatmulReduceScatterV2, int8,
commMode "aiv", Atlas A2 and A3): the row-parallel end of a sequence-parallel layer,

    [quant ->] matmul -> dequant -> reduce_scatter

read backwards from the reduce-scatter (row-only reshapes may sit between the matmul, the
dequant and the reduce-scatter).  A quant before the matmul stays: it computes x1, which the
fused op takes as int8.  The chain is judged by its chain rules, then by the op's rule table
for the target's SoC (`dialects.mrs_rules`) on the signature the fused op would have, then by
the scenario policy and the caller's control function: one plan per chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from qmmar.dialects.diagnostics import written_name
from qmmar.dialects.dtypes import scale_is_packed
from qmmar.dialects.location import location_text
from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.mc2_rules import TensorSig
from qmmar.dialects.mrs_rules import OPERANDS, RULE_IDS, Signature, first_violation
from qmmar.dialects.qmm import DequantOp, MatmulOp, ReduceScatterOp, element, tensor_type_of
from qmmar.passes.chain import _head
from qmmar.passes.chain_cost import REDUCE_SCATTER, chain_costs
from qmmar.passes.family import FusedOpKind
from qmmar.passes.legality import ONE_GROUP, SINGLE_USE, Broken, operand_signatures, other_user
from qmmar.passes.markers import MUST_FUSE
from qmmar.passes.plan import Finding, FusionPlan, Operand
from qmmar.passes.policy import POLICY_RULES, Policy, policy_finding

KIND = QuantMatmulReduceScatterOp.name


@dataclass
class ReduceScatterChain:
    root: ReduceScatterOp
    matmul: MatmulOp
    dequant: DequantOp
    path: list[Operation]
    """matmul first, the reduce-scatter last."""
    side: list[Operation] = field(default_factory=list[Operation])
    leaves: list[Operation] = field(default_factory=list[Operation])
    """None: the chain has no ops that only size others, nor constants they read."""

    @property
    def end(self) -> Operation:
        return self.root

    @cached_property
    def ops(self) -> frozenset[Operation]:
        return frozenset(self.path)

    @property
    def group(self) -> str:
        return self.root.group.data

    @property
    def collectives(self) -> list[ReduceScatterOp]:
        return [self.root]

    @property
    def world_size(self) -> int:
        return self.root.world_size.value.data

    @property
    def result_type(self) -> TensorType:
        return tensor_type_of(self.root.result)

    def describe(self) -> str:
        return " -> ".join(op.name for op in self.path)


def match(root: Operation) -> list[ReduceScatterChain]:
    """The chain ending at a reduce-scatter, or none."""
    if not isinstance(root, ReduceScatterOp) or (head := _head(root.x)) is None:
        return []
    walk, dequant, matmul = head
    return [ReduceScatterChain(root, matmul, dequant, [*reversed(walk.path), root])]


def why_not(root: Operation) -> str | None:
    """Why no chain ends at a reduce-scatter, in words (None for any other op, or when one does)."""
    if not isinstance(root, ReduceScatterOp) or match(root):
        return None
    producer = root.x.owner
    if not isinstance(producer, Operation):
        return "its operand is an argument, not a qmm.dequant of a qmm.matmul's int32 result"
    return (f"its operand comes from '{written_name(producer)}' at {location_text(producer.location)}, not from a "
            "qmm.dequant of a qmm.matmul's int32 result")  # fmt: skip


@dataclass(frozen=True)
class ChainRule:
    id: str
    sentence: str
    check: Callable[[ReduceScatterChain, Policy], Broken | None]


def _one_group(c: ReduceScatterChain, p: Policy) -> Broken | None:
    return ONE_GROUP.check(c, p)  # type: ignore[arg-type]  # it reads the chain's group and first collective


def _int32_bias(c: ReduceScatterChain, p: Policy) -> Broken | None:
    return None if c.matmul.bias is None else (INT32_BIAS.sentence, c.matmul)


def _rows(c: ReduceScatterChain, p: Policy) -> Broken | None:
    return None if len(c.result_type.get_shape()) == 2 else (ROWS.sentence, c.root)


INT32_BIAS = ChainRule("CHAIN-RS-INT32-BIAS", "the matmul's int32 bias is added before the dequant, and "
                       "aclnnMatmulReduceScatterV2 adds an f32 bias after it: other numbers", _int32_bias)  # fmt: skip
ROWS = ChainRule("CHAIN-RS-ROWS", "the reduce-scatter must scatter 2-D [m, n] rows: the fused op's output "
                 "is [m / world_size, n]", _rows)  # fmt: skip
CHAIN_RULES: tuple[ChainRule, ...] = (
    ChainRule(SINGLE_USE.id, SINGLE_USE.sentence, other_user),
    ChainRule(ONE_GROUP.id, ONE_GROUP.sentence, _one_group),
    INT32_BIAS,
    ROWS,
)
RULE_ORDER = {rule_id: i for i, rule_id in enumerate([*(r.id for r in CHAIN_RULES), *RULE_IDS, *POLICY_RULES])}
"""Every rule in the order it is checked: how far a chain got before one stopped it."""

_ABOUT_THE_COLLECTIVE = frozenset({"MRS-WORLD-SIZE", "MRS-GROUP", "MRS-M-DIVISIBLE", "MRS-OUT-SHAPE"})
"""Rules of the table about what the chain's reduce-scatter carries or computes."""


def _operands(c: ReduceScatterChain) -> dict[str, Operand | None]:
    """The fused op's operands in final form: a 3-D x1 as [m, k] rows; the dequant scale as
    x2_scale, packed where `qmm.dequant` packs it (f32 for f16 output without per-token scales),
    so that the fused op multiplies by the same value; the per-token scale as x1_scale."""
    x1, scale, pertoken = c.matmul.x1, c.dequant.scale, c.dequant.pertoken
    packed = scale_is_packed(element(scale), element(c.dequant.result), pertoken is not None)
    values = {"x1": Operand(x1, "rows" if len(tensor_type_of(x1).get_shape()) == 3 else "value"),
              "x2": Operand(c.matmul.x2), "x1_scale": None if pertoken is None else Operand(pertoken),
              "x2_scale": Operand(scale, "packed" if packed else "value")}  # fmt: skip
    return {name: values.get(name) for name in OPERANDS}


def signature(operands: Mapping[str, Operand | None], output_type: TensorType,
              properties: Mapping[str, str | int | bool]) -> Signature:  # fmt: skip
    """The signature of the fused op with these operands (in final form) and properties."""
    return Signature.build(operand_signatures(operands), TensorSig.of(output_type, "output"),
                           group=str(properties["group"]), world_size=int(properties["world_size"]),
                           transpose_x2=bool(properties["transpose_x2"]))  # fmt: skip


def _refused(plan: FusionPlan, finding: Finding) -> FusionPlan:
    return dataclasses.replace(plan, finding=finding, progress=RULE_ORDER[finding.rule])


def judge(chain: ReduceScatterChain, policy: Policy) -> FusionPlan:
    """The chain rules, the SoC's rule table on the fused op's signature, the policy, then the
    caller's control function: one plan."""
    transpose_x2 = bool(chain.matmul.transpose_x2.value.data)
    properties: dict[str, str | int | bool] = {"group": chain.group, "world_size": chain.world_size,
                                               "transpose_x2": transpose_x2}  # fmt: skip
    operands = _operands(chain)
    plan = FusionPlan(KIND, chain, operands, properties, chain.result_type, None,
                      must_fuse=MUST_FUSE in chain.root.attributes)  # fmt: skip
    for rule in CHAIN_RULES:
        if (broken := rule.check(chain, policy)) is not None:
            return _refused(plan, Finding(rule.id, *broken))
    sig = signature(operands, chain.result_type, properties)
    dims = (sig.m, sig.k, sig.n)
    costs = chain_costs(dims, sig.world_size, policy, REDUCE_SCATTER)
    notes = [costs[0].estimate.overlap_note("reduce-scatter")] if costs else []
    if element(chain.dequant.scale) == "bf16":
        notes.append("the fused op takes x2_scale as f32; widening this bf16 dequant scale (exact) is not written yet")
    plan = dataclasses.replace(plan, dims=dims, costs=costs, notes=tuple(notes))
    if (violated := first_violation(sig, policy.target.soc)) is not None:
        at = chain.root if violated.id in _ABOUT_THE_COLLECTIVE else chain.matmul
        return _refused(plan, Finding(violated.id, violated.sentence_for(sig), at))
    finding = policy_finding(sig.m, chain.matmul, chain.root, policy)
    if finding is None and policy.control is not None:
        finding = policy.control(plan)
    return _refused(plan, finding) if finding is not None else dataclasses.replace(plan, progress=len(RULE_ORDER))


def build(operands: Mapping[str, SSAValue | None], properties: Mapping[str, str | int | bool],
          output_type: TensorType) -> QuantMatmulReduceScatterOp:  # fmt: skip
    return QuantMatmulReduceScatterOp(
        operands, group=str(properties["group"]), world_size=int(properties["world_size"]),
        transpose_x2=bool(properties["transpose_x2"]), output_type=output_type,
    )  # fmt: skip


QUANT_MATMUL_REDUCE_SCATTER = FusedOpKind(
    KIND, (ReduceScatterOp,), match, judge, why_not, build, socs=("a2", "a3"),
    torch_op="quant_matmul_reduce_scatter",
)  # fmt: skip
