"""A three-way logic over tensor dimensions, so that one predicate serves three readers.

A dimension is an `int` when known at compile time and a `str` (its name) when it is known
only at run time.  A rule's predicate is written once against the `Logic` interface:

* `StaticLogic` answers True, False, or None (undecidable now: the check moves to run time);
* `CppLogic` answers True or False when the facts are static, else a C++ boolean expression
  over the named run-time sizes: the emitted run-time guard.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import reduce

Dim = int | str
"""A dimension: its value, or the name of a size known only at run time."""

Truth = bool | None | str
"""What a predicate returns: decided (bool), undecided (None), or a C++ guard (str): a
parenthesised expression, safe to negate or combine as it stands."""

INT64_MAX = 2**63 - 1


class _Comparisons:
    """eq, le and gt, each one comparison that the reading's `_cmp` decides or spells."""

    def _cmp(self, a: Dim, b: Dim, op: str) -> Truth:
        raise NotImplementedError

    def eq(self, a: Dim, b: Dim) -> Truth:
        return self._cmp(a, b, "==")

    def le(self, a: Dim, b: Dim) -> Truth:
        return self._cmp(a, b, "<=")

    def gt(self, a: Dim, b: Dim) -> Truth:
        return self._cmp(a, b, ">")


class StaticLogic(_Comparisons):
    """Compile-time reading: a comparison involving an unknown dimension is undecided."""

    @staticmethod
    def prod(dims: Iterable[Dim]) -> Dim:
        dims = list(dims)
        sizes = [d for d in dims if isinstance(d, int)]
        return math.prod(sizes) if len(sizes) == len(dims) else "?"

    @staticmethod
    def _cmp(a: Dim, b: Dim, op: str) -> Truth:
        if isinstance(a, str) or isinstance(b, str):
            return None
        return {"==": a == b, "<=": a <= b, ">": a > b}[op]

    @staticmethod
    def divides(w: int, d: Dim) -> Truth:
        """Whether w (known, positive) divides the dimension d."""
        return None if isinstance(d, str) else d % w == 0

    @staticmethod
    def all(*verdicts: Truth) -> Truth:
        if any(v is False for v in verdicts):
            return False
        return None if any(v is None for v in verdicts) else True

    @staticmethod
    def any(*verdicts: Truth) -> Truth:
        if any(v is True for v in verdicts):
            return True
        return None if any(v is None for v in verdicts) else False


class CppLogic(_Comparisons):
    """Run-time reading: static facts fold to bools, the rest becomes C++ source text."""

    @staticmethod
    def _term(d: Dim) -> str:
        return d if isinstance(d, str) else f"INT64_C({d})"

    def prod(self, dims: Sequence[Dim]) -> Dim:
        """The product, saturated at INT64_MAX by the emitted `qmmar_mul_sat` (no signed
        overflow; a saturated size fails every bound and equality a real size meets)."""
        static = min(reduce(lambda a, b: a * b, (d for d in dims if isinstance(d, int)), 1), INT64_MAX)
        names = [d for d in dims if isinstance(d, str)]
        if not names:
            return static
        factors = names if static == 1 else [*names, self._term(static)]
        return reduce(lambda a, b: f"qmmar_mul_sat({a}, {b})", factors)

    def _cmp(self, a: Dim, b: Dim, op: str) -> Truth:
        if isinstance(a, int) and isinstance(b, int):
            return StaticLogic._cmp(a, b, op)
        if a == b:  # one run-time size, compared with itself
            return op != ">"
        return f"({self._term(a)} {op} {self._term(b)})"

    def divides(self, w: int, d: Dim) -> Truth:
        if isinstance(d, int):
            return d % w == 0
        return f"({d} % {self._term(w)} == 0)"

    @staticmethod
    def _join(verdicts: Sequence[Truth], absorbing: bool, sep: str) -> Truth:
        if any(v is absorbing for v in verdicts):
            return absorbing
        terms = list(dict.fromkeys(v for v in verdicts if isinstance(v, str)))  # each once: -Wlogical-op
        if not terms:
            return not absorbing
        return terms[0] if len(terms) == 1 else "(" + sep.join(terms) + ")"

    def all(self, *verdicts: Truth) -> Truth:
        return self._join(verdicts, False, " && ")

    def any(self, *verdicts: Truth) -> Truth:
        return self._join(verdicts, True, " || ")


Logic = StaticLogic | CppLogic
