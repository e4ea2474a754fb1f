"""Custom ops from the user's own libraries (`--library MODULE`, a module name or a .py file) and
torch_npu's and vLLM's W8A8 ops, known by name: a program calling them imports, and qmmar-run
runs them (the npu and vLLM ones through qmmar's CPU stand-ins)."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import same_bits, tool  # noqa: E402

LIBRARY = """import torch
torch.library.define("qmmar_lib::plus_one", "(Tensor x) -> Tensor")
torch.library.impl("qmmar_lib::plus_one", "cpu")(lambda x: x + 1)
torch.library.register_fake("qmmar_lib::plus_one")(lambda x: torch.empty_like(x))
"""

EXPORT = """import sys, torch
sys.path.insert(0, {folder!r})
import my_ops
class PlusOne(torch.nn.Module):
    def forward(self, x):
        return torch.ops.qmmar_lib.plus_one(x) * 2
torch.export.save(torch.export.export(PlusOne(), (torch.randn(4, 8),)), {out!r})
"""


@pytest.fixture(scope="module")
def plus_one(tmp_path_factory):
    """A program calling a custom op of the user's library, exported in another process (this
    one never loads the library)."""
    folder = tmp_path_factory.mktemp("library")
    (folder / "my_ops.py").write_text(LIBRARY)
    out = folder / "plus_one.pt2"
    subprocess.run([sys.executable, "-c", EXPORT.format(folder=str(folder), out=str(out))], check=True)
    return folder


def test_library_by_file_imports_and_runs_the_program(plus_one):
    program, library = plus_one / "plus_one.pt2", plus_one / "my_ops.py"
    refused = tool("qmmar-import", program)
    assert refused.returncode == 1 and refused.stderr.strip().endswith("with --library MODULE")
    imported = tool("qmmar-import", program, "--library", library, "-o", plus_one / "p.mlir")
    assert imported.returncode == 3, imported.stderr  # imported; no chain to fuse in it
    assert '"torch.qmmar_lib.plus_one"' in (plus_one / "p.mlir").read_text()
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    np.savez(plus_one / "x.npz", arg0=x)
    run = tool("qmmar-run", plus_one / "p.mlir", "-w", 1, "--inputs", plus_one / "x.npz", "--library", library,
               "-o", plus_one / "y.npz")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert same_bits(np.load(plus_one / "y.npz")["result0"][0], (x + 1) * 2)


def test_a_library_that_does_not_load_is_one_line(plus_one):
    for name, reason in (("no_such_module_here", "ModuleNotFoundError"),
                         (str(plus_one / "missing.py"), "FileNotFoundError")):  # fmt: skip
        for cli in ("qmmar-import", "qmmar-run"):
            args = [plus_one / "plus_one.pt2"] if cli == "qmmar-import" else [plus_one / "p.mlir", "-w", 1,
                                                                               "--random-inputs", 0]  # fmt: skip
            r = tool(cli, *args, "--library", name)
            assert r.returncode == 1 and "Traceback" not in r.stderr
            [line] = r.stderr.strip().splitlines()
            assert line.startswith(f"{name}: error: cannot load the library: {reason}: "), line


class VllmAscendOps(torch.nn.Module):
    """Every torch_npu and vLLM op qmmar knows by name, in one program."""

    def forward(self, x, residual, gamma, scale, offset):
        y, _, _ = torch.ops.npu.npu_add_rms_norm(x, residual, gamma, 1e-6)
        q, token_scale = torch.ops.npu.npu_dynamic_quant(y)
        s = torch.ops.vllm.quantize(y, scale, 1 / scale, offset)
        t = torch.ops.npu.npu_quantize(y, scale, None, torch.int8, -1, True)  # (qint8: no .pt2 form)
        return q, token_scale, s, t


def test_npu_and_vllm_ops_load_without_a_library_and_run_on_the_stand_ins(tmp_path):
    import qmmar.frontends.torch.standins  # noqa: F401  (to export here)

    g = torch.Generator().manual_seed(3)
    inputs = (torch.randn(8, 16, generator=g).to(torch.bfloat16), torch.randn(8, 16, generator=g).to(torch.bfloat16),
              torch.rand(16, generator=g).to(torch.bfloat16), torch.full((16,), 0.03, dtype=torch.bfloat16),
              torch.zeros(16, dtype=torch.bfloat16))  # fmt: skip
    torch.export.save(torch.export.export(VllmAscendOps(), inputs), tmp_path / "ops.pt2")
    imported = tool("qmmar-import", tmp_path / "ops.pt2", "-o", tmp_path / "ops.mlir")  # a process without them
    assert imported.returncode == 3, imported.stderr
    np.savez(tmp_path / "in.npz", **{f"arg{i}": t.float().numpy() for i, t in enumerate(inputs)})
    run = tool("qmmar-run", tmp_path / "ops.mlir", "-w", 1, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "o.npz")
    assert run.returncode == 0, run.stderr
    got = np.load(tmp_path / "o.npz")
    for i, want in enumerate(VllmAscendOps()(*inputs)):
        assert same_bits(got[f"result{i}"][0], want.float().numpy() if want.is_floating_point() else want.numpy())
