"""Ranks as MPI processes: one process per rank, started by `mpiexec`, on one machine or many.

`MPICommunicator` is a process's `Communicator`.  Before each collective the ranks exchange
what they are about to do (the op's `Site` and the payload's shapes), so that ranks at
different collectives, or with different shapes, fail with a message that names the op and
the ranks instead of hanging or mixing data; a rank that returned or failed says so at the
same exchange, which ends the run on every rank in order.  Data travels as raw words (bf16 as
uint16: MPI has no bf16); reductions stay in qmmar's numerics, in rank order.

`MPIJob` is the rest of a run on MPI: steps that every rank takes together and that fail on
every rank when they fail on one (reading the program and inputs, the run itself, writing
results), rank 0's gathering of results one slice at a time, and of the values `--ideal`
measures one op at a time.

Waiting ranks sleep between polls instead of spinning, since ranks often outnumber cores on
one machine.  mpi4py is imported here alone, and only when a run uses MPI.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import InterpreterFunctions

from qmmar.dialects.diagnostics import LocatedError
from qmmar.interpreter.comm import CollectiveError, Communicator, Site, disagreement, payload_shapes
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.ideal import Figure, IdealRun, Target, figure
from qmmar.interpreter.npz import Streamed, write_results
from qmmar.interpreter.observe import Watch
from qmmar.interpreter.results import RankStats, mismatch
from qmmar.interpreter.spmd import rank_failure, run_rank
from qmmar.interpreter.values import Argument

if TYPE_CHECKING:
    from mpi4py import MPI  # annotations only: see _mpi

T = TypeVar("T")

LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
"""Set in each process by the launchers of MPICH (Hydra, also Intel MPI), Open MPI, PMIx
(Slurm's srun, PRRTE) and MVAPICH."""

_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_LONGEST_SLEEP = 0.005
_FORWARDING_TIME = 0.5  # seconds: for mpiexec to pass on a line printed just before an abort


def launched_by_mpi(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process was started by an MPI launcher (mpiexec, mpirun, srun)."""
    return any(name in environ for name in LAUNCHER_VARIABLES)


class MPIUnavailable(Exception):
    """mpi4py (or the MPI library under it) cannot be loaded."""


class JobFailed(Exception):
    """A step failed on some rank; raised on every rank, with the line to print and the
    exit code."""

    def __init__(self, line: str, code: int = 1) -> None:
        super().__init__(line)
        self.code = code


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise MPIUnavailable(f"running on MPI needs mpi4py and an MPI library ({err}); "
                             "install them with: pip install 'qmmar[mpi]'") from None  # fmt: skip
    return MPI


def _wait(request: MPI.Request) -> None:
    """Complete a non-blocking MPI call, sleeping between polls (at most `_LONGEST_SLEEP`):
    a rank that waits for a slower one leaves the core to it and stays interruptible."""
    pause = 1e-5
    while not request.Test():
        time.sleep(pause)
        pause = min(2 * pause, _LONGEST_SLEEP)


def _words(x: np.ndarray) -> np.ndarray:
    """x's bytes as unsigned words of its item size, contiguous: what MPI moves."""
    return np.ascontiguousarray(x).view(_WORDS[x.dtype.itemsize])


@dataclass(frozen=True)
class _At:
    site: Site
    shapes: Any  # comm.payload_shapes of the payload


@dataclass(frozen=True)
class _Left:
    why: str  # "returned" or "failed"


def _disagreement(posts: Sequence[_At]) -> str | None:
    """Why the ranks' posts disagree, in the words of every communicator (comm.py), or None."""
    first = posts[0]
    r = next((r for r, post in enumerate(posts) if post != first), None)
    if r is None:
        return None
    return disagreement(r, (first.site, first.shapes), (posts[r].site, posts[r].shapes))


class MPICommunicator(Communicator):
    """One MPI process's view of its communication group (MPI_COMM_WORLD)."""

    def __init__(self, comm: MPI.Intracomm) -> None:
        self._comm = comm
        self.rank, self.world_size = comm.Get_rank(), comm.Get_size()
        self._open = True  # until an exchange shows that a rank left or that ranks disagree

    def _exchange(self, post: _At | _Left) -> list[_At | _Left]:
        _wait(self._comm.Ibarrier())
        return self._comm.allgather(post)

    def _agree(self, site: Site, payload: object) -> None:
        """Meet every rank at this collective: all at the same site with the same shapes."""
        posts = self._exchange(_At(site, payload_shapes(payload)))
        gone = [(r, post.why) for r, post in enumerate(posts) if isinstance(post, _Left)]
        if gone:
            self._open = False
            r, why = gone[0]
            raise CollectiveError(f"rank {self.rank} waits at {site.describe()} for rank {r}, which {why}")
        if (problem := _disagreement(cast(list[_At], posts))) is not None:  # none left: each post is an _At
            self._open = False
            raise CollectiveError(problem)

    def leave(self, why: str) -> None:
        """This rank returned or failed: the others learn it at the exchange they are at (unless
        an exchange has already ended the run on every rank)."""
        if self._open:
            self._open = False
            self._exchange(_Left(why))

    def _move(self, start: Callable[[], MPI.Request], site: Site) -> None:
        try:
            _wait(start())
        except _mpi().Exception as err:  # the ranks agreed, so this is MPI's own failure
            abort(f"qmmar-run: error: rank {self.rank}: MPI failed at {site.describe()}: {err}")

    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        self._agree(site, x)
        send = _words(x)
        received = np.empty((self.world_size, *send.shape), dtype=send.dtype)
        self._move(lambda: self._comm.Iallgather(send, received), site)
        return [part.view(x.dtype) for part in received]

    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        self._agree(site, list(chunks))
        if len({c.dtype for c in chunks}) > 1:
            raise RunError(f"the chunks sent at {site.describe()} differ in dtype")
        mine = chunks[self.rank]  # every rank sends this shape here (agreed)
        send = np.concatenate([_words(c).reshape(-1) for c in chunks])
        received = np.empty(self.world_size * mine.size, dtype=send.dtype)
        sizes = ([c.size for c in chunks], None), ([mine.size] * self.world_size, None)
        self._move(lambda: self._comm.Ialltoallv([send, sizes[0]], [received, sizes[1]]), site)
        return [part.view(mine.dtype).reshape(mine.shape) for part in np.split(received, self.world_size)]


def abort(message: str) -> None:
    """End every rank now, after saying why: for failures the ranks cannot agree on."""
    print(message, file=sys.stderr, flush=True)
    # mpiexec kills every process as soon as it hears of the abort, and its proxies may drop
    # output not yet forwarded (measured: the line lost in 15% of runs): let it through first.
    time.sleep(_FORWARDING_TIME)
    _mpi().COMM_WORLD.Abort(1)


class MPIJob:
    """This process's part in a run on MPI: its rank, and the steps all ranks take together."""

    def __init__(self, describe: Callable[[Exception], str], expected: tuple[type[Exception], ...]) -> None:
        """`describe` turns an `expected` exception into the line a user reads."""
        self._comm: MPI.Intracomm = _mpi().COMM_WORLD
        self.rank, self.world_size = self._comm.Get_rank(), self._comm.Get_size()
        self._describe, self._expected = describe, expected

    def allgather(self, value: T) -> list[T]:
        _wait(self._comm.Ibarrier())
        return self._comm.allgather(value)

    def _fail_together(self, failures: list[str | None], code: int) -> None:
        """Raise JobFailed on every rank if a rank failed: with the first failure, naming its
        rank unless every rank failed alike."""
        failed = [(r, line) for r, line in enumerate(failures) if line is not None]
        if failed:
            r, line = failed[0]
            everywhere = len(failed) == self.world_size and len({line for _, line in failed}) == 1
            raise JobFailed(line if everywhere else f"{line} (on rank {r})", code)

    def step(self, action: Callable[[], T], code: int = 1) -> T:
        """`action()` on every rank; if it fails on any, JobFailed (with `code`) on all."""
        try:
            value, failure = action(), None
        except self._expected as err:
            value, failure = None, self._describe(err)
        self._fail_together(self.allgather(failure), code)
        return value  # type: ignore[return-value]  # None only where action failed: raised above

    def run(self, module: ModuleOp, entry: str, args: Sequence[Argument], watch: Watch | None,
            functions: Sequence[InterpreterFunctions] = ()) -> list[np.ndarray]:  # fmt: skip
        """Run `@entry` as this rank (`functions`: implementations of other ops, as `run_spmd`
        takes them); its results.  A failure on any rank is reported as the threaded run
        reports it: the first rank that failed by itself, else the first."""
        comm = MPICommunicator(self._comm)
        watched, listeners = watch.attach(self.rank, comm) if watch is not None else (comm, ())
        outcome = run_rank(module, entry, watched, args, functions, listeners)
        comm.leave("failed" if outcome.error else "returned")
        failure = None
        if outcome.error is not None:
            line = self._describe(rank_failure(self.rank, outcome))
            failure = (isinstance(outcome.error, CollectiveError), line)
        failures = self.allgather(failure)
        chosen = next((f for f in failures if f is not None and not f[0]), None) or next(
            (f for f in failures if f is not None), None
        )
        if chosen is not None:
            raise JobFailed(chosen[1])
        return list(outcome.results)  # type: ignore[arg-type]  # no error: it has results

    def stats(self, results: Sequence[np.ndarray]) -> list[list[RankStats]]:
        """Every rank's statistics of its results, on every rank ([rank][i])."""
        stats = self.allgather([RankStats.of(r) for r in results])
        if (problem := mismatch(stats)) is not None:
            raise JobFailed(f"qmmar-run: error: {problem}")
        return stats

    def gather(self, value: T) -> list[T] | None:
        """Every rank's value, on rank 0 (None elsewhere)."""
        _wait(self._comm.Ibarrier())
        return self._comm.gather(value, root=0)

    def _every_ranks(self, mine: np.ndarray, tag: int) -> Iterator[np.ndarray]:
        """On rank 0: every rank's array, one at a time in rank order (its own first, then
        those the other ranks send with `tag`, of the same shape)."""
        yield mine
        for r in range(1, self.world_size):
            part = np.empty(mine.shape, dtype=_WORDS[mine.dtype.itemsize])
            _wait(self._comm.Irecv(part, source=r, tag=tag))
            yield part.view(mine.dtype)

    def write_gathered(self, path: str, results: Sequence[np.ndarray], extra: Mapping[str, np.ndarray]) -> None:
        """Rank 0 writes every rank's results (of the same shapes: `stats` checked them), and
        `extra`, into one .npz as the threaded run does (`npz.write_results`), receiving one
        rank's slice at a time."""
        if self.rank != 0:
            for i, result in enumerate(results):
                _wait(self._comm.Isend(_words(result), dest=0, tag=i))
            return
        every = [Streamed((self.world_size, *r.shape), r.dtype, self._every_ranks(r, i)) for i, r in enumerate(results)]
        try:
            write_results(path, every, extra)
        except LocatedError as err:  # the other ranks wait to send: end them too
            abort(str(err))

    def measure(self, ideal: IdealRun) -> list[Figure] | None:
        """--ideal: rank 0 measures each op from every rank's probed values, gathered one op at
        a time (as a threaded run holds them: W times one rank's values of that op); None on
        the other ranks."""
        figures = []
        for target, mine in zip(ideal.targets, ideal.probed(), strict=True):
            every = self.gather(mine)
            figures.append(self.step(partial(_figure_on_rank_0, target, every)))
        measured = [f for f in figures if f is not None]  # every one on rank 0, none elsewhere
        return measured if self.rank == 0 else None


def _figure_on_rank_0(target: Target, every: Sequence[Mapping[str, np.ndarray]] | None) -> Figure | None:
    """A target's figure from every rank's values (on rank 0; None elsewhere)."""
    if every is None:
        return None
    stacked = {}
    for name, first in every[0].items():
        r = next((r for r, values in enumerate(every) if values[name].shape != first.shape), None)
        if r is not None:
            raise RunError(f"--ideal cannot measure {target.kind} at {target.location}: its {name} has shape "
                           f"{list(first.shape)} on rank 0 and {list(every[r][name].shape)} on rank {r}")  # fmt: skip
        stacked[name] = np.stack([values[name] for values in every])
    return figure(target, stacked)
