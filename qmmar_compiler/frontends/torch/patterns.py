"""The multi-node patterns of a quantised program, read backwards from their last node.

A pattern matches only when PyTorch computes exactly what the qmm op computes
(SEMANTICS.md): same casts, same operation order, one rounding where qmm rounds once.  A
program that is almost the pattern (the structure is there, the numerics are not) gets a
`NearMiss` saying why, and stays as PyTorch wrote it.  Patterns read through the nodes
they cover without claiming them: a covered node that has other users is imported as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
import torch
from torch.fx import Node
from torch.fx.node import Argument

from qmmar.dialects import numerics as nx
from qmmar.frontends.torch.meta import Dim, dtype_of, is_tensor, short, sym_shape, tensor_arg
from qmmar.interpreter.numerics_torch import NUMPY_DTYPES

F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16
OUT_DTYPES = (F16, BF16)
CASTS = ("aten.to.dtype", "aten._to_copy.default", "prims.convert_element_type.default")
VIEWS = ("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default", "aten.unsqueeze.default")


def target_name(node: object) -> str:
    """`aten.mul.Tensor` for an ATen/custom op node, '' for anything else."""
    if not isinstance(node, Node) or node.op != "call_function":
        return ""
    return str(node.target) if isinstance(node.target, torch._ops.OpOverload) else ""


@dataclass(frozen=True)
class NearMiss:
    """The node looks like a qmm pattern, but PyTorch's numerics differ from qmm's."""

    node: Node
    reason: str


@dataclass(frozen=True)
class UnsignedMatmul:
    """qmm.matmul x1, x2 written for a u8s8 kernel (torchao on CPUs with VNNI and no AMX):
    _int_mm(uint8(int32(x1) + 128), x2) - 128 * colsum(x2), all in int32.  It is x1 @ x2 exactly:
    the shifted product and the compensation wrap modulo 2^32 as qmm.matmul's sum does."""

    x1: Node
    x2: Node
    covers: tuple[Node, ...]


@dataclass(frozen=True)
class Dequant:
    """qmm.dequant x, scale [pertoken(...)]: D(f32(x) * f32(scale) [* pertoken])."""

    x: Node
    scale: Node
    pertoken: Node | None
    pertoken_is_column: bool  # the pertoken node is [m, 1]: the importer views it as [m]
    covers: tuple[Node, ...]
    viewed: bool = False  # the root views the dequant's [m, n] rows as another shape ([b, s, n])
    change: str | None = None  # numerics=relaxed: what the import changes of the program's numerics


@dataclass(frozen=True)
class Quant:
    """qmm.quant x, scale: sat8(f16(f32(x) / f32(scale)))."""

    x: Node
    scale: Node
    covers: tuple[Node, ...]


@dataclass(frozen=True)
class RequantSum:
    """qmm.reducesum x s1 s2: sat8(f16(sum_0(f32(x)) * f32(f32(s1) / f32(s2))))."""

    x: Node
    s1: Node
    s2: Node
    covers: tuple[Node, ...]


def cast_source(node: object, to: tuple[torch.dtype, ...] | None = None) -> Node | None:
    """The input of a pure dtype cast (optionally: only a cast to one of `to`)."""
    if not isinstance(node, Node) or target_name(node) not in CASTS or (source := tensor_arg(node)) is None:
        return None
    if to is not None and dtype_of(node) not in to:
        return None
    return source


def operands(node: Node, name: str) -> tuple[Node, Node] | None:
    """(lhs, rhs) of a tensor-tensor `mul`/`div`, or None."""
    if target_name(node) != name or len(node.args) != 2 or node.kwargs:
        return None
    lhs, rhs = node.args
    return (lhs, rhs) if is_tensor(lhs) and is_tensor(rhs) else None


def same_size(a: Dim, b: Dim) -> bool:
    return bool(sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0)


def is_channel_vector(node: Node, n: Dim, per_tensor: bool = False) -> bool:
    """[n] or [1, n]; also [1] when per_tensor (the shapes qmm's scales take)."""
    shape = sym_shape(node)
    if len(shape) == 1:
        return same_size(shape[0], n) or (per_tensor and shape[0] == 1)
    return len(shape) == 2 and shape[0] == 1 and same_size(shape[1], n)


def transposed_source(node: Node) -> Node | None:
    """x when node is x's transpose, x 2-D (aten.t, transpose(0, 1), permute([1, 0]))."""
    name = target_name(node)
    if not name or (source := tensor_arg(node)) is None or len(sym_shape(source)) != 2:
        return None
    if name == "aten.t.default":
        return source
    if name == "aten.transpose.int" and (dims := int_list(node.args[1:3])) is not None:
        return source if {d % 2 for d in dims} == {0, 1} else None
    if name == "aten.permute.default" and (dims := int_list(node.args[1])) is not None:
        return source if [d % 2 for d in dims] == [1, 0] else None
    return None


def int_list(value: object) -> list[int] | None:
    """A list or tuple of ints (dimensions), as a list; None for anything else."""
    if not isinstance(value, list | tuple):
        return None
    ints = [v for v in value if isinstance(v, int)]
    return ints if len(ints) == len(value) else None


def _per_token(node: Node, m: Dim) -> tuple[Node, bool, tuple[Node, ...]] | None:
    """An f32 [m, 1] column: (its [m] source, False, the view) or (itself, True, ())."""
    shape = sym_shape(node)
    if dtype_of(node) != F32 or len(shape) != 2 or shape[1] != 1 or not same_size(shape[0], m):
        return None
    source = node.args[0] if target_name(node) in VIEWS else None
    if isinstance(source, Node) and is_tensor(source) and len(sym_shape(source)) == 1:
        return source, False, (node,)
    return node, True, ()


def _channel_scale(node: Node, out: torch.dtype, int8_input: bool) -> tuple[Node, tuple[Node, ...]] | str:
    """The scale qmm reads (f32, or bf16/f16 read exactly as f32), or why this one is not."""
    inner = cast_source(node, (F32,))
    source, covers = (node, ()) if inner is None else (inner, (node,))
    dtype = dtype_of(source)
    if int8_input:
        if dtype != out:
            return f"the scale of an int8 dequant must have the output's dtype ({short(out)}), not {short(dtype)}"
    elif dtype not in (F32, BF16):
        return (
            f"the dequant scale is {short(dtype)}: qmm takes bf16 or f32 (or a packed int64 through npu_quant_matmul)"
        )
    return source, covers


PERTOKEN_FIRST = (
    "the dequant multiplies by the per-token scale before the channel scale: the kernel "
    "multiplies by the channel scale first, then by the per-token scale (another rounding)"
)


def _accumulator(node: Node) -> Node | None:
    """x in f32(x), x an int32 accumulator or an int8 gathered sum."""
    x = cast_source(node, (F32,))
    return x if x is not None and dtype_of(x) in (torch.int32, torch.int8) else None


def match_dequant(root: Node) -> Dequant | NearMiss | None:
    """D(f32(x) * scale [* pertoken[:, None]]), x int32 (or int8), multiplied left to right in
    f32 and rounded once to D."""
    src = cast_source(root, OUT_DTYPES)
    if src is None or dtype_of(src) != F32 or (outer := operands(src, "aten.mul.Tensor")) is None:
        return None
    out, acc_shape = dtype_of(root), sym_shape(src)
    pair, pertoken = outer, None
    for a, b in (outer, outer[::-1]):  # a per-token column multiplied last: (x * scale) * pertoken
        found, scaled = _per_token(b, acc_shape[0]), operands(a, "aten.mul.Tensor")
        if found is not None and scaled is not None:
            pair, pertoken = scaled, (a, found)
            break
    for c, s in (pair, pair[::-1]):
        if (x := _accumulator(c)) is None:
            continue
        int8_input = dtype_of(x) == torch.int8
        if pertoken is not None and (int8_input or len(acc_shape) != 2):
            return NearMiss(root, "a per-token scale applies to a 2-D int32 accumulator only")
        if not is_channel_vector(s, acc_shape[-1], per_tensor=True):
            why = "the dequant scale is not a per-channel vector [n], [1, n] or [1]"
            return NearMiss(root, _pertoken_first(root) if _per_token(s, acc_shape[0]) is not None else why)
        scale = _channel_scale(s, out, int8_input)
        if isinstance(scale, str):
            return NearMiss(root, scale)
        if not int8_input and out == F16 and dtype_of(scale[0]) == F32 and pertoken is None:
            return NearMiss(root, "dequant to f16 by an f32 scale without a per-token scale: Ascend packs the "
                            "scale (TransQuantParamV2 keeps 10 mantissa bits), PyTorch multiplies by all 23: "
                            "not the MC2 numerics (pass a packed int64 scale to npu_quant_matmul)")  # fmt: skip
        covers = (root, src, c, *scale[1])
        if pertoken is None:
            return Dequant(x, scale[0], None, False, covers)
        product, (column, is_column, views) = pertoken
        return Dequant(x, scale[0], column, is_column, (*covers, product, *views))
    for a in outer:  # (f32(x) * pertoken) * scale
        inner = operands(a, "aten.mul.Tensor")
        if inner is not None and any(_accumulator(c) is not None for c in inner):
            if any(_per_token(c, acc_shape[0]) is not None for c in inner):
                return NearMiss(root, PERTOKEN_FIRST)
    return None


def _pertoken_first(root: Node) -> str:
    """Why D(f32(x) * pertoken) is not a dequant; for torchao's form, that relaxed takes it."""
    if _rounded_root(root) is None:
        return PERTOKEN_FIRST
    return (f"{PERTOKEN_FIRST}, and the program rounds to {short(dtype_of(root))} before the channel scale; "
            "or numerics=relaxed, which imports it as qmm.dequant (the channel scale first, one rounding)")  # fmt: skip


def match_rounded_dequant(root: Node) -> Dequant | None:
    """torchao's int8 linear (`Int8Tensor`'s over `_int_scaled_matmul_cpu`, both matmul forms):
    D(V(f32(D(f32(x) * pertoken[:, None])) * scale)) with an f32 scale, V an optional view of the
    rows; or D(f32(x) * pertoken[:, None]) * scale in D with a scale in D: the per-token scale
    first, rounded to D in between, the channel scale after.  The same function as qmm.dequant
    x, scale, pertoken up to rounding: imported as one under numerics=relaxed, with what changes
    (`Dequant.change`)."""
    if (found_product := _rows_product(root)) is None:
        return None
    product, view = found_product
    out = dtype_of(root)
    pair = operands(product, "aten.mul.Tensor")
    if pair is None or len(sym_shape(product)) != 2:
        return None
    m, n = sym_shape(product)
    for rounded, s in (pair, pair[::-1]):
        inner = cast_source(rounded, (out,))
        if inner is None or dtype_of(inner) != F32 or not is_channel_vector(s, n, per_tensor=True):
            continue
        if (scaled := operands(inner, "aten.mul.Tensor")) is None:
            continue
        scale = _channel_scale(s, out, int8_input=False)
        for c, p in (scaled, scaled[::-1]):
            x, found = _accumulator(c), _per_token(p, m)
            if x is None or dtype_of(x) != torch.int32 or found is None or isinstance(scale, str):
                continue
            column, is_column, views = found
            between = () if view is None else (view,)
            covers = tuple(dict.fromkeys((root, *between, product, rounded, inner, c, *scale[1], *views)))
            u = nx.UNIT_ROUNDOFF[NUMPY_DTYPES[out]]
            change = (f"numerics=relaxed: imported as qmm.dequant, which multiplies by the channel scale, then the "
                      f"per-token scale, and rounds once to {short(out)}; the program multiplies by the per-token "
                      f"scale first and rounds to {short(out)} in between: before the last rounding each value "
                      f"changes by at most {u} of |acc * scale * pertoken| (plus two f32 roundings), and so each "
                      f"output by at most that and one {short(out)} ulp")  # fmt: skip
            return Dequant(x, scale[0], column, is_column, covers, view is not None, change)
    return None


def _rows_product(root: Node) -> tuple[Node, Node | None] | None:
    """(the [m, n] product, the view of it that the root reads, if any) where the root of a
    rounded dequant can end: a multiply in D is its own product; a cast to D reads an f32 one,
    or a view of it."""
    if target_name(root) == "aten.mul.Tensor" and is_tensor(root) and dtype_of(root) in OUT_DTYPES:
        return root, None
    source = cast_source(root, OUT_DTYPES)
    if source is None or dtype_of(source) != F32:
        return None
    if target_name(source) not in VIEWS:
        return source, None
    product = tensor_arg(source)
    return None if product is None else (product, source)


def _rounded_root(node: Node) -> Node | None:
    """The root of `match_rounded_dequant` whose per-token product, rounded, is node."""
    users = _value_users(node)
    if len(users) != 1 or target_name(users[0]) != "aten.mul.Tensor":
        return None
    if match_rounded_dequant(users[0]) is not None:  # scaled in D
        return users[0]
    if len(roots := _value_users(users[0])) != 1:
        return None
    root = roots[0]
    if target_name(root) in VIEWS and len(viewed := _value_users(root)) == 1:
        root = viewed[0]
    return root if match_rounded_dequant(root) is not None else None


def _value_users(node: Node) -> list[Node]:
    """The nodes that read node's value (not torch.export's metadata checks)."""
    return [u for u in node.users if target_name(u) != "aten._assert_tensor_metadata.default"]


SHIFT = 128
"""int8 + 128 is uint8: the shift a u8s8 kernel's operand takes."""


def _shifted_int8(node: Node) -> tuple[Node, tuple[Node, ...]] | None:
    """q in uint8(int32(q) + 128), q int8."""
    added = cast_source(node, (torch.uint8,))
    if added is None or target_name(added) != "aten.add.Tensor" or added.kwargs or dtype_of(added) != torch.int32:
        return None
    widened = next((a for a in added.args if isinstance(a, Node)), None)
    if widened is None or [a for a in added.args if a is not widened] != [SHIFT]:
        return None
    q = cast_source(widened, (torch.int32,))
    return (q, (node, added, widened)) if q is not None and dtype_of(q) == torch.int8 else None


def _column_sums_times_shift(node: Node, x2: Node) -> tuple[Node, ...] | None:
    """The nodes of 128 * sum(x2, 0) in int32 (keepdim or not, x2 summed as int32), or None."""
    if target_name(node) != "aten.mul.Tensor" or node.kwargs or dtype_of(node) != torch.int32:
        return None
    product = next((a for a in node.args if isinstance(a, Node)), None)
    if product is None or [a for a in node.args if a is not product] != [SHIFT]:
        return None
    narrowed = cast_source(product, (torch.int32,))  # an int64 sum cast back: the same sum modulo 2^32
    summed = product if narrowed is None else narrowed
    if target_name(summed) != "aten.sum.dim_IntList" or int_list(summed.args[1]) not in ([0], [-2]):
        return None
    nodes = (node, product) if narrowed is None else (node, product, summed)
    source = summed.args[0]
    if source is x2:
        return nodes
    if isinstance(source, Node) and cast_source(source, (torch.int32,)) is x2:
        return (*nodes, source)
    return None


SUBTRACTIONS = ("aten.sub.Tensor", "aten.sub_.Tensor")
"""torch.compile's graphs are functional; torch.export keeps torchao's in-place `c.sub_(comp)`."""


def match_unsigned_matmul(root: Node) -> UnsignedMatmul | None:
    """_int_mm(uint8(int32(x1) + 128), x2) - 128 * sum(x2, 0), x1 and x2 int8, all int32 (in
    place or not: the product is read by the subtraction alone)."""
    pair = next((p for name in SUBTRACTIONS if (p := operands(root, name)) is not None), None)
    if pair is None or dtype_of(root) != torch.int32:
        return None
    product, compensation = pair
    if target_name(product) != "aten._int_mm.default" or len(product.users) != 1:
        return None
    shifted, x2 = product.args
    if not (is_tensor(shifted) and is_tensor(x2)) or dtype_of(x2) != torch.int8:
        return None
    x1 = _shifted_int8(shifted)
    sums = _column_sums_times_shift(compensation, x2)
    if x1 is None or sums is None:
        return None
    return UnsignedMatmul(x1[0], x2, (root, product, *x1[1], *sums))


def match_low_precision_dequant(node: Node) -> NearMiss | None:
    """A multiply whose operand is an int32 accumulator cast straight to f16/bf16."""
    pair = operands(node, "aten.mul.Tensor")
    if pair is None or dtype_of(node) not in OUT_DTYPES:
        return None
    for operand in pair:
        x = cast_source(operand, OUT_DTYPES)
        if x is not None and dtype_of(x) == torch.int32:
            return NearMiss(node, f"the dequant multiplies in {short(dtype_of(node))}, not f32: not the MC2 numerics "
                            "(cast the int32 accumulator to f32, multiply, then cast once)")  # fmt: skip
    return None


def _clamp(node: Node) -> tuple[Node, list[Argument], tuple[Node, ...]] | None:
    """(x, [lo, hi], the nodes) for clamp(x, lo, hi), or for the form Inductor decomposes a
    low-precision clamp into, D(clamp_max(clamp_min(f32(x), lo), hi)) with x of dtype D, which
    is the same clamp (the result is x or a bound; -128 and 127 are exact in f16 and bf16)."""
    if target_name(node) == "aten.clamp.default":
        x = tensor_arg(node)
        bounds = [*node.args[1:3], node.kwargs.get("min"), node.kwargs.get("max")][:2]
        return None if x is None else (x, bounds, (node,))
    upper = cast_source(node)
    if upper is None or target_name(upper) != "aten.clamp_max.default":
        return None
    lower = tensor_arg(upper)
    if lower is None or target_name(lower) != "aten.clamp_min.default" or (f32 := tensor_arg(lower)) is None:
        return None
    x = cast_source(f32, (F32,))
    if x is None or dtype_of(x) != dtype_of(node):
        return None
    return x, [lower.args[1], upper.args[1]], (node, upper, lower, f32)


def _sat8_input(root: Node) -> tuple[Node, tuple[Node, ...]] | NearMiss | None:
    """h in int8(clamp(round(h), -128, 127)), round and clamp in either order."""
    src = cast_source(root, (torch.int8,))
    if src is None:
        return None
    if (clamp := _clamp(src)) is not None:  # clamp(round(h))
        rounded, bounds, clamp_nodes = clamp
        if target_name(rounded) != "aten.round.default" or (h := tensor_arg(rounded)) is None:
            return None
        covers = (root, *clamp_nodes, rounded)
    elif (
        target_name(src) == "aten.round.default"
        and (clamped := tensor_arg(src)) is not None
        and (clamp := _clamp(clamped)) is not None
    ):
        h, bounds, clamp_nodes = clamp
        covers = (root, src, *clamp_nodes)
    else:
        return None
    if bounds != [-128, 127]:
        return NearMiss(root, f"the quant clamps to {bounds}, not [-128, 127]")
    return h, covers


def _without_f16_step(root: Node, h: Node, n: object) -> NearMiss | None:
    """A per-channel quotient rounded in another dtype than f16."""
    q = operands(h, "aten.div.Tensor")
    if q is None or not is_channel_vector(q[1], n):
        return None
    return NearMiss(root, f"the quant rounds a {short(dtype_of(h))} quotient, not an f16 one: SEMANTICS computes "
                    "sat8(f16(f32(x) / f32(scale))) (cast the quotient to f16 before rounding)")  # fmt: skip


def match_quant(root: Node) -> Quant | RequantSum | NearMiss | None:
    """int8(clamp(round(f16(f32(x) / f32(s))))) or the requantised sum of an all-to-all."""
    found = _sat8_input(root)
    if not isinstance(found, tuple):
        return found
    h, covers = found
    n = sym_shape(h)[-1] if sym_shape(h) else 1
    if dtype_of(h) != F16:
        return _without_f16_step(root, h, n)
    if (q := operands(h, "aten.div.Tensor")) is not None:  # f16 / f16: one f16 rounding of the f32 quotient
        return Quant(q[0], q[1], covers) if _quant_operands_ok(q[0], q[1], F16) else None
    quotient = cast_source(h, (F16,))
    if quotient is None or dtype_of(quotient) != F32:
        return None
    covers = (*covers, h, quotient)
    if (q := operands(quotient, "aten.div.Tensor")) is not None:
        x, s = _f32_of(q[0], OUT_DTYPES), _f32_of(q[1], OUT_DTYPES)
        if x is None or s is None or not _quant_operands_ok(x, s, dtype_of(x)):
            return None
        return Quant(x, s, (*covers, *q))
    if (p := operands(quotient, "aten.mul.Tensor")) is not None:
        for total, ratio in (p, p[::-1]):
            summed = _sum_over_ranks(total)
            scales = operands(ratio, "aten.div.Tensor")
            if summed is None or scales is None:
                continue
            s1, s2 = _f32_of(scales[0], OUT_DTYPES), _f32_of(scales[1], OUT_DTYPES)
            if s1 is None or s2 is None or dtype_of(s1) != dtype_of(s2):
                continue
            if is_channel_vector(s1, n) and is_channel_vector(s2, n):
                return RequantSum(summed[0], s1, s2, (*covers, *p, *scales, *summed[1]))
    return None


def _f32_of(node: Node, dtypes: tuple[torch.dtype, ...]) -> Node | None:
    source = cast_source(node, (F32,))
    return source if source is not None and dtype_of(source) in dtypes else None


def _quant_operands_ok(x: Node, s: Node, dtype: torch.dtype) -> bool:
    shape = sym_shape(x)
    return (
        dtype in OUT_DTYPES and dtype_of(x) == dtype_of(s) == dtype and bool(shape) and is_channel_vector(s, shape[-1])
    )


def _sum_over_ranks(node: Node) -> tuple[Node, tuple[Node, ...]] | None:
    """x in sum(f32(x), [0]) for an int8 x [W, c, ...] (the sum is exact in f32)."""
    if target_name(node) != "aten.sum.dim_IntList" or int_list(node.args[1]) != [0]:
        return None
    if len(node.args) > 2 and node.args[2] or node.kwargs.get("keepdim"):
        return None
    source = node.args[0]
    assert isinstance(source, Node)
    x = _f32_of(source, (torch.int8,))
    if x is not None and len(sym_shape(x)) >= 2:
        return x, (node, source)
    return None
