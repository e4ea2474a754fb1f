"""The values of a program's parameters and buffers, where the importer holds them, and the one
use it makes of them: an f32 dequant scale for bf16 output whose every value is a bf16 value is
imported as `arith.truncf` to bf16 and `arith.extf` back (the identity for these values).  The
fusion pass decides on the IR alone: it sees a bf16 value widened, and takes the bf16 value as
the operator's bf16 dequant_scale under numerics=exact (`passes.legality`).

Where the values come from:

- torch.export: the ExportedProgram's state_dict and constants, by each placeholder's input spec;
- torch.compile: Dynamo's example inputs (the real tensors) of the placeholders whose source is a
  module's parameter or buffer (`compiled_parameters`), found again in AOTAutograd's graph by each
  placeholder's descriptor, `PlainAOTInput(idx)` (`aot_parameters`).

Dynamo does not guard a parameter's values: the compiled graph narrows such a scale through
`torch.ops.qmmar.to_bf16_exact`, which raises when a value is no longer a bf16 value
(`exact_narrow_op.py`).  An imported program narrows with arith.truncf, which rounds: it computes
PyTorch's bits for these values (the ones `qmmar-import --weights` writes), and its remark says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.fx import Graph, GraphModule

from qmmar.dialects import numerics as nx
from qmmar.interpreter.numerics_torch import to_numpy


@dataclass(frozen=True)
class Parameter:
    """A parameter, buffer or constant tensor of the program, and what the importer reads of
    its values (read once, where the values are at hand: not inside a compile's fake mode)."""

    name: str  # its fully qualified name
    bf16_valued: bool  # an f32 tensor whose every value is a bf16 value (`numerics.is_bf16_exact`)

    @classmethod
    def of(cls, name: str, values: torch.Tensor) -> Parameter:
        values = values.detach()
        return cls(name, values.dtype == torch.float32 and nx.is_bf16_exact(to_numpy(values.cpu())))


def exported_parameters(program: torch.export.ExportedProgram) -> dict[str, Parameter]:
    """placeholder name -> its parameter, buffer or constant tensor, from the program's state."""
    state = {**program.state_dict, **program.constants}
    found = {}
    for spec in program.graph_signature.input_specs:
        value = state.get(spec.target) if spec.target is not None else None
        if isinstance(value, torch.Tensor):
            found[spec.arg.name] = Parameter.of(spec.target, value)
    return found


_MODULE_STATE = re.compile(r"\._(?:parameters|buffers)\['[^']*'\]$")
_KEY = re.compile(r"\['([^']*)'\]")


def _module_state_name(source: str) -> str | None:
    """`layers.0.o_proj.deq_scale` for Dynamo's source `L['self']._modules['layers']._modules['0']
    ._modules['o_proj']._buffers['deq_scale']`; None for a source that is not a module's state."""
    if _MODULE_STATE.search(source) is None:
        return None
    return ".".join(_KEY.findall(source)[1:])  # the first key names the local: the module itself


def compiled_parameters(gm: GraphModule, example_inputs: Sequence[object]) -> dict[int, Parameter]:
    """Dynamo's input index -> the module's parameter or buffer it is, with its values, for the
    inputs Dynamo hands over as real tensors."""
    from torch._subclasses.fake_tensor import FakeTensor

    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    found = {}
    for i, (node, value) in enumerate(zip(placeholders, example_inputs, strict=False)):
        grapharg = node.meta.get("grapharg")
        name = None if grapharg is None else _module_state_name(grapharg.source.name)
        if name is not None and isinstance(value, torch.Tensor) and not isinstance(value, FakeTensor):
            found[i] = Parameter.of(name, value)
    return found


def aot_parameters(graph: Graph, parameters: Mapping[int, Parameter]) -> dict[str, Parameter]:
    """placeholder name -> its parameter, in a graph AOTAutograd made of Dynamo's: each placeholder
    that is one of Dynamo's inputs as it is (not a tensor subclass's part) says which."""
    from torch._functorch._aot_autograd.descriptors import PlainAOTInput

    found = {}
    for node in graph.nodes:
        desc = node.meta.get("desc") if node.op == "placeholder" else None
        if isinstance(desc, PlainAOTInput) and (p := parameters.get(desc.idx)) is not None:
            found[node.name] = p
    return found


def narrowing_remark(name: str, runnable: bool) -> str:
    """The importer's remark on a scale it narrowed: what it read, what it wrote, and for which
    values the program is then PyTorch's."""
    guard = (
        "the imported program rounds it to bf16 (arith.truncf): it computes PyTorch's bits for these values "
        "(as qmmar-import --weights writes them), not for a scale that is not a bf16 value"
        if runnable
        else "the compiled graph checks at each call that they still are (torch.ops.qmmar.to_bf16_exact raises, "
        "naming it, when one is not)"
    )
    return (f"dequant_scale {name}: every value is a bf16 value (read from the program's parameters): imported "
            f"as arith.truncf to bf16 and arith.extf back, the same values, so that numerics=exact fuses it as "
            f"the bf16 scale the operator takes; {guard}")  # fmt: skip
