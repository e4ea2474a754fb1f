"""Running an entry function on `world_size` ranks at once (SPMD), one thread per rank.

numpy's BLAS releases the GIL, so ranks compute in parallel; collectives meet in an
`InProcessGroup`.  The first real failure (not one that another rank's failure caused) is
reported with its rank, op and location.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Operation

from qmmar.interpreter.comm import CollectiveError, Communicator, InProcessGroup
from qmmar.interpreter.functions import BuiltinFunctions, QmmarFunctions, RunError
from qmmar.interpreter.observe import Watch
from qmmar.interpreter.values import per_rank_args
from qmmar.source import op_error


def entry_function(module: ModuleOp, entry: str) -> func.FuncOp:
    for op in module.walk():
        if isinstance(op, func.FuncOp) and op.sym_name.data == entry:
            return op
    raise RunError(f"no function @{entry} in the module")


class _CurrentOp(Interpreter.Listener):
    def __init__(self) -> None:
        self.op: Operation | None = None

    def will_interpret_op(self, op: Operation, args) -> None:
        self.op = op


@dataclass
class _RankOutcome:
    results: tuple[np.ndarray, ...] | None = None
    error: BaseException | None = None
    op: Operation | None = None


def run_rank(module: ModuleOp, entry: str, comm: Communicator, args: Sequence[np.ndarray],
             listeners: Sequence[Interpreter.Listener] = ()):  # fmt: skip
    """One rank's run: the interpreter with qmmar's functions over this rank's communicator."""
    current = _CurrentOp()
    interp = Interpreter(module, listeners=(current, *listeners))
    interp.register_implementations(FuncFunctions())
    interp.register_implementations(BuiltinFunctions())
    interp.register_implementations(QmmarFunctions(comm))
    outcome = _RankOutcome()
    try:
        outcome.results = tuple(interp.call_op(entry, tuple(args)))
    except Exception as err:  # reported with its rank and op by run_spmd
        outcome.error, outcome.op = err, current.op
    return outcome


def run_spmd(module: ModuleOp, inputs: Sequence[np.ndarray], world_size: int, entry: str = "main",
             watch: Watch | None = None) -> list[np.ndarray]:  # fmt: skip
    """Run `@entry` on `world_size` ranks; results come back as `(world_size,) + shape`.
    A `watch` (progress, --profile) attaches to every rank."""
    if world_size < 1:
        raise RunError("world_size must be at least 1")
    fn = entry_function(module, entry)
    args = per_rank_args(fn.function_type.inputs.data, inputs, world_size)
    group = InProcessGroup(world_size)
    outcomes: list[_RankOutcome] = [_RankOutcome()] * world_size

    def rank_main(rank: int) -> None:
        comm: Communicator = group.communicator(rank)
        listeners: Sequence[Interpreter.Listener] = ()
        if watch is not None:
            comm, listeners = watch.attach(rank, comm)
        outcomes[rank] = run_rank(module, entry, comm, args[rank], listeners)
        group.leave(rank, "failed" if outcomes[rank].error else "returned")

    threads = [threading.Thread(target=rank_main, args=(r,), name=f"rank{r}") for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = [(r, o) for r, o in enumerate(outcomes) if o.error is not None]
    if failures:
        # A rank that failed by itself explains the others, which only noticed it left.
        r, o = next(((r, o) for r, o in failures if not isinstance(o.error, CollectiveError)), failures[0])
        if o.op is None:
            raise RunError(f"rank {r}: {o.error}") from o.error
        raise op_error(o.op, f"on rank {r}: {o.error}") from o.error
    return [np.stack(per_rank) for per_rank in zip(*(o.results for o in outcomes), strict=True)]
