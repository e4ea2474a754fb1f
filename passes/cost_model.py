"""When is a fused op worth it?  A first-order model of one MC2 op on Atlas A2 (Ascend 910B),
every parameter an option:

    compute = 2 m k n / (int8_tops * 1e12)
    comm    = (W - 1) / W * payload / ((W - 1) * link_gbps * 1e9)

`payload` is what the op's collective moves, every rank's rows together; each rank sends (or
receives) its (W - 1) / W share of it, spread over its W - 1 HCCS links of the all-mesh:

- a reduce-scatter of the m x n output (mc2.quant_matmul_reduce_scatter): m n bytes, `bytes`
  per element (2 for f16/bf16);
- an all-reduce of it (mc2.quant_matmul_all_reduce): a reduce-scatter plus an all-gather of
  the output, twice the reduce-scatter's (1 byte per element with int8 communication);
- an all-gather of the int8 x1, m x k (mc2.all_gather_quant_matmul): m k bytes, plus 4 m for
  its f32 per-token scale when the chain has one.

MC2 runs the collective under the matmul, tile by tile: at best the shorter of the two is
hidden.  Defaults: 910B int8 peak about 640 TOPS (half that for f16: 313 TFLOPS); HCCS
56 GB/s per link, 7 links per chip in an 8-card all-mesh (Huawei's Atlas 800T A2 data sheet
figures).
"""

from __future__ import annotations

from dataclasses import dataclass

INT8_TOPS = 640.0
LINK_GBPS = 56.0
F32_BYTES = 4


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

    def overlap_note(self, collective: str) -> str:
        """What fusing can save: the shorter of the two, as a share of both run one after the
        other (the unfused chain)."""
        total = self.compute_us + self.comm_us
        share = min(self.compute_us, self.comm_us) / total if total else 0.0
        return (f"{self.describe()}; fused, the {collective} runs under the matmul and hides at most the "
                f"shorter, {share:.0%} of the unfused chain's time (COST-OVERLAP)")  # fmt: skip


def distinct(a: float, b: float) -> tuple[str, str]:
    """a and b with one decimal, or as many more as it takes to tell them apart: a note
    never reads "0.1 us vs 0.1 us" when one is larger."""
    decimals = 1
    while a != b and f"{a:.{decimals}f}" == f"{b:.{decimals}f}" and decimals < 17:
        decimals += 1
    return f"{a:.{decimals}f}", f"{b:.{decimals}f}"


def reduce_scatter_bytes(m: int, n: int, element_bytes: int) -> float:
    """The payload of a reduce-scatter of an m x n output."""
    return float(m * n * element_bytes)


def all_reduce_bytes(m: int, n: int, element_bytes: int) -> float:
    """The payload of an all-reduce of an m x n output: a reduce-scatter, then an all-gather of
    the same bytes."""
    return 2 * reduce_scatter_bytes(m, n, element_bytes)


def all_gather_bytes(m: int, k: int, pertoken: bool) -> float:
    """The payload of an all-gather of an int8 m x k x1, with its f32 per-token scale or not."""
    return float(m * k + (m * F32_BYTES if pertoken else 0))


def estimate(m: int, k: int, n: int, world_size: int, payload_bytes: float, int8_tops: float = INT8_TOPS,
             link_gbps: float = LINK_GBPS) -> CostEstimate:  # fmt: skip
    compute = 2.0 * m * k * n / (int8_tops * 1e12)
    if world_size == 1:
        return CostEstimate(compute * 1e6, 0.0)
    traffic = (world_size - 1) / world_size * payload_bytes
    comm = traffic / ((world_size - 1) * link_gbps * 1e9)
    return CostEstimate(compute * 1e6, comm * 1e6)
