"""`torch.ops.qmmar.to_bf16_exact(x, name)`: an f32 tensor as bf16, checked to change nothing.

The torch.compile backend fuses an f32 dequant scale for bf16 output under numerics=exact when
every value of the parameter it is was a bf16 value at compile time (`parameter_values.py`).
Dynamo does not guard values: a parameter changed after compiling (a new checkpoint loaded in
place, a training step) would silently be rounded.  The fused graph narrows the scale through
this op instead, which raises, naming the parameter, when a value is not a bf16 value.  The scale
is [n] or [1]: the check is cheap beside the matmul it scales.
"""

import torch
from torch import Tensor


def not_bf16_values(x: Tensor) -> Tensor:
    """Which f32 values are not bf16 values: their low 16 bits are not all zero (the test of
    `numerics.is_bf16_exact`, on a tensor of any device)."""
    return (x.view(torch.int32) & 0xFFFF) != 0


@torch.library.custom_op("qmmar::to_bf16_exact", mutates_args=())
def to_bf16_exact(x: Tensor, name: str) -> Tensor:
    """x (f32) as bf16; a RuntimeError naming the parameter when a value is not a bf16 value."""
    if x.dtype != torch.float32:
        raise RuntimeError(f"qmmar.to_bf16_exact: {name} is {x.dtype}, not float32")
    wrong = not_bf16_values(x)
    if bool(wrong.any()):
        first = int(wrong.flatten().nonzero()[0])
        raise RuntimeError(f"qmmar: {name}[{first}] = {x.flatten()[first].item()!r} is not a bf16 value, but this "
                           "graph was compiled when every value of it was, and takes it as bf16 (numerics=exact): "
                           "compile again (torch._dynamo.reset()), or compile with numerics=relaxed")  # fmt: skip
    return x.to(torch.bfloat16)


@to_bf16_exact.register_fake
def _(x: Tensor, name: str) -> Tensor:
    return torch.empty_like(x, dtype=torch.bfloat16)
