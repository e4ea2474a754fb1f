"""`qmmar-compare A.npz B.npz`: are two runs' results the same, and if not, how far apart?

For every array of the two files (B is the reference): bit-identical or not, how many
elements differ, the largest absolute and relative error, the largest distance in units in
the last place of the result's dtype, and the NaN and inf counts of each side.  Exit 0 when
every result is identical, or differs only within the tolerance given (--atol/--rtol, as
numpy's isclose, or --ulp); 1 when not; 2 on bad usage or a file that cannot be read.
A NaN matches only a NaN, and an infinity only the same infinity: against anything else
they differ beyond any tolerance.  Either file may be - (standard input).

The dtype: qmmar-run writes bf16 results as float32 (exactly), so a float32 array does not
say whether it was bf16.  By default (--dtype auto) a float32 array is compared as bf16 when
every value in both files is a bf16 value (its low 16 bits zero), which is always so for a
bf16 result and almost never for a genuine f32 one; --dtype f32 or bf16 decides it instead.
The `ideal` array of a `qmmar-run --ideal` output holds figures, not a result: it is not
compared.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qmmar.cli.common import EXIT_USAGE, add_version, tool_main
from qmmar.dialects.diagnostics import LocatedError
from qmmar.interpreter.ideal import FIGURES_KEY
from qmmar.interpreter.npz import load_npz
from qmmar.source import STDIN, display_name

UNUSABLE = EXIT_USAGE
"""Bad usage, or a file that cannot be read or compared (1 means: the results differ)."""


@dataclass(frozen=True)
class Tolerance:
    atol: float | None = None
    rtol: float | None = None
    ulp: int | None = None

    def accepts(self, abs_err: np.ndarray, ref: np.ndarray, ulps: np.ndarray) -> np.ndarray:
        ok = np.zeros(abs_err.shape, dtype=bool)
        if self.atol is not None or self.rtol is not None:
            ok |= abs_err <= (self.atol or 0.0) + (self.rtol or 0.0) * np.abs(ref)
        if self.ulp is not None:
            ok |= ulps <= self.ulp
        return ok


@dataclass(frozen=True)
class Comparison:
    name: str
    dtype: str  # as compared
    shape: tuple[int, ...]
    differing: int  # elements whose bits differ
    max_abs: float
    max_rel: float
    max_ulp: float
    nan: tuple[int, int]
    inf: tuple[int, int]
    rejected: int  # differing elements outside the tolerance (a NaN or an inf against another value always)

    def line(self, size: int, tolerance: bool) -> str:
        counts = f"NaN {self.nan[0]}/{self.nan[1]}, inf {self.inf[0]}/{self.inf[1]}"
        head = f"{self.name}: {self.dtype} {list(self.shape)}"
        if not self.differing:
            return f"{head}: identical; {counts}"
        verdict = f" ({self.rejected} outside the tolerance)" if tolerance else ""
        return (f"{head}: differs in {self.differing} of {size} elements{verdict}; max abs {self.max_abs:.6g}, "
                f"max rel {self.max_rel:.6g}, max ULP {self.max_ulp:.0f}; {counts}")  # fmt: skip


def _is_bf16(x: np.ndarray) -> bool:
    return not np.any(x.view(np.uint32) & np.uint32(0xFFFF))


def _as_compared(
    name: str, a: np.ndarray, b: np.ndarray, dtype: str, files: tuple[str, str]
) -> tuple[str, np.ndarray, np.ndarray]:
    """The dtype the two arrays are compared in, and each array's bits in it."""
    if a.dtype == np.float32 and dtype != "f32":
        both = _is_bf16(a) and _is_bf16(b)
        if dtype == "bf16" and not both:
            where = files[0] if not _is_bf16(a) else files[1]
            raise LocatedError(where, f"{name} holds values that are not bf16 (--dtype bf16)")
        if both:
            high_a, high_b = ((x.view(np.uint32) >> 16).astype(np.uint16) for x in (a, b))
            return "bf16 (float32 in the files)", high_a, high_b
    if a.dtype.kind == "f":
        bits = np.dtype(f"u{a.dtype.itemsize}")
        return str(a.dtype), a.view(bits), b.view(bits)
    return str(a.dtype), a, b


def _float_values(bits: np.ndarray) -> np.ndarray:
    """The f64 values of f16, f32 or f64 bit patterns."""
    return bits.view({2: np.float16, 4: np.float32, 8: np.float64}[bits.itemsize]).astype(np.float64)


def _ulp_keys(bits: np.ndarray) -> np.ndarray:
    """Integers in the order of the floats the bit patterns encode, one apart per ULP (-0 = +0)."""
    signed = bits.view(np.dtype(f"i{bits.itemsize}")).astype(np.int64)
    lowest = np.int64(np.iinfo(np.dtype(f"i{bits.itemsize}")).min)
    return np.where(signed < 0, lowest - signed, signed).astype(np.float64)


def compare(name: str, a: np.ndarray, b: np.ndarray, dtype: str, tol: Tolerance, files: tuple[str, str]) -> Comparison:
    kind, abits, bbits = _as_compared(name, a, b, dtype, files)
    differ = abits != bbits
    if a.dtype.kind == "f":
        from_bf16 = kind.startswith("bf16")
        with np.errstate(invalid="ignore"):  # a signalling NaN stays a NaN, without a warning
            va, vb = [(x.astype(np.uint32) << 16).view(np.float32).astype(np.float64) if from_bf16
                      else _float_values(x) for x in (abits, bbits)]  # fmt: skip
        ka, kb = _ulp_keys(abits), _ulp_keys(bbits)
    else:
        va, vb = a.astype(np.float64), b.astype(np.float64)
        ka, kb = va, vb
    nan_a, nan_b = np.isnan(va), np.isnan(vb)
    numbers = differ & ~nan_a & ~nan_b  # differing numbers (NaN payloads aside), infinities included
    # An infinity matches only itself (equal bits): against any other value it is infinitely
    # far, in every measure, and no tolerance accepts it (as a number against a NaN).
    infinite = (np.isinf(va) | np.isinf(vb))[numbers]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        abs_err = np.where(infinite, np.inf, np.abs(va[numbers] - vb[numbers]))
        rel_err = np.where(infinite, np.inf, np.where(abs_err == 0, 0.0, abs_err / np.abs(vb[numbers])))
    ulps = np.where(infinite, np.inf, np.abs(ka[numbers] - kb[numbers]))
    unmatched = int(np.sum(differ & (nan_a != nan_b))) + int(np.sum(infinite))
    rejected = unmatched + int(np.sum(~infinite & ~tol.accepts(abs_err, vb[numbers], ulps)))
    return Comparison(
        name=name, dtype=kind, shape=a.shape, differing=int(np.sum(differ)),
        max_abs=float(abs_err.max(initial=0.0)), max_rel=float(rel_err.max(initial=0.0)),
        max_ulp=float(ulps.max(initial=0.0)), nan=(int(nan_a.sum()), int(nan_b.sum())),
        inf=(int(np.isinf(va).sum()), int(np.isinf(vb).sum())), rejected=rejected,
    )  # fmt: skip


def _natural(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmmar-compare",
        description="Compare two .npz files of results (qmmar-run -o): bit for bit, and how far apart.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A.npz", help="- for standard input")
    p.add_argument("b", metavar="B.npz", help="the reference (relative errors are relative to B); - for standard input")
    p.add_argument("--atol", type=float, help="accept |a - b| <= atol + rtol * |b|")
    p.add_argument("--rtol", type=float, help="see --atol")
    p.add_argument("--ulp", type=int, help="accept a distance of at most this many ULPs of the dtype")
    p.add_argument("--dtype", choices=("auto", "bf16", "f32"), default="auto",
                   help="how float32 arrays are read (default auto: bf16 when every value of both is one)")  # fmt: skip
    add_version(p, "qmmar-compare")
    return p


def run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.a == args.b == STDIN:
        parser.error("standard input (-) can be read once: by A.npz or by B.npz")
    for name in ("atol", "rtol", "ulp"):
        value = getattr(args, name)
        if value is not None and not (value >= 0 and math.isfinite(value)):
            print(f"qmmar-compare: error: --{name} must be a finite number >= 0", file=sys.stderr)
            return UNUSABLE
    tol = Tolerance(args.atol, args.rtol, args.ulp)
    files = (display_name(args.a), display_name(args.b))
    lines, outcome = [], {"identical": 0, "within tolerance": 0, "different": 0}
    try:
        a, b = load_npz(args.a), load_npz(args.b)
        for name in sorted(a.keys() | b.keys(), key=_natural):
            if name == FIGURES_KEY:
                lines.append(f"{name}: the figures of a qmmar-run --ideal, not a result: not compared")
                continue
            if name not in a or name not in b:
                lines.append(f"{name}: only in {files[0] if name in a else files[1]}")
                outcome["different"] += 1
                continue
            x, y = a[name], b[name]
            if x.shape != y.shape or x.dtype != y.dtype:
                lines.append(
                    f"{name}: {x.dtype} {list(x.shape)} in {files[0]}, {y.dtype} {list(y.shape)} in {files[1]}"
                )
                outcome["different"] += 1
                continue
            if x.dtype.kind not in "biuf":
                raise LocatedError(", ".join(files), f"{name}: {x.dtype} is not a numeric result")
            c = compare(name, x, y, args.dtype, tol, files)
            lines.append(c.line(x.size, tol != Tolerance()))
            outcome["different" if c.rejected else "within tolerance" if c.differing else "identical"] += 1
    except LocatedError as err:
        print(err, file=sys.stderr)
        return UNUSABLE
    total = sum(outcome.values())
    print("\n".join([*lines, f"{total} result(s): " + ", ".join(f"{n} {what}" for what, n in outcome.items())]))
    return 1 if outcome["different"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    return tool_main("qmmar-compare", lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
