"""Generated programs through fusion, both lowerings and the aclnn-cpp target, then
`g++ -fsyntax-only` against the headers: what test_lowering_generated.py runs a few hundred
of and scripts/lowering_campaign.py a few thousand.

The programs are tests/programs.py's single chains and tests/models.py's models, each
mutated in the ways lowering once failed on: arguments turned into dense constants, name
hints that collide (%x_1, %x_2), a row collapse moved between the matmul and its dequant,
s1 and s2 of different channel shapes, empty (zero-size) dimensions.  Each program either
compiles or is refused with a located error of KNOWN_LIMITS, each of which the README's
"Lowering to Ascend" section lists.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from hypothesis import strategies as st
from models import model_plans, model_program
from xdsl.utils.exceptions import DiagnosticException

from cxx.harness import WARNINGS, emit_cpp, include_flags
from helpers import parse
from programs import ChainSpec, chain_specs, unfused_program
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError
from qmmar.passes.fuse_quant_matmul_all_reduce import fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass
from qmmar.source import verify

KNOWN_LIMITS = {
    "V4-NONEMPTY": r"'aclnn\.quant_matmul_v4_get_workspace_size' op \[V4-NONEMPTY\]",
    "V4-SCALE-DTYPE": r"'qmm\.dequant' op has no aclnn form: \[V4-SCALE-DTYPE\]",
    "HCCL-RANKS-UINT32": r"\[HCCL-RANKS-UINT32\] world_size = \d+ has no aclnn C\+\+ form",
}
"""What lowering refuses, by the id the README lists it under: a regex of the message (after
`file:line:col: error: `)."""

LOCATED = re.compile(r"^test\.mlir:\d+:\d+: error: (.*)$")


@dataclass(frozen=True)
class Outcome:
    kind: str  # "invalid" (the mutation broke the input), "compiled", "refused", "defect"
    detail: str = ""  # the known limit's id, or what went wrong


def _args(text: str) -> list[tuple[str, str]]:
    """(name, type) of the first function's arguments."""
    head = text[text.index("func.func") :].split("{", 1)[0]
    return re.findall(r"%([\w.$-]+): (tensor<[^>]*>)", head.split("->")[0])


def _constant(text: str, name: str, type_: str) -> str:
    """Argument %name written as a dense constant at the top of the body."""
    value = "0.5" if re.search(r"x(bf16|f16|f32)>$", type_) else "1"
    text = re.sub(rf"%{re.escape(name)}: {re.escape(type_)}(, )?", "", text, count=1).replace(", )", ")")
    head, body = text.split("{\n", 1)
    return f"{head}{{\n  %{name} = arith.constant dense<{value}> : {type_}\n{body}"


def _rename(text: str, names: list[str]) -> str:
    """Every argument renamed %x_<i>: xDSL gives them one name hint, `x`."""
    for i, name in enumerate(names):
        text = re.sub(rf"%{re.escape(name)}(?![\w.$-])", f"%x_{i + 1}", text)
    return text


def _collapse_before_dequant(text: str) -> str:
    """A 3-D chain's collapse moved from after the dequant to between matmul and dequant."""
    dq = re.search(r"  %y = qmm\.dequant %acc, (.*) : \(tensor<(\w+)xi32>, (.*)\) -> tensor<\w+>\n", text)
    co = re.search(
        r"  %yc = tensor\.collapse_shape %y \[\[0, 1\], \[2\]\] : tensor<\w+> into tensor<(\w+)x(\w+)>\n", text
    )
    if dq is None or co is None:
        return text
    end_i32, end_d = f"tensor<{co[1]}xi32>", f"tensor<{co[1]}x{co[2]}>"
    new = (f"  %accc = tensor.collapse_shape %acc [[0, 1], [2]] : tensor<{dq[2]}xi32> into {end_i32}\n"
           f"  %yc = qmm.dequant %accc, {dq[1]} : ({end_i32}, {dq[3]}) -> {end_d}\n")  # fmt: skip
    return text.replace(dq[0], "").replace(co[0], new)


def _s2_other_shape(text: str) -> str:
    """s2 as [1, n] where it was [n], or the reverse (s1 keeps its shape)."""
    m = re.search(r"%s2: tensor<(\w+)x(bf16|f16)>", text)
    if m is None:
        return text
    dims = m[1].split("x")
    other = dims[1:] if len(dims) == 2 else ["1", *dims]
    old, new = f"tensor<{m[1]}x{m[2]}>", f"tensor<{'x'.join(other)}x{m[2]}>"
    text = text.replace(f"%s2: {old}", f"%s2: {new}").replace(f"s2(%s2 : {old})", f"s2(%s2 : {new})")
    return re.sub(rf"(qmm\.dequant %g, %s2 : \(tensor<\w+xi8>, ){re.escape(old)}\)", rf"\g<1>{new})", text)


@st.composite
def programs(draw) -> tuple[str, str]:
    """(MLIR text, weight format) of a generated program, mutated."""
    if draw(st.booleans()):
        spec: ChainSpec = draw(chain_specs())
        if draw(st.integers(0, 4)) == 0:  # an empty dimension
            which = draw(st.sampled_from(["lead", "k", "n"]))
            spec = replace(spec, **({"lead": (0,) * len(spec.lead)} if which == "lead" else {which: 0}))
        text = unfused_program(spec)
        if draw(st.booleans()):
            text = text.replace(" {\n", ' attributes {qmmar.scenario = "decode"} {\n', 1)  # left unfused
        if spec.collapse and draw(st.booleans()):
            text = _collapse_before_dequant(text)
        if spec.comm and draw(st.booleans()):
            text = _s2_other_shape(text)
    else:
        text = model_program(draw(model_plans(max_chains=3)))[0]
    args = _args(text)
    for name, type_ in args:
        if "?" not in type_ and draw(st.integers(0, 3)) == 0:
            text = _constant(text, name, type_)
    if draw(st.booleans()):
        text = _rename(text, [name for name, _ in _args(text)])
    return text, draw(st.sampled_from(["nd", "nz"]))


def lower_and_compile(text: str, weight_format: str, workdir: Path | None = None) -> Outcome:
    """The pipeline fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn,lower-qmm-to-aclnn, then
    -t aclnn-cpp (unit and header) and g++ -fsyntax-only."""
    try:
        module = parse(text)
        verify(module)
    except DiagnosticException as err:
        return Outcome("invalid", str(err))
    fuse(module)
    verify(module)
    try:
        LowerMc2ToAclnnPass(weight_format=weight_format).apply(qmmar_context(), module)  # type: ignore[arg-type]
        LowerQmmToAclnnPass().apply(qmmar_context(), module)
        verify(module)
        cpp, header = emit_cpp(module), emit_cpp(module, header=True)
    except LocatedError as err:
        return _refusal(str(err))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for name, source in (("unit.cpp", cpp), ("unit.h", header)):
            path = Path(tmp) / name
            path.write_text(source)
            cmd = ["g++", *WARNINGS, "-fsyntax-only", *include_flags(), *(["-x", "c++"] if name.endswith(".h") else []),
                   str(path)]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                return Outcome("defect", f"{name} does not compile: {result.stderr[:2000]}")
    return Outcome("compiled")


def _refusal(message: str) -> Outcome:
    located = LOCATED.match(message.strip().splitlines()[0])
    if located is None:
        return Outcome("defect", f"unlocated refusal: {message}")
    for limit, pattern in KNOWN_LIMITS.items():
        if re.match(pattern, located[1]):
            return Outcome("refused", limit)
    return Outcome("defect", f"refusal outside the known limits: {message}")
