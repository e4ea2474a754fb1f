"""The HTML fusion report: one self-contained page (inline CSS and SVG, no script, nothing
fetched when it is viewed) with a summary, each function's dataflow graph, and a card per
chain: verdict, rule, location, cost estimate, notes, its ops before and the fused op after,
and, given a `qmmar-run --ideal` output, the error of int8 communication."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from xdsl.dialects.builtin import FileLineColLoc, ModuleOp

from qmmar.passes.family import family
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions
from qmmar.passes.plan import Cost, Verdict
from qmmar.report.graph import COLOURS, function_parts
from qmmar.report.model import (
    STATUSES,
    ChainRecord,
    Printed,
    ReportError,
    Snapshot,
    chain_record,
    fused_texts,
    placed,
    previewed_texts,
)

if TYPE_CHECKING:
    from qmmar.interpreter.ideal import Figure  # annotations only: a page imports the interpreter when it shows a run

CSS = """
:root { --ink: #1d2330; --muted: #5f6b7a; --line: #d8dde4; --paper: #fff; --ground: #f4f6f8;
  --compute: #5b7db1; --comm: #e08a2e;
  /*status-vars*/ }
* { box-sizing: border-box; }
body { margin: 0; background: var(--ground); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 13px; margin: 10px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
h3 code { text-transform: none; letter-spacing: 0; }
code, pre, .mono { font: 12px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
a { color: inherit; }
.sub { color: var(--muted); margin: 0 0 14px; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
  margin: 14px 0; }
.counts { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 14px; }
.count { border: 1px solid var(--line); border-left: 5px solid var(--muted); border-radius: 6px;
  padding: 6px 14px; min-width: 110px; }
.count b { display: block; font-size: 24px; line-height: 1.2; }
/*status-rules*/
table { border-collapse: collapse; }
td, th { padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
table.rules td.bar { width: 320px; }
table.rules td:first-child { white-space: nowrap; }
.bar span { display: block; height: 12px; border-radius: 3px; background: var(--refused); }
table.figures td, table.figures th { padding-right: 14px; white-space: nowrap; }
table.figures td.num { text-align: right; font-variant-numeric: tabular-nums; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 3px; vertical-align: -1px;
  margin-right: 4px; border: 2px solid; }
.graph { overflow: auto; max-height: 80vh; border: 1px solid var(--line); border-radius: 6px;
  background: #fbfcfd; padding: 8px; }
.graph svg { display: block; }
.graph .part { content-visibility: auto; }
.graph .part + .part { border-top: 1px dashed var(--line); margin-top: 6px; padding-top: 6px; }
.graph svg a:hover path, .graph svg a:hover polygon { stroke-width: 3; }
article.card { border: 1px solid var(--line); border-left: 6px solid var(--muted); border-radius: 6px;
  padding: 10px 14px; margin: 12px 0; background: var(--paper);
  content-visibility: auto; }
article.card:target { box-shadow: 0 0 0 3px #ffd54f; }
.card header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 10px; }
.card header .num { font-weight: 700; text-decoration: none; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.rule { font-weight: 700; }
.loc { color: var(--muted); }
.sentence { margin: 6px 0 0; }
.chainops { color: var(--muted); margin: 4px 0 0; }
.notes { margin: 6px 0 0; padding-left: 18px; }
.row { display: flex; flex-wrap: wrap; gap: 22px; }
.none { color: var(--muted); font-style: italic; }
svg.cost text { font: 11px system-ui, Helvetica, Arial, sans-serif; fill: var(--ink); }
svg.cost text.muted { fill: var(--muted); font-style: italic; }
table.ops { width: 100%; background: #f3f5f8; border-radius: 4px; }
table.ops td { padding: 3px 8px; border-top: 1px solid #e4e8ed; }
table.ops tr:first-child td { border-top: 0; }
table.ops td.at { color: var(--muted); white-space: nowrap; width: 1%; }
table.ops code { white-space: pre-wrap; overflow-wrap: anywhere; }
"""


def _css() -> str:
    status_vars = " ".join(f"--{s}: {COLOURS[s][0]}; --{s}-bg: {COLOURS[s][1]};" for s in STATUSES)
    status_rules = "\n".join(
        f".count.{s}, article.card.{s} {{ border-left-color: var(--{s}); }} "
        f".badge.{s} {{ background: var(--{s}); }} .legend i.{s} {{ border-color: var(--{s}); "
        f"background: var(--{s}-bg); }}"
        for s in STATUSES
    )
    return CSS.replace("/*status-vars*/", status_vars).replace("/*status-rules*/", status_rules)


def _us(x: float) -> str:
    return f"{x:.3g} µs"


def cost_svg(costs: Sequence[Cost]) -> str:
    """Compute against communication time, each way the chain's communication could run."""
    label_w, bar_x, bar_w, row = 130, 190, 170, 13
    top = max(max(c.estimate.compute_us, c.estimate.comm_us) for c in costs) or 1.0
    parts, y = [], 0
    for cost in costs:
        parts.append(f'<text x="0" y="{y + 10}">{escape(cost.label)}</text>')
        if cost.chosen:
            parts.append(f'<text x="0" y="{y + row + 10}" class="muted">as written</text>')
        for what, value, colour in (("compute", cost.estimate.compute_us, "var(--compute)"),
                                    ("comm", cost.estimate.comm_us, "var(--comm)")):  # fmt: skip
            width = max(1.0, value / top * bar_w)
            parts.append(f'<text x="{label_w}" y="{y + 10}">{what}</text>'
                         f'<rect x="{bar_x}" y="{y + 2}" width="{width:.1f}" height="9" rx="2" fill="{colour}"/>'
                         f'<text x="{bar_x + width + 5:.1f}" y="{y + 10}">{_us(value)}</text>')  # fmt: skip
            y += row
        y += 6
    return (f'<svg class="cost" width="{bar_x + bar_w + 70}" height="{y}" role="img" '
            f'aria-label="cost estimate">{"".join(parts)}</svg>')  # fmt: skip


def _figure_rows(figures: Sequence[Figure], cards: dict[str, int]) -> str:
    """The figures as a table; a location links to its chain's card when `cards` has it."""
    from qmmar.interpreter.ideal import COLUMNS, figure_cells

    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    rows = []
    for f in figures:
        cells = figure_cells(f)
        number = cards.get(f.location)
        first = f'<a href="#chain-{number}">{escape(cells[0])}</a>' if number else escape(cells[0])
        rest = "".join(f'<td class="num">{escape(c)}</td>' for c in cells[3:])
        rows.append(
            f"<tr><td><code>{first}</code></td><td>{escape(cells[1])}</td><td>{escape(cells[2])}</td>{rest}</tr>"
        )
    return f'<table class="figures"><tr>{head}</tr>{"".join(rows)}</table>'


def _ops_table(ops: Printed) -> str:
    rows = "".join(f'<tr><td class="at mono">{escape(os.path.basename(loc))}</td>'
                   f"<td><code>{escape(text)}</code></td></tr>" for text, loc in ops)  # fmt: skip
    return f'<table class="ops">{rows}</table>'


def _after(chain: ChainRecord) -> str:
    if chain.after:
        return _ops_table(chain.after)
    if chain.status == "refused":
        return '<p class="none">not fused: the ops stay as they are</p>'
    return '<p class="none">legal to fuse</p>'


def chain_card(chain: ChainRecord, figures: Sequence[Figure]) -> str:
    number = chain.number
    kind = chain.plan.kind if chain.plan else "an MC2 op"
    what = {"fused": f"fused into {kind}", "legal": f"legal to fuse into {kind} (check only: not rewritten)",
            "refused": f"not fused into {kind}"}[chain.status]  # fmt: skip
    rule = f'<code class="rule">{escape(chain.rule)}</code>' if chain.rule else ""
    must = ' <span class="badge refused">must fuse</span>' if chain.must_fuse and chain.status == "refused" else ""
    mine = [f for f in figures if f.location == chain.chain_location]
    # Off screen, a card is not laid out (content-visibility): reserve about its height.
    height = 260 + 34 * (len(chain.before) + len(chain.after) + 2 * len(mine))
    parts = [
        f'<article class="card {chain.status}" id="chain-{number}" style="contain-intrinsic-size: auto {height}px" '
        f'data-status="{chain.status}" data-kind="{escape(kind)}" data-rule="{escape(chain.rule or "")}" '
        f'data-location="{escape(chain.location)}" data-chain-location="{escape(chain.chain_location)}">',
        f'<header><a class="num" href="#box-{number}">#{number}</a>'
        f'<span class="badge {chain.status}">{chain.status}</span>'
        f'{rule}<code class="loc">{escape(chain.location)}</code>'
        f"<span>{what}</span>{must}</header>",
    ]
    if chain.sentence:
        parts.append(f'<p class="sentence">{escape(chain.sentence)}</p>')
    parts.append(f'<p class="chainops mono">{escape(chain.summary)}</p>')
    if chain.costs and chain.dims:
        m, k, n, world_size = chain.dims
        shape = f"m {m}, k {k}, n {n}, world size {world_size}"
        cost = f'{cost_svg(chain.costs)}<div class="loc mono">{shape}</div>'
    else:
        cost = '<p class="none">dynamic m, k or n: no estimate</p>'
    notes = "".join(f"<li>{escape(note)}</li>" for note in chain.notes)
    notes = f'<div><h3>notes</h3><ul class="notes">{notes}</ul></div>' if notes else ""
    parts.append(f'<div class="row"><div><h3>cost estimate</h3>{cost}</div>{notes}</div>')
    if mine:
        parts.append(f"<h3>this run against the full-precision ideal</h3>{_figure_rows(mine, {})}")
    after = "after (what fusion would write)" if chain.status == "legal" and chain.after else "after"
    parts.append(f"<h3>before</h3>{_ops_table(chain.before)}<h3>{after}</h3>{_after(chain)}</article>")
    return "\n".join(parts)


def _summary(chains: Sequence[ChainRecord], options: FuseOptions, figures: Sequence[Figure], run: str | None) -> str:
    counts = Counter(c.status for c in chains)
    boxes = [f'<div class="count"><b>{len(chains)}</b>chains</div>']
    boxes += [f'<div class="count {s}"><b>{counts[s]}</b>{s}</div>' for s in STATUSES]
    refused = [c for c in chains if c.status == "refused"]
    by_rule = Counter(c.rule for c in refused)
    top = max(by_rule.values(), default=1)
    rows = "".join(
        f'<tr data-rule="{escape(rule or "")}"><td><code>{escape(rule or "?")}</code></td>'
        f'<td class="bar"><span style="width:{count / top * 100:.0f}%"></span></td><td>{count}</td><td>'
        + " ".join(f'<a href="#chain-{c.number}">#{c.number}</a>' for c in refused if c.rule == rule)
        + "</td></tr>"
        for rule, count in by_rule.most_common()
    )
    chart = (f'<h3>refused, by rule</h3><table class="rules">{rows}</table>' if rows
             else '<p class="none">no chain refused</p>')  # fmt: skip
    check = " · check only" if options.check_only else ""
    settings = (f"group {escape(options.group or '(the first collective’s)')} · scenario {escape(options.scenario)} · "
                f"min-m {options.min_m} · cost model {options.int8_tops:g} int8 TOPS, {options.link_gbps:g} GB/s "
                f"per link{check}")  # fmt: skip
    run_part = ""
    if run is not None:
        cards = {c.chain_location: c.number for c in reversed(chains)}  # the first chain at a location
        table = _figure_rows(figures, cards) if figures else '<p class="none">no op measured</p>'
        run_part = (f"<h3>int8 communication against the full-precision ideal "
                    f"(<code>{escape(run)}</code>, rank 0)</h3>{table}")  # fmt: skip
    return (f'<section id="summary"><h2>Summary</h2><div class="counts">{"".join(boxes)}</div>{chart}'
            f'<p class="sub">{settings}</p>{run_part}</section>')  # fmt: skip


def render(title: str, snapshot: Snapshot, chains: Sequence[ChainRecord], options: FuseOptions,
           figures: Sequence[Figure] = (), run: str | None = None) -> str:  # fmt: skip
    legend = '<p class="legend">' + "".join(f'<span><i class="{s}"></i>{s}</span>' for s in STATUSES) + "</p>"
    graphs = []
    for i, graph in enumerate(snapshot.functions):
        mine = [c for c in chains if c.function == i]
        parts = "".join(f'<div class="part" style="contain-intrinsic-size: auto {part.height_px}px">{part.svg}</div>'
                        for part in function_parts(graph, mine))  # fmt: skip
        graphs.append(f'<section class="function" id="fn-{escape(graph.name)}"><h2>@{escape(graph.name)}: '
                      f"{len(mine)} chain(s), {len(graph.nodes)} ops before fusion</h2>{legend}"
                      f'<div class="graph">{parts}</div></section>')  # fmt: skip
    cards = "\n".join(chain_card(c, figures) for c in chains)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qmmar fusion report: {escape(title)}</title>
<style>{_css()}</style></head>
<body><main>
<h1>qmmar fusion report</h1><p class="sub"><code>{escape(title)}</code></p>
{_summary(chains, options, figures, run)}
{"".join(graphs)}
<section id="chains"><h2>Chains</h2>{cards or '<p class="none">no chain of an MC2 op</p>'}</section>
</main></body></html>
"""


def _title(module: ModuleOp) -> str:
    for op in module.walk():
        if isinstance(op.location, FileLineColLoc):
            return op.location.filename.data
    return "<module>"


class HtmlReport:
    """The report of one fusion run, in two steps: the graph is taken before fusion (`__init__`),
    the verdicts after (`write`)."""

    def __init__(self, module: ModuleOp, options: FuseOptions) -> None:
        self.snapshot = Snapshot(module)
        self.options = options
        self.title = _title(module)

    def write(self, path: str, verdicts: list[Verdict], module: ModuleOp, run: str | None = None) -> None:
        """Write the page; `module` is the module after fusion, `run` a `qmmar-run --ideal -o` output."""
        chains = [chain_record(i + 1, v) for i, v in enumerate(verdicts)]
        after = fused_texts(chains, self.snapshot.order, module) | previewed_texts(chains, self.snapshot.order)
        chains = [placed(c, self.snapshot, after) for c in chains]
        figures = _load_figures(run, chains, self.snapshot) if run is not None else []
        page = render(self.title, self.snapshot, chains, self.options, figures, run)
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)


def _load_figures(run: str, chains: Sequence[ChainRecord], snapshot: Snapshot) -> list[Figure]:
    """The run's figures, each of a chain or a fused op of this program (keyed by where it is)."""
    from qmmar.interpreter.ideal import load_figures
    from qmmar.interpreter.values import InputError

    try:
        figures = load_figures(run)
    except InputError as err:
        raise ReportError(str(err)) from None
    fused = {k.name for k in family()}
    known = {c.chain_location for c in chains} | {
        node.location for fn in snapshot.functions for node in fn.nodes if node.name in fused
    }
    if stray := [f.location for f in figures if f.location not in known]:
        raise ReportError(f"{run}: its figures are of another program: no chain of this one is at {stray[0]} "
                          "(make the run file with qmmar-run --ideal on this program)")  # fmt: skip
    return figures
