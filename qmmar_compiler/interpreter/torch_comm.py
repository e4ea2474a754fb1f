"""The `Communicator` over a torch.distributed process group (gloo on the CPU, or any backend
that moves uint8 tensors): the ranks are processes, as the model's own ranks are.

It moves bytes only: `all_gather` is `all_gather_into_tensor` and `all_to_all` is
`all_to_all_single`, both on uint8 views of the payload.  Every sum is qmmar's (in f32, in
rank order, by `dialects.numerics`), never the backend's own all-reduce, whose bf16 sums
round differently.  Before each exchange the ranks compare a digest of the `Site` and the
payload's dtype and shapes, so that ranks that reach different collectives, or send
different shapes, get a `CollectiveError` instead of mixed-up bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

from qmmar.interpreter.comm import CollectiveError, Communicator, Site, payload_shapes

_DIGEST_BYTES = 16
_ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # its newer name


def _bytes(x: np.ndarray) -> torch.Tensor:
    x = np.ascontiguousarray(x)
    return torch.from_numpy((x if x.flags.writeable else x.copy()).reshape(-1).view(np.uint8))


class TorchDistributedCommunicator(Communicator):
    """This process's rank of `group` (default: the world)."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        self.group = group or dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        self.world_size = dist.get_world_size(self.group)

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

    def _agree(self, site: Site, layout: object) -> None:
        """Every rank is at the same collective with the same payload layout, or all raise."""
        text = repr((site, layout)).encode()
        mine = torch.frombuffer(bytearray(hashlib.blake2b(text, digest_size=_DIGEST_BYTES).digest()), dtype=torch.uint8)
        digests = self._gather(mine)
        differs = next((r for r in range(self.world_size) if not torch.equal(digests[r], digests[0])), None)
        if differs is not None:
            raise CollectiveError(f"ranks 0 and {differs} disagree at {site.describe()}: a different collective, "
                                  f"world size or payload shape (this is rank {self.rank}: {layout})")  # fmt: skip

    def _gather(self, mine: torch.Tensor) -> torch.Tensor:
        """[world_size, bytes]: every rank's bytes, in rank order (gloo takes a flat output)."""
        gathered = torch.empty(self.world_size * mine.numel(), dtype=torch.uint8)
        _ALL_GATHER(gathered, mine, group=self.group)
        return gathered.view(self.world_size, -1)
