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
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues
from xdsl.interpreters.func import FuncFunctions
from xdsl.ir import Operation
from xdsl.irdl import IRDLOperation

from qmmar.dialects.diagnostics import LocatedError, one_line
from qmmar.interpreter.comm import CollectiveError, Communicator, InProcessGroup
from qmmar.interpreter.functions import BuiltinFunctions, QmmarFunctions, RunError, verify_at_run_time
from qmmar.interpreter.liveness import ReleasingInterpreter
from qmmar.interpreter.memory import unmap_large_frees
from qmmar.interpreter.observe import Watch
from qmmar.interpreter.values import Argument, InputArray, UnreadableArgument, per_rank_args

CHECKED_AT_RUN_TIME = ("qmm", "mc2")
"""The dialects whose verifiers run again on the run-time shapes of dynamic operands."""


def entry_function(module: ModuleOp, entry: str) -> func.FuncOp:
    for op in module.walk():
        if isinstance(op, func.FuncOp) and op.sym_name.data == entry:
            return op
    raise RunError(f"no function @{entry} in the module")


class _CurrentOp(Interpreter.Listener):
    """Remembers the op being run (to locate a failure) and checks its dynamic shapes."""

    def __init__(self) -> None:
        self.op: Operation | None = None

    def will_interpret_op(self, op: Operation, args: PythonValues) -> None:
        self.op = op
        if isinstance(op, IRDLOperation) and op.dialect_name() in CHECKED_AT_RUN_TIME:
            verify_at_run_time(op, args)


@dataclass
class _RankOutcome:
    results: tuple[np.ndarray, ...] | None = None
    error: BaseException | None = None
    op: Operation | None = None


def run_rank(
    module: ModuleOp,
    entry: str,
    comm: Communicator,
    args: Sequence[Argument],
    functions: Sequence[InterpreterFunctions] = (),
    listeners: Sequence[Interpreter.Listener] = (),
) -> _RankOutcome:
    """One rank's run: the interpreter with qmmar's functions over this rank's communicator
    (and `functions`, implementations of other ops, such as the PyTorch frontend's; and
    `listeners`, which watch the ops run, such as progress and --profile)."""
    unmap_large_frees()  # a rank's freed arrays leave the process, not its thread's heap
    current = _CurrentOp()
    interp = ReleasingInterpreter(module, listeners=(current, *listeners))  # values die after their last use
    interp.register_implementations(FuncFunctions())
    interp.register_implementations(BuiltinFunctions())
    interp.register_implementations(QmmarFunctions(comm))
    for extra in functions:
        interp.register_implementations(extra)
    outcome = _RankOutcome()
    try:
        # Overflow to inf, NaN from inf - inf and the like are the numerics of SEMANTICS.md,
        # not accidents: numpy must not warn about them (its error state is per thread).
        with np.errstate(all="ignore"):
            outcome.results = tuple(interp.call_op(entry, tuple(args)))
    except Exception as err:  # reported with its rank and op by run_spmd
        outcome.error, outcome.op = err, current.op
    return outcome


def _explained(err: BaseException) -> str:
    if isinstance(err, MemoryError):
        return f"out of memory{f': {err}' if str(err) else ''}"
    if type(err).__module__.startswith("qmmar."):  # RunError, CollectiveError, DisagreementError, ...
        return str(err)
    return f"{type(err).__name__}: {one_line(err)}"  # an IR dump of xDSL's after the reason: not on the line


def rank_failure(rank: int, outcome: _RankOutcome) -> Exception:
    """A rank's failure as one line: located at its op, with the rank (threads and MPI alike)."""
    assert outcome.error is not None
    if isinstance(outcome.error, UnreadableArgument):
        return LocatedError(outcome.error.where, f"{outcome.error.message} (on rank {rank})")
    if outcome.op is None:
        return RunError(f"rank {rank}: {_explained(outcome.error)}")
    return LocatedError.at(outcome.op, f"on rank {rank}: {_explained(outcome.error)}")


def run_spmd(
    module: ModuleOp,
    inputs: Sequence[InputArray],
    world_size: int,
    entry: str = "main",
    functions: Sequence[InterpreterFunctions] = (),
    watch: Watch | None = None,
) -> list[np.ndarray]:
    """Run `@entry` on `world_size` ranks, one thread each, and return its results, each as
    `(world_size,) + shape` (rank r's at index r).

    `inputs[i]` is the i-th argument: either with the argument's shape (the same on every
    rank) or `(world_size,) + shape` (one slice per rank); bf16 may be float32 or uint16 bits.
    `functions` adds implementations of other ops (the PyTorch frontend's opaque ops); a
    `watch` (progress, --profile) attaches to every rank.
    A failure raises one-line errors: `LocatedError` located at the op (with the rank),
    `InputError` for arguments that do not fit, `RunError` otherwise."""
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
        outcomes[rank] = run_rank(module, entry, comm, args[rank], functions, listeners)
        group.leave(rank, "failed" if outcomes[rank].error else "returned")

    # Daemon threads: Ctrl-C in the main thread ends the run at once, not after the ranks.
    threads = [threading.Thread(target=rank_main, args=(r,), name=f"rank{r}", daemon=True) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = [(r, o) for r, o in enumerate(outcomes) if o.error is not None]
    if failures:
        # A rank that failed by itself explains the others, which only noticed it left.
        r, o = next(((r, o) for r, o in failures if not isinstance(o.error, CollectiveError)), failures[0])
        raise rank_failure(r, o) from o.error
    return [np.stack(per_rank) for per_rank in zip(*(o.results or () for o in outcomes), strict=True)]
