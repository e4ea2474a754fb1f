"""What a lowered function does once (`prepare`) and on every call (`run`), and where its
memory lives: the phase of each call and the memory plan of the aclnn-cpp target.

Prepare does the work that does not depend on the run's data: the constants, and every call
that only reads constants or weights and writes buffers nothing else writes (an NZ prepack,
a packed constant scale, the unit scale of aclnnQuantize).  A weight is an argument read
only to be prepacked: prepare reads it once, and a change to it after prepare is not seen.
What prepare computes stays, each buffer in a device allocation of its own, until release.

Every other buffer, and every call's workspace, is a slot of one device arena allocated at
prepare: a slot is live from the op that allocates it (a workspace: its launch) to the last
launch, copy or collective that reads or writes it, through its views and tensors (a tensor
is a description on the host: one kept alive, as a cached executor's are, holds no memory);
`run` takes its memory from the arena, so that it allocates nothing and needs no host
synchronisation (one stream orders the calls).  The offsets are chosen at prepare
(`qmmar_place` in the prelude), when the sizes are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import BlockArgument, Operation, SSAValue

from qmmar.dialects import aclnn
from qmmar.dialects.dtypes import dtype_name, numpy_dtype
from qmmar.targets.prelude import ARENA_ALIGNMENT


def data_root(value: SSAValue) -> SSAValue:
    """The buffer a tensor value's memory belongs to (a view's is its source's)."""
    while isinstance(value.owner, aclnn.ViewOp):
        value = value.owner.source
    return value


def tensor_handles(op: Operation) -> list[SSAValue]:
    return [v for v in op.operands if isinstance(v.type, aclnn.TensorHandleType)]


def handle_root(handle: SSAValue) -> SSAValue:
    return data_root(aclnn.creator_of(handle).data)


def written_handles(query: aclnn.WorkspaceQuery) -> list[SSAValue]:
    """The tensors a call writes: its `out` or `output`, else (an in-place call such as
    aclnnInplaceOne or aclnnTransMatmulWeight) every tensor it takes."""
    names = [name for name, _ in type(query).get_irdl_definition().operands]
    outs = [v for name in names if name in ("out", "output") and isinstance(v := getattr(query, name), SSAValue)]
    return outs or tensor_handles(query)


def _is_prepack_copy(op: Operation) -> bool:
    """A copy into a buffer sized by the runtime (`bytes`): the first step of an NZ prepack."""
    return (
        isinstance(op, aclnn.MemcpyOp)
        and isinstance(op.dst.owner, aclnn.AllocTensorOp)
        and op.dst.owner.bytes is not None
    )


@dataclass
class Slot:
    """A buffer of the arena: an allocation's (`value`) or a call's workspace (`query`)."""

    index: int
    first: int
    last: int
    value: SSAValue | None = None
    query: aclnn.WorkspaceQuery | None = None

    def describe(self) -> str:
        if self.query is not None:
            return f"workspace of {self.query.API}"
        assert self.value is not None
        return f"{self.value.name_hint and '%' + self.value.name_hint or 'buffer'} {self.value.type}"

    def static_bytes(self) -> int | None:
        """Its size when the types fix it (None for a workspace or a dynamic shape)."""
        if self.value is None or not isinstance(self.value.type, TensorType):
            return None
        owner = self.value.owner
        if isinstance(owner, aclnn.AllocTensorOp) and owner.bytes is not None:
            return None
        shape = self.value.type.get_shape()
        if any(d < 0 for d in shape):
            return None
        size = numpy_dtype(dtype_name(self.value.type.element_type)).itemsize
        for d in shape:
            size *= d
        return size


@dataclass
class FunctionPlan:
    fn: func.FuncOp
    placed: set[SSAValue]
    """Buffers written in the caller's result memory."""
    prepared: set[SSAValue] = field(default_factory=set[SSAValue])
    """Buffers prepare computes: constants, weights, and what only prepare's calls write."""
    slots: list[Slot] = field(default_factory=list[Slot])
    persistent: list[SSAValue] = field(default_factory=list[SSAValue])
    """Buffers prepare computes, each in a device allocation of its own until release."""

    def __post_init__(self) -> None:
        self.ops = [op for op in self.fn.body.walk() if op is not self.fn]
        self.position = {op: i for i, op in enumerate(self.ops)}
        self._prepared_buffers()
        self._slots()

    # --- phases -----------------------------------------------------------------------------

    def at_prepare(self, op: Operation) -> bool:
        """Whether a call (a query, its launch, a copy, a memset) runs at prepare."""
        match op:
            case aclnn.WorkspaceQuery():
                return "group" not in op.properties and all(handle_root(h) in self.prepared for h in tensor_handles(op))
            case aclnn.MemcpyOp():
                return data_root(op.dst) in self.prepared and data_root(op.src) in self.prepared
            case aclnn.MemsetZeroOp():
                return data_root(op.dst) in self.prepared
            case aclnn.MallocWorkspaceOp() | aclnn.LaunchOp():
                return self.at_prepare(self.query_of(op))
            case _:
                return False

    @staticmethod
    def query_of(op: aclnn.MallocWorkspaceOp | aclnn.LaunchOp) -> aclnn.WorkspaceQuery:
        owner = (op.size if isinstance(op, aclnn.MallocWorkspaceOp) else op.operands[2]).owner
        assert isinstance(owner, aclnn.WorkspaceQuery)
        return owner

    def handle_phases(self, handle: SSAValue) -> set[str]:
        """ "prepare" and/or "run": where the calls that take a tensor handle run."""
        users = {use.operation for use in handle.uses if isinstance(use.operation, aclnn.WorkspaceQuery)}
        return {"prepare" if self.at_prepare(user) else "run" for user in users}

    def _weights(self) -> set[SSAValue]:
        """Arguments read only to be prepacked (their shape may size the prepacked buffer)."""
        args = self.fn.body.blocks[0].args

        def prepack(user: Operation) -> bool:
            return _is_prepack_copy(user) or isinstance(user, aclnn.CreateIntArrayOp)

        return {a for a in args if any(_is_prepack_copy(u.operation) for u in a.uses)
                and all(prepack(u.operation) for u in a.uses)}  # fmt: skip

    def _prepared_buffers(self) -> None:
        candidates: set[SSAValue] = self._weights()
        for op in self.ops:
            if isinstance(op, aclnn.ConstantOp):
                candidates.add(op.result)
            if isinstance(op, aclnn.AllocTensorOp) and op.result not in self.placed and not op.dynamic_sizes:
                candidates.add(op.result)
        self.prepared = candidates
        changed = True
        while changed:  # a buffer a run-time call writes is not prepare's
            changed = False
            for op in self.ops:
                if self.at_prepare(op):
                    continue
                written: list[SSAValue] = []
                match op:
                    case aclnn.WorkspaceQuery():
                        written = [handle_root(h) for h in written_handles(op)]
                    case aclnn.MemcpyOp() | aclnn.MemsetZeroOp():
                        written = [data_root(op.dst)]
                    case aclnn.HcclCollective():
                        written = [data_root(op.recv)]
                for root in written:
                    if root in self.prepared and not isinstance(root, BlockArgument):
                        self.prepared.discard(root)
                        changed = True
        # a weight no prepare call reads any more is an argument like any other
        self.prepared -= {w for w in self._weights() if not any(self.at_prepare(u.operation) for u in w.uses)}

    # --- liveness ---------------------------------------------------------------------------

    def _last_use(self, root: SSAValue) -> int:
        last = self.position[root.owner] if isinstance(root.owner, Operation) else 0
        pending = [root]
        while pending:
            value = pending.pop()
            for use in value.uses:
                user = use.operation
                at = self.position[user]
                if isinstance(user, aclnn.ViewOp | aclnn.CreateTensorOp):
                    pending.append(user.results[0])
                    continue
                if isinstance(user, aclnn.CreateIntArrayOp | aclnn.DestroyTensorOp):
                    continue  # host work on a tensor's description: its memory is not touched
                if isinstance(user, aclnn.WorkspaceQuery):  # used until its launch
                    launch = next(u.operation for u in user.executor.uses if isinstance(u.operation, aclnn.LaunchOp))
                    at = self.position[launch]
                last = max(last, at)
        return last

    def _slots(self) -> None:
        offset = len(self.ops)  # prepare's calls come before any of run's
        for op in self.ops:
            match op:
                case aclnn.AllocTensorOp() | aclnn.ConstantOp() if op.result in self.prepared:
                    self.persistent.append(op.result)
                case aclnn.AllocTensorOp() if op.result not in self.placed:
                    self.slots.append(Slot(len(self.slots), self.position[op], self._last_use(op.result), op.result))
                case aclnn.LaunchOp():
                    at = self.position[op] - (offset if self.at_prepare(op) else 0)
                    self.slots.append(Slot(len(self.slots), at, at, query=self.query_of(op)))

    def slot_of(self, value_or_query: SSAValue | Operation) -> int:
        return next(s.index for s in self.slots if value_or_query in (s.value, s.query))

    def live_peak(self, workspace: int, alignment: int = 1) -> int | None:
        """The most bytes live at once, each workspace taken as `workspace` bytes and each
        slot rounded up to `alignment` (None when a size is known only at run time)."""
        known = [workspace if s.query is not None else s.static_bytes() for s in self.slots]
        if any(size is None for size in known):
            return None
        sizes = [-(-(size or 0) // alignment) * alignment for size in known]
        times = {t for s in self.slots for t in (s.first, s.last)}
        live = [[size for s, size in zip(self.slots, sizes, strict=True) if s.first <= t <= s.last] for t in times]
        return max((sum(at) for at in live), default=0)

    def report(self, workspace: int | None = None) -> list[str]:
        """The plan, one line a slot (op positions in the function's lowered body)."""
        lines = [f"memory plan of @{self.fn.sym_name.data}: kept from prepare to release: {len(self.persistent)}, "
                 f"arena slots: {len(self.slots)}"]  # fmt: skip
        for value in self.persistent:
            lines.append(f"  kept: {value.name_hint and '%' + value.name_hint or 'buffer'} {value.type}")
        for s in self.slots:
            size = s.static_bytes()
            live = "at prepare" if s.first < 0 else f"at ops {s.first}..{s.last}"
            lines.append(f"  slot {s.index}: {s.describe()}, {'sized at prepare' if size is None else f'{size} B'}, "
                         f"live {live}")  # fmt: skip
        if workspace is not None and (peak := self.live_peak(workspace)) is not None:
            aligned = self.live_peak(workspace, ARENA_ALIGNMENT)
            each = f"each workspace {workspace} B" if workspace else "workspaces, sized at prepare, not counted"
            lines.append(f"  live peak: {peak} B, {aligned} B with each slot a multiple of {ARENA_ALIGNMENT} B "
                         f"({each})")  # fmt: skip
        return lines
