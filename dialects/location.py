"""How an op's location reads in a message: `file:line:col`, as MLIR prints it."""

from xdsl.dialects.builtin import FileLineColLoc
from xdsl.ir import Attribute


def location_text(loc: Attribute) -> str:
    if isinstance(loc, FileLineColLoc):
        return f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"
    return "<unknown>"
