"""torchao's int8 matmul on the CPU (`torchao/kernel/intmm.py`, `_int_scaled_matmul_cpu`), in both
forms it traces: s8s8, `_int_mm(a, b)`; and u8s8 on CPUs with VNNI and no AMX,
`_int_mm(uint8(int32(a) + 128), b) - 128 * sum(b, 0)`, which is `a @ b` exactly in int32.  Every
way of writing the compensation imports as one qmm.matmul, and runs as PyTorch does, bit for bit;
a form that is not the same product (another shift, another axis) stays opaque, with a remark."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402

from helpers import same_bits  # noqa: E402
from qmmar.frontends.torch import import_exported_program, import_graph  # noqa: E402
from qmmar.frontends.torch.interpret import torch_op_functions  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.interpreter.spmd import run_spmd  # noqa: E402
from qmmar.interpreter.values import for_file  # noqa: E402

M, K, N = 32, 64, 48


def compensation(b: torch.Tensor, way: str, shift: int, axis: int) -> torch.Tensor:
    if way == "dtype-keepdim":  # torchao's own: b.sum(dim=0, keepdim=True, dtype=torch.int32) * 128
        return b.sum(dim=axis, keepdim=True, dtype=torch.int32) * shift
    if way == "dtype":
        return shift * b.sum(dim=axis, dtype=torch.int32)
    return b.to(torch.int32).sum(dim=axis, keepdim=True).to(torch.int32) * shift  # "cast": sum of int32 is int64


def int_scaled_matmul(form: str, transposed: bool, way: str = "dtype-keepdim", shift: int = 128, axis: int = 0):
    """torchao's `_int_scaled_matmul_cpu(a, b, scales1)` with b = w or w.t()."""

    def program(a: torch.Tensor, w: torch.Tensor, scales1: torch.Tensor) -> torch.Tensor:
        b = w.t() if transposed else w
        if form == "s8s8":
            c = torch._int_mm(a, b)
        else:
            c = torch._int_mm((a.to(torch.int32) + shift).to(torch.uint8), b)
            c.sub_(compensation(b, way, shift, axis))
        return c.to(scales1.dtype) * scales1

    return program


def inputs(transposed: bool, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-128, 128, (M, K), generator=g, dtype=torch.int8)
    w = torch.randint(-128, 128, (N, K) if transposed else (K, N), generator=g, dtype=torch.int8)
    return a, w, torch.rand(M, 1, generator=g) * 1e-3


def imported(program, args):
    graph = make_fx(torch.func.functionalize(program, remove="mutations"), tracing_mode="fake")(*args).graph
    return import_graph(graph)


def ran(program, args) -> np.ndarray:
    [got] = run_spmd(program.module, [for_file(to_numpy(t)) for t in args], 1,
                     functions=[torch_op_functions(program.module)])  # fmt: skip
    return got[0]


FORMS = [("s8s8", t, "dtype-keepdim") for t in (False, True)]
FORMS += [("u8s8", t, way) for t, way in itertools.product((False, True), ("dtype-keepdim", "dtype", "cast"))]


@pytest.mark.parametrize("form, transposed, way", FORMS)
def test_both_forms_import_as_one_exact_int8_matmul(form, transposed, way):
    program, args = int_scaled_matmul(form, transposed, way), inputs(transposed)
    result = imported(program, args)
    assert result.notes == []
    matmuls = [op for op in result.module.walk() if op.name == "qmm.matmul"]
    assert len(matmuls) == 1 and bool(matmuls[0].transpose_x2.value.data) == transposed
    assert not any(op.name == "torch.aten._int_mm" for op in result.module.walk())
    assert same_bits(ran(result, args), to_numpy(program(*args)))


class IntScaledMatmul(torch.nn.Module):
    """torchao's linear on the CPU, exported: torch.export keeps its in-place `c.sub_(comp)`."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.program = int_scaled_matmul(form, transposed=True)

    def forward(self, a: torch.Tensor, w: torch.Tensor, scales1: torch.Tensor) -> torch.Tensor:
        return self.program(a, w, scales1)


@pytest.mark.parametrize("form", ["s8s8", "u8s8"])
def test_the_exported_forms_import_as_one_exact_int8_matmul(form):
    args = inputs(transposed=True)
    result = import_exported_program(torch.export.export(IntScaledMatmul(form), args))
    assert result.notes == [] and sum(op.name == "qmm.matmul" for op in result.module.walk()) == 1
    assert same_bits(ran(result, args), to_numpy(IntScaledMatmul(form)(*args)))


@pytest.mark.parametrize("shift, axis", [(127, 0), (128, 1)])
def test_another_shift_or_axis_is_not_the_product_and_stays_opaque(shift, axis):
    program, args = int_scaled_matmul("u8s8", False, "dtype-keepdim", shift, axis), inputs(False)
    if axis == 1:  # the sums of a weight's rows, [k, 1], broadcast over [m, n] only when m == k == n
        square = torch.randint(-128, 128, (K, K), dtype=torch.int8)
        args = (square, square.clone(), torch.rand(K, 1) * 1e-3)
    result = imported(program, args)
    assert not any(op.name == "qmm.matmul" for op in result.module.walk())
    assert [n.message for n in result.notes] == [
        "not imported as qmm.matmul: operand 'x1' at position 0 does not verify: x1 and x2 must be int8"
    ]
    assert same_bits(ran(result, args), to_numpy(program(*args)))
