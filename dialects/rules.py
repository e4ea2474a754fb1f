"""A fused op's constraints as data: rules over a plain signature of the op, one table per SoC.

Each rule is an id, the sentence a user reads, and a predicate written once against `Logic`:
the op's verifier, the fusion pass's legality check and the C++ target's run-time guards all
read the same table.  Rules are checked in table order.  A predicate may assume that every
earlier gate holds (the ranks, before the dimensions they index), and nothing else: so past a
broken rule that is not a gate, the later rules can still be judged, and a verdict can name
every rule a chain breaks.  A rule that holds on one SoC only says so in its sentence ("on
Atlas A3, ...").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from qmmar.dialects.logic import Logic, Truth
from qmmar.dialects.shapes import STATIC

S = TypeVar("S")


@dataclass(frozen=True)
class Rule(Generic[S]):
    id: str
    sentence: str
    holds: Callable[[S, Logic], Truth]
    particulars: Callable[[S], str] | None = None
    """What the signature has where the sentence alone could read as blaming the wrong operand."""
    gate: bool = False
    """Later rules assume it holds (an operand's rank): when it is broken, none is judged."""

    def message(self) -> str:
        return f"[{self.id}] {self.sentence}"

    def sentence_for(self, sig: S) -> str:
        """The sentence, with this signature's particulars when the rule has them."""
        return f"{self.sentence} (here: {self.particulars(sig)})" if self.particulars else self.sentence


Tables = Mapping[str, tuple[Rule[S], ...]]
"""An op's rule table per SoC (`target.SOC_NAMES`); a SoC without one has no such operator."""


def violations(table: tuple[Rule[S], ...], sig: S) -> list[Rule[S]]:
    """Every rule that the signature breaks at compile time, in table order, up to the first
    broken gate; undecided rules pass."""
    broken: list[Rule[S]] = []
    for rule in table:
        if rule.holds(sig, STATIC) is False:
            broken.append(rule)
            if rule.gate:
                break
    return broken


def also_broken(broken: Sequence[Rule[S]], sig: S) -> list[str]:
    """Notes naming every further rule a chain breaks (after its verdict's): a user fixing the
    first one learns of the next ones now, not after."""
    return [f"also breaks [{rule.id}] {rule.sentence_for(sig)}" for rule in broken]


def table_verdict(table: tuple[Rule[S], ...], sig: S) -> tuple[Rule[S] | None, list[str]]:
    """A signature judged by its op's table: the first rule it breaks (None: none), and a note
    for each further one (`also_broken`): what every fused op's judge reads of its table."""
    broken = violations(table, sig)
    return (broken[0], also_broken(broken[1:], sig)) if broken else (None, [])


@functools.lru_cache(maxsize=1024)
def first_violation(table: tuple[Rule[S], ...], sig: S) -> Rule[S] | None:
    """The first rule that the signature breaks at compile time; undecided rules pass.  Kept
    per (table, signature): the torch ops check every call's operands, mostly of shapes seen
    before, and hashing the two costs about a tenth of judging them."""
    for rule in table:
        if rule.holds(sig, STATIC) is False:
            return rule
    return None
