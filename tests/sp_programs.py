"""Random sequence-parallel row-parallel programs (matmul -> dequant -> reduce_scatter) as MLIR
text, for the property tests of mc2.quant_matmul_reduce_scatter: only chains its rules accept;
and the same chains ending in an all-reduce, which Atlas A3 runs as that op and an all-gather."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from programs import tensor
from qmmar.dialects import numerics as nx


@dataclass(frozen=True)
class ReduceScatterSpec:
    world_size: int
    out: str  # "f16" | "bf16"
    lead: tuple[int, ...]  # x1's leading dims: (m,) or (b, s), b*s a multiple of W
    k: int
    n: int
    transpose_x2: bool
    pertoken: bool
    scale_dtype: str  # f32 | i64 | ui64 (packed, f16 output without per-token scales) | bf16 (widened to f32)
    scale_shape: str  # "n" | "1n"
    extreme: bool  # scales that overflow f16 and bf16's significant bits
    collective: str = "reduce_scatter"  # | "all_reduce": on [m, n] rows, or on a 3-D x1's [b, s, n]

    @property
    def m(self) -> int:
        return int(np.prod(self.lead))


@st.composite
def reduce_scatter_specs(draw, world_sizes: tuple[int, ...] = (2, 4, 8)) -> ReduceScatterSpec:
    w = draw(st.sampled_from(world_sizes))
    out = draw(st.sampled_from(["f16", "bf16"]))
    rows, b, s = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    lead = draw(st.sampled_from([(w * rows,), (b * w, s)]))
    pertoken = draw(st.booleans())
    packed_ok = out == "f16" and not pertoken
    return ReduceScatterSpec(
        world_size=w, out=out, lead=lead, k=draw(st.integers(256, 320)), n=draw(st.integers(1, 20)),
        transpose_x2=draw(st.booleans()), pertoken=pertoken,
        scale_dtype=draw(st.sampled_from(["f32", "i64", "ui64"] if packed_ok else ["f32"])),
        scale_shape=draw(st.sampled_from(["n", "1n"])), extreme=draw(st.booleans()),
    )  # fmt: skip


@st.composite
def all_reduce_specs(draw, world_sizes: tuple[int, ...] = (2, 4, 8)) -> ReduceScatterSpec:
    """The chains ending in an all-reduce instead; a bf16 scale where the fused op widens it."""
    spec = draw(reduce_scatter_specs(world_sizes))
    widened = spec.out == "bf16" or spec.pertoken
    scale = draw(st.sampled_from([spec.scale_dtype, "bf16"] if widened else [spec.scale_dtype]))
    return dataclasses.replace(spec, scale_dtype=scale, collective="all_reduce")


def arguments(spec: ReduceScatterSpec) -> list[tuple[str, tuple[int, ...], str]]:
    x2 = (spec.n, spec.k) if spec.transpose_x2 else (spec.k, spec.n)
    scale = (spec.n,) if spec.scale_shape == "n" else (1, spec.n)
    args = [("x1", (*spec.lead, spec.k), "i8"), ("x2", x2, "i8"), ("scale", scale, spec.scale_dtype)]
    return args + ([("pt", (spec.m,), "f32")] if spec.pertoken else [])


def unfused_program(spec: ReduceScatterSpec) -> str:
    """The chain; a 3-D one collapses its dequantised rows before the reduce-scatter (and is
    all-reduced as it is)."""
    w, d, rows = spec.world_size, spec.out, (spec.m, spec.n)
    lead_n = (*spec.lead, spec.n)
    types = {name: tensor(shape, dt) for name, shape, dt in arguments(spec)}
    params = ", ".join(f"%{name}: {t}" for name, t in types.items())
    result = tensor(lead_n if spec.collective == "all_reduce" else (spec.m // w, spec.n), d)
    lines = [f"func.func @main({params}) -> {result} {{"]
    tr = " transpose_x2 = true" if spec.transpose_x2 else ""
    lines.append(f"  %acc = qmm.matmul %x1, %x2{tr} : ({types['x1']}, {types['x2']}) -> {tensor(lead_n, 'i32')}")
    pt, dq = (" pertoken(%pt)", f"{types['scale']}, {types['pt']}") if spec.pertoken else ("", types["scale"])
    lines.append(f"  %y = qmm.dequant %acc, %scale{pt} : ({tensor(lead_n, 'i32')}, {dq}) -> {tensor(lead_n, d)}")
    if spec.collective == "all_reduce":
        lines += [f'  %r = qmm.all_reduce %y on "tp" world_size = {w} : {result}', f"  func.return %r : {result}", "}"]
        return "\n".join(lines) + "\n"
    value = "%y"
    if len(spec.lead) == 2:
        lines.append(f"  %yr = tensor.collapse_shape %y [[0, 1], [2]] : {tensor(lead_n, d)} into {tensor(rows, d)}")
        value = "%yr"
    part = tensor((spec.m // w, spec.n), d)
    lines += [f'  %r = qmm.reduce_scatter {value} on "tp" world_size = {w} : {tensor(rows, d)} -> {part}',
              f"  func.return %r : {part}", "}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def random_inputs(spec: ReduceScatterSpec, seed: int) -> list[np.ndarray]:
    """Per-rank activations, weights and per-token scales; replicated per-channel scales."""
    rng = np.random.default_rng(seed)
    w, out = spec.world_size, []
    for name, shape, dtype in arguments(spec):
        if dtype == "i8":
            out.append(rng.integers(-128, 128, size=(w, *shape), dtype=np.int8))
        elif name == "scale":
            base = rng.uniform(2.0**-14, 2.0**-10, size=shape).astype(np.float32)
            if spec.extreme:
                base *= np.float32(2.0**12)
            packed = nx.trans_quant_param(base)
            if dtype in ("f32", "bf16"):
                out.append(base.astype(nx.F32 if dtype == "f32" else nx.BF16))
            else:
                out.append(packed.view(np.int64 if dtype == "i64" else np.uint64))
        else:  # pt
            out.append(rng.uniform(0.5, 2.0, size=(w, *shape)).astype(np.float32))
    return out
