""".npz files read one slice at a time and written one slice at a time.

An input array of `(world_size,) + shape` holds every rank's slice; a rank (an MPI process)
reads its own slice alone, from its offset in the file, so that no process ever holds the
other ranks' data.  Results are written the same way: the member's header first, then each
rank's slice as it arrives.  The bytes are exactly those of `np.load` and `np.savez`.
`write_results` is the one writer of a run's output file, for threads and MPI alike.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import LocatedError
from qmmar.interpreter.values import for_file
from qmmar.source import STDIN, display_name

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length
_NPY_MAGIC = b"\x93NUMPY"

Opener = Callable[[], io.BufferedIOBase]
"""Opens the bytes of an archive (a file, or standard input kept in memory) from the start."""


class NpzMember:
    """One array of an .npz file, read when asked: `member[i]` reads the i-th slice along
    the first axis alone; `np.asarray(member)` reads the whole array."""

    def __init__(self, where: str, opener: Opener, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        self.where, self._opener, self._info = where, opener, info  # where: the file's name in messages
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            self.shape, self._fortran_order, self.dtype = read_header(f)
            self._data_offset = f.tell()  # of the array data, within the member
        if self.dtype.hasobject:
            raise LocatedError(where, f"{self.name} is an array of Python objects; only numbers are read")

    @property
    def name(self) -> str:
        return self._info.filename.removesuffix(".npy")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < (self.shape[0] if self.shape else 0):
            raise IndexError(f"{self.name} has no slice {index}")
        if self._fortran_order:  # a slice is strided through the whole file: read it all
            return np.ascontiguousarray(np.asarray(self)[index])
        return self._read(self.shape[1:], index)

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        array = self._read(self.shape[::-1] if self._fortran_order else self.shape, 0)
        array = array.T if self._fortran_order else array
        return array if dtype is None else array.astype(dtype)

    def _read(self, shape: tuple[int, ...], index: int) -> np.ndarray:
        out = np.empty(shape, dtype=self.dtype)
        with self._errors(), self._open_at(self._data_offset + index * out.nbytes) as f:
            view = out.reshape(-1).view(np.uint8).data
            while view.nbytes:
                count = f.readinto(view)
                if not count:
                    raise ValueError(f"{self.name} ends early")
                view = view[count:]
        return out

    @contextmanager
    def _open_at(self, offset: int) -> Iterator[io.BufferedIOBase]:
        """The member's bytes from `offset` on.  A stored (uncompressed, as np.savez writes)
        member is read at its place in the file; a compressed one is decompressed up to
        `offset`, which costs time but no memory."""
        if self._info.compress_type == zipfile.ZIP_STORED:
            with self._opener() as f:
                f.seek(self._info.header_offset)
                signature, name_len, extra_len = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
                if signature != b"PK\x03\x04":
                    raise ValueError(f"{self.name}: a damaged zip entry")
                f.seek(self._info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + offset)
                yield f
        else:
            with self._opener() as file, zipfile.ZipFile(file) as archive, archive.open(self._info) as member:
                f = cast(zipfile.ZipExtFile, member)  # what reading gives (typeshed says only IO[bytes])
                f.seek(offset)
                yield f

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (OSError, ValueError, EOFError, struct.error, zipfile.BadZipFile) as err:  # struct: a cut header
            raise LocatedError(self.where, f"cannot read the inputs: {getattr(err, 'strerror', None) or err}") from None


def _opener(path: str) -> Opener:
    if path != STDIN:
        return lambda: open(path, "rb")
    data = sys.stdin.buffer.read()  # read once; a member is then read from memory
    return lambda: io.BytesIO(data)


def open_npz(path: str) -> dict[str, NpzMember]:
    """The arrays of an .npz file (`-`: standard input) by name, none of them read yet."""
    where = display_name(path)
    try:
        opener = _opener(path)
        with opener() as f:
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                raise LocatedError(where, "holds one array (an .npy file); --inputs reads an .npz archive "
                                         "(numpy.savez) of arrays arg0, arg1, ...")  # fmt: skip
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                members = [NpzMember(where, opener, archive, info) for info in archive.infolist()]
    except OSError as err:
        raise LocatedError(where, f"cannot read the inputs: {err.strerror or err}") from None
    except (ValueError, EOFError, zipfile.BadZipFile) as err:
        raise LocatedError(where, f"is not an .npz archive (numpy.savez): {err}") from None
    return {m.name: m for m in members}


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of the .npz file at `path` (`-`: standard input), read whole (qmmar-compare,
    a run's figures); a problem is a `LocatedError` naming the file."""
    where = display_name(path)
    try:
        opener = _opener(path)
        with opener() as f:
            if not zipfile.is_zipfile(f):
                raise LocatedError(where, "not an .npz file")
            with zipfile.ZipFile(f) as archive:
                if other := next((i.filename for i in archive.infolist() if not i.filename.endswith(".npy")), None):
                    raise LocatedError(where, f"{other} is not an array: not an .npz file (numpy.savez)")
                members = [NpzMember(where, opener, archive, info) for info in archive.infolist()]
        return {m.name: np.asarray(m) for m in members}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise LocatedError(where, f"cannot read it as .npz: {getattr(err, 'strerror', None) or err}") from None


class NpzWriter:
    """An .npz file at exactly `path`, written member by member, each member slice by slice
    (as np.savez would write it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._archive = zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED, allowZip64=True)

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._archive.close()

    @contextmanager
    def member(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> Iterator[Callable[[np.ndarray], None]]:
        """Open member `name`.npy for an array of `shape` and `dtype`; the function it gives
        appends a part of the data (slices along the first axis, in order)."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        with self._archive.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)

            def append(part: np.ndarray) -> None:
                f.write(np.ascontiguousarray(part, dtype=dtype).reshape(-1).view(np.uint8).data)

            yield append

    def write(self, name: str, array: np.ndarray) -> None:
        with self.member(name, array.shape, array.dtype) as append:
            append(array)


def rank_output_path(path: str, rank: int) -> str:
    """Where rank `rank` writes its results with --output-per-rank: OUT.npz -> OUT.rank<r>.npz."""
    return f"{path.removesuffix('.npz')}.rank{rank}.npz"


@dataclass(frozen=True)
class Streamed:
    """A result written as its parts arrive (rank 0 of an MPI run receives one rank's slice
    at a time): `parts`, in order, are slices along the first axis of `shape`."""

    shape: tuple[int, ...]
    dtype: np.dtype
    parts: Iterable[np.ndarray]


def write_results(path: str, results: Sequence[np.ndarray | Streamed], extra: Mapping[str, np.ndarray] = {}) -> None:
    """A run's output file, at exactly `path`: result0, result1, ... (bf16 as float32, which is
    exact) and the `extra` arrays (the --ideal figures)."""
    try:
        with NpzWriter(path) as writer:
            for i, result in enumerate(results):
                parts = (result,) if isinstance(result, np.ndarray) else result.parts
                dtype = np.dtype(np.float32) if result.dtype == nx.BF16 else result.dtype
                with writer.member(f"result{i}", result.shape, dtype) as append:
                    for part in parts:
                        append(for_file(part))
            for name, array in extra.items():
                writer.write(name, array)
    except OSError as err:
        raise LocatedError(path, f"cannot write the output: {err.strerror or err}") from None
