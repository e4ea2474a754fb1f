"""The `aclnn-cpp` target: one C++17 translation unit calling CANN's aclnn and HCCL API
(`-t 'aclnn-cpp{header=true}'`: the C header that declares its functions;
`memory-plan=true`: each function's memory plan).

Each func.func becomes four `extern "C"` entry points over the parameters `aclrtStream stream,
HcclComm comm, <an HcclComm per further group>, <a const device pointer per argument>, <a
device pointer per result>, <int64_t per dynamic dimension>`:

* `qmmar_<name>_prepare(plan **, ...)`: the checks (every run-time size non-negative with its
  byte size within int64, every computed size overflow-checked, every call's shape contract
  that the static types leave undecided; for MC2 the rule table), each communicator's rank
  count, every call's first phase over tensors without data (the query walk: workspace sizes
  and buffer sizes for the memory plan), one arena, then the calls `aclnn_plan` puts at
  prepare (constant work) and one bounded wait for them; where every shape is static, the first
  phase of each of run's calls, its executor repeatable and kept (`cache_executors`);
* `qmmar_<name>_run(plan *, ...)`: the checks, then the calls, their memory from the arena: no
  allocation, no synchronisation (capturable); with kept executors, only their tensors on the
  caller's memory moved to this run's pointers, and the launches;
* `qmmar_<name>_release(plan *)`, and `qmmar_<name>(...)`: prepare, run, a bounded wait, release.

Every host wait is `aclrtSynchronizeStreamWithTimeout`, bounded by `qmmar_set_sync_timeout`
(prelude.SYNC_TIMEOUT_MS by default); after a timeout the stream's tasks are aborted before their
memory is freed.

Every call's status is checked: a failure prints `qmmar: <location>: <call> failed with status
N` (kept for `qmmar_last_error()`) and returns N.  Handles and executors live in non-copyable
owners: the normal path releases them and checks every status; an early return releases them
in their destructors (a plan under construction after a stream synchronisation).
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

from qmmar.dialects import aclnn, mrs_rules
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.dtypes import dtype_name, numpy_dtype
from qmmar.dialects.location import location_text
from qmmar.dialects.logic import INT64_MAX, CppLogic, Dim
from qmmar.dialects.qmm import tensor_type_of
from qmmar.dialects.shapes import same_shape
from qmmar.passes.options import CheckedOptions
from qmmar.targets.aclnn_plan import FunctionPlan
from qmmar.targets.prelude import ACL_DTYPES, HCCL_DTYPES, HEADER_END, HEADER_PRELUDE, OUT_OF_MEMORY, PRELUDE

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
        return f"const_cast<void *>({self.ptr})" if self.readonly and self.ptr != "nullptr" else self.ptr


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


def _parameter_list(fn: func.FuncOp) -> str:
    return ", ".join(f"{kind}{name}" if kind.endswith("*") else f"{kind} {name}" for kind, name in _parameters(fn))


def signature(fn: func.FuncOp) -> str:
    """The C++ declaration of a function's one-shot entry point (prepare, run, synchronise,
    release)."""
    return f"int32_t qmmar_{c_name(fn.sym_name.data)}({_parameter_list(fn)}) noexcept"


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

WORKSPACE_REQUIRED: dict[type[aclnn.WorkspaceQuery], str] = {
    aclnn.MatmulReduceScatterV2GetWorkspaceSizeOp: mrs_rules.WORKSPACE,
    aclnn.AllGatherMatmulV2GetWorkspaceSizeOp: aclnn.AGMM_WORKSPACE,
}
"""The queries whose launch returns success without running when the workspace is of size 0
(their op_api), with the guard's message."""
"""Operators whose vendor header marks them deprecated."""

UINT32_MAX = 2**32 - 1

OWNERS = {"TensorOwner": "aclDestroyTensor", "IntArrayOwner": "aclDestroyIntArray",
          "ScalarOwner": "aclDestroyScalar", "ExecutorOwner": "aclDestroyAclOpExecutor"}  # fmt: skip

Mode = str
"""Which walk over a function's ops is being written: "query" (the start of prepare: every
call's first phase over tensors without data, for the workspace sizes and the memory plan),
"prepare" (prepare's own calls) or "run"."""


def plan_type(fn: func.FuncOp) -> str:
    return f"qmmar_{c_name(fn.sym_name.data)}_plan"


def entry_points(fn: func.FuncOp) -> list[str]:
    """The declarations of a function's entry points (header and definitions share them)."""
    name, plan, params = f"qmmar_{c_name(fn.sym_name.data)}", plan_type(fn), _parameter_list(fn)
    return [f"int32_t {name}_prepare({plan} **plan, {params}) noexcept",
            f"int32_t {name}_run({plan} *plan, {params}) noexcept",
            f"int32_t {name}_release({plan} *plan) noexcept", signature(fn)]  # fmt: skip


@dataclass
class _FunctionEmitter:
    fn: func.FuncOp
    checks: list[str] = field(default_factory=list[str])
    queries: list[str] = field(default_factory=list[str])
    capacity: list[str] = field(default_factory=list[str])
    body: list[str] = field(default_factory=list[str])
    refs: dict[SSAValue, str] = field(default_factory=dict[SSAValue, str])
    tensors: dict[SSAValue, _Tensor] = field(default_factory=dict[SSAValue, _Tensor])
    sizes: dict[SSAValue, Dim] = field(default_factory=dict[SSAValue, Dim])
    live: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    world_sizes: dict[tuple[str, int], Operation] = field(default_factory=dict[tuple[str, int], Operation])
    counter: int = 0
    mode: Mode = "query"
    has_comm_name: bool = False
    tensor_parameters: dict[aclnn.WorkspaceQuery, list[SSAValue | None]] = field(
        default_factory=dict[aclnn.WorkspaceQuery, list[SSAValue | None]]
    )  # each query's aclTensor arguments in order, None for an absent one (`query`)

    def fresh(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    @property
    def first(self) -> bool:
        """The first walk decides sizes and writes the checks; the others reuse them."""
        return self.mode == "query"

    def emit(self) -> list[str]:
        fn, where = self.fn, c_string(location_text(self.fn.location))
        self.placed, self.comms = placed_results(fn), communicators(fn)
        self.plan = FunctionPlan(fn, set(self.placed))
        self.cache_executors()
        self.group_index = {group: i for i, group in enumerate(self.comms)}
        walks = {mode: self.walk(mode, where) for mode in ("query", "prepare", "run")}
        self.rank_size_checks(where)
        name, plan, (prepare, run, release, one_shot) = f"qmmar_{c_name(fn.sym_name.data)}", plan_type(fn), \
            entry_points(fn)  # fmt: skip
        synchronise = [f"if (const int32_t waited = qmmar_wait(stream)) return qmmar_wait_failed({where}, waited);"]
        prepare_body = [*self.checks, *self.queries, f"{plan} *const plan = new (std::nothrow) {plan}{{}};",
                        f'if (plan == nullptr) return qmmar_failed({where}, "new {plan}", {OUT_OF_MEMORY});',
                        f"PlanGuard<{plan}> guard(plan, stream, {name}_release);",
                        *walks["query"], *self.allocations(where), *walks["prepare"],
                        *(synchronise if any(self.plan.at_prepare(op) for op in self.plan.ops) else []),
                        "*out = guard.release();", "return 0;"]  # fmt: skip
        run_body = [*self.checks, *self.capacity, *walks["run"], "return 0;"]
        return [f"// @{fn.sym_name.data} ({location_text(fn.location)})", *self.plan_comment(), *self.struct(),
                f'extern "C" {release} {{', *self.releases(), "}", "",
                'extern "C" ' + prepare.replace(f"{plan} **plan", f"{plan} **out") + " {",
                *self.indented(prepare_body, "out", where), "}", "",
                f'extern "C" {run} {{', *self.indented(run_body, "plan", where), "}", "",
                f'extern "C" {one_shot} {{', *self.one_shot(where), "}", ""]  # fmt: skip

    def struct(self) -> list[str]:
        """The plan: the arena's slots, the kept buffers, handles and executors, the group names."""
        slots, kept = len(self.plan.slots), len(self.plan.persistent)
        names = len(self.comms) if self.has_comm_name else 0
        fields = ["void *arena = nullptr;",
                  *([f"int64_t size[{slots}] = {{}};", f"int64_t offset[{slots}] = {{}};"] if slots else []),
                  *([f"void *buffer[{kept}] = {{}};", f"int64_t buffer_size[{kept}] = {{}};"] if kept else []),
                  *self.kept_fields(),
                  *([f"char comm_name[{names}][COMM_NAME_MAX_LENGTH] = {{}};"] if names else [])]  # fmt: skip
        return [f"struct {plan_type(self.fn)} {{", *(f"  {f}" for f in fields), "};", ""]

    def releases(self) -> list[str]:
        keep = "  if (plan->{0} != nullptr) qmmar_keep_first(status, {1}(plan->{0}));"
        each = "  for ({0} *p : plan->{1}) if (p != nullptr) qmmar_keep_first(status, {2}(p));"
        return ["  if (plan == nullptr) return 0;", "  int32_t status = 0;",
                *(each.format(*kept) for kept in self.kept_releases()),
                *(keep.format(f"buffer[{j}]", "aclrtFree") for j in range(len(self.plan.persistent))),
                keep.format("arena", "aclrtFree"), "  delete plan;", "  return status;"]  # fmt: skip

    def one_shot(self, where: str) -> list[str]:
        name, args = f"qmmar_{c_name(self.fn.sym_name.data)}", ", ".join(parameters(self.fn))
        return [f"  {plan_type(self.fn)} *plan = nullptr;",
                f"  const int32_t prepared = {name}_prepare(&plan, {args});", "  if (prepared != 0) return prepared;",
                f"  const int32_t ran = {name}_run(plan, {args});",
                "  const int32_t synced = qmmar_wait(stream);",
                f"  const int32_t released = {name}_release(plan);",
                "  if (ran != 0) {",
                '    if (synced != 0) qmmar_cleanup_failed("aclrtSynchronizeStreamWithTimeout", synced);',
                f'    if (released != 0) qmmar_cleanup_failed("{name}_release", released);', "    return ran;", "  }",
                f"  if (synced != 0) return qmmar_wait_failed({where}, synced);",
                f'  if (released != 0) return qmmar_failed({where}, "{name}_release", released);',
                "  return 0;"]  # fmt: skip

    def indented(self, body: list[str], null: str, where: str) -> list[str]:
        """A body with its null-plan check first and, for -Wunused-parameter, a void cast of
        each parameter it does not use."""
        code = re.sub(r'"(?:\\.|[^"\\])*"', '""', "\n".join(body))  # the names outside string literals
        used = set(re.findall(r"\w+", code))
        unused = [f"static_cast<void>({p});" for p in parameters(self.fn) if p not in used]
        test = f'if ({null} == nullptr) return qmmar_guard({where}, "[PLAN-NULL] {null} must not be null");'
        return [f"  {line}" for line in [*unused, test, *body]]

    def plan_comment(self) -> list[str]:
        return [f"// {line}" for line in self.plan.report()]

    def allocations(self, where: str) -> list[str]:
        """After the query walk: each kept buffer its own allocation, then the arena."""
        lines: list[str] = []
        malloc = "aclrtMalloc(&plan->{}, static_cast<size_t>({}), ACL_MEM_MALLOC_HUGE_FIRST)"
        for j in range(len(self.plan.persistent)):
            call = checked(where, "aclrtMalloc", malloc.format(f"buffer[{j}]", f"plan->buffer_size[{j}]"))
            lines.append(f"if (plan->buffer_size[{j}] > 0) {call}")
        if not self.plan.slots:
            return lines
        slots, arena = self.plan.slots, checked(where, "aclrtMalloc", malloc.format("arena", "arena_bytes"))
        lines += [f"static constexpr int32_t kFirst[] = {{{', '.join(str(s.first) for s in slots)}}};",
                  f"static constexpr int32_t kLast[] = {{{', '.join(str(s.last) for s in slots)}}};",
                  "const int64_t arena_bytes = qmmar_place(plan->size, kFirst, kLast, plan->offset);",
                  f'if (arena_bytes < 0) return qmmar_guard({where}, "[SIZE] the arena\'s size overflows int64");',
                  f"if (arena_bytes > 0) {arena}"]  # fmt: skip
        return lines

    def walk(self, mode: Mode, where: str) -> list[str]:
        self.mode, self.body = mode, []
        for arg, name in zip(self.fn.body.blocks[0].args, parameter_names(self.fn), strict=True):
            ptr = "nullptr" if mode == "query" else name
            self.bind(arg, _Tensor(ptr, _dims_of(arg, name), _dtype(arg), readonly=True), where)
        self.results = [
            _Tensor(f"result{i}", _dims_of(v, f"result{i}"), _dtype(v)) for i, v in enumerate(returned_values(self.fn))
        ]
        if self.first:
            for result in self.results:
                self.extent_check(result, where, result.ptr)
        for op in self.plan.ops:
            self.op(op)
        for v, kind in reversed(self.live):
            self.body.append(checked(where, OWNERS[kind], f"{v}.reset()"))
        self.live.clear()
        return self.body

    # --- checks -----------------------------------------------------------------------------

    def guard(self, verdict: object, where: str, message: str) -> None:
        """A run-time check: `verdict` is a parenthesised C++ expression, or decided."""
        if verdict is True or not self.first:
            return
        if verdict is False or verdict is None:
            raise LocatedError(where.strip('"'), f"the emitted call can never succeed: {message}")
        self.checks.append(f"if (!{verdict}) return qmmar_guard({where}, {c_string(message)});")

    def extent_check(self, t: _Tensor, where: str, what: str) -> None:
        """Every dim non-negative and the byte size within int64: then no product of its
        dims (a stride, an element count) overflows."""
        if not self.first:
            return
        if all(isinstance(d, int) for d in t.dims):
            if t.bytes() == INT64_MAX:
                raise LocatedError(where.strip('"'), f"{what}: the byte size of its shape overflows int64")
            return
        dims = ", ".join(int64(d) for d in t.dims)
        message = c_string(f"[SIZE] {what}: a negative dimension, or a byte size beyond int64")
        self.checks.append(f"if (!qmmar_extent_ok({{{dims}}}, {numpy_dtype(t.dtype).itemsize})) "
                           f"return qmmar_guard({where}, {message});")  # fmt: skip

    def contract(self, op: aclnn.Contracted, where: str) -> None:
        if self.first:
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
        if not self.first:
            return
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

    # --- phases -----------------------------------------------------------------------------

    def here(self, phases: set[str]) -> bool:
        """Whether this walk writes a call of `phases` (the query walk writes every one)."""
        return self.first or self.mode in phases

    def handle_phases(self, value: SSAValue) -> set[str]:
        """Where the calls taking an int array or a scalar run: a weight's int array is the
        query walk's alone (it sizes the prepacked buffer, which prepare allocates)."""
        users = [use.operation for use in value.uses]
        if all(isinstance(u, aclnn.CalculateMatmulWeightSizeV2Op) for u in users):
            return set()
        return {"prepare" if self.plan.at_prepare(u) else "run" for u in users if isinstance(u, aclnn.WorkspaceQuery)}

    def call_here(self, op: Operation) -> bool:
        return self.here({"prepare" if self.plan.at_prepare(op) else "run"})

    # --- cached executors -------------------------------------------------------------------

    def cache_executors(self) -> None:
        """Where every shape is static, prepare makes the first phase of each of run's calls
        once, over tensors on the plan's memory and the caller's, repeatable; run moves the
        tensors on the caller's memory to this run's (aclSetTensorAddr) and launches. The
        tensors, int arrays and scalars those calls take stay in the plan with their executors
        until release. A handle prepare's and run's calls share is kept in any case."""
        static = not any(kind == "int64_t" for kind, _ in _parameters(self.fn))
        queries = [op for op in self.plan.ops if isinstance(op, aclnn.WorkspaceQuery)]
        run_calls = [op for op in queries if not self.plan.at_prepare(op)]
        self.cached = {op: j for j, op in enumerate(run_calls)} if static else {}
        self.kept: dict[SSAValue, str] = {}
        self.kept_lists: dict[str, list[SSAValue]] = {"tensor": [], "array": [], "scalar": []}
        for op in self.plan.ops:
            handle: SSAValue
            match op:
                case aclnn.CreateTensorOp():
                    handle, kind, phases = op.handle, "tensor", self.plan.handle_phases(op.handle)
                    keep = phases == {"prepare", "run"} or (static and "run" in phases)
                case aclnn.CreateIntArrayOp() | aclnn.CreateScalarOp():
                    handle, kind = op.results[0], "array" if isinstance(op, aclnn.CreateIntArrayOp) else "scalar"
                    keep = static and "run" in self.handle_phases(handle)
                case _:
                    continue
            if keep:
                self.kept[handle] = f"plan->{kind}[{len(self.kept_lists[kind])}]"
                self.kept_lists[kind].append(handle)

    KEPT_TYPES: ClassVar[dict[str, tuple[str, str]]] = {
        "executor": ("aclOpExecutor", "ExecutorOwner"), "tensor": ("aclTensor", "TensorOwner"),
        "array": ("aclIntArray", "IntArrayOwner"), "scalar": ("aclScalar", "ScalarOwner")}  # fmt: skip
    """The C type and the owner of each kind of handle a plan keeps."""

    def kept_counts(self) -> dict[str, int]:
        return {"executor": len(self.cached), **{kind: len(kept) for kind, kept in self.kept_lists.items()}}

    def kept_fields(self) -> list[str]:
        fields = [f"{self.KEPT_TYPES[kind][0]} *{kind}[{n}] = {{}};" for kind, n in self.kept_counts().items() if n]
        return fields + ([f"uint64_t workspace_size[{len(self.cached)}] = {{}};"] if self.cached else [])

    def kept_releases(self) -> list[tuple[str, str, str]]:
        """(C type, plan field, release call) of each kind of handle release destroys: the
        executors before the tensors, int arrays and scalars they take."""
        return [(self.KEPT_TYPES[kind][0], kind, OWNERS[self.KEPT_TYPES[kind][1]])
                for kind, n in self.kept_counts().items() if n]  # fmt: skip

    def creates_here(self, phases: set[str]) -> bool:
        """Whether this walk creates a handle its calls of `phases` take (prepare creates those
        of run's cached calls)."""
        return self.here(phases) or (self.mode == "prepare" and bool(self.cached) and "run" in phases)

    def reuse_kept(self, handle: SSAValue) -> bool:
        """Run takes a kept handle from the plan."""
        if self.mode != "run" or handle not in self.kept:
            return False
        self.refs[handle] = self.kept[handle]
        return True

    def store_kept(self, handle: SSAValue, owner: str) -> None:
        """Prepare moves a kept handle, just created, into the plan."""
        if self.mode != "prepare" or handle not in self.kept:
            return
        kind = next(k for name, k in self.live if name == owner)
        self.body.append(f"{self.kept[handle]} = {owner}.take();")
        self.live.remove((owner, kind))
        self.refs[handle] = self.kept[handle]

    def cached_query(self, op: aclnn.WorkspaceQuery, where: str) -> None:
        """Prepare: the first phase, its executor and workspace size kept in the plan. Run: the
        tensors on the caller's memory moved to this run's pointers."""
        j = self.cached[op]
        executor, size = f"plan->executor[{j}]", f"plan->workspace_size[{j}]"
        if self.mode == "prepare":
            self.query(op, where)
            owner = self.refs[op.executor].removesuffix(".get()")
            self.body += [f"{size} = {self.refs[op.workspace_size]};", f"{executor} = {owner}.take();"]
            self.live.remove((owner, "ExecutorOwner"))
        else:
            for index, handle in self.moved_tensors(op):
                address = self.tensors[aclnn.creator_of(handle).data].data()
                call = f"aclSetTensorAddr({executor}, {index}, {self.kept[handle]}, {address})"
                self.body.append(checked(where, "aclSetTensorAddr", call))
        self.refs[op.executor], self.refs[op.workspace_size] = executor, size

    def moved_tensors(self, op: aclnn.WorkspaceQuery) -> list[tuple[int, SSAValue]]:
        """The tensors of a cached call on the caller's memory (an argument's or a result's:
        its pointers may change from run to run), each with its index among the call's aclTensor
        parameters, absent ones counted, as the prepare walk's `query` passed them."""
        callers = set(parameters(self.fn))
        return [(i, v) for i, v in enumerate(self.tensor_parameters[op])
                if v is not None and self.tensors[aclnn.creator_of(v).data].ptr in callers]  # fmt: skip

    # --- ops --------------------------------------------------------------------------------

    def op(self, op: Operation) -> None:
        where = c_string(location_text(op.location))
        emit = self.body.append
        match op:
            case arith.ConstantOp() | tensor.DimOp() | arith.MuliOp() | arith.DivUIOp() | arith.CeilDivUIOp():
                self.index(op, where)
            case aclnn.AllocTensorOp() | aclnn.ConstantOp():
                self.buffer(op, where)
            case aclnn.MemsetZeroOp():
                if self.call_here(op) and not self.first:
                    emit(self.memset_zero(self.tensors[op.dst], where))
            case aclnn.ViewOp():
                source = self.tensors[op.source]
                dims = self.shape(op.result, list(op.dynamic_sizes))
                self.bind(op.result, _Tensor(source.ptr, dims, source.dtype, source.readonly, source.capacity), where)
                self.contract(op, where)
            case aclnn.MemcpyOp():
                self.contract(op, where)
                if self.call_here(op) and not self.first:
                    emit(self.memcpy(self.tensors[op.dst], self.tensors[op.src], where))
            case aclnn.CreateTensorOp():
                self.create_tensor(op, where)
            case aclnn.CreateIntArrayOp():
                if self.reuse_kept(op.array) or not self.creates_here(self.handle_phases(op.array)):
                    return
                values = op.dims(lambda v: self.tensors[v].dims)
                v = self.owner("IntArrayOwner", op.array)
                emit(f"const int64_t {v}_values[] = {{{', '.join(int64(d) for d in values)}}};")
                emit(f'QMMAR_CREATE({where}, "aclCreateIntArray", {v}, aclCreateIntArray({v}_values, {len(values)}));')
                self.store_kept(op.array, v)
            case aclnn.CreateScalarOp():
                if self.reuse_kept(op.scalar) or not self.creates_here(self.handle_phases(op.scalar)):
                    return
                v = self.owner("ScalarOwner", op.scalar)
                emit(f"float {v}_value = {float(op.value.value.data)!r}f;")
                emit(f'QMMAR_CREATE({where}, "aclCreateScalar", {v}, aclCreateScalar(&{v}_value, ACL_FLOAT));')
                self.store_kept(op.scalar, v)
            case aclnn.DestroyTensorOp() | aclnn.DestroyIntArrayOp() | aclnn.DestroyScalarOp():
                self.destroy(op.operands[0], where)
            case aclnn.CalculateMatmulWeightSizeV2Op():
                if self.first:
                    v = self.fresh()
                    self.refs[op.size] = v
                    emit(f"uint64_t {v} = 0;")
                    call = f"aclnnCalculateMatmulWeightSizeV2({self.refs[op.shape]}, ACL_INT8, &{v})"
                    emit(checked(where, "aclnnCalculateMatmulWeightSizeV2", call))
            case aclnn.HcclGetCommNameOp():
                self.has_comm_name = True
                name = f"plan->comm_name[{self.group_index[op.group.data]}]"
                self.refs[op.group_name] = name
                if self.first:
                    emit(checked(where, "HcclGetCommName", f"HcclGetCommName({self.comms[op.group.data]}, {name})"))
            case aclnn.WorkspaceQuery():
                self.contract(op, where)
                if op in self.cached and not self.first:
                    self.cached_query(op, where)
                elif self.call_here(op):
                    self.query(op, where)
            case aclnn.MallocWorkspaceOp():
                if self.call_here(op) and not self.first:
                    v = self.fresh()
                    self.refs[op.workspace] = v
                    size = self.refs[op.size]
                    slot = self.slot_pointer(self.plan.slot_of(self.plan.query_of(op)))
                    emit(f"void *const {v} = {size} > 0 ? {slot} : nullptr;")
            case aclnn.LaunchOp():
                if self.call_here(op) and not self.first:
                    ws, size, executor, api = (*(self.refs[v] for v in op.operands), op.api.data)
                    self.call(api, api, where, f"{api}({ws}, {size}, {executor}, stream)")
            case aclnn.SynchronizeStreamOp() | aclnn.FreeOp():
                pass  # the workspace is an arena slot; the stream orders the calls
            case aclnn.HcclCollective():
                self.contract(op, where)
                comm = self.on_comm(op, op.group.data, op.world_size.value.data)
                if self.mode == "run":
                    emit(self.collective(op, comm, where))
            case func.ReturnOp():
                self.ret(op, where)
            case _:
                self.unsupported(op)

    def unsupported(self, op: Operation) -> None:
        raise LocatedError.at(op, "has no aclnn C++ form: the aclnn-cpp target takes what lower-mc2-to-aclnn and "
                              "lower-qmm-to-aclnn produce")  # fmt: skip

    def owner(self, kind: str, value: SSAValue) -> str:
        v = self.fresh()
        self.refs[value] = f"{v}.get()"
        self.body.append(f"{kind} {v};")
        self.live.append((v, kind))
        return v

    def destroy(self, value: SSAValue, where: str) -> None:
        """Release a handle in the walk that created it (a kept tensor: at release)."""
        ref = self.refs.get(value, "")
        if not ref.endswith(".get()"):
            return
        v = ref.removesuffix(".get()")
        kind = next((kind for name, kind in self.live if name == v), None)
        if kind is None:  # created by an earlier walk, or kept in the plan
            return
        self.live.remove((v, kind))
        self.body.append(checked(where, OWNERS[kind], f"{v}.reset()"))

    def create_tensor(self, op: aclnn.CreateTensorOp, where: str) -> None:
        if self.reuse_kept(op.handle) or not self.creates_here(self.plan.handle_phases(op.handle)):
            return
        t = self.tensors[op.data]
        v = self.owner("TensorOwner", op.handle)
        extents = ", ".join(int64(d) for d in t.dims)
        self.body.append(f"QMMAR_CREATE({where}, \"aclCreateTensor\", {v}, qmmar_tensor({{{extents}}}, "
                         f"{ACL_DTYPES[t.dtype]}, {t.data()}, {'true' if op.transposed else 'false'}));")  # fmt: skip
        self.store_kept(op.handle, v)

    def slot_pointer(self, k: int) -> str:
        return f"qmmar_at(plan->arena, plan->offset[{k}])"

    def buffer(self, op: aclnn.AllocTensorOp | aclnn.ConstantOp, where: str) -> None:
        """A buffer: the caller's result memory, a kept buffer of the plan or an arena slot.
        The query walk records its size (its tensors there have no data)."""
        dims = self.shape(op.result, list(op.dynamic_sizes) if isinstance(op, aclnn.AllocTensorOp) else [])
        dtype = _dtype(op.result)
        if op.result in self.placed:
            self.bind(op.result, _Tensor(f"result{self.placed[op.result]}", dims, dtype), where)
            return
        bytes_ = op.bytes if isinstance(op, aclnn.AllocTensorOp) else None
        if op.result in self.plan.persistent:
            j = self.plan.persistent.index(op.result)
            ptr, size, capacity = f"plan->buffer[{j}]", f"plan->buffer_size[{j}]", f"plan->buffer_size[{j}]"
        else:
            k = self.plan.slot_of(op.result)
            ptr, size, capacity = self.slot_pointer(k), f"plan->size[{k}]", f"plan->size[{k}]"
        t = _Tensor("nullptr" if self.first else ptr, dims, dtype,
                    capacity=f"static_cast<size_t>({capacity})" if bytes_ is not None else None)  # fmt: skip
        self.bind(op.result, t, where)
        if self.first:
            nbytes = self.refs[bytes_] if bytes_ is not None else int64(t.bytes())
            self.body.append(f"{size} = static_cast<int64_t>({nbytes});")
        elif self.mode == "run" and op.result not in self.plan.persistent and not isinstance(t.bytes(), int):
            self.capacity.append(f"if (!({t.bytes()} <= {size})) return qmmar_guard({where}, "
                                 f"\"[PLAN-CAPACITY] a buffer is larger than at prepare: run's sizes are at most "
                                 f"prepare's\");")  # fmt: skip
        if isinstance(op, aclnn.ConstantOp) and self.mode == "prepare":
            self.upload(op, t, where)

    def upload(self, op: aclnn.ConstantOp, t: _Tensor, where: str) -> None:
        """A copy of the constant's bytes from static host data, once, at prepare."""
        data = op.value.data.data
        if not data:
            return
        v = self.fresh()
        rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 24]) for i in range(0, len(data), 24)]
        self.body.append(f"alignas(8) static const unsigned char {v}_host[] = {{")
        self.body += [f"    {row}," for row in rows]
        self.body.append("};")
        self.body.append(checked(where, "aclrtMemcpy", f"aclrtMemcpy({t.ptr}, {len(data)}, {v}_host, {len(data)}, "
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
        return "nullptr" if value is None else self.refs[value]

    def query(self, op: aclnn.WorkspaceQuery, where: str) -> None:
        tensors: list[SSAValue | None] = []

        def t(value: SSAValue | None = None) -> str:
            """An aclTensor argument (None or none given: an absent one, nullptr)."""
            tensors.append(value)
            return self.handle(value)

        match op:
            case aclnn.QuantMatmulAllReduceQuery():
                self.on_comm(op, op.group.data, op.world_size.value.data)
                # V5 takes the per-token scale before the dequant scale, and commMode after reduceOp:
                # "ai_cpu", with groupSize and commQuantMode 0, the only values on Atlas A2
                # (docs/mc2-family.md, section 1)
                v5 = isinstance(op, aclnn.QuantMatmulAllReduceV5GetWorkspaceSizeOp)
                scales = (op.pertoken_scale, op.dequant_scale) if v5 else (op.dequant_scale, op.pertoken_scale)
                args = [*(t(v) for v in (op.x1, op.x2, op.bias, op.x3, *scales, op.comm_quant_scale_1,
                                          op.comm_quant_scale_2)),
                        self.refs[op.group_name], c_string(op.reduce_op.data), *[c_string("ai_cpu")] * v5,
                        str(op.comm_turn.value.data), str(op.stream_mode.value.data), *["0", "0"] * v5,
                        t(op.output)]  # fmt: skip
            case aclnn.MatmulReduceScatterV2GetWorkspaceSizeOp():
                self.on_comm(op, op.group.data, op.world_size.value.data)
                self.hccl_buffer_check(where, mrs_rules.CCL_BUFFER_MB, mrs_rules.CCL_BUFFER)
                args = [*(t(v) for v in (op.x1, op.x2, op.bias, op.x1_scale, op.x2_scale)), t(),
                        str(op.block_size.value.data), self.refs[op.group_name], c_string(op.reduce_op.data),
                        str(op.comm_turn.value.data), str(op.stream_mode.value.data), str(op.group_size.value.data),
                        c_string(op.comm_mode.data), t(op.output), t()]  # fmt: skip
            case aclnn.AllGatherMatmulV2GetWorkspaceSizeOp():
                self.on_comm(op, op.group.data, op.world_size.value.data)
                self.hccl_buffer_check(where, aclnn.AGMM_CCL_BUFFER_MB, aclnn.AGMM_CCL_BUFFER)
                args = [*(t(v) for v in (op.x1, op.x2, op.bias, op.x1_scale, op.x2_scale)), t(),
                        str(op.block_size.value.data), self.refs[op.group_name], str(op.gather_index.value.data),
                        str(op.comm_turn.value.data), str(op.stream_mode.value.data), str(op.group_size.value.data),
                        c_string(op.comm_mode.data), t(op.output), t(op.gather_out), t()]  # fmt: skip
            case aclnn.QuantMatmulV4GetWorkspaceSizeOp():
                args = [t(op.x1), t(op.x2), t(op.scale), t(), t(op.pertoken_scale), t(op.bias), "false",
                        "true" if op.transpose_x2.value.data else "false", t(op.out)]  # fmt: skip
            case aclnn.TransQuantParamV2GetWorkspaceSizeOp():
                args = [t(op.input), t(), t(op.out)]
            case aclnn.TransMatmulWeightGetWorkspaceSizeOp() | aclnn.InplaceOneGetWorkspaceSizeOp():
                args = [t(op.operands[0])]
            case aclnn.AddGetWorkspaceSizeOp():
                args = [t(op.lhs), t(op.rhs), self.handle(op.alpha), t(op.out)]
            case aclnn.CastGetWorkspaceSizeOp():
                args = [t(op.input), ACL_DTYPES[aclnn.dtype_of(op.out)], t(op.out)]
            case aclnn.DivGetWorkspaceSizeOp() | aclnn.MulGetWorkspaceSizeOp():
                args = [t(op.lhs), t(op.rhs), t(op.out)]
            case aclnn.ReduceSumGetWorkspaceSizeOp():
                args = [t(op.input), self.handle(op.dims), "false", ACL_DTYPES[aclnn.dtype_of(op.out)], t(op.out)]
            case aclnn.QuantizeGetWorkspaceSizeOp():
                args = [t(op.input), t(op.scales), t(), ACL_DTYPES[aclnn.dtype_of(op.out)], "-1", t(op.out)]
            case _:
                self.unsupported(op)
        self.tensor_parameters[op] = tensors
        size = self.fresh()
        self.refs[op.workspace_size] = size
        self.body.append(f"uint64_t {size} = 0;")
        executor = self.owner("ExecutorOwner", op.executor)
        call = f"{op.API}GetWorkspaceSize"
        self.call(op.API, call, where, f"{call}({', '.join(args)}, &{size}, {executor}.out())")
        # Repeatable, the executor outlives its launch, and its owner destroys it as CANN
        # documents (aclDestroyAclOpExecutor is for repeatable executors), launched or not.
        # Should this call fail, no documented call releases it: it is left to CANN.
        self.body.append(f"QMMAR_REPEATABLE({where}, {executor});")
        if (no_workspace := WORKSPACE_REQUIRED.get(type(op))) is not None:  # its launch skips the op without one
            self.body.append(f"if ({size} == 0) return qmmar_guard({where}, {c_string(no_workspace)});")
        k = self.plan.slot_of(op)
        if self.first:  # the workspace's slot; the executor served its purpose
            self.body.append(f"plan->size[{k}] = static_cast<int64_t>({size});")
            self.body.append(checked(where, "aclDestroyAclOpExecutor", f"{executor}.reset()"))
            self.live.remove((executor, "ExecutorOwner"))
            return
        self.body.append(f"if ({size} > static_cast<uint64_t>(plan->size[{k}])) return qmmar_guard({where}, "
                         f"\"[PLAN-WORKSPACE] {op.API} needs a larger workspace than at prepare\");")  # fmt: skip

    def hccl_buffer_check(self, where: str, megabytes: int, message: str) -> None:
        """A check before the function's first call that HCCL_BUFFSIZE, where set, asks for at
        least `megabytes` (the aiv paths of MatmulReduceScatterV2 and AllGatherMatmulV2)."""
        check = f"if (!qmmar_hccl_buffer_ok({megabytes})) return qmmar_guard({where}, {c_string(message)});"
        if check not in self.checks:
            self.checks.append(check)

    def call(self, operator: str, api: str, where: str, call: str) -> None:
        line = checked(where, api, call)
        if operator not in DEPRECATED:
            self.body.append(line)
            return
        # CANN deprecates aclnnQuantMatmulV4 (for aclnnQuantMatmulV5): its call sites opt out
        # of the warning, so that -Werror builds stay clean.
        self.body += ["#pragma GCC diagnostic push", '#pragma GCC diagnostic ignored "-Wdeprecated-declarations"',
                      line, "#pragma GCC diagnostic pop"]  # fmt: skip

    def collective(self, op: aclnn.HcclCollective, comm: str, where: str) -> str:
        send, recv = self.tensors[op.send], self.tensors[op.recv]
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
            if self.mode == "run" and self.placed.get(_view_root(value)) != i:
                self.body.append(self.memcpy(result, computed, where))


@dataclass(frozen=True)
class AclnnCppTarget(CheckedOptions, Target):
    """Emit one C++17 translation unit of aclnn and HCCL calls (run lower-mc2-to-aclnn and
    lower-qmm-to-aclnn first); header=true: the header declaring its functions;
    memory-plan=true: each function's memory plan instead (the comment above its code)."""

    name: ClassVar[str] = "aclnn-cpp"
    header: bool = False
    memory_plan: bool = False

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        functions = [op for op in module.walk() if isinstance(op, func.FuncOp) and op.body.blocks]
        seen: dict[str, func.FuncOp] = {}
        for fn in functions:
            name = c_name(fn.sym_name.data)
            if name in seen:
                raise LocatedError(location_text(fn.location), f"@{fn.sym_name.data} and @{seen[name].sym_name.data} "
                                  f"both become qmmar_{name} in C++")  # fmt: skip
            seen[name] = fn
        if self.memory_plan:
            output.write("".join(line + "\n" for fn in functions for line in memory_plan(fn).report(workspace=0)))
            return
        if self.header:
            declarations = [f"typedef struct {plan_type(fn)} {plan_type(fn)};\n"
                            + "".join(f"{d.replace(' noexcept', ' QMMAR_NOEXCEPT')};\n" for d in entry_points(fn))
                            for fn in functions]  # fmt: skip
            output.write(HEADER_PRELUDE + "\n".join(declarations) + HEADER_END)
            return
        parts = [PRELUDE] + [line for fn in functions for line in _FunctionEmitter(fn).emit()]
        output.write("\n".join(parts))


def memory_plan(fn: func.FuncOp) -> FunctionPlan:
    """The phases and memory plan of a lowered function, as its C++ has them."""
    return FunctionPlan(fn, set(placed_results(fn)))
