"""qmm.reduce_scatter (`functions.reduce_scatter_rows`): rank r gets rows r*m/W .. (r+1)*m/W - 1
of `numerics.reduce_sum` of every rank's whole value, bit for bit, over shapes, dtypes, world
sizes and every kind of extreme value; on threads, on gloo (the torch.compile custom op's
communicator), and a program under qmmar-run, threaded and under mpiexec."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_all_reduce_sum import DTYPES, extreme_values, quietly, same_bits, values
from threaded_ranks import run_ranks
from xdsl.dialects.builtin import DYNAMIC_INDEX, TensorType, bf16
from xdsl.ir import Block

from helpers import parse, run
from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.qmm import ReduceScatterOp
from qmmar.interpreter.comm import Site
from qmmar.interpreter.functions import RunError, reduce_scatter_rows


def site(w):
    return Site("qmm.reduce_scatter", "test.mlir:1:1", "tp", w)


def kept_rows(parts, rank):
    """The contract: the whole sum, then this rank's rows."""
    c = parts[0].shape[0] // len(parts)
    with np.errstate(all="ignore"):
        return nx.reduce_sum(parts)[rank * c : (rank + 1) * c]


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 9), c=st.integers(0, 4), tail=st.lists(st.integers(0, 6), max_size=2).map(tuple),
       name=st.sampled_from(sorted(DTYPES)), data=st.data())  # fmt: skip
def test_each_rank_keeps_its_rows_of_the_whole_sum(w, c, tail, name, data):
    x = [data.draw(values(name, (w * c, *tail))) for _ in range(w)]
    results, errors = run_ranks(w, lambda comm: quietly(reduce_scatter_rows, comm, x[comm.rank], site(w)))
    assert errors == [None] * w
    for rank, got in enumerate(results):
        assert same_bits(got, kept_rows(x, rank))


def test_rows_that_world_size_does_not_divide_are_refused():
    x = np.zeros((5, 2), np.float16)
    _, errors = run_ranks(2, lambda comm: reduce_scatter_rows(comm, x, site(2)))
    assert all(isinstance(e, RunError) for e in errors)
    assert str(errors[0]) == "x's leading dim m of shape [5, 2] is not divisible by world_size 2"


@pytest.mark.parametrize("rows, kept", [(64, 16), (DYNAMIC_INDEX, DYNAMIC_INDEX)])
def test_the_builder_gives_each_rank_its_rows(rows, kept):
    block = Block(arg_types=[TensorType(bf16, [rows, 256])])
    op = ReduceScatterOp(block.args[0], "tp", 4)
    op.verify()
    assert op.result.type == TensorType(bf16, [kept, 256])
    assert (op.group.data, op.world_size.value.data, op.reduce_op.data) == ("tp", 4, "sum")


# --- a program --------------------------------------------------------------------------------

PROGRAM = """func.func @main(%y: tensor<{m}x6xbf16>) -> tensor<{c}x6xbf16> {{
  %r = qmm.reduce_scatter %y on "tp" world_size = {w} : tensor<{m}x6xbf16> -> tensor<{c}x6xbf16>
  func.return %r : tensor<{c}x6xbf16>
}}
"""


def program(w: int, rows: int, dynamic: bool = False) -> str:
    m = "?" if dynamic else rows
    return PROGRAM.format(m=m, c="?" if dynamic else rows // w, w=w)


def extreme_inputs(w: int, rows: int, seed: int) -> np.ndarray:
    """[W, rows, 6] bf16: half extreme values, half any bits."""
    return extreme_values("bf16", (w, rows, 6), seed)


@pytest.mark.parametrize("w", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("dynamic", [False, True])
def test_a_program_runs_on_threads(w, dynamic):
    y = extreme_inputs(w, 2 * w, seed=w)
    (got,) = quietly(run, parse(program(w, 2 * w, dynamic)), [y], w)
    for rank in range(w):
        assert same_bits(got[rank], kept_rows(list(y), rank))


def test_a_dynamic_m_that_world_size_does_not_divide_fails_at_the_op():
    with pytest.raises(LocatedError) as failed:
        run(parse(program(4, 6, dynamic=True)), [np.zeros((4, 6, 6), np.float32)], 4)
    assert str(failed.value) == (
        "test.mlir:2:3: error: 'qmm.reduce_scatter' op on rank 0: at run time: x's leading "
        "dim m must be divisible by world_size (operand shapes: x [6, 6])"
    )


def test_a_program_under_mpiexec_and_ideal_is_the_threaded_run(tmp_path):
    pytest.importorskip("mpi4py", reason="the MPI tests need the mpi extra: pip install '.[mpi]'")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("the MPI tests need mpiexec (pip install '.[mpi]')")
    w = 4
    (tmp_path / "p.mlir").write_text(program(w, 3 * w))
    y = extreme_inputs(w, 3 * w, seed=9)
    np.savez(tmp_path / "in.npz", arg0=y.view(np.uint16))
    run_cmd = [sys.executable, "-m", "qmmar.cli.run", str(tmp_path / "p.mlir"), "-i", str(tmp_path / "in.npz")]
    threads = subprocess.run([*run_cmd, "-w", str(w), "-o", str(tmp_path / "threads.npz")], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert threads.returncode == 0, threads.stderr
    # --ideal: no int8 communication to measure; the run is the same.
    mpi = subprocess.run([str(mpiexec), "-n", str(w), *run_cmd, "--ideal", "-o", str(tmp_path / "mpi.npz")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert mpi.returncode == 0, mpi.stderr
    assert "--ideal: no mc2.quant_matmul_all_reduce and no int8-communication chain in @main" in mpi.stdout
    with np.load(tmp_path / "threads.npz") as a, np.load(tmp_path / "mpi.npz") as b:
        assert same_bits(a["result0"], b["result0"])
        for rank in range(w):
            assert same_bits(a["result0"][rank], nx.to_f32(kept_rows(list(y), rank)))


# --- on gloo ------------------------------------------------------------------------------------

GLOO_WORLD = 3
GLOO_SHAPES = [(0, 4), (3, 5), (6,), (9, 2, 2)]


def gloo_case(case, rank):
    (name, shape) = [(n, s) for n in sorted(DTYPES) for s in GLOO_SHAPES][case]
    return extreme_values(name, shape, seed=case * 100 + rank)


def scattered_by_gloo(rank, world_size):
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    comm = TorchDistributedCommunicator()
    with np.errstate(all="ignore"):
        return [reduce_scatter_rows(comm, gloo_case(case, rank), site(world_size))
                for case in range(2 * len(GLOO_SHAPES))]  # fmt: skip


def test_on_gloo_each_rank_keeps_its_rows():
    pytest.importorskip("torch")
    from torch_ranks import run_ranks as run_processes

    results = run_processes(scattered_by_gloo, GLOO_WORLD, timeout=300)
    for case in range(2 * len(GLOO_SHAPES)):
        parts = [gloo_case(case, r) for r in range(GLOO_WORLD)]
        for rank in range(GLOO_WORLD):
            assert same_bits(results[rank][case], kept_rows(parts, rank)), (case, rank)
