"""The examples of examples/torch, exported, imported and run for the PyTorch tests.

Imported only by test modules that skip themselves when torch is missing."""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch_eager import run_lockstep

import qmmar.frontends.torch.standins  # noqa: F401  (npu.npu_quant_matmul and vllm.all_reduce on the CPU)
from qmmar.frontends.torch import ImportedProgram, ImportOptions, import_exported_program, weight_arrays
from qmmar.frontends.torch.interpret import torch_op_functions
from qmmar.interpreter.numerics_torch import to_numpy
from qmmar.interpreter.spmd import run_spmd
from qmmar.interpreter.values import for_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "torch"
sys.path.insert(0, str(EXAMPLES))
import export  # noqa: E402
import tp_decoder  # noqa: E402

MODEL_SOURCE = EXAMPLES / "tp_decoder.py"
WORLD_SIZES = (2, 4, 8)


def source_line(pattern: str, source: Path = MODEL_SOURCE) -> int:
    """The line of `source` (tp_decoder.py) that matches pattern (which must match exactly one)."""
    lines = [i for i, text in enumerate(source.read_text().splitlines(), 1) if re.search(pattern, text)]
    assert len(lines) == 1, (pattern, lines)
    return lines[0]


@functools.cache
def exported(variant: str, world_size: int) -> torch.export.ExportedProgram:
    program = export.export(variant, world_size)
    dist.destroy_process_group()  # nothing is left to resolve a group by: the size must come from the import
    return program


def imported(variant: str, world_size: int) -> ImportedProgram:
    return import_exported_program(exported(variant, world_size), ImportOptions(world_size, {"0": "tp"}))


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A model's parameters and buffers by qualified name, as an exported program's signature names them."""
    return dict(model.named_parameters()) | dict(model.named_buffers())


def rank_states(variant: str, world_size: int) -> list[dict[str, torch.Tensor]]:
    return [state(tp_decoder.build(variant, r, world_size)) for r in range(world_size)]


def rank_inputs(variant: str, world_size: int, seed: int) -> list[tuple[torch.Tensor, ...]]:
    return [tp_decoder.example_inputs(variant, world_size, seed, r) for r in range(world_size)]


def eager_values(variant: str, world_size: int, seed: int) -> list[dict]:
    """Every FX node's value on every rank, PyTorch eager (collectives by SEMANTICS.md)."""
    return lockstep_values(exported(variant, world_size), rank_states(variant, world_size),
                           rank_inputs(variant, world_size, seed))  # fmt: skip


def lockstep_values(program: torch.export.ExportedProgram, states: list[dict[str, torch.Tensor]],
                    inputs: list[tuple[torch.Tensor, ...]]) -> list[dict]:  # fmt: skip
    """Every FX node's value on every rank of `program`, run eagerly with each rank's weights
    and inputs (collectives by SEMANTICS.md)."""
    world_size = len(states)
    kinds = {s.arg.name: s for s in program.graph_signature.input_specs}
    placeholders = []
    for rank in range(world_size):
        user = iter(inputs[rank])
        placeholders.append({name: states[rank][spec.target] if spec.target else next(user)
                             for name, spec in kinds.items()})  # fmt: skip
    return run_lockstep(program.graph, placeholders)


def activation_arrays(program: ImportedProgram, inputs: list[tuple[torch.Tensor, ...]]) -> dict[str, np.ndarray]:
    """arg{i} for the user inputs: one slice per rank, as an .npz file holds them (bf16 as f32)."""
    user = [i for i, a in enumerate(program.arguments) if a.kind == "input"]
    return {f"arg{i}": np.stack([for_file(to_numpy(rank[j])) for rank in inputs]) for j, i in enumerate(user)}


def interpreter_args(program: ImportedProgram, variant: str, world_size: int, seed: int) -> list[np.ndarray]:
    return rank_args(program, rank_states(variant, world_size), rank_inputs(variant, world_size, seed))


def rank_args(program: ImportedProgram, states: list[dict[str, torch.Tensor]],
              inputs: list[tuple[torch.Tensor, ...]]) -> list[np.ndarray]:  # fmt: skip
    """The imported program's arguments with each rank's weights and inputs, stacked by rank."""
    arrays = weight_arrays(program, states) | activation_arrays(program, inputs)
    return [arrays[f"arg{i}"] for i in range(len(program.arguments))]


def run(module, args: list[np.ndarray], world_size: int) -> list[np.ndarray]:
    return run_spmd(module, args, world_size, functions=[torch_op_functions(module)])
