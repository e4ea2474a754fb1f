"""The importer is total: whatever dtypes a quantised matmul is written with (torch_npu's
npu_quant_matmul with any scale, per-token scale, bias, offset and output dtype; `_int_mm` on int8
or uint8 with a dequant by a scale of any float dtype), the program imports.  A pattern becomes
qmm only where qmm computes what PyTorch computes (then the imported program is PyTorch eager
bit for bit); anything else stays opaque, with a remark at its node that says why (the whole
reason, never cut at a colon)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402
from xdsl.dialects.builtin import UnregisteredOp  # noqa: E402

import qmmar.frontends.torch.standins  # noqa: E402,F401  (npu.npu_quant_matmul on the CPU)
from helpers import same_bits  # noqa: E402
from qmmar.frontends.torch import import_graph  # noqa: E402
from qmmar.frontends.torch.interpret import torch_op_functions  # noqa: E402
from qmmar.interpreter.numerics_torch import to_numpy  # noqa: E402
from qmmar.interpreter.spmd import run_spmd  # noqa: E402
from qmmar.interpreter.values import for_file  # noqa: E402

M, K, N = 32, 16, 32
FLOATS = [torch.float32, torch.bfloat16, torch.float16]


def _tensor(dtype: torch.dtype, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Values a quantised program holds: integers over their range, scales in [1e-3, 1e-2)."""
    if dtype == torch.int64:  # a scale packed as TransQuantParamV2 packs it
        scale = torch.rand(shape, generator=g) * 9e-3 + 1e-3
        return (scale.view(torch.int32).to(torch.int64) & 0xFFFFE000) | (1 << 46)
    if dtype == torch.int32:
        return torch.randint(-5000, 5000, shape, generator=g, dtype=dtype)
    if dtype == torch.int8:
        return torch.randint(-128, 128, shape, generator=g, dtype=dtype)
    return (torch.rand(shape, generator=g) * 9e-3 + 1e-3).to(dtype)


def _unsigned(q: torch.Tensor) -> torch.Tensor:
    """int8 as uint8 by +128 (how torchao feeds int8 activations to a u8s8 kernel)."""
    return (q.to(torch.int32) + 128).to(torch.uint8)


@st.composite
def npu_quant_matmuls(draw):
    """npu_quant_matmul(x1, x2 (or its transpose), scale, pertoken_scale=, bias=, offset=, output_dtype=)."""
    spec = {
        "x1": (torch.int8, (M, K)),
        "x2": (torch.int8, (N, K) if draw(st.booleans()) else (K, N)),
        "scale": (draw(st.sampled_from([*FLOATS, torch.int64])), (N,)),
        "pertoken_scale": (draw(st.sampled_from([None, torch.float32, torch.bfloat16])), (M,)),
        "bias": (draw(st.sampled_from([None, torch.int32, *FLOATS])), (N,)),
        "offset": (draw(st.sampled_from([None, torch.float32])), (N,)),
    }
    output, unsigned = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.int8])), draw(st.booleans())
    names = [k for k, (dtype, _) in spec.items() if dtype is not None]

    def program(*tensors):
        t = dict(zip(names, tensors, strict=True))
        x2 = t["x2"].t() if t["x2"].shape[0] == N else t["x2"]
        x1 = _unsigned(t["x1"]) if unsigned else t["x1"]
        optional = {k: t.get(k) for k in ("pertoken_scale", "bias", "offset")}
        return torch.ops.npu.npu_quant_matmul(x1, x2, t["scale"], **optional, output_dtype=output)

    return program, [spec[k] for k in names]


@st.composite
def int_mm_dequants(draw):
    """D(f32(_int_mm(x, w)) * scale [* pertoken[:, None]]), x and w int8 or uint8 (+128)."""
    x_unsigned, w_unsigned = draw(st.booleans()), draw(st.booleans())
    scale, out = draw(st.sampled_from(FLOATS)), draw(st.sampled_from([torch.float16, torch.bfloat16]))
    pertoken = draw(st.booleans())

    def program(q, weight, s, *p):
        x, w = _unsigned(q) if x_unsigned else q, _unsigned(weight) if w_unsigned else weight
        y = torch._int_mm(x, w).float() * s
        return (y * p[0][:, None] if p else y).to(out)

    operands = [(torch.int8, (M, K)), (torch.int8, (K, N)), (scale, (N,))]
    return program, operands + ([(torch.float32, (M,))] if pertoken else [])


@given(case=st.one_of(npu_quant_matmuls(), int_mm_dequants()), seed=st.integers(0, 2**16))
def test_every_quantised_matmul_imports_as_qmm_exactly_or_opaque_with_a_remark(case, seed):
    program, spec = case
    g = torch.Generator().manual_seed(seed)
    inputs = [_tensor(dtype, shape, g) for dtype, shape in spec]
    try:
        graph = make_fx(program, tracing_mode="fake")(*inputs).graph
    except RuntimeError:  # PyTorch itself refuses these operands (an _int_mm on uint8 weights)
        return
    imported = import_graph(graph)  # never raises
    noted = {note.node: note.message for note in imported.notes}
    for op in imported.module.walk():
        if isinstance(op, UnregisteredOp) and op.op_name.data in ("torch.npu.npu_quant_matmul", "torch.aten._int_mm"):
            node = imported.origins[op][0].name
            assert noted.get(node, "").startswith("not imported as qmm."), (op.op_name.data, noted)
            assert not noted[node].endswith(":")
    try:
        eager = program(*inputs)
    except (NotImplementedError, RuntimeError):  # a case the stand-in (or PyTorch) does not compute
        return
    arrays = [for_file(to_numpy(t)) for t in inputs]
    [got] = run_spmd(imported.module, arrays, 1, functions=[torch_op_functions(imported.module)])
    assert same_bits(got[0], np.asarray(to_numpy(eager)))
