"""A chain judged once: the `FusionPlan` that every later step reads.

Judging a matched chain (its family member's chain rules, the fused op's rule table on the
signature it would have, the scenario policy, then the caller's control function) gives one
plan: the fused op it would become, its operands and properties in final form, m/k/n, the cost
estimate, and the verdict with both locations.  The rewrite only emits a plan; the report,
`--ideal`, qmmar-check and the torch backend read plans.  Nothing computes a signature or a
cost a second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from qmmar.dialects.dtypes import scale_is_packed
from qmmar.dialects.location import location_text
from qmmar.dialects.logic import Dim
from qmmar.passes.cost_model import CostEstimate


class MatchedChain(Protocol):
    """What the generic steps read of a family member's matched chain."""

    @property
    def path(self) -> list[Operation]:
        """The chain's ops along its data path, its first op first, `end` last."""
        ...

    @property
    def side(self) -> list[Operation]:
        """Ops that only size the chain's own ops: erased with it."""
        ...

    @property
    def leaves(self) -> list[Operation]:
        """Constants those ops read: erased when nothing else uses them."""
        ...

    @property
    def end(self) -> Operation:
        """The op whose result the fused op replaces."""
        ...

    @property
    def ops(self) -> frozenset[Operation]:
        """Every op the fusion erases or replaces."""
        ...

    @property
    def group(self) -> str:
        """The communication group its collectives run on."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Finding:
    """A broken rule: its id, its sentence with this chain's particulars, and the op it is
    about (the remark's location)."""

    rule: str
    sentence: str
    at: Operation


OperandForm = Literal["value", "rows", "packed", "bf16", "f32"]
"""How the fused op takes a value of the program: as it is; its [b, s, ...] rows collapsed to
[b*s, ...]; an f32 scale packed as TransQuantParamV2 packs it (ui64); an f32 scale rounded to
bf16 (the same values when they are all bf16 values, else under numerics=relaxed); or a bf16
value widened to f32 (exact: the same values)."""


def aiv_scale_form(scale: str, output: str, has_pertoken: bool) -> OperandForm:
    """How the "aiv" kernels (aclnnMatmulReduceScatterV2, aclnnAllGatherMatmulV2) take a
    qmm.dequant scale as x2_scale, so that they multiply by the value qmm.dequant does: packed
    where qmm.dequant packs (f32, f16 output, no per-token scale), as they take an f32 one as it
    is; a bf16 scale widened to f32, which they take and bf16 they do not (where f32 would not be
    packed: the fused op would have no qmm chain to unfuse to); any other as it is."""
    if scale_is_packed(scale, output, has_pertoken):
        return "packed"
    if scale == "bf16" and not scale_is_packed("f32", output, has_pertoken):
        return "f32"
    return "value"


@dataclass(frozen=True)
class Operand:
    value: SSAValue
    form: OperandForm = "value"


@dataclass(frozen=True)
class OutputView:
    """The fused op's [m, n] result seen as `type` ([b, s, n]), the dynamic sizes given by `sizes`."""

    type: TensorType
    sizes: tuple[SSAValue, ...] = ()


@dataclass(frozen=True)
class Cost:
    """One way the chain's communication could run (`label`: its element type), and whether
    the plan runs it that way."""

    label: str
    estimate: CostEstimate
    chosen: bool


@dataclass(frozen=True)
class FusionPlan:
    kind: str
    """The fused op's name, e.g. `mc2.quant_matmul_all_reduce`: the family member."""
    chain: MatchedChain
    operands: Mapping[str, Operand | None]
    """Every operand of the fused op by name, in its order; None when absent."""
    properties: Mapping[str, str | int | bool]
    """The fused op's properties, by name: group, world_size, transpose_x2, ..."""
    output_type: TensorType
    dims: tuple[Dim, Dim, Dim] | None
    """m, k and n of the fused op (a name for a dynamic one); None when a chain rule stopped
    the chain before it had a signature."""
    costs: tuple[Cost, ...] = ()
    """The cost estimate, each way the communication could run; empty when a dimension is dynamic."""
    output_view: OutputView | None = None
    """When the fused op computes on rows and the chain ends in another layout: the view of its
    result that replaces the chain's end."""
    also_replaced: tuple[SSAValue, ...] = ()
    """Values of the chain that the fused op's further results (its second on) replace, in
    order, for their users outside the chain: an all-gather's result by the op's gather_out."""
    finding: Finding | None = None
    """Why the chain must not be fused; None when it may be."""
    notes: tuple[str, ...] = ()
    must_fuse: bool = False
    progress: int = 0
    """How far the chain got through its member's rules (legal plans furthest): of several
    chains ending at one op, the verdict names the rule of the one that got furthest."""

    @property
    def legal(self) -> bool:
        return self.finding is None

    @property
    def head(self) -> Operation:
        """The chain's first op (its matmul): where the user wrote the chain."""
        return self.chain.path[0]

    @property
    def location(self) -> str:
        """Where the chain is."""
        return location_text(self.head.location)

    @property
    def rule_location(self) -> str:
        """Where the broken rule is (the op it is about); the chain's location when legal."""
        return location_text(self.finding.at.location) if self.finding else self.location


ControlFn = Callable[[FusionPlan], Finding | None]
"""A caller's policy, consulted while judging each plan that the rules let fuse (as MLIR's
`ControlFusionFn`): a finding refuses the plan, with its rule and sentence."""


@dataclass(frozen=True)
class Verdict:
    """What fusion decided for one chain, and why: the report's JSON record (`record`)."""

    location: str  # the op the broken rule is about; for a legal chain, its first op
    chain: str  # its ops, in order
    legal: bool
    rewritten: bool  # legal, and not in check-only mode
    rule: str | None  # the rule that stops it
    sentence: str | None  # that rule, in words, with this chain's particulars
    must_fuse: bool
    notes: tuple[str, ...] = ()
    # Not part of the verdict's value, nor of its record: the fused op it is (or would be),
    # the plan it comes from, and the op that replaced the chain when it was rewritten.
    kind: str = field(default="", compare=False)
    plan: FusionPlan | None = field(default=None, compare=False, repr=False)
    fused_op: Operation | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def of(plan: FusionPlan, fused_op: Operation | None = None) -> Verdict:
        rule, sentence = (plan.finding.rule, plan.finding.sentence) if plan.finding else (None, None)
        return Verdict(plan.rule_location, plan.chain.describe(), plan.legal, fused_op is not None, rule, sentence,
                       plan.must_fuse, plan.notes, plan.kind, plan, fused_op)  # fmt: skip

    def kept(self, note: str) -> Verdict:
        """The verdict of a legal chain that a later step keeps unfused after all, with why."""
        return Verdict(self.location, self.chain, self.legal, False, self.rule, self.sentence, self.must_fuse,
                       (*self.notes, note), self.kind, self.plan, None)  # fmt: skip

    def remark(self) -> str:
        if self.rewritten:
            text = f"fused into {self.kind}: {self.chain}"
        elif self.legal:
            text = f"legal to fuse: {self.chain}"
        else:
            text = f"not fused: [{self.rule}] {self.sentence}"
        return "".join([f"{self.location}: remark: {text}",
                        *(f"\n{self.location}: note: {n}" for n in self.notes)])  # fmt: skip

    def record(self) -> dict[str, Any]:
        """The verdict as the JSON report has it: the fields that are data."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}


@dataclass(frozen=True)
class NotAChain:
    """A collective that could end a chain of some fused op, but ends none: why, in words."""

    location: str
    op: str
    why: str

    def remark(self) -> str:
        return f"{self.location}: remark: not a chain: '{self.op}' {self.why}"

    def record(self) -> dict[str, Any]:
        return {"location": self.location, "op": self.op, "why": self.why}


def must_fuse_failure(verdicts: Sequence[Verdict], marker: str) -> tuple[str, str] | None:
    """(location, message) of the first chain marked `marker` that cannot fuse, or None."""
    broken = [v for v in verdicts if v.must_fuse and not v.legal]
    if not broken:
        return None
    first = broken[0]
    others = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
    return first.location, f"a chain marked {marker} cannot be fused{others}: [{first.rule}] {first.sentence}"


def write_report(path: str, records: Sequence[Mapping[str, Any]], **extra: Any) -> None:
    """The one JSON verdict writer: `{"verdicts": [...], **extra}` (records as `Verdict.record`
    gives them, possibly with fields of the caller's)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"verdicts": list(records), **extra}, f, indent=2)
        f.write("\n")
