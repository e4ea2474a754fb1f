"""qmmar-opt: exit codes and one-line errors for bad input and for bad usage (a pipeline or a
target text that does not parse, an option a pass or target lacks or a value it does not take),
--help that leads with qmmar, the installed headers.  (What every tool shares: test_tools_cli.py.)"""

import contextlib
import dataclasses
import io
import subprocess
import sys
import typing
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.arg_spec import ArgSpec
from xdsl.utils.exceptions import PassFailedException

from helpers import tool
from qmmar.cli import opt
from qmmar.cli.opt import located
from qmmar.passes.options import TextAsTyped
from qmmar.universe import QMMAR_UNIVERSE

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
    # a chain that must fuse but cannot (an f32 scale with bf16 output): check-only fails at it
    broken = tmp_path / "broken.mlir"
    broken.write_text("""\
func.func @f(%x1: tensor<4x8xi8>, %x2: tensor<8x16xi8>, %s: tensor<16xf32>) -> tensor<4x16xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<4x8xi8>, tensor<8x16xi8>) -> tensor<4x16xi32>
  %y = qmm.dequant %acc, %s : (tensor<4x16xi32>, tensor<16xf32>) -> tensor<4x16xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 {qmmar.must_fuse} : tensor<4x16xbf16>
  func.return %r : tensor<4x16xbf16>
}
""")  # fmt: skip
    r = tool("qmmar-opt", broken, "-p", "fuse-quant-matmul-all-reduce{check-only=true remarks=none}")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"{broken}:2:3: error: ") and r.stderr.count(f"{broken}") == 1, r.stderr


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
    """The --help epilog imports every pass (and numpy): it is built only for --help.  (The
    mlir target checks its options with qmmar.passes.options, which is no pass.)"""
    probe = ("import sys; from qmmar.cli.opt import QmmarOptMain; QmmarOptMain(['x.mlir']); "
             "print(sorted(m for m in sys.modules if m.startswith('qmmar.passes.') and m != 'qmmar.passes.options' "
             "or m == 'numpy'))")  # fmt: skip
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


def qmmar_opt(*args: object) -> tuple[int, str, str]:
    """qmmar-opt's exit code, stdout and stderr; not through `main`: an unexpected exception
    (which `main` would print as an internal error) fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = opt.run([str(a) for a in args])
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def configurables() -> list[tuple[str, str, type]]:
    """Every qmmar pass (-p) and target (-t): the flag, its name and its class."""
    return [("-p", name, factory()) for name, factory in QMMAR_UNIVERSE.all_passes.items()] + [
        ("-t", name, factory()) for name, factory in QMMAR_UNIVERSE.all_targets.items()
    ]


def options(cls: type) -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    return {f.name.replace("_", "-"): hints[f.name] for f in dataclasses.fields(cls) if f.init}


def bad_values() -> list:
    """For every option of every qmmar pass and target, a value of the wrong kind or a choice
    not offered, and for each of them an option it lacks: the argument and the one line it gives."""
    cases = []
    for flag, name, cls in configurables():
        annotated = typing.get_type_hints(cls, include_extras=True)
        for option, hint in options(cls).items():
            forms = [f for f in typing.get_args(annotated[option.replace("-", "_")]) if isinstance(f, TextAsTyped)]
            if forms:
                value, message = "x", f"must be {forms[0].wanted.format(option=option)}, not 'x'"
            elif typing.get_origin(hint) is Literal:
                value, message = "zz", f"must be one of {', '.join(typing.get_args(hint))}, not 'zz'"
            else:
                value, message = {
                    float: ("x", "must be a number, not 'x'"),
                    int: ("x", "must be a whole number, not 'x'"),
                    bool: ("maybe", "must be true or false, not 'maybe'"),
                    str: ("1", f'must be text, not 1: write it in quotes, {option}="1"'),
                }[hint]  # a new kind of option needs its case here
            cases.append(pytest.param(flag, f"{name}{{{option}={value}}}", f"{name}: {option} {message}",
                                      id=f"{name}-{option}"))  # fmt: skip
        known = f"its options are {', '.join(options(cls))}" if options(cls) else "it takes no options"
        cases.append(pytest.param(flag, f"{name}{{bogus=1}}", f"{name}: unknown option bogus; {known}",
                                  id=f"{name}-unknown"))  # fmt: skip
    return cases


@pytest.mark.parametrize("flag, text, message", bad_values())
def test_every_option_of_every_qmmar_pass_and_target_is_checked_by_name(flag, text, message):
    assert qmmar_opt(LAYER, flag, text) == (2, "", f"qmmar-opt: error: {message}\n")


@pytest.mark.parametrize("flag, text, message", [
    ("-p", "fuse-quant-matmul-all-reduce{group=}", "in 'fuse-quant-matmul-all-reduce{group=}' at column 36: Unknown "
     "argument value, wrap argument in quotes to pass arbitrary string values"),
    ("-p", "fuse-quant-matmul-all-reduce{min-m=1 x}}", "in 'fuse-quant-matmul-all-reduce{min-m=1 x}}' at column 40: "
     "Expected a comma after pass argument dict here"),
    ("-t", "aclnn-cpp{", "in 'aclnn-cpp{' at column 11: Expected argument name here"),
    ("-p", "fuse-quant-matmul-all-reduce{min-m=1,2}",
     "fuse-quant-matmul-all-reduce: min-m takes one value, not 2: 1,2"),
    ("-p", "fuse-quant-matmul-all-reduce{min-m}", "fuse-quant-matmul-all-reduce: min-m needs a value (min-m=...)"),
    ("-p", "unfuse-mc2,no-such-pass", "unknown pass 'no-such-pass' in -p: qmmar-opt --help lists the passes"),
    ("-t", "mlir{print-generic-format=1}", "mlir: print-generic-format must be true or false, not 1"),
])  # fmt: skip
def test_a_pipeline_or_target_that_does_not_parse_keeps_the_reason(flag, text, message):
    assert qmmar_opt(LAYER, flag, text) == (2, "", f"qmmar-opt: error: {message}\n")


def test_a_flag_option_alone_is_true(tmp_path):
    code, out, _ = qmmar_opt(LAYER, "-p", "fuse-quant-matmul-all-reduce{check-only remarks=none}")
    assert code == 0 and "mc2.quant_matmul_all_reduce" not in out and "qmm.matmul" in out


VALUES = st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_option_value_is_taken_or_one_line_naming_the_option(data):
    _, name, cls = data.draw(st.sampled_from(configurables()))
    option = data.draw(st.sampled_from([*options(cls), "bogus"]))
    values = data.draw(st.one_of(VALUES.map(lambda v: (v,)), st.lists(VALUES, max_size=2).map(tuple)))
    try:
        taken = cls.from_spec(ArgSpec(name, {option: values}))
    except ValueError as err:
        assert len(str(err).splitlines()) == 1
        assert str(err).startswith(f"{name}: {option} " if option != "bogus" else f"{name}: unknown option bogus; ")
        return
    taken_value = getattr(taken, option.replace("-", "_"))
    (typed,) = values or (True,)  # an option alone is a flag: true
    if isinstance(taken_value, str) and not isinstance(typed, str):  # a number, as typed (cann=9.1)
        typed = str(typed)
    assert taken_value == (float(typed) if isinstance(taken_value, float) else typed)


TOKENS = [*QMMAR_UNIVERSE.all_passes, *QMMAR_UNIVERSE.all_targets, "mlir", "canonicalize", "cse", "{", "}", "=", ",",
          " ", '"', "1", "-2", "0.5", "1e9", "true", "maybe", "nz", "decode", "min-m", "group", "weight-format",
          "header", "report", "bogus", "[", "]", "@"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=10).map("".join), st.sampled_from(["--passes", "--target"]))
def test_any_pipeline_or_target_text_is_taken_or_one_usage_line(text, flag):
    code, out, err = qmmar_opt("missing.mlir", f"{flag}={text}")  # nothing is read, nor written
    assert out == "" and "internal error" not in err and "Traceback" not in err, err
    if code == 1:
        assert err == "missing.mlir: error: cannot read the input: No such file or directory\n"
    elif err.startswith("usage: "):  # argparse's: a target it does not offer
        assert code == 2 and ": error: argument -t/--target: invalid choice: " in err.splitlines()[-1], err
    else:
        assert code == 2 and err.startswith("qmmar-opt: error: ") and err.count("\n") == 1, err
