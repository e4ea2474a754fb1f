"""The one error a user reads about a place in the program: `file:line:col: error: message`,
as MLIR tools print it; every qmmar tool prints it unchanged, with exit code 1.

It lives with the dialects so that every layer can raise it: a dialect's check, a pass, the
parser, the interpreter, a target and a frontend.
"""

from __future__ import annotations

from xdsl.dialects.builtin import UnregisteredOp
from xdsl.ir import Operation
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects.location import location_text


class LocatedError(PassFailedException):
    """An error at `where` (`file:line:col`, or a file name alone).  It is xDSL's
    `PassFailedException`, so that a pass raising it fails as xDSL's drivers expect."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: error: {message}")
        self.where, self.message = where, message

    @classmethod
    def at(cls, op: Operation, message: str) -> LocatedError:
        """`message` about `op`, at its location, in MLIR's words: `'name' op message` (an
        unregistered op by the name it was written with, `'torch.aten.arange.start' op`)."""
        return cls(location_text(op.location), f"'{written_name(op)}' op {message}")


def written_name(op: Operation) -> str:
    """An op's name as the program writes it: an unregistered (opaque) op's own name, not
    xDSL's `builtin.unregistered`."""
    return op.op_name.data if isinstance(op, UnregisteredOp) else op.name


def one_line(err: BaseException | str) -> str:
    """An exception's message (or a text) as one line that keeps its reason.

    xDSL writes a failed constraint as a head that ends in a colon and the reason on the next
    line (`operand 'rhs' at position 1 does not verify:` / `expected ..., got ...`), nested as
    deep as the constraint, and may follow it with an IR dump.  The heads are joined to the
    reason; what follows the reason (a dump) is left out.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__ if isinstance(err, BaseException) else ""
    text = lines[0]
    for line in lines[1:]:
        if not text.endswith(":"):
            break
        text = f"{text} {line}"
    return text.removesuffix(":")


def ranks(count: int) -> str:
    """`1 rank`, `4 ranks`: a rank count as every message writes it."""
    return f"{count} rank" if count == 1 else f"{count} ranks"
