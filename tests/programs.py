"""Random quantised-matmul + all-reduce programs, as MLIR text, for the property tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from qmmar.dialects import numerics as nx


@dataclass(frozen=True)
class ChainSpec:
    world_size: int
    out: str  # "f16" | "bf16"
    lead: tuple  # x1's leading dims: (m,) or (b, s); "?" is dynamic
    k: int
    n: int
    transpose_x2: bool
    bias: bool
    pertoken: bool
    x3: bool
    comm: bool
    scale_dtype: str  # dequant scale: bf16 | f32 | i64 | ui64
    scale_shape: str  # "1" | "n" | "1n"
    comm_shape: str  # "n" | "1n"
    collapse: bool  # a 3-D chain collapses to 2-D after the dequant
    extreme: bool  # scales that saturate int8 and overflow f16

    @property
    def m(self) -> int | str:
        """b*s, or "?" when a leading dim is dynamic."""
        return "?" if "?" in self.lead else int(np.prod(self.lead))

    @property
    def end_shape(self) -> tuple[int, ...]:
        return ((self.m,) if self.collapse else self.lead) + (self.n,)


def tensor(shape, dtype: str) -> str:
    return f"tensor<{'x'.join(map(str, shape))}x{dtype}>"


WORLD_SIZES = (1, 2, 4, 8)


@st.composite
def chain_specs(draw, world_sizes: tuple[int, ...] = WORLD_SIZES, comm: bool | None = None) -> ChainSpec:
    """comm: only chains with (True) or without (False) int8 communication; None: either."""
    w = draw(st.sampled_from(world_sizes))
    out = draw(st.sampled_from(["f16", "bf16"]))
    comm = draw(st.booleans()) if comm is None else comm
    three_d = draw(st.booleans())
    collapse = three_d and draw(st.booleans())
    # The unfused all-to-all splits the leading dim of the chain's end across the ranks.
    if three_d:
        b, s = draw(st.integers(1, 3)), draw(st.integers(1, 4))
        if comm and collapse:
            s = s * w // np.gcd(b * s, w) if (b * s) % w else s
        elif comm:
            b = b * w
        lead = (b, s)
    else:
        lead = (draw(st.integers(1, 3)) * (w if comm else 1) + (0 if comm else draw(st.integers(0, 5))),)
    pertoken = draw(st.booleans())
    if out == "bf16":
        scale_dtype = "bf16"
    elif pertoken:
        scale_dtype = "f32"
    else:
        scale_dtype = draw(st.sampled_from(["f32", "i64", "ui64"]))
    return ChainSpec(
        world_size=w, out=out, lead=lead, k=draw(st.integers(1, 48)), n=draw(st.integers(1, 20)),
        transpose_x2=draw(st.booleans()), bias=draw(st.booleans()), pertoken=pertoken,
        x3=draw(st.booleans()), comm=comm, scale_dtype=scale_dtype,
        scale_shape=draw(st.sampled_from(["1", "n", "1n"])),
        comm_shape=draw(st.sampled_from(["n", "1n"])), collapse=collapse,
        extreme=draw(st.booleans()),
    )  # fmt: skip


def _scale_shape(spec: ChainSpec, which: str) -> tuple[int, ...]:
    return {"1": (1,), "n": (spec.n,), "1n": (1, spec.n)}[which]


def arguments(spec: ChainSpec) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of the entry function's arguments, in order."""
    x2 = (spec.n, spec.k) if spec.transpose_x2 else (spec.k, spec.n)
    args = [("x1", spec.lead + (spec.k,), "i8"), ("x2", x2, "i8")]
    if spec.bias:
        args.append(("bias", (spec.n,), "i32"))
    args.append(("scale", _scale_shape(spec, spec.scale_shape), spec.scale_dtype))
    if spec.pertoken:
        args.append(("pt", (spec.m,), "f32"))
    if spec.x3:
        args.append(("x3", spec.end_shape, spec.out))
    if spec.comm:
        cs = _scale_shape(spec, spec.comm_shape)
        args += [("s1", cs, spec.out), ("s2", cs, spec.out)]
    return args


def plain_chain(world_size: int, m: int, k: int, n: int, scale_dtype: str) -> ChainSpec:
    """matmul -> dequant with a per-token scale -> all_reduce into bf16: the chain a W8A8
    row-parallel linear makes, nothing else."""
    return ChainSpec(world_size, "bf16", (m,), k, n, transpose_x2=False, bias=False, pertoken=True, x3=False,
                     comm=False, scale_dtype=scale_dtype, scale_shape="n", comm_shape="n", collapse=False,
                     extreme=False)  # fmt: skip


def unfused_program(spec: ChainSpec) -> str:
    w, d = spec.world_size, spec.out
    lead_n = spec.lead + (spec.n,)
    end = spec.end_shape
    args = arguments(spec)
    types = {name: tensor(shape, dt) for name, shape, dt in args}
    sig = ", ".join(f"%{name}: {types[name]}" for name, _, _ in args)
    lines = [f"func.func @main({sig}) -> {tensor(end, d)} {{"]
    bias = " bias(%bias)" if spec.bias else ""
    tr = " transpose_x2 = true" if spec.transpose_x2 else ""
    mm_types = ", ".join(types[n] for n in ("x1", "x2", "bias") if n in types)
    lines.append(f"  %acc = qmm.matmul %x1, %x2{bias}{tr} : ({mm_types}) -> {tensor(lead_n, 'i32')}")
    pt = " pertoken(%pt)" if spec.pertoken else ""
    dq_types = ", ".join(types[n] for n in ("scale", "pt") if n in types)
    lines.append(f"  %y = qmm.dequant %acc, %scale{pt} : ({tensor(lead_n, 'i32')}, {dq_types}) -> {tensor(lead_n, d)}")
    value = "%y"
    if spec.collapse:
        lines.append(f"  %yc = tensor.collapse_shape %y [[0, 1], [2]] : {tensor(lead_n, d)} into {tensor(end, d)}")
        value = "%yc"
    if spec.x3:
        lines.append(f"  %z = qmm.add {value}, %x3 : {tensor(end, d)}")
        value = "%z"
    if not spec.comm:
        lines.append(f'  %r = qmm.all_reduce {value} on "tp" world_size = {w} : {tensor(end, d)}')
    else:
        cs = types["s1"]
        rows = end[0] // w
        a2a = (w, rows) + end[1:]
        part = (rows,) + end[1:]
        lines += [
            f"  %q = qmm.quant {value}, %s1 : ({tensor(end, d)}, {cs}) -> {tensor(end, 'i8')}",
            f'  %a = qmm.alltoall %q on "tp" world_size = {w} : {tensor(end, "i8")} -> {tensor(a2a, "i8")}',
            f"  %rs = qmm.reducesum %a s1(%s1 : {cs}) s2(%s2 : {cs}) : {tensor(a2a, 'i8')} -> {tensor(part, 'i8')}",
            f'  %g = qmm.allgather %rs on "tp" world_size = {w} : {tensor(part, "i8")} -> {tensor(end, "i8")}',
            f"  %r = qmm.dequant %g, %s2 : ({tensor(end, 'i8')}, {cs}) -> {tensor(end, d)}",
        ]  # fmt: skip
    lines += [f"  func.return %r : {tensor(end, d)}", "}"]
    return "\n".join(lines) + "\n"


def random_inputs(spec: ChainSpec, seed: int) -> list[np.ndarray]:
    """Per-rank int8 activations and weights; replicated scales, as a tensor-parallel layer."""
    rng = np.random.default_rng(seed)
    w = spec.world_size
    out = []
    for name, shape, dtype in arguments(spec):
        if dtype == "i8":
            out.append(rng.integers(-128, 128, size=(w, *shape), dtype=np.int8))
        elif dtype == "i32":
            out.append(rng.integers(-(2**31), 2**31, size=(w, *shape), dtype=np.int64).astype(np.int32))
        elif name == "scale":
            base = rng.uniform(2.0**-14, 2.0**-10, size=shape).astype(np.float32)
            if spec.extreme:
                base *= np.float32(2.0**12)
            if dtype in ("i64", "ui64"):
                out.append(nx.trans_quant_param(base).view(np.int64 if dtype == "i64" else np.uint64))
            else:
                out.append(nx.round_to(base, np.dtype(nx.BF16)) if dtype == "bf16" else base)
        elif name == "pt":
            out.append(rng.uniform(0.5, 2.0, size=(w, *shape)).astype(np.float32))
        elif name in ("s1", "s2"):
            scale = rng.uniform(2.0**-6, 2.0**-2, size=shape).astype(np.float32)
            if spec.extreme and name == "s1":
                scale *= np.float32(2.0**-8)
            out.append(nx.round_to(scale, np.dtype(nx.BF16) if dtype == "bf16" else np.dtype(np.float16)))
        else:  # x3
            x3 = rng.standard_normal(size=(w, *shape)).astype(np.float32) * 4
            out.append(nx.round_to(x3, np.dtype(nx.BF16) if dtype == "bf16" else np.dtype(np.float16)))
    return out


def fused_program(w: int, lead: tuple[int, ...], k: int, n: int, out: str, scale_type: str,
                  comm: bool, transpose: bool) -> str:  # fmt: skip
    """One mc2.quant_matmul_all_reduce with x1 [*lead, k]; arguments x1, x2, scale[, s1, s2]."""
    x1_type = tensor(lead + (k,), "i8")
    x2_type = tensor((n, k) if transpose else (k, n), "i8")
    out_type = tensor(lead + (n,), out)
    cs = tensor((n,), out)
    comm_args = f", %s1: {cs}, %s2: {cs}" if comm else ""
    comm_text = f"comm_quant_scale_1(%s1 : {cs}) comm_quant_scale_2(%s2 : {cs}) " if comm else ""
    tr = "transpose_x2 = true " if transpose else ""
    return (
        f"func.func @main(%x1: {x1_type}, %x2: {x2_type}, %s: {tensor((n,), scale_type)}{comm_args})"
        f" -> {out_type} {{\n"
        f"  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : {tensor((n,), scale_type)}) "
        f'{comm_text}on "tp" world_size = {w} {tr}: {x1_type}, {x2_type} -> {out_type}\n'
        f"  func.return %o : {out_type}\n}}\n"
    )
