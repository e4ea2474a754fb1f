"""The shape facts of the operator and of the qmm ops, one function each.

The qmm verifiers, the mc2 rule table, the builders and the passes all read these; a
predicate takes a `Logic` (see `logic.py`), so that a dynamic dimension stays undecided at
compile time and becomes a run-time guard in C++.  A dimension is an `int`, or a `str`
naming a size known only at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

from qmmar.dialects.logic import Dim, Logic, StaticLogic, Truth

Shape = tuple[Dim, ...]


def contraction(x2: Shape, transpose_x2: bool) -> tuple[Dim, Dim]:
    """(k, n) of a 2-D x2: it is [k, n], or [n, k] with transpose_x2."""
    return (x2[1], x2[0]) if transpose_x2 else (x2[0], x2[1])


def transposed(shape: Shape) -> Shape:
    """The last two dims swapped: the [k, n] view of a transposed x2's [n, k] buffer.  The
    rules read x2 as stored, with transpose_x2 (`contraction`); a call sees this view."""
    return (*shape[:-2], shape[-1], shape[-2])


def rows(leading: Sequence[Dim], lg: Logic) -> Dim:
    """m, the number of rows of an [m, ...] or [b, s, ...] activation: b*s."""
    return lg.prod(leading)


def matmul_shape(x1: Shape, x2: Shape, transpose_x2: bool) -> Shape:
    """x1's leading dimensions followed by n."""
    return (*x1[:-1], contraction(x2, transpose_x2)[1])


def same_shape(a: Shape, b: Shape, lg: Logic) -> Truth:
    if len(a) != len(b):
        return False
    return lg.all(*(lg.eq(x, y) for x, y in zip(a, b, strict=True)))


def channel_vector(shape: Shape, n: Dim, lg: Logic, per_tensor: bool) -> Truth:
    """A per-channel scale: [n] or [1, n]; also [1] where a per-tensor scale is allowed."""
    if len(shape) == 1:
        return lg.any(lg.eq(shape[0], n), per_tensor and lg.eq(shape[0], 1))
    if len(shape) == 2:
        return lg.all(lg.eq(shape[0], 1), lg.eq(shape[1], n))
    return False


def pertoken_vector(shape: Shape, leading: Sequence[Dim], lg: Logic) -> Truth:
    """A pertoken scale: [m], one value per row (m = b*s for a 3-D activation)."""
    if len(shape) != 1:
        return False
    return lg.eq(shape[0], rows(leading, lg))


def _scaled(d: Dim, w: int, op: str) -> Dim:
    if isinstance(d, int):
        return d // w if op == "/" else d * w
    return f"({d}){op}{w}"


def alltoall_shape(x: Shape, world_size: int) -> Shape:
    """[d0, ...] -> [W, d0/W, ...] (d0 must be a multiple of W)."""
    return (world_size, _scaled(x[0], world_size, "/"), *x[1:])


def reducesum_shape(x: Shape) -> Shape:
    """[W, c, ...] -> [c, ...]: the sum over the leading axis."""
    return x[1:]


def allgather_shape(x: Shape, world_size: int) -> Shape:
    """[c, ...] -> [W*c, ...]: every rank's rows, in rank order."""
    return (_scaled(x[0], world_size, "*"), *x[1:])


def reduce_scatter_shape(x: Shape, world_size: int) -> Shape:
    """[m, ...] -> [m/W, ...]: this rank's rows of the sum (m must be a multiple of W)."""
    return (_scaled(x[0], world_size, "/"), *x[1:])


def divides(world_size: int, d0: Dim) -> Truth:
    """Whether world_size divides a leading dimension (undecided when it is dynamic)."""
    return STATIC.divides(world_size, d0)


STATIC = StaticLogic()
"""The compile-time reading, shared by the verifiers."""
