"""What int8 communication costs in accuracy: each op's error against its full-precision ideal
(`qmmar-run --ideal`).

For each mc2.quant_matmul_all_reduce and each unfused int8-communication chain of the entry
function, the ideal is

    D( sum over ranks r of  f64(acc_r) * f64(scale) [* f64(pertoken_r)] [+ f64(x3_r)] )

where acc_r is the exact int32 product (`gemm.exact_matmul`, as the run computes it), scale is
the value the program multiplies by (`numerics.dequant_scale_f32`: a packed scale unpacked; for
a scale the fusion rounded to bf16 under numerics=relaxed, the f32 scale before that
`arith.truncf`), the arithmetic is f64 and D (the output dtype) is rounded to once, at the end:
no f16/bf16 rounding before the sum, no int8 communication.  Measured against it: the run's own
result, and the same op's all-reduce in D without communication scales (`numerics.dequant_i32`,
`add`, `reduce_sum`), the baseline a user weighs int8 communication against.  Saturation is the
share of int8 values at -128 or 127, after the quantisation (`numerics.quant`, every rank) and
after the requantisation of the sum (`numerics.reduce_quantized`).  Every kernel rounding is
the numerics module's; the one rounding here is the ideal's own, from f64.

A relaxed fusion is also measured against the program itself (`vs program`: max abs, and its
share of max |y|): the same op with the program's own scale, every other rounding the kernel's;
what numerics=relaxed changed, on this data.

The values are observed with probes: the entry function of a copy of the module also returns
every target's operands and result, so that one SPMD run gives both the program's results
and what the figures need.  Targets inside another function, or a nested region, cannot be
returned from the entry and are listed as not measured.

The mc2 ops are found here; the unfused chains are the caller's to name (`chain_targets`,
from the fusion plans: `qmmar.api.ideal_run`), so that the interpreter needs no matcher.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields, replace

import numpy as np
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import FunctionType, ModuleOp
from xdsl.interpreter import InterpreterFunctions
from xdsl.ir import Operation, SSAValue

from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.location import location_text
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp
from qmmar.dialects.mc2_rules import OPERANDS
from qmmar.interpreter.functions import RunError
from qmmar.interpreter.gemm import exact_matmul
from qmmar.interpreter.npz import load_npz
from qmmar.interpreter.observe import Watch
from qmmar.interpreter.spmd import entry_function, run_spmd
from qmmar.interpreter.values import InputArray, InputError

FIGURES_KEY = "ideal"
"""The array of a run's output .npz that holds its figures (a numpy record array)."""


@dataclass(frozen=True)
class Figure:
    """One op's error against its ideal, over rank 0's result."""

    location: str
    op: str  # "mc2 op" or "qmm chain"
    comm: str  # "int8", or the output dtype when the all-reduce runs in it
    dtype: str  # the output dtype
    elements: int
    max_abs: float
    mean_abs: float
    rel_rms: float  # sqrt(sum err^2 / sum ideal^2)
    snr_db: float  # 10 log10(sum ideal^2 / sum err^2)
    non_finite: int  # elements where the result or the ideal is inf or NaN: left out above
    quant_sat: float  # share of int8 values at the limits after quantisation (NaN: no int8)
    requant_sat: float  # the same after requantising the sum
    plain_rel_rms: float  # the all-reduce in the output dtype, against the same ideal
    plain_snr_db: float
    program_max_abs: float  # a scale rounded to bf16 (numerics=relaxed): max |result - the program's|
    program_max_rel: float  # that over max |the program's result|; both NaN for an op that rounds nothing


@dataclass(frozen=True)
class Target:
    """An op whose result is measured against its ideal, and the values that make it."""

    op: Operation  # the mc2 op, or the chain's root
    kind: str
    location: str
    transpose_x2: bool
    values: dict[str, SSAValue]  # x1, x2, scale, result; bias, pertoken, x3, s1, s2, program_scale when present


_SHORT = {"dequant_scale": "scale", "pertoken_scale": "pertoken", "comm_quant_scale_1": "s1",
          "comm_quant_scale_2": "s2"}  # fmt: skip
"""The names figures read the operands by."""


def target(op: Operation, location: str, kind: str, transpose_x2: bool, operands: Mapping[str, SSAValue | None],
           result: SSAValue) -> Target:  # fmt: skip
    """A target from the fused op's operands by name (`mc2_rules.OPERANDS`)."""
    values = {_SHORT.get(name, name): v for name in OPERANDS if (v := operands.get(name)) is not None}
    return Target(op, kind, location, transpose_x2, {**values, "result": result})


def _mc2_target(op: Operation) -> Target | None:
    if not isinstance(op, QuantMatmulAllReduceOp):
        return None
    operands = {name: getattr(op, name) for name in OPERANDS}
    t = target(op, location_text(op.location), "mc2 op", bool(op.transpose_x2.value.data), operands, op.output)
    if (program_scale := _rounded_from(op.dequant_scale)) is not None:
        t.values["program_scale"] = program_scale
    return t


def _rounded_from(scale: SSAValue) -> SSAValue | None:
    """The f32 scale the program multiplied by, where the fusion rounded it to bf16 (the
    `arith.truncf` numerics=relaxed writes, marked `numerics.RELAXED_ROUNDING`); None for a
    scale taken as the program computes it."""
    owner = scale.owner
    if isinstance(owner, arith.TruncFOp) and nx.RELAXED_ROUNDING in owner.attributes:
        return owner.input
    return None


def _copied(t: Target, copied: dict[SSAValue, SSAValue]) -> Target:
    """The target in the module's clone."""
    op = copied[t.op.results[0]].owner
    assert isinstance(op, Operation)
    return replace(t, op=op, values={name: copied[v] for name, v in t.values.items()})


def round_once(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """f64 values rounded once (to nearest, ties to even) to f16/bf16.

    First to f32 rounding to odd (toward zero, then the last bit set when anything was
    dropped), then the numerics' round_to: with f32's 13+ spare bits, round-to-odd then
    round-to-nearest gives exactly the single rounding (Boldo and Melquiond, 2008).  A plain
    f64 -> f32 -> D cast would round twice."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        f = x.astype(np.float32)
    inexact = np.isfinite(x) & (f.astype(np.float64) != x)
    bits = f.view(np.uint32).copy()
    bits[inexact & (np.abs(f.astype(np.float64)) > np.abs(x))] -= np.uint32(1)  # toward zero
    bits[inexact] |= np.uint32(1)
    return nx.round_to(bits.view(np.float32), dtype)


def _errors(result: np.ndarray, ideal: np.ndarray) -> tuple[float, float, float, float, int]:
    """max abs, mean abs, relative RMS, SNR in dB, and the count of non-finite elements."""
    a, i = result.astype(np.float64).ravel(), ideal.astype(np.float64).ravel()
    finite = np.isfinite(a) & np.isfinite(i)
    err, ref = a[finite] - i[finite], i[finite]
    noise, signal = float(np.sum(err * err)), float(np.sum(ref * ref))
    max_abs = float(np.max(np.abs(err))) if err.size else 0.0
    mean_abs = float(np.mean(np.abs(err))) if err.size else 0.0
    rel_rms = math.sqrt(noise / signal) if signal > 0 else (0.0 if noise == 0 else math.inf)
    snr_db = 10 * math.log10(signal / noise) if noise > 0 else math.inf
    return max_abs, mean_abs, rel_rms, snr_db, int(np.sum(~finite))


def _at_limits(q: np.ndarray) -> float:
    return float(np.mean((q == 127) | (q == -128)))


@dataclass(frozen=True)
class BeforeReduction:
    """A target's values before the all-reduce, as rows [m, n]."""

    ideal: np.ndarray  # the f64 sum over ranks, not yet rounded
    z: list[np.ndarray]  # each rank's z as the kernel computes it
    program_z: list[np.ndarray] | None  # each rank's z with the program's own scale, where the fusion rounded it


def before_reduction(target: Target, v: dict[str, np.ndarray]) -> BeforeReduction:
    """From a target's probed values (each (world_size,) + shape).  The ideal is the
    program's: with the scale it multiplies by, not the fused op's rounding of it."""
    result = v["result"]
    out, n = result.dtype, result.shape[-1]
    ideal = np.zeros((result[0].size // n, n), dtype=np.float64)
    z, program_z = [], []
    relaxed = "program_scale" in v
    for r in range(result.shape[0]):
        acc = exact_matmul(v["x1"][r], v["x2"][r], v["bias"][r] if "bias" in v else None, target.transpose_x2)
        pertoken = v["pertoken"][r] if "pertoken" in v else None
        x3 = v["x3"][r].reshape(-1, n) if "x3" in v else None
        program_scale = v["program_scale"][r] if relaxed else v["scale"][r]
        scale = nx.dequant_scale_f32(program_scale, out, pertoken is not None).reshape(-1)
        y = acc.astype(np.float64) * scale.astype(np.float64)
        if pertoken is not None:
            y = y * pertoken.astype(np.float64).reshape(*acc.shape[:-1], 1)
        ideal += y.reshape(-1, n) if x3 is None else y.reshape(-1, n) + x3.astype(np.float64)
        z.append(_kernel_z(acc, v["scale"][r], pertoken, x3, out))
        if relaxed:  # the same op with the program's own scale
            program_z.append(_kernel_z(acc, program_scale, pertoken, x3, out))
    return BeforeReduction(ideal, z, program_z if relaxed else None)


def _kernel_z(acc: np.ndarray, scale: np.ndarray, pertoken: np.ndarray | None, x3: np.ndarray | None,
              out: np.dtype) -> np.ndarray:  # fmt: skip
    """One rank's z [m, n] as the kernel computes it with this scale: step 2, then step 3."""
    z = nx.dequant_i32(acc, scale, pertoken, out).reshape(-1, acc.shape[-1])
    return z if x3 is None else nx.add(z, x3)


def _difference(result: np.ndarray, program: np.ndarray) -> tuple[float, float]:
    """max |result - program| over the elements finite in both, and that over max |program|."""
    a, p = result.astype(np.float64).ravel(), program.astype(np.float64).ravel()
    finite = np.isfinite(a) & np.isfinite(p)
    if not finite.any():
        return 0.0, 0.0
    diff, top = float(np.max(np.abs(a[finite] - p[finite]))), float(np.max(np.abs(p[finite])))
    return diff, diff / top if top > 0 else (0.0 if diff == 0 else math.inf)


def figure(target: Target, v: dict[str, np.ndarray]) -> Figure:
    """The figures of one target from its probed values, each (world_size,) + shape."""
    result = v["result"]
    out, n = result.dtype, result.shape[-1]
    before = before_reduction(target, v)
    ideal_d = round_once(before.ideal, out)
    plain = _errors(nx.reduce_sum(before.z), ideal_d)
    mine = result[0].reshape(-1, n)
    errors = _errors(mine, ideal_d)
    quant_sat = requant_sat = math.nan
    if "s1" in v:
        s1, s2 = v["s1"][0], v["s2"][0]  # the same on every rank, as the operator requires
        q = [nx.quant(z_r, s1) for z_r in before.z]
        quant_sat, requant_sat = _at_limits(np.stack(q)), _at_limits(nx.reduce_quantized(q, s1, s2))
    program = (math.nan, math.nan)
    if before.program_z is not None:
        program = _difference(mine, _all_reduced(before.program_z, v))
    dtype = "bf16" if out == nx.BF16 else "f16" if out == nx.F16 else str(out)
    return Figure(target.location, target.kind, "int8" if "s1" in v else dtype, dtype, before.ideal.size, *errors,
                  quant_sat, requant_sat, plain[2], plain[3], *program)  # fmt: skip


def _all_reduced(z: list[np.ndarray], v: dict[str, np.ndarray]) -> np.ndarray:
    """The all-reduce of the ranks' z as the fused op does it: in the output dtype, or with int8
    communication (the primitive ops' numerics, composed whole rather than by shares: the
    result is element-wise)."""
    if "s1" not in v:
        return nx.reduce_sum(z)
    s1, s2 = v["s1"][0], v["s2"][0]
    return nx.dequant_i8(nx.reduce_quantized([nx.quant(z_r, s1) for z_r in z], s1, s2), s2, z[0].dtype)


class IdealRun:
    """A run of the entry function that also yields every target's figures."""

    def __init__(self, module: ModuleOp, entry: str, functions: Sequence[InterpreterFunctions] = (),
                 chains: Sequence[Target] = ()) -> None:  # fmt: skip
        """`chains`: the unfused int8-communication chains to measure, as targets in `module`
        (listed with the mc2 ops in program order)."""
        copied: dict[SSAValue, SSAValue] = {}
        self.module, self.functions = module.clone(value_mapper=copied), functions  # functions: as run_spmd takes them
        fn = entry_function(self.module, entry)
        self.entry = entry
        order = {op: i for i, op in enumerate(module.walk())}
        found = [t for op in module.walk() if (t := _mc2_target(op)) is not None]
        targets = [_copied(t, copied) for t in sorted([*found, *chains], key=lambda t: order[t.op])]
        body = fn.body.blocks[0] if len(fn.body.blocks) == 1 else None
        self.targets = [t for t in targets if t.op.parent_block() is body]
        self.not_measured = [t.location for t in targets if t.op.parent_block() is not body]
        ret = body.last_op if body is not None else None
        if body is None or not isinstance(ret, func.ReturnOp):
            raise RunError(f"--ideal needs @{entry} to be one block ending in func.return")
        self.results = len(ret.arguments)
        probes = [v for t in self.targets for v in t.values.values()]
        probed = func.ReturnOp(*ret.arguments, *probes)
        body.insert_op_before(probed, ret)
        body.erase_op(ret)
        fn.function_type = FunctionType.from_lists(fn.function_type.inputs.data, [v.type for v in probed.arguments])
        self._probes: list[np.ndarray] = []
        self._figures: list[Figure] | None = None

    def run(self, inputs: Sequence[InputArray], world_size: int, watch: Watch | None = None) -> list[np.ndarray]:
        """The program's results; the probes are kept for `figures`, computed when asked."""
        return self.keep_probes(run_spmd(self.module, inputs, world_size, self.entry, self.functions, watch=watch))

    def keep_probes(self, outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The program's results among the outputs of a run of `self.module` (of every rank,
        or of one rank under MPI); the probed values are kept for `probed` and `figures`."""
        self._probes, self._figures = list(outputs[self.results :]), None
        return list(outputs[: self.results])

    def probed(self) -> list[dict[str, np.ndarray]]:
        """Each target's values in the last run, by name (as in `Target.values`)."""
        probes = iter(self._probes)
        return [{name: next(probes) for name in t.values} for t in self.targets]

    def figures(self) -> list[Figure]:
        """Each target's figures, from the last run."""
        if self._figures is None:
            self._figures = [figure(t, v) for t, v in zip(self.targets, self.probed(), strict=True)]
        return self._figures


def _number(x: float, percent: bool = False) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.2%}" if percent else f"{x:.4g}"


COLUMNS = ("location", "op", "comm", "max abs", "mean abs", "rel RMS", "SNR dB", "sat. quant",
           "sat. requant", "SNR dB without int8", "vs program (relaxed)")  # fmt: skip


def figure_cells(f: Figure) -> tuple[str, ...]:
    """One figure as the table's cells (the HTML report shows the same)."""
    plain = _number(f.plain_snr_db) if f.comm == "int8" else "-"
    program = "-"
    if not math.isnan(f.program_max_abs):
        program = f"{_number(f.program_max_abs)} ({_number(f.program_max_rel, True)})"
    return (f.location, f.op, f.comm, _number(f.max_abs), _number(f.mean_abs), _number(f.rel_rms),
            _number(f.snr_db), _number(f.quant_sat, True), _number(f.requant_sat, True), plain, program)  # fmt: skip


def figures_table(run: IdealRun, figures: Sequence[Figure]) -> str:
    lines = ["against the full-precision ideal (f64 arithmetic, one rounding to the output dtype), rank 0:"]
    if not figures:
        lines = [f"--ideal: no {QuantMatmulAllReduceOp.name} and no int8-communication chain in @{run.entry}: "
                 "nothing whose communication is quantised (the sequence-parallel ops' is not)"]  # fmt: skip
    else:
        rows = [COLUMNS, *(figure_cells(f) for f in figures)]
        widths = [max(len(row[c]) for row in rows) for c in range(len(COLUMNS))]
        for row in rows:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if any(f.non_finite for f in figures):
            lines.append("non-finite elements (left out of the figures): " + ", ".join(
                f"{f.location} {f.non_finite}" for f in figures if f.non_finite))  # fmt: skip
    lines += [f"not measured (not in @{run.entry}'s body): {loc}" for loc in run.not_measured]
    return "\n".join(lines)


def figures_for_file(figures: Sequence[Figure]) -> dict[str, np.ndarray]:
    """The figures as one record array, for a run's output .npz (key `ideal`)."""
    if not figures:
        return {}
    rows = [astuple(f) for f in figures]
    dtype: list[tuple[str, str | type[np.generic]]] = []
    for i, fld in enumerate(fields(Figure)):
        if fld.type == "str":
            dtype.append((fld.name, f"U{max(len(r[i]) for r in rows)}"))
        else:
            dtype.append((fld.name, np.int64 if fld.type == "int" else np.float64))
    return {FIGURES_KEY: np.array(rows, dtype=dtype)}


def load_figures(path: str) -> list[Figure]:
    """The figures a `qmmar-run --ideal -o FILE` stored."""
    try:
        table = load_npz(path).get(FIGURES_KEY)
    except LocatedError as err:
        raise InputError(f"{err.where}: {err.message}") from None
    if table is None:
        raise InputError(f"{path}: no figures in it: write it with qmmar-run --ideal -o {path}")
    try:
        return [Figure(**{fld.name: row[fld.name].item() for fld in fields(Figure)}) for row in table]
    except (ValueError, KeyError, IndexError) as err:
        raise InputError(f"{path}: cannot read the figures: {err}") from None
