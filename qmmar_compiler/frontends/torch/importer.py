"""torch.export -> qmm: one pass over the FX graph, through the dispatch table (`table.py`).

1. Plan: every node gets a `Plan` from the table (a qmm pattern, a reshape, a collective, an
   alias) or is opaque.  Patterns read through the nodes they cover without claiming them.
2. Liveness: from the graph's outputs back through the nodes each plan reads, so that a
   node a pattern read through is imported only when something else still needs it.
3. Emit, in the graph's order: parameters and buffers become the function's first arguments
   (named after their fully qualified names), user inputs follow; each op is located at the
   user's Python line, and remembers the FX nodes it stands for (`ImportedProgram.origins`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch.distributed.tensor import DTensor
from torch.fx import Graph, Node
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ModuleOp, TensorType, UnregisteredOp, bf16
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import DiagnosticException

from qmmar.dialects.diagnostics import LocatedError, one_line, ranks
from qmmar.frontends.torch import patterns as pt
from qmmar.frontends.torch.meta import (
    Dim,
    dtype_of,
    fake_value,
    graph_nodes,
    is_tensor,
    location,
    mlir_shape,
    resolve_group,
    ssa_name,
    tensor_type,
    value_type,
    where,
)
from qmmar.frontends.torch.opaque import opaque_op
from qmmar.frontends.torch.parameter_values import Parameter, exported_parameters, narrowing_remark
from qmmar.frontends.torch.table import SKIPPED, TABLE, Plan, reshape_op, tensor_args
from qmmar.passes.policy import Numerics
from qmmar.source import verify

RESHAPES = ("tensor.collapse_shape", "tensor.expand_shape")
SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)
OpT = TypeVar("OpT", bound=Operation)


@dataclass(frozen=True)
class ImportOptions:
    world_size: int | None = None
    """The size of every communication group; by default read from the program (a collective
    that names it) or from the process group of that name in this process."""
    group_map: Mapping[str, str] = field(default_factory=dict)
    """torch group name -> the group name in the IR (by default the torch name)."""
    entry: str = "main"
    runnable: bool = True
    """False: the module is for judging and fusing only (the torch.compile backend), never run.
    Then a graph with dynamic sizes imports whole: symbolic-size inputs are left out, and a
    node whose arguments hold a symbolic size, or that views a value as a dynamic shape the IR
    cannot state, is an opaque op that records those sizes as text and cannot be run again."""
    numerics: Numerics = "exact"
    """exact: a pattern is imported as qmm only where qmm computes what PyTorch does, bit for bit.
    relaxed: also where it computes the same function up to rounding (torchao's dequant: the
    per-token scale first, an intermediate rounding), with a remark that says what changes."""


@dataclass(frozen=True)
class Note:
    """A pattern the importer did not turn into qmm, and why; one it did under numerics=relaxed,
    and what that changes; or what it read of a parameter's values that changes nothing (a
    dequant scale narrowed to bf16 because every value is a bf16 value)."""

    location: str
    node: str
    message: str
    changes: bool = True
    """False for a remark on what the importer read that changes nothing (a scale's values)."""

    def remark(self) -> str:
        return f"{self.location}: remark: {self.message}"


@dataclass(frozen=True)
class Argument:
    name: str  # the SSA name: the fully qualified name of a parameter or buffer, or the input's
    node: Node  # its placeholder
    kind: str  # "parameter" | "buffer" | "constant" | "input"
    target: str  # the fully qualified name (parameters, buffers, constants) or the input's name


@dataclass
class ImportedProgram:
    module: ModuleOp
    arguments: list[Argument]
    notes: list[Note]
    origins: dict[Operation, tuple[Node, ...]]
    """Every imported op -> the FX nodes it stands for: its own node first, then the nodes a
    pattern read through.  The torch.compile backend maps a fused chain back to FX with it."""
    values: dict[Node, Sequence[SSAValue]]
    """Every imported FX node -> its values (an alias such as wait_tensor has its source's; a
    node whose value was only viewed again has the value it viewed)."""
    narrowed: dict[SSAValue, str] = field(default_factory=dict)
    """Each f32 scale narrowed to bf16 because its values are bf16 values (`Importer.scale`):
    the arith.truncf's result -> the parameter's name."""


def _placeholder_kinds(program: torch.export.ExportedProgram | None) -> dict[str, tuple[str, str]]:
    """placeholder name -> (kind, fully qualified name), from an ExportedProgram's signature."""
    if program is None:
        return {}
    kinds = {"PARAMETER": "parameter", "BUFFER": "buffer", "CONSTANT_TENSOR": "constant"}
    found: dict[str, tuple[str, str]] = {}
    for spec in program.graph_signature.input_specs:
        kind = kinds.get(spec.kind.name, "input")
        found[spec.arg.name] = (kind, spec.target if kind != "input" else spec.arg.name)
    return found


def _group_sizes(graph: Graph) -> dict[str, int]:
    """The sizes the program itself states: the group_size of gathers and scatters."""
    sizes: dict[str, int] = {}
    for node in graph_nodes(graph):
        name = pt.target_name(node)
        if name == "_c10d_functional.all_gather_into_tensor.default":
            size, group = node.args[1:3]
        elif name == "_c10d_functional.reduce_scatter_tensor.default":
            size, group = node.args[2:4]
        else:
            continue
        if isinstance(group, str) and isinstance(size, int):
            sizes.setdefault(group, size)
    return sizes


def process_group_size(name: str) -> int | None:
    """The size of the process group torch knows by this name in this process, if any."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        return resolve_group(name).size()
    except (RuntimeError, ValueError, KeyError):
        return None


class _Refused(Exception):
    """A plan built an op that does not verify: the node is imported opaquely instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Importer:
    """The state of one import: node values, emitted ops, notes.  Handlers call back into it."""

    def __init__(self, graph: Graph, kinds: dict[str, tuple[str, str]], options: ImportOptions,
                 parameters: Mapping[str, Parameter]) -> None:  # fmt: skip
        self.graph, self.kinds, self.options, self.parameters = graph, kinds, options, parameters
        self.narrowed: dict[SSAValue, str] = {}
        self.block = Block()
        self.values: dict[Node, Sequence[SSAValue]] = {}
        self.origins: dict[Operation, tuple[Node, ...]] = {}
        self.notes: list[Note] = []
        self.covers: tuple[Node, ...] = ()
        self.plans: dict[Node, Plan | None] = {}
        self.sizes = _group_sizes(graph)

    # --- called by the handlers ------------------------------------------------------

    def value(self, node: Node) -> SSAValue[TensorType]:
        """The node's (first) value: every value the importer makes is a tensor."""
        return SSAValue.get(self.values[node][0], type=TensorType)

    def emit(self, op: OpT, root: Node) -> OpT:
        """Add the op, verified: one that does not verify (a uint8 matmul, an f16 scale on an
        int32 dequant) refuses the plan that built it (`_Refused`)."""
        op.location = location(root)
        self.block.add_op(op)
        self.origins[op] = self.covers
        if not isinstance(op, UnregisteredOp):
            try:
                op.verify()
            except DiagnosticException as err:
                raise _Refused(f"not imported as {op.name}: {one_line(err)}") from None
        return op

    def scale(self, node: Node, root: Node) -> SSAValue:
        """The value of `node` as the dequant `root`'s scale: a parameter of f32 values that are
        all bf16 values, for bf16 output, as arith.truncf to bf16 and arith.extf back (the same
        values: the fusion pass then takes the bf16 value under numerics=exact), with a remark
        saying so; any other scale as it is."""
        value = self.value(node)
        known = self.parameters.get(node.name) if node.op == "placeholder" else None
        if known is None or dtype_of(root) != torch.bfloat16 or not known.bf16_valued:
            return value
        narrowed = self.emit(arith.TruncFOp(value, TensorType(bf16, value.type.get_shape())), root).result
        self.narrowed[narrowed] = known.name
        self.notes.append(Note(where(root), root.name, narrowing_remark(known.name, self.options.runnable), False))
        return self.emit(arith.ExtFOp(narrowed, value.type), root).result

    def opaque(self, node: Node) -> list[SSAValue]:
        value = fake_value(node)
        results = [tensor_type(node)] if isinstance(value, torch.Tensor) else None
        if results is None:
            if not (isinstance(value, list | tuple) and all(isinstance(v, torch.Tensor) for v in value)):
                raise LocatedError(where(node), f"cannot import {node.target}: its result is not a tensor "
                                  f"(qmmar imports ATen and custom ops on tensors)")  # fmt: skip
            results = [value_type(v, node) for v in value]
        op, operands = opaque_op(node, results, self.options.runnable)
        op.operands = [self.value(n) for n in operands]
        return list(self.emit(op, node).results)

    def group(self, node: Node, torch_name: str, stated: int | None = None) -> tuple[str, int]:
        """(group name in the IR, world size) of a collective's group."""
        size = self.options.world_size or stated or self.sizes.get(torch_name) or process_group_size(torch_name)
        if size is None:
            raise LocatedError(where(node), f"cannot resolve the process group '{torch_name}': the program does not "
                              "state its size and no such group exists in this process: pass --world-size")  # fmt: skip
        if stated is not None and size != stated:
            raise LocatedError(where(node), f"{node.target} runs on {ranks(stated)} of group '{torch_name}', "
                              f"but the world size is {size}")  # fmt: skip
        return self.options.group_map.get(torch_name, torch_name), size

    def reassociation(self, source: tuple[Dim, ...], result: tuple[Dim, ...]) -> list[list[int]] | None:
        """The groups of the longer shape's dimensions whose products are the shorter shape's."""
        small, big = (result, source) if len(result) < len(source) else (source, result)
        if len(small) == len(big) or not small:
            return None
        groups: list[list[int]] = []
        i = 0
        for size in small:
            group: list[int] = []
            product: Dim = 1
            while i < len(big) and (not group or not pt.same_size(product, size)):
                group.append(i)
                product = product * big[i]
                i += 1
            if not pt.same_size(product, size):
                return None
            groups.append(group)
        if any(big[j] != 1 for j in range(i, len(big))):
            return None
        groups[-1].extend(range(i, len(big)))
        return groups

    def earlier_view(self, value: SSAValue[TensorType], shape: tuple[Dim, ...]) -> SSAValue | None:
        """value itself, or the value it is a view of, when that has the (symbolic) shape `shape`."""
        result = TensorType(value.type.element_type, mlir_shape(shape))
        probe: SSAValue = value
        while probe.type != result:
            if not isinstance(probe.owner, Operation) or probe.owner.name not in RESHAPES:
                return None
            probe = probe.owner.operands[0]
        return probe

    def reshaped(
        self, value: SSAValue[TensorType], node: Node, source: tuple[Dim, ...], shape: tuple[Dim, ...]
    ) -> SSAValue:
        """value (of symbolic shape `source`) viewed as `shape`: an earlier value of that type
        when value is a view of it, else a collapse or an expand."""
        if (earlier := self.earlier_view(value, shape)) is not None:
            return earlier
        groups = self.reassociation(source, shape)
        assert groups is not None, f"{source} -> {shape} is not a regrouping"
        result = TensorType(value.type.element_type, mlir_shape(shape))
        return self.emit(reshape_op(value, result, groups, node), node).results[0]

    # --- the three steps -------------------------------------------------------------

    def plan(self, node: Node) -> Plan | None:
        """None: the node has no value (a check or a symbolic size)."""
        if node.op == "call_function" and getattr(node.target, "__module__", None) == "_operator":
            if node.target is not operator.getitem:
                return None
            source, index = node.args
            if not (isinstance(source, Node) and isinstance(index, int)):
                return None
            return Plan((source,), lambda: [self.values[source][index]], (node,))
        name = pt.target_name(node)
        if node.op != "call_function" or not name:
            raise LocatedError(where(node), f"cannot import the {node.op} node {node.name} ({node.target}): "
                              "qmmar imports ATen and custom operators")  # fmt: skip
        if name in SKIPPED:
            return None
        handler = TABLE.get(name)
        plan = handler(node, self) if handler is not None else None
        return plan or Plan(tensor_args(node), lambda: self.opaque(node), (node,))

    def run(self, outputs: Sequence[Node]) -> ImportedProgram:
        nodes = [n for n in graph_nodes(self.graph) if n.op not in ("placeholder", "output")]
        self.plans = {n: self.plan(n) for n in nodes}
        live: set[Node] = set()
        pending = list(outputs)
        while pending:
            node = pending.pop()
            if node in live or node.op == "placeholder":
                continue
            live.add(node)
            pending.extend(self.planned(node).reads)
        arguments = self.arguments()
        for node in nodes:
            if node in live:
                self.build(node)
        return self.finish(arguments, outputs)

    def planned(self, node: Node) -> Plan:
        plan = self.plans.get(node)
        if plan is None:
            raise LocatedError(where(node), f"{node.name} ({node.target}) has no tensor value to import")
        return plan

    def build(self, node: Node) -> None:
        """Build the node's plan, after the nodes it reads.  A plan whose ops do not verify is
        undone and the node imported opaquely instead, with a note that says why; the nodes the
        opaque op reads are built then, if the plan had read through them."""
        if node in self.values or node.op == "placeholder":
            return
        plan = self.planned(node)
        for read in plan.reads:
            self.build(read)
        self.covers, start, noted = plan.covers, len(self.block.ops), len(self.notes)
        try:
            self.values[node] = plan.build()
        except _Refused as refusal:
            for op in reversed(list(self.block.ops)[start:]):
                for result in op.results:
                    self.narrowed.pop(result, None)
                self.block.erase_op(op)
                del self.origins[op]
            del self.notes[noted:]
            self.plans[node] = Plan(tensor_args(node), lambda: self.opaque(node), (node,), refusal.reason)
            self.build(node)
            return
        if plan.note is not None:
            self.notes.append(Note(where(node), node.name, plan.note))

    def arguments(self) -> list[Argument]:
        found = []
        for node in graph_nodes(self.graph):
            if node.op != "placeholder":
                continue
            kind, target = self.kinds.get(node.name, ("input", node.name))
            if not self.options.runnable and isinstance(fake_value(node), SYMBOLIC):
                continue  # a dynamic size: the tensor types state it as `?`
            if not is_tensor(node) and not node.users:
                continue  # read by nothing: the DeviceMesh a DTensor program's graph keeps after AOTAutograd
            if isinstance(fake_value(node), DTensor) or not is_tensor(node):
                raise LocatedError(where(node), _not_a_local_tensor(node))
            arg = self.block.insert_arg(tensor_type(node), len(self.block.args))
            arg.name_hint = ssa_name(target)
            self.values[node] = [arg]
            found.append(Argument(ssa_name(target), node, kind, target))
        return found

    def finish(self, arguments: list[Argument], outputs: Sequence[Node]) -> ImportedProgram:
        results = [self.value(n) for n in outputs]
        self.block.add_op(func.ReturnOp(*results))
        viewed: dict[SSAValue, SSAValue] = {}
        for op in reversed(list(self.block.ops)):  # views that a later view of the same value made dead
            if op.name in RESHAPES and not op.results[0].uses:
                viewed[op.results[0]] = op.operands[0]
                self.block.erase_op(op)
                del self.origins[op]
        for node, values in self.values.items():  # such a node now stands for the value it viewed
            self.values[node] = [viewed.get(v, v) for v in values]
        fn = func.FuncOp(self.options.entry, ([a.type for a in self.block.args], [r.type for r in results]),
                         Region(self.block))  # fmt: skip
        module = ModuleOp([fn])
        verify(module)
        return ImportedProgram(module, arguments, self.notes, self.origins, self.values, self.narrowed)


DTENSOR_ROUTE = (
    "qmmar imports one rank's program on local tensors: compile a DTensor model with "
    'torch.compile(model, backend="qmmar"), where AOTAutograd turns DTensors into local tensors and '
    "collectives (torch.export does not trace DTensors), or export each rank's module with local weights"
)


def _not_a_local_tensor(node: Node) -> str:
    """Why a placeholder cannot be an argument: a DTensor, or something else than a tensor."""
    value = fake_value(node)
    if isinstance(value, DTensor):
        return f"the input {node.name} is a DTensor (sharded over a device mesh): {DTENSOR_ROUTE}"
    kind = getattr(value, "script_class_name", None) or type(value).__name__
    if kind.endswith(("DeviceMesh", "ProcessGroup")):
        return f"the input {node.name} is a {kind} that the program reads: a DTensor program: {DTENSOR_ROUTE}"
    return f"the input {node.name} is not a tensor but {kind}: qmmar imports tensor programs"


def import_graph(graph: Graph, program: torch.export.ExportedProgram | None = None,
                 options: ImportOptions = ImportOptions(),
                 parameters: Mapping[str, Parameter] | None = None) -> ImportedProgram:  # fmt: skip
    """Import an FX graph with fake-tensor metadata (`meta["val"]`); `program`, when it is an
    ExportedProgram, names the parameters and buffers among the placeholders, and holds their
    values; `parameters` (placeholder name -> parameter) gives them for another graph."""
    output = next(n for n in graph_nodes(graph) if n.op == "output")
    outputs: list[Node] = []
    for value in _flatten(output.args[0]):
        if not is_tensor(value):
            raise LocatedError(
                where(output), f"the program returns {value!r}: qmmar imports programs returning tensors"
            )
        outputs.append(value)
    known = exported_parameters(program) if program is not None else {}
    return Importer(graph, _placeholder_kinds(program), options, {**known, **(parameters or {})}).run(outputs)


def _flatten(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return [leaf for v in value for leaf in _flatten(v)]
    return [value]


def import_exported_program(program: torch.export.ExportedProgram,
                            options: ImportOptions = ImportOptions()) -> ImportedProgram:  # fmt: skip
    return import_graph(program.graph, program, options)


def import_program(program: torch.export.ExportedProgram, *, world_size: int | None = None,
                   group_map: Mapping[str, str] | None = None) -> ModuleOp:  # fmt: skip
    """The program as a verified qmm module; `import_exported_program` also gives the notes,
    the arguments and each op's FX nodes."""
    return import_exported_program(program, ImportOptions(world_size, dict(group_map or {}))).module
