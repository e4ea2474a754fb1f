"""qmmar-opt on mutated programs: whatever a user can type gives exit code 0 or one located
error line with exit code 1, in bounded time; never a traceback, an internal error or a hang.
A program that is accepted prints as text that reads back to the same program."""

import contextlib
import io
import re
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import deadline
from qmmar.cli import opt

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [
    (ROOT / p).read_text()
    for p in ("examples/layer.mlir", "examples/two_layers.mlir", "tests/lit/inputs/every-op.mlir",
              "tests/lit/inputs/f32-constants.mlir")
] + [
    'func.func @g(%a: tensor<2x?xf16>) -> tensor<2x?xf16> attributes {qmmar.scenario = "decode"} {\n'
    '  %c = arith.constant dense<[[1.5, -0.0], [0x7E00, 65504.0]]> : tensor<2x2xf16>\n'
    '  %s = "test.op"() ({\n  ^bb0(%x: i32):\n    "test.end"() : () -> ()\n  }) {k = "a\\"b\\0A"} : () -> i1\n'
    "  func.return %a : tensor<2x?xf16>\n}\n",
]  # fmt: skip
TOKENS = ['"', "(", ")", "[", "]", "{", "}", "<", ">", "%", "@", ":", ",", "=", "-", "0x", "1", "0x7FC00001",
          "1e400", "dense<", "tensor<?x", "\\", "\n", "é", "\x00", "\xff", "loc(", "#", "!", "^bb0", "->", "i1",
          "ui64", "x0x", '"tp"', "world_size = 0", "builtin.module {", "(1.0, 2.0)", 'dense<"0x00">', "// ",
          "0.0"]  # fmt: skip
ONE_ERROR = re.compile(r"[^\n]+?(:\d+:\d+)?: error: [^\n]*\n")


@st.composite
def mutated(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 20)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "duplicate":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + text[i:j] + text[at:]
        else:
            token = draw(st.sampled_from(TOKENS))
            text = text[:i] + token + text[j if kind == "replace" else i :]
    return text


def qmmar_opt(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), deadline(20):
        code = opt.run([str(path)])  # not main: an unexpected exception fails the test
    return code, out.getvalue(), err.getvalue()


@given(mutated())
@example(SEEDS[-1].replace("-> tensor<", '-> tensor"<', 1))  # "expected '<'" at a string literal's span
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_programs_give_one_located_line_or_a_program_that_reads_back(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "m.mlir"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = qmmar_opt(path)
    if code != 0:
        assert code == 1 and ONE_ERROR.fullmatch(err), err
        assert "internal error" not in err and "Traceback" not in err, err
        return
    assert err == ""
    printed = path.with_name("printed.mlir")
    printed.write_text(out)
    assert qmmar_opt(printed) == (0, out, ""), "the printed program must read back as itself"
