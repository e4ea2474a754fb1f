"""The PyTorch sequence-parallel example (examples/torch/sequence_parallel.py) at W = 2, 4 and 8:
exported and imported, both of its chains fuse (the reduce-scatter's into
mc2.quant_matmul_reduce_scatter, the all-gathers' into mc2.all_gather_quant_matmul), and the
fused program computes the unfused one's bits and PyTorch eager's, on threads and under
mpiexec; its documented command line (qmmar-import, then qmmar-opt -p fuse-mc2) fuses both;
torch.compile(backend="qmmar") on W gloo processes runs both chains as their custom ops, the
output eager's bit for bit."""

import functools
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_models as tm  # noqa: E402

from helpers import ROOT, same_bits  # noqa: E402
from qmmar.frontends.torch import ImportedProgram, import_exported_program, weight_arrays  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.interpreter.values import for_file  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse  # noqa: E402

sp = importlib.import_module("sequence_parallel")  # examples/torch: torch_models puts it on the path
run_ranks = importlib.import_module("ranks").run_ranks  # W gloo processes, bounded in time
SEED = 3
FUSED = [("mc2.quant_matmul_reduce_scatter", True), ("mc2.all_gather_quant_matmul", True)]
CUSTOM_OPS = ["quant_matmul_reduce_scatter", "all_gather_quant_matmul"]
SOURCE = "examples/torch/sequence_parallel.py"


@functools.cache
def exported(w: int) -> torch.export.ExportedProgram:
    return sp.export(w)


def imported(w: int) -> ImportedProgram:
    return import_exported_program(exported(w))


def states(w: int) -> list[dict[str, torch.Tensor]]:
    return [tm.state(sp.build(r, SEED)) for r in range(w)]


def inputs(w: int) -> list[tuple[torch.Tensor, ...]]:
    return [sp.example_inputs(w, SEED, r) for r in range(w)]


def eager(w: int) -> np.ndarray:
    """Every rank's output, PyTorch eager node by node (the collectives by SEMANTICS.md), stacked."""
    envs = tm.lockstep_values(exported(w), states(w), inputs(w))
    output = next(n for n in exported(w).graph.nodes if n.op == "output").args[0][0]
    return np.stack([to_numpy(env[output]) for env in envs])


@pytest.mark.parametrize("w", [2, 4, 8])
def test_both_chains_fuse_and_compute_the_unfused_and_eager_bits_on_threads(w):
    unfused, program = imported(w), imported(w)
    assert [(v.kind, v.rewritten) for v in fuse(program.module, FuseOptions(soc="a2"))] == FUSED
    args = tm.rank_args(program, states(w), inputs(w))
    [expected], [actual] = tm.run(unfused.module, args, w), tm.run(program.module, args, w)
    assert expected.shape == (w, sp.ROWS * w, sp.COLUMNS)
    assert same_bits(actual, expected)
    assert same_bits(actual, eager(w))


def tool(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_the_documented_command_line_fuses_both_chains(tmp_path):
    helped = tool(sys.executable, ROOT / SOURCE, "--help")
    assert helped.returncode == 0, helped.stderr
    for documented in ("--world-size {2,4,8}", "--export PT2", "qmmar-opt sp.mlir -p 'fuse-mc2{remarks=all}'"):
        assert documented in helped.stdout
    program, out = tmp_path / "sp-w4.pt2", tmp_path / "sp.mlir"
    torch.export.save(exported(4), program)
    r = tool(sys.executable, "-m", "qmmar.cli.import_torch", program, "-o", out, "-w", 4)
    assert r.returncode == 0 and "2 chain(s) to judge" in r.stderr, r.stderr
    r = tool(sys.executable, "-m", "qmmar.cli.opt", out, "-p", "fuse-mc2{remarks=all}")
    assert r.returncode == 0, r.stderr
    row = tm.source_line(r"y = self\.row\.matmul\(", ROOT / SOURCE)  # where each chain starts
    gather = tm.source_line(r"c10d\.all_gather_into_tensor\(q,", ROOT / SOURCE)
    assert [line for line in r.stderr.splitlines() if ": remark: " in line] == [
        f"{SOURCE}:{row}:0: remark: fused into "
        "mc2.quant_matmul_reduce_scatter: qmm.matmul -> qmm.dequant -> qmm.reduce_scatter",
        f"{SOURCE}:{gather}:0: remark: fused into "
        "mc2.all_gather_quant_matmul: qmm.allgather -> qmm.allgather -> qmm.matmul -> qmm.dequant",
    ]
    assert r.stdout.count("mc2.quant_matmul_reduce_scatter") == r.stdout.count("mc2.all_gather_quant_matmul") == 1


@pytest.mark.parametrize("w", [2, 4, 8])
def test_under_mpiexec_the_fused_program_computes_the_threaded_unfused_bits(tmp_path, w):
    """qmmar-import, qmmar-opt -p fuse-mc2, then qmmar-run: the unfused program on threads,
    the fused one on W processes under mpiexec."""
    pytest.importorskip("mpi4py", reason="needs the mpi extra")
    torch.export.save(exported(w), tmp_path / "sp.pt2")
    program = imported(w)
    np.savez(tmp_path / "weights.npz", **weight_arrays(program, states(w)))
    np.savez(tmp_path / "activations.npz", **tm.activation_arrays(program, inputs(w)))
    run = [sys.executable, "-m", "qmmar.cli.run", "--progress", "none", "--inputs", "weights.npz",
           "--inputs", "activations.npz"]  # fmt: skip
    for job in ([sys.executable, "-m", "qmmar.cli.import_torch", "sp.pt2", "-o", "unfused.mlir", "-w", w],
                [sys.executable, "-m", "qmmar.cli.opt", "unfused.mlir", "-p", "fuse-mc2", "-o", "fused.mlir"],
                [*run, "unfused.mlir", "-w", w, "-o", "threads.npz"],
                [Path(sys.executable).parent / "mpiexec", "-n", w, *run, "fused.mlir", "-o", "mpi.npz"]):  # fmt: skip
        done = tool(*job, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "fused.mlir").read_text().count("mc2.") == 2
    done = tool(sys.executable, "-m", "qmmar.cli.compare", "threads.npz", "mpi.npz", cwd=tmp_path)
    assert done.returncode == 0 and "identical" in done.stdout, done.stdout + done.stderr
    assert same_bits(np.load(tmp_path / "mpi.npz")["result0"], for_file(eager(w)))


@pytest.mark.parametrize("w", [2, 4, 8])
def test_torch_compile_runs_both_chains_as_custom_ops_bit_for_bit(tmp_path, w):
    report = str(tmp_path / "sp-{rank}.json")
    ranks = run_ranks(sp.rank_main, w, SEED, {"inner": "eager", "report": report}, timeout=600)
    for r in range(w):
        verdicts = json.loads((tmp_path / f"sp-{r}.json").read_text())["verdicts"]
        assert [(v["rewritten"], v["fused_node"].removesuffix("_default")) for v in verdicts] == [
            (True, op) for op in CUSTOM_OPS
        ]
    compiled = np.stack([to_numpy(r[0]) for r in ranks])
    assert same_bits(compiled, np.stack([to_numpy(r[1]) for r in ranks]))  # eager, the contract's sums
    assert same_bits(compiled, eager(w))  # and node by node
