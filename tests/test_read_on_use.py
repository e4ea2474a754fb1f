"""Arguments from .npz files are read at their first use and let go after their last: a rank
holds one layer's weights at a time (values.ReadOnUse, liveness.ReleasingInterpreter)."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
from xdsl.interpreter import Interpreter
from xdsl.ir import Operation

from helpers import parse, run, same_bits
from qmmar.dialects.diagnostics import LocatedError
from qmmar.interpreter.comm import InProcessGroup
from qmmar.interpreter.npz import NpzMember, open_npz
from qmmar.interpreter.spmd import entry_function, run_rank
from qmmar.interpreter.values import ReadOnUse, rank_args

X, W, Y = "tensor<2x4xi8>", "tensor<4x4xi8>", "tensor<2x4xi32>"
LAYERS = f"""
func.func @main(%x: {X}, %w0: {W}, %w1: {W}, %w2: {W}) -> ({Y}, {Y}, {Y}) {{
  %y0 = qmm.matmul %x, %w0 : ({X}, {W}) -> {Y}
  %y1 = qmm.matmul %x, %w1 : ({X}, {W}) -> {Y}
  %y2 = qmm.matmul %x, %w2 : ({X}, {W}) -> {Y}
  func.return %y0, %y1, %y2 : {Y}, {Y}, {Y}
}}
"""


def layer_inputs(path, world_size: int) -> list[np.ndarray]:
    """x the same on every rank, one weight per layer and rank; written to `path`."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(-128, 128, (2, 4), dtype=np.int8)]
    arrays += [rng.integers(-128, 128, (world_size, 4, 4), dtype=np.int8) for _ in range(3)]
    np.savez(path, **{f"arg{i}": a for i, a in enumerate(arrays)})
    return arrays


@pytest.fixture
def reads(monkeypatch) -> list[tuple[str, weakref.ref]]:
    """Every read of an .npz member's data: its name and a weak reference to the array read."""
    found: list[tuple[str, weakref.ref]] = []
    read = NpzMember._read

    def spy(self, shape, index):
        array = read(self, shape, index)
        found.append((self.name, weakref.ref(array)))
        return array

    monkeypatch.setattr(NpzMember, "_read", spy)
    return found


class Held(Interpreter.Listener):
    """Before each op: the members read so far, and which of their arrays are still alive."""

    def __init__(self, reads: list[tuple[str, weakref.ref]]) -> None:
        self.reads, self.seen = reads, []

    def will_interpret_op(self, op: Operation, args) -> None:
        self.seen.append((op.name, [name for name, _ in self.reads],
                          {name for name, array in self.reads if array() is not None}))  # fmt: skip


def test_each_argument_is_read_at_its_first_use_and_let_go_after_its_last(tmp_path, reads):
    arrays = layer_inputs(tmp_path / "in.npz", 1)
    members = open_npz(str(tmp_path / "in.npz"))
    module = parse(LAYERS)
    fn = entry_function(module, "main")
    [args] = rank_args(fn.function_type.inputs.data, [members[f"arg{i}"] for i in range(4)], 1, [0])
    assert reads == []  # the arguments' headers alone
    held = Held(reads)
    outcome = run_rank(module, "main", InProcessGroup(1).communicator(0), args, listeners=[held])
    assert outcome.error is None
    assert held.seen == [
        ("qmm.matmul", ["arg0", "arg1"], {"arg0", "arg1"}),
        ("qmm.matmul", ["arg0", "arg1", "arg2"], {"arg0", "arg2"}),  # w0 let go: one weight at a time
        ("qmm.matmul", ["arg0", "arg1", "arg2", "arg3"], {"arg0", "arg3"}),
        ("func.return", ["arg0", "arg1", "arg2", "arg3"], set()),  # each read once
    ]
    expected = run(module, [arrays[0], *(w[0] for w in arrays[1:])], 1)
    assert all(same_bits(got, want[0]) for got, want in zip(outcome.results or (), expected, strict=True))


def test_runs_on_arguments_read_on_use_give_the_bits_of_arguments_given_whole(tmp_path):
    arrays = layer_inputs(tmp_path / "in.npz", 3)
    members = open_npz(str(tmp_path / "in.npz"))
    module = parse(LAYERS)
    whole = run(module, arrays, 3)
    on_use = run(module, [members[f"arg{i}"] for i in range(4)], 3)
    assert all(same_bits(a, b) for a, b in zip(on_use, whole, strict=True))


def test_ranks_share_a_replicated_argument_while_one_holds_it(tmp_path, reads):
    """Threads: every rank's ReadOnUse of a replicated argument is one; it reads the member
    once for the ranks that hold it at the same time, and again once none does."""
    layer_inputs(tmp_path / "in.npz", 2)
    member = open_npz(str(tmp_path / "in.npz"))["arg0"]
    fn = entry_function(parse(LAYERS), "main")
    [[r0], [r1]] = rank_args(fn.function_type.inputs.data[:1], [member], 2, [0, 1])
    assert isinstance(r0, ReadOnUse) and r0 is r1
    a, b = r0.read(), r1.read()
    assert a is b and len(reads) == 1
    del a, b
    assert r1.read() is not None and len(reads) == 2


def test_a_file_cut_short_during_the_run_is_a_one_line_error_naming_it(tmp_path):
    """An argument is read during the run: a file changed since the run began fails at that
    read, in the words of a file that cannot be read (with the rank), not as the op's fault."""
    path = tmp_path / "in.npz"
    np.savez(path, arg0=np.ones((2, 4), np.int8), arg1=np.ones((4, 1 << 14), np.int8))
    wide = "tensor<4x16384xi8>"
    module = parse(f"""
func.func @main(%x: {X}, %w: {wide}) -> tensor<2x16384xi32> {{
  %y = qmm.matmul %x, %w : ({X}, {wide}) -> tensor<2x16384xi32>
  func.return %y : tensor<2x16384xi32>
}}
""")
    members = open_npz(str(path))
    path.write_bytes(path.read_bytes()[:-1000])  # into arg1's data, after the run began
    with pytest.raises(LocatedError) as err:
        run(module, [members["arg0"], members["arg1"]], 2)
    assert str(err.value) == f"{path}: error: cannot read the inputs: arg1 ends early (on rank 0)"
