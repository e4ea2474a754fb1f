"""How ranks exchange data: a `Communicator` interface and its in-process implementation.

Every collective of qmm and mc2 is built from `all_gather` and `all_to_all`, the two calls a
real distributed backend (HCCL, MPI, torch.distributed) would implement.  Each call names
its `Site` (op, location, group, world size): the in-process group checks that every rank
arrived at the same collective with the same group and shapes, and turns a rank that
finished or failed early into an error on the others, so that a broken program never hangs.
`check_same_on_every_rank`, built on `all_gather`, checks values that the operator requires
to be replicated (the communication scales), for every implementation alike.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np

T = TypeVar("T")


class CollectiveError(Exception):
    """Ranks disagree at a collective, or a rank left the group early."""


class DisagreementError(Exception):
    """A value that must be the same on every rank differs between ranks."""


@dataclass(frozen=True)
class Site:
    op: str
    location: str
    group: str
    world_size: int

    def describe(self) -> str:
        group = f' (group "{self.group}")' if self.group else ""
        return f"'{self.op}' at {self.location}{group}"


class Communicator(ABC):
    """One rank's view of its communication group.

    An implementation provides `all_gather` and `all_to_all`; both return in rank order, and
    every rank of the group calls them in the same order with equal `Site`s.  One that can
    compare the ranks' sites (and payload shapes) should raise `CollectiveError` when they
    differ; `check_same_on_every_rank` then needs nothing more."""

    rank: int
    world_size: int

    @abstractmethod
    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        """Every rank's x, in rank order."""

    @abstractmethod
    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        """Send chunks[j] to rank j; return what each rank sent here, in rank order."""

    def expect(self, site: Site, collectives: int, layout: object) -> None:  # noqa: B027 (optional)
        """This rank's next `collectives` collectives are at `site`, with payloads that `layout`
        fixes (every rank derives them from it by the same code).  A communicator that agrees
        on each collective's site and shapes by a round of messages of its own may agree on all
        of them now, by one round that overlaps the work before them; one that agrees for free
        (in the exchange itself) needs nothing."""

    def check_same_on_every_rank(self, values: Mapping[str, np.ndarray], site: Site) -> None:
        """Raise `DisagreementError` naming the first of `values` that is not bit for bit the
        same on every rank.  One all-gather of a 16-byte digest per value."""
        mine = np.frombuffer(b"".join(_digest(v) for v in values.values()), dtype=np.uint8)
        gathered = [theirs.tobytes() for theirs in self.all_gather(mine, site)]
        for rank, theirs in enumerate(gathered):
            if theirs != gathered[0]:
                differs = next(i for i, (a, b) in enumerate(zip(theirs, gathered[0], strict=True)) if a != b)
                raise DisagreementError(f"{list(values)[differs // _DIGEST_BYTES]} must be the same on every rank, "
                                        f"but rank {rank}'s differs from rank 0's")  # fmt: skip


_DIGEST_BYTES = 16


def _digest(x: np.ndarray) -> bytes:
    header = f"{x.dtype.str}{x.shape}".encode()
    return hashlib.blake2b(header + np.ascontiguousarray(x).tobytes(), digest_size=_DIGEST_BYTES).digest()


class _Meeting:
    """One collective call: what each rank posted, and when everyone has (or cannot)."""

    def __init__(self, world_size: int) -> None:
        self.posts: list[tuple[Site, object] | None] = [None] * world_size
        self.fingerprints: list[int] = [0] * world_size
        self.arrived = 0
        self.done = threading.Event()
        self.error: str | None = None  # ranks disagree
        self.missing: tuple[int, str] | None = None  # a rank that left: (rank, why)


class InProcessGroup:
    """The meeting point of `world_size` ranks run as threads of one process.

    A collective costs each rank O(W): it posts its payload, the last rank to arrive checks
    the W posts once (by fingerprint) and wakes the others, and each reads the W payloads."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self._lock = threading.Lock()
        self._meetings: dict[int, _Meeting] = {}  # by call number, until everyone arrived
        self._calls = [0] * world_size
        self._gone: dict[int, str] = {}  # rank -> why it left

    def communicator(self, rank: int) -> InProcessCommunicator:
        return InProcessCommunicator(self, rank)

    def leave(self, rank: int, why: str) -> None:
        """A rank returned or failed: it will reach no further collective."""
        with self._lock:
            self._gone[rank] = why
            for meeting in self._meetings.values():
                if meeting.posts[rank] is None and meeting.missing is None:
                    meeting.missing = (rank, why)
                    meeting.done.set()

    def exchange(self, rank: int, site: Site, payload: T) -> list[T]:
        fingerprint = hash((site, payload_shapes(payload)))
        with self._lock:
            call = self._calls[rank]
            self._calls[rank] += 1
            meeting = self._meetings.setdefault(call, _Meeting(self.world_size))
            meeting.posts[rank] = (site, payload)
            meeting.fingerprints[rank] = fingerprint
            meeting.arrived += 1
            if meeting.arrived == self.world_size:
                del self._meetings[call]
                meeting.error = _disagreement(meeting)
                meeting.done.set()
            elif meeting.missing is None:
                gone = next(((r, why) for r, why in self._gone.items() if self._calls[r] <= call), None)
                if gone is not None:
                    meeting.missing = gone
                    meeting.done.set()
        meeting.done.wait()
        if meeting.error is not None:
            raise CollectiveError(meeting.error)
        if meeting.missing is not None:
            r, why = meeting.missing
            raise CollectiveError(f"rank {rank} waits at {site.describe()} for rank {r}, which {why}")
        posts = cast(list[tuple[Site, T]], meeting.posts)  # every rank posted one, of this collective's kind
        return [payload for _, payload in posts]


def _disagreement(meeting: _Meeting) -> str | None:
    """Why the ranks' posts disagree (site or payload shapes), or None; O(W) when they agree."""
    first = meeting.fingerprints[0]
    r = next((r for r, f in enumerate(meeting.fingerprints) if f != first), None)
    if r is None:
        return None
    (site0, payload0), (site, payload) = meeting.posts[0], meeting.posts[r]  # type: ignore[misc]  # all posted
    return disagreement(r, (site0, payload_shapes(payload0)), (site, payload_shapes(payload)))


def disagreement(r: int, first: tuple[Site, object], theirs: tuple[Site, object]) -> str:
    """Why rank r's (site, payload shapes) at a collective differ from rank 0's: the message
    of every communicator."""
    (site0, shapes0), (site, shapes) = first, theirs
    if site != site0:
        return (f"ranks 0 and {r} disagree at a collective: rank 0 is at {site0.describe()} with world_size "
                f"{site0.world_size}, rank {r} at {site.describe()} with world_size {site.world_size}")  # fmt: skip
    return f"ranks 0 and {r} send different shapes at {site.describe()}: {shapes0} and {shapes}"


def payload_shapes(payload: object) -> object:
    """What ranks must agree on of a collective's payload: its shapes and dtypes."""
    if isinstance(payload, np.ndarray):
        return (payload.shape, payload.dtype.str)
    assert isinstance(payload, list)  # all_to_all's chunks
    return tuple(payload_shapes(p) for p in payload)


@dataclass
class InProcessCommunicator(Communicator):
    group: InProcessGroup
    rank: int

    @property
    def world_size(self) -> int:  # type: ignore[override]  # the base's attribute, read-only here
        return self.group.world_size

    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        return self.group.exchange(self.rank, site, x)

    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        sent = self.group.exchange(self.rank, site, list(chunks))
        return [sent[j][self.rank] for j in range(self.world_size)]
