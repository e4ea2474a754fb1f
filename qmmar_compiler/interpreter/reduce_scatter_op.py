"""mc2.quant_matmul_reduce_scatter on one rank: the int8 product, aclnnMatmulReduceScatterV2's
dequant (`numerics.dequant_reduce_scatter`), then exactly `qmm.reduce_scatter`'s sum
(`functions.reduce_scatter_rows`: f32, rank order from rank 0, one rounding), so that the fused
op and its chain agree by construction (docs/sequence-parallel.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qmmar.dialects import numerics as nx
from qmmar.interpreter.comm import Communicator, Site
from qmmar.interpreter.functions import reduce_scatter_rows
from qmmar.interpreter.gemm import exact_matmul


def quant_matmul_reduce_scatter(
    comm: Communicator, site: Site, named: Mapping[str, Any], transpose_x2: bool, out: np.dtype
) -> np.ndarray:
    """The fused op by operand name (None: absent), over any communicator (the interpreter's,
    or torch.distributed's for the custom op)."""
    acc = exact_matmul(named["x1"], named["x2"], None, transpose_x2)
    y = nx.dequant_reduce_scatter(acc, named["x2_scale"], named["x1_scale"], named["bias"], out)
    return reduce_scatter_rows(comm, y, site)
