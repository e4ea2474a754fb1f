"""What the HTML report shows, as plain data: each function's dataflow graph before fusion, and
for each chain its verdict, ops, cost estimate and the fused op that replaced it (or, for a
chain judged legal in check-only mode, the ops its plan would write).

`chain_record` is the one place that reads a verdict's `FusionPlan`; everything else works on
the records it returns.
"""

from __future__ import annotations

import io
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, OpResult
from xdsl.printer import Printer
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects.location import location_text
from qmmar.dialects.logic import Dim
from qmmar.passes.plan import Cost, FusionPlan, Verdict
from qmmar.passes.rewrite import build_ops, discard

STATUSES = ("fused", "legal", "refused")


class ReportError(PassFailedException):
    """The report cannot be made (Graphviz missing, dot failed, an unreadable run file): one
    line for the user.  A pass failure, so that qmmar-opt prints it as one."""


@dataclass(frozen=True)
class Node:
    """One op of a function, as the graph draws it."""

    name: str  # the op's name
    result: str  # its first result as printed (`%acc0`), or ""
    text: str  # the op as printed
    location: str
    inputs: tuple[int, ...]  # the nodes of the same function whose results it reads


@dataclass(frozen=True)
class FunctionGraph:
    name: str
    nodes: tuple[Node, ...]


def printed_ops(fn: func.FuncOp, wanted: Container[Operation] | None = None,
                extra: Sequence[Operation] = ()) -> dict[Operation, str]:  # fmt: skip
    """Each top-level op of fn (or each one `wanted`) printed on its own, with the SSA names
    the whole function prints with: one printer names the arguments, then every result in
    order (an op that is not wanted is only named, unless it has regions to name inside);
    then the `extra` ops, which are in no block, with those names."""
    printer = Printer(stream=io.StringIO())
    for arg in fn.body.blocks[0].args:
        printer.print_ssa_value(arg)
    texts: dict[Operation, str] = {}
    for block in fn.body.blocks:
        for op in block.ops:
            printer.stream = io.StringIO()
            if wanted is None or op in wanted or op.regions:
                printer.print_op(op)
                texts[op] = printer.stream.getvalue()
            else:
                for result in op.results:
                    printer.print_ssa_value(result)
    for op in extra:
        printer.stream = io.StringIO()
        printer.print_op(op)
        texts[op] = printer.stream.getvalue()
    return texts if wanted is None else {op: text for op, text in texts.items() if op in wanted or op in extra}


def _functions(module: ModuleOp) -> list[func.FuncOp]:
    return [op for op in module.walk() if isinstance(op, func.FuncOp) and op.body.blocks]


class Snapshot:
    """The module's functions as they are when it is taken (before fusion): every op
    printed, and where it sits in the graph and in the module's walk order."""

    def __init__(self, module: ModuleOp) -> None:
        self.order = {op: i for i, op in enumerate(module.walk())}
        """Each op's position in the walk: the same in a clone of the module."""
        self.where: dict[Operation, tuple[int, int]] = {}
        """Each top-level op of a function: (function, node)."""
        self.functions: list[FunctionGraph] = []
        for fn in _functions(module):
            texts = printed_ops(fn)
            index: dict[Operation | Block, int] = {op: i for i, op in enumerate(texts)}  # by value owner
            nodes = []
            for op, text in texts.items():
                result = text.split(" = ", 1)[0] if op.results else ""
                inputs = tuple(sorted({index[v.owner] for v in op.operands if v.owner in index}))
                nodes.append(Node(op.name, result, text, location_text(op.location), inputs))
                self.where[op] = (len(self.functions), index[op])
            self.functions.append(FunctionGraph(fn.sym_name.data, tuple(nodes)))


Printed = tuple[tuple[str, str], ...]
"""Ops as the report lists them: (op printed, its location)."""


@dataclass(frozen=True)
class ChainRecord:
    """One chain as the report shows it: what `chain_record` reads from its verdict, then
    where it sits in the graph, its ops printed and its cost (`placed`)."""

    number: int  # from 1, in verdict order
    status: str  # one of STATUSES
    location: str  # the verdict's: the op its rule is about, else the chain's first op
    chain_location: str  # where the chain is: its first op (what `--ideal` figures are keyed by)
    summary: str  # its ops' names, in order
    rule: str | None
    sentence: str | None
    must_fuse: bool
    notes: tuple[str, ...]
    plan: FusionPlan | None
    ops: tuple[Operation, ...]  # the chain's ops (erased once fused)
    root: Operation | None  # its last op: where the fused op goes
    fused_op: Operation | None  # what replaced them
    dims: tuple[Dim, Dim, Dim, int] | None  # m, k, n and the world size of the fused op
    costs: tuple[Cost, ...] = ()  # each way its communication could run
    function: int | None = None  # its graph, an index into Snapshot.functions
    nodes: tuple[int, ...] = ()  # its ops in that graph
    before: Printed = ()  # its ops
    after: Printed = ()  # the fused op, after the ops the rewrite added for it


def chain_record(number: int, verdict: Verdict) -> ChainRecord:
    """The adapter: the one place that reads a verdict's plan."""
    plan = verdict.plan
    dims = None
    if plan is not None and plan.dims is not None:
        dims = (*plan.dims, int(plan.properties["world_size"]))
    return ChainRecord(
        number=number, status="fused" if verdict.rewritten else "legal" if verdict.legal else "refused",
        location=verdict.location, chain_location=plan.location if plan else verdict.location,
        summary=verdict.chain, rule=verdict.rule, sentence=verdict.sentence, must_fuse=verdict.must_fuse,
        notes=verdict.notes, plan=plan, ops=tuple(plan.chain.path + plan.chain.side) if plan else (),
        root=plan.chain.end if plan else None, fused_op=verdict.fused_op, dims=dims,
        costs=plan.costs if plan else (),
    )  # fmt: skip


def fused_texts(chains: list[ChainRecord], order: dict[Operation, int], module: ModuleOp) -> dict[int, Printed]:
    """For each fused chain, keyed by its root's position before fusion: the ops the rewrite
    added for it (a collapsed x1, a packed scale) and the fused op, printed in `module`."""
    roots = {c.fused_op: order[c.root] for c in chains if c.fused_op is not None and c.root is not None}
    wanted = {v.op for op in roots for v in op.operands if isinstance(v, OpResult) and v.op not in order} | roots.keys()
    texts: dict[int, Printed] = {}
    for fn in _functions(module) if roots else []:
        printed = printed_ops(fn, wanted)
        for op in printed:
            if op in roots:
                added = [v.op for v in op.operands if isinstance(v, OpResult) and v.op in printed]
                texts[roots[op]] = tuple((printed[a], location_text(a.location)) for a in [*added, op])
    return texts


def previewed_texts(chains: list[ChainRecord], order: dict[Operation, int]) -> dict[int, Printed]:
    """For each chain judged legal but not rewritten (check-only), keyed by its root's position:
    the ops its plan would write, printed with the names of its function (built and dropped)."""
    texts: dict[int, Printed] = {}
    for c in chains:
        if c.status != "legal" or c.plan is None or c.root is None:
            continue
        fn = c.root.parent_op()
        while fn is not None and not isinstance(fn, func.FuncOp):
            fn = fn.parent_op()
        if fn is None:
            continue
        ops = build_ops(c.plan)
        printed = printed_ops(fn, (), ops)
        texts[order[c.root]] = tuple((printed[op], location_text(op.location)) for op in ops)
        discard(ops)
    return texts


def placed(chain: ChainRecord, snapshot: Snapshot, after: dict[int, Printed]) -> ChainRecord:
    """The chain with its place in the snapshot's graphs and its ops printed."""
    places = [snapshot.where[op] for op in chain.ops if op in snapshot.where]
    nodes = snapshot.functions[places[0][0]].nodes if places else ()
    return replace(
        chain, function=places[0][0] if places else None, nodes=tuple(i for _, i in places),
        before=tuple((nodes[i].text, nodes[i].location) for _, i in places),
        after=after.get(snapshot.order.get(chain.root, -1), ()) if chain.root else (),
    )  # fmt: skip
