"""What every console script of pyproject.toml shares, checked for each one (a new tool is
checked by being listed there): `--version`, `-` for standard input, and the ways a run ends
early: a reader that closed the pipe (exit 141, nothing said), Ctrl-C (exit 130,
`TOOL: interrupted`), a bug in qmmar (exit 1, one `internal error:` line)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qmmar
from helpers import ROOT, SCRIPTS, tool

LAYER = ROOT / "examples" / "layer.mlir"
FOREGROUND = "signal.signal(signal.SIGINT, signal.default_int_handler)"
"""A tool's Ctrl-C is a terminal's foreground job's: SIGINT handled as Python handles it by
default, whatever this test process's children inherit (a background job ignores SIGINT)."""


def entry_point_with(name: str, body_start: str) -> subprocess.CompletedProcess:
    """Run `name`'s entry point as its console script does, with `body_start` (Python code) run
    where the tool's body starts: when it parses its arguments, as every tool does first."""
    module, _, function = SCRIPTS[name].partition(":")
    code = (
        "import argparse, os, signal, sys, time\n"
        f"{FOREGROUND}\n"
        "def body_start(*args, **kwargs):\n"
        f"    {body_start}\n"
        "argparse.ArgumentParser.parse_args = body_start\n"
        f"from {module} import {function}\n"
        f"sys.exit({function}())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "QMMAR_TRACEBACK"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_bug_is_one_internal_error_line(name):
    r = entry_point_with(name, "raise RuntimeError('injected')")
    assert (r.returncode, r.stdout) == (1, "")
    bug = "internal error: RuntimeError: injected (a bug in qmmar; QMMAR_TRACEBACK=1 shows where)"
    assert r.stderr == f"{name}: {bug}\n"


@pytest.mark.parametrize("name", SCRIPTS)
def test_ctrl_c_is_exit_130_and_one_line(name):
    r = entry_point_with(name, "os.kill(os.getpid(), signal.SIGINT); time.sleep(60)")
    assert (r.returncode, r.stdout, r.stderr) == (130, "", f"{name}: interrupted\n")


def interrupted_at_import(name: str, nth: int, *args: str) -> subprocess.CompletedProcess:
    """Run `name` as its console script does (`sys.argv[0]` its name), with SIGINT delivered
    at the `nth` module import after qmmar has taken SIGINT over (`qmmar.cli` loaded): at a chosen
    moment of its start-up or body, whatever the machine's load."""
    module, _, function = SCRIPTS[name].partition(":")
    code = (
        "import os, signal, sys\n"
        f"{FOREGROUND}\n"
        "seen = [0]\n"
        "def hook(event, args):\n"
        "    if event == 'import' and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:\n"
        "        seen[0] += 1\n"
        f"        if seen[0] == {nth}:\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.addaudithook(hook)\n"
        f"sys.argv = [{name!r}, *{list(args)!r}]\n"
        f"from {module} import {function}\n"
        f"sys.exit({function}())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "QMMAR_TRACEBACK"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("nth", [1, 5, 20, 60, 120, 200, 300])
def test_ctrl_c_at_any_moment_of_start_up_is_exit_130_and_one_line(nth):
    """Issue 21: a SIGINT while the tool loads (or while a library imports lazily inside its
    body, numpy wrapping the KeyboardInterrupt into an ImportError) was a traceback, an
    internal error or exit 0."""
    r = interrupted_at_import("qmmar-opt", nth, str(LAYER), "-p", "fuse-quant-matmul-all-reduce")
    assert (r.returncode, r.stdout, r.stderr) == (130, "", "qmmar-opt: interrupted\n")


@pytest.mark.parametrize("name", SCRIPTS)
def test_ctrl_c_while_each_tool_loads_is_exit_130_and_one_line(name):
    r = interrupted_at_import(name, 3, "--version")
    assert (r.returncode, r.stdout, r.stderr) == (130, "", f"{name}: interrupted\n")


def with_closed_stdout(command: list[str]) -> tuple[int, bytes]:
    """Run `command` with stdout a pipe that nobody reads (`| head -0`, with the reader gone
    before the first write): its exit code and stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        p = subprocess.run(command, stdout=write, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write)
    return p.returncode, p.stderr


def script(name: str) -> str:
    """The console script as installed beside this Python."""
    path = Path(sys.executable).with_name(name)
    assert path.is_file(), f"{name} is not installed: pip install -e . again"
    return str(path)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_closed_pipe_is_exit_141_without_a_word(name):
    """Even when the pipe breaks at the last flush, after the tool's body has returned.  (Not
    --help: argparse swallows a failed write of the help, and exits 0.)"""
    assert with_closed_stdout([script(name), "--version"]) == (141, b"")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, list[str]]:
    """For each tool, a run that does its work and prints it to stdout."""
    tmp = tmp_path_factory.mktemp("work")
    np.savez(tmp / "a.npz", result0=np.arange(4, dtype=np.float32))
    return {
        "qmmar-opt": [str(LAYER)],
        "qmmar-run": [str(LAYER), "-w", "4", "--random-inputs", "0"],
        "qmmar-check": [str(LAYER)],
        "qmmar-compare": [str(tmp / "a.npz"), str(tmp / "a.npz")],
        "qmmar-import": [saved_program(tmp)],
    }


def saved_program(tmp: Path) -> str:
    torch = pytest.importorskip("torch")

    class Silu(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.silu(x)

    torch.export.save(torch.export.export(Silu(), (torch.randn(4, 8),)), tmp / "silu.pt2")
    return str(tmp / "silu.pt2")


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_closed_pipe_ends_real_work_with_141(name, work):
    assert name in work, f"give {name} a run that prints to stdout"
    assert with_closed_stdout([script(name), *work[name]]) == (141, b"")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_tool_has_a_version(name):
    r = tool(name, "--version")
    assert r.returncode == 0
    assert r.stdout.startswith(f"{name} {qmmar.__version__} (xDSL ")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_tool_reads_standard_input_as_dash(name, work):
    first, *args = work[name]
    from_file = tool(name, first, *args)
    from_stdin = tool(name, "-", *args, stdin=Path(first).read_bytes())
    assert from_stdin.returncode == from_file.returncode, from_stdin.stderr
    assert from_stdin.returncode in (0, 3), from_stdin.stderr
    if name == "qmmar-run":  # the run time differs
        assert from_stdin.stdout.splitlines()[1:] == from_file.stdout.splitlines()[1:]
    else:
        assert from_stdin.stdout == from_file.stdout.replace(first, "<stdin>")
