"""qmmar-run on bad arguments, bad inputs and hostile environments: one line, the right exit
code, never a traceback."""

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_cli import LAYER, layer_inputs
from xdsl.dialects.builtin import UnregisteredOp

from helpers import tool
from qmmar.cli import run
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError
from qmmar.source import parse_module

ROOT = Path(__file__).resolve().parent.parent


def program(tmp_path: Path, text: str, name: str = "p.mlir") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_line(r) -> str:
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    return r.stderr.rstrip("\n")


@pytest.mark.parametrize(
    "args, message",
    [(["-w", "-3", "--random-inputs", "0"], "argument --world-size/-w: must be at least 1, got -3"),
     (["-w", "0", "--random-inputs", "0"], "argument --world-size/-w: must be at least 1, got 0"),
     (["-w", "x", "--random-inputs", "0"], "argument --world-size/-w: expected an integer, got 'x'"),
     (["-w", "2", "--random-inputs", "-1"], "argument --random-inputs: must be at least 0, got -1"),
     (["-w", "2", "--inputs", "-", "-"], "standard input (-) can be read once: by FILE or by one --inputs")],
)  # fmt: skip
def test_bad_usage_is_exit_2_with_argparse_line(args, message):
    r = tool("qmmar-run", args[-1] if args[-1] == "-" else LAYER, *(args[:-1] if args[-1] == "-" else args))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == f"qmmar-run: error: {message}"


@given(st.text(max_size=6), st.text(max_size=6))
@settings(max_examples=60, deadline=None)
def test_any_world_size_or_seed_text_is_usage_or_a_run(world_size, seed):
    """In-process: argparse's exit is SystemExit(2); nothing else may escape."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run.run([str(LAYER), "-w", world_size, "--random-inputs", seed])
        except SystemExit as exit:
            code = exit.code
    assert code in (0, 1, 2), err.getvalue()
    if code == 1:
        assert err.getvalue().startswith(f"{LAYER}:")  # world_size other than 4: the located op


def test_npy_file_as_inputs(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    r = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "x.npy")
    assert r.returncode == 1
    assert one_line(r) == (f"{tmp_path / 'x.npy'}: error: holds one array (an .npy file); --inputs reads an "
                           ".npz archive (numpy.savez) of arrays arg0, arg1, ...")  # fmt: skip


def test_text_file_as_inputs(tmp_path):
    (tmp_path / "x.npz").write_text("not an archive")
    r = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "x.npz")
    assert r.returncode == 1
    assert one_line(r).startswith(f"{tmp_path / 'x.npz'}: error: is not an .npz archive (numpy.savez): ")


def test_inputs_from_several_files_are_merged(tmp_path):
    arrays = layer_inputs(4, np.random.default_rng(0))
    np.savez(tmp_path / "all.npz", **arrays)
    np.savez(tmp_path / "weights.npz", **{k: v for k, v in arrays.items() if k in ("arg1", "arg2", "arg3")})
    np.savez(tmp_path / "activations.npz", **{k: v for k, v in arrays.items() if k not in ("arg1", "arg2", "arg3")})
    one = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "all.npz", "-o", tmp_path / "one.npz")
    two = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "weights.npz",
               "--inputs", tmp_path / "activations.npz", "-o", tmp_path / "two.npz")  # fmt: skip
    assert one.returncode == two.returncode == 0, two.stderr
    assert np.array_equal(np.load(tmp_path / "one.npz")["result0"], np.load(tmp_path / "two.npz")["result0"])


def test_an_argument_given_twice_is_an_error(tmp_path):
    arrays = layer_inputs(4, np.random.default_rng(0))
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez(tmp_path / "b.npz", arg3=arrays["arg3"])
    r = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "a.npz", "--inputs", tmp_path / "b.npz")
    assert r.returncode == 1
    assert one_line(r) == f"{tmp_path / 'b.npz'}: error: arg3 is given twice: also in {tmp_path / 'a.npz'}"


def test_a_bad_argument_names_the_file_it_came_from(tmp_path):
    arrays = layer_inputs(4, np.random.default_rng(0))
    np.savez(tmp_path / "a.npz", **{k: v for k, v in arrays.items() if k != "arg2"})
    np.savez(tmp_path / "b.npz", arg2=np.zeros(7, np.int32))
    r = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "a.npz", "--inputs", tmp_path / "b.npz")
    assert r.returncode == 1
    assert one_line(r) == (f"{tmp_path / 'b.npz'}: error: arg2 has shape [7]; expected tensor<128xi32> on every "
                           "rank, or (4,) + that shape, one slice per rank")  # fmt: skip


def test_program_and_inputs_from_stdin(tmp_path):
    np.savez(tmp_path / "in.npz", **layer_inputs(4, np.random.default_rng(0)))
    from_file = tool("qmmar-run", LAYER, "-w", 4, "--inputs", tmp_path / "in.npz")
    program_on_stdin = tool("qmmar-run", "-", "-w", 4, "--inputs", tmp_path / "in.npz", stdin=LAYER.read_bytes())
    inputs_on_stdin = tool("qmmar-run", LAYER, "-w", 4, "--inputs", "-", stdin=(tmp_path / "in.npz").read_bytes())
    summary = from_file.stdout.splitlines()[1]
    assert program_on_stdin.stdout.splitlines()[1] == inputs_on_stdin.stdout.splitlines()[1] == summary


def test_output_is_written_to_exactly_the_path_given(tmp_path):
    r = tool("qmmar-run", LAYER, "-w", 4, "--random-inputs", 0, "-o", tmp_path / "results.bin")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.bin"]
    assert np.load(tmp_path / "results.bin")["result0"].shape == (4, 64, 128)


@pytest.mark.parametrize("where", ["missing-dir/out.npz", "."])
def test_unwritable_output_fails_before_the_run(tmp_path, where):
    r = tool("qmmar-run", LAYER, "-w", 4, "--random-inputs", 0, "-o", tmp_path / where)
    assert r.returncode == 1
    reason = "No such file or directory" if "/" in where else "Is a directory"
    assert one_line(r) == f"{tmp_path / where}: error: cannot write the output: {reason}"


def test_shapes_too_large_for_memory(tmp_path):
    too_big_input = program(tmp_path, """\
func.func @main(%x: tensor<100000x100000xi8>) -> tensor<100000x100000xi8> {
  func.return %x : tensor<100000x100000xi8>
}
""")  # fmt: skip
    r = tool("qmmar-run", too_big_input, "-w", 8, "--random-inputs", 0)
    assert r.returncode == 1
    assert one_line(r).startswith(f"{too_big_input}:1:1: error: 'func.func' op arg0 of type "
                                  "tensor<100000x100000xi8> on 8 rank(s) does not fit in memory: ")  # fmt: skip
    too_big_result = program(tmp_path, """\
func.func @main(%x1: tensor<200000x1xi8>, %w: tensor<1x200000xi8>) -> tensor<200000x200000xi32> {
  %acc = qmm.matmul %x1, %w : (tensor<200000x1xi8>, tensor<1x200000xi8>) -> tensor<200000x200000xi32>
  func.return %acc : tensor<200000x200000xi32>
}
""")  # fmt: skip
    r = tool("qmmar-run", too_big_result, "-w", 2, "--random-inputs", 0)
    assert r.returncode == 1
    assert one_line(r).startswith(f"{too_big_result}:2:3: error: 'qmm.matmul' op on rank 0: out of memory: ")


def test_a_reader_that_leaves_early_is_exit_141_without_a_word():
    p = subprocess.Popen([sys.executable, "-m", "qmmar.cli.run", str(LAYER), "-w", "4", "--random-inputs", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    p.stdout.close()  # like `| head -0`: the pipe has no reader when the summary is printed
    assert p.wait(timeout=120) == 141
    assert p.stderr.read() == b""


def test_ctrl_c_is_exit_130_at_once():
    """SIGINT while the ranks are inside an op that never ends (a GEMM made to wait forever
    after sending it): the tool ends at once, whatever the machine's load."""
    code = (
        "import os, signal, sys, threading\n"
        "import qmmar.interpreter.functions as functions\n"
        "def gemm_forever(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    threading.Event().wait()\n"
        "functions.exact_matmul = gemm_forever\n"
        "sys.argv[0] = 'qmmar-run'\n"
        "from qmmar.cli.run import main\n"
        f"sys.exit(main([{str(LAYER)!r}, '-w', '4', '--random-inputs', '0']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)  # a hang's bound
    assert (r.returncode, r.stderr, r.stdout) == (130, "qmmar-run: interrupted\n", "")


def test_nan_and_inf_inputs_run_without_numpy_warnings(tmp_path):
    nan = program(tmp_path, """\
func.func @main(%x: tensor<4x8xbf16>, %s: tensor<8xbf16>) -> (tensor<4x8xbf16>, tensor<4x8xi8>) {
  %z = qmm.add %x, %x : tensor<4x8xbf16>
  %q = qmm.quant %z, %s : (tensor<4x8xbf16>, tensor<8xbf16>) -> tensor<4x8xi8>
  %r = qmm.all_reduce %z on "tp" world_size = 2 : tensor<4x8xbf16>
  func.return %r, %q : tensor<4x8xbf16>, tensor<4x8xi8>
}
""")  # fmt: skip
    x = np.full((4, 8), np.nan, np.float32)
    x[0, 0], x[1, 1], x[2, 2] = np.inf, -np.inf, 3e38
    np.savez(tmp_path / "in.npz", arg0=x, arg1=np.zeros(8, np.float32))
    r = tool("qmmar-run", nan, "-w", 2, "--inputs", tmp_path / "in.npz")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines()[1].endswith("ranks identical: yes; no finite value; non-finite 64")


def test_k_zero_is_the_empty_sum(tmp_path):
    k0 = program(tmp_path, """\
func.func @main(%x1: tensor<4x0xi8>, %x2: tensor<0x8xi8>, %b: tensor<8xi32>) -> tensor<4x8xi32> {
  %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<4x0xi8>, tensor<0x8xi8>, tensor<8xi32>) -> tensor<4x8xi32>
  func.return %acc : tensor<4x8xi32>
}
""")  # fmt: skip
    bias = np.arange(8, dtype=np.int32) - 4
    np.savez(tmp_path / "in.npz", arg0=np.zeros((4, 0), np.int8), arg1=np.zeros((0, 8), np.int8), arg2=bias)
    r = tool("qmmar-run", k0, "-w", 2, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "out.npz")["result0"], np.broadcast_to(bias, (2, 4, 8)))


def test_integer_constants_keep_every_bit(tmp_path):
    constants = program(tmp_path, """\
func.func @main() -> (tensor<2xui64>, tensor<2xi64>, tensor<3xi8>) {
  %u = arith.constant dense<[18446744073709551615, 9223372036854775808]> : tensor<2xui64>
  %i = arith.constant dense<[-9223372036854775808, 9223372036854775807]> : tensor<2xi64>
  %b = arith.constant dense<[-128, 127, 0]> : tensor<3xi8>
  func.return %u, %i, %b : tensor<2xui64>, tensor<2xi64>, tensor<3xi8>
}
""")  # fmt: skip
    r = tool("qmmar-run", constants, "-w", 1, "--random-inputs", 0, "-o", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npz")
    assert out["result0"][0].tolist() == [2**64 - 1, 2**63]
    assert out["result1"][0].tolist() == [-(2**63), 2**63 - 1]
    assert out["result2"][0].tolist() == [-128, 127, 0]


def test_a_dynamic_shape_is_checked_at_run_time_by_the_ops_own_rule(tmp_path):
    pertoken = program(tmp_path, """\
func.func @main(%x1: tensor<?x8xi8>, %x2: tensor<8x8xi8>, %s: tensor<8xf32>, %pt: tensor<?xf32>) -> tensor<?x8xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<?x8xi8>, tensor<8x8xi8>) -> tensor<?x8xi32>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<?x8xi32>, tensor<8xf32>, tensor<?xf32>) -> tensor<?x8xf16>
  func.return %y : tensor<?x8xf16>
}
""")  # fmt: skip
    np.savez(tmp_path / "in.npz", arg0=np.ones((4, 8), np.int8), arg1=np.ones((8, 8), np.int8),
             arg2=np.ones(8, np.float32), arg3=np.ones(5, np.float32))  # fmt: skip
    r = tool("qmmar-run", pertoken, "-w", 1, "--inputs", tmp_path / "in.npz")
    assert r.returncode == 1
    assert one_line(r) == (f"{pertoken}:3:3: error: 'qmm.dequant' op on rank 0: at run time: pertoken must be [m] "
                           "(m = b*s for a 3-D input) (operand shapes: x [4, 8], scale [8], pertoken [5])")  # fmt: skip


def per_rank_scale(inputs: dict, name: str, rank: int) -> dict:
    """`name` replicated on every rank but `rank`, where one element is twice as large."""
    w = inputs["arg0"].shape[0]
    scale = np.repeat(inputs[name][None], w, axis=0)
    scale[rank, 3] *= 2
    return inputs | {name: scale}


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("scale, name", [("arg5", "s1"), ("arg6", "s2")])
def test_communication_scales_must_agree_on_every_rank(tmp_path, fused, scale, name):
    program_file = LAYER
    if fused:
        program_file = tmp_path / "fused.mlir"
        assert tool("qmmar-opt", LAYER, "-p", "fuse-quant-matmul-all-reduce", "-o", program_file).returncode == 0
    inputs = per_rank_scale(layer_inputs(4, np.random.default_rng(0)), scale, rank=2)
    np.savez(tmp_path / "in.npz", **inputs)
    r = tool("qmmar-run", program_file, "-w", 4, "--inputs", tmp_path / "in.npz")
    assert r.returncode == 1
    if fused:  # located in the printed program, where fusion put the mc2 op
        name = {"s1": "comm_quant_scale_1", "s2": "comm_quant_scale_2"}[name]
        where = rf"{re.escape(str(program_file))}:\d+:\d+: error: 'mc2.quant_matmul_all_reduce' op"
    else:
        where = rf"{re.escape(str(LAYER))}:12:3: error: 'qmm.reducesum' op"
    message = f" on rank 0: {name} must be the same on every rank, but rank 2's differs from rank 0's"
    assert re.fullmatch(where + re.escape(message), one_line(r))


def test_a_typo_in_an_op_name_is_named_as_qmmar_opt_names_it(tmp_path):
    """qmmar-run reads an imported program's torch.* ops, in generic form, as opaque ops; a
    misspelt qmm op is still an op that is not registered, at its place."""
    for op, column in (("%0 = qmm.bogus %x : tensor<4xbf16>", 18),
                       ('%0 = "qmm.bogus"(%x) : (tensor<4xbf16>) -> tensor<4xbf16>', 19)):  # fmt: skip
        typo = program(tmp_path, f"func.func @main(%x: tensor<4xbf16>) -> tensor<4xbf16> {{\n  {op}\n"
                                 "  func.return %0 : tensor<4xbf16>\n}\n")  # fmt: skip
        r = tool("qmmar-run", typo, "-w", 2, "--random-inputs", 0)
        opt = tool("qmmar-opt", typo)
        assert r.returncode == opt.returncode == 1
        assert one_line(r) == one_line(opt) == f"{typo}:2:{column}: error: Operation qmm.bogus is not registered"


KNOWN = ["qmm", "mc2", "func", "arith", "tensor", "builtin"]


@settings(max_examples=200, deadline=None)
@given(
    namespace=st.sampled_from([*KNOWN, "torch", "vendor"]),
    op=st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    custom=st.booleans(),
)
def test_an_unregistered_op_is_opaque_only_in_generic_form_outside_known_dialects(namespace, op, custom):
    """torch.* ops in generic form (qmmar-import's opaque ops) are read by every tool; any other
    unregistered op only by qmmar-run (which names it at its place if it cannot run it)."""
    name = f"{namespace}.{op}"
    assume(qmmar_context().get_optional_op(name) is None or namespace == "torch")  # not a real op
    form = f"{name} %x : tensor<4xbf16>" if custom else f'"{name}"(%x) : (tensor<4xbf16>) -> tensor<4xbf16>'
    text = (f"func.func @main(%x: tensor<4xbf16>) -> tensor<4xbf16> {{\n  %0 = {form}\n"
            "  func.return %0 : tensor<4xbf16>\n}\n")  # fmt: skip
    opaque = not custom and namespace not in KNOWN
    for ctx in (qmmar_context(), qmmar_context(allow_unregistered=True)):
        if opaque and (namespace == "torch" or ctx.allow_unregistered):
            module = parse_module(ctx, text, "p.mlir")
            assert [o.op_name.data for o in module.walk() if isinstance(o, UnregisteredOp)] == [name]
        else:
            with pytest.raises(LocatedError) as refused:
                parse_module(ctx, text, "p.mlir")
            assert str(refused.value).endswith(f": error: Operation {name} is not registered")
