"""qmmar-compare on files whose differences are known: counts, errors, ULPs, tolerances, exit codes."""

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmmar.cli.compare import main

BF16 = ml_dtypes.bfloat16


def compare(tmp_path, a: dict, b: dict, *args, capsys=None) -> tuple[int, str]:
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    code = main([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), *map(str, args)])
    return code, capsys.readouterr().out if capsys else ""


def as_file(values, dtype=BF16) -> np.ndarray:
    """A result as qmmar-run writes it: bf16 as float32."""
    return np.asarray(values, dtype=np.float32).astype(dtype).astype(np.float32)


def next_up(x: np.ndarray, steps: int, dtype=BF16) -> np.ndarray:
    """x moved `steps` ULPs of dtype up (positive x)."""
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    return (x.astype(dtype).view(bits) + steps).view(dtype).astype(np.float32)


def test_identical_files_exit_0(tmp_path, capsys):
    r = as_file(np.linspace(-3, 3, 64).reshape(8, 8))
    code, out = compare(tmp_path, {"result0": r}, {"result0": r.copy()}, capsys=capsys)
    assert code == 0
    assert "result0: bf16 (float32 in the files) [8, 8]: identical; NaN 0/0, inf 0/0" in out
    assert out.strip().endswith("1 result(s): 1 identical, 0 within tolerance, 0 different")


def test_known_differences_in_bf16(tmp_path, capsys):
    b = as_file(np.full((4, 8), 2.0))
    a = b.copy()
    a[0, 0] = next_up(b[0, 0], 1)[()]  # 2 + 2**-6: one ULP of bf16 at 2
    a[1, 3] = next_up(b[1, 3], 3)[()]  # three ULPs: 2 + 3 * 2**-6
    code, out = compare(tmp_path, {"result0": a}, {"result0": b}, capsys=capsys)
    assert code == 1
    assert "differs in 2 of 32 elements; max abs 0.046875, max rel 0.0234375, max ULP 3" in out
    assert compare(tmp_path, {"result0": a}, {"result0": b}, "--ulp", 3)[0] == 0
    assert compare(tmp_path, {"result0": a}, {"result0": b}, "--ulp", 2)[0] == 1
    assert compare(tmp_path, {"result0": a}, {"result0": b}, "--atol", 0.046875)[0] == 0
    assert compare(tmp_path, {"result0": a}, {"result0": b}, "--rtol", 0.02)[0] == 1
    assert compare(tmp_path, {"result0": a}, {"result0": b}, "--rtol", 0.0234375)[0] == 0
    # The same values read as f32: ULPs of f32 (2**16 per bf16 ULP).
    code, out = compare(tmp_path, {"result0": a}, {"result0": b}, "--dtype", "f32", capsys=capsys)
    assert "result0: float32 [4, 8]: differs in 2 of 32 elements" in out and f"max ULP {3 * 2**16}" in out


def test_ulps_cross_zero_and_nan_inf_are_counted(tmp_path, capsys):
    tiny = np.float16(2.0**-24)  # the smallest f16 subnormal
    a = np.array([tiny, -tiny, np.nan, np.inf, 1.0, -0.0], dtype=np.float16)
    b = np.array([-tiny, -tiny, np.nan, np.inf, np.nan, 0.0], dtype=np.float16)
    code, out = compare(tmp_path, {"result0": a}, {"result0": b}, "--ulp", 2, capsys=capsys)
    # element 0: two ULPs across zero (accepted); element 4: a number against NaN (never accepted);
    # -0.0 against 0.0: different bits, no distance.
    assert code == 1
    assert "result0: float16 [6]: differs in 3 of 6 elements (1 outside the tolerance)" in out
    assert "max ULP 2" in out and "NaN 1/2, inf 1/1" in out


def test_integers_and_shape_and_missing_arrays(tmp_path, capsys):
    a = {"result0": np.array([1, -128, 127], np.int8), "result1": np.zeros(3, np.float32)}
    b = {"result0": np.array([1, 127, 127], np.int8), "result1": np.zeros(4, np.float32),
         "result2": np.zeros(1, np.float32)}  # fmt: skip
    code, out = compare(tmp_path, a, b, capsys=capsys)
    assert code == 1
    assert "result0: int8 [3]: differs in 1 of 3 elements; max abs 255, max rel 2.00787, max ULP 255" in out
    assert "result1: float32 [3] in" in out and "float32 [4] in" in out
    assert f"result2: only in {tmp_path / 'b.npz'}" in out
    assert "3 result(s): 0 identical, 0 within tolerance, 3 different" in out


def test_results_sort_naturally_and_figures_are_not_compared(tmp_path, capsys):
    arrays = {f"result{i}": np.zeros(1, np.float32) for i in (10, 2, 1)}
    figures = np.array([("x", 1.0)], dtype=[("location", "U1"), ("max_abs", "f8")])
    code, out = compare(tmp_path, arrays | {"ideal": figures}, dict(arrays), capsys=capsys)
    assert code == 0
    names = [line.split(":")[0] for line in out.splitlines()[:-1]]
    assert names == ["ideal", "result1", "result2", "result10"]


def test_usage_and_bad_files_exit_2(tmp_path):
    np.savez(tmp_path / "ok.npz", result0=np.zeros(1, np.float32))
    (tmp_path / "text.npz").write_text("not a zip")
    np.savez(tmp_path / "f32.npz", result0=np.array([1.1], np.float32))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "qmmar.cli.compare", *map(str, args)],
                              capture_output=True, text=True)  # fmt: skip

    for args, message in [
        ((tmp_path / "ok.npz", tmp_path / "missing.npz"), "missing.npz: cannot read it as .npz"),
        ((tmp_path / "ok.npz", tmp_path / "text.npz"), "text.npz: not an .npz file"),
        ((tmp_path / "f32.npz", tmp_path / "f32.npz", "--dtype", "bf16"), "holds values that are not bf16"),
        ((tmp_path / "ok.npz", tmp_path / "ok.npz", "--atol", "-1"), "--atol must be a finite number >= 0"),
    ]:
        r = run(*args)
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert run(tmp_path / "ok.npz").returncode == 2


@settings(max_examples=200, deadline=None)
@given(
    dtype=st.sampled_from([BF16, np.float16, np.float32]),
    values=st.lists(st.floats(-1e4, 1e4, allow_subnormal=False), min_size=1, max_size=20),
    steps=st.integers(0, 1000),
    where=st.integers(0, 19),
)
def test_the_reported_ulp_distance_is_the_one_made(tmp_path_factory, dtype, values, steps, where):
    b = np.abs(np.asarray(values, np.float32)).astype(dtype) + dtype(1.0)  # positive: steps move away from 0
    a = b.copy()
    i = where % a.size
    a[i] = next_up(b[i : i + 1], steps, dtype).astype(dtype)[0]
    to_file = (lambda x: x.astype(np.float32)) if dtype is BF16 else (lambda x: x)
    tmp = tmp_path_factory.mktemp("ulp")
    np.savez(tmp / "a.npz", result0=to_file(a))
    np.savez(tmp / "b.npz", result0=to_file(b))
    code = main([str(tmp / "a.npz"), str(tmp / "b.npz"), "--ulp", str(steps)])
    assert code == 0
    if steps:
        assert main([str(tmp / "a.npz"), str(tmp / "b.npz"), "--ulp", str(steps - 1)]) == 1


@pytest.mark.parametrize("dtype", ["auto", "bf16"])
def test_a_fused_and_an_unfused_run_agree_in_one_command(tmp_path, dtype):
    """The README's "the two forms agree bit for bit", as one command."""
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "two_layers.mlir"
    fused = tmp_path / "fused.mlir"

    def tool(module, *args):
        r = subprocess.run([sys.executable, "-m", f"qmmar.cli.{module}", *map(str, args)],
                           capture_output=True, text=True)  # fmt: skip
        return r

    assert tool("opt", example, "-p", "fuse-quant-matmul-all-reduce", "-o", fused).returncode == 0
    for program, out in ((example, "u.npz"), (fused, "f.npz")):
        assert tool("run", program, "-w", 8, "--random-inputs", 1, "-o", tmp_path / out).returncode == 0
    r = tool("compare", tmp_path / "u.npz", tmp_path / "f.npz", "--dtype", dtype)
    assert r.returncode == 0, r.stdout
    assert r.stdout.count(": identical;") == 2
