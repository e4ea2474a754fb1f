"""Random tensor-parallel models of several chains, as MLIR text, with the verdict each chain
must get: for the property tests of the matcher (tests/test_models.py).

A model is one function: optionally an unrelated data-parallel all-reduce first, then chains
in order.  All chains end in the same type, so that a chain's x3 can be an earlier chain's
result (a residual).  A chain is written unfused (qmm ops) or already fused (an mc2 op); an
unfused chain may carry defects that a rule must find, and its add may read two matmul
dequants (the "partner"), either operand first, or the chain's own dequant twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from hypothesis import strategies as st

from qmmar.dialects import numerics as nx
from qmmar.passes.legality import RULE_ORDER

DEFECT_RULES = {
    "second_user": "CHAIN-SINGLE-USE",  # the dequant result is also returned
    "other_s1": "CHAIN-SAME-S1",  # reducesum reads another s1 than the quant
    "other_group": "CHAIN-ONE-GROUP",  # the chain's collectives are on another group
    "bad_scale": "MC2-SCALE-DTYPE",  # a dequant scale the operator does not take
}
TAIL_DEFECTS = frozenset({"other_s1", "other_group"})  # they stop the partner's chain too


@dataclass(frozen=True)
class ChainPlan:
    k: int
    transpose: bool
    bias: bool
    pertoken: bool
    scale_dtype: str
    scale_shape: str  # "1" | "n" | "1n"
    comm: bool
    comm_shape: str  # "n" | "1n"
    fused: bool  # written as an mc2 op already
    x3: str  # "none" | "arg" | "residual" | "partner" | "self"
    residual_of: int  # the earlier chain whose result is x3, for "residual"
    x3_first: bool  # the add reads x3 (or the partner) first
    partner: str  # "clean" | "multi_use" | "bad_scale": the other dequant, for "partner"
    defects: frozenset[str]


@dataclass(frozen=True)
class ModelPlan:
    world_size: int
    out: str  # "f16" | "bf16"
    n: int
    layout: str  # "2d" | "3d" | "3d2d" (3-D x1, collapsed to 2-D after the dequant)
    lead: tuple[int, ...]  # x1's leading dims at run time: (m,) or (b, s)
    dynamic: bool  # the first leading dim is `?` in the types
    decode: bool  # the function is marked qmmar.scenario = "decode"
    data_parallel_first: bool
    extreme: bool  # scales that saturate int8 and overflow f16
    chains: tuple[ChainPlan, ...]

    @property
    def rows(self) -> int:
        """m: x1's rows, b*s for a 3-D x1."""
        return int(np.prod(self.lead))

    @property
    def end_rows(self) -> int:
        """The leading dim of the chains' end, which the all-to-all splits."""
        return self.rows if self.layout == "3d2d" else self.lead[0]

    def expected_rules(self) -> list[str | None]:
        """The rule each unfused chain's verdict must name (None: fused)."""
        return [self._expected(c) for c in self.chains if not c.fused]

    def _expected(self, c: ChainPlan) -> str | None:
        decode = {"POLICY-DECODE"} if self.decode else set()
        own = {DEFECT_RULES[d] for d in c.defects} | decode
        if c.x3 == "self":
            own.add("CHAIN-X3-OUTSIDE")
        candidates = [own]
        if c.x3 == "partner":
            partner = {"clean": set(), "multi_use": {"CHAIN-SINGLE-USE"}, "bad_scale": {"MC2-SCALE-DTYPE"}}
            candidates.append({DEFECT_RULES[d] for d in c.defects & TAIL_DEFECTS} | partner[c.partner] | decode)
        if any(not rules for rules in candidates):
            return None
        return max((min(rules, key=RULE_ORDER.__getitem__) for rules in candidates), key=RULE_ORDER.__getitem__)


def _legal_scale(out: str, pertoken: bool, draw) -> str:
    if out == "bf16":
        return "bf16"
    return "f32" if pertoken else draw(st.sampled_from(["f32", "i64", "ui64"]))


def _bad_scale(out: str) -> str:
    return "f32" if out == "bf16" else "bf16"


@st.composite
def model_plans(draw, max_chains: int = 4) -> ModelPlan:
    w = draw(st.sampled_from([1, 2, 4, 8]))
    out = draw(st.sampled_from(["f16", "bf16"]))
    layout = draw(st.sampled_from(["2d", "3d", "3d2d"]))
    lead = (draw(st.integers(1, 12)),) if layout == "2d" else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if draw(st.booleans()):  # rows the all-to-all splits evenly: int8 chains can be written unfused
        lead = (w * draw(st.integers(1, 3)), *lead[1:])
    plan = ModelPlan(w, out, draw(st.integers(1, 12)), layout, lead, dynamic=draw(st.booleans()),
                     decode=draw(st.integers(0, 9)) == 0, data_parallel_first=draw(st.booleans()),
                     extreme=draw(st.booleans()), chains=())  # fmt: skip
    chains: list[ChainPlan] = []
    for j in range(draw(st.integers(1, max_chains))):
        pertoken = draw(st.booleans())
        comm = draw(st.booleans())
        x3 = draw(st.sampled_from(["none", "arg", "partner", "self", *(["residual"] * 3 if j else [])]))
        defects = {d for d in DEFECT_RULES if draw(st.integers(0, 4)) == 0}
        if not comm:
            defects.discard("other_s1")
        if j == 0:
            defects.discard("other_group")  # the first chain sets the module's group
        # A chain written unfused must split its rows evenly for the all-to-all; the fused
        # op pads them (and unfusing it writes the padding).
        fused = (comm and plan.end_rows % w != 0) or draw(st.integers(0, 3)) == 0
        if fused:
            defects, x3 = set(), x3 if x3 in ("none", "arg", "residual") else "arg"
        scale = _legal_scale(out, pertoken, draw)
        if fused and scale == "f32" and out == "f16" and not pertoken:
            scale = "ui64"  # the fused op takes the packed form
        chains.append(ChainPlan(
            k=draw(st.integers(1, 24)), transpose=draw(st.booleans()), bias=draw(st.booleans()), pertoken=pertoken,
            scale_dtype=_bad_scale(out) if "bad_scale" in defects else scale,
            scale_shape=draw(st.sampled_from(["1", "n", "1n"])), comm=comm,
            comm_shape=draw(st.sampled_from(["n", "1n"])), fused=fused, x3=x3,
            residual_of=draw(st.integers(0, j - 1)) if x3 == "residual" else 0, x3_first=draw(st.booleans()),
            partner=draw(st.sampled_from(["clean", "multi_use", "bad_scale"])), defects=frozenset(defects),
        ))  # fmt: skip
    return replace(plan, chains=tuple(chains))


def _t(shape, dtype: str) -> str:
    return f"tensor<{'x'.join(map(str, shape))}x{dtype}>"


class _Writer:
    """The function's text, and its arguments and results as they are added."""

    def __init__(self, plan: ModelPlan) -> None:
        self.plan = plan
        self.args: list[tuple[str, tuple[int, ...], str, str]] = []  # name, run-time shape, dtype, kind
        self.arg_types: list[str] = []
        self.lines: list[str] = []
        self.results: list[tuple[str, str]] = []
        m = "?" if plan.dynamic else plan.lead[0]
        self.lead_t = (m,) + plan.lead[1:]  # x1's leading dims as typed
        self.rows_t = ("?" if plan.dynamic else plan.rows,)  # pertoken's, and the 2-D view's
        self.end_t = self.rows_t + (plan.n,) if plan.layout == "3d2d" else self.lead_t + (plan.n,)
        self.end_run = (plan.rows, plan.n) if plan.layout == "3d2d" else plan.lead + (plan.n,)

    def arg(self, name: str, typed: tuple, shape: tuple[int, ...], dtype: str, kind: str) -> str:
        self.args.append((name, shape, dtype, kind))
        self.arg_types.append(f"%{name}: {_t(typed, dtype)}")
        return f"%{name}"

    def op(self, line: str) -> None:
        self.lines.append(f"  {line}")

    def text(self) -> str:
        attrs = ' attributes {qmmar.scenario = "decode"}' if self.plan.decode else ""
        types = ", ".join(t for _, t in self.results)
        head = f"func.func @main({', '.join(self.arg_types)}) -> ({types}){attrs} {{"
        ret = f"  func.return {', '.join(v for v, _ in self.results)} : {types}"
        return "\n".join([head, *self.lines, ret, "}"]) + "\n"


def _scale_shape(which: str, n: int) -> tuple[int, ...]:
    return {"1": (1,), "n": (n,), "1n": (1, n)}[which]


def _matmul_dequant(wr: _Writer, p: str, c: ChainPlan, scale_dtype: str, pertoken: bool) -> str:
    """x1 @ x2 (+ bias), dequantised, in the end's layout: the value's name."""
    plan, n = wr.plan, wr.plan.n
    lead_run = plan.lead
    x1 = wr.arg(f"{p}x1", wr.lead_t + (c.k,), lead_run + (c.k,), "i8", "rank")
    x2_shape = (n, c.k) if c.transpose else (c.k, n)
    x2 = wr.arg(f"{p}x2", x2_shape, x2_shape, "i8", "rank")
    types = [_t(wr.lead_t + (c.k,), "i8"), _t(x2_shape, "i8")]
    bias = ""
    if c.bias:
        bias = f" bias({wr.arg(f'{p}b', (n,), (n,), 'i32', 'rank')})"
        types.append(_t((n,), "i32"))
    tr = " transpose_x2 = true" if c.transpose else ""
    acc_t, y_t = _t(wr.lead_t + (n,), "i32"), _t(wr.lead_t + (n,), plan.out)
    wr.op(f"%{p}acc = qmm.matmul {x1}, {x2}{bias}{tr} : ({', '.join(types)}) -> {acc_t}")
    sshape = _scale_shape(c.scale_shape, n)
    s = wr.arg(f"{p}s", sshape, sshape, scale_dtype, "scale")
    dq_types = [acc_t, _t(sshape, scale_dtype)]
    pt = ""
    if pertoken:
        pt = f" pertoken({wr.arg(f'{p}pt', wr.rows_t, (plan.rows,), 'f32', 'pertoken')})"
        dq_types.append(_t(wr.rows_t, "f32"))
    wr.op(f"%{p}y = qmm.dequant %{p}acc, {s}{pt} : ({', '.join(dq_types)}) -> {y_t}")
    if plan.layout != "3d2d":
        return f"%{p}y"
    wr.op(f"%{p}yc = tensor.collapse_shape %{p}y [[0, 1], [2]] : {y_t} into {_t(wr.end_t, plan.out)}")
    return f"%{p}yc"


def _comm_scales(wr: _Writer, p: str, c: ChainPlan) -> tuple[str, str, str]:
    cshape = _scale_shape(c.comm_shape, wr.plan.n)
    s1 = wr.arg(f"{p}s1", cshape, cshape, wr.plan.out, "s1")
    s2 = wr.arg(f"{p}s2", cshape, cshape, wr.plan.out, "s2")
    return s1, s2, _t(cshape, wr.plan.out)


def _x3(wr: _Writer, p: str, c: ChainPlan) -> str:
    if c.x3 == "residual":
        return f"%c{c.residual_of}_r"
    return wr.arg(f"{p}x3", wr.end_t, wr.end_run, wr.plan.out, "rank")


def _unfused(wr: _Writer, p: str, c: ChainPlan) -> None:
    plan, end = wr.plan, _t(wr.end_t, wr.plan.out)
    value = _matmul_dequant(wr, p, c, c.scale_dtype, c.pertoken)
    if "second_user" in c.defects:
        wr.results.append((f"%{p}y", _t(wr.lead_t + (plan.n,), plan.out)))
    other = None
    if c.x3 in ("arg", "residual"):
        other = _x3(wr, p, c)
    elif c.x3 == "self":
        other = value
    elif c.x3 == "partner":
        partner_scale = _bad_scale(plan.out) if c.partner == "bad_scale" else ("bf16" if plan.out == "bf16" else "i64")
        other = _matmul_dequant(wr, f"{p}p", replace(c, bias=False), partner_scale, pertoken=False)
        if c.partner == "multi_use":
            wr.results.append((f"%{p}py", _t(wr.lead_t + (plan.n,), plan.out)))
    if other is not None:
        lhs, rhs = (other, value) if c.x3_first else (value, other)
        wr.op(f"%{p}z = qmm.add {lhs}, {rhs} : {end}")
        value = f"%{p}z"
    group = "ep" if "other_group" in c.defects else "tp"
    w = plan.world_size
    if not c.comm:
        wr.op(f'%{p}r = qmm.all_reduce {value} on "{group}" world_size = {w} : {end}')
        return
    s1, s2, cs = _comm_scales(wr, p, c)
    reduce_s1 = s1
    if "other_s1" in c.defects:
        cshape = _scale_shape(c.comm_shape, plan.n)
        reduce_s1 = wr.arg(f"{p}t1", cshape, cshape, plan.out, "s1")
    q_t = _t(wr.end_t, "i8")
    d0 = wr.end_t[0]
    chunk = "?" if d0 == "?" else d0 // w
    a2a_t, part_t = _t((w, chunk, *wr.end_t[1:]), "i8"), _t((chunk, *wr.end_t[1:]), "i8")
    wr.op(f"%{p}q = qmm.quant {value}, {s1} : ({end}, {cs}) -> {q_t}")
    wr.op(f'%{p}a = qmm.alltoall %{p}q on "{group}" world_size = {w} : {q_t} -> {a2a_t}')
    wr.op(f"%{p}rs = qmm.reducesum %{p}a s1({reduce_s1} : {cs}) s2({s2} : {cs}) : {a2a_t} -> {part_t}")
    wr.op(f'%{p}g = qmm.allgather %{p}rs on "{group}" world_size = {w} : {part_t} -> {q_t}')
    wr.op(f"%{p}r = qmm.dequant %{p}g, {s2} : ({q_t}, {cs}) -> {end}")


def _fused(wr: _Writer, p: str, c: ChainPlan) -> None:
    plan, n, end = wr.plan, wr.plan.n, _t(wr.end_t, wr.plan.out)
    x1_t = wr.lead_t + (c.k,)
    x1 = wr.arg(f"{p}x1", x1_t, plan.lead + (c.k,), "i8", "rank")
    if plan.layout == "3d2d":
        x1_t, collapsed = wr.rows_t + (c.k,), f"%{p}x1c"
        wr.op(f"{collapsed} = tensor.collapse_shape {x1} [[0, 1], [2]] : {_t(wr.lead_t + (c.k,), 'i8')} into "
              f"{_t(x1_t, 'i8')}")  # fmt: skip
        x1 = collapsed
    x2_shape = (n, c.k) if c.transpose else (c.k, n)
    x2 = wr.arg(f"{p}x2", x2_shape, x2_shape, "i8", "rank")
    parts = []
    if c.bias:
        parts.append(f"bias({wr.arg(f'{p}b', (n,), (n,), 'i32', 'rank')} : {_t((n,), 'i32')})")
    if c.x3 != "none":
        parts.append(f"x3({_x3(wr, p, c)} : {end})")
    sshape = _scale_shape(c.scale_shape, n)
    parts.append(f"dequant_scale({wr.arg(f'{p}s', sshape, sshape, c.scale_dtype, 'scale')} : "
                 f"{_t(sshape, c.scale_dtype)})")  # fmt: skip
    if c.pertoken:
        pt = wr.arg(f"{p}pt", wr.rows_t, (plan.rows,), "f32", "pertoken")
        parts.append(f"pertoken_scale({pt} : {_t(wr.rows_t, 'f32')})")
    if c.comm:
        s1, s2, cs = _comm_scales(wr, p, c)
        parts += [f"comm_quant_scale_1({s1} : {cs})", f"comm_quant_scale_2({s2} : {cs})"]
    tr = " transpose_x2 = true" if c.transpose else ""
    wr.op(f"%{p}r = mc2.quant_matmul_all_reduce {x1}, {x2} {' '.join(parts)} on \"tp\" world_size = "
          f"{plan.world_size}{tr} : {_t(x1_t, 'i8')}, {_t(x2_shape, 'i8')} -> {end}")  # fmt: skip


def model_program(plan: ModelPlan) -> tuple[str, list[tuple[str, tuple[int, ...], str, str]]]:
    """The model's MLIR text and its arguments (name, run-time shape, dtype, kind)."""
    wr = _Writer(plan)
    if plan.data_parallel_first:
        g = wr.arg("grad", (4, 4), (4, 4), plan.out, "rank")
        wr.op(f'%grad_sum = qmm.all_reduce {g} on "dp" world_size = {plan.world_size} : {_t((4, 4), plan.out)}')
        wr.results.append(("%grad_sum", _t((4, 4), plan.out)))
    for j, c in enumerate(plan.chains):
        (_fused if c.fused else _unfused)(wr, f"c{j}_", c)
        wr.results.append((f"%c{j}_r", _t(wr.end_t, plan.out)))
    return wr.text(), wr.args


def model_inputs(plan: ModelPlan, args, seed: int) -> list[np.ndarray]:
    """Per-rank int8 activations, weights, residuals and pertoken scales; scales replicated."""
    rng = np.random.default_rng(seed)
    w, out = plan.world_size, np.dtype(nx.BF16) if plan.out == "bf16" else np.dtype(np.float16)
    arrays = []
    for _, shape, dtype, kind in args:
        if dtype == "i8":
            arrays.append(rng.integers(-128, 128, size=(w, *shape), dtype=np.int8))
        elif dtype == "i32":
            arrays.append(rng.integers(-(2**31), 2**31, size=(w, *shape), dtype=np.int64).astype(np.int32))
        elif kind == "scale":
            base = rng.uniform(2.0**-14, 2.0**-10, size=shape).astype(np.float32) * np.float32(
                2.0**12 if plan.extreme else 1.0
            )
            if dtype in ("i64", "ui64"):
                arrays.append(nx.trans_quant_param(base).view(np.int64 if dtype == "i64" else np.uint64))
            else:
                arrays.append(base if dtype == "f32" else nx.round_to(base, nx.BF16 if dtype == "bf16" else nx.F16))
        elif kind == "pertoken":
            arrays.append(rng.uniform(0.5, 2.0, size=(w, *shape)).astype(np.float32))
        elif kind == "s1":
            scale = rng.uniform(2.0**-6, 2.0**-2, size=shape).astype(np.float32)
            arrays.append(nx.round_to(scale * np.float32(2.0**-8 if plan.extreme else 1.0), out))
        elif kind == "s2":
            arrays.append(nx.round_to(rng.uniform(2.0**-6, 2.0**-2, size=shape).astype(np.float32), out))
        else:  # residuals and the data-parallel gradient: per rank
            arrays.append(nx.round_to(rng.standard_normal(size=(w, *shape)).astype(np.float32) * 4, out))
    return arrays
