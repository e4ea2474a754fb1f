"""The `Communicator` over a torch.distributed process group (gloo on the CPU, or any backend
that moves uint8 tensors): the ranks are processes, as the model's own ranks are.

It moves bytes only: `all_gather` is `all_gather_into_tensor` and `all_to_all` is
`all_to_all_single`, both on uint8 views of the payload.  Every sum is qmmar's (in f32, in
rank order, by `dialects.numerics`), never the backend's own all-reduce, whose bf16 sums
round differently.  Before each exchange the ranks compare a digest of the `Site` and the
payload's dtype and shapes, so that ranks that reach different collectives, or send
different shapes, get a `CollectiveError` instead of mixed-up bytes (gloo aborts the process
on a size mismatch).  That comparison is a round of messages of its own; `expect` makes one
round serve several collectives, started early so that it overlaps the work before them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from qmmar.interpreter.comm import CollectiveError, Communicator, Site, payload_shapes

_DIGEST_BYTES = 16
_ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # its newer name


def _bytes(x: np.ndarray) -> torch.Tensor:
    x = np.ascontiguousarray(x)
    return torch.from_numpy((x if x.flags.writeable else x.copy()).reshape(-1).view(np.uint8))


@dataclass
class _Agreement:
    """A comparison of every rank's digest of (site, layout), in flight or done."""

    site: Site
    layout: object
    digests: torch.Tensor  # [world_size, _DIGEST_BYTES], once `work` completes
    work: dist.Work | None  # None: completed
    uses: int  # the collectives at `site` it covers still to come


class TorchDistributedCommunicator(Communicator):
    """This process's rank of `group` (default: the world)."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        self.group = group or dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        self.world_size = dist.get_world_size(self.group)
        self._expected: _Agreement | None = None

    def all_gather(self, x: np.ndarray, site: Site) -> list[np.ndarray]:
        self._agree(site, payload_shapes(x))
        rows = self._gather(_bytes(x)).numpy()
        return [row.view(x.dtype).reshape(x.shape) for row in rows]

    def all_to_all(self, chunks: Sequence[np.ndarray], site: Site) -> list[np.ndarray]:
        if len(chunks) != self.world_size or len({(c.dtype, c.shape) for c in chunks}) > 1:
            raise CollectiveError(f"{site.describe()}: all_to_all takes {self.world_size} chunks of one shape")
        self._agree(site, payload_shapes(list(chunks)))
        sent = torch.cat([_bytes(c) for c in chunks])
        received = torch.empty_like(sent)
        dist.all_to_all_single(received, sent, group=self.group)
        return [part.view(chunks[0].dtype).reshape(chunks[0].shape) for part in np.split(received.numpy(), len(chunks))]

    def expect(self, site: Site, collectives: int, layout: object) -> None:
        """One comparison of (site, layout) for the next `collectives` collectives at `site`,
        started now, asynchronously: they make no round of their own."""
        self._expected = _Agreement(site, layout, *self._start_gather(_digest(site, layout)), uses=collectives)

    def _agree(self, site: Site, layout: object) -> None:
        """Every rank is at the same collective with the same payload layout, or all raise."""
        agreement = self._agreement(site, layout)
        if agreement.work is not None:
            agreement.work.wait()
            agreement.work = None
        digests = agreement.digests
        differs = next((r for r in range(self.world_size) if not torch.equal(digests[r], digests[0])), None)
        if differs is not None:
            raise CollectiveError(f"ranks 0 and {differs} disagree at {site.describe()}: a different collective, world "
                                  f"size or payload shape (this is rank {self.rank}: {agreement.layout})")  # fmt: skip

    def _agreement(self, site: Site, layout: object) -> _Agreement:
        """The comparison that covers this collective: the expected one, or a round of its own."""
        expected = self._expected
        if expected is None or expected.site != site:
            return _Agreement(site, layout, *self._start_gather(_digest(site, layout)), uses=0)
        expected.uses -= 1
        if not expected.uses:
            self._expected = None
        return expected

    def _start_gather(self, mine: torch.Tensor) -> tuple[torch.Tensor, dist.Work | None]:
        """[world_size, bytes], every rank's bytes in rank order once the work completes (gloo
        takes a flat output)."""
        gathered = torch.empty(self.world_size * mine.numel(), dtype=torch.uint8)
        work = _ALL_GATHER(gathered, mine, group=self.group, async_op=True)
        return gathered.view(self.world_size, -1), work

    def _gather(self, mine: torch.Tensor) -> torch.Tensor:
        """[world_size, bytes]: every rank's bytes, in rank order."""
        gathered, work = self._start_gather(mine)
        if work is not None:
            work.wait()
        return gathered


def _digest(site: Site, layout: object) -> torch.Tensor:
    text = repr((site, layout)).encode()
    return torch.frombuffer(bytearray(hashlib.blake2b(text, digest_size=_DIGEST_BYTES).digest()), dtype=torch.uint8)
