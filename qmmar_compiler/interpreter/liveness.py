"""An interpreter that holds each SSA value only while it is live: an argument given as a
`values.ReadOnUse` is read at its first use, and every value is let go after its last use.

xDSL's Interpreter keeps every value of a function until the function returns: a 16-layer
model on 8 ranks held every layer's intermediates at once.  Here each block's liveness is
computed once, the first time one of its ops runs: a value defined in a block (block
argument or op result) dies after the op of that block that uses it last, where a use inside
a nested region counts as a use by the op that holds the region (so a value read in a loop
body lives until the loop ends).  A value used from another block of a CFG region is kept
until the region returns, as before; a value nobody uses is not kept at all.  Letting go
drops the interpreter's reference only: an argument's caller keeps its own (of an argument
read on use, only the `ReadOnUse`, so its array leaves memory with its last use too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xdsl.interpreter import Interpreter, OpImplResult, PythonValues
from xdsl.ir import Block, Operation, SSAValue
from xdsl.utils.scoped_dict import ScopedDict

from qmmar.interpreter.values import ReadOnUse


class _Released:
    def __repr__(self) -> str:
        return "<value released after its last use>"


RELEASED = _Released()
"""What the environment holds for a value after its last use."""


def last_uses(block: Block) -> dict[Operation, tuple[SSAValue, ...]]:
    """For each op of `block`, the values defined in the block whose last use it is."""
    order = {op: i for i, op in enumerate(block.ops)}
    dying: dict[Operation, list[SSAValue]] = {}
    defined = [*block.args, *(r for op in block.ops for r in op.results)]
    for value in defined:
        users = [block.find_ancestor_op_in_block(use.operation) for use in value.uses]
        found = [op for op in users if op is not None]
        if not found or len(found) < len(users):  # unused (never stored), or used from another block
            continue
        dying.setdefault(max(found, key=order.__getitem__), []).append(value)
    return {op: tuple(values) for op, values in dying.items()}


@dataclass
class ReleasingInterpreter(Interpreter):
    """xDSL's Interpreter, reading each argument at its first use and releasing each value
    after its last use (module docstring)."""

    _last_uses: dict[Block, dict[Operation, tuple[SSAValue, ...]]] = field(default_factory=dict, init=False)

    def _run_op(self, op: Operation, inputs: PythonValues) -> OpImplResult:
        result = super()._run_op(op, inputs)
        if (block := op.parent_block()) is not None:
            if block not in self._last_uses:
                self._last_uses[block] = last_uses(block)
            scope = self._ctx.local_scope
            for value in self._last_uses[block].get(op, ()):
                if value in scope:  # run_op on a lone op has no environment to release from
                    self._ctx[value] = RELEASED
        return result

    def set_values(self, pairs: Any) -> None:
        super().set_values((value, x) for value, x in pairs if value.uses)

    def get_values(self, values: Iterable[SSAValue]) -> tuple[Any, ...]:
        return tuple(self._live(value) for value in values)

    def _live(self, value: SSAValue) -> Any:
        """value's Python value; an argument not read yet is read, once: it replaces its
        `ReadOnUse` in the scope that holds it, for the later uses and for the release."""
        x = self._ctx[value]
        if isinstance(x, ReadOnUse):
            x = x.read()
            scope: ScopedDict[SSAValue, Any] | None = self._ctx
            while scope is not None and value not in scope.local_scope:
                scope = scope.parent
            assert scope is not None  # self._ctx[value] found it
            scope[value] = x
        return x
