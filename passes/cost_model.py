"""Is a chain communication-bound?  The documentation advises int8 communication only then.

A first-order model of one fused op on Atlas A2 (Ascend 910B), every parameter an option:

    compute = 2 m k n / (int8_tops * 1e12)
    comm    = 2 (W - 1) / W * m n * bytes / ((W - 1) * link_gbps * 1e9)

`comm` is a reduce-scatter plus an all-gather of the m x n output (`bytes` per element: 2
for f16/bf16) where each rank's traffic is spread over its W - 1 HCCS links of the all-mesh.
Defaults: 910B int8 peak about 640 TOPS (half that for f16: 313 TFLOPS); HCCS 56 GB/s per
link, 7 links per chip in an 8-card all-mesh (Huawei's Atlas 800T A2 data sheet figures).
"""

from __future__ import annotations

from dataclasses import dataclass

INT8_TOPS = 640.0
LINK_GBPS = 56.0


@dataclass(frozen=True)
class CostEstimate:
    compute_us: float
    comm_us: float

    @property
    def comm_bound(self) -> bool:
        return self.comm_us > self.compute_us

    def describe(self) -> str:
        kind = "communication-bound" if self.comm_bound else "compute-bound"
        compute, comm = distinct(self.compute_us, self.comm_us)
        return f"{kind}: compute {compute} us, communication {comm} us"


def distinct(a: float, b: float) -> tuple[str, str]:
    """a and b with one decimal, or as many more as it takes to tell them apart: a note
    never reads "0.1 us vs 0.1 us" when one is larger."""
    decimals = 1
    while a != b and f"{a:.{decimals}f}" == f"{b:.{decimals}f}" and decimals < 17:
        decimals += 1
    return f"{a:.{decimals}f}", f"{b:.{decimals}f}"


def estimate(m: int, k: int, n: int, world_size: int, int8_tops: float = INT8_TOPS,
             link_gbps: float = LINK_GBPS, bytes_per_element: int = 2) -> CostEstimate:  # fmt: skip
    compute = 2.0 * m * k * n / (int8_tops * 1e12)
    if world_size == 1:
        return CostEstimate(compute * 1e6, 0.0)
    traffic = 2.0 * (world_size - 1) / world_size * m * n * bytes_per_element
    comm = traffic / ((world_size - 1) * link_gbps * 1e9)
    return CostEstimate(compute * 1e6, comm * 1e6)
