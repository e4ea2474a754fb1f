"""The `Communicator` over a torch.distributed process group (gloo on the CPU, or any backend
that moves uint8 tensors): the ranks are processes, as the model's own ranks are.

It moves bytes only, by `all_to_all_single` on uint8 views of the payload: an all-gather is an
all-to-all of W copies, one step where gloo's own all-gather is a ring of W - 1.  Every sum is
qmmar's (in f32, in rank order, by `dialects.numerics`), never the backend's own all-reduce,
whose bf16 sums round differently.

Before exchanging a payload of a layout (dtype and shapes) at a `Site` for the first time, the
ranks compare a digest of the two, so that ranks that reach different collectives, or send
different shapes, get a `CollectiveError` instead of mixed-up bytes (gloo aborts the process
on a size mismatch).  Each (site, layout) is compared once per process group: a comparison is a
round of messages of its own, which per call would cost more than the exchange it guards.
Every rank remembers a digest only once it has seen every rank's equal to it, so all ranks
remember the same ones and make a round at the same collectives.  What this leaves unchecked: a
rank that later sends, alone, a layout it has not agreed on while the others send one they have
(it makes a round, they exchange data), or ranks at two sites each agreed on before.  Where the
sizes then differ gloo aborts the process ("Received data size doesn't match expected size"),
as it does for the all-reduce that eager code runs; where they happen to be equal the bytes are
mixed up, as eager's would be.  `expect` makes one round serve several collectives, started
early so that it overlaps the work before them.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from qmmar.interpreter.comm import CollectiveError, Communicator, Site, payload_shapes

_DIGEST_BYTES = 16

_AGREED: weakref.WeakKeyDictionary[dist.ProcessGroup, set[bytes]] = weakref.WeakKeyDictionary()
"""Per process group, the digests of the (site, layout)s that every rank has compared equal."""


def _bytes(x: np.ndarray) -> torch.Tensor:
    x = np.ascontiguousarray(x)
    return torch.from_numpy((x if x.flags.writeable else x.copy()).reshape(-1).view(np.uint8))


@dataclass
class _Agreement:
    """A comparison of every rank's digest of (site, layout): in flight, done, or made before."""

    site: Site
    layout: object
    digest: bytes
    gathered: torch.Tensor | None  # [world_size, _DIGEST_BYTES] once `work` completes; None: agreed before
    work: dist.Work | None  # None: completed
    uses: int  # the collectives at `site` it covers still to come


class TorchDistributedCommunicator(Communicator):
    """This process's rank of `group` (default: the world)."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        pg = group or dist.group.WORLD
        if pg is None:
            raise RuntimeError("torch.distributed has no default process group: call init_process_group first")
        self.group = pg
        self.rank = dist.get_rank(self.group)
        self.world_size = dist.get_world_size(self.group)
        self._agreed = _AGREED.setdefault(self.group, set())
        self._expected: _Agreement | None = None

    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        self._agree(site, payload_shapes(x))
        return self._exchange(_bytes(x).repeat(self.world_size), x)

    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        if len(chunks) != self.world_size or len({(c.dtype, c.shape) for c in chunks}) > 1:
            raise CollectiveError(f"{site.describe()}: all_to_all takes {self.world_size} chunks of one shape")
        self._agree(site, payload_shapes(list(chunks)))
        return self._exchange(torch.cat([_bytes(c) for c in chunks]), chunks[0])

    def expect(self, site: Site, collectives: int, layout: object) -> None:
        """One comparison of (site, layout) for the next `collectives` collectives at `site`,
        started now, asynchronously: they make no round of their own."""
        self._expected = self._start(site, layout, uses=collectives)

    def _exchange(self, sent: torch.Tensor, like: np.ndarray) -> list[np.ndarray]:
        """Send the j-th of W equal parts of `sent` to rank j; what each rank sent here, in rank
        order, each part an array of `like`'s dtype and shape."""
        received = torch.empty_like(sent)
        dist.all_to_all_single(received, sent, group=self.group)
        parts = received.numpy().reshape(self.world_size, received.numel() // self.world_size)
        return [part.view(like.dtype).reshape(like.shape) for part in parts]

    def _agree(self, site: Site, layout: object) -> None:
        """Every rank is at the same collective with the same payload layout, or all raise."""
        agreement = self._agreement(site, layout)
        if agreement.gathered is None:
            return
        if agreement.work is not None:
            agreement.work.wait()
            agreement.work = None
        gathered = agreement.gathered
        differs = next((r for r in range(self.world_size) if not torch.equal(gathered[r], gathered[0])), None)
        if differs is not None:
            raise CollectiveError(f"ranks 0 and {differs} disagree at {site.describe()}: a different collective, world "
                                  f"size or payload shape (this is rank {self.rank}: {agreement.layout})")  # fmt: skip
        self._agreed.add(agreement.digest)
        agreement.gathered = None  # the collectives it covers still to come need no comparison

    def _agreement(self, site: Site, layout: object) -> _Agreement:
        """The comparison that covers this collective: the expected one, or one of its own."""
        expected = self._expected
        if expected is None or expected.site != site:
            return self._start(site, layout, uses=0)
        expected.uses -= 1
        if not expected.uses:
            self._expected = None
        return expected

    def _start(self, site: Site, layout: object, uses: int) -> _Agreement:
        """The comparison of this rank's digest of (site, layout) with every rank's, started
        (an all-to-all of W copies of it), unless the ranks have made it before."""
        digest = hashlib.blake2b(repr((site, layout)).encode(), digest_size=_DIGEST_BYTES).digest()
        if digest in self._agreed:
            return _Agreement(site, layout, digest, None, None, uses)
        sent = torch.frombuffer(bytearray(digest * self.world_size), dtype=torch.uint8)
        gathered = torch.empty_like(sent)
        work = dist.all_to_all_single(gathered, sent, group=self.group, async_op=True)
        return _Agreement(site, layout, digest, gathered.view(self.world_size, -1), work, uses)
