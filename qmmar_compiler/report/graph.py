"""A function's dataflow graph as inline SVG, laid out by Graphviz's `dot`: one node per op,
each chain boxed in its verdict's colour with its number, verdict, rule and location on the
box; the box links to the chain's card below the graph."""

from __future__ import annotations

import os
from collections.abc import Sequence

from qmmar.report.model import ChainRecord, FunctionGraph, ReportError

COLOURS = {"fused": ("#1b7f3b", "#e6f4ea"), "legal": ("#1f5fbf", "#e8f0fd"), "refused": ("#b3261e", "#fdecea")}
"""(stroke, fill) of a chain's box, by verdict; the page's legend and badges use the same."""

FONT = "Helvetica,Arial,sans-serif"


def _dot_text(text: str) -> str:
    """A string as a dot label: backslashes are escapes there."""
    return text.replace("\\", "\\\\")


def box_label(chain: ChainRecord) -> str:
    rule = f" [{chain.rule}]" if chain.rule else ""
    return f"#{chain.number} {chain.status}{rule}\n{os.path.basename(chain.location)}"


def function_svg(graph: FunctionGraph, chains: Sequence[ChainRecord]) -> str:
    """The graph as an <svg> element (no XML prolog), ready to inline in HTML."""
    try:
        import graphviz
    except ImportError:
        raise ReportError("an HTML report needs the graphviz Python package: pip install 'qmmar[report]'") from None
    dot = graphviz.Digraph(
        graph.name,
        graph_attr={"rankdir": "TB", "nodesep": "0.25", "ranksep": "0.3", "fontname": FONT,
                    "fontsize": "11", "bgcolor": "transparent", "labeljust": "l"},
        node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white", "color": "#8a94a0",
                   "fontname": FONT, "fontsize": "10", "height": "0.25", "margin": "0.08,0.02"},
        edge_attr={"color": "#8a94a0", "arrowsize": "0.6"},
    )  # fmt: skip

    def node(target, i: int) -> None:
        n = graph.nodes[i]
        label = f"{n.name}  {n.result}" if n.result else n.name
        target.node(f"n{i}", _dot_text(label), tooltip=_dot_text(f"{n.location}\n{n.text}"), **{"class": "op"})

    boxed = set()
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
    for i, n in enumerate(graph.nodes):
        if i not in boxed:
            node(dot, i)
        for source in n.inputs:
            dot.edge(f"n{source}", f"n{i}")
    try:
        svg = dot.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        raise ReportError("an HTML report needs Graphviz's dot program (Debian: apt-get install graphviz)") from None
    except graphviz.CalledProcessError as err:
        raise ReportError(f"dot failed on @{graph.name}: {err.stderr}") from None
    return svg[svg.index("<svg") :]
