"""The torch.compile backend's graph rewrite: each chain that fuses becomes one call of its fused
op's custom op (`torch.ops.qmmar.<FusedOpKind.torch_op>`) in the FX graph, in place of exactly its
nodes, written straight from the chain's plan (as Inductor's pattern passes write their
replacement): the imported module is judged, never rewritten.

1. Import the ATen graph Dynamo and AOTAutograd hand over (fake tensors in `meta["val"]`)
   and judge its chains: a plan per chain.
2. `fused_call`, the adapter (the one reader of a plan here): the fused op's operands in final
   form and its properties, and the FX nodes the chain's ops stand for (the importer's origins).
3. Rewrite, chain by chain.  The call goes where the chain's first collective was; it is
   written only when that moves no collective across another side effect, when every operand
   is computed before that point, and when every collective of the chain can go (nothing else
   reads it).  Otherwise the chain stays as it is, and its verdict says why.  Every node that
   carried the chain's result reads the call instead; the chain's nodes that nothing else
   reads are erased.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.fx import GraphModule, Node
from torch.fx.node import Argument
from xdsl.dialects import tensor
from xdsl.ir import Operation, SSAValue

import qmmar.frontends.torch.all_gather_op  # noqa: F401  # defines torch.ops.qmmar.all_gather_quant_matmul
import qmmar.frontends.torch.exact_narrow_op  # noqa: F401  # torch.ops.qmmar.to_bf16_exact
import qmmar.frontends.torch.fused_all_reduce_a3_op  # noqa: F401  # torch.ops.qmmar.quant_matmul_all_reduce_a3
import qmmar.frontends.torch.fused_op  # noqa: F401  # defines torch.ops.qmmar.*, which the rewrite calls
import qmmar.frontends.torch.fused_reduce_scatter_op  # noqa: F401
from qmmar.frontends.torch.importer import ImportedProgram
from qmmar.frontends.torch.meta import DTYPES, fake_value, graph_nodes
from qmmar.frontends.torch.patterns import target_name
from qmmar.passes.family import family, kind_of
from qmmar.passes.plan import Operand, Verdict

COMMUNICATION = ("_c10d_functional.", "c10d.", "vllm.all_reduce.", *(f"qmmar.{k.torch_op}." for k in family()))
"""Ops that talk to other ranks: side effects, whatever their schema says."""


def is_side_effect(node: Node) -> bool:
    return node.op == "call_function" and (target_name(node).startswith(COMMUNICATION) or node.is_impure())


@dataclass(frozen=True)
class FusedCall:
    """What one fused chain becomes in the FX graph."""

    verdict: Verdict
    target: torch._ops.OpOverload  # the fused op's custom op
    operands: Mapping[str, Operand | None]  # by name, in the op's order; None: absent
    properties: tuple[str | int | bool, ...]  # in the op's order
    output_dtype: torch.dtype
    view: list[int] | None  # the shape the call's [m, n] rows are viewed as (-1: dynamic), when the chain ends so
    nodes: tuple[Node, ...]  # the FX nodes the chain's ops stand for
    values: tuple[SSAValue, ...]  # the chain's values
    result: SSAValue  # the chain's value (its last op's result)
    source: Node  # the chain's first op's node: where the user wrote it


def chain_source(verdict: Verdict, imported: ImportedProgram) -> Node | None:
    """The FX node of the chain's first op (its matmul): where the user wrote the chain."""
    return None if verdict.plan is None else imported.origins[verdict.plan.head][0]


def fused_call(verdict: Verdict, imported: ImportedProgram) -> FusedCall | None:
    """The adapter: the one place that reads a plan here (None when the chain does not fuse)."""
    plan, source = verdict.plan, chain_source(verdict, imported)
    if plan is None or not plan.legal or source is None:
        return None
    chain = plan.chain
    nodes = dict.fromkeys(node for chain_op in chain.ops for node in imported.origins.get(chain_op, ()))
    return FusedCall(
        verdict=verdict, target=getattr(torch.ops.qmmar, kind_of(plan).torch_op).default, operands=plan.operands,
        properties=tuple(plan.properties.values()), output_dtype=DTYPES[plan.output_type.element_type],
        view=None if plan.output_view is None else [d if d >= 0 else -1 for d in plan.output_view.type.get_shape()],
        nodes=tuple(nodes), values=tuple(v for chain_op in chain.ops for v in chain_op.results),
        result=chain.end.results[0], source=source,
    )  # fmt: skip


@dataclass(frozen=True)
class Rewritten:
    """One chain's outcome in the FX graph."""

    verdict: Verdict  # the pass's, or why the FX graph keeps the chain after all
    source: Node | None  # the chain's matmul node
    replaced: tuple[str, ...] = ()  # the FX nodes the call replaced, in graph order
    call: str | None = None  # the call's node


Builder = Callable[[], Node]


class GraphRewrite:
    """The FX graph of one compiled function, and which node holds each imported value."""

    def __init__(self, gm: GraphModule, imported: ImportedProgram) -> None:
        self.gm, self.graph, self.narrowed = gm, gm.graph, imported.narrowed
        self.holders: dict[SSAValue, list[Node]] = {}
        for node, values in imported.values.items():
            if len(values) == 1:
                self.holders.setdefault(values[0], []).append(node)
        self.fake_mode = torch._guards.detect_fake_mode([fake_value(n) for n in graph_nodes(self.graph)])

    def order(self) -> dict[Node, int]:
        return {n: i for i, n in enumerate(graph_nodes(self.graph))}

    def apply(self, call: FusedCall) -> Rewritten:
        order = self.order()
        holders = [n for n in self.holders.get(call.result, []) if n in order]
        held = [n for v in call.values for n in self.holders.get(v, [])]  # such as a wait_tensor
        chain = {n for n in (*call.nodes, *held) if n in order}
        effects = sorted((n for n in chain if is_side_effect(n)), key=order.__getitem__)
        if not effects:
            return self._kept(call, "the chain has no collective in the FX graph")
        at, last = effects[0], effects[-1]
        foreign = next((n for n in graph_nodes(self.graph)[order[at] : order[last] + 1]
                        if n not in chain and is_side_effect(n)), None)  # fmt: skip
        if foreign is not None:
            return self._kept(call, f"{foreign.name} ({foreign.target}) runs between the chain's collectives: "
                              "fusing would move them across it")  # fmt: skip
        builders: dict[str, Builder | None] = {}
        read: set[Node] = set()  # the nodes the call reads
        for name, operand in call.operands.items():
            built = None if operand is None else self._operand(operand, lambda n: order.get(n, -1) < order[at], read)
            if isinstance(built, str):
                return self._kept(call, f"its {name} {built}")
            builders[name] = built
        erased = self._erasable(chain - read, set(holders), order)
        if any(n not in erased for n in effects):
            readers = ((r, n) for n in sorted(chain - erased - set(holders), key=order.__getitem__) for r in n.users)
            reader, node = next(((r, n) for r, n in readers if r not in chain), (None, None))
            why = f"{reader.name} ({reader.target}) reads {node.name}" if reader and node else "the call reads it"
            return self._kept(call, f"{why}, which the chain computes: its collectives would run twice")
        if call.view is not None and call.view.count(-1) > 1:
            return self._kept(call, f"its result is viewed as {call.view}, with more than one dynamic dimension")
        with self.graph.inserting_before(at):
            args = [None if b is None else b() for b in builders.values()]
            fused = self._call(call.target, (*args, *call.properties, call.output_dtype))
            output = self._first(fused) if isinstance(fused.meta["val"], tuple) else fused  # also gather_out
            result = output if call.view is None else self._call(torch.ops.aten.reshape.default, (output, call.view))
        fused.meta["stack_trace"] = call.source.meta.get("stack_trace")
        for node in holders:
            node.replace_all_uses_with(result)
        for node in sorted(erased, key=order.__getitem__, reverse=True):
            self.graph.erase_node(node)
        self.holders[call.result] = [result]
        replaced = tuple(n.name for n in sorted(erased, key=order.__getitem__))
        return Rewritten(dataclasses.replace(call.verdict, rewritten=True), call.source, replaced, fused.name)

    @staticmethod
    def _erasable(chain: set[Node], holders: set[Node], order: dict[Node, int]) -> set[Node]:
        """The chain's nodes that no other node reads once the holders' readers read the call."""
        erased: set[Node] = set()
        for node in sorted(chain, key=order.__getitem__, reverse=True):
            readers = [] if node in holders else node.users
            if all(r in erased for r in readers):
                erased.add(node)
        return erased

    def _operand(self, operand: Operand, before: Callable[[Node], bool], read: set[Node]) -> Builder | str:
        """The operand in its final form where the call goes: its value's node, viewed as rows,
        packed as TransQuantParamV2 packs it, or converted to bf16 or f32 (the same values) when
        the plan says so; or why it cannot be had."""
        source = self._builder(operand.value, before, read)
        if isinstance(source, str) or operand.form == "value":
            return source
        if operand.form == "packed":
            return lambda: self._call(torch.ops.qmmar.trans_quant_param.default, (source(),))
        if operand.form in ("bf16", "f32"):
            dtype = torch.bfloat16 if operand.form == "bf16" else torch.float32
            return lambda: self._call(torch.ops.prims.convert_element_type.default, (source(), dtype))
        return lambda: self._call(torch.ops.aten.flatten.using_ints, (source(), 0, 1))

    def _builder(self, value: SSAValue, before: Callable[[Node], bool], read: set[Node]) -> Builder | str:
        """How to get `value` in the FX graph where the call goes, or why it cannot be had there:
        a node that holds it, or a view of one (a reshape the importer wrote without an FX node),
        or a parameter scale the importer narrowed to bf16 because its values were bf16 values:
        narrowed by `qmmar.to_bf16_exact`, which raises if they no longer are."""
        held = next((n for n in self.holders.get(value, []) if before(n)), None)
        if held is not None:
            read.add(held)
            return lambda: held
        owner = value.owner
        if (name := self.narrowed.get(value)) is not None:
            assert isinstance(owner, Operation)
            scale = self._builder(owner.operands[0], before, read)
            if isinstance(scale, str):
                return scale
            return lambda: self._call(torch.ops.qmmar.to_bf16_exact.default, (scale(), name))
        if isinstance(owner, tensor.CollapseShapeOp | tensor.ExpandShapeOp):
            source = self._builder(owner.operands[0], before, read)
            if isinstance(source, str):
                return source
            shape = [d if d >= 0 else -1 for d in owner.result.type.get_shape()]
            if shape.count(-1) > 1:
                return f"is a view to {value.type} with more than one dynamic dimension"
            return lambda: self._call(torch.ops.aten.reshape.default, (source(), shape))
        if self.holders.get(value):
            return "is computed after the chain's first collective"
        return f"({value.type}) has no counterpart in the FX graph"

    def _call(self, target: torch._ops.OpOverload, args: Sequence[Argument]) -> Node:
        node = self.graph.call_function(target, tuple(args))
        fake_args = [fake_value(a) if isinstance(a, Node) else a for a in args]
        assert self.fake_mode is not None, "the graph holds no fake tensors"  # Dynamo's graphs do
        with self.fake_mode:
            node.meta["val"] = target(*fake_args)
        return node

    def _first(self, node: Node) -> Node:
        """The first result of a call of several (the chain's; the others replace values that
        only the chain reads, or the chain is kept)."""
        first = self.graph.call_function(operator.getitem, (node, 0))
        first.meta["val"] = node.meta["val"][0]
        return first

    @staticmethod
    def _kept(call: FusedCall, why: str) -> Rewritten:
        return Rewritten(call.verdict.kept(f"kept unfused in the FX graph: {why}"), call.source)


def rewrite_calls(gm: GraphModule, imported: ImportedProgram, calls: Sequence[FusedCall]) -> list[Rewritten]:
    """Write each fused chain into the graph (in program order), then recompile the module."""
    rewrite = GraphRewrite(gm, imported)
    done = [rewrite.apply(call) for call in calls]
    rewrite.graph.lint()
    gm.recompile()
    return done
