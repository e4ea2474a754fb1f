"""qmmar-run on an imported PyTorch program, opaque `torch.*` ops included: weights and
activations from two files, the output PyTorch eager's bit for bit; and one clear line when
PyTorch is missing or an op is neither qmmar's nor PyTorch's."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_models as tm  # noqa: E402

from helpers import same_bits, tool  # noqa: E402
from qmmar import import_program  # noqa: E402
from qmmar.frontends.torch import weight_arrays  # noqa: E402

VARIANT, WORLD_SIZE, SEED = "bf16-dynamic", 4, 5


@pytest.fixture(scope="module")
def imported_block(tmp_path_factory):
    """The decoder block imported by qmmar-import; every rank's weights and inputs in two files."""
    out = tmp_path_factory.mktemp("block")
    torch.export.save(tm.exported(VARIANT, WORLD_SIZE), out / "block.pt2")
    r = subprocess.run([sys.executable, "-m", "qmmar.cli.import_torch", out / "block.pt2", "-o", out / "block.mlir",
                        "-w", str(WORLD_SIZE)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    program = tm.imported(VARIANT, WORLD_SIZE)
    np.savez(out / "weights.npz", **weight_arrays(program, tm.rank_states(VARIANT, WORLD_SIZE)))
    np.savez(out / "activations.npz", **tm.activation_arrays(program, tm.rank_inputs(VARIANT, WORLD_SIZE, SEED)))
    return out


def test_qmmar_run_runs_the_imported_block_with_its_torch_ops(imported_block):
    out = imported_block
    mlir = (out / "block.mlir").read_text()
    assert '"torch.aten.scaled_dot_product_attention"' in mlir
    r = tool("qmmar-run", out / "block.mlir", "-w", WORLD_SIZE, "--inputs", out / "weights.npz",
             "--inputs", out / "activations.npz", "-o", out / "result.npz")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"@main on {WORLD_SIZE} ranks: 1 result(s)")
    envs = tm.eager_values(VARIANT, WORLD_SIZE, SEED)  # the all-reduces as SEMANTICS.md sums: f32, rank order
    output = next(n for n in tm.exported(VARIANT, WORLD_SIZE).graph.nodes if n.op == "output").args[0][0]
    eager = np.stack([env[output].float().numpy() for env in envs])
    assert same_bits(np.load(out / "result.npz")["result0"], eager)


def test_ideal_runs_the_fused_block_with_its_torch_ops(imported_block):
    out = imported_block
    fused = tool("qmmar-opt", out / "block.mlir", "-p", "fuse-quant-matmul-all-reduce",
                 "-o", out / "fused.mlir")  # fmt: skip
    assert fused.returncode == 0, fused.stderr
    r = tool("qmmar-run", out / "fused.mlir", "-w", WORLD_SIZE, "--inputs", out / "weights.npz",
             "--inputs", out / "activations.npz", "--ideal")  # fmt: skip
    assert r.returncode == 0, r.stderr
    [figure] = [line for line in r.stdout.splitlines() if " mc2 op " in line]  # the fused o_proj, measured
    assert figure.startswith(f"{out / 'fused.mlir'}:")


def test_without_pytorch_a_torch_op_is_one_line(imported_block):
    out = imported_block
    script = ("import sys; sys.modules['torch'] = None\nfrom qmmar.cli.run import main\n"
              f"sys.exit(main([{str(out / 'block.mlir')!r}, '-w', '4', '--random-inputs', '1']))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("examples/torch/tp_decoder.py:") and line.endswith("pip install 'qmmar[torch]'")
    assert "error: torch.aten.to.dtype runs through PyTorch, which cannot be imported" in line


def test_an_unregistered_op_that_is_not_torch_is_one_line(tmp_path):
    body = '  %0 = "foo.bar"(%x) : (tensor<2xf32>) -> tensor<2xf32>\n  func.return %0 : tensor<2xf32>\n'
    (tmp_path / "foo.mlir").write_text("func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {\n" + body + "}\n")
    r = tool("qmmar-run", tmp_path / "foo.mlir", "-w", 1, "--random-inputs", 1)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"{tmp_path / 'foo.mlir'}:2:3: error: Operation foo.bar is not registered "
                                             "(qmmar runs qmm, mc2, func, arith and tensor ops, and the torch.* ops of "
                                             "an imported program)"]  # fmt: skip


def test_import_program_is_public_and_lazy():
    module = import_program(tm.exported(VARIANT, WORLD_SIZE), world_size=WORLD_SIZE, group_map={"0": "tp"})
    assert sum(op.name == "qmm.all_reduce" for op in module.walk()) == 2
    probe = "import sys, qmmar; qmmar.import_program; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
