"""The caller's policy over every fused op: the module's one group, the scenario, the cost
model's parameters and the control function; and the policy rules they decide."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Operation

from qmmar.dialects.logic import Dim
from qmmar.dialects.target import Target
from qmmar.passes.markers import DECODE, SCENARIO
from qmmar.passes.plan import ControlFn, Finding


@dataclass(frozen=True)
class Policy:
    group: str
    """The module's one communication group."""
    group_origin: str
    """Where that group comes from, in words: the option, or the first chain."""
    scenario: str  # "auto" | "prefill" | "decode"
    min_m: int  # with scenario=auto: a static m below this is decode
    int8_tops: float
    link_gbps: float
    drop_compute_bound_comm: bool = False
    """Fuse a compute-bound int8-communication chain without its communication scales."""
    control: ControlFn | None = None
    target: Target = Target()
    """The SoC and CANN version fused for: which rule table judges a chain."""
    numerics: Numerics = "exact"


Numerics = Literal["exact", "relaxed"]
"""SEMANTICS.md's numerics policy.  exact: fusing changes no bit of any result.  relaxed: a
chain whose fused op computes the program's function up to rounding fuses too, and its verdict
says what changes and by how much at most."""

POLICY_RULES = ("POLICY-DECODE", "POLICY-MIN-M")


def min_m_finding(m: object, min_m: int, at: Operation, when: str = "") -> Finding:
    """POLICY-MIN-M, in its one wording: for a static m, and (`when`) for the value a dynamic m
    has in one compilation (the torch backend's control function)."""
    return Finding("POLICY-MIN-M", f"m = {m} is below min-m = {min_m}{when}: treated as the incremental "
                   "(decode) scenario, where MC2 is not used", at)  # fmt: skip


def _is_decode_function(op: Operation) -> bool:
    fn = op.parent_op()
    while fn is not None and not isinstance(fn, func.FuncOp):
        fn = fn.parent_op()
    marker = fn.attributes.get(SCENARIO) if fn is not None else None
    return isinstance(marker, StringAttr) and marker.data == DECODE


def policy_finding(m: Dim, head: Operation, end: Operation, policy: Policy) -> Finding | None:
    """The scenario policy for a chain of m rows from `head` to `end`."""
    if policy.scenario == "decode":
        return Finding("POLICY-DECODE", "scenario=decode: MC2 is for the full (prefill) scenario, "
                       "not the incremental (decode) one", head)  # fmt: skip
    if policy.scenario == "prefill":
        return None
    if _is_decode_function(end):
        return Finding("POLICY-DECODE", f'the function is marked {SCENARIO} = "{DECODE}": MC2 is for '
                       "the full (prefill) scenario, not the incremental one", head)  # fmt: skip
    if isinstance(m, int) and m < policy.min_m:
        return min_m_finding(m, policy.min_m, head)
    return None
