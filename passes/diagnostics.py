"""Errors that passes raise at a source location."""

from __future__ import annotations

from xdsl.ir import Operation
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects.location import location_text


class PassError(PassFailedException):
    """A pass failure at a place in the source: its text reads `file:line:col: error: ...`,
    as MLIR tools print it, and a driver prints it unchanged."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: error: {message}")
        self.where, self.message = where, message

    @staticmethod
    def at(op: Operation, message: str) -> PassError:
        return PassError(location_text(op.location), message)
