"""How ranks exchange data: a `Communicator` interface and its in-process implementation.

Every collective of qmm and mc2 is built from `all_gather` and `all_to_all`, the two calls a
real distributed backend (HCCL, MPI, torch.distributed) would implement.  Each call names
its `Site` (op, location, group, world size): the in-process group checks that every rank
arrived at the same collective with the same group and shape, and turns a rank that
finished or failed early into an error on the others, so that a broken program never hangs.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class CollectiveError(Exception):
    """Ranks disagree at a collective, or a rank left the group early."""


@dataclass(frozen=True)
class Site:
    op: str
    location: str
    group: str
    world_size: int

    def describe(self) -> str:
        return f"'{self.op}' at {self.location} (group \"{self.group}\")"


class Communicator(ABC):
    """One rank's view of its communication group."""

    rank: int
    world_size: int

    @abstractmethod
    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        """Every rank's x, in rank order."""

    @abstractmethod
    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        """Send chunks[j] to rank j; return what each rank sent here, in rank order."""


class InProcessGroup:
    """The meeting point of `world_size` ranks run as threads of one process."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self._cv = threading.Condition()
        self._posts: dict[int, dict[int, tuple[Site, object]]] = {}
        self._reads: dict[int, int] = {}
        self._calls = [0] * world_size
        self._gone: dict[int, str] = {}  # rank -> why it left

    def communicator(self, rank: int) -> InProcessCommunicator:
        return InProcessCommunicator(self, rank)

    def leave(self, rank: int, why: str) -> None:
        """A rank returned or failed: it will reach no further collective."""
        with self._cv:
            self._gone[rank] = why
            self._cv.notify_all()

    def exchange(self, rank: int, site: Site, payload: object) -> list[object]:
        with self._cv:
            call = self._calls[rank]
            self._calls[rank] += 1
            posts = self._posts.setdefault(call, {})
            posts[rank] = (site, payload)
            self._cv.notify_all()
            while len(posts) < self.world_size:
                absent = [r for r in self._gone if r not in posts]
                if absent:
                    r = absent[0]
                    raise CollectiveError(f"rank {rank} waits at {site.describe()} for rank {r}, which {self._gone[r]}")
                self._cv.wait()
            self._reads[call] = self._reads.get(call, 0) + 1
            if self._reads[call] == self.world_size:
                del self._posts[call], self._reads[call]
        _check_agreement(posts)
        return [posts[r][1] for r in range(self.world_size)]


def _check_agreement(posts: dict[int, tuple[Site, object]]) -> None:
    site0, payload0 = posts[0]
    for r in sorted(posts):
        site, payload = posts[r]
        if site != site0:
            raise CollectiveError(
                f"ranks 0 and {r} disagree at a collective: rank 0 is at {site0.describe()} "
                f"with world_size {site0.world_size}, rank {r} at {site.describe()} "
                f"with world_size {site.world_size}"
            )
        if _shapes(payload) != _shapes(payload0):
            raise CollectiveError(
                f"ranks 0 and {r} send different shapes at {site.describe()}: "
                f"{_shapes(payload0)} and {_shapes(payload)}"
            )


def _shapes(payload: object) -> object:
    if isinstance(payload, np.ndarray):
        return (payload.shape, str(payload.dtype))
    return [_shapes(p) for p in payload]  # type: ignore[union-attr]


@dataclass
class InProcessCommunicator(Communicator):
    group: InProcessGroup
    rank: int

    @property
    def world_size(self) -> int:  # type: ignore[override]
        return self.group.world_size

    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        return self.group.exchange(self.rank, site, x)  # type: ignore[return-value]

    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        sent = self.group.exchange(self.rank, site, list(chunks))
        return [sent[j][self.rank] for j in range(self.world_size)]  # type: ignore[index]
