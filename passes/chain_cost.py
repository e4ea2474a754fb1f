"""A judged chain's cost estimate as its plan holds it (`FusionPlan.costs`): each way its fused
op's collective could run, from the cost model's formulas (`cost_model`), for every member of
the family.  Its own module because `plan` imports the cost model's `CostEstimate`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qmmar.dialects.logic import Dim
from qmmar.passes.cost_model import all_gather_bytes, all_reduce_bytes, estimate, reduce_scatter_bytes
from qmmar.passes.plan import Cost
from qmmar.passes.policy import Policy

OUTPUT_BYTES = 2
"""f16 and bf16, the outputs of every member."""


@dataclass(frozen=True)
class Way:
    """One way the collective could run: its label, its payload in bytes from m, k and n, and
    whether the plan runs it that way."""

    label: str
    payload: Callable[[int, int, int], float]
    chosen: bool = True


def all_reduce_ways(int8_comm: bool) -> tuple[Way, ...]:
    """mc2.quant_matmul_all_reduce: the all-reduce in the output dtype and in int8."""
    return (Way("16-bit all-reduce", lambda m, k, n: all_reduce_bytes(m, n, OUTPUT_BYTES), not int8_comm),
            Way("int8 communication", lambda m, k, n: all_reduce_bytes(m, n, 1), int8_comm))  # fmt: skip


REDUCE_SCATTER = (Way("16-bit reduce-scatter", lambda m, k, n: reduce_scatter_bytes(m, n, OUTPUT_BYTES)),)
"""mc2.quant_matmul_reduce_scatter: its one way (its kernel has no int8 communication)."""


def all_gather_ways(pertoken: bool) -> tuple[Way, ...]:
    """mc2.all_gather_quant_matmul: its one way, the int8 x1 with its f32 per-token scale when it has one."""
    return (Way("int8 all-gather", lambda m, k, n: all_gather_bytes(m, k, pertoken)),)


def chain_costs(dims: tuple[Dim, Dim, Dim], world_size: int, policy: Policy, ways: Sequence[Way]) -> tuple[Cost, ...]:
    """The estimate each way, with the policy's parameters; none for a dynamic dimension."""
    m, k, n = dims
    if not (isinstance(m, int) and isinstance(k, int) and isinstance(n, int)):
        return ()
    return tuple(Cost(way.label, estimate(m, k, n, world_size, way.payload(m, k, n), policy.int8_tops,
                                          policy.link_gbps), way.chosen) for way in ways)  # fmt: skip
