"""Interpreter functions for qmm, mc2 and the builtin ops a real program uses.

Values are numpy arrays.  Every op's arithmetic is a call into `dialects.numerics` (the int8
GEMM's through `interpreter.gemm.exact_matmul`), and the fused mc2 op is the composition of the
primitive ops' semantics (same functions, same collectives), so the fused and unfused programs
agree bit for bit by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from xdsl.dialects import arith, tensor
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    I64,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    IndexType,
    IntegerAttr,
    TensorType,
)
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.irdl import IRDLOperation
from xdsl.irdl.constraints import VerificationContext
from xdsl.utils.exceptions import VerifyException

from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import ranks
from qmmar.dialects.dtypes import dtype_name, numpy_dtype
from qmmar.dialects.location import location_text
from qmmar.dialects.mc2 import QuantMatmulAllReduceOp, TransQuantParamOp
from qmmar.dialects.mc2_all_gather import AllGatherQuantMatmulOp
from qmmar.dialects.mc2_reduce_scatter import QuantMatmulReduceScatterOp
from qmmar.dialects.qmm import (
    AddOp,
    AllGatherOp,
    AllReduceOp,
    AllToAllOp,
    CollectiveOp,
    DequantOp,
    MatmulOp,
    QuantOp,
    ReduceScatterOp,
    ReduceSumOp,
    tensor_type_of,
)
from qmmar.interpreter.all_gather_matmul import all_gather_quant_matmul
from qmmar.interpreter.comm import Communicator, Site
from qmmar.interpreter.gemm import dequantized_matmul, exact_matmul


class RunError(Exception):
    """A run-time failure of one op, named with its location."""


def value_dtype(type_attr: Attribute) -> np.dtype:
    assert isinstance(type_attr, TensorType)
    return numpy_dtype(dtype_name(type_attr.element_type))


FusedOp = QuantMatmulAllReduceOp | QuantMatmulReduceScatterOp | AllGatherQuantMatmulOp


def _site(op: CollectiveOp | FusedOp) -> Site:
    return Site(op.name, location_text(op.location), op.group.data, op.world_size.value.data)


def all_gather_rows(comm: Communicator, x: np.ndarray, site: Site) -> np.ndarray:
    """qmm.allgather: [c, ...] -> [W*c, ...], rank order."""
    return np.concatenate(comm.all_gather(x, site), axis=0)


def all_to_all_rows(comm: Communicator, x: np.ndarray, site: Site) -> np.ndarray:
    """qmm.alltoall: [d0, ...] -> [W, d0/W, ...]; result[j] is chunk `rank` of rank j's x."""
    w = comm.world_size
    if x.shape[0] % w:
        raise RunError(f"leading dim {x.shape[0]} is not divisible by world_size {w}")
    return np.stack(comm.all_to_all(np.split(x, w, axis=0), site))


def rank_share(comm: Communicator, rows: np.ndarray, site: Site) -> list[np.ndarray]:
    """This rank's 1/W share of the rows of every rank's `rows` [r, ...], in rank order (an
    all-to-all); the rows are padded with zeros to a multiple of W."""
    w = comm.world_size
    if pad := -rows.shape[0] % w:
        rows = np.concatenate([rows, np.zeros((pad, *rows.shape[1:]), dtype=rows.dtype)])
    return comm.all_to_all(list(rows.reshape(w, rows.shape[0] // w, *rows.shape[1:])), site)  # np.split's views


def every_share(comm: Communicator, share: np.ndarray, site: Site, rows: int) -> np.ndarray:
    """Every rank's share in rank order (an all-gather), without the padding: `rows` rows."""
    return np.concatenate(comm.all_gather(share, site))[:rows]


Sum = Callable[[Sequence[np.ndarray]], np.ndarray]
"""Step 4 element-wise: `numerics.reduce_sum`, or the same bits by other kernels."""


def share_sum(comm: Communicator, rows: np.ndarray, site: Site, reduce_sum: Sum = nx.reduce_sum) -> np.ndarray:
    """This rank's 1/W share of the rows of the sum over ranks of `rows` (a reduce-scatter;
    rows padded with zeros to a multiple of W): `reduce_sum` (`numerics.reduce_sum`'s bits),
    element-wise."""
    return reduce_sum(rank_share(comm, rows, site))


def all_reduce_sum(comm: Communicator, z: np.ndarray, site: Site, reduce_sum: Sum = nx.reduce_sum) -> np.ndarray:
    """Step 4 (qmm.all_reduce, the fused op without communication scales): each rank sums
    only its 1/W share of the elements, then the ranks all-gather the sums.

    The sum is element-wise (`numerics.reduce_sum`: f32, rank order from rank 0's value, one
    rounding), so every element gets the bits that summing all W values on every rank gives;
    each rank moves about 2x the output instead of W x, and does 1/W of the additions.  On 2
    ranks, summing both whole values moves as many bytes in one exchange instead of two."""
    flat = z.reshape(-1)
    if comm.world_size == 2:
        return reduce_sum(comm.all_gather(flat, site)).reshape(z.shape)
    return every_share(comm, share_sum(comm, flat, site, reduce_sum), site, flat.size).reshape(z.shape)


def all_reduce_exchanges(world_size: int) -> int:
    """How many collectives `all_reduce_sum` makes on `world_size` ranks."""
    return 1 if world_size == 2 else 2


def reduce_scatter_rows(comm: Communicator, x: np.ndarray, site: Site) -> np.ndarray:
    """qmm.reduce_scatter: [m, ...] -> [m/W, ...], rows rank*m/W.. of step 4's sum: the first
    half of `all_reduce_sum`, on rows instead of elements (the sum is element-wise either way)."""
    if x.ndim == 0 or x.shape[0] % comm.world_size:
        raise RunError(f"x's leading dim m of shape {list(x.shape)} is not divisible by world_size {comm.world_size}")
    return share_sum(comm, x, site)


def quantized_all_reduce(comm: Communicator, z: np.ndarray, s1: np.ndarray, s2: np.ndarray, site: Site) -> np.ndarray:
    """Step 5 as the kernel runs it: quant, all-to-all, reduce-sum, all-gather, dequant.

    Each rank reduces its share of the rows (`rank_share`); the result is element-wise, so the
    split does not change it."""
    rows = z.reshape(-1, z.shape[-1])
    t = nx.reduce_quantized(rank_share(comm, nx.quant(rows, s1), site), s1, s2)
    return nx.dequant_i8(every_share(comm, t, site, rows.shape[0]), s2, z.dtype).reshape(z.shape)


def operands_by_name(op: IRDLOperation, args: PythonValues) -> dict[str, Any]:
    """Each operand definition's run-time value (None for an absent optional operand)."""
    given = iter(args)
    return {name: None if getattr(op, name) is None else next(given)
            for name, _ in op.get_irdl_definition().operands}  # fmt: skip


def _has_dynamic_dim(type_attr: Attribute) -> bool:
    return isinstance(type_attr, TensorType) and DYNAMIC_INDEX in type_attr.get_shape()


def _run_time_result_types(op: IRDLOperation, run_time: Mapping[SSAValue, Attribute]) -> list[Attribute]:
    """The results' types for a verification on run-time shapes: a result that a type variable
    ties to operands (qmm.add's and qmm.all_reduce's T) has their run-time type, as the
    verifier demands; the others keep their own (a dynamic dimension passes)."""
    static = [r.type for r in op.results]
    definition = op.get_irdl_definition()
    if len(definition.results) != len(static):
        return static
    bound = VerificationContext()
    try:
        for name, operand in definition.operands:
            value = getattr(op, name)
            if isinstance(value, SSAValue):
                operand.constr.verify((run_time[value],), bound)
    except VerifyException:  # operands that disagree: the verifier says so, in its words
        return static
    return [
        result.constr.infer(bound, length=1)[0]
        if result.constr.can_infer(bound.attr_variables, length_known=True)
        else static_type
        for (_, result), static_type in zip(definition.results, static, strict=True)
    ]


def verify_at_run_time(op: IRDLOperation, args: PythonValues) -> None:
    """The op's own verifier again, on the run-time shapes of its operands.

    A dynamic dimension passes every static check (the verifier cannot know it); once the
    shapes are known, the same rules (for mc2, the rule table) decide, with the same words."""
    if not any(_has_dynamic_dim(v.type) for v in op.operands):
        return
    run_time = {v: TensorType(tensor_type_of(v).element_type, a.shape)
                for v, a in zip(op.operands, args, strict=True)}  # fmt: skip
    with_shapes = Block(arg_types=[run_time[v] for v in op.operands])  # `qmm.add %y, %y` reads %y twice
    probe = type(op).create(operands=with_shapes.args, result_types=_run_time_result_types(op, run_time),
                            properties=dict(op.properties), attributes=dict(op.attributes))  # fmt: skip
    try:
        probe.verify_()
    except VerifyException as err:
        shapes = ", ".join(f"{name} {list(arg.shape)}" for name, arg in operands_by_name(op, args).items()
                           if arg is not None)  # fmt: skip
        raise RunError(f"at run time: {err} (operand shapes: {shapes})") from None


@register_impls
class QmmarFunctions(InterpreterFunctions):
    """The qmm and mc2 ops of one rank; collectives go through its communicator."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm

    def _collective_site(self, op: CollectiveOp | FusedOp) -> Site:
        site = _site(op)
        if site.world_size != self.comm.world_size:
            raise RunError(f"world_size is {site.world_size}, but the program runs on {ranks(self.comm.world_size)}")
        return site

    @impl(MatmulOp)
    def run_matmul(self, interp: Interpreter, op: MatmulOp, args: PythonValues) -> PythonValues:
        x1, x2, *bias = args
        tr = bool(op.transpose_x2.value.data)
        return (exact_matmul(x1, x2, bias[0] if bias else None, tr),)

    @impl(DequantOp)
    def run_dequant(self, interp: Interpreter, op: DequantOp, args: PythonValues) -> PythonValues:
        x, scale, *pertoken = args
        out = value_dtype(op.result.type)
        if x.dtype == np.int8:
            return (nx.dequant_i8(x, scale, out),)
        return (nx.dequant_i32(x, scale, pertoken[0] if pertoken else None, out),)

    @impl(AddOp)
    def run_add(self, interp: Interpreter, op: AddOp, args: PythonValues) -> PythonValues:
        return (nx.add(*args),)

    @impl(QuantOp)
    def run_quant(self, interp: Interpreter, op: QuantOp, args: PythonValues) -> PythonValues:
        return (nx.quant(*args),)

    @impl(AllToAllOp)
    def run_alltoall(self, interp: Interpreter, op: AllToAllOp, args: PythonValues) -> PythonValues:
        return (all_to_all_rows(self.comm, args[0], self._collective_site(op)),)

    @impl(ReduceSumOp)
    def run_reducesum(self, interp: Interpreter, op: ReduceSumOp, args: PythonValues) -> PythonValues:
        x, *scales = args
        parts = list(x)
        if scales:
            # The communication scales must be the same on every rank (the operator's
            # documentation); this local op meets the other ranks to check it.
            site = Site(op.name, location_text(op.location), "", self.comm.world_size)
            self.comm.check_same_on_every_rank({"s1": scales[0], "s2": scales[1]}, site)
            return (nx.reduce_quantized(parts, *scales),)
        return (nx.reduce_sum(parts),)

    @impl(AllGatherOp)
    def run_allgather(self, interp: Interpreter, op: AllGatherOp, args: PythonValues) -> PythonValues:
        return (all_gather_rows(self.comm, args[0], self._collective_site(op)),)

    @impl(AllReduceOp)
    def run_all_reduce(self, interp: Interpreter, op: AllReduceOp, args: PythonValues) -> PythonValues:
        return (all_reduce_sum(self.comm, args[0], self._collective_site(op)),)

    @impl(ReduceScatterOp)
    def run_reduce_scatter(self, interp: Interpreter, op: ReduceScatterOp, args: PythonValues) -> PythonValues:
        return (reduce_scatter_rows(self.comm, args[0], self._collective_site(op)),)

    @impl(TransQuantParamOp)
    def run_trans_quant_param(self, interp: Interpreter, op: TransQuantParamOp, args: PythonValues) -> PythonValues:
        return (nx.trans_quant_param(args[0]).view(value_dtype(op.result.type)),)

    @impl(QuantMatmulAllReduceOp)
    def run_quant_matmul_all_reduce(
        self, interp: Interpreter, op: QuantMatmulAllReduceOp, args: PythonValues
    ) -> PythonValues:
        out = value_dtype(op.output.type)
        transpose_x2 = bool(op.transpose_x2.value.data)
        return (quant_matmul_all_reduce(self.comm, self._collective_site(op), operands_by_name(op, args),
                                        transpose_x2, out),)  # fmt: skip

    @impl(QuantMatmulReduceScatterOp)
    def run_quant_matmul_reduce_scatter(
        self, interp: Interpreter, op: QuantMatmulReduceScatterOp, args: PythonValues
    ) -> PythonValues:
        from qmmar.interpreter.reduce_scatter_op import quant_matmul_reduce_scatter  # it imports this module

        transpose_x2, out = bool(op.transpose_x2.value.data), value_dtype(op.output.type)
        return (quant_matmul_reduce_scatter(self.comm, self._collective_site(op), operands_by_name(op, args),
                                            transpose_x2, out),)  # fmt: skip

    @impl(AllGatherQuantMatmulOp)
    def run_all_gather_quant_matmul(
        self, interp: Interpreter, op: AllGatherQuantMatmulOp, args: PythonValues
    ) -> PythonValues:
        return all_gather_quant_matmul(self.comm, self._collective_site(op), operands_by_name(op, args),
                                       bool(op.transpose_x2.value.data), value_dtype(op.output.type))  # fmt: skip


class FusedSteps(NamedTuple):
    """The fused op's steps 1 to 3 and step 4's sum without communication scales, numpy in and
    out: `dialects.numerics`' own, or the same bits on other kernels
    (`interpreter.numerics_torch.STEPS`, the torch.compile custom op's).  Step 5, the int8
    communication, is always numerics' own."""

    dequantized_matmul: Callable[..., np.ndarray]
    add: Callable[[np.ndarray, np.ndarray], np.ndarray]
    reduce_sum: Sum


NUMERICS_STEPS = FusedSteps(dequantized_matmul, nx.add, nx.reduce_sum)


def quant_matmul_all_reduce(
    comm: Communicator, site: Site, named: Mapping[str, Any], transpose_x2: bool, out: np.dtype,
    steps: FusedSteps = NUMERICS_STEPS,
) -> np.ndarray:  # fmt: skip
    """The fused op on one rank, by operand name (None: absent): the primitive ops' functions
    composed, over any communicator (the interpreter's, or torch.distributed's for the
    torch.compile backend's custom op)."""
    quantized = named["comm_quant_scale_1"] is not None
    if quantized:
        scales = ("comm_quant_scale_1", "comm_quant_scale_2")
        comm.check_same_on_every_rank({name: named[name] for name in scales}, site)
    x1, x2 = named["x1"], named["x2"]
    # Step 4's or 5's exchanges follow from the output's shape: a communicator that agrees on
    # them by a round of its own does it now, beside the GEMM.
    output_shape = (*x1.shape[:-1], x2.shape[0] if transpose_x2 else x2.shape[1])
    comm.expect(site, 2 if quantized else all_reduce_exchanges(comm.world_size), (output_shape, out.str, quantized))
    z = steps.dequantized_matmul(x1, x2, named["bias"], transpose_x2, named["dequant_scale"], named["pertoken_scale"],
                                 out)  # fmt: skip
    if named["x3"] is not None:
        z = steps.add(z, named["x3"])
    if not quantized:
        return all_reduce_sum(comm, z, site, steps.reduce_sum)
    return quantized_all_reduce(comm, z, named["comm_quant_scale_1"], named["comm_quant_scale_2"], site)


def dense_to_array(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """The constant's elements, bit for bit: the attribute stores them in the element type."""
    try:
        dtype = numpy_dtype(dtype_name(attr.get_element_type()))
    except KeyError:
        raise RunError(f"constants of element type {attr.get_element_type()} are not supported") from None
    return np.frombuffer(attr.data.data, dtype=dtype).reshape(attr.get_shape())


def _reshape(op: Operation, x: np.ndarray) -> np.ndarray:
    """x in the result type's shape; one dynamic dimension takes what is left."""
    shape = [d if d >= 0 else -1 for d in tensor_type_of(op.results[0]).get_shape()]
    if len(shape) == x.ndim:  # a dynamic dimension is x's own: numpy cannot infer a -1 beside a 0
        shape = [d if d >= 0 else x.shape[i] for i, d in enumerate(shape)]
    if shape.count(-1) > 1:
        raise RunError("more than one dynamic result dimension")
    try:
        return x.reshape(shape)
    except ValueError:
        raise RunError(f"a value of shape {list(x.shape)} cannot become {op.results[0].type}") from None


def _slices(op: tensor.ExtractSliceOp | tensor.InsertSliceOp, args: PythonValues) -> tuple[slice, ...]:
    """The numpy slices of a slice op, its dynamic offsets, sizes and strides read from args."""
    dynamic = iter(args[1 if isinstance(op, tensor.ExtractSliceOp) else 2 :])

    def values(static: DenseArrayBase[I64]) -> list[int]:
        return [int(next(dynamic)) if v == DYNAMIC_INDEX else v for v in static.get_values()]

    offsets, sizes, strides = values(op.static_offsets), values(op.static_sizes), values(op.static_strides)
    return tuple(slice(o, o + z * s, s) for o, z, s in zip(offsets, sizes, strides, strict=True))


@register_impls
class BuiltinFunctions(InterpreterFunctions):
    """arith.constant with dense tensors, float casts (arith.extf, truncf), and the reshapes between
    2-D and 3-D."""

    @impl(arith.ConstantOp)
    def run_constant(self, interp: Interpreter, op: arith.ConstantOp, args: PythonValues) -> PythonValues:
        if isinstance(op.value, IntegerAttr) and isinstance(op.value.type, IndexType):
            return (op.value.value.data,)
        if not isinstance(op.value, DenseIntOrFPElementsAttr):
            raise RunError(f"arith.constant of {op.value} is not supported, only dense tensors")
        return (dense_to_array(op.value),)

    @impl(tensor.CollapseShapeOp)
    def run_collapse_shape(self, interp: Interpreter, op: tensor.CollapseShapeOp, args: PythonValues) -> PythonValues:
        # each result dimension is its group's product: numpy cannot infer a -1 beside a 0
        groups = [[int(i.value.data) for i in group] for group in op.reassociation]
        return (args[0].reshape([math.prod(args[0].shape[i] for i in group) for group in groups]),)

    @impl(tensor.ExpandShapeOp)
    def run_expand_shape(self, interp: Interpreter, op: tensor.ExpandShapeOp, args: PythonValues) -> PythonValues:
        sizes = iter(args[1:])
        shape = [int(next(sizes)) if d == DYNAMIC_INDEX else d for d in op.static_output_shape.get_values()]
        try:
            return (args[0].reshape(shape),)
        except ValueError:
            raise RunError(f"a value of shape {list(args[0].shape)} cannot become {shape}") from None

    @impl(tensor.CastOp)
    def run_cast(self, interp: Interpreter, op: tensor.CastOp, args: PythonValues) -> PythonValues:
        return (_reshape(op, args[0]),)  # checks the static dims of the result type

    @impl(tensor.EmptyOp)
    def run_empty(self, interp: Interpreter, op: tensor.EmptyOp, args: PythonValues) -> PythonValues:
        # Unspecified contents: zeros, so that a run is deterministic.
        shape = iter(args)
        dims = [d if d >= 0 else int(next(shape)) for d in op.tensor.type.get_shape()]
        return (np.zeros(dims, dtype=value_dtype(op.tensor.type)),)

    @impl(tensor.ExtractSliceOp)
    def run_extract_slice(self, interp: Interpreter, op: tensor.ExtractSliceOp, args: PythonValues) -> PythonValues:
        sliced = args[0][_slices(op, args)]
        same_rank = sliced.ndim == len(op.result.type.get_shape())
        return (sliced if same_rank else _reshape(op, sliced),)  # a rank-reducing slice drops unit dims

    @impl(tensor.InsertSliceOp)
    def run_insert_slice(self, interp: Interpreter, op: tensor.InsertSliceOp, args: PythonValues) -> PythonValues:
        dest, where = args[1].copy(), _slices(op, args)
        dest[where] = args[0].reshape(dest[where].shape)
        return (dest,)

    @impl(tensor.ReshapeOp)
    def run_reshape(self, interp: Interpreter, op: tensor.ReshapeOp, args: PythonValues) -> PythonValues:
        return (args[0].reshape([int(d) for d in args[1]]),)

    @impl(tensor.DimOp)
    def run_dim(self, interp: Interpreter, op: tensor.DimOp, args: PythonValues) -> PythonValues:
        return (int(args[0].shape[args[1]]),)

    def run_float_cast(self, interp: Interpreter, op: arith.ExtFOp | arith.TruncFOp, args: PythonValues
                       ) -> PythonValues:  # fmt: skip
        """One function for both: to f32 exactly, to f16/bf16 by D (`numerics.round_to`)."""
        return (nx.round_to(args[0], value_dtype(op.result.type)),)

    run_extf = impl(arith.ExtFOp)(run_float_cast)
    run_truncf = impl(arith.TruncFOp)(run_float_cast)

    @impl(arith.CeilDivUIOp)
    def run_ceildivui(self, interp: Interpreter, op: arith.CeilDivUIOp, args: PythonValues) -> PythonValues:
        return (-(-args[0] // args[1]),)  # index values here are sizes: never negative

    @impl(arith.MuliOp)
    def run_muli(self, interp: Interpreter, op: arith.MuliOp, args: PythonValues) -> PythonValues:
        if not isinstance(op.result.type, IndexType):
            raise RunError(f"arith.muli of {op.result.type} is not supported, only index")
        return (args[0] * args[1],)
