"""qmmar-import as a script sees it: the output, the remarks at the Python lines after fusion,
the weights file, and one clear line with a documented exit code for every bad input."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_models as tm  # noqa: E402

from helpers import same_bits  # noqa: E402
from qmmar.frontends.torch import program_state, weight_arrays  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOWN_PROJ_LINE = tm.source_line(r"torch\._int_mm\(")


def tool(module, *args):
    return subprocess.run([sys.executable, "-m", f"qmmar.cli.{module}", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip


def saved(tmp_path, variant, world_size) -> Path:
    path = tmp_path / f"{variant}-w{world_size}.pt2"
    torch.export.save(tm.exported(variant, world_size), path)
    return path


def one_error_line(r, code=1) -> str:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_import_then_fuse_remarks_at_the_python_line(tmp_path):
    program = saved(tmp_path, "bf16-dynamic", 8)
    out, weights = tmp_path / "block.mlir", tmp_path / "weights.npz"
    r = tool("import_torch", program, "-o", out, "--world-size", 8, "--group-map", "0=tp", "--weights", weights)
    assert r.returncode == 0, r.stderr
    assert "11 arguments (inputs: arg10 hidden); 12 qmm ops" in r.stderr and "2 chain(s) to judge" in r.stderr
    text = out.read_text()
    assert 'loc("examples/torch/tp_decoder.py":' in text and '"torch.aten.scaled_dot_product_attention"' in text
    mlir_opt = shutil.which("mlir-opt-19") or shutil.which("mlir-opt")
    if mlir_opt:  # the imported program, opaque ops included, in MLIR's generic form
        generic = tool("opt", out, "--allow-unregistered-dialect", "--print-op-generic").stdout
        check = subprocess.run([mlir_opt, "--allow-unregistered-dialect"], input=generic,
                               capture_output=True, text=True)  # fmt: skip
        assert check.returncode == 0, check.stderr
    r = tool("opt", out, "-p", "fuse-quant-matmul-all-reduce")  # qmmar-import's output, read without flags
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"examples/torch/tp_decoder.py:{DOWN_PROJ_LINE}:0 (down_proj): remark: not fused: "
                               "[MC2-SCALE-DTYPE]")  # fmt: skip
    assert r.stdout.count("mc2.quant_matmul_all_reduce") == 1
    imported = tm.imported("bf16-dynamic", 8)
    expected = weight_arrays(imported, [program_state(tm.exported("bf16-dynamic", 8))])
    with np.load(weights) as npz:
        assert sorted(npz.files) == sorted(expected) == [f"arg{i}" for i in range(10)]
        assert all(same_bits(npz[name], expected[name]) for name in expected)


def test_an_imported_program_without_opaque_ops_runs_with_qmmar_run(tmp_path):
    variant, w, seed = "int8-comm", 4, 2
    out = tmp_path / "layer.mlir"
    assert tool("import_torch", saved(tmp_path, variant, w), "-o", out, "-w", w).returncode == 0
    imported = tm.imported(variant, w)
    arrays = weight_arrays(imported, tm.rank_states(variant, w)) | tm.activation_arrays(
        imported, tm.rank_inputs(variant, w, seed)
    )
    np.savez(tmp_path / "inputs.npz", **arrays)
    r = tool("run", out, "-w", w, "--inputs", tmp_path / "inputs.npz", "-o", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    envs = tm.eager_values(variant, w, seed)
    output = next(n for n in tm.exported(variant, w).graph.nodes if n.op == "output").args[0][0]
    eager = np.stack([env[output].float().numpy() for env in envs])
    assert same_bits(np.load(tmp_path / "out.npz")["result0"], eager)


def test_not_a_pt2_file(tmp_path):
    (tmp_path / "model.pt2").write_text("not a zip archive")
    line = one_error_line(tool("import_torch", tmp_path / "model.pt2"))
    assert line.endswith("model.pt2: error: not a torch.export program: a .pt2 file is a zip archive written by "
                         "torch.export.save")  # fmt: skip
    assert "cannot read the input: No such file" in one_error_line(tool("import_torch", tmp_path / "none.pt2"))


def test_a_group_that_cannot_be_resolved(tmp_path):
    line = one_error_line(tool("import_torch", saved(tmp_path, "f16-static", 2)))
    assert line.startswith("examples/torch/tp_decoder.py:")
    assert "error: cannot resolve the process group '0'" in line and "--world-size" in line


class NoChain(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.silu(x) * 2


def test_a_program_with_no_chain_is_imported_and_says_so(tmp_path):
    torch.export.save(torch.export.export(NoChain(), (torch.randn(4, 8),)), tmp_path / "silu.pt2")
    r = tool("import_torch", tmp_path / "silu.pt2", "-o", tmp_path / "silu.mlir")
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("silu.pt2: warning: no quantised matmul + all-reduce chain: "
                                                      "nothing for MC2 to fuse")  # fmt: skip
    assert '"torch.aten.silu"' in (tmp_path / "silu.mlir").read_text()


torch.library.define("qmmar_test::mystery", "(Tensor x) -> Tensor")
torch.library.impl("qmmar_test::mystery", "cpu")(lambda x: x + 1)
torch.library.register_fake("qmmar_test::mystery")(lambda x: torch.empty_like(x))


class Mystery(torch.nn.Module):
    def forward(self, x):
        return torch.ops.qmmar_test.mystery(x)


def test_an_unknown_op(tmp_path):
    torch.export.save(torch.export.export(Mystery(), (torch.randn(4),)), tmp_path / "mystery.pt2")
    line = one_error_line(tool("import_torch", tmp_path / "mystery.pt2"))
    assert line.endswith("mystery.pt2: error: the program calls torch.ops.qmmar_test.mystery.default, which "
                         "no library in this process defines: load the module that registers it with --library "
                         "MODULE")  # fmt: skip


class DynamicView(torch.nn.Module):
    def forward(self, x):
        return (x * 2).view(2, -1, 8)


def test_a_dynamic_dim_that_cannot_be_imported(tmp_path):
    m = torch.export.Dim("m", min=2, max=512)
    program = torch.export.export(DynamicView(), (torch.randn(8, 8),), dynamic_shapes=({0: 2 * m},))
    torch.export.save(program, tmp_path / "dynamic.pt2")
    line = one_error_line(tool("import_torch", tmp_path / "dynamic.pt2"))
    assert line.startswith("tests/test_torch_cli.py:") and "expanding to the dynamic shape" in line


def test_bad_usage(tmp_path):
    r = tool("import_torch", tmp_path / "x.pt2", "--group-map", "tp")
    assert r.returncode == 2 and "expected TORCH_GROUP=NAME" in r.stderr
    r = tool("import_torch", "--help")
    assert r.returncode == 0 and "exit codes: 0 imported; 1 bad input" in r.stdout


def test_a_zip_that_is_not_a_torch_export_says_what_is_wrong(tmp_path):
    with zipfile.ZipFile(tmp_path / "zip.pt2", "w") as z:
        z.writestr("notes.txt", "not a program")
    line = "not a torch.export program: file in archive is not in a subdirectory: notes.txt"
    assert one_error_line(tool("import_torch", tmp_path / "zip.pt2")) == f"{tmp_path / 'zip.pt2'}: error: {line}"
    from_stdin = subprocess.run([sys.executable, "-m", "qmmar.cli.import_torch", "-"], capture_output=True,
                                input=(tmp_path / "zip.pt2").read_bytes())  # fmt: skip
    assert from_stdin.returncode == 1
    assert from_stdin.stderr.decode() == f"<stdin>: error: {line}\n"


def test_a_program_from_standard_input_or_named_anything(tmp_path):
    """`-`, and a file whose name does not end in .pt2 (torch would warn of it): the same
    program, and on stderr the summary alone."""
    program = saved(tmp_path, "int8-comm", 2)
    renamed = program.rename(tmp_path / "int8-comm.bin")
    from_file = tool("import_torch", renamed, "-w", 2)
    from_stdin = subprocess.run([sys.executable, "-m", "qmmar.cli.import_torch", "-", "-w", "2"], cwd=ROOT,
                                input=renamed.read_bytes(), capture_output=True)  # fmt: skip
    assert from_file.returncode == from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout.decode() == from_file.stdout
    (summary,) = from_stdin.stderr.decode().splitlines()
    assert summary.startswith("<stdin>: 7 arguments (inputs: arg5 x, arg6 residual); 9 qmm ops, 0 opaque ops")
    (summary,) = from_file.stderr.splitlines()
    assert summary.startswith(f"{renamed}: 7 arguments")


@pytest.mark.parametrize("flag, what", [("-o", "the output"), ("--weights", "the weights")])
def test_an_unwritable_output_is_named_before_the_import(tmp_path, flag, what):
    path = tmp_path / "missing" / "out"
    r = tool("import_torch", tmp_path / "none.pt2", flag, path)
    assert one_error_line(r) == f"{path}: error: cannot write {what}: No such file or directory"
