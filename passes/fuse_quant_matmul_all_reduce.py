"""`fuse-quant-matmul-all-reduce` (also `fuse-mc2`): every legal chain of every fused op of the
MC2 family (`family.py`) becomes one op, and every chain gets a verdict (fused, or the rule that
stopped it) at its source location; every collective that could end a chain and ends none gets
a line saying why."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.location import location_text
from qmmar.dialects.target import Target, record_target
from qmmar.passes import cost_model
from qmmar.passes.family import choose, family
from qmmar.passes.markers import MUST_FUSE
from qmmar.passes.options import CheckedOptions, Positive, Rows, TargetOptions
from qmmar.passes.plan import ControlFn, NotAChain, Verdict, must_fuse_failure, write_report
from qmmar.passes.policy import Numerics, Policy
from qmmar.passes.rewrite import rewrite

Scenario = Literal["auto", "prefill", "decode"]
Remarks = Literal["missed", "all", "none"]


@dataclass(frozen=True)
class FuseOptions(TargetOptions):
    group: str = ""
    """The module's one communication group; by default the first chain's."""
    scenario: Scenario = "auto"
    """auto | prefill | decode: decode fuses nothing (MC2 is for the full scenario)."""
    min_m: Rows = 0
    """With scenario=auto, a static m below this counts as decode and is not fused."""
    check_only: bool = False
    """Report verdicts without rewriting; fail when a must-fuse chain is illegal."""
    remarks: Remarks = "missed"
    """missed | all | none: which verdicts print as remarks on stderr (missed: chains not
    fused, and fused chains with a note)."""
    report: str = ""
    """A file to write every verdict to: JSON, or an HTML page (the registered writer,
    `register_html_report`) when it ends in .html."""
    numerics: Numerics = "exact"
    """exact | relaxed: exact fuses only chains whose fused op computes every bit the program
    computes; relaxed also those it computes up to rounding (an f32 dequant scale narrowed to
    bf16), each verdict saying what changes and a bound."""
    drop_compute_bound_int8_comm: bool = False
    """Fuse a compute-bound int8-communication chain without communication scales: the
    all-reduce then runs in f16/bf16, which changes the numerics toward higher precision."""
    int8_tops: Positive = cost_model.INT8_TOPS
    link_gbps: Positive = cost_model.LINK_GBPS


@dataclass
class FuseChains(RewritePattern):
    """Matches the last op of a chain of any fused op of the family, judges the chain into a
    plan, and fuses it when legal."""

    options: FuseOptions
    target: Target
    control: ControlFn | None = None
    group: tuple[str, str] | None = None
    """The module's group and where it comes from: the option, else the first chain's."""
    verdicts: list[Verdict] = field(default_factory=list[Verdict])
    not_chains: list[NotAChain] = field(default_factory=list[NotAChain])

    def __post_init__(self) -> None:
        if self.options.group:
            self.group = (self.options.group, "the group option")
        self.kinds = family(self.target)
        self.fused_names = {k.name for k in self.kinds}

    def _policy(self, group: str, first: Operation) -> Policy:
        if self.group is None:
            self.group = (group, f"the first chain's, at {location_text(first.location)}")
        o = self.options
        return Policy(*self.group, o.scenario, o.min_m, o.int8_tops, o.link_gbps,
                      o.drop_compute_bound_int8_comm, self.control, self.target, o.numerics)  # fmt: skip

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if op.name in self.fused_names:  # a chain fused before: it counts for the module's group
            self._policy(_group_of(op), op)
            return
        whys = []
        for kind in self.kinds:
            chains = kind.match(op) if isinstance(op, kind.roots) else ()
            if not chains:
                whys += [why] if isinstance(op, kind.roots) and (why := kind.why_not(op)) else []
                continue
            plan = choose(kind, chains, self._policy(chains[0].group, chains[0].path[0]))
            fused = rewrite(plan, rewriter) if plan.legal and not self.options.check_only else None
            self.verdicts.append(Verdict.of(plan, fused))
            return
        if whys:
            self.not_chains.append(NotAChain(location_text(op.location), op.name, "; ".join(dict.fromkeys(whys))))


def _group_of(op: Operation) -> str:
    group = op.properties["group"]
    assert isinstance(group, StringAttr)
    return group.data


@dataclass(frozen=True)
class Fusion:
    """What one fusion run found: a verdict per chain, and the collectives that end none."""

    verdicts: list[Verdict]
    not_chains: list[NotAChain]

    def remarks(self, which: Remarks) -> list[str]:
        """The remark lines `which` asks for, in program order of kind: chains, then the others
        (missed: chains not fused, fused chains with a note, and collectives ending no chain)."""
        if which == "none":
            return []
        chosen = [v for v in self.verdicts if which == "all" or not v.legal or v.notes]
        return [v.remark() for v in chosen] + [n.remark() for n in self.not_chains]

    def records(self) -> dict[str, Any]:
        """The JSON report's content (`not_chains` only when there are any)."""
        extra = {"not_chains": [n.record() for n in self.not_chains]} if self.not_chains else {}
        return {"verdicts": [v.record() for v in self.verdicts], **extra}


def fuse_module(module: ModuleOp, options: FuseOptions, control: ControlFn | None = None) -> Fusion:
    """Fuse every legal chain of the module (or only judge them, with check_only), and write
    the report if `options.report` names one.  `control` is the caller's policy, consulted for
    each plan the rules let fuse.  Remarks are the caller's to print (`Fusion.remarks`), as is
    the failure of a must-fuse chain in check-only mode."""
    target = options.target_of(module)
    html = _html_report(module, options) if options.report.endswith(".html") else None  # the graph before fusion
    pattern = FuseChains(options, target, control)
    PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(module)
    found = Fusion(pattern.verdicts, pattern.not_chains)
    # the fused ops are the target's: lowering them for another target must fail
    if not options.check_only and any(o.dialect_name() == "mc2" for o in module.walk()):
        record_target(module, target)
    if options.report:
        try:
            if html is not None:
                html.write(options.report, pattern.verdicts, module)
            else:
                records = found.records()
                write_report(options.report, records.pop("verdicts"), **records)
        except OSError as err:
            raise PassFailedException(f"cannot write the report {options.report}: {err.strerror}") from None
    return found


def fuse(module: ModuleOp, options: FuseOptions = FuseOptions(), control: ControlFn | None = None) -> list[Verdict]:
    """`fuse_module`'s verdicts: one per chain."""
    return fuse_module(module, options, control).verdicts


@dataclass(frozen=True)
class FuseQuantMatmulAllReducePass(FuseOptions, CheckedOptions, ModulePass):
    """Fuse quantised matmul + collective chains into the MC2 family's fused ops."""

    name = "fuse-quant-matmul-all-reduce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        found = fuse_module(op, self)
        for line in found.remarks(self.remarks):
            print(line, file=sys.stderr)
        if self.check_only and (failure := must_fuse_failure(found.verdicts, MUST_FUSE)) is not None:
            raise LocatedError(*failure)


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


@dataclass(frozen=True)
class FuseMc2Pass(FuseQuantMatmulAllReducePass):
    """The fusion pass under its short name: it fuses the whole MC2 family."""

    name = "fuse-mc2"
