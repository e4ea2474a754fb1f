"""What the HTML report shows, as plain data: each function's dataflow graph before fusion, and
for each chain its verdict, ops, cost estimate and the fused op that replaced it.

`chain_record` is the one place that reads the fusion pass's `Verdict` and the matcher's
`Chain`; everything else works on the records it returns.
"""

from __future__ import annotations

import io
from collections.abc import Container
from dataclasses import dataclass, replace

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, OpResult
from xdsl.printer import Printer
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects.location import location_text
from qmmar.dialects.logic import Dim, StaticLogic
from qmmar.passes.cost_model import CostEstimate, estimate
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, Verdict, fuse
from qmmar.passes.legality import signature

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


def printed_ops(fn: func.FuncOp, wanted: Container[Operation] | None = None) -> dict[Operation, str]:
    """Each top-level op of fn (or each one `wanted`) printed on its own, with the SSA names
    the whole function prints with: one printer names the arguments, then every result in
    order (an op that is not wanted is only named, unless it has regions to name inside)."""
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
    return texts if wanted is None else {op: text for op, text in texts.items() if op in wanted}


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
    location: str  # its matmul's
    summary: str  # its ops' names, in order
    rule: str | None
    sentence: str | None
    must_fuse: bool
    notes: tuple[str, ...]
    int8_comm: bool
    ops: tuple[Operation, ...]  # the chain's ops (erased once fused)
    root: Operation | None  # its last op: where the fused op goes
    fused_op: Operation | None  # what replaced them
    dims: tuple[Dim, Dim, Dim, int] | None  # m, k, n and the world size of the fused op
    function: int | None = None  # its graph, an index into Snapshot.functions
    nodes: tuple[int, ...] = ()  # its ops in that graph
    before: Printed = ()  # its ops
    after: Printed = ()  # the fused op, after the ops the rewrite added for it
    cost: tuple[CostEstimate, CostEstimate] | None = None  # (all-reduce in the output dtype, in int8)


def chain_record(number: int, verdict: Verdict) -> ChainRecord:
    """The adapter: the one place that reads the fusion pass's Verdict and the matcher's Chain."""
    chain = verdict.matched
    dims = None
    if chain is not None:
        sig = signature(chain)
        dims = (StaticLogic.prod(sig.x1.shape[:-1]), sig.k, sig.n, sig.world_size)
    return ChainRecord(
        number=number, status="fused" if verdict.rewritten else "legal" if verdict.legal else "refused",
        location=verdict.location, summary=verdict.chain, rule=verdict.rule, sentence=verdict.sentence,
        must_fuse=verdict.must_fuse, notes=verdict.notes, int8_comm=chain is not None and chain.int8_comm,
        ops=tuple(chain.path + chain.side) if chain else (), root=chain.end if chain else None,
        fused_op=verdict.fused_op, dims=dims,
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


def previewed_texts(module: ModuleOp, options: FuseOptions) -> dict[int, Printed]:
    """What fusion would write, for a report of a check-only run: a copy of the module fused."""
    copy = module.clone()
    order = {op: i for i, op in enumerate(copy.walk())}
    verdicts = fuse(copy, replace(options, check_only=False, report=""))  # the report is the caller's
    return fused_texts([chain_record(i + 1, v) for i, v in enumerate(verdicts)], order, copy)


def placed(chain: ChainRecord, snapshot: Snapshot, after: dict[int, Printed], options: FuseOptions) -> ChainRecord:
    """The chain with its place in the snapshot's graphs, its ops printed, and its cost."""
    places = [snapshot.where[op] for op in chain.ops if op in snapshot.where]
    nodes = snapshot.functions[places[0][0]].nodes if places else ()
    cost = None
    sizes = [d for d in chain.dims or () if isinstance(d, int)]
    if len(sizes) == 4:  # every dimension static
        m, k, n, world_size = sizes
        output, int8 = (estimate(m, k, n, world_size, options.int8_tops, options.link_gbps, size) for size in (2, 1))
        cost = (output, int8)
    return replace(
        chain, function=places[0][0] if places else None, nodes=tuple(i for _, i in places),
        before=tuple((nodes[i].text, nodes[i].location) for _, i in places),
        after=after.get(snapshot.order.get(chain.root, -1), ()) if chain.root else (), cost=cost,
    )  # fmt: skip
