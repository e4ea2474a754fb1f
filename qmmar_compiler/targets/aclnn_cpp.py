"""The `aclnn-cpp` target: one C++17 translation unit calling CANN's aclnn and HCCL API
(`-t 'aclnn-cpp{header=true}'`: the header that declares its functions).

Each func.func becomes `int32_t qmmar_<name>(aclrtStream stream, HcclComm comm, <an HcclComm
per further group>, <a const device pointer per argument>, <a device pointer per result>,
<int64_t per dynamic dimension>) noexcept`, in three parts:

1. checks, before any call: every run-time size is non-negative and its byte size fits in
   int64; every size the function computes (`tensor.dim`, `arith`) is overflow-checked; every
   call's shape contract (`contract` of the aclnn ops; for MC2, the rule table) that the static
   types leave undecided holds;
2. queries: each communicator's rank count equals the world_size of each collective of its group;
3. the calls, each status checked: a failure prints `qmmar: <location>: <call> failed with
   status N` and returns N.  Handles, executors and buffers live in non-copyable owners:
   the normal path releases them and checks every status; an early return releases them in
   their destructors (device memory after a stream synchronisation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import IO, ClassVar

from xdsl.context import Context
from xdsl.dialects import arith, func, tensor
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.utils.target import Target

from qmmar.dialects import aclnn
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import dtype_name, numpy_dtype
from qmmar.dialects.location import location_text
from qmmar.dialects.logic import INT64_MAX, CppLogic, Dim
from qmmar.dialects.qmm import tensor_type_of
from qmmar.dialects.shapes import same_shape
from qmmar.passes.options import CheckedOptions
from qmmar.targets.prelude import ACL_DTYPES, HCCL_DTYPES, HEADER_PRELUDE, PRELUDE

_LOGIC = CppLogic()


def c_name(text: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return name if name and not name[0].isdigit() else f"v_{name}"


def c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def checked(where: str, api: str, call: str) -> str:
    return f'QMMAR_CALL({where}, "{api}", {call});'


def int64(d: Dim) -> str:
    return d if isinstance(d, str) else f"INT64_C({d})"


@dataclass
class _Tensor:
    """A tensor value in C++: its data pointer, dims (int or C++ name), element type, and
    whether it is an argument's (read only)."""

    ptr: str
    dims: tuple[Dim, ...]
    dtype: str
    readonly: bool = False
    capacity: str | None = None  # bytes, when the runtime chose them (a prepacked weight)

    def elements(self) -> Dim:
        return _LOGIC.prod(self.dims)

    def bytes(self) -> Dim:
        return _LOGIC.prod([*self.dims, numpy_dtype(self.dtype).itemsize])

    def data(self) -> str:
        """A `void *` for the C API, which takes inputs and outputs alike as void *: qmmar
        never writes through an argument's tensor."""
        return f"const_cast<void *>({self.ptr})" if self.readonly else self.ptr


def returned_values(fn: func.FuncOp) -> list[SSAValue]:
    ret = fn.body.blocks[0].last_op
    return list(ret.operands) if isinstance(ret, func.ReturnOp) else []


def _view_root(value: SSAValue) -> SSAValue:
    while isinstance(value.owner, aclnn.ViewOp) and value.owner.prefix is None:
        value = value.owner.source
    return value


def placed_results(fn: func.FuncOp) -> dict[SSAValue, int]:
    """Buffers written straight into the caller's result memory: a returned value that is a
    buffer the function allocates (or a reshape of one) and no other result's."""
    placed: dict[SSAValue, int] = {}
    for i, value in enumerate(returned_values(fn)):
        root = _view_root(value)
        alloc = root.owner
        if isinstance(alloc, aclnn.AllocTensorOp) and alloc.bytes is None and root not in placed:
            placed[root] = i
    return placed


def _dims_of(value: SSAValue, prefix: str) -> tuple[Dim, ...]:
    t = value.type
    assert isinstance(t, TensorType)
    return tuple(f"{prefix}_d{i}" if d < 0 else d for i, d in enumerate(t.get_shape()))


def _dtype(value: SSAValue) -> str:
    t = value.type
    assert isinstance(t, TensorType)
    return dtype_name(t.element_type)


def communicators(fn: func.FuncOp) -> dict[str, str]:
    """The C++ parameter of each group's HcclComm, in the order the function first uses them:
    `comm`, then `comm_<group>` for each further group (a data-parallel all-reduce beside a
    tensor-parallel chain).  A function without collectives still takes `comm`."""
    groups: dict[str, str] = {}
    for op in fn.walk():
        group = op.properties.get("group")
        if isinstance(group, StringAttr) and group.data not in groups:
            name = "comm" if not groups else f"comm_{c_name(group.data)}"
            while name in groups.values():
                name += "_"
            groups[group.data] = name
    return groups or {"": "comm"}


def _parameters(fn: func.FuncOp) -> list[tuple[str, str]]:
    """(C++ type, name) of each parameter of a function's entry point, in order."""
    params = [("aclrtStream", "stream"), *(("HcclComm", comm) for comm in communicators(fn).values())]
    dims: list[tuple[str, str]] = []
    for arg, name in zip(fn.body.blocks[0].args, parameter_names(fn), strict=True):
        params.append(("const void *", name))
        dims += [("int64_t", d) for d in _dims_of(arg, name) if isinstance(d, str)]
    for i, value in enumerate(returned_values(fn)):
        params.append(("void *", f"result{i}"))
        dims += [("int64_t", d) for d in _dims_of(value, f"result{i}") if isinstance(d, str)]
    return params + dims


def parameters(fn: func.FuncOp) -> list[str]:
    return [name for _, name in _parameters(fn)]


def signature(fn: func.FuncOp) -> str:
    """The C++ declaration of a function's entry point (header and definition share it)."""
    params = ", ".join(f"{kind}{name}" if kind.endswith("*") else f"{kind} {name}" for kind, name in _parameters(fn))
    return f"int32_t qmmar_{c_name(fn.sym_name.data)}({params}) noexcept"


CPP_KEYWORDS = frozenset(
    "alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t class compl const "
    "constexpr const_cast continue decltype default delete do double dynamic_cast else enum explicit export extern "
    "false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr operator or "
    "or_eq private protected public register reinterpret_cast return short signed sizeof static static_assert "
    "static_cast struct switch template this thread_local throw true try typedef typeid typename union unsigned using "
    "virtual void volatile wchar_t while xor xor_eq stream comm rank_size".split()
)
"""Names a parameter may not take: C++'s keywords and the body's own names."""


def parameter_names(fn: func.FuncOp) -> list[str]:
    """Each argument's C++ name: its name hint sanitised, never a keyword, a name the body
    uses (`v<N>`, `result<N>`, `qmmar_...`) or another parameter's (or one of its `_d<i>`
    dims); xDSL gives %x_1 and %x_2 the one hint `x`, so repeats get a suffix `_2`, `_3`."""
    taken: set[str] = set()
    names: list[str] = []
    for i, arg in enumerate(fn.body.blocks[0].args):
        base = c_name(arg.name_hint or f"arg{i}")
        if base in CPP_KEYWORDS or re.fullmatch(r"v\d+.*|result.*|qmmar_.*|comm_.*|rank_size_.*|.*_d\d+", base):
            base = f"arg_{base}"
        name, suffix = base, 1
        dims = len(tensor_type_of(arg).get_shape())
        while {name, *(f"{name}_d{j}" for j in range(dims))} & taken:
            suffix += 1
            name = f"{base}_{suffix}"
        taken |= {name, *(f"{name}_d{j}" for j in range(dims))}
        names.append(name)
    return names


DEPRECATED = {"aclnnQuantMatmulV4"}
"""Operators whose vendor header marks them deprecated."""

UINT32_MAX = 2**32 - 1

OWNERS = {"TensorOwner": "aclDestroyTensor", "IntArrayOwner": "aclDestroyIntArray",
          "ScalarOwner": "aclDestroyScalar", "DeviceOwner": "aclrtFree",
          "ExecutorOwner": "aclDestroyAclOpExecutor"}  # fmt: skip


@dataclass
class _FunctionEmitter:
    fn: func.FuncOp
    checks: list[str] = field(default_factory=list[str])
    queries: list[str] = field(default_factory=list[str])
    body: list[str] = field(default_factory=list[str])
    names: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    tensors: dict[SSAValue, _Tensor] = field(default_factory=dict[SSAValue, _Tensor])
    sizes: dict[SSAValue, Dim] = field(default_factory=dict[SSAValue, Dim])
    live: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    world_sizes: dict[tuple[str, int], Operation] = field(default_factory=dict[tuple[str, int], Operation])
    counter: int = 0

    def fresh(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def name(self, value: SSAValue) -> str:
        self.names[value] = self.fresh()
        return self.names[value]

    def emit(self) -> list[str]:
        where = c_string(location_text(self.fn.location))
        self.placed, self.comms = placed_results(self.fn), communicators(self.fn)
        for arg, name in zip(self.fn.body.blocks[0].args, parameter_names(self.fn), strict=True):
            self.bind(arg, _Tensor(name, _dims_of(arg, name), _dtype(arg), readonly=True), where)
        self.results = [
            _Tensor(f"result{i}", _dims_of(v, f"result{i}"), _dtype(v)) for i, v in enumerate(returned_values(self.fn))
        ]
        for result in self.results:
            self.extent_check(result, where, result.ptr)
        for op in self.fn.body.walk():
            if op is not self.fn:
                self.op(op)
        self.rank_size_checks(where)
        code = self.checks + self.queries + self.body
        used = set(re.findall(r"\w+", "\n".join(code)))
        # a function without collectives leaves comm unused, one that ignores an argument its
        # pointer: -Wunused-parameter (in -Wextra) must stay quiet
        unused = [f"static_cast<void>({p});" for p in parameters(self.fn) if p not in used]
        lines = [f"// @{self.fn.sym_name.data} ({location_text(self.fn.location)})", signature(self.fn) + " {"]
        return lines + [f"  {line}" for line in unused + code] + ["}", ""]

    # --- checks -----------------------------------------------------------------------------

    def guard(self, verdict: object, where: str, message: str) -> None:
        """A run-time check: `verdict` is a parenthesised C++ expression, or decided."""
        if verdict is True:
            return
        if verdict is False or verdict is None:
            raise LocatedError(where.strip('"'), f"the emitted call can never succeed: {message}")
        self.checks.append(f"if (!{verdict}) return qmmar_guard({where}, {c_string(message)});")

    def extent_check(self, t: _Tensor, where: str, what: str) -> None:
        """Every dim non-negative and the byte size within int64: then no product of its
        dims (a stride, an element count) overflows."""
        if all(isinstance(d, int) for d in t.dims):
            if t.bytes() == INT64_MAX:
                raise LocatedError(where.strip('"'), f"{what}: the byte size of its shape overflows int64")
            return
        dims = ", ".join(int64(d) for d in t.dims)
        message = c_string(f"[SIZE] {what}: a negative dimension, or a byte size beyond int64")
        self.checks.append(f"if (!qmmar_extent_ok({{{dims}}}, {numpy_dtype(t.dtype).itemsize})) "
                           f"return qmmar_guard({where}, {message});")  # fmt: skip

    def contract(self, op: aclnn.Contracted, where: str) -> None:
        for verdict, sentence in op.contract(_LOGIC, lambda v: self.tensors[v].dims):
            self.guard(verdict, where, sentence)

    def bind(self, value: SSAValue, t: _Tensor, where: str) -> None:
        self.tensors[value] = t
        self.extent_check(t, where, value.name_hint or str(value.type))

    def on_comm(self, op: Operation, group: str, world_size: int) -> str:
        """The C++ communicator of `group`; its rank count is checked against each world_size."""
        if not 0 < world_size <= UINT32_MAX:
            raise LocatedError(location_text(op.location), f"[HCCL-RANKS-UINT32] world_size = {world_size} has "
                              "no aclnn C++ form: HCCL counts ranks in a uint32_t (HcclGetRankSize), from 1 to "
                               "4294967295")  # fmt: skip
        self.world_sizes.setdefault((group, world_size), op)
        return self.comms[group]

    def rank_size_checks(self, where: str) -> None:
        if not self.world_sizes:
            return
        self.queries.append("uint32_t rank_size = 0;")
        for group, comm in self.comms.items():
            sizes = [(w, op) for (g, w), op in self.world_sizes.items() if g == group]
            if sizes:
                self.queries.append(checked(where, "HcclGetRankSize", f"HcclGetRankSize({comm}, &rank_size)"))
            for w, op in sizes:
                at = c_string(location_text(op.location))
                self.queries.append(f"if (rank_size != {w}u) return qmmar_rank_guard({at}, rank_size, {w}u);")

    # --- sizes ------------------------------------------------------------------------------

    def index(self, op: Operation, where: str) -> None:
        match op:
            case arith.ConstantOp() if isinstance(op.value, IntegerAttr):
                self.sizes[op.result] = op.value.value.data
            case tensor.DimOp():
                axis = self.sizes[op.index]
                assert isinstance(axis, int)
                self.sizes[op.result] = self.tensors[op.source].dims[axis]
            case arith.MuliOp() | arith.DivUIOp() | arith.CeilDivUIOp():
                a, b = self.sizes[op.lhs], self.sizes[op.rhs]
                if isinstance(a, int) and isinstance(b, int) and (b != 0 or isinstance(op, arith.MuliOp)):
                    result = (
                        a * b
                        if isinstance(op, arith.MuliOp)
                        else a // b
                        if isinstance(op, arith.DivUIOp)
                        else -(-a // b)
                    )
                    if result > INT64_MAX:
                        raise LocatedError(where.strip('"'), "a size overflows int64")
                    self.sizes[op.result] = result
                    return
                v = self.fresh()
                self.sizes[op.result] = v
                if isinstance(op, arith.MuliOp):
                    self.checks.append(f"int64_t {v} = 0;")
                    self.guard(
                        f"(!__builtin_mul_overflow({int64(a)}, {int64(b)}, &{v}))",
                        where,
                        "[SIZE] a size overflows int64",
                    )
                    return
                self.guard(f"({int64(b)} > 0)", where, "[SIZE] a size is divided by zero")
                ceil = f" + ({int64(a)} % {int64(b)} != 0 ? 1 : 0)" if isinstance(op, arith.CeilDivUIOp) else ""
                self.checks.append(f"const int64_t {v} = {int64(a)} / {int64(b)}{ceil};")
            case _:
                self.unsupported(op)

    def shape(self, value: SSAValue, dynamic: list[SSAValue]) -> tuple[Dim, ...]:
        """A result's dims: static from its type, the rest from its size operands."""
        sizes = iter(dynamic)
        t = value.type
        assert isinstance(t, TensorType)
        return tuple(self.sizes[next(sizes)] if d < 0 else d for d in t.get_shape())

    # --- ops --------------------------------------------------------------------------------

    def op(self, op: Operation) -> None:
        where = c_string(location_text(op.location))
        emit = self.body.append
        match op:
            case arith.ConstantOp() | tensor.DimOp() | arith.MuliOp() | arith.DivUIOp() | arith.CeilDivUIOp():
                self.index(op, where)
            case aclnn.AllocTensorOp():
                self.alloc(op, where)
            case aclnn.ConstantOp():
                self.constant(op, where)
            case aclnn.MemsetZeroOp():
                emit(self.memset_zero(self.tensors[op.dst], where))
            case aclnn.ViewOp():
                source = self.tensors[op.source]
                dims = self.shape(op.result, list(op.dynamic_sizes))
                self.bind(op.result, _Tensor(source.ptr, dims, source.dtype, source.readonly), where)
                self.contract(op, where)
            case aclnn.MemcpyOp():
                dst, src = self.tensors[op.dst], self.tensors[op.src]
                self.contract(op, where)
                emit(self.memcpy(dst, src, where))
            case aclnn.CreateTensorOp():
                t = self.tensors[op.data]
                v = self.owner("TensorOwner", op.handle)
                extents = ", ".join(int64(d) for d in t.dims)
                emit(f"QMMAR_CREATE({where}, \"aclCreateTensor\", {v}, qmmar_tensor({{{extents}}}, "
                     f"{ACL_DTYPES[t.dtype]}, {t.data()}, {'true' if op.transposed else 'false'}));")  # fmt: skip
            case aclnn.CreateIntArrayOp():
                values = op.dims(lambda v: self.tensors[v].dims)
                v = self.owner("IntArrayOwner", op.array)
                emit(f"const int64_t {v}_values[] = {{{', '.join(int64(d) for d in values)}}};")
                emit(f'QMMAR_CREATE({where}, "aclCreateIntArray", {v}, aclCreateIntArray({v}_values, {len(values)}));')
            case aclnn.CreateScalarOp():
                v = self.owner("ScalarOwner", op.scalar)
                emit(f"float {v}_value = {float(op.value.value.data)!r}f;")
                emit(f'QMMAR_CREATE({where}, "aclCreateScalar", {v}, aclCreateScalar(&{v}_value, ACL_FLOAT));')
            case aclnn.DestroyTensorOp() | aclnn.DestroyIntArrayOp() | aclnn.DestroyScalarOp() | aclnn.FreeOp():
                v = self.names[op.operands[0]]
                kind = next(kind for name, kind in self.live if name == v)
                self.live.remove((v, kind))
                emit(checked(where, OWNERS[kind], f"{v}.reset()"))
            case aclnn.CalculateMatmulWeightSizeV2Op():
                v = self.name(op.size)
                emit(f"uint64_t {v} = 0;")
                call = f"aclnnCalculateMatmulWeightSizeV2({self.names[op.shape]}.get(), ACL_INT8, &{v})"
                emit(checked(where, "aclnnCalculateMatmulWeightSizeV2", call))
            case aclnn.HcclGetCommNameOp():
                v = self.name(op.group_name)
                emit(f"char {v}[COMM_NAME_MAX_LENGTH] = {{}};")
                emit(checked(where, "HcclGetCommName", f"HcclGetCommName({self.comms[op.group.data]}, {v})"))
            case aclnn.WorkspaceQuery():
                self.contract(op, where)
                self.query(op, where)
            case aclnn.MallocWorkspaceOp():
                v = self.owner("DeviceOwner", op.workspace)
                size = self.names[op.size]
                malloc = checked(where, "aclrtMalloc", f"aclrtMalloc({v}.out(), {size}, ACL_MEM_MALLOC_HUGE_FIRST)")
                emit(f"if ({size} > 0) {malloc}")
            case aclnn.LaunchOp():
                ws, size, executor, api = (*(self.names[v] for v in op.operands), op.api.data)
                self.call(api, api, where, f"{api}({ws}.get(), {size}, {executor}.get(), stream)")
            case aclnn.SynchronizeStreamOp():
                emit(checked(where, "aclrtSynchronizeStream", "aclrtSynchronizeStream(stream)"))
            case aclnn.HcclCollective():
                self.contract(op, where)
                emit(self.collective(op, where))
            case func.ReturnOp():
                self.ret(op, where)
            case _:
                self.unsupported(op)

    def unsupported(self, op: Operation) -> None:
        raise LocatedError.at(op, "has no aclnn C++ form: the aclnn-cpp target takes what lower-mc2-to-aclnn and "
                              "lower-qmm-to-aclnn produce")  # fmt: skip

    def owner(self, kind: str, value: SSAValue) -> str:
        v = self.name(value)
        self.body.append(f"{kind} {v}{'(stream)' if kind == 'DeviceOwner' else ''};")
        self.live.append((v, kind))
        return v

    def alloc(self, op: aclnn.AllocTensorOp, where: str) -> None:
        dims = self.shape(op.result, list(op.dynamic_sizes))
        if op.result in self.placed:
            self.bind(op.result, _Tensor(f"result{self.placed[op.result]}", dims, _dtype(op.result)), where)
            return
        v = self.owner("DeviceOwner", op.result)
        capacity = self.names[op.bytes] if op.bytes is not None else None
        t = _Tensor(f"{v}.get()", dims, _dtype(op.result), capacity=capacity)
        self.bind(op.result, t, where)
        self.malloc(v, capacity or t.bytes(), where)

    def malloc(self, v: str, size: Dim, where: str) -> None:
        """aclrtMalloc of `size` bytes, unless it is 0 (AscendCL refuses a size of 0): the
        owner then holds nullptr, which no call dereferences (every size it meets is 0)."""
        if size == 0:
            return
        malloc = checked(where, "aclrtMalloc", f"aclrtMalloc({v}.out(), static_cast<size_t>({int64(size)}), "
                         "ACL_MEM_MALLOC_HUGE_FIRST)")  # fmt: skip
        self.body.append(malloc if isinstance(size, int) else f"if ({size} > 0) {malloc}")

    def constant(self, op: aclnn.ConstantOp, where: str) -> None:
        """Device memory, then a copy of the constant's bytes from static host data."""
        v = self.owner("DeviceOwner", op.result)
        t = _Tensor(f"{v}.get()", self.shape(op.result, []), _dtype(op.result))
        self.bind(op.result, t, where)
        data = op.value.data.data
        if not data:
            return
        rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 24]) for i in range(0, len(data), 24)]
        self.body.append(f"alignas(8) static const unsigned char {v}_host[] = {{")
        self.body += [f"    {row}," for row in rows]
        self.body.append("};")
        self.malloc(v, len(data), where)
        self.body.append(checked(where, "aclrtMemcpy", f"aclrtMemcpy({v}.get(), {len(data)}, {v}_host, {len(data)}, "
                                 "ACL_MEMCPY_HOST_TO_DEVICE)"))  # fmt: skip

    def memcpy(self, dst: _Tensor, src: _Tensor, where: str) -> str:
        """A copy on the stream; none of 0 bytes (the buffers may be nullptr then)."""
        capacity = dst.capacity or f"static_cast<size_t>({int64(dst.bytes())})"
        count = src.bytes()
        copy = checked(where, "aclrtMemcpyAsync", f"aclrtMemcpyAsync({dst.ptr}, {capacity}, {src.ptr}, "
                       f"static_cast<size_t>({int64(count)}), ACL_MEMCPY_DEVICE_TO_DEVICE, stream)")  # fmt: skip
        if isinstance(count, int):
            return copy if count > 0 else "// nothing to copy: 0 bytes"
        return f"if ({count} > 0) {copy}"

    def memset_zero(self, t: _Tensor, where: str) -> str:
        """Every byte of `t` zero, on the stream (none to write when it has 0 bytes)."""
        size = t.capacity or f"static_cast<size_t>({int64(t.bytes())})"
        zero = checked(where, "aclrtMemsetAsync", f"aclrtMemsetAsync({t.ptr}, {size}, 0, {size}, stream)")
        if isinstance(t.bytes(), int):
            return zero if t.bytes() != 0 else "// nothing to zero: 0 bytes"
        return f"if ({t.bytes()} > 0) {zero}"

    def handle(self, value: SSAValue | None) -> str:
        return "nullptr" if value is None else f"{self.names[value]}.get()"

    def query(self, op: aclnn.WorkspaceQuery, where: str) -> None:
        h = self.handle
        match op:
            case aclnn.QuantMatmulAllReduceV3GetWorkspaceSizeOp():
                self.on_comm(op, op.group.data, op.world_size.value.data)
                args = [*(h(v) for v in (op.x1, op.x2, op.bias, op.x3, op.dequant_scale, op.pertoken_scale,
                                          op.comm_quant_scale_1, op.comm_quant_scale_2)),
                        self.names[op.group_name], c_string(op.reduce_op.data), str(op.comm_turn.value.data),
                        str(op.stream_mode.value.data), h(op.output)]  # fmt: skip
            case aclnn.AllGatherMatmulV2GetWorkspaceSizeOp():
                self.on_comm(op, op.group.data, op.world_size.value.data)
                self.checks.append(f"if (!qmmar_hccl_buffer_ok({aclnn.AGMM_CCL_BUFFER_MB})) "
                                   f"return qmmar_guard({where}, {c_string(aclnn.AGMM_CCL_BUFFER)});")  # fmt: skip
                args = [*(h(v) for v in (op.x1, op.x2, op.bias, op.x1_scale, op.x2_scale)), "nullptr",
                        str(op.block_size.value.data), self.names[op.group_name], str(op.gather_index.value.data),
                        str(op.comm_turn.value.data), str(op.stream_mode.value.data), str(op.group_size.value.data),
                        c_string(op.comm_mode.data), h(op.output), h(op.gather_out), "nullptr"]  # fmt: skip
            case aclnn.QuantMatmulV4GetWorkspaceSizeOp():
                args = [h(op.x1), h(op.x2), h(op.scale), "nullptr", h(op.pertoken_scale), h(op.bias), "false",
                        "true" if op.transpose_x2.value.data else "false", h(op.out)]  # fmt: skip
            case aclnn.TransQuantParamV2GetWorkspaceSizeOp():
                args = [h(op.input), "nullptr", h(op.out)]
            case aclnn.TransMatmulWeightGetWorkspaceSizeOp() | aclnn.InplaceOneGetWorkspaceSizeOp():
                args = [h(op.operands[0])]
            case aclnn.AddGetWorkspaceSizeOp():
                args = [h(op.lhs), h(op.rhs), h(op.alpha), h(op.out)]
            case aclnn.CastGetWorkspaceSizeOp():
                args = [h(op.input), ACL_DTYPES[aclnn.dtype_of(op.out)], h(op.out)]
            case aclnn.DivGetWorkspaceSizeOp() | aclnn.MulGetWorkspaceSizeOp():
                args = [h(op.lhs), h(op.rhs), h(op.out)]
            case aclnn.ReduceSumGetWorkspaceSizeOp():
                args = [h(op.input), h(op.dims), "false", ACL_DTYPES[aclnn.dtype_of(op.out)], h(op.out)]
            case aclnn.QuantizeGetWorkspaceSizeOp():
                args = [h(op.input), h(op.scales), "nullptr", ACL_DTYPES[aclnn.dtype_of(op.out)], "-1", h(op.out)]
            case _:
                self.unsupported(op)
        size = self.name(op.workspace_size)
        self.body.append(f"uint64_t {size} = 0;")
        executor = self.owner("ExecutorOwner", op.executor)
        call = f"{op.API}GetWorkspaceSize"
        self.call(op.API, call, where, f"{call}({', '.join(args)}, &{size}, {executor}.out())")
        # Repeatable, the executor outlives its launch, and its owner destroys it as CANN
        # documents (aclDestroyAclOpExecutor is for repeatable executors), launched or not.
        # Should this call fail, no documented call releases it: it is left to CANN.
        self.body.append(f"QMMAR_REPEATABLE({where}, {executor});")
        if isinstance(op, aclnn.AllGatherMatmulV2GetWorkspaceSizeOp):  # its launch skips the op without one
            self.body.append(f"if ({size} == 0) return qmmar_guard({where}, {c_string(aclnn.AGMM_WORKSPACE)});")

    def call(self, operator: str, api: str, where: str, call: str) -> None:
        line = checked(where, api, call)
        if operator not in DEPRECATED:
            self.body.append(line)
            return
        # CANN deprecates aclnnQuantMatmulV4 (for aclnnQuantMatmulV5): its call sites opt out
        # of the warning, so that -Werror builds stay clean.
        self.body += ["#pragma GCC diagnostic push", '#pragma GCC diagnostic ignored "-Wdeprecated-declarations"',
                      line, "#pragma GCC diagnostic pop"]  # fmt: skip

    def collective(self, op: aclnn.HcclCollective, where: str) -> str:
        send, recv = self.tensors[op.send], self.tensors[op.recv]
        comm = self.on_comm(op, op.group.data, op.world_size.value.data)
        dtype = HCCL_DTYPES[send.dtype]
        count = f"static_cast<uint64_t>({int64(send.elements())})"
        match op:
            case aclnn.HcclAllReduceOp():
                call = f"HcclAllReduce({send.data()}, {recv.ptr}, {count}, {dtype}, HCCL_REDUCE_SUM, {comm}, stream)"
            case aclnn.HcclAlltoAllOp():
                per_rank = f"static_cast<uint64_t>({int64(send.elements())} / {op.world_size.value.data})"
                call = f"HcclAlltoAll({send.ptr}, {per_rank}, {dtype}, {recv.ptr}, {per_rank}, {dtype}, {comm}, stream)"
            case aclnn.HcclReduceScatterOp():
                per_rank = f"static_cast<uint64_t>({int64(recv.elements())})"
                call = (f"HcclReduceScatter({send.data()}, {recv.ptr}, {per_rank}, {dtype}, HCCL_REDUCE_SUM, {comm}, "
                        "stream)")  # fmt: skip
            case _:
                call = f"HcclAllGather({send.data()}, {recv.ptr}, {count}, {dtype}, {comm}, stream)"
        return checked(where, op.API, call)

    def ret(self, op: func.ReturnOp, where: str) -> None:
        for i, (value, result) in enumerate(zip(op.operands, self.results, strict=True)):
            computed = self.tensors[value]
            self.guard(same_shape(computed.dims, result.dims, _LOGIC), where,
                       f"[RESULT-SHAPE] result{i} must have the shape the function computes")  # fmt: skip
            if self.placed.get(_view_root(value)) != i:
                self.body.append(self.memcpy(result, computed, where))
        if self.body:
            self.body.append(checked(where, "aclrtSynchronizeStream", "aclrtSynchronizeStream(stream)"))
        for v, kind in reversed(self.live):
            self.body.append(checked(where, OWNERS[kind], f"{v}.reset()"))
        self.body.append("return 0;")


@dataclass(frozen=True)
class AclnnCppTarget(CheckedOptions, Target):
    """Emit one C++17 translation unit of aclnn and HCCL calls (run lower-mc2-to-aclnn and
    lower-qmm-to-aclnn first); header=true: the header declaring its functions."""

    name: ClassVar[str] = "aclnn-cpp"
    header: bool = False

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        functions = [op for op in module.walk() if isinstance(op, func.FuncOp) and op.body.blocks]
        seen: dict[str, func.FuncOp] = {}
        for fn in functions:
            name = c_name(fn.sym_name.data)
            if name in seen:
                raise LocatedError(location_text(fn.location), f"@{fn.sym_name.data} and @{seen[name].sym_name.data} "
                                  f"both become qmmar_{name} in C++")  # fmt: skip
            seen[name] = fn
        if self.header:
            output.write(HEADER_PRELUDE + "".join(f"{signature(fn)};\n" for fn in functions) + "\n#endif\n")
            return
        parts = [PRELUDE] + [line for fn in functions for line in _FunctionEmitter(fn).emit()]
        output.write("\n".join(parts))
