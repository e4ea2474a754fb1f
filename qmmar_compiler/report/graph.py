"""A function's dataflow graph as inline SVG, laid out by Graphviz's `dot`: one node per op,
each chain boxed in its verdict's colour with its number, verdict, rule and location on the
box; the box links to the chain's card below the graph.

A long function is drawn in parts of about `PART_OPS` ops, cut only between chains: a value
from an earlier part enters as a dashed stub named like the value.  dot's layout time grows
faster than linearly with the graph, and the page lays out (and the browser skips, while off
screen) each part on its own, so a 60-layer model's report stays quick to write and to open.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from qmmar.report.model import ChainRecord, FunctionGraph, ReportError

COLOURS = {"fused": ("#1b7f3b", "#e6f4ea"), "legal": ("#1f5fbf", "#e8f0fd"), "refused": ("#b3261e", "#fdecea")}
"""(stroke, fill) of a chain's box, by verdict; the page's legend and badges use the same."""

FONT = "Helvetica,Arial,sans-serif"
PART_OPS = 150


@dataclass(frozen=True)
class Part:
    svg: str  # an <svg> element, ready to inline
    height_px: int  # its height, for the page to reserve while it is off screen


def _dot_text(text: str) -> str:
    """A string as a dot label: backslashes are escapes there, and graphviz would pass a string
    in angle brackets (`<unknown>` ... `tensor<4xi8>`: an op without a location) to dot
    unquoted, as an HTML label."""
    nohtml: str = _graphviz().nohtml(text.replace("\\", "\\\\"))
    return nohtml


def box_label(chain: ChainRecord) -> str:
    rule = f" [{chain.rule}]" if chain.rule else ""
    return f"#{chain.number} {chain.status}{rule}\n{os.path.basename(chain.location)}"


def cuts(count: int, chains: Sequence[ChainRecord], part_ops: int = PART_OPS) -> list[range]:
    """Node ranges of about part_ops ops each, never cutting through a chain."""
    spans = [(min(c.nodes), max(c.nodes)) for c in chains if c.nodes]
    inside = [False] * (count + 1)  # inside[i]: a chain has nodes both before i and from i on
    for first, last in spans:
        for i in range(first + 1, last + 1):
            inside[i] = True
    parts, start = [], 0
    for i in range(1, count - part_ops // 3):  # no small last part: it joins the one before
        if i - start >= part_ops and not inside[i]:
            parts.append(range(start, i))
            start = i
    return [*parts, range(start, count)] if count else []


class _Dot(Protocol):
    """What this module draws with of graphviz's Digraph (graphviz has no annotations)."""

    source: str

    def node(self, name: str, label: str | None = None, **attrs: str) -> None: ...

    def edge(self, tail_name: str, head_name: str, **attrs: str) -> None: ...

    def attr(self, **attrs: str) -> None: ...

    def subgraph(self, *, name: str) -> AbstractContextManager[_Dot]: ...


def _graphviz() -> Any:  # the module: untyped
    try:
        import graphviz
    except ImportError:
        raise ReportError("an HTML report needs the graphviz Python package: pip install 'qmmar[report]'") from None
    return graphviz


def _part_source(graph: FunctionGraph, nodes: range, chains: Sequence[ChainRecord]) -> str:
    """One part in the dot language."""
    dot: _Dot = _graphviz().Digraph(
        f"{graph.name}_{nodes.start}",
        graph_attr={"rankdir": "TB", "nodesep": "0.25", "ranksep": "0.3", "fontname": FONT,
                    "fontsize": "11", "bgcolor": "transparent", "labeljust": "l"},
        node_attr={"shape": "box", "style": "filled", "fillcolor": "white", "color": "#8a94a0",
                   "fontname": FONT, "fontsize": "10", "height": "0.25", "margin": "0.08,0.02"},
        edge_attr={"color": "#8a94a0", "arrowsize": "0.6"},
    )  # fmt: skip

    def node(target: _Dot, i: int) -> None:
        n = graph.nodes[i]
        label = f"{n.name}  {n.result}" if n.result else n.name
        target.node(f"n{i}", _dot_text(label), tooltip=_dot_text(f"{n.location}\n{n.text}"), **{"class": "op"})

    boxed: set[int] = set()
    for chain in chains:
        stroke, fill = COLOURS[chain.status]
        with dot.subgraph(name=f"cluster_chain{chain.number}") as box:
            box.attr(label=_dot_text(box_label(chain)), color=stroke, fillcolor=fill, fontcolor=stroke,
                     style="rounded,filled", penwidth="2", id=f"box-{chain.number}", href=f"#chain-{chain.number}",
                     tooltip=_dot_text(f"{chain.location}: {chain.sentence or chain.status}"),
                     **{"class": f"chain {chain.status}"})  # fmt: skip
            for i in chain.nodes:
                node(box, i)
        boxed.update(chain.nodes)
    stubs = set()
    for i in nodes:
        if i not in boxed:
            node(dot, i)
        for source in graph.nodes[i].inputs:
            if source < nodes.start and source not in stubs:  # a value from an earlier part
                stubs.add(source)
                value = graph.nodes[source]
                dot.node(f"n{source}", _dot_text(value.result or value.name), style="dashed", color="#b0b8c2",
                         fontcolor="#5f6b7a", **{"class": "ref"})  # fmt: skip
            dot.edge(f"n{source}", f"n{i}")
    return dot.source


def function_parts(graph: FunctionGraph, chains: Sequence[ChainRecord]) -> list[Part]:
    """The function's graph (chains: those of this function), drawn in parts by one run of dot."""
    sources = [_part_source(graph, nodes, [c for c in chains if c.nodes and min(c.nodes) in nodes])
               for nodes in cuts(len(graph.nodes), chains)]  # fmt: skip
    graphviz = _graphviz()
    try:
        out = graphviz.pipe("dot", "svg", "\n".join(sources).encode()).decode()
    except graphviz.ExecutableNotFound:
        raise ReportError("an HTML report needs Graphviz's dot program (Debian: apt-get install graphviz)") from None
    except graphviz.CalledProcessError as err:
        raise ReportError(f"dot failed on @{graph.name}: {err.stderr}") from None
    parts = []
    for svg in re.findall(r"<svg\b.*?</svg>", out, flags=re.S):
        # dot's <title>s (node ids) and comments carry nothing a reader wants, and weigh.
        svg = re.sub(r"<title>[^<]*</title>\n?|<!--[^>]*-->\n?", "", svg)
        height = re.search(r'height="([\d.]+)pt"', svg)
        parts.append(Part(svg, round(float(height.group(1)) * 4 / 3) if height else 0))
    if len(parts) != len(sources):
        raise ReportError(f"dot drew {len(parts)} of the {len(sources)} parts of @{graph.name}")
    return parts
