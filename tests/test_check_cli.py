"""qmmar-check: its flags are checked as the pass's options are, and it judges exactly the
chains that fusing judges."""

from pathlib import Path

import numpy as np
import pytest

from helpers import parse
from qmmar.cli.check import main
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse

ROOT = Path(__file__).resolve().parent.parent
OPERANDS = ROOT / "tests/lit/fuse/operands.mlir"


@pytest.mark.parametrize("flag, value, message", [
    ("--int8-tops", "0", "int8-tops must be a positive number, not 0"),
    ("--link-gbps", "-3", "link-gbps must be a positive number, not -3"),
    ("--link-gbps", "inf", "link-gbps must be a positive number, not inf"),
    ("--int8-tops", "fast", "int8-tops must be a number, not 'fast'"),
    ("--min-m", "-1", "min-m must be a whole number of rows, at least 0, not -1"),
])  # fmt: skip
def test_bad_flags_exit_2_with_one_line(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(OPERANDS), flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"qmmar-check: error: argument {flag}: {message}"


def test_numbers_as_a_user_writes_them(capsys):
    assert main([str(OPERANDS), "--int8-tops", "320", "--link-gbps", "1e9"]) == 0
    assert "8 chain(s): 5 legal to fuse, 3 not" in capsys.readouterr().out


def test_check_finds_the_chains_fusion_finds(capsys):
    assert main([str(OPERANDS)]) == 0
    lines = capsys.readouterr().out.splitlines()
    verdicts = fuse(parse(OPERANDS.read_text(), str(OPERANDS)))
    assert lines[:-1] == [v.remark().replace("fused into mc2.quant_matmul_all_reduce", "legal to fuse")
                          for v in verdicts]  # fmt: skip


def test_an_unwritable_report_is_named_before_any_work(tmp_path, capsys):
    for flag in ("--report", "--html"):
        path = tmp_path / "missing" / "r.out"
        assert main([str(OPERANDS), flag, str(path)]) == 1
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"{path}: error: cannot write the report: No such file or directory\n")


def test_a_bad_run_file_is_named(tmp_path, capsys):
    pytest.importorskip("graphviz")
    np.savez(tmp_path / "plain.npz", result0=np.zeros(2))
    run = tmp_path / "plain.npz"
    assert main([str(OPERANDS), "--html", str(tmp_path / "r.html"), "--run", str(run)]) == 1
    err = capsys.readouterr().err
    assert err == f"{run}: error: no figures in it: write it with qmmar-run --ideal -o {run}\n"
    assert not (tmp_path / "r.html").exists()


def test_a_missing_run_file_is_named_before_any_work(tmp_path, capsys):
    run = tmp_path / "missing.npz"
    assert main([str(OPERANDS), "--html", str(tmp_path / "r.html"), "--run", str(run)]) == 1
    assert capsys.readouterr() == ("", f"{run}: error: cannot read it: No such file or directory\n")


def test_numerics_relaxed_counts_the_chains_it_would_fuse_with_a_rounded_scale(capsys):
    relaxed = ROOT / "tests/lit/fuse/relaxed.mlir"
    assert main([str(relaxed)]) == 0
    assert "2 chain(s): 0 legal to fuse, 2 not" in capsys.readouterr().out
    assert main([str(relaxed), "--numerics", "relaxed"]) == 0
    out = capsys.readouterr().out
    assert "2 chain(s): 2 legal to fuse, 0 not" in out and out.count("note: numerics=relaxed") == 2
    with pytest.raises(SystemExit) as exit_:
        main([str(relaxed), "--numerics", "loose"])
    assert exit_.value.code == 2
