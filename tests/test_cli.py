"""The command-line tools as a script sees them: outputs, .npz conventions, exit codes."""

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from helpers import tool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "two_layers.mlir"
LAYER = ROOT / "examples" / "layer.mlir"


def layer_inputs(w, rng):
    return {
        "arg0": rng.integers(-128, 128, size=(w, 64, 256), dtype=np.int8),
        "arg1": rng.integers(-128, 128, size=(w, 256, 128), dtype=np.int8),
        "arg2": rng.integers(-1000, 1000, size=(128,), dtype=np.int32),
        "arg3": rng.uniform(1e-4, 1e-3, size=128).astype(np.float32),  # bf16 given as f32
        "arg4": rng.standard_normal((64, 128)).astype(ml_dtypes.bfloat16).view(np.uint16),  # raw bits
        "arg5": np.full(128, 0.05, dtype=np.float32),
        "arg6": np.full(128, 0.1, dtype=np.float32),
    }


def test_run_with_inputs_writes_the_documented_npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "in.npz", **layer_inputs(4, rng))
    r = tool("qmmar-run", LAYER, "--world-size", 4, "--inputs", tmp_path / "in.npz", "--output", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    assert "ranks identical: yes" in r.stdout
    with np.load(tmp_path / "out.npz") as out:
        assert out.files == ["result0"]
        assert out["result0"].shape == (4, 64, 128) and out["result0"].dtype == np.float32
        # bf16 written as f32 exactly
        assert np.array_equal(out["result0"], out["result0"].astype(ml_dtypes.bfloat16).astype(np.float32))


def test_fused_run_matches_unfused_run_from_the_cli(tmp_path):
    fused = tmp_path / "fused.mlir"
    r = tool("qmmar-opt", LAYER, "-p", "fuse-quant-matmul-all-reduce", "-o", fused)
    assert r.returncode == 0, r.stderr
    outs = []
    for program in (LAYER, fused):
        out = tmp_path / f"{program.stem}.npz"
        assert tool("qmmar-run", program, "-w", 4, "--random-inputs", 7, "-o", out).returncode == 0
        outs.append(np.load(out)["result0"])
    assert np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))


def test_run_example_with_random_inputs():
    r = tool("qmmar-run", EXAMPLE, "--world-size", 8, "--random-inputs", 1)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("@main on 8 ranks: 2 result(s)")


@pytest.mark.parametrize(
    "arrays, message",
    [({"arg0": np.zeros((3, 64, 256), np.int8)}, "arg0 has shape [3, 64, 256]"),
     ({"arg0": np.zeros((64, 256), np.int16)}, "arg0 has dtype int16, expected int8"),
     ({"x": np.zeros(1)}, "expected arrays arg0..arg0, found ['x']")],
)  # fmt: skip
def test_run_rejects_bad_inputs_in_one_line(tmp_path, arrays, message):
    full = layer_inputs(4, np.random.default_rng(0))
    full = {k: v for k, v in full.items() if k not in arrays and "x" not in arrays} | arrays
    np.savez(tmp_path / "in.npz", **full)
    r = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "in.npz")
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_run_world_size_mismatch_names_the_op():
    r = tool("qmmar-run", LAYER, "-w", 2, "--random-inputs", 0)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"{LAYER}:11:3: error: 'qmm.alltoall' op on rank 0: world_size is 4, "
                                "but the program runs on 2 ranks")  # fmt: skip


def test_run_usage_error_is_exit_2():
    assert tool("qmmar-run", LAYER).returncode == 2


@pytest.mark.parametrize(
    "pipeline",
    [
        "no-such-pass",
        "fuse-quant-matmul-all-reduce{bogus=1}",
        "fuse-quant-matmul-all-reduce{min-m=abc}",
        "fuse-quant-matmul-all-reduce{",
    ],
)
def test_opt_bad_pipeline_is_usage_exit_2(pipeline):
    r = tool("qmmar-opt", EXAMPLE, "-p", pipeline)
    assert r.returncode == 2 and r.stderr.startswith("qmmar-opt: error: ")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["missing.mlir"], [ROOT / "tests/lit/inputs/malformed.mlir"],
                                  [ROOT / "tests/lit/inputs/wrong-type.mlir"]])  # fmt: skip
def test_opt_bad_input_exit_1_one_line(args):
    r = tool("qmmar-opt", *args)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ": error: " in r.stderr


def test_check_exit_codes(tmp_path):
    policy = ROOT / "tests/lit/fuse/policy.mlir"
    assert tool("qmmar-check", policy).returncode == 3
    r = tool("qmmar-check", EXAMPLE, "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "2 chain(s): 1 legal to fuse, 1 not" in r.stdout
    assert (tmp_path / "r.json").read_text().count('"location"') == 2
    assert tool("qmmar-check", "missing.mlir").returncode == 1
