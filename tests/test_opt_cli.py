"""qmmar-opt and what every tool shares: exit codes and one-line errors for bad input,
--version, `-` for standard input, --help that leads with qmmar, the installed headers."""

import subprocess
import sys
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

import qmmar
from helpers import tool
from qmmar.cli import opt
from qmmar.cli.opt import located

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "tests" / "lit" / "inputs"
LAYER = ROOT / "examples" / "layer.mlir"
BAD = ["malformed", "unknown-op", "wrong-type", "not-utf8", "dense-paren", "unclosed-quote", "world-size-type",
       "bad-reassociation", "does-not-exist"]  # fmt: skip


@pytest.mark.parametrize("name", BAD)
def test_every_bad_input_is_exit_1_and_one_located_line(name):
    """tests/lit/driver/bad-input.mlir checks each line's words."""
    r = tool("qmmar-opt", INPUTS / f"{name}.mlir", timeout=60)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"{INPUTS / name}.mlir:") and ": error: " in r.stderr


@pytest.mark.parametrize("output, reason", [("missing/x.mlir", "No such file or directory"), (".", "Is a directory")])
def test_an_unwritable_output_is_named(tmp_path, output, reason):
    r = tool("qmmar-opt", LAYER, "-o", tmp_path / output)
    assert (r.returncode, r.stderr) == (1, f"{tmp_path / output}: error: cannot write the output: {reason}\n")


def test_deep_nesting_is_one_located_line(tmp_path):
    deep = tmp_path / "deep.mlir"
    deep.write_text("builtin.module {" * 5000 + "}" * 5000)
    r = tool("qmmar-opt", deep)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{deep}:1:")
    assert r.stderr.endswith(": error: nested too deeply: Python's recursion limit (10000) is reached here\n")


def test_a_pass_error_carrying_its_location_is_not_located_twice():
    err = PassFailedException("f.mlir:2:3: unfuse-mc2 cannot pad a dynamic leading dimension")
    assert located(err, "f.mlir") == "f.mlir:2:3: error: unfuse-mc2 cannot pad a dynamic leading dimension"
    assert located(PassFailedException("f.mlir:2:3: error: x"), "f.mlir") == "f.mlir:2:3: error: x"
    assert located(PassFailedException("no location"), "f.mlir") == "f.mlir: error: no location"


def test_a_failing_pass_is_one_located_line(tmp_path):
    dynamic = tmp_path / "dyn.mlir"
    dynamic.write_text("""\
func.func @f(%x1: tensor<?x8xi8>, %x2: tensor<8x16xi8>, %s: tensor<16xbf16>, %c: tensor<16xbf16>) -> tensor<?x16xbf16> {
  %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<16xbf16>)
    comm_quant_scale_1(%c : tensor<16xbf16>) comm_quant_scale_2(%c : tensor<16xbf16>)
    on "tp" world_size = 2 : tensor<?x8xi8>, tensor<8x16xi8> -> tensor<?x16xbf16>
  func.return %r : tensor<?x16xbf16>
}
""")  # fmt: skip
    r = tool("qmmar-opt", dynamic, "-p", "unfuse-mc2")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"{dynamic}:2:3: error: ") and r.stderr.count(f"{dynamic}") == 1


@pytest.mark.parametrize("name", ["qmmar-opt", "qmmar-run", "qmmar-check"])
def test_every_tool_has_a_version(name):
    r = tool(name, "--version")
    assert r.returncode == 0
    assert r.stdout.startswith(f"{name} {qmmar.__version__} (xDSL ")


@pytest.mark.parametrize(
    "name, args", [("qmmar-opt", []), ("qmmar-check", []), ("qmmar-run", ["-w", 4, "--random-inputs", 0])]
)
def test_every_tool_reads_standard_input_as_dash(name, args):
    from_file = tool(name, LAYER, *args)
    from_stdin = tool(name, "-", *args, stdin=LAYER.read_bytes())
    assert from_stdin.returncode == from_file.returncode == 0, from_stdin.stderr
    if name == "qmmar-run":  # the run time differs
        assert from_stdin.stdout.splitlines()[1:] == from_file.stdout.splitlines()[1:]
    else:
        assert from_stdin.stdout == from_file.stdout.replace(str(LAYER), "<stdin>")


def test_errors_on_standard_input_are_located_in_stdin():
    r = tool("qmmar-opt", "-", stdin=(INPUTS / "wrong-type.mlir").read_bytes())
    assert r.stderr == "<stdin>:2:3: error: 'qmm.quant' op x and scale must both be f16 or both bf16\n"


def test_help_leads_with_qmmars_passes_and_options():
    r = tool("qmmar-opt", "--help")
    assert r.returncode == 0
    text = r.stdout
    ours = text.index("fuse-quant-matmul-all-reduce{")
    assert ours < text.index("options:") < text.index("xDSL's own passes (-p):") < text.index("canonicalize")
    assert "min-m=" in text and "qmmar targets (-t): aclnn-cpp" in text


def test_startup_builds_no_help_and_imports_no_pass():
    """The --help epilog imports every pass (and numpy): it is built only for --help."""
    probe = ("import sys; from qmmar.cli.opt import QmmarOptMain; QmmarOptMain(['x.mlir']); "
             "print(sorted(m for m in sys.modules if m.startswith('qmmar.passes') or m == 'numpy'))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_print_include_dir_holds_the_headers():
    r = tool("qmmar-opt", "--print-include-dir")
    assert r.returncode == 0
    include = Path(r.stdout.strip())
    assert (include / "aclnnop" / "aclnn_quant_matmul_all_reduce_v3.h").is_file()
    assert (include / "aclnn" / "acl_meta.h").is_file()


@pytest.mark.parametrize("passes, verifications", [([], 1), (["-p", "fuse-quant-matmul-all-reduce"], 2)])
def test_the_module_is_verified_once_before_the_passes_and_once_after_each(monkeypatch, capsys, passes, verifications):
    calls = []
    monkeypatch.setattr(opt, "verify", calls.append)  # qmmar's located verifier
    monkeypatch.setattr(ModuleOp, "verify", lambda *_: pytest.fail("xDSL's own verification must not run"))
    assert opt.run([str(LAYER), *passes]) == 0
    assert len(calls) == verifications
