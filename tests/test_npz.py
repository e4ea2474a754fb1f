""".npz files read one rank's slice at a time and written one slice at a time, with the bytes
of np.load and np.savez; random inputs drawn one rank at a time."""

import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from xdsl.dialects.builtin import TensorType

from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import element_attr, numpy_dtype
from qmmar.interpreter.npz import NpzWriter, open_npz, rank_output_path
from qmmar.interpreter.values import ReadOnUse, per_rank_args, random_args, rank_args

DTYPES = [np.int8, np.uint8, np.int32, np.int64, np.uint64, np.float16, np.float32, np.uint16, np.bool_]
arrays = hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))


@settings(max_examples=150, deadline=None)
@given(array=arrays, fortran=st.booleans(), compressed=st.booleans())
def test_a_member_reads_each_slice_and_the_whole_as_np_load_does(tmp_path_factory, array, fortran, compressed):
    path = tmp_path_factory.mktemp("npz") / "a.npz"
    array = np.asfortranarray(array) if fortran else array
    (np.savez_compressed if compressed else np.savez)(path, arg0=array, scalar=np.float32(2.5))
    members = open_npz(str(path))
    assert sorted(members) == ["arg0", "scalar"]
    member = members["arg0"]
    assert member.shape == array.shape and member.dtype == array.dtype and np.shape(member) == array.shape
    whole = np.asarray(member)
    assert (whole.dtype, whole.shape, whole.tobytes("A")) == (array.dtype, array.shape, array.tobytes("A"))
    assert np.asarray(members["scalar"]) == np.float32(2.5)
    for i in range(array.shape[0]):
        part = member[i]
        assert (part.dtype, part.shape, part.tobytes()) == (array.dtype, array[i].shape, array[i].tobytes())


def test_reading_a_slice_costs_only_the_slice(tmp_path):
    world, slice_bytes = 8, 4 * 2**20
    np.savez(tmp_path / "big.npz", arg0=np.arange(world * slice_bytes, dtype=np.uint8).reshape(world, slice_bytes))
    member = open_npz(str(tmp_path / "big.npz"))["arg0"]
    tracemalloc.start()
    part = member[5]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert part[0] == (5 * slice_bytes) % 256
    assert peak < 1.1 * slice_bytes  # not the 32 MiB of every rank


@settings(max_examples=100, deadline=None)
@given(array=arrays, parts=st.booleans())
def test_the_writer_writes_the_bytes_of_np_savez(tmp_path_factory, array, parts):
    folder = tmp_path_factory.mktemp("out")
    np.savez(folder / "expected.npz", result0=array, result1=array[..., :1])
    with NpzWriter(str(folder / "actual.npz")) as writer:
        if parts:
            with writer.member("result0", array.shape, array.dtype) as append:
                for part in array:
                    append(part)
        else:
            writer.write("result0", array)
        writer.write("result1", array[..., :1])
    with zipfile.ZipFile(folder / "expected.npz") as a, zipfile.ZipFile(folder / "actual.npz") as b:
        assert a.namelist() == b.namelist()
        assert all(a.read(name) == b.read(name) for name in a.namelist())


def test_rank_output_path():
    assert rank_output_path("out.npz", 3) == "out.rank3.npz"
    assert rank_output_path("dir/out", 0) == "dir/out.rank0.npz"


@pytest.mark.parametrize(
    "content, message",
    [(b"not a zip", "a.npz: error: is not an .npz archive (numpy.savez): File is not a zip file"),
     (None, "a.npz: error: arg0 is an array of Python objects; only numbers are read")],
)  # fmt: skip
def test_unreadable_inputs_are_one_line(tmp_path, content, message):
    path = tmp_path / "a.npz"
    if content is None:
        np.savez(path, arg0=np.array([{}, 1], dtype=object))
    else:
        path.write_bytes(content)
    with pytest.raises(LocatedError) as err:
        open_npz(str(path))
    assert str(err.value) == f"{tmp_path}/{message}"


def test_a_truncated_member_is_a_one_line_error(tmp_path):
    np.savez(tmp_path / "a.npz", arg0=np.zeros((4, 1000), np.int32))
    member = open_npz(str(tmp_path / "a.npz"))["arg0"]
    data = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "a.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(LocatedError, match="a.npz: error: cannot read the inputs"):
        member[3]


# --- per-rank arguments ----------------------------------------------------------------------

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3)


@st.composite
def signatures(draw) -> list[TensorType]:
    """Tensor arguments of every element type the dialects use."""
    names = draw(st.lists(st.sampled_from(["i8", "i32", "i64", "ui64", "f16", "bf16", "f32"]), min_size=1, max_size=5))
    return [TensorType(element_attr(name), draw(shapes)) for name in names]


@settings(max_examples=150, deadline=None)
@given(types=signatures(), world_size=st.integers(1, 8), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_random_inputs_drawn_for_one_rank_are_that_ranks_slice(types, world_size, seed, data):
    rank = data.draw(st.integers(0, world_size - 1))
    whole = random_args(types, world_size, seed)
    mine = random_args(types, world_size, seed, rank=rank)
    for t, all_ranks, one in zip(types, whole, mine, strict=True):
        expected = all_ranks[rank] if all_ranks.shape != tuple(t.get_shape()) else all_ranks
        assert one.dtype == expected.dtype and np.array_equal(one.view(np.uint8), expected.view(np.uint8))
    # the draws, rank by rank, are one draw of (world_size,) + shape: what random_args relies on
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    shape = tuple(data.draw(shapes))
    for lo, hi in [(-128, 127), (0, 127)]:
        one_draw = a.integers(lo, hi, size=(world_size, *shape), endpoint=True)
        by_rank = np.stack([b.integers(lo, hi, size=shape, endpoint=True) for _ in range(world_size)])
        assert np.array_equal(one_draw, by_rank)
    assert a.random() == b.random()


@settings(max_examples=100, deadline=None)
@given(types=signatures(), world_size=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_one_ranks_arguments_are_its_column_of_every_ranks(tmp_path_factory, types, world_size, seed):
    arrays = random_args(types, world_size, seed)
    path = tmp_path_factory.mktemp("in") / "in.npz"
    np.savez(path, **{f"arg{i}": a.view(np.uint16) if a.dtype == numpy_dtype("bf16") else a
                      for i, a in enumerate(arrays)})  # fmt: skip
    members = open_npz(str(path))
    lazy = [members[f"arg{i}"] for i in range(len(arrays))]
    every = per_rank_args(types, arrays, world_size)
    for rank in range(world_size):
        [mine] = rank_args(types, lazy, world_size, [rank])
        for on_use, b in zip(mine, every[rank], strict=True):
            assert isinstance(on_use, ReadOnUse)  # read when the run first uses it
            a = on_use.read()
            assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))
