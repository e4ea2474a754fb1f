"""Each message says what is wrong and where, with its exit code (issue 21's list), and no
message of xDSL's loses its reason: a generated test over mutated types checks that no
error line ends in a colon, the head xDSL writes before the reason."""

import io
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.printer import Printer

from helpers import ROOT, tool
from programs import chain_specs, unfused_program
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError, one_line
from qmmar.source import parse_module

LAYER = ROOT / "examples" / "layer.mlir"
UNDEFINED = """func.func @main(%a: tensor<4xi8>) -> tensor<4xi8> {
  %0 = arith.addi %a, %nope : tensor<4xi8>
  func.return %0 : tensor<4xi8>
}
// the end
"""
MISSING_GT = """func.func @main(%a: tensor<4xi8>) -> tensor<4xi8> {
  %0 = arith.addi %a, %a : tensor<4xi8   // a comment
  func.return %0 : tensor<4xi8>
}
"""
UNDEFINED_BLOCK = """func.func @main(%a: i1) {
  cf.br ^bb9
^bb1:
  func.return
}
"""
WRONG_OPERAND = """func.func @main(%a: tensor<16x16xbf16>, %b: tensor<16x8xbf16>) -> tensor<16x16xbf16> {
  %0 = "qmm.add"(%a, %b) : (tensor<16x16xbf16>, tensor<16x8xbf16>) -> tensor<16x16xbf16>
  func.return %0 : tensor<16x16xbf16>
}
"""
ZERO_SIZE = """func.func @main(%x: tensor<9x1x0xi8>) -> tensor<?x0xi8> {
  %0 = tensor.collapse_shape %x [[0, 1], [2]] : tensor<9x1x0xi8> into tensor<?x0xi8>
  func.return %0 : tensor<?x0xi8>
}
"""


@pytest.mark.parametrize("text", ["", "// only a comment\n", "#map = affine_map<(d0) -> (d0)>\n"])
def test_an_input_without_ops_is_an_empty_module(tmp_path, text):
    (tmp_path / "e.mlir").write_text(text)
    r = tool("qmmar-opt", tmp_path / "e.mlir")
    assert (r.returncode, r.stdout, r.stderr) == (0, "builtin.module {\n}\n\n", "")


def test_no_implicit_module_needs_one_op(tmp_path):
    (tmp_path / "e.mlir").write_text("")
    r = tool("qmmar-opt", "--no-implicit-module", "e.mlir", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (
        1,
        "e.mlir:1:1: error: source must contain a single top-level operation, found: 0\n",
    )


@pytest.mark.parametrize(
    "text, error",
    [
        (UNDEFINED, "t.mlir:2:23: error: use of undeclared SSA value name %nope"),
        (MISSING_GT, "t.mlir:2:39: error: Expected '>' after builtin parameter list"),
        (UNDEFINED_BLOCK, 't.mlir:2:9: error: reference to block "^bb9" without implementation'),
        (WRONG_OPERAND, "t.mlir:2:3: error: 'qmm.add' op operand 'rhs' at position 1 does not verify: "
                        "attribute tensor<16x16xbf16> expected from variable 'T', but got tensor<16x8xbf16>"),
    ],
)  # fmt: skip
def test_a_parse_or_verify_error_is_where_the_fault_is(tmp_path, text, error):
    (tmp_path / "t.mlir").write_text(text)
    r = tool("qmmar-opt", "t.mlir", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", error + "\n")


def test_an_unknown_pass_is_named_with_the_nearest():
    r = tool("qmmar-opt", "-p", "fuse-quant-matmul-allreduce", LAYER)
    assert (r.returncode, r.stderr) == (2, "qmmar-opt: error: unknown pass 'fuse-quant-matmul-allreduce' in -p: "
                                           "did you mean 'fuse-quant-matmul-all-reduce'? qmmar-opt --help lists "
                                           "the passes\n")  # fmt: skip


def test_one_rank_and_a_result_without_elements(tmp_path):
    (tmp_path / "z.mlir").write_text(ZERO_SIZE)
    r = tool("qmmar-run", "z.mlir", "-w", "1", "--random-inputs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"@main on 1 rank: 1 result\(s\) in [0-9.]+ ms\n"
                        r"result0: int8 \[9, 0\] per rank; ranks identical: yes; no elements\n", r.stdout)  # fmt: skip


@pytest.mark.parametrize("tool_args", [("qmmar-compare", "{f}", "{f}"),
                                       ("qmmar-check", "--html", "out.html", "--run", "{f}", str(LAYER))])  # fmt: skip
def test_an_npz_of_python_objects_is_refused_in_qmmars_words(tmp_path, tool_args):
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    r = tool(*(a.format(f="obj.npz") for a in tool_args), cwd=tmp_path)
    assert r.returncode in (1, 2) and "allow_pickle" not in r.stderr
    assert r.stderr.endswith("obj.npz: error: a is an array of Python objects; only numbers are read\n")


def test_ir_between_passes_is_mlir_whatever_the_target():
    r = tool("qmmar-opt", LAYER, "--print-between-passes", "-t", "aclnn-cpp",
             "-p", "fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn,lower-qmm-to-aclnn")  # fmt: skip
    assert (r.returncode, r.stderr) == (0, "")
    between, _, result = r.stdout.rpartition("\n\n\n\n")
    assert "IR after lower-mc2-to-aclnn:\nbuiltin.module attributes {qmmar.target" in between
    assert "aclnn.create_tensor" in between
    assert "aclnnQuantMatmulAllReduceV3" in result and "builtin.module" not in result


TYPE = re.compile(r"tensor<([0-9x?]*)x(bf16|f16|f32|i8|i32)>")


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs(), data=st.data())
def test_a_wrong_type_keeps_xdsls_reason(spec, data):
    """One type of a generated chain changed wherever the generic form spells it (so that the
    text parses and the verifiers judge it): the error, if any, is one line that does not end
    at xDSL's head (`... does not verify:`) but says why."""
    text = printed_generic(parse_module(qmmar_context(), unfused_program(spec), "t.mlir"))
    m = data.draw(st.sampled_from(sorted({(t[1], t[2]) for t in TYPE.finditer(text)})))
    old = f"tensor<{m[0]}x{m[1]}>"
    new = data.draw(st.sampled_from([f"tensor<{m[0]}x{e}>" for e in ("bf16", "f16", "f32", "i8", "i32") if e != m[1]]
                                    + [f"tensor<{m[0]}x3x{m[1]}>", f"tensor<7x{m[1]}>"]))  # fmt: skip
    try:
        parse_module(qmmar_context(), text.replace(old, new), "t.mlir")
    except LocatedError as err:
        assert "\n" not in str(err) and not str(err).endswith(":"), str(err)
        assert not re.search(r"verify:? *$", err.message), str(err)


def printed_generic(module) -> str:
    out = io.StringIO()
    Printer(stream=out, print_generic_format=True).print_op(module)
    return out.getvalue()


def test_one_line_joins_every_head_to_its_reason():
    err = Exception(
        "operand 'x' does not verify:\nparameter 'shape' does not verify:\n  expected 4, got 5\ndump:\n%0 = ..."
    )
    assert one_line(err) == "operand 'x' does not verify: parameter 'shape' does not verify: expected 4, got 5"
    assert one_line(Exception("a:")) == "a" and one_line(Exception()) == "Exception"


def test_a_program_for_more_ranks_run_on_one_names_one_rank():
    """'1 ranks' was the run summary's; the interpreter's world-size mismatch said it too."""
    from helpers import parse, run
    from qmmar.interpreter.functions import RunError

    module = parse("""func.func @main(%x: tensor<4x4xbf16>) -> tensor<4x4xbf16> {
  %r = qmm.all_reduce %x on "tp" world_size = 2 : tensor<4x4xbf16>
  func.return %r : tensor<4x4xbf16>
}
""")
    with pytest.raises((RunError, LocatedError), match="world_size is 2, but the program runs on 1 rank$"):
        run(module, [np.zeros((4, 4), np.float32)], 1)
