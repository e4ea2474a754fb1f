"""Random all-gather + quantised-matmul programs (the chain mc2.all_gather_quant_matmul fuses),
as MLIR text, for the property tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from programs import tensor
from qmmar.dialects import numerics as nx

OTHER_N = 8
"""The columns of the second matmul that reads the gathered x1 (`GatherSpec.other_user`)."""


@dataclass(frozen=True)
class GatherSpec:
    world_size: int
    out: str  # "f16" | "bf16"
    m: int  # this rank's rows
    k: int
    n: int
    transpose_x2: bool
    pertoken: bool
    scale_dtype: str  # "f32" | "i64" | "ui64" (packed: f16 output without pertoken only)
    scale_shape: str  # "n" | "1n"
    other_user: bool  # a second matmul reads the gathered x1
    extreme: bool  # scales that overflow f16 and bf16, per-token scales of every sign and special

    def arguments(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(name, shape, dtype) of the entry function's arguments, in order."""
        x2 = (self.n, self.k) if self.transpose_x2 else (self.k, self.n)
        args = [("x1", (self.m, self.k), "i8"), ("x2", x2, "i8")]
        args.append(("scale", (self.n,) if self.scale_shape == "n" else (1, self.n), self.scale_dtype))
        if self.pertoken:
            args.append(("pt", (self.m,), "f32"))
        if self.other_user:
            args.append(("w2", (self.k, OTHER_N), "i8"))
        return args


@st.composite
def gather_specs(draw, world_sizes: tuple[int, ...] = (2, 4, 8)) -> GatherSpec:
    out = draw(st.sampled_from(["f16", "bf16"]))
    pertoken = draw(st.booleans())
    packed = out == "f16" and not pertoken and draw(st.booleans())
    return GatherSpec(
        world_size=draw(st.sampled_from(world_sizes)), out=out, m=draw(st.integers(1, 6)),
        k=draw(st.integers(256, 300)), n=draw(st.integers(1, 20)), transpose_x2=draw(st.booleans()),
        pertoken=pertoken, scale_dtype=draw(st.sampled_from(["i64", "ui64"])) if packed else "f32",
        scale_shape=draw(st.sampled_from(["n", "1n"])), other_user=draw(st.booleans()),
        extreme=draw(st.booleans()),
    )  # fmt: skip


def unfused_gather_program(spec: GatherSpec) -> str:
    """allgather(x1) [+ allgather(pt)] -> matmul -> dequant; the results: the dequant's, and
    with `other_user` the second matmul's."""
    w, rows = spec.world_size, spec.world_size * spec.m
    types = {name: tensor(shape, dt) for name, shape, dt in spec.arguments()}
    out_type = tensor((rows, spec.n), spec.out)
    other_type = tensor((rows, OTHER_N), "i32")
    results = [out_type, other_type] if spec.other_user else [out_type]
    sig = ", ".join(f"%{name}: {t}" for name, t in types.items())
    gathered = tensor((rows, spec.k), "i8")
    tr = " transpose_x2 = true" if spec.transpose_x2 else ""
    lines = [f"func.func @main({sig}) -> ({', '.join(results)}) {{",
             f'  %g = qmm.allgather %x1 on "tp" world_size = {w} : {types["x1"]} -> {gathered}']  # fmt: skip
    pt, pt_type = "", ""
    if spec.pertoken:
        lines.append(f'  %t = qmm.allgather %pt on "tp" world_size = {w} : {types["pt"]} -> {tensor((rows,), "f32")}')
        pt, pt_type = " pertoken(%t)", f", {tensor((rows,), 'f32')}"
    acc = tensor((rows, spec.n), "i32")
    lines += [f"  %acc = qmm.matmul %g, %x2{tr} : ({gathered}, {types['x2']}) -> {acc}",
              f"  %y = qmm.dequant %acc, %scale{pt} : ({acc}, {types['scale']}{pt_type}) -> {out_type}"]  # fmt: skip
    values = ["%y"]
    if spec.other_user:
        lines.append(f"  %o = qmm.matmul %g, %w2 : ({gathered}, {types['w2']}) -> {other_type}")
        values.append("%o")
    lines += [f"  func.return {', '.join(values)} : {', '.join(results)}", "}"]
    return "\n".join(lines) + "\n"


SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-149, -(2.0**127), 65504.0], dtype=np.float32)


def random_gather_inputs(spec: GatherSpec, seed: int) -> list[np.ndarray]:
    """Per-rank int8 activations, weights (a column-parallel layer: each rank's own columns) and
    per-token scales; one dequant scale for every rank."""
    rng = np.random.default_rng(seed)
    w = spec.world_size
    out = []
    for name, shape, dtype in spec.arguments():
        if dtype == "i8":
            out.append(rng.integers(-128, 128, size=(w, *shape), dtype=np.int8))
        elif name == "scale":
            base = rng.uniform(2.0**-14, 2.0**-10, size=shape).astype(np.float32)
            if spec.extreme:
                base *= np.float32(2.0**12)
            packed = {"i64": np.int64, "ui64": np.uint64}
            out.append(nx.trans_quant_param(base).view(packed[dtype]) if dtype in packed else base)
        else:  # pt
            pt = rng.uniform(0.5, 2.0, size=(w, *shape)).astype(np.float32)
            if spec.extreme:
                pt = np.where(rng.random(size=pt.shape) < 0.3, rng.choice(SPECIALS, size=pt.shape), pt * 1e4)
            out.append(pt.astype(np.float32))
    return out
