"""The MC2 family: what each fused op brings, and the list of them the fusion pass walks.

A fused op plugs in with one `FusedOpKind`: the ops its chains end at, how a chain ending at
one of them is matched and judged into a `FusionPlan` (its chain shape, chain rules and rule
table), and how its op is built from a plan's final operands.  The driver, the rewrite, the
report, qmmar-check and the torch backend read only plans and this record.  Its interpreter
function, unfuse and lowering register by the op's name in their own layers (README, "Adding a
fused op").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from qmmar.dialects.target import Target
from qmmar.passes.plan import FusionPlan, MatchedChain
from qmmar.passes.policy import Policy


@dataclass(frozen=True)
class FusedOpKind:
    name: str
    """The fused op's name (`FusionPlan.kind`)."""
    roots: tuple[type[Operation], ...]
    """The ops a chain of it ends at: the pattern's roots."""
    match: Callable[[Operation], Sequence[MatchedChain]]
    """Every chain of this kind that ends at an op (one per way to read it: an add's operands)."""
    judge: Callable[[Any, Policy], FusionPlan]
    """One chain that `match` found (of the member's own chain class), judged under a policy."""
    why_not: Callable[[Operation], str | None]
    """Why no chain of this kind ends at a collective that could end one; None for any other op."""
    build: Callable[[Mapping[str, SSAValue | None], Mapping[str, str | int | bool], TensorType], Operation]
    """The fused op, from its operands (by name, in final form), properties and output type."""
    socs: tuple[str, ...]
    """The SoCs on which it judges chains (`target.SOC_NAMES`): those its op exists on, and
    any where a verdict must say that it does not."""
    torch_op: str
    """Its PyTorch custom op, `torch.ops.qmmar.<torch_op>`: the operands in the plan's order,
    then the properties in the plan's order, then the output dtype."""
    epilogue: Callable[[Operation, Mapping[str, str | int | bool]], list[Operation]] | None = None
    """The ops after the fused op that give the chain's result, from the fused op and the
    properties (the last one's result is the chain's); None when the fused op's result is."""


def family(target: Target | None = None) -> tuple[FusedOpKind, ...]:
    """Every fused op the fusion pass knows (on the target's SoC), in the order it tries them
    at one root."""
    from qmmar.passes.mc2_all_gather import ALL_GATHER_QUANT_MATMUL
    from qmmar.passes.mc2_all_reduce import QUANT_MATMUL_ALL_REDUCE
    from qmmar.passes.mc2_all_reduce_a3 import QUANT_MATMUL_ALL_REDUCE_A3
    from qmmar.passes.mc2_reduce_scatter import QUANT_MATMUL_REDUCE_SCATTER

    members = (
        QUANT_MATMUL_ALL_REDUCE,
        QUANT_MATMUL_ALL_REDUCE_A3,
        QUANT_MATMUL_REDUCE_SCATTER,
        ALL_GATHER_QUANT_MATMUL,
    )
    return tuple(k for k in members if target is None or target.soc in k.socs)


def choose(kind: FusedOpKind, chains: Sequence[MatchedChain], policy: Policy) -> FusionPlan:
    """Of the chains ending at one op, the first legal one; else the one that got furthest
    through the rules, whose rule the verdict names."""
    best: FusionPlan | None = None
    for chain in chains:
        plan = kind.judge(chain, policy)
        if plan.legal:
            return plan
        if best is None or plan.progress > best.progress:
            best = plan
    assert best is not None, "choose() needs at least one chain"
    return best


def kind_of(plan: FusionPlan) -> FusedOpKind:
    return next(k for k in family() if k.name == plan.kind)
