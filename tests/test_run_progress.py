"""qmmar-run's progress, --profile, --output-per-rank and the choice between threads and MPI,
for ranks run as threads (tests/test_mpi.py runs them as processes)."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import parse, run, same_bits
from qmmar.cli.run import main as run_main
from qmmar.dialects import numerics as nx
from qmmar.interpreter import observe
from qmmar.interpreter.mpi import launched_by_mpi
from qmmar.interpreter.results import RankStats, summary
from qmmar.interpreter.values import for_file, random_args

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "examples" / "layer.mlir"
EXAMPLE = ROOT / "examples" / "two_layers.mlir"
QMMAR_RUN = [sys.executable, "-m", "qmmar.cli.run"]


def qmmar_run(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*QMMAR_RUN, *map(str, args)], capture_output=True, text=True, timeout=120, env=env)


class FakeTimer:
    """threading.Timer whose time passes when the test says so (`fire`), whatever the load."""

    made: list["FakeTimer"] = []

    def __init__(self, seconds, callback):
        self.seconds, self.callback, self.cancelled, self.daemon = seconds, callback, False, False
        FakeTimer.made.append(self)

    def start(self):
        pass

    def cancel(self):
        self.cancelled = True

    def fire(self):
        if not self.cancelled:
            self.callback()


@pytest.fixture
def timers(monkeypatch) -> list[FakeTimer]:
    FakeTimer.made = []
    monkeypatch.setattr(observe.threading, "Timer", FakeTimer)
    return FakeTimer.made


def test_a_short_run_prints_no_progress_by_default(timers, capsys):
    assert run_main([str(EXAMPLE), "-w", "8", "--random-inputs", "1"]) == 0
    assert [t.seconds for t in timers] == [observe.QUIET_SECONDS] and timers[0].cancelled
    assert capsys.readouterr().err == ""


def test_progress_lines_name_every_op():
    r = qmmar_run(LAYER, "-w", 4, "--random-inputs", 1, "--progress", "lines")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 8
    assert lines[0].startswith(f"qmmar-run: [1/8] 'qmm.matmul' at {LAYER}:7:3 done in ")
    assert lines[-1].startswith(f"qmmar-run: [8/8] 'qmm.dequant' at {LAYER}:14:3 done in ")


def test_auto_progress_appears_only_after_the_quiet_time(timers, capsys):
    quick = observe.Progress(total=2, mode="auto")
    quick.started(1, "'qmm.matmul' at f.mlir:1:1")
    quick.finished(1, "'qmm.matmul' at f.mlir:1:1", 0.001)
    quick.close()
    timers[0].fire()  # too late: the run has ended
    assert capsys.readouterr().err == ""
    slow = observe.Progress(total=2, mode="auto")
    slow.started(1, "'qmm.matmul' at f.mlir:1:1")
    timers[1].fire()  # QUIET_SECONDS have passed, the op still runs
    slow.finished(1, "'qmm.matmul' at f.mlir:1:1", 0.3)
    slow.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("qmmar-run: [1/2] running 'qmm.matmul' at f.mlir:1:1 (")
    assert err[1].startswith("qmmar-run: [1/2] 'qmm.matmul' at f.mlir:1:1 done in 0.300 s (")


def test_the_bar_on_a_terminal():
    """stderr a terminal: a bar (tqdm), redrawn in place and cleared at the end."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # rows, columns
    proc = subprocess.Popen([*QMMAR_RUN, str(LAYER), "-w", "4", "--random-inputs", "1", "--progress", "bar"],
                            stdout=subprocess.PIPE, stderr=child, text=True)  # fmt: skip
    os.close(child)
    out, _ = proc.communicate(timeout=120)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert proc.returncode == 0 and out.startswith("@main on 4 ranks")
    text = screen.decode()
    assert "\r" in text and "8/8" in text and "qmm.dequant" in text


def test_profile_with_threads():
    r = qmmar_run(LAYER, "-w", 4, "--random-inputs", 1, "--profile")
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("profile: ", 1)[1].splitlines()
    assert "the process, every rank's thread together" in table[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table[3:]]
    assert [(row[0], row[1], row[3]) for row in rows[:4]] == [("1", "qmm.matmul", str(r)) for r in range(4)]
    assert len(rows) == 8 * 4 + 4 and [row[3] for row in rows[-4:]] == ["0", "1", "2", "3"]
    assert all(row[5] == "0.000" for row in rows if row[1] in ("qmm.matmul", "qmm.dequant", "qmm.quant"))
    assert all(float(row[6]) > 10 for row in rows)


def test_output_per_rank_with_threads(tmp_path):
    """Each rank's results in its own file; the --ideal figures in rank 0's."""
    r = qmmar_run(LAYER, "-w", 4, "--random-inputs", 5, "-o", tmp_path / "out.npz", "--output-per-rank", "--ideal")
    assert r.returncode == 0, r.stderr
    module = parse(LAYER.read_text())
    (expected,) = run(module, random_args(module.body.block.first_op.function_type.inputs.data, 4, 5), 4)
    for rank in range(4):
        with np.load(tmp_path / f"out.rank{rank}.npz") as out:
            assert same_bits(out["result0"], for_file(expected[rank]))
            assert sorted(out.files) == (["ideal", "result0"] if rank == 0 else ["result0"])


@pytest.mark.parametrize(
    "args, message",
    [(["--random-inputs", 1], "--world-size is required when ranks run as threads"),
     (["-w", 4, "--random-inputs", 1, "--output-per-rank"], "--output-per-rank needs --output")],
)  # fmt: skip
def test_usage_errors(args, message):
    r = qmmar_run(LAYER, *args)
    assert r.returncode == 2 and message in r.stderr


def test_mpi_is_detected_from_the_launchers_environment():
    assert not launched_by_mpi({"PATH": "/bin"})
    assert launched_by_mpi({"PMI_RANK": "0", "PMI_SIZE": "2"})  # MPICH's Hydra, Intel MPI
    assert launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "2"})  # Open MPI
    assert launched_by_mpi({"PMIX_RANK": "1"})  # PMIx: srun, prterun


def test_threads_never_load_mpi():
    code = ("import sys; from qmmar.cli.run import main; "
            f"assert main([{str(LAYER)!r}, '-w', '4', '--random-inputs', '1']) == 0; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py loaded'")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_without_mpi4py_the_mpi_mode_says_what_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None; from qmmar.cli.run import main; "
            f"sys.exit(main([{str(LAYER)!r}, '--comm', 'mpi', '--random-inputs', '1']))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "install them with: pip install 'qmmar[mpi]'" in r.stderr


@settings(max_examples=200, deadline=None)
@given(results=hnp.arrays(st.sampled_from([np.float16, np.float32, np.int8, np.uint16]),
                          st.tuples(st.integers(1, 4), hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=4))
                          .map(lambda ranks_and_shape: (ranks_and_shape[0], *ranks_and_shape[1]))),
       same=st.booleans())  # fmt: skip
def test_the_summary_from_per_rank_statistics_is_the_whole_arrays(results, same):
    """What the summary says of a (W,) + shape result: min, max and mean of the finite values,
    the non-finite count, whether every rank holds the same bits."""
    results = results.view(nx.BF16) if results.dtype == np.uint16 else results  # every bit pattern
    if same:
        results = np.broadcast_to(results[:1], results.shape)
    text = summary([[RankStats.of(rank_result)] for rank_result in results], 0.0, "main").splitlines()[1]
    values = results.astype(np.float64)
    finite = values[np.isfinite(values)]
    identical = all(np.array_equal(results[0].view(np.uint8), r.view(np.uint8)) for r in results)
    assert f"ranks identical: {'yes' if identical else 'no'}; " in text
    if not values.size:
        assert text.endswith("; no elements")
        return
    assert text.endswith(f"; non-finite {values.size - finite.size}")
    if not finite.size:
        assert "; no finite value; " in text
        return
    lo, hi, mean = (float(text.split(f" {word} ")[1].split()[0].rstrip(";")) for word in ("min", "max", "mean"))
    assert (lo, hi) == (float(f"{finite.min():.6g}"), float(f"{finite.max():.6g}"))  # -0 and 0 alike
    assert np.isclose(mean, finite.mean(), rtol=1e-5)
