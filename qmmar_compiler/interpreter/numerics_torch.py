"""Steps 1 to 4 of the fused op (`dialects.numerics`) on torch's CPU kernels, with the same bits:
what the torch.compile backend's custom op runs (`interpreter.functions.FusedSteps`), where
numpy's casts cost more than the rest of the op (ml_dtypes rounds to bf16 one element at a time).

Numpy arrays in and out, the tensors in between views of the same memory (`to_torch`,
`to_numpy`), so that the fused op's composition and its collectives stay the interpreter's.

Why the bits are numerics' own: every f32 operation here is one IEEE operation on the same
operands in the same order (int32 and f16/bf16 to f32, products left to right, sums in rank
order), and torch rounds f32 to f16/bf16 to nearest, ties to even, overflow to inf, subnormals
kept, as numerics.round_to does.  Only a NaN's bits differ: torch writes 0xFFFF for every bf16
NaN, and which of two NaN operands' payloads an operation keeps depends on operand order (which
a compiler may swap) and, in numpy, on where the element sits (`numerics.reduce_sum`).  So a
step whose f32 result holds a NaN is computed again by `dialects.numerics` itself, whole: one
source of truth for NaNs, at numpy's cost only where there are some.
tests/test_numerics_torch.py checks the bits against `dialects.numerics` on extreme values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from qmmar.dialects import numerics as nx
from qmmar.interpreter.functions import FusedSteps
from qmmar.interpreter.gemm import exact_matmul

NUMPY_DTYPES = {torch.float16: nx.F16, torch.bfloat16: nx.BF16, torch.float32: nx.F32}
"""torch's floating dtypes as `dialects.numerics` names them."""
_TORCH_DTYPES = {n: t for t, n in NUMPY_DTYPES.items()}


def to_torch(array: np.ndarray) -> torch.Tensor:
    """The array as a tensor on the same memory (copied only when not contiguous; a 0-d array
    stays 0-d, which np.ascontiguousarray would make 1-d)."""
    array = np.asarray(array) if array.flags.c_contiguous else np.ascontiguousarray(array)
    if array.dtype == nx.BF16:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def to_numpy(value: torch.Tensor) -> np.ndarray:
    """The tensor's memory as an array, whatever its strides (numpy takes them): no copy."""
    value = value.detach()
    if value.dtype == torch.bfloat16:
        return value.view(torch.int16).numpy().view(nx.BF16)
    return value.numpy()


def _f32(array: np.ndarray) -> torch.Tensor:
    """f32(v) as a new tensor (numerics.to_f32: exact for f16, bf16 and int8, RNE for int32)."""
    return to_torch(np.asarray(array)).to(torch.float32, copy=True)


def _rounded(y: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """numerics.round_to(y, dtype) but for the bits of NaNs (the caller's to replace)."""
    return to_numpy(y.to(_TORCH_DTYPES[dtype]))


def _has_nan(y: torch.Tensor) -> bool:
    """Whether the f32 tensor y holds a NaN.  One sum says whether to look (a NaN makes it NaN;
    so may infinities): torch.isnan of every element costs more than the rest of a step."""
    return bool(torch.isnan(y.sum())) and bool(np.isnan(to_numpy(y)).any())


def dequantized_matmul(
    x1: np.ndarray, x2: np.ndarray, bias: np.ndarray | None, transpose_x2: bool, scale: np.ndarray,
    pertoken: np.ndarray | None, out: np.dtype,
) -> np.ndarray:  # fmt: skip
    """Steps 1 and 2 (`gemm.dequantized_matmul`): the int32 product by `gemm.exact_matmul` (torch's
    int8 GEMM on the arrays' memory where it is THE choice), then D(f32(acc) * scale [* pertoken])."""
    acc = exact_matmul(x1.reshape(-1, x1.shape[-1]), x2, bias, transpose_x2)
    y = _f32(acc).mul_(to_torch(nx.dequant_scale_f32(scale, out, pertoken is not None).reshape(-1)))
    if pertoken is not None:
        y = y * to_torch(nx.to_f32(pertoken)).reshape(-1, 1)
    z = nx.dequant_i32(acc, scale, pertoken, out) if _has_nan(y) else _rounded(y, out)  # step 2 again, not step 1
    return z.reshape(*x1.shape[:-1], acc.shape[-1])


def add(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Step 3 (`numerics.add`): D(f32(y) + f32(x3)), D being y's dtype."""
    y = _f32(lhs).add_(to_torch(np.asarray(rhs)))
    return nx.add(lhs, rhs) if _has_nan(y) else _rounded(y, lhs.dtype)


def reduce_sum(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Step 4 (`numerics.reduce_sum`): D(sum of f32(z_r)), summed in f32 in rank order."""
    total = _f32(parts[0])
    for part in parts[1:]:
        total.add_(to_torch(part))  # f32 + f32(part), a part's elements converted exactly
    return nx.reduce_sum(parts) if _has_nan(total) else _rounded(total, parts[0].dtype)


STEPS = FusedSteps(dequantized_matmul, add, reduce_sum)
