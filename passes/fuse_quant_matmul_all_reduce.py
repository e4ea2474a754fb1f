"""`fuse-quant-matmul-all-reduce`: every legal chain becomes one mc2.quant_matmul_all_reduce,
and every chain gets a verdict (fused, or the rule that stopped it) at its source location."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, fields

from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects import numerics as nx
from qmmar.dialects.dtypes import ui64
from qmmar.dialects.location import location_text
from qmmar.dialects.logic import Dim
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp, TransQuantParamOp
from qmmar.dialects.qmm import AllReduceOp, CollectiveOp, DequantOp
from qmmar.passes import cost_model
from qmmar.passes.chain import Chain, match_chain
from qmmar.passes.legality import Policy, cost, first_finding, fused_x1_shape, packs_scale, signature
from qmmar.passes.rows import collapse_rows

MUST_FUSE = "qmmar.must_fuse"
"""A unit attribute on a chain's last op: the chain must fuse (checked by check-only mode)."""


@dataclass(frozen=True)
class Verdict:
    """What the pass decided for one chain, and why."""

    location: str  # the chain's matmul
    chain: str  # its ops, in order
    legal: bool
    rewritten: bool  # legal, and not in check-only mode
    rule: str | None  # the rule that stops it
    sentence: str | None  # that rule, in words
    must_fuse: bool
    notes: tuple[str, ...] = ()
    # For the HTML report (qmmar.report): the matched chain (its ops, erased when fused) and
    # the op that replaced it.  Not part of the verdict's value, nor of the JSON report.
    matched: Chain | None = field(default=None, compare=False, repr=False)
    fused_op: QuantMatmulAllReduceOp | None = field(default=None, compare=False, repr=False)

    def remark(self) -> str:
        if self.rewritten:
            text = f"fused into mc2.quant_matmul_all_reduce: {self.chain}"
        elif self.legal:
            text = f"legal to fuse: {self.chain}"
        else:
            text = f"not fused: [{self.rule}] {self.sentence}"
        return "".join([f"{self.location}: remark: {text}",
                        *(f"\n{self.location}: note: {n}" for n in self.notes)])  # fmt: skip


@dataclass(frozen=True)
class FuseOptions:
    group: str = ""
    """The module's one communication group; by default the first collective's."""
    scenario: str = "auto"
    """auto | prefill | decode: decode fuses nothing (MC2 is for the full scenario)."""
    min_m: int = 0
    """With scenario=auto, a static m below this counts as decode and is not fused."""
    check_only: bool = False
    """Report verdicts without rewriting; fail when a must-fuse chain is illegal."""
    remarks: str = "missed"
    """missed | all | none: which verdicts print as remarks on stderr (missed: chains not
    fused, and fused chains with a note)."""
    report: str = ""
    """A file to write every verdict to: JSON, or an HTML page (qmmar.report) when it ends in .html."""
    drop_compute_bound_int8_comm: bool = False
    """Fuse a compute-bound int8-communication chain without communication scales: the
    all-reduce then runs in f16/bf16, which changes the numerics toward higher precision."""
    int8_tops: float = cost_model.INT8_TOPS
    link_gbps: float = cost_model.LINK_GBPS


def _module_group(module: ModuleOp, options: FuseOptions) -> str:
    if options.group:
        return options.group
    for op in module.walk():
        if isinstance(op, CollectiveOp | QuantMatmulAllReduceOp):
            return op.group.data
    return ""


@dataclass
class FuseChains(RewritePattern):
    """Matches the last op of a chain, reads the chain backwards, fuses it when legal."""

    policy: Policy
    options: FuseOptions
    verdicts: list[Verdict] = field(default_factory=list[Verdict])

    @op_type_rewrite_pattern
    def match_and_rewrite(self, root: AllReduceOp | DequantOp, rewriter: PatternRewriter) -> None:
        chain = match_chain(root)
        if chain is None:
            return
        notes: list[str] = []
        drop_comm = False
        if chain.int8_comm and (estimate := cost(signature(chain), self.policy)) is not None:
            if not estimate.comm_bound:
                notes.append(
                    f"int8 communication pays only when communication-bound; this chain "
                    f"is {estimate.describe()} (COST-COMPUTE-BOUND)"
                )
                if self.options.drop_compute_bound_int8_comm:
                    drop_comm = True
                    notes.append(
                        "fused without communication scales (drop-compute-bound-int8-comm): "
                        "the all-reduce runs in the output dtype, more precise than int8"
                    )
        finding = first_finding(chain, self.policy, drop_comm)
        fused = finding is None and not self.options.check_only
        fused_op = rewrite(chain, rewriter, drop_comm) if fused else None
        self.verdicts.append(Verdict(
            location=location_text(chain.matmul.location),
            chain=" -> ".join(op.name for op in chain.ops),
            legal=finding is None, rewritten=fused,
            rule=finding and finding.rule, sentence=finding and finding.sentence,
            must_fuse=MUST_FUSE in root.attributes, notes=tuple(notes),
            matched=chain, fused_op=fused_op,
        ))  # fmt: skip


def _packed_scale(scale: SSAValue, rewriter: PatternRewriter, loc: Attribute) -> SSAValue:
    """The f32 scale as TransQuantParamV2 packs it: folded when it is a dense constant."""
    assert isinstance(scale.type, TensorType)
    packed_type = TensorType(ui64, scale.type.get_shape())
    source = scale.owner
    if isinstance(source, arith.ConstantOp) and isinstance(source.value, DenseIntOrFPElementsAttr):
        values = nx.trans_quant_param(source.value.get_values())
        op = arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(packed_type, [int(v) for v in values]))
    else:
        op = TransQuantParamOp.create(operands=[scale], result_types=[packed_type])
    op.location = loc
    rewriter.insert(op)
    return op.results[0]


def _collapsed_x1(x1: SSAValue, shape: tuple[Dim, ...], rewriter: PatternRewriter, loc: Attribute) -> SSAValue:
    assert isinstance(x1.type, TensorType)
    if len(shape) == len(x1.type.get_shape()):
        return x1
    collapse = collapse_rows(x1)
    collapse.location = loc
    return rewriter.insert(collapse).result


def rewrite(chain: Chain, rewriter: PatternRewriter, drop_comm: bool) -> QuantMatmulAllReduceOp:
    """Replace the chain by one mc2 op before its root; the chain's ops go."""
    scale = chain.dequant.scale
    if packs_scale(chain):
        scale = _packed_scale(scale, rewriter, chain.matmul.location)
    scales = None if drop_comm else chain.comm_scales
    operands = [
        [_collapsed_x1(chain.matmul.x1, fused_x1_shape(chain), rewriter, chain.matmul.location)], [chain.matmul.x2],
        [chain.matmul.bias] if chain.matmul.bias else [], [chain.x3] if chain.x3 else [],
        [scale], [chain.dequant.pertoken] if chain.dequant.pertoken else [],
        [scales[0]] if scales else [], [scales[1]] if scales else [],
    ]  # fmt: skip
    fused = QuantMatmulAllReduceOp.build(
        operands=operands,
        result_types=[chain.result_type],
        properties={
            "group": StringAttr(chain.group),
            "world_size": IntegerAttr(chain.world_size, i64),
            "transpose_x2": chain.matmul.transpose_x2,
        },
    )
    fused.location = chain.matmul.location
    rewriter.insert(fused)
    rewriter.replace(chain.root, [], [fused.output])
    for op in reversed(chain.ops[:-1]):
        rewriter.erase(op)
    return fused


def fuse(module: ModuleOp, options: FuseOptions = FuseOptions()) -> list[Verdict]:
    """Fuse every legal chain of the module (or only judge them, with check_only)."""
    policy = Policy(_module_group(module, options), options.scenario, options.min_m,
                    options.int8_tops, options.link_gbps)  # fmt: skip
    pattern = FuseChains(policy, options)
    PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(module)
    return pattern.verdicts


@dataclass(frozen=True)
class FuseQuantMatmulAllReducePass(FuseOptions, ModulePass):
    """Fuse quantised matmul + all-reduce chains into mc2.quant_matmul_all_reduce."""

    name = "fuse-quant-matmul-all-reduce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.scenario not in ("auto", "prefill", "decode"):
            raise PassFailedException(f"scenario must be auto, prefill or decode, not {self.scenario!r}")
        if self.remarks not in ("missed", "all", "none"):
            raise PassFailedException(f"remarks must be missed, all or none, not {self.remarks!r}")
        html = _html_report(op, self) if self.report.endswith(".html") else None  # the graph before fusion
        verdicts = fuse(op, self)
        for v in verdicts:
            if self.remarks == "all" or (self.remarks == "missed" and (not v.legal or v.notes)):
                print(v.remark(), file=sys.stderr)
        if self.report:
            try:
                if html is not None:
                    html.write(self.report, verdicts, op)
                else:
                    write_report(self.report, verdicts)
            except OSError as err:
                raise PassFailedException(f"cannot write the report {self.report}: {err.strerror}") from None
        if self.check_only and (broken := [v for v in verdicts if v.must_fuse and not v.legal]):
            raise PassFailedException(
                f"{len(broken)} chain(s) marked {MUST_FUSE} cannot be fused; first: "
                f"{broken[0].location}: [{broken[0].rule}] {broken[0].sentence}"
            )


def _html_report(module: ModuleOp, options: FuseOptions):
    """The HTML writer belongs to the driver (qmmar.report, which draws with graphviz): it is
    imported only when an .html report is asked for, so that the passes carry none of it."""
    from qmmar.report import HtmlReport

    return HtmlReport(module, options)


def write_report(path: str, verdicts: list[Verdict]) -> None:
    """Every verdict as JSON (the fields that are data: not the matched ops)."""
    data = [{f.name: getattr(v, f.name) for f in fields(v) if f.compare} for v in verdicts]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"verdicts": data}, f, indent=2)
        f.write("\n")
