"""transformers' Llama and Qwen2, built from a small config with random weights (nothing is
downloaded), W8A8-quantised and sharded by hand for tensor parallelism over W ranks, through
both of qmmar's routes:

    python examples/torch/llama_w8a8.py [--models llama qwen2] [--world-sizes 2 4]
                                        [--quants vllm-dynamic vllm-static torchao] [--routes export compile]

Sharding (Megatron's, as vLLM does it): q/k/v and gate/up projections split by output
columns, o_proj and down_proj by input rows, each followed by an all-reduce of its partial sums
over the group (`RowParallelLinear`, `RowParallelW8A8`): two row-parallel chains per layer.  Quantisation:

    vllm-dynamic  vLLM-Ascend's w8a8_dynamic: npu_dynamic_quant + npu_quant_matmul with per-token
                  scales, the weight scale in the model's dtype; all-reduce `vllm.all_reduce`
    vllm-static   vLLM-Ascend's w8a8_static: vllm.quantize + npu_quant_matmul with deq_scale f32
                  (for bf16 output: the operator takes bf16, so this fuses under numerics=relaxed)
    vllm-static-bf16  the same with f32 deq_scales whose values are bf16 values (calibrated in bf16,
                  as a checkpoint converted from bf16 has them): the importer reads the values, so
                  this fuses under numerics=exact, bit for bit
    torchao       torchao's quantize_(Int8DynamicActivationInt8WeightConfig()); all-reduce
                  torch.distributed._functional_collectives (its dequant multiplies by the per-token
                  scale first and rounds in between: imported, and fused, under numerics=relaxed)

(torch_npu's and vLLM's ops run on the CPU through qmmar.frontends.torch.standins.)  Routes:

    export   torch.export of rank 0's shard (a fake process group of W ranks), qmmar-import's
             import, the fusion pass; qmmar's interpreter runs every rank, fused and unfused
    compile  W gloo processes on localhost, each torch.compile(backend="qmmar") of its shard,
             compared with the same shard run eagerly

Each row of the table: the chains found, fused, and refused (with their rules), and the largest
difference of the fused result from the program as PyTorch computes it (the unfused import run by
the interpreter, which is PyTorch's eager bit for bit; or eager PyTorch under torch.compile).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as fc
from torch import nn
from transformers import AutoModel, LlamaConfig, PretrainedConfig, Qwen2Config
from xdsl.dialects.builtin import ModuleOp

import qmmar.frontends.torch.standins  # noqa: F401  (torch_npu's and vLLM's ops on the CPU)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vllm_ascend as va  # noqa: E402
from ranks import ContractSums, run_ranks  # noqa: E402

DTYPE = torch.bfloat16
BATCH, SEQ = 2, 16
QUANTS = ("vllm-dynamic", "vllm-static", "vllm-static-bf16", "torchao")
VLLM = {"vllm-dynamic": va.Variant(DTYPE, True), "vllm-static": va.Variant(DTYPE, False),
        "vllm-static-bf16": va.Variant(DTYPE, False, bf16_scales=True)}  # fmt: skip


def config(model: str) -> PretrainedConfig:
    """A tiny config: 2 layers, hidden 64, 4 heads of 16 (as many key/value heads: W = 4 gives each
    rank one), MLP 128, vocabulary 128."""
    kind = {"llama": LlamaConfig, "qwen2": Qwen2Config}[model]
    return kind(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, head_dim=16, vocab_size=128, max_position_embeddings=64,
                attn_implementation="sdpa", use_cache=False)  # fmt: skip


def all_reduce(y: torch.Tensor, vllm: bool) -> torch.Tensor:
    """The sum of y over the group: vLLM's custom op (as vLLM-Ascend's RowParallelLinear calls it)
    or torch's functional collective (the eager reference sums them as SEMANTICS.md does:
    `ranks.ContractSums`)."""
    if vllm:
        return torch.ops.vllm.all_reduce(y, dist.group.WORLD.group_name)
    return fc.all_reduce(y, "sum", dist.group.WORLD)


class RowParallelW8A8(va.W8A8Linear):
    """vLLM-Ascend's W8A8 linear on this rank's input rows, then the all-reduce of its partial sums."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return all_reduce(super().forward(x), vllm=True)


class RowParallelLinear(nn.Linear):
    """nn.Linear on this rank's input rows (torchao quantises it), then the all-reduce."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return all_reduce(super().forward(x), vllm=False)


COLUMNS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
ROWS = ("o_proj", "down_proj")


def _shard(linear: nn.Linear, rank: int, world_size: int, by_rows: bool) -> nn.Linear:
    """This rank's part of a linear: its slice of the input features, followed by the all-reduce
    (row-parallel), or of the output features, with the bias's slice (column-parallel)."""
    w = linear.weight.detach()
    n, k = w.shape
    part = (k if by_rows else n) // world_size
    cut = slice(rank * part, (rank + 1) * part)
    kind = RowParallelLinear if by_rows else nn.Linear
    out = kind(part if by_rows else k, n if by_rows else part, bias=linear.bias is not None and not by_rows,
               dtype=w.dtype)  # fmt: skip
    out.weight.data = (w[:, cut] if by_rows else w[cut]).contiguous()
    if out.bias is not None and linear.bias is not None:
        out.bias.data = linear.bias.detach()[cut].clone()
    return out


class Model(nn.Module):
    """The model's last hidden states for input_ids [b, s] (no cache, no LM head)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).last_hidden_state


def build(model: str, quant: str, rank: int, world_size: int, seed: int = 0) -> Model:
    """Rank `rank`'s shard of the model: the same random weights on every rank (seeded), sharded,
    then quantised as `quant` says."""
    torch.manual_seed(seed)
    full = AutoModel.from_config(config(model), dtype=DTYPE).eval()
    for layer in full.layers:
        for owner, names in ((layer.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
                             (layer.mlp, ("gate_proj", "up_proj", "down_proj"))):  # fmt: skip
            for name in names:
                setattr(owner, name, _shard(getattr(owner, name), rank, world_size, by_rows=name in ROWS))
    if quant in VLLM:
        _quantise_vllm(full, VLLM[quant])
    else:
        _quantise_torchao(full)
    return Model(full).eval()


def _quantise_vllm(model: nn.Module, v: va.Variant) -> None:
    """Every projection of every layer a vLLM-Ascend W8A8 linear (Qwen2's q/k/v biases kept in
    the model's dtype, added after it)."""
    for layer in model.layers:
        for owner in (layer.self_attn, layer.mlp):
            for name, linear in list(owner.named_children()):
                if isinstance(linear, nn.Linear):
                    kind = RowParallelW8A8 if isinstance(linear, RowParallelLinear) else va.W8A8Linear
                    quantised = kind.quantised(v, linear.weight.detach())
                    setattr(owner, name, quantised if linear.bias is None else _Biased(quantised, linear.bias))


class _Biased(nn.Module):
    def __init__(self, inner: nn.Module, bias: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("bias", bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.bias


def _quantise_torchao(model: nn.Module) -> None:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model.layers, Int8DynamicActivationInt8WeightConfig())


def inputs(seed: int = 0, batch: int = BATCH, seq: int = SEQ) -> tuple[torch.Tensor]:
    """Token ids [b, s], the same on every rank (tensor parallelism shares the activations)."""
    g = torch.Generator().manual_seed(1000 + seed)
    return (torch.randint(0, 128, (batch, seq), generator=g),)


def numerics_for(quant: str) -> str:
    """The policy each quantisation fuses under: exact where the program's numerics (and its
    scales' values) are MC2's."""
    return "exact" if quant in ("vllm-dynamic", "vllm-static-bf16") else "relaxed"


# --- the export route ------------------------------------------------------------------------


def exported(model: str, quant: str, world_size: int) -> torch.export.ExportedProgram:
    """Rank 0's shard, built and exported under a fake process group of world_size ranks (which
    names the group)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        module = _exportable(build(model, quant, 0, world_size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(module, inputs())
    finally:
        dist.destroy_process_group()


def _exportable(module: Model) -> Model:
    """torchao's weights are tensor subclasses, which torch.export takes as their plain tensors."""
    from torchao.utils import unwrap_tensor_subclass

    return unwrap_tensor_subclass(module)


def _states(model: str, quant: str, world_size: int) -> list[dict[str, torch.Tensor]]:
    shards = [_exportable(build(model, quant, r, world_size)) for r in range(world_size)]
    return [dict(s.named_parameters()) | dict(s.named_buffers()) for s in shards]


@dataclass
class Row:
    model: str
    route: str
    world_size: int
    quant: str
    numerics: str
    found: int = 0
    fused: int = 0
    refused: list[str] = field(default_factory=list)  # each refused chain's rule
    verdicts: list[str] = field(default_factory=list)  # each chain's verdict, located at its module
    notes: list[str] = field(default_factory=list)  # the importer's remarks
    warnings: list[str] = field(default_factory=list)  # the torch.compile backend's
    max_abs: float = 0.0
    max_rel: float = 0.0
    exact: bool = False  # the fused result is the program's, bit for bit

    def count(self, records: list[dict]) -> None:
        """The fusion pass's verdicts, as its JSON report has them."""
        for r in records:
            self.found += 1
            self.fused += bool(r["rewritten"])
            if r["rule"] is not None:
                self.refused.append(r["rule"])
            said = f"fused: {r['chain']}" if r["rewritten"] else f"not fused: [{r['rule']}] {r['sentence']}"
            self.verdicts.append("\n    ".join([f"{r['location']}: {said}", *r["notes"]]))

    def cells(self) -> list[str]:
        refused = ", ".join(sorted(set(self.refused))) or "-"
        differences = ["bit-exact", "0"] if self.exact else [f"{self.max_abs:.3g}", f"{self.max_rel:.3g}"]
        return [self.model, self.route, str(self.world_size), self.quant, self.numerics, str(self.found),
                str(self.fused), f"{len(self.refused)} {refused}" if self.refused else "0", *differences]  # fmt: skip


HEADER = ["model", "route", "W", "quant", "numerics", "chains", "fused", "refused", "max abs diff", "max rel diff"]


def difference(got: np.ndarray, want: np.ndarray) -> tuple[float, float, bool]:
    """(max |got - want|, that over max |want|, bit-equal)."""
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    diff = float(np.abs(got64 - want64).max())
    return diff, diff / float(np.abs(want64).max()), bool(np.array_equal(got, want))


def export_route(model: str, quant: str, world_size: int, numerics: str) -> Row:
    """Import rank 0's program (under the quantisation's numerics), fuse it, and run it fused on
    every rank; the reference: the program imported exactly and run unfused (PyTorch's bits)."""
    from qmmar.frontends.torch import ImportedProgram, ImportOptions, import_exported_program, weight_arrays
    from qmmar.frontends.torch.interpret import torch_op_functions
    from qmmar.interpreter.numerics_torch import to_numpy
    from qmmar.interpreter.spmd import run_spmd
    from qmmar.interpreter.values import for_file
    from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse

    program, states = exported(model, quant, world_size), _states(model, quant, world_size)
    row = Row(model, "export", world_size, quant, numerics)

    def run(module: ModuleOp, imported: ImportedProgram) -> np.ndarray:
        arrays = weight_arrays(imported, states)
        user = [i for i, a in enumerate(imported.arguments) if a.kind == "input"]
        ids = np.stack([for_file(to_numpy(inputs()[0])) for _ in range(world_size)])
        arrays |= {f"arg{i}": ids for i in user}
        args = [arrays[f"arg{i}"] for i in range(len(imported.arguments))]
        [out] = run_spmd(module, args, world_size, functions=[torch_op_functions(module)])
        return out

    reference = import_exported_program(program, ImportOptions(world_size))
    want = run(reference.module, reference)
    imported = import_exported_program(program, ImportOptions(world_size, numerics=numerics))
    verdicts = fuse(imported.module, FuseOptions(numerics=numerics))
    row.count([v.record() for v in verdicts])
    row.max_abs, row.max_rel, row.exact = difference(run(imported.module, imported), want)
    row.notes = [n.remark() for n in imported.notes]
    return row


# --- the torch.compile route -----------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    model: str
    quant: str
    numerics: str


def compile_rank(rank: int, world_size: int, jobs: list[Job], reports: str) -> list[dict]:
    """On one gloo rank, each job's shard compiled with backend="qmmar" and called, then called
    eagerly: the outputs, the report (`reports`/job{i}-rank{rank}.json) and qmmar's warnings.
    The eager reference sums as the compiled model does: as SEMANTICS.md sums where the chains
    fused (the fused op's sum), with gloo's all-reduce where none did."""
    found = []
    for i, job in enumerate(jobs):
        torch._dynamo.reset()
        shard = build(job.model, job.quant, rank, world_size)
        report = f"{reports}/job{i}-rank{{rank}}.json"
        compiled = torch.compile(shard, backend="qmmar", options={"inner": "eager", "numerics": job.numerics,
                                                                  "report": report})  # fmt: skip
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = compiled(*inputs())
        said = json.loads(Path(report.replace("{rank}", str(rank))).read_text())
        fused = any(v["rewritten"] for v in said["verdicts"])
        with torch.no_grad(), ContractSums() if fused else nullcontext():
            eager = shard(*inputs())
        qmmar_warnings = [str(w.message) for w in caught if str(w.message).startswith("qmmar")]
        found.append({"out": out, "eager": eager, "warnings": qmmar_warnings, "report": said})
    return found


def compile_route(jobs: list[Job], world_size: int) -> list[Row]:
    """W gloo processes, each compiling its shard of every job: per job, the verdicts of rank 0's
    report, and the largest difference of any rank's compiled output from its eager one."""
    from llama_w8a8 import compile_rank as importable  # the ranks are spawned: by its module's name

    with tempfile.TemporaryDirectory() as tmp:
        results = run_ranks(importable, world_size, jobs, tmp, timeout=600 + 300 * len(jobs))
    rows = []
    for i, job in enumerate(jobs):
        row = Row(job.model, "compile", world_size, job.quant, job.numerics)
        report = results[0][i]["report"]
        row.count(report["verdicts"])
        row.notes = [n["remark"] for n in report.get("import_notes", [])]
        row.warnings = results[0][i]["warnings"]
        got = np.stack([r[i]["out"].float().numpy() for r in results])
        want = np.stack([r[i]["eager"].float().numpy() for r in results])
        row.max_abs, row.max_rel, row.exact = difference(got, want)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["llama", "qwen2"], choices=["llama", "qwen2"])
    parser.add_argument("--world-sizes", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--quants", nargs="+", default=list(QUANTS), choices=QUANTS)
    parser.add_argument("--routes", nargs="+", default=["export", "compile"], choices=["export", "compile"])
    parser.add_argument("--verdicts", action="store_true", help="print each row's verdicts and import remarks")
    args = parser.parse_args(argv)
    jobs = [
        Job(model, quant, numerics)
        for model in args.models
        for quant in args.quants
        for numerics in dict.fromkeys(("exact", numerics_for(quant)))
    ]  # before and after, where they differ
    rows = []
    for w in args.world_sizes:
        if "export" in args.routes:
            rows += [export_route(job.model, job.quant, w, job.numerics) for job in jobs]
        if "compile" in args.routes:
            rows += compile_route(jobs, w)
    print_table(sorted(rows, key=lambda r: (r.model, r.quant, r.numerics != "exact", r.route, r.world_size)))
    if args.verdicts:
        for row in rows:
            print(f"\n{row.model} {row.route} W={row.world_size} {row.quant} numerics={row.numerics}:")
            for line in [*row.notes, *row.verdicts]:
                print(f"  {line}")
    return 0


def print_table(rows: list[Row]) -> None:
    table = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
