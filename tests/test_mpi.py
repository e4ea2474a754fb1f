"""qmmar-run under mpiexec, one process per rank: the same bits as the threaded run, and
failures (a rank that fails, ranks that disagree, a killed rank, Ctrl-C) that end the job
with a located message in bounded time.

Every MPI job here runs under a timeout and in its own process group, which the test ends
if the job outlives it: a hang fails the test instead of hanging the suite."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from xdsl.printer import Printer

from helpers import parse, run, same_bits
from programs import ChainSpec, chain_specs, fused_program, random_inputs, unfused_program
from qmmar.dialects import numerics as nx
from qmmar.interpreter.gemm import TORCH_MIN_MACS
from qmmar.interpreter.values import for_file
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse

pytest.importorskip("mpi4py", reason="the MPI tests need the mpi extra: pip install '.[mpi]'")
BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
if not MPIEXEC.exists():
    pytest.skip("the MPI tests need mpiexec (pip install '.[mpi]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
BATCH = Path(__file__).resolve().parent / "mpi_batch.py"
LAYER = ROOT / "examples" / "layer.mlir"
QMMAR_RUN = [sys.executable, "-m", "qmmar.cli.run"]
BOUND = 120  # seconds: any job here takes a few (more on a loaded machine); beyond this it hangs


@dataclasses.dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def mpiexec(*parts, timeout: float = BOUND, cwd=None) -> Finished:
    """`mpiexec PARTS...`; the test fails if it has not ended within `timeout`."""
    start = time.monotonic()
    proc = subprocess.Popen([str(MPIEXEC), *map(str, parts)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec {' '.join(map(str, parts))} hangs (still running after {timeout} s):\n{err}")
    return Finished(proc.returncode, out, err, time.monotonic() - start)


def threads(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*QMMAR_RUN, *map(str, args)], capture_output=True, text=True, timeout=BOUND)


def printed(module) -> str:
    out = StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


# --- the suite's programs, bit for bit -----------------------------------------------------


def spec(w: int, out: str, lead: tuple, comm: bool, **kw) -> ChainSpec:
    chosen = kw.pop("scale", "i64")
    scale = "bf16" if out == "bf16" else ("f32" if kw.get("pertoken") else chosen)
    fields = dict(world_size=w, out=out, lead=lead, k=40, n=12, transpose_x2=False, bias=False, pertoken=False,
                  x3=False, comm=comm, scale_dtype=scale, scale_shape="n", comm_shape="n", collapse=False,
                  extreme=False)  # fmt: skip
    return ChainSpec(**(fields | kw))


def variants(w: int) -> list[ChainSpec]:
    """Every variant of the suite at world size w: bf16 and f16 outputs, int8 communication
    and plain, 2-D and 3-D (kept or collapsed), transposed weights, every scale type."""
    return [
        spec(w, "bf16", (2 * w,), comm=True, transpose_x2=True, bias=True),
        spec(w, "bf16", (2, 3), comm=False, pertoken=True, x3=True),
        spec(w, "f16", (w, 3), comm=True, collapse=True, x3=True, scale="ui64", comm_shape="1n"),
        spec(w, "f16", (5,), comm=False, pertoken=True, transpose_x2=True, scale_shape="1n"),
        spec(w, "f16", (2 * w, 2), comm=True, scale="f32", extreme=True),
        spec(w, "bf16", (w, 2), comm=True, collapse=True, pertoken=True, bias=True, scale_shape="1"),
    ]


def dynamic_variants(w: int) -> list[tuple[str, ChainSpec]]:
    """Programs with a dynamic m (the fused op: its rules are checked at run time), and the
    concrete spec their inputs come from."""
    cases = []
    for out, lead, comm, transpose, scale in [("bf16", (3 * w,), True, False, "bf16"),
                                              ("f16", (2, 5), False, True, "i64"),
                                              ("f16", (2 * w,), True, True, "ui64"),
                                              ("bf16", (w, 3), False, False, "bf16")]:  # fmt: skip
        concrete = spec(w, out, lead, comm=comm, transpose_x2=transpose, scale=scale)
        dynamic_lead = ("?",) + lead[1:]
        cases.append((fused_program(w, dynamic_lead, concrete.k, concrete.n, out, concrete.scale_dtype, comm,
                                    transpose), concrete))  # fmt: skip
    return cases


def drawn(w: int, count: int) -> list[tuple[ChainSpec, int]]:
    """`count` programs drawn as test_equivalence draws them, at world size w."""
    found: list[tuple[ChainSpec, int]] = []

    @settings(max_examples=count, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(spec=chain_specs(world_sizes=(w,)), seed=st.integers(0, 2**32 - 1))
    def collect(spec, seed):
        found.append((spec, seed))

    collect()
    return found


def cases_for(w: int, extra: int) -> list[tuple[str, list[np.ndarray]]]:
    """(program text, inputs): each variant unfused and fused, the dynamic ones, and `extra`
    drawn programs."""
    cases = []
    for chain, seed in [(v, 1000 + i) for i, v in enumerate(variants(w))] + (drawn(w, extra) if extra else []):
        text = unfused_program(chain)
        fused = parse(text)
        assert [v.legal for v in fuse(fused)] == [True], text
        inputs = random_inputs(chain, seed)
        cases += [(text, inputs), (printed(fused), inputs)]
    cases += [(text, random_inputs(concrete, 7)) for text, concrete in dynamic_variants(w)]
    return cases


def in_file_form(array: np.ndarray, case: int) -> np.ndarray:
    """bf16 as a file holds it: uint16 bits in even cases, float32 in odd ones."""
    if array.dtype != nx.BF16:
        return array
    return array.view(np.uint16) if case % 2 == 0 else nx.to_f32(array)


@pytest.mark.parametrize("w, extra", [(1, 4), (2, 8), (4, 8), (8, 0)])
def test_the_suite_runs_under_mpiexec_bit_for_bit(tmp_path, w, extra):
    cases = cases_for(w, extra)
    argv = []
    for i, (text, inputs) in enumerate(cases):
        program, in_file, out_file = (str(tmp_path / name) for name in (f"p{i}.mlir", f"in{i}.npz", f"out{i}.npz"))
        Path(program).write_text(text)
        np.savez(in_file, **{f"arg{j}": in_file_form(a, i) for j, a in enumerate(inputs)})
        argv.append([program, "-i", in_file, "-o", out_file])
    (tmp_path / "cases.json").write_text(json.dumps(argv))
    job = mpiexec("-n", w, sys.executable, BATCH, tmp_path / "cases.json", timeout=600)
    assert job.returncode == 0, job.stderr
    assert json.loads((tmp_path / "cases.json.codes").read_text()) == [0] * len(cases), job.stderr
    for i, (text, inputs) in enumerate(cases):
        (expected,) = run(parse(text), inputs, w)
        with np.load(tmp_path / f"out{i}.npz") as out:
            assert out.files == ["result0"]
            assert same_bits(out["result0"], for_file(expected)), text


# --- the command line under mpiexec ----------------------------------------------------------


def layer_inputs(path: Path, w: int) -> Path:
    rng = np.random.default_rng(3)
    np.savez(path, arg0=rng.integers(-128, 128, (w, 64, 256), dtype=np.int8),
             arg1=rng.integers(-128, 128, (w, 256, 128), dtype=np.int8),
             arg2=rng.integers(-1000, 1000, (128,), dtype=np.int32),
             arg3=rng.uniform(1e-4, 1e-3, 128).astype(np.float32),
             arg4=rng.standard_normal((64, 128)).astype(np.float32),
             arg5=np.full(128, 0.05, np.float32), arg6=np.full(128, 0.1, np.float32))  # fmt: skip
    return path


def test_the_output_and_summary_are_the_threaded_runs(tmp_path):
    inputs = layer_inputs(tmp_path / "in.npz", 4)
    threaded = threads(LAYER, "-w", 4, "-i", inputs, "-o", tmp_path / "threads.npz")
    assert threaded.returncode == 0, threaded.stderr
    job = mpiexec("-n", 4, *QMMAR_RUN, LAYER, "-i", inputs, "-o", tmp_path / "mpi.npz")
    assert job.returncode == 0 and job.stderr == "", job.stderr
    first_line = "@main on 4 ranks: 1 result(s) in "
    assert job.stdout.startswith(first_line) and threaded.stdout.startswith(first_line)
    assert job.stdout.splitlines()[1:] == threaded.stdout.splitlines()[1:]
    with zipfile.ZipFile(tmp_path / "threads.npz") as a, zipfile.ZipFile(tmp_path / "mpi.npz") as b:
        assert a.namelist() == b.namelist() == ["result0.npy"]
        assert a.read("result0.npy") == b.read("result0.npy")


def test_output_per_rank_and_world_size(tmp_path):
    inputs = layer_inputs(tmp_path / "in.npz", 4)
    job = mpiexec("-n", 4, *QMMAR_RUN, LAYER, "-w", 4, "-i", inputs, "-o", tmp_path / "out.npz", "--output-per-rank")
    assert job.returncode == 0, job.stderr
    assert not (tmp_path / "out.npz").exists()
    (expected,) = run(parse(LAYER.read_text()), [np.load(inputs)[f"arg{i}"] for i in range(7)], 4)
    for rank in range(4):
        with np.load(tmp_path / f"out.rank{rank}.npz") as out:
            assert same_bits(out["result0"], for_file(expected[rank]))
    wrong = mpiexec("-n", 2, *QMMAR_RUN, LAYER, "-w", 4, "-i", inputs)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == ("qmmar-run: error: --world-size is 4, but mpiexec started 2 processes "
                                    "(under mpiexec, --world-size may be left out)")  # fmt: skip


def test_ideal_under_mpi_is_the_threaded_runs(tmp_path):
    """--ideal: rank 0 gathers the measured values and prints and stores the same figures."""
    inputs = layer_inputs(tmp_path / "in.npz", 4)
    threaded = threads(LAYER, "-w", 4, "-i", inputs, "--ideal", "-o", tmp_path / "threads.npz")
    assert threaded.returncode == 0, threaded.stderr
    job = mpiexec("-n", 4, *QMMAR_RUN, LAYER, "-i", inputs, "--ideal", "-o", tmp_path / "mpi.npz")
    assert job.returncode == 0 and job.stderr == "", job.stderr
    assert "against the full-precision ideal" in job.stdout
    assert job.stdout.splitlines()[1:] == threaded.stdout.splitlines()[1:]
    with zipfile.ZipFile(tmp_path / "threads.npz") as a, zipfile.ZipFile(tmp_path / "mpi.npz") as b:
        assert a.namelist() == b.namelist() == ["result0.npy", "ideal.npy"]
        assert all(a.read(name) == b.read(name) for name in a.namelist())
    per_rank = mpiexec("-n", 4, *QMMAR_RUN, LAYER, "-i", inputs, "--ideal", "-o", tmp_path / "out.npz",
                       "--output-per-rank")  # fmt: skip
    assert per_rank.returncode == 0, per_rank.stderr
    with np.load(tmp_path / "out.rank0.npz") as first, np.load(tmp_path / "out.rank1.npz") as second:
        assert sorted(first.files) == ["ideal", "result0"] and second.files == ["result0"]
        assert first["ideal"].tobytes() == np.load(tmp_path / "threads.npz")["ideal"].tobytes()


def test_inputs_from_several_files_under_mpi(tmp_path):
    """Each rank reads its slices from every file; a bad argument is named after its file."""
    with np.load(layer_inputs(tmp_path / "all.npz", 4)) as arrays:
        weights = {k: arrays[k] for k in ("arg1", "arg2", "arg3")}
        np.savez(tmp_path / "weights.npz", **weights)
        np.savez(tmp_path / "activations.npz", **{k: arrays[k] for k in arrays.files if k not in weights})
    one = threads(LAYER, "-w", 4, "-i", tmp_path / "all.npz", "-o", tmp_path / "one.npz")
    assert one.returncode == 0, one.stderr
    split = ["-i", tmp_path / "weights.npz", "-i", tmp_path / "activations.npz"]
    job = mpiexec("-n", 4, *QMMAR_RUN, LAYER, *split, "-o", tmp_path / "two.npz")
    assert job.returncode == 0, job.stderr
    with zipfile.ZipFile(tmp_path / "one.npz") as a, zipfile.ZipFile(tmp_path / "two.npz") as b:
        assert a.read("result0.npy") == b.read("result0.npy")
    np.savez(tmp_path / "weights.npz", **(weights | {"arg2": np.zeros(7, np.int32)}))
    bad = mpiexec("-n", 4, *QMMAR_RUN, LAYER, *split)
    assert bad.returncode == 1
    assert bad.stderr.strip() == (f"{tmp_path / 'weights.npz'}: error: arg2 has shape [7]; expected tensor<128xi32> "
                                  "on every rank, or (4,) + that shape, one slice per rank")  # fmt: skip


TORCH_LOADED = (
    "import sys; from qmmar.cli.run import main; code = main(sys.argv[1:]); "
    "sys.stdout.write(f\"torch loaded: {'torch' in sys.modules}\\n\"); sys.stdout.flush(); sys.exit(code)"
)
"""Each rank says whether it loaded torch in one write of one line: the ranks share the test's
stdout pipe, and print's separate writes of its arguments interleaved with the other rank's."""


def test_ranks_as_processes_keep_torch_out_of_their_gemms(tmp_path):
    """torch would cost each rank's process about 240 MiB: a GEMM large enough for torch's int8
    kernel in a threaded run stays on f32 BLAS in an MPI rank, unless torch is loaded anyway
    (here by --library torch); either way the same bits."""
    n = round(TORCH_MIN_MACS ** (1 / 3))
    x, y = f"tensor<{n}x{n}xi8>", f"tensor<{n}x{n}xi32>"
    program = tmp_path / "gemm.mlir"
    program.write_text(f"func.func @main(%a: {x}, %b: {x}) -> {y} {{\n"
                       f"  %c = qmm.matmul %a, %b : ({x}, {x}) -> {y}\n  func.return %c : {y}\n}}\n")  # fmt: skip
    assert n**3 >= TORCH_MIN_MACS
    run_as_rank = [sys.executable, "-c", TORCH_LOADED, program, "--random-inputs", 0]
    job = mpiexec("-n", 2, *run_as_rank, "-o", tmp_path / "blas.npz")
    assert job.returncode == 0, job.stderr
    assert job.stdout.count("torch loaded: False") == 2
    pytest.importorskip("torch")
    loaded = mpiexec("-n", 2, *run_as_rank, "--library", "torch", "-o", tmp_path / "torch.npz")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.count("torch loaded: True") == 2
    with zipfile.ZipFile(tmp_path / "blas.npz") as a, zipfile.ZipFile(tmp_path / "torch.npz") as b:
        assert a.read("result0.npy") == b.read("result0.npy")


def test_standard_input_is_refused_under_mpi(tmp_path):
    job = mpiexec("-n", 2, *QMMAR_RUN, "-", "--random-inputs", 0)
    assert job.returncode == 2
    assert job.stderr.strip() == ("qmmar-run: error: standard input (-) cannot be read under mpiexec, which gives "
                                  "it to rank 0 alone: give the program and the inputs as files")  # fmt: skip


UNEVEN = """\
func.func @main(%x1: tensor<256x?xi8>, %w: tensor<?x256xi8>, %s: tensor<256xi64>) -> tensor<256x256xf16> {
  %acc = qmm.matmul %x1, %w : (tensor<256x?xi8>, tensor<?x256xi8>) -> tensor<256x256xi32>
  %y = qmm.dequant %acc, %s : (tensor<256x256xi32>, tensor<256xi64>) -> tensor<256x256xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<256x256xf16>
  func.return %r : tensor<256x256xf16>
}
"""
"""A layer whose k is dynamic: a rank given a larger k computes longer, and the other waits."""


def uneven_inputs(path: Path, k: int) -> Path:
    rng = np.random.default_rng(k)
    np.savez(path, arg0=rng.integers(-128, 128, (256, k), dtype=np.int8),
             arg1=rng.integers(-128, 128, (k, 256), dtype=np.int8),
             arg2=nx.trans_quant_param(np.full(256, 1e-4, np.float32)).view(np.int64))  # fmt: skip
    return path


def test_profile_separates_waiting_at_collectives_from_compute(tmp_path):
    program = tmp_path / "uneven.mlir"
    program.write_text(UNEVEN)
    options = ["--profile", "--progress", "lines"]
    small, large = uneven_inputs(tmp_path / "small.npz", 16), uneven_inputs(tmp_path / "large.npz", 16384)
    job = mpiexec("-n", 1, *QMMAR_RUN, program, "-i", small, *options,
                  ":", "-n", 1, *QMMAR_RUN, program, "-i", large, *options)  # fmt: skip
    assert job.returncode == 0, job.stderr
    table = job.stdout.split("profile: ", 1)[1].splitlines()
    assert "resident memory of the rank's process" in table[0]
    assert [c.strip() for c in table[1].split("|")[1:-1]] == ["#", "op", "location", "rank", "compute s",
                                                               "collective s", "peak MiB"]  # fmt: skip
    rows = {(r[1], r[3]): r for r in ([c.strip() for c in line.split("|")[1:-1]] for line in table[3:])}
    assert rows[("qmm.matmul", "0")][5] == rows[("qmm.matmul", "1")][5] == "0.000"  # no collective inside
    # rank 0 (k = 16) waits at the all_reduce while rank 1 (k = 16384) multiplies
    assert float(rows[("qmm.all_reduce", "0")][5]) >= 0.5 * float(rows[("qmm.matmul", "1")][4]) > 0
    assert float(rows[("(every op)", "0")][6]) > 10 and float(rows[("(every op)", "1")][6]) > 10
    progress = [line for line in job.stderr.splitlines() if line.startswith("qmmar-run: [")]
    assert [line.split(" done in ")[0] for line in progress] == [
        f"qmmar-run: [1/3] 'qmm.matmul' at {program}:2:3",
        f"qmmar-run: [2/3] 'qmm.dequant' at {program}:3:3",
        f"qmmar-run: [3/3] 'qmm.all_reduce' at {program}:4:3",
    ]


# --- failures end the job, located, in bounded time ------------------------------------------

DYNAMIC = """\
func.func @main(%x: tensor<4x8xf16>, %x1: tensor<?x?xi8>, %w: tensor<16x8xi8>, %s: tensor<8xi64>) -> tensor<?x8xf16> {
  %r0 = qmm.all_reduce %x on "tp" world_size = 2 : tensor<4x8xf16>
  %acc = qmm.matmul %x1, %w : (tensor<?x?xi8>, tensor<16x8xi8>) -> tensor<?x8xi32>
  %y = qmm.dequant %acc, %s : (tensor<?x8xi32>, tensor<8xi64>) -> tensor<?x8xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<?x8xf16>
  func.return %r : tensor<?x8xf16>
}
"""


def dynamic_inputs(path: Path, m: int, k: int) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, arg0=rng.standard_normal((2, 4, 8)).astype(np.float16),
             arg1=rng.integers(-128, 128, (2, m, k), dtype=np.int8),
             arg2=rng.integers(-128, 128, (16, 8), dtype=np.int8),
             arg3=nx.trans_quant_param(np.full(8, 1e-3, np.float32)).view(np.int64))  # fmt: skip
    return path


def rank_pair(program_0, inputs_0, program_1, inputs_1) -> Finished:
    """Rank 0 and rank 1 started with their own program and inputs (MPI's MPMD form), as on
    two machines that do not hold the same files."""
    return mpiexec("-n", 1, *QMMAR_RUN, program_0, "-i", inputs_0, ":", "-n", 1, *QMMAR_RUN, program_1, "-i", inputs_1)


def test_a_rank_that_fails_mid_run_ends_the_job_with_its_message(tmp_path):
    program = tmp_path / "p.mlir"
    program.write_text(DYNAMIC)
    good, bad = dynamic_inputs(tmp_path / "good.npz", 4, 16), dynamic_inputs(tmp_path / "bad.npz", 4, 15)
    job = rank_pair(program, good, program, bad)
    # rank 1 fails at the matmul, after the first all_reduce; rank 0 waits at the second
    assert job.returncode == 1 and job.stdout == ""
    assert job.stderr.strip() == (
        f"{program}:3:3: error: 'qmm.matmul' op on rank 1: at run time: the k dimensions of x1 and x2 must be "
        "equal (operand shapes: x1 [4, 15], x2 [16, 8])"
    )


def test_ranks_at_different_collectives_are_named(tmp_path):
    program, other = tmp_path / "p.mlir", tmp_path / "other.mlir"
    program.write_text(DYNAMIC)
    other.write_text(DYNAMIC.replace('  %r0 = qmm.all_reduce %x on "tp" world_size = 2 : tensor<4x8xf16>\n', ""))
    inputs = dynamic_inputs(tmp_path / "in.npz", 4, 16)
    job = rank_pair(program, inputs, other, inputs)
    assert job.returncode == 1
    assert job.stderr.strip() == (
        f"{program}:2:3: error: 'qmm.all_reduce' op on rank 0: ranks 0 and 1 disagree at a collective: rank 0 is "
        f"at 'qmm.all_reduce' at {program}:2:3 (group \"tp\") with world_size 2, rank 1 at 'qmm.all_reduce' at "
        f'{other}:4:3 (group "tp") with world_size 2'
    )


def test_ranks_with_different_shapes_at_a_collective_are_named(tmp_path):
    program = tmp_path / "p.mlir"
    program.write_text(DYNAMIC)
    four, six = dynamic_inputs(tmp_path / "a.npz", 4, 16), dynamic_inputs(tmp_path / "b.npz", 6, 16)
    job = rank_pair(program, four, program, six)
    assert job.returncode == 1
    message = job.stderr.strip()
    assert message.startswith(
        f"{program}:5:3: error: 'qmm.all_reduce' op on rank 0: ranks 0 and 1 send different shapes at "
        f"'qmm.all_reduce' at {program}:5:3 (group \"tp\"): ((32,), "  # at W = 2 the whole [4, 8] is sent
    )
    assert "and ((48,), " in message and len(message.splitlines()) == 1  # of [6, 8]


def test_a_rank_that_cannot_read_its_inputs_stops_every_rank(tmp_path):
    program = tmp_path / "p.mlir"
    program.write_text(DYNAMIC)
    job = rank_pair(program, dynamic_inputs(tmp_path / "in.npz", 4, 16), program, tmp_path / "missing.npz")
    assert job.returncode == 1
    assert job.stderr.strip() == (
        f"{tmp_path}/missing.npz: error: cannot read the inputs: No such file or directory (on rank 1)"
    )


def test_an_unexpected_failure_on_one_rank_ends_the_job(tmp_path):
    """A failure no step expects (a bug, here injected in rank 1) aborts every rank at once,
    with one line naming the rank, instead of leaving the others waiting."""
    broken = ("import sys, qmmar.interpreter.mpi as mpi; from qmmar.cli.run import main\n"
              "def broken(self, results): raise ZeroDivisionError('injected')\n"
              "mpi.MPIJob.stats = broken\n"
              "sys.exit(main(sys.argv[1:]))")  # fmt: skip
    (tmp_path / "p.mlir").write_text(DYNAMIC)
    args = [tmp_path / "p.mlir", "-i", dynamic_inputs(tmp_path / "in.npz", 4, 16)]
    job = mpiexec("-n", 1, *QMMAR_RUN, *args, ":", "-n", 1, sys.executable, "-c", broken, *args)
    assert job.returncode != 0 and "Traceback" not in job.stderr
    assert "qmmar-run: error: on rank 1: ZeroDivisionError: injected" in job.stderr


LONG = """\
func.func @main(%x1: tensor<2048x4096xi8>, %w: tensor<4096x2048xi8>, %s: tensor<2048xi64>) -> tensor<2048x2048xf16> {
""" + "".join(f"""\
  %acc{i} = qmm.matmul %x1, %w : (tensor<2048x4096xi8>, tensor<4096x2048xi8>) -> tensor<2048x2048xi32>
  %y{i} = qmm.dequant %acc{i}, %s : (tensor<2048x2048xi32>, tensor<2048xi64>) -> tensor<2048x2048xf16>
  %r{i} = qmm.all_reduce %y{i} on "tp" world_size = 2 : tensor<2048x2048xf16>
""" for i in range(20)) + """\
  func.return %r19 : tensor<2048x2048xf16>
}
"""  # fmt: skip
"""A program that runs for a minute or more on this machine: long enough to interrupt."""


def _rank_processes(root: int) -> list[int]:
    """The processes below `root` that run qmmar-run (the ranks)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    below, todo = [], [root]
    while todo:
        here = todo.pop()
        children = [pid for pid, parent in parents.items() if parent == here]
        below += children
        todo += children
    ranks = []
    for pid in below:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"qmmar.cli.run" in f.read():
                    ranks.append(pid)
        except OSError:
            continue
    return ranks


def started_long_run(tmp_path) -> subprocess.Popen:
    """mpiexec -n 2 on LONG, once rank 0 has finished its first op."""
    (tmp_path / "long.mlir").write_text(LONG)
    proc = subprocess.Popen([str(MPIEXEC), "-n", "2", *QMMAR_RUN, str(tmp_path / "long.mlir"), "--random-inputs", "0",
                             "--progress", "lines"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + BOUND
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("qmmar-run: [1/"):
            return proc
        if not line and proc.poll() is not None:
            pytest.fail(f"the long run ended early: {proc.returncode}")
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the long run did not start in time")


def ended(proc: subprocess.Popen, within: float) -> Finished:
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the job still runs {within} s later")
    return Finished(proc.returncode, out, err, time.monotonic() - start)


def all_gone(pids: list[int], within: float = 5) -> bool:
    deadline = time.monotonic() + within
    while any(os.path.exists(f"/proc/{pid}") for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_ctrl_c_ends_every_rank(tmp_path):
    proc = started_long_run(tmp_path)
    ranks = _rank_processes(proc.pid)
    assert len(ranks) == 2
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the foreground job on Ctrl-C
    job = ended(proc, within=30)
    assert job.returncode == 130 and "Traceback" not in job.stderr, job.stderr
    assert all_gone(ranks)


def test_a_killed_rank_ends_the_job(tmp_path):
    proc = started_long_run(tmp_path)
    ranks = _rank_processes(proc.pid)
    os.kill(ranks[-1], signal.SIGKILL)
    job = ended(proc, within=30)
    assert job.returncode != 0 and "Traceback" not in job.stderr
    assert all_gone(ranks)


def test_ctrl_c_ends_a_threaded_run(tmp_path):
    (tmp_path / "long.mlir").write_text(LONG)
    proc = subprocess.Popen([*QMMAR_RUN, str(tmp_path / "long.mlir"), "-w", "2", "--random-inputs", "0", "--progress",
                             "lines"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + BOUND
    while not proc.stderr.readline().startswith("qmmar-run: [1/") and time.monotonic() < deadline:
        assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGINT)
    job = ended(proc, within=30)
    *progress, last = job.stderr.strip().splitlines()  # ops may finish between the line and the signal
    assert job.returncode == 130 and last == "qmmar-run: interrupted", job.stderr
    assert all(line.startswith("qmmar-run: [") for line in progress), job.stderr
