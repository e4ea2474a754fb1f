"""The schemas of the custom ops qmmar knows by name, and how a stand-in registers its kernels
without replacing a real library's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

Kernel = TypeVar("Kernel", bound=Callable[..., object])

SCHEMAS = {
    "npu::npu_dynamic_quant": "(Tensor input, *, Tensor? smooth_scales=None, Tensor? group_index=None, "
    "ScalarType? dst_type=None) -> (Tensor, Tensor)",
    "npu::npu_quantize": "(Tensor input, Tensor scales, Tensor? zero_points, ScalarType dtype, int axis=1, "
    "bool div_mode=True) -> Tensor",
    "npu::npu_quant_matmul": "(Tensor x1, Tensor x2, Tensor scale, *, Tensor? offset=None, "
    "Tensor? pertoken_scale=None, Tensor? bias=None, ScalarType? output_dtype=None, "
    "SymInt[]? group_sizes=None) -> Tensor",
    "npu::npu_add_rms_norm": "(Tensor x1, Tensor x2, Tensor gamma, float epsilon=1e-06) -> (Tensor, Tensor, Tensor)",
    "vllm::quantize": "(Tensor in_tensor, Tensor input_scale, Tensor input_scale_reciprocal, "
    "Tensor input_offset) -> Tensor",
    "vllm::all_reduce": "(Tensor tensor, str group_name) -> Tensor",
}
"""The custom ops qmmar knows by name (torch_npu's documented schemas; vLLM-Ascend's `quantize`
as it registers it, vLLM's `all_reduce`).  Declared when no library in the process defines
them, so that a program calling them loads without torch_npu or vLLM."""


def _defined(qualified: str) -> bool:
    namespace, name = qualified.split("::")
    try:
        getattr(getattr(torch.ops, namespace), name).default  # noqa: B018
        return True
    except (AttributeError, RuntimeError):
        return False


def declare_schemas() -> None:
    """Declare every op of SCHEMAS that no library in this process defines."""
    for qualified, schema in SCHEMAS.items():
        if not _defined(qualified):
            torch.library.define(qualified, schema)  # in a FRAGMENT library torch keeps alive


def stand_in(qualified: str, fake: Callable[..., object]) -> Callable[[Kernel], Kernel]:
    """A decorator: the function is the op's CPU kernel, `fake` its fake (meta) kernel, each
    registered only where the op has none (a real library's kernels stay)."""

    def register(kernel: Kernel) -> Kernel:
        declare_schemas()
        if not torch._C._dispatch_has_kernel_for_dispatch_key(qualified, "CPU"):
            torch.library.impl(qualified, "cpu")(kernel)
        if not torch._C._dispatch_has_kernel_for_dispatch_key(qualified, "Meta"):
            torch.library.register_fake(qualified)(fake)
        return kernel

    return register
