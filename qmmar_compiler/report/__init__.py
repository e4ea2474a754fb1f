"""The HTML fusion report (`qmmar-check --html`, the fuse pass's `report=FILE.html`).

Graphviz (the `graphviz` Python package, from the `qmmar[report]` extra, and the `dot`
program) is imported only when a page is drawn.
"""

from qmmar.report.model import ReportError
from qmmar.report.page import HtmlReport

__all__ = ["HtmlReport", "ReportError"]
