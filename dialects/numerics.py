"""The numerics of SEMANTICS.md, in one place.

Every cast, rounding and saturation that the operator performs lives here; the interpreter
of every qmm and mc2 op calls these functions, and the fused op is their composition, so the
fused and unfused programs agree by construction.  Arrays are numpy; bf16 is ml_dtypes'.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np

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
    a value beyond the type's range becomes inf, as IEEE says."""
    x = np.asarray(x, dtype=F32)
    if dtype == F16:
        # numpy's cast takes a slow path per overflowing element (~40x on saturated data);
        # mapping those to inf first gives the same bits.
        x = np.where(np.abs(x) >= F16_OVERFLOW, np.copysign(np.float32(np.inf), x), x)
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype)


def to_f32(x: np.ndarray) -> np.ndarray:
    """f32(v): exact for f16, bf16 and int8; round-to-nearest-even for wide ints."""
    return np.asarray(x).astype(F32)


def sat8(h: np.ndarray) -> np.ndarray:
    """Round a half value to an integer (RNE), saturate to [-128, 127]; NaN becomes 0."""
    r = np.rint(to_f32(h))
    r = np.where(np.isnan(r), np.float32(0), r)
    return np.clip(r, -128, 127).astype(np.int8)


# --- TransQuantParamV2 ---------------------------------------------------------------------


def trans_quant_param(scale: np.ndarray) -> np.ndarray:
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


def matmul_i32(
    x1: np.ndarray, x2: np.ndarray, bias: np.ndarray | None = None, transpose_x2: bool = False
) -> np.ndarray:
    """Step 1: x1 @ x2 (+ bias) exactly in int32, through f32 BLAS over k-chunks.

    x1 is [..., k]; x2 is [k, n], or [n, k] when transposed.  The bias add wraps.
    """
    w = np.asarray(x2).T if transpose_x2 else np.asarray(x2)
    lead, k = x1.shape[:-1], x1.shape[-1]
    a = to_f32(x1).reshape(-1, k)
    wf = to_f32(w)
    acc = np.zeros((a.shape[0], w.shape[1]), dtype=np.int32)
    for start in range(0, k, K_CHUNK):
        stop = min(start + K_CHUNK, k)
        # |acc| <= 65535 * 2**14 < 2**31 for every k the operator accepts: no wrap here.
        acc += np.matmul(a[:, start:stop], wf[start:stop]).astype(np.int32)
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int32)  # two's-complement wrap, as the kernel does
    return acc.reshape(*lead, w.shape[1])


def _channels(scale: np.ndarray) -> np.ndarray:
    """A [1], [n] or [1, n] per-channel vector, ready to broadcast over the last axis."""
    return np.asarray(scale).reshape(-1)


def dequant_i32(acc: np.ndarray, scale: np.ndarray, pertoken: np.ndarray | None, out_dtype: np.dtype) -> np.ndarray:
    """Step 2: D(f32(acc) * scale [* pertoken[m]]), multiplied left to right, rounded once."""
    sc = _channels(dequant_scale_f32(scale, out_dtype, pertoken is not None))
    with np.errstate(over="ignore", invalid="ignore"):
        y = to_f32(acc) * sc
        if pertoken is not None:
            y = y * to_f32(pertoken).reshape(*acc.shape[:-1], 1)
    return round_to(y, out_dtype)


def dequant_i8(t: np.ndarray, scale: np.ndarray, out_dtype: np.dtype) -> np.ndarray:
    """The last line of step 5: D(f32(t) * f32(s2))."""
    return round_to(to_f32(t) * _channels(to_f32(scale)), out_dtype)


def add(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Step 3: D(f32(y) + f32(x3)), D being the operands' dtype."""
    with np.errstate(invalid="ignore"):
        return round_to(to_f32(lhs) + to_f32(rhs), lhs.dtype)


def quant(z: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """Step 5, first line: sat8(f16(f32(z) / f32(s1)))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return sat8(round_to(to_f32(z) / _channels(to_f32(s1)), F16))


def reduce_quantized(parts: Sequence[np.ndarray], s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Step 5, second line: sat8(f16(S * f32(f32(s1) / f32(s2)))), S the exact int8 sum."""
    total = np.sum([to_f32(p) for p in parts], axis=0, dtype=F32)  # exact: |S| <= 8 * 128
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _channels(to_f32(s1)) / _channels(to_f32(s2))
        return sat8(round_to(total * ratio, F16))


def reduce_sum(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Step 4: D(sum of f32(z_r)), summed in f32 in rank order."""
    total = to_f32(parts[0])
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as IEEE says
        for part in parts[1:]:
            total = total + to_f32(part)
    return round_to(total, parts[0].dtype)
