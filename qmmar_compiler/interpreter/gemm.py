"""The exact int8 GEMM the interpreter runs: THE choice between numpy's f32 BLAS
(`numerics.gemm_f32_blas`) and torch's int8 kernel, and one GEMM at a time.

Every op's interpreter (qmm.matmul, the fused mc2 op, the torch.compile custom op through it,
the ideal of `qmmar-run --ideal`) computes step 1 by `exact_matmul`, so all of them make the
same choice (the fused op through `dequantized_matmul`: steps 1 and 2 by blocks of rows).
Both GEMMs are exact for every k the operator accepts (`dialects.numerics`, step 1), so the
choice changes speed only, never a bit.  torch is imported only by a GEMM large
enough to pay for it, and only here: `dialects/` stays numpy-only.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import TYPE_CHECKING

import numpy as np

from qmmar.dialects import numerics as nx

if TYPE_CHECKING:
    import torch  # annotations only: the int8 GEMM imports torch when it runs

_ONE_GEMM_AT_A_TIME = threading.Lock()
"""Either GEMM (torch's OpenMP or numpy's BLAS) already spreads over every core; ranks running
GEMMs at once only contend.  Measured on the fused op benchmark (8 ranks, 1024x4096x1024):
without this lock it took 1.2x the wall time with torch's int8 GEMM, 1.4-1.8x with f32 BLAS,
for the same CPU time; the ranks' element-wise steps still run beside the one GEMM."""


def exact_matmul(x1: np.ndarray, x2: np.ndarray, bias: np.ndarray | None, transpose_x2: bool) -> np.ndarray:
    """Step 1 (`numerics.matmul_i32`) by the chosen GEMM, one rank's GEMM at a time."""
    with _ONE_GEMM_AT_A_TIME:
        return nx.matmul_i32(x1, x2, bias, transpose_x2, gemm=chosen_gemm)


ROW_BLOCK_BYTES = 1 << 22
"""The int32 product of steps 1 and 2 is made this many bytes of rows at a time (at least one
row): a rank holds a block of it and of its f32 image, not [m, n] of each (at W = 8 in threads,
m = 2048, n = 4096: 4 MiB each instead of 32 MiB, times 8 ranks)."""


def dequantized_matmul(
    x1: np.ndarray, x2: np.ndarray, bias: np.ndarray | None, transpose_x2: bool, scale: np.ndarray,
    pertoken: np.ndarray | None, out: np.dtype,
) -> np.ndarray:  # fmt: skip
    """Steps 1 and 2 (`numerics.matmul_i32` by `exact_matmul`, then `numerics.dequant_i32`),
    a block of rows at a time: both are row-wise, so the blocks change no bit."""
    rows = x1.reshape(-1, x1.shape[-1])
    tokens = None if pertoken is None else np.asarray(pertoken).reshape(-1)
    n = x2.shape[0] if transpose_x2 else x2.shape[1]
    y = np.empty((rows.shape[0], n), dtype=out)
    step = max(1, ROW_BLOCK_BYTES // (4 * max(n, 1)))
    for start in range(0, rows.shape[0], step):
        block = slice(start, start + step)
        acc = exact_matmul(rows[block], x2, bias, transpose_x2)
        y[block] = nx.dequant_i32(acc, scale, None if tokens is None else tokens[block], out)
    return y.reshape(*x1.shape[:-1], n)


def chosen_gemm(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[m, k] @ [k, n] by the GEMM `int8_gemm` chooses for these shapes."""
    return int8_gemm(a.shape[0], a.shape[1], w.shape[1])(a, w)


TORCH_MIN_MACS = 1 << 27
"""Below this many multiply-adds (a few ms of f32 BLAS) a GEMM stays on f32 BLAS unless torch
is loaded already (the torch.compile custom op, the PyTorch frontend): importing torch (about
2 s) would cost a small program more than the int8 units save it."""

_may_import_torch = True


def keep_torch_out() -> None:
    """From now on, no GEMM of this process imports torch; a torch that something else loaded
    (a torch.* program, `--library torch`) is still used.  For a process that is one MPI rank:
    importing torch adds about 240 MiB to each rank's process (of it 170 MiB private, measured
    by /proc/self/smaps_rollup), more than the inputs of a rank of the 32-layer prefill
    (benchmarks/interpreter_scale.py: 175 MiB); f32 BLAS takes about 5x torch's CPU time
    for the GEMM there (README, "Benchmarks").  Threads share one torch: they keep it."""
    global _may_import_torch
    _may_import_torch = False


def int8_gemm(m: int, k: int, n: int) -> nx.Gemm:
    """THE choice of exact int8 GEMM for an [m, k] @ [k, n] product: `gemm_int_mm` when it
    is worth it (`TORCH_MIN_MACS` and not `keep_torch_out`, or torch loaded: measured 0.4 ms
    against 1-4 ms of f32 BLAS with its casts at the decoder block's 2048 x 128 x 128) and
    available here (`_int8_units_gemm`), else `numerics.gemm_f32_blas`.  Both give the same
    bits."""
    loaded = sys.modules.get("torch") is not None
    worth_it = loaded or (_may_import_torch and m * k * n >= TORCH_MIN_MACS)
    if worth_it and (gemm := _int8_units_gemm()) is not None:
        return gemm
    return nx.gemm_f32_blas


def gemm_int_mm(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """torch._int_mm, int8 x int8 -> int32 (oneDNN: VNNI or AMX), on numpy's memory.

    torch 2.13's CPU kernel takes any m, k, n (no padding needed).  numpy allocates the
    result, so that a product too large for memory is numpy's MemoryError, as on the BLAS path."""
    import torch

    out = np.empty((a.shape[0], w.shape[1]), dtype=np.int32)
    torch._int_mm(_torch_view(a), _torch_view(w), out=torch.from_numpy(out))
    return out


def _torch_view(x: np.ndarray) -> torch.Tensor:
    """A 2-D int8 array as a tensor on the same memory, with the canonical strides of its
    row- or column-major layout: oneDNN misreads other strides that numpy gives an equal
    layout (a [1, 2] transpose of a [2, 1] array has strides (1, 1): garbage out).  Any other
    layout, and memory torch cannot share (read-only), is copied."""
    import torch

    if x.flags.f_contiguous and not x.flags.c_contiguous:
        return _torch_view(x.T).T
    if not (x.flags.c_contiguous and x.flags.writeable):
        x = np.array(x)
    tensor = torch.from_numpy(x)
    return tensor.as_strided(tensor.shape, (tensor.shape[1], 1))


_INT8_UNITS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""torch.cpu capabilities under which oneDNN's int8 GEMM runs on int8 dot-product units
(without them torch falls back to a naive loop, slower than f32 BLAS)."""


@functools.cache
def _int8_units_gemm() -> nx.Gemm | None:
    """`gemm_int_mm` when torch is installed, the CPU has int8 units and the kernel is exact
    on the extremes here (an int8 path that saturates 16-bit pair sums would not be)."""
    # torch's OpenMP workers would otherwise spin after each GEMM, taking the cores from the
    # other ranks' threads and from numpy's BLAS (README, "Threads"); read when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        return None
    caps = torch.cpu.get_capabilities()
    if not any(caps.get(unit) for unit in _INT8_UNITS) or not _exact_on_extremes(gemm_int_mm):
        return None
    return gemm_int_mm


def _exact_on_extremes(gemm: nx.Gemm) -> bool:
    rows = np.array([[-128] * 64, [127] * 64, [-128, 127] * 32, [127, -128] * 32], dtype=np.int8)
    ref = rows.astype(np.int64) @ rows.T.astype(np.int64)
    return np.array_equal(gemm(rows, rows.T), ref) and np.array_equal(gemm(rows, np.ascontiguousarray(rows.T)), ref)
