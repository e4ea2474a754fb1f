"""`mc2.all_gather_quant_matmul` on one rank: the all-gather of x1 (and of its per-token scale),
the exact int8 matmul, then the "aiv" kernel's dequant (docs/all-gather-matmul.md).

The gathers are qmm.allgather's (exact copies in rank order) and the matmul is qmm.matmul's,
so the fused op and the chain it replaces agree bit for bit by construction; the torch.compile
custom op runs the same function over torch.distributed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qmmar.dialects import numerics as nx
from qmmar.interpreter.comm import Communicator, Site
from qmmar.interpreter.gemm import exact_matmul


def all_gather_quant_matmul(
    comm: Communicator, site: Site, named: Mapping[str, Any], transpose_x2: bool, out: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """(output, gather_out) from this rank's operands by name (None: absent; the rule table
    leaves no bias): x1 and x1_scale gathered in rank order, then D(f32(G @ x2) * x2_scale [* T])."""
    gathered = np.concatenate(comm.all_gather(named["x1"], site))
    pertoken = None
    if named["x1_scale"] is not None:  # this rank's [m] or [m, 1]: gathered as one value per row
        pertoken = np.concatenate(comm.all_gather(np.asarray(named["x1_scale"]).reshape(-1), site))
    acc = exact_matmul(gathered, named["x2"], None, transpose_x2)
    return nx.aiv_dequant_i32(acc, named["x2_scale"], pertoken, out), gathered
