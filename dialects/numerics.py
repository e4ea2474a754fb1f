"""The numerics of SEMANTICS.md, in one place.

Every cast, rounding and saturation that the operator performs lives here; the interpreter
of every qmm and mc2 op calls these functions, and the fused op is their composition, so the
fused and unfused programs agree by construction.  Arrays are numpy; bf16 is ml_dtypes'.

The int8 GEMM of step 1 is the caller's to choose (`matmul_i32(..., gemm=...)`): every exact
GEMM gives the same bits.  The one here is numpy's f32 BLAS; the interpreter passes its own
choice (`qmmar.interpreter.gemm`: torch's int8 kernel where it pays), so that this module
needs nothing beyond numpy and ml_dtypes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import ml_dtypes
import numpy as np
import numpy.typing as npt

from qmmar.dialects.dtypes import name_of_numpy, scale_is_packed

F16 = np.dtype(np.float16)
BF16 = np.dtype(ml_dtypes.bfloat16)
F32 = np.dtype(np.float32)

K_CHUNK = 1024
"""int8 products are at most 2**14 in magnitude, so a dot product over at most 1024 of them
stays within 2**24: every partial sum of an f32 GEMM over such a chunk is an exact integer."""

_TQP_MANTISSA_MASK = 0xFFFFE000  # TransQuantParamV2 keeps 10 of the 23 mantissa bits
_TQP_FLAG = 1 << 46  # round_mode 0 marker that TransQuantParamV2 sets in the high word


F16_OVERFLOW = np.float32(65520.0)
"""Halfway between f16's largest value (65504) and 2**16: from here on, RNE gives inf."""


def round_to(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """D(v): f32 to f16/bf16, round to nearest, ties to even (numpy and ml_dtypes both do);
    a value beyond the type's range becomes inf, as IEEE says.  To f32, an f16 or bf16 value
    is exact: arith.truncf and arith.extf between the three are both this."""
    x = np.asarray(x, dtype=F32)
    if dtype == F16 and x.size and (x.max() >= F16_OVERFLOW or x.min() <= -F16_OVERFLOW):
        # numpy's cast takes a slow path per overflowing element (~15x on saturated data);
        # mapping those to inf first gives the same bits.  Two reductions find them cheaply.
        x = np.where(np.abs(x) >= F16_OVERFLOW, np.copysign(np.float32(np.inf), x), x)
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype)


def is_bf16_exact(x: np.ndarray) -> bool:
    """Whether every f32 value is a bf16 value (its low 16 bits zero): rounding it to bf16 and
    back changes no bit, so a bf16 scale of these values computes what the f32 one does."""
    return bool(np.all((np.ascontiguousarray(x, dtype=F32).view(np.uint32) & 0xFFFF) == 0))


RELAXED_ROUNDING = "qmmar.relaxed_rounding"
"""A unit attribute on an `arith.truncf` that the fusion pass wrote under numerics=relaxed: it
rounds the program's f32 dequant scale to the bf16 one the fused op takes, so that `qmmar-run
--ideal` measures the fused op against the program's own scale (a truncf the program wrote
itself is the program's)."""

UNIT_ROUNDOFF = {BF16: "2^-8", F16: "2^-11"}
"""How far rounding a normal value to nearest moves it, at most, relative to it (8 and 11
significant bits): the bound a verdict or remark quotes for a rounding to bf16 or f16."""


def relative_narrowing(x: np.ndarray) -> float:
    """The largest |bf16(v) - v| / |v| over the nonzero finite f32 values v (0 for none): what
    rounding them to bf16 changes, relative to each."""
    v = np.asarray(x, dtype=F32).ravel()
    v = v[np.isfinite(v) & (v != 0)].astype(np.float64)
    if not v.size:
        return 0.0
    return float(np.max(np.abs(round_to(v, BF16).astype(np.float64) - v) / np.abs(v)))


def to_f32(x: np.ndarray) -> np.ndarray:
    """f32(v): exact for f16, bf16 and int8; round-to-nearest-even for wide ints."""
    return np.asarray(x).astype(F32)


def sat8(h: np.ndarray) -> np.ndarray:
    """Round a half value to an integer (RNE), saturate to [-128, 127]; NaN becomes 0."""
    h = np.asarray(h)
    out = np.empty(h.shape, dtype=np.int8)
    with np.errstate(invalid="ignore"):  # a signalling NaN is still a NaN: 0
        _rint_saturate(to_f32(h), out)
    return out


def _rint_saturate(r: np.ndarray, out: np.ndarray) -> None:
    """out = sat8(r) for an f32 array r, which is overwritten."""
    np.rint(r, out=r)
    np.clip(r, -128, 127, out=r)  # keeps NaN
    r[np.isnan(r)] = 0
    np.copyto(out, r, casting="unsafe")


_F16_ROUNDER = np.float32(1.5 * 2**13)


def _sat8_via_f16(t: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> None:
    """out = sat8(f16(t)) for an f32 array t (overwritten), without an f16 array.

    numpy's f32 -> f16 cast converts one element at a time; this is the same rounding in
    vectorised f32 arithmetic.  Clipping to [-256, 256] first changes no result (both roundings
    are monotonic and 256 is a half value) and keeps inf out.  For 2**e <= |t| < 2**(e+1),
    e >= -14, f16(t) is t rounded to a multiple of 2**(e-10); M = 1.5 * 2**(e+13) has that
    ulp in f32, so (t + M) - M rounds there, ties to even (M / ulp is even).  Below 2**-14
    (f16 subnormals) the rounding differs, but every such value gives 0 either way.
    """
    np.clip(t, -256, 256, out=t)  # keeps NaN; NaN's M is inf, and NaN stays NaN
    m = np.bitwise_and(t.view(np.uint32), np.uint32(0xFF800000), out=scratch.view(np.uint32)).view(F32)
    m *= _F16_ROUNDER  # sign * 2**e * 1.5 * 2**13 (0 for 0 and f32 subnormals)
    t += m
    t -= m
    _rint_saturate(t, out)


_BLOCK = 1 << 16
"""Elements per block of the quant steps: a block's f32 scratch (256 KiB) stays in cache
through their ten element-wise steps, so the data itself is read and written once."""


def _sat8_via_f16_by_blocks(shape: tuple[int, ...], fill: Callable[[slice, np.ndarray], None]) -> np.ndarray:
    """sat8(f16(t)) of a value t of `shape` (last axis: channels), computed block by block of
    rows: `fill(rows, buf)` writes t[rows] (as [rows, channels] f32) into buf."""
    n = shape[-1] if shape else 1
    total = int(np.prod(shape[:-1])) if shape else 1
    out = np.empty((total, n), dtype=np.int8)
    step = max(1, _BLOCK // max(n, 1))
    buf, scratch = np.empty((2, min(step, total), n), dtype=F32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, total, step):
            rows = slice(start, min(start + step, total))
            size = rows.stop - start
            fill(rows, buf[:size])
            _sat8_via_f16(buf[:size], scratch[:size], out[rows])
    return out.reshape(shape)


# --- TransQuantParamV2 ---------------------------------------------------------------------


def trans_quant_param(scale: npt.ArrayLike) -> np.ndarray:
    """Pack an f32 scale as aclnnTransQuantParamV2 (round_mode 0) does: a uint64."""
    bits = np.asarray(scale, dtype=F32).view(np.uint32).astype(np.uint64)
    return (bits & np.uint64(_TQP_MANTISSA_MASK)) | np.uint64(_TQP_FLAG)


def unpack_quant_param(packed: np.ndarray) -> np.ndarray:
    """The kernel's view of a packed int64/uint64 scale: its low 32 bits as an f32."""
    low = np.asarray(packed).view(np.uint64) & np.uint64(0xFFFFFFFF)
    return low.astype(np.uint32).view(F32)


def dequant_scale_f32(scale: np.ndarray, out_dtype: np.dtype, has_pertoken: bool) -> np.ndarray:
    """The f32 value the kernel multiplies by, for a dequant scale of any accepted dtype.

    An f32 scale with f16 output and no pertoken scale goes through TransQuantParamV2 first:
    that is the only way Ascend dequantises int32 to f16 without pertoken scales.
    """
    scale = np.asarray(scale)
    if scale.dtype in (np.int64, np.uint64):
        return unpack_quant_param(scale)
    if scale_is_packed(name_of_numpy(scale.dtype), name_of_numpy(out_dtype), has_pertoken):
        return unpack_quant_param(trans_quant_param(scale))
    return to_f32(scale)


# --- the steps of the operator --------------------------------------------------------------
#
# Step 1 is exact whatever GEMM computes it (k <= 65535, the operator's limit): a product of two
# int8 values is at most 2**14 in magnitude, so |x1 @ x2| <= 65535 * 2**14 < 2**31.  Integer
# arithmetic wraps modulo 2**32, so an int32 accumulator that holds the final sum holds it
# exactly whatever order (and whatever intermediate wrap) the kernel sums in.

Gemm = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""An exact int8 GEMM: [m, k] int8 @ [k, n] int8 -> [m, n] int32, any strides."""


def gemm_f32_blas(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """numpy's f32 BLAS over k-chunks of K_CHUNK, each chunk's partial product exact in f32.

    Each chunk of a and w is cast into one reused f32 buffer (laid out as w is, so a
    transposed weight stays a transposed BLAS operand): no f32 copy of a whole operand."""
    (m, k), n = a.shape, w.shape[1]
    if k <= K_CHUNK:  # one chunk: BLAS straight on the f32 casts
        product: np.ndarray = np.matmul(a.astype(F32), w.astype(F32))
        return product.astype(np.int32)
    a_buf = np.empty((m, K_CHUNK), dtype=F32)
    w_buf = np.empty((n, K_CHUNK), dtype=F32).T if w.strides[0] < w.strides[1] else np.empty((K_CHUNK, n), F32)
    part = np.empty((m, n), dtype=F32)
    acc = np.zeros((m, n), dtype=np.int32)
    for start in range(0, k, K_CHUNK):
        c = min(K_CHUNK, k - start)
        np.copyto(a_buf[:, :c], a[:, start : start + c])
        np.copyto(w_buf[:c], w[start : start + c])
        np.matmul(a_buf[:, :c], w_buf[:c], out=part)
        np.add(acc, part, out=acc, dtype=np.int32, casting="unsafe")  # part: exact integers, |part| <= 2**24
    return acc


def matmul_i32(
    x1: np.ndarray,
    x2: np.ndarray,
    bias: np.ndarray | None = None,
    transpose_x2: bool = False,
    *,
    gemm: Gemm = gemm_f32_blas,
) -> np.ndarray:
    """Step 1: x1 @ x2 (+ bias) exactly in int32, by `gemm` (every exact GEMM gives the same
    bits; the interpreter passes its choice, `qmmar.interpreter.gemm.chosen_gemm`).

    x1 is [..., k]; x2 is [k, n], or [n, k] when transposed.  The bias add wraps.
    """
    x1, x2 = np.asarray(x1), np.asarray(x2)
    w = x2.T if transpose_x2 else x2
    lead, k = x1.shape[:-1], x1.shape[-1]
    acc = gemm(x1.reshape(math.prod(lead), k), w)  # not -1: k may be 0 (the empty sum, zeros)
    if bias is not None:
        np.add(acc, np.asarray(bias, dtype=np.int32), out=acc)  # two's-complement wrap, as the kernel does
    return acc.reshape(*lead, w.shape[1])


def _channels(scale: np.ndarray) -> np.ndarray:
    """A [1], [n] or [1, n] per-channel vector, ready to broadcast over the last axis."""
    return np.asarray(scale).reshape(-1)


def _scaled(acc: np.ndarray, sc: np.ndarray, pertoken: np.ndarray | None) -> np.ndarray:
    """f32(acc) * sc [* pertoken[m]] in f32, left to right: the product both dequants round."""
    with np.errstate(over="ignore", invalid="ignore"):
        y: np.ndarray = to_f32(acc)  # a new array: scaled in place (a second [m, n] f32 array costs more)
        np.multiply(y, _channels(sc), out=y)
        if pertoken is not None:
            y = y * to_f32(pertoken).reshape(*acc.shape[:-1], 1)
    return y


def dequant_i32(acc: np.ndarray, scale: np.ndarray, pertoken: np.ndarray | None, out_dtype: np.dtype) -> np.ndarray:
    """Step 2: D(f32(acc) * scale [* pertoken[m]]), multiplied left to right, rounded once."""
    return round_to(_scaled(acc, dequant_scale_f32(scale, out_dtype, pertoken is not None), pertoken), out_dtype)


def dequant_reduce_scatter(acc: np.ndarray, x2_scale: np.ndarray, x1_scale: np.ndarray | None,
                           bias: np.ndarray | None, out_dtype: np.dtype) -> np.ndarray:  # fmt: skip
    """aclnnMatmulReduceScatterV2's dequant (docs/sequence-parallel.md):
    D(f32(acc) * x2_scale [* x1_scale[m]] [+ f32(bias)]), left to right in f32, rounded once.

    An f32 x2_scale multiplies as it is, with f16 output too (the AIV epilogue; no
    TransQuantParamV2 truncation, unlike `dequant_i32`); an int64 one is packed, the fixpipe's
    f16(f32(acc) * sc), without x1_scale or bias (the rules MRS-PERTOKEN-F16-SCALE and
    MRS-BIAS-PACKED-SCALE).  The bias is added after the scales, as a float."""
    x2_scale = np.asarray(x2_scale)
    sc = unpack_quant_param(x2_scale) if x2_scale.dtype in (np.int64, np.uint64) else to_f32(x2_scale)
    y = _scaled(acc, sc, None if x1_scale is None else np.asarray(x1_scale).reshape(-1))
    if bias is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            y = y + to_f32(bias)
    return round_to(y, out_dtype)


def aiv_dequant_i32(acc: np.ndarray, scale: np.ndarray, pertoken: np.ndarray | None, out_dtype: np.dtype) -> np.ndarray:
    """The dequant of AllGatherMatmulV2's "aiv" kernel (docs/all-gather-matmul.md): the AIV
    epilogue of MatmulReduceScatterV2, without a bias (AllGatherMatmulV2 takes none on A2/A3)."""
    return dequant_reduce_scatter(acc, scale, pertoken, None, out_dtype)


def dequant_i8(t: np.ndarray, scale: np.ndarray, out_dtype: np.dtype) -> np.ndarray:
    """The last line of step 5: D(f32(t) * f32(s2))."""
    return round_to(to_f32(t) * _channels(to_f32(scale)), out_dtype)


def add(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Step 3: D(f32(y) + f32(x3)), D being the operands' dtype."""
    with np.errstate(invalid="ignore"):
        return round_to(to_f32(lhs) + to_f32(rhs), lhs.dtype)


def quant(z: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """Step 5, first line: sat8(f16(f32(z) / f32(s1)))."""
    rows, s1 = _rows(z), _channels(to_f32(s1))
    return _sat8_via_f16_by_blocks(z.shape, lambda r, buf: np.divide(rows[r], s1, out=buf, dtype=F32))


def reduce_quantized(parts: Sequence[np.ndarray], s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Step 5, second line: sat8(f16(S * f32(f32(s1) / f32(s2)))), S the exact int8 sum."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = _channels(to_f32(s1)) / _channels(to_f32(s2))
    rows = [_rows(p) for p in parts]

    def fill(r: slice, buf: np.ndarray) -> None:
        np.copyto(buf, rows[0][r])
        for part in rows[1:]:
            np.add(buf, part[r], out=buf)  # exact: |S| <= W * 128
        buf *= ratio

    return _sat8_via_f16_by_blocks(parts[0].shape, fill)


def _rows(x: np.ndarray) -> np.ndarray:
    """x as [rows, channels] (a view when x's layout allows)."""
    x = np.asarray(x)
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


def reduce_sum(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Step 4: D(sum of f32(z_r)), summed in f32 in rank order.

    Where the running sum and the next value are both NaN, the sum keeps the running sum's
    NaN, quieted (`_first_nan_kept`): what an x86 add gives for its first operand, and what
    numpy gives except in the last < 16 elements of an array, where its SIMD loop keeps the
    second.  Without the rule, the bits would depend on where an element sits in the array,
    so on how the ranks split the sum between them (`interpreter.functions.all_reduce_sum`)."""
    total = to_f32(parts[0])  # a new array: the sum accumulates in it
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as IEEE says
        for part in parts[1:]:
            np.add(total, part, out=total, dtype=F32)  # f32(part) a buffer at a time: no f32 copy of it
        if len(parts) > 1 and np.isnan(total).any():
            _first_nan_kept(total, parts)
    return round_to(total, parts[0].dtype)


_F32_QUIET = np.uint32(0x00400000)


def _first_nan_kept(total: np.ndarray, parts: Sequence[np.ndarray]) -> None:
    """The NaN elements of `total` summed again in rank order, a NaN running sum kept (quieted)."""
    flat = total.reshape(-1)  # total is a new contiguous array: a view
    where = np.flatnonzero(np.isnan(flat))
    t = to_f32(np.asarray(parts[0]).reshape(-1)[where])
    for part in parts[1:]:
        kept = (t.view(np.uint32) | _F32_QUIET).view(F32)
        t = np.where(np.isnan(t), kept, t + to_f32(np.asarray(part).reshape(-1)[where]))
    flat[where] = t
