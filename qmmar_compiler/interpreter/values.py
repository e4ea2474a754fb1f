"""The conventions for a program's arguments and results (SEMANTICS.md, "Files a run reads").

An argument is given either with the argument's shape (the same on every rank) or with
`(world_size,) + shape` (one slice per rank).  bf16 may come as float32 (rounded to nearest
even) or as uint16 raw bits; every other element type must match exactly.  Results have
`(world_size,) + shape`; bf16 results are written as float32, which is exact.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute

from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import PACKED_SCALE_DTYPES, dtype_name, numpy_dtype

if TYPE_CHECKING:
    from qmmar.interpreter.npz import NpzMember  # npz reads through this module: no import at run time

InputArray: TypeAlias = "np.ndarray | NpzMember"
"""An argument's value as a run reads it: an array, or an .npz member read a slice at a time."""


class InputError(Exception):
    """An argument that does not fit the entry function's signature (`arg`: its index)."""

    def __init__(self, message: str, arg: int | None = None) -> None:
        super().__init__(message)
        self.arg = arg


def _fits(shape: tuple[int, ...], type_shape: tuple[int, ...]) -> bool:
    return len(shape) == len(type_shape) and all(t < 0 or t == s for s, t in zip(shape, type_shape, strict=True))


def _conversion(i: int, given: np.dtype, dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    """How argument i, given as `given`, becomes the element type `dtype` (checked before any
    data is read)."""
    if given == dtype:
        return lambda array: array
    if dtype == nx.BF16 and given == np.float32:
        return lambda array: nx.round_to(array, nx.BF16)
    if dtype == nx.BF16 and given == np.uint16:
        return lambda array: array.view(nx.BF16)
    accepted = " (or float32, or uint16 bits)" if dtype == nx.BF16 else ""
    raise InputError(f"arg{i} has dtype {given}, expected {dtype}{accepted}", i)


class UnreadableArgument(LocatedError):
    """An argument read on use could not be read (its file changed since the run began): the
    file's failure, not the op's that used it."""


class ReadOnUse:
    """An argument that the run reads at its first use instead of before the run
    (`liveness.ReleasingInterpreter` reads it, and lets it go after its last use): a slice of an
    .npz member (`index`: the rank's), or the whole member (a replicated argument).  A rank thus
    holds one layer's weights at a time, not every layer's.  Ranks given the same ReadOnUse (a
    replicated argument, in threads) share one array while any of them holds it."""

    def __init__(self, source: NpzMember, index: int | None, convert: Callable[[np.ndarray], np.ndarray]) -> None:
        self._source, self._index, self._convert = source, index, convert
        self._held: Callable[[], np.ndarray | None] = lambda: None  # a weak reference once read
        self._lock = threading.Lock()

    def read(self) -> np.ndarray:
        with self._lock:
            array = self._held()
            if array is None:
                try:
                    read = np.asarray(self._source if self._index is None else self._source[self._index])
                except LocatedError as err:
                    raise UnreadableArgument(err.where, err.message) from None
                array = self._convert(read)
                self._held = weakref.ref(array)
            return array


Argument: TypeAlias = "np.ndarray | ReadOnUse"
"""An argument's value as a rank's run is given it."""


def element_dtype(i: int, type_attr: TensorType) -> np.dtype:
    try:
        return numpy_dtype(dtype_name(type_attr.element_type))
    except KeyError:
        raise InputError(f"arg{i} has element type {type_attr.element_type}, which the interpreter "
                         "does not support", i) from None  # fmt: skip


def _is_per_rank(i: int, type_attr: TensorType, shape: tuple[int, ...], world_size: int) -> bool:
    """Whether argument i, given with `shape`, has one slice per rank (else it is replicated)."""
    type_shape = type_attr.get_shape()
    if _fits(shape, type_shape):
        return False
    if len(shape) == len(type_shape) + 1 and shape[0] == world_size and _fits(shape[1:], type_shape):
        return True
    raise InputError(
        f"arg{i} has shape {list(shape)}; expected {type_attr} on every "
        f"rank, or ({world_size},) + that shape, one slice per rank",
        i,
    )


def rank_args(
    arg_types: Sequence[Attribute], arrays: Sequence[InputArray], world_size: int, ranks: Sequence[int]
) -> list[list[Argument]]:
    """[j][i]: the i-th argument's value on rank ranks[j].

    An .npz member (`npz.NpzMember`) becomes a `ReadOnUse` of the rank's slice: nothing is read
    here, and then only those ranks' slices, each when the run first uses it.  Shapes and
    element types are checked here, from the arrays' headers."""
    from qmmar.interpreter.npz import NpzMember  # npz imports this module

    if len(arrays) != len(arg_types):
        raise InputError(f"the entry function takes {len(arg_types)} arguments, "
                         f"{len(arrays)} were given")  # fmt: skip
    columns: list[list[Argument]] = []
    for i, (type_attr, array) in enumerate(zip(arg_types, arrays, strict=True)):
        if not isinstance(type_attr, TensorType):
            raise InputError(f"arg{i} has type {type_attr}; only tensor arguments are supported", i)
        source = array if isinstance(array, NpzMember) else np.asarray(array)
        per_rank = _is_per_rank(i, type_attr, source.shape, world_size)
        convert = _conversion(i, source.dtype, element_dtype(i, type_attr))
        if isinstance(source, NpzMember) and per_rank:
            columns.append([ReadOnUse(source, r, convert) for r in ranks])
        elif isinstance(source, NpzMember):
            columns.append([ReadOnUse(source, None, convert)] * len(ranks))  # one for every rank: shared
        elif per_rank:
            columns.append([convert(source[r]) for r in ranks])
        else:
            columns.append([convert(source)] * len(ranks))
    return [list(args) for args in zip(*columns, strict=True)] if columns else [[] for _ in ranks]


def per_rank_args(
    arg_types: Sequence[Attribute], arrays: Sequence[InputArray], world_size: int
) -> list[list[Argument]]:
    """[rank][i]: the i-th argument's value on each rank."""
    return rank_args(arg_types, arrays, world_size, range(world_size))


def random_args(
    arg_types: Sequence[Attribute], world_size: int, seed: int, rank: int | None = None
) -> list[np.ndarray]:
    """Inputs for a quick run: int tensors differ per rank (a shard each), float tensors
    are the same on every rank (scales must be, by the operator's rules).  1-D floats are
    scale-like, in [2**-8, 2**-6); others standard normal.  int64/uint64 arguments are
    dequant scales packed by TransQuantParamV2.

    With `rank`, an int tensor is that rank's shard alone, drawn as the whole `(world_size,)
    + shape` draw would give it: the bounded draws take one 32-bit word per element, so the
    shards drawn one after the other are the slices of the whole (a test checks it), and a
    process never holds the other ranks' shards."""
    rng = np.random.default_rng(seed)
    arrays = []
    for i, type_attr in enumerate(arg_types):
        if not isinstance(type_attr, TensorType) or any(d < 0 for d in type_attr.get_shape()):
            raise InputError(f"arg{i} has type {type_attr}: --random-inputs needs static tensor shapes", i)
        element_dtype(i, type_attr)
        try:
            arrays.append(_random_arg(rng, type_attr, world_size, rank))
        except (MemoryError, ValueError) as err:  # ValueError: numpy's "array is too big"
            raise InputError(f"arg{i} of type {type_attr} on {world_size} rank(s) does not fit in memory: "
                             f"{err or 'out of memory'}", i) from None  # fmt: skip
    return arrays


def _random_arg(rng: np.random.Generator, type_attr: TensorType, world_size: int, rank: int | None) -> np.ndarray:
    shape = tuple(type_attr.get_shape())
    name = dtype_name(type_attr.element_type)
    dtype = numpy_dtype(name)  # known: element_dtype checked it
    scale_like = rng.uniform(2.0**-8, 2.0**-6, size=shape).astype(np.float32)
    if name in PACKED_SCALE_DTYPES:
        return nx.trans_quant_param(scale_like).view(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -128), min(info.max, 127)
        shards = []
        for r in range(world_size):
            shard = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
            if rank in (None, r):
                shards.append(shard)
        return np.stack(shards) if rank is None else shards[0]
    if len(shape) == 1:
        return nx.round_to(scale_like, dtype)
    return nx.round_to(rng.standard_normal(size=shape).astype(np.float32), dtype)


def for_file(result: np.ndarray) -> np.ndarray:
    """bf16 results are written as float32 (exact); the rest as they are."""
    return nx.to_f32(result) if result.dtype == nx.BF16 else result
