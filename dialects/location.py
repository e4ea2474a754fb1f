"""How an op's location reads in a message: `file:line:col`, as MLIR prints it; a named
location (`loc("layers.0.o_proj"("model.py":12:0))`, the module an imported op came from) as
`file:line:col (name)`, so that a message still starts where an editor jumps to."""

from xdsl.dialects.builtin import FileLineColLoc, NameLoc
from xdsl.ir import Attribute


def location_text(loc: Attribute) -> str:
    if isinstance(loc, FileLineColLoc):
        return f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"
    if isinstance(loc, NameLoc):
        return f"{location_text(loc.location)} ({loc.desc.data})"
    return "<unknown>"
