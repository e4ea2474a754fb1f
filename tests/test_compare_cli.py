"""qmmar-compare on files whose differences are known: counts, errors, ULPs, tolerances, exit codes."""

import subprocess
import sys
import zipfile

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmmar.cli.compare import Tolerance, main
from qmmar.cli.compare import compare as compare_arrays

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


def run(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qmmar.cli.compare", *map(str, args)], input=stdin,
                          capture_output=True)  # fmt: skip


def test_usage_and_bad_files_exit_2_with_one_line_naming_the_file(tmp_path):
    np.savez(tmp_path / "ok.npz", result0=np.zeros(1, np.float32))
    (tmp_path / "text.npz").write_text("not a zip")
    np.savez(tmp_path / "f32.npz", result0=np.array([1.1], np.float32))
    np.savez(tmp_path / "bf16.npz", result0=np.array([1.0], np.float32))
    np.savez(tmp_path / "complex.npz", result0=np.array([1j], np.complex64))
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as z:
        z.writestr("notes.txt", "not an array")
    for args, line in [
        (("ok.npz", "missing.npz"), "missing.npz: error: cannot read it as .npz: No such file or directory"),
        (("ok.npz", "text.npz"), "text.npz: error: not an .npz file"),
        (("zip.npz", "ok.npz"), "zip.npz: error: notes.txt is not an array: not an .npz file (numpy.savez)"),
        (("bf16.npz", "f32.npz", "--dtype", "bf16"), "f32.npz: error: result0 holds values that are not bf16 "
                                                     "(--dtype bf16)"),
        (("complex.npz", "complex.npz"), "complex.npz, complex.npz: error: result0: complex64 is not a numeric "
                                         "result"),
        (("ok.npz", "ok.npz", "--atol", "-1"), "qmmar-compare: error: --atol must be a finite number >= 0"),
    ]:  # fmt: skip
        r = subprocess.run([sys.executable, "-m", "qmmar.cli.compare", *args], capture_output=True, text=True,
                           cwd=tmp_path)  # fmt: skip
        assert (r.returncode, r.stderr, r.stdout) == (2, line + "\n", ""), args
    assert run(tmp_path / "ok.npz").returncode == 2


def test_either_file_from_standard_input(tmp_path):
    np.savez(tmp_path / "a.npz", result0=np.arange(3, dtype=np.int32))
    np.savez(tmp_path / "b.npz", result0=np.arange(3, dtype=np.int32) * 2, result1=np.zeros(1, np.int8))
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    from_files = run(a, b)
    from_stdin_a = run("-", b, stdin=a.read_bytes())
    from_stdin_b = run(a, "-", stdin=b.read_bytes())
    assert from_files.returncode == from_stdin_a.returncode == from_stdin_b.returncode == 1
    assert from_stdin_a.stdout == from_files.stdout
    assert from_stdin_b.stdout == from_files.stdout.replace(str(b).encode(), b"<stdin>")
    assert b"result1: only in <stdin>" in from_stdin_b.stdout
    (text := tmp_path / "text.npz").write_text("not a zip")
    assert run("-", b, stdin=text.read_bytes()).stderr == b"<stdin>: error: not an .npz file\n"
    twice = run("-", "-", stdin=a.read_bytes())
    assert twice.returncode == 2
    assert (
        twice.stderr.splitlines()[-1]
        == b"qmmar-compare: error: standard input (-) can be read once: by A.npz or by B.npz"
    )


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


def test_an_infinity_matches_only_the_same_infinity(tmp_path, capsys):
    biggest = np.finfo(np.float32).max
    a = np.array([np.inf, np.inf, biggest, -np.inf, 1.0], np.float32)
    b = np.array([biggest, -np.inf, np.inf, -np.inf, 1.0], np.float32)
    for tolerance in (("--ulp", 1), ("--ulp", 2**33), ("--rtol", 1), ("--atol", 1e38, "--rtol", 10)):
        code, out = compare(tmp_path, {"result0": a}, {"result0": b}, "--dtype", "f32", *tolerance, capsys=capsys)
        assert code == 1
        assert out.splitlines()[0] == ("result0: float32 [5]: differs in 3 of 5 elements (3 outside the tolerance); "
                                       "max abs inf, max rel inf, max ULP inf; NaN 0/0, inf 3/3")  # fmt: skip


def finite_ranks(dtype) -> np.ndarray:
    """Every finite value of a 16-bit float type, in order, -0 and +0 as one: a value's index
    here is its distance in ULPs from the lowest."""
    with np.errstate(invalid="ignore"):  # the signalling NaNs
        values = np.arange(1 << 16, dtype=np.uint16).view(dtype).astype(np.float64)
    return np.unique(values[np.isfinite(values)])


SPECIAL_BITS = [0x0000, 0x8000, 0x0001, 0x8001, 0x7C00, 0xFC00, 0x7BFF, 0xFBFF, 0x7E00, 0xFE00, 0x7C01,  # f16
                0x7F80, 0xFF80, 0x7F7F, 0xFF7F, 0x7FC0, 0xFFC1, 0x7F81]  # fmt: skip
"""Zeros, the smallest subnormals, the infinities, the largest finite values and NaNs (quiet,
signalling, with payloads) of f16 and of bf16 (each list is some other value of the other type)."""


@settings(max_examples=300, deadline=None)
@given(
    dtype=st.sampled_from([BF16, np.float16]),
    pairs=st.lists(st.tuples(*[st.one_of(st.integers(0, 0xFFFF), st.sampled_from(SPECIAL_BITS))] * 2), min_size=1,
                   max_size=16),
    ulp=st.one_of(st.integers(0, 4), st.integers(0, 1 << 17)),
)  # fmt: skip
def test_any_bit_patterns_differ_by_their_distance_and_infinities_by_any(dtype, pairs, ulp):
    bits = np.array(pairs, dtype=np.uint16).T
    with np.errstate(invalid="ignore"):
        x, y = (row.view(dtype).astype(np.float64) for row in bits)
    ranks = finite_ranks(dtype)
    rejected = 0
    for i in range(len(pairs)):
        if bits[0, i] == bits[1, i] or (np.isnan(x[i]) and np.isnan(y[i])):
            continue
        if np.isnan(x[i]) or np.isnan(y[i]) or np.isinf(x[i]) or np.isinf(y[i]):
            rejected += 1  # a NaN or an infinity against any other value: beyond any tolerance
        else:
            rejected += abs(int(np.searchsorted(ranks, x[i])) - int(np.searchsorted(ranks, y[i]))) > ulp
    if dtype is BF16:  # as qmmar-run writes bf16: float32 of the same value
        a, b = ((row.astype(np.uint32) << 16).view(np.float32) for row in bits)
    else:
        a, b = bits[0].view(dtype), bits[1].view(dtype)
    c = compare_arrays("result0", a, b, "auto", Tolerance(ulp=ulp), ("a.npz", "b.npz"))
    assert c.dtype == ("bf16 (float32 in the files)" if dtype is BF16 else "float16")
    assert c.differing == int(np.sum(bits[0] != bits[1]))
    assert c.rejected == rejected
