"""`fuse-quant-matmul-all-reduce`: every legal chain becomes one mc2.quant_matmul_all_reduce,
and every chain gets a verdict (fused, or the rule that stopped it) at its source location."""

from __future__ import annotations

import json
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import ui64
from qmmar.dialects.location import location_text
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp, TransQuantParamOp
from qmmar.dialects.qmm import AllReduceOp, DequantOp, tensor_type_of
from qmmar.passes import cost_model
from qmmar.passes.chain import Chain, match_chains
from qmmar.passes.emit import Emitter
from qmmar.passes.legality import Judgement, Policy, choose, fused_x1_shape, packs_scale
from qmmar.passes.markers import MUST_FUSE
from qmmar.passes.options import CheckedOptions
from qmmar.passes.rows import collapse_rows

Scenario = Literal["auto", "prefill", "decode"]
Remarks = Literal["missed", "all", "none"]


@dataclass(frozen=True)
class Verdict:
    """What the pass decided for one chain, and why."""

    location: str  # the op the broken rule is about; for a legal chain, its matmul
    chain: str  # its ops, in order
    legal: bool
    rewritten: bool  # legal, and not in check-only mode
    rule: str | None  # the rule that stops it
    sentence: str | None  # that rule, in words, with this chain's particulars
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
    """The module's one communication group; by default the first chain's."""
    scenario: Scenario = "auto"
    """auto | prefill | decode: decode fuses nothing (MC2 is for the full scenario)."""
    min_m: int = 0
    """With scenario=auto, a static m below this counts as decode and is not fused."""
    check_only: bool = False
    """Report verdicts without rewriting; fail when a must-fuse chain is illegal."""
    remarks: Remarks = "missed"
    """missed | all | none: which verdicts print as remarks on stderr (missed: chains not
    fused, and fused chains with a note)."""
    report: str = ""
    """A file to write every verdict to: JSON, or an HTML page (the registered writer,
    `register_html_report`) when it ends in .html."""
    drop_compute_bound_int8_comm: bool = False
    """Fuse a compute-bound int8-communication chain without communication scales: the
    all-reduce then runs in f16/bf16, which changes the numerics toward higher precision."""
    int8_tops: float = cost_model.INT8_TOPS
    link_gbps: float = cost_model.LINK_GBPS

    def __post_init__(self) -> None:
        """Options from Python are checked as the pipeline parser checks them."""
        hints = typing.get_type_hints(FuseOptions)
        for name in ("scenario", "remarks"):
            if getattr(self, name) not in (choices := typing.get_args(hints[name])):
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {getattr(self, name)!r}")
        if isinstance(self.min_m, bool) or not isinstance(self.min_m, int) or self.min_m < 0:
            raise ValueError(f"min-m must be a whole number of rows, at least 0, not {self.min_m!r}")
        cost_model.positive("int8-tops", self.int8_tops)
        cost_model.positive("link-gbps", self.link_gbps)


@dataclass
class FuseChains(RewritePattern):
    """Matches the last op of a chain, reads the chain backwards, fuses it when legal."""

    options: FuseOptions
    group: tuple[str, str] | None = None
    """The module's group and where it comes from: the option, else the first chain's."""
    verdicts: list[Verdict] = field(default_factory=list[Verdict])

    def __post_init__(self) -> None:
        if self.options.group:
            self.group = (self.options.group, "the group option")

    def _module_group(self, group: str, first: Operation) -> tuple[str, str]:
        if self.group is None:
            self.group = (group, f"the first chain's, at {location_text(first.location)}")
        return self.group

    @op_type_rewrite_pattern
    def match_and_rewrite(
        self, root: AllReduceOp | DequantOp | QuantMatmulAllReduceOp, rewriter: PatternRewriter
    ) -> None:
        if isinstance(root, QuantMatmulAllReduceOp):  # a chain fused before: it counts for the group
            self._module_group(root.group.data, root)
            return
        chains = match_chains(root)
        if not chains:
            return
        group, origin = self._module_group(chains[0].group, chains[0].matmul)
        o = self.options
        policy = Policy(group, origin, o.scenario, o.min_m, o.int8_tops, o.link_gbps)
        judgement = choose(chains, policy, o.drop_compute_bound_int8_comm)
        chain, finding = judgement.chain, judgement.finding
        fused = finding is None and not o.check_only
        fused_op = rewrite(judgement, rewriter) if fused else None
        self.verdicts.append(Verdict(
            location=location_text((finding.at if finding else chain.matmul).location),
            chain=chain.describe(), legal=finding is None, rewritten=fused,
            rule=finding.rule if finding else None, sentence=finding.sentence if finding else None,
            must_fuse=MUST_FUSE in root.attributes or MUST_FUSE in chain.end.attributes,
            notes=judgement.notes, matched=chain, fused_op=fused_op,
        ))  # fmt: skip


def _packed_scale(scale: SSAValue, emit: Emitter) -> SSAValue:
    """The f32 scale as TransQuantParamV2 packs it: folded when it is a dense constant."""
    source = scale.owner
    if isinstance(source, arith.ConstantOp) and isinstance(source.value, DenseIntOrFPElementsAttr):
        packed_type = TensorType(ui64, source.value.get_shape())
        values = nx.trans_quant_param(source.value.get_values())
        return emit.value(arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(packed_type, [int(v) for v in values])))
    return emit.value(TransQuantParamOp(scale))


def _erase(chain: Chain, rewriter: PatternRewriter) -> None:
    """Erase the chain's ops but its end (replaced).  CHAIN-SINGLE-USE holds, so each op's
    users are chain ops: erased users first along the path, and no safe-erase check needed
    for the ops that size the padding, whose users sit on the path."""
    for op in [*reversed(chain.path[:-1]), *chain.side]:
        rewriter.erase(op, safe_erase=False)


def _constants_read(ops: list[Operation]) -> list[Operation]:
    """The constants these ops read: a scale that fusion packs into a new constant, or
    communication scales it drops, are left without a use."""
    return [v.owner for op in ops for v in op.operands if isinstance(v.owner, arith.ConstantOp)]


def _erase_unused(leaves: list[Operation], rewriter: PatternRewriter) -> None:
    for leaf in dict.fromkeys(leaves):  # one constant may size several ops, or be several scales
        if leaf.parent is not None and not any(r.uses for r in leaf.results):
            rewriter.erase(leaf)


def rewrite(judgement: Judgement, rewriter: PatternRewriter) -> QuantMatmulAllReduceOp:
    """Replace the chain by one mc2 op before its root; the chain's ops go."""
    chain: Chain = judgement.chain
    constants = [*chain.leaves, *_constants_read(chain.path)]
    emit = Emitter(rewriter, chain.matmul.location)
    scale = _packed_scale(chain.dequant.scale, emit) if packs_scale(chain) else chain.dequant.scale
    x1 = chain.matmul.x1
    if len(fused_x1_shape(chain)) != len(tensor_type_of(x1).get_shape()):
        x1 = emit.value(collapse_rows(x1))
    collective = chain.collectives[0]
    fused = emit.op(QuantMatmulAllReduceOp(
        x1, chain.matmul.x2, scale, group=collective.group, world_size=collective.world_size,
        transpose_x2=chain.matmul.transpose_x2, bias=chain.matmul.bias, x3=chain.x3,
        pertoken_scale=chain.dequant.pertoken,
        comm_quant_scales=None if judgement.drop_comm else chain.comm_scales, output_type=chain.result_type,
    ))  # fmt: skip
    rewriter.replace(chain.end, [], [fused.output])
    _erase(chain, rewriter)
    _erase_unused(constants, rewriter)
    return fused


def fuse(module: ModuleOp, options: FuseOptions = FuseOptions()) -> list[Verdict]:
    """Fuse every legal chain of the module (or only judge them, with check_only), and write
    the report if `options.report` names one.  Remarks are the pass's to print (each verdict's
    `remark()` is its line), as is the failure of a must-fuse chain in check-only mode."""
    html = _html_report(module, options) if options.report.endswith(".html") else None  # the graph before fusion
    pattern = FuseChains(options)
    PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(module)
    if options.report:
        try:
            if html is not None:
                html.write(options.report, pattern.verdicts, module)
            else:
                write_report(options.report, pattern.verdicts)
        except OSError as err:
            raise PassFailedException(f"cannot write the report {options.report}: {err.strerror}") from None
    return pattern.verdicts


@dataclass(frozen=True)
class FuseQuantMatmulAllReducePass(FuseOptions, CheckedOptions, ModulePass):
    """Fuse quantised matmul + all-reduce chains into mc2.quant_matmul_all_reduce."""

    name = "fuse-quant-matmul-all-reduce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        verdicts = fuse(op, self)
        for v in verdicts:
            if self.remarks == "all" or (self.remarks == "missed" and (not v.legal or v.notes)):
                print(v.remark(), file=sys.stderr)
        if self.check_only and (broken := [v for v in verdicts if v.must_fuse and not v.legal]):
            first = broken[0]
            others = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
            raise LocatedError(first.location, f"a chain marked {MUST_FUSE} cannot be fused{others}: "
                            f"[{first.rule}] {first.sentence}")  # fmt: skip


class HtmlReportWriter(Protocol):
    """The HTML page of one fusion run: made from the module before fusion, written after."""

    def write(self, path: str, verdicts: list[Verdict], module: ModuleOp) -> None: ...


HtmlReportFactory = Callable[[ModuleOp, FuseOptions], HtmlReportWriter]
_html_report_factory: HtmlReportFactory | None = None


def register_html_report(factory: HtmlReportFactory) -> None:
    """Install the writer of `report=FILE.html`.  Drawing a page takes the driver (qmmar.report,
    with graphviz), which the passes do not import: qmmar registers it when its xDSL universe
    loads this pass, as qmmar-opt and xdsl-opt do."""
    global _html_report_factory
    _html_report_factory = factory


def _html_report(module: ModuleOp, options: FuseOptions) -> HtmlReportWriter:
    if _html_report_factory is None:
        raise PassFailedException(f"report={options.report}: no HTML report writer is registered (qmmar registers "
                                  "one when its xDSL universe loads this pass; from Python: register_html_report), "
                                  "and a .json report needs none")  # fmt: skip
    return _html_report_factory(module, options)


def verdict_record(v: Verdict) -> dict[str, Any]:
    """A verdict as the report's JSON has it: the fields that are data, not the matched ops."""
    return {f.name: getattr(v, f.name) for f in fields(v) if f.compare}


def write_report(path: str, verdicts: list[Verdict]) -> None:
    """Every verdict as JSON."""
    data = [verdict_record(v) for v in verdicts]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"verdicts": data}, f, indent=2)
        f.write("\n")
