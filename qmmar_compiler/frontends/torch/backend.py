"""The torch.compile backend `qmmar`: every quantised matmul + collective chain that an MC2 op can
run becomes one call of its custom op (`torch.ops.qmmar.quant_matmul_all_reduce` today).

    model = torch.compile(model, backend="qmmar", options={"min_m": 64, "report": "mc2.json"})

Registered through the `torch_dynamo_backends` entry point, so the name works with nothing
imported.  For each graph Dynamo hands over, AOTAutograd makes an ATen graph (with Inductor's
decompositions when Inductor compiles it next, with none for `inner="eager"`, which then runs
exactly PyTorch's eager kernels); qmmar imports it, judges every chain as the fusion pass does
(the same options, the same verdicts: one plan per chain), writes the fused calls from the plans
(`rewrite.py`), and hands the graph on.  A graph qmmar cannot import is compiled as it is, with a warning.

With inner=inductor, qmmar runs inside Inductor as its post-grad pass (`inductor_pass.py`), whose
uuid is in the key of AOTAutograd's and Inductor's caches: a warm cache serves a qmmar compile
as it serves any other, and the report comes from what the pass recorded when it ran
(`GraphVerdicts`, saved beside Inductor's cache under the compile's key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch._inductor.config
from torch._inductor.custom_graph_pass import CustomGraphPass, get_custom_graph_passes
from torch.fx import GraphModule

from qmmar.dialects.diagnostics import LocatedError, ranks
from qmmar.dialects.qmm import CollectiveOp
from qmmar.frontends.torch.fused_op import register_npu_kernels
from qmmar.frontends.torch.fused_reduce_scatter_op import register_npu_kernels as register_reduce_scatter_npu_kernel
from qmmar.frontends.torch.importer import ImportedProgram, ImportOptions, import_graph, process_group_size
from qmmar.frontends.torch.meta import fake_tensor, python_stack
from qmmar.frontends.torch.parameter_values import Parameter, aot_parameters, compiled_parameters
from qmmar.frontends.torch.rewrite import Rewritten, chain_source, fused_call, rewrite_calls
from qmmar.passes import cost_model
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, Scenario, fuse
from qmmar.passes.options import Count, Positive, Rows, TargetOptions, check_option
from qmmar.passes.plan import Finding, FusionPlan, write_report
from qmmar.passes.policy import Numerics, min_m_finding

log = logging.getLogger("qmmar.torch.compile")


class QmmarOptionsError(ValueError):
    """An option of `torch.compile(..., backend="qmmar", options=...)` that qmmar cannot use."""


@dataclass(frozen=True)
class BackendOptions(TargetOptions):
    """The options of `backend="qmmar"`: the target (`soc`, `cann`), then the fusion pass's."""

    scenario: Scenario = "auto"
    """auto | prefill | decode, as the fusion pass takes it."""
    min_m: Rows = 0
    """With scenario=auto, a chain whose m is below this is the decode scenario and stays unfused.
    A dynamic m is decided on its value at compile time, and guarded: Dynamo compiles again when
    a call crosses min_m."""
    group: str = ""
    """The torch process group name (`pg.group_name`) of MC2's one communication group; by
    default the first chain's."""
    numerics: Numerics = "exact"
    """exact | relaxed, as the fusion pass takes it (relaxed: an f32 dequant scale for bf16
    output fuses, rounded to bf16, and its verdict says by how much it changes)."""
    int8_tops: Positive = cost_model.INT8_TOPS
    link_gbps: Positive = cost_model.LINK_GBPS
    report: str = ""
    """A JSON file of every chain's verdict (`{rank}` in the name: one file per rank; without
    it, global rank 0 writes)."""
    world_size: Count = 0
    """The size of every communication group, when no process group states it (0: ask the group)."""
    inner: Literal["inductor", "eager"] = "inductor"
    """What compiles the rewritten graph: inductor | eager."""

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> BackendOptions:
        """Checked options; anything wrong raises one `QmmarOptionsError` naming it."""
        given = dict(options or {})
        hints = typing.get_type_hints(cls, include_extras=True)
        if unknown := sorted(set(given) - set(hints)):
            raise QmmarOptionsError(f"qmmar backend: unknown option {unknown[0]!r}; the options are "
                                    + ", ".join(hints))  # fmt: skip
        try:
            given = {name: check_option(f"option {name}", hints[name], value) for name, value in given.items()}
        except ValueError as err:
            raise QmmarOptionsError(f"qmmar backend: {err}") from None
        if given.get("report", "").endswith(".html"):
            raise QmmarOptionsError("qmmar backend: option report names a JSON file (the HTML report reads MLIR: "
                                    "qmmar-import the program, then qmmar-check --html)")  # fmt: skip
        try:
            return cls(**given)
        except ValueError as err:  # a target qmmar cannot compile for (950; A3 before CANN 9.0)
            raise QmmarOptionsError(f"qmmar backend: {err}") from None

    def fuse_options(self) -> FuseOptions:
        """The fusion pass's options, judging only: the backend writes the FX graph itself."""
        return FuseOptions(soc=self.soc, cann=self.cann, group=self.group, scenario=self.scenario,
                           min_m=self.min_m, numerics=self.numerics, remarks="none", check_only=True,
                           int8_tops=self.int8_tops,
                           link_gbps=self.link_gbps)  # fmt: skip


def qmmar_backend(gm: GraphModule, example_inputs: Sequence[Any], options: Mapping[str, Any] | None = None,
                  **others: Any) -> Callable[..., Any]:  # fmt: skip
    """The `qmmar` torch.compile backend (`torch_dynamo_backends` entry point)."""
    if others:  # torch.compile passes its `mode` this way
        name, value = next(iter(others.items()))
        raise QmmarOptionsError(f"qmmar backend: torch.compile's {name}={value!r} is not for qmmar: pass options")
    opts = BackendOptions.parse(options)
    parameters = compiled_parameters(gm, example_inputs)
    register_npu_kernels()
    register_reduce_scatter_npu_kernel()
    if opts.inner == "eager":
        from torch._dynamo.backends.common import aot_autograd
        from torch._functorch._aot_autograd.utils import make_boxed_func

        def run_eagerly(graph: GraphModule, inputs: Sequence[Any]) -> Callable[[list[Any]], Any]:
            fuse_graph(graph, opts, parameters)
            return make_boxed_func(graph.forward)

        return aot_autograd(fw_compiler=run_eagerly)(gm, example_inputs)

    from qmmar.frontends.torch.inductor_pass import QmmarInductorPass

    qmmar_pass = QmmarInductorPass(opts, reports=False, parameters=parameters)
    key = _compile_key(gm, example_inputs, opts, qmmar_pass.uuid())
    compiled = _compile_with(qmmar_pass, gm, example_inputs)
    if not qmmar_pass.recorded:  # served from AOTAutograd's or Inductor's cache: the pass did not run
        cached = GraphVerdicts.load(key)
        if cached is None:  # a cache written without qmmar's record of it: compile afresh
            with torch._inductor.config.patch(force_disable_caches=True):
                compiled = _compile_with(qmmar_pass, gm, example_inputs)
        else:
            qmmar_pass.recorded.append(cached)
    for verdicts in qmmar_pass.recorded:
        verdicts.save(key)
        publish(opts, verdicts)
    return compiled


def _compile_with(qmmar_pass: CustomGraphPass, gm: GraphModule, example_inputs: Sequence[Any]) -> Callable[..., Any]:
    """Inductor with qmmar's pass after its own post-grad passes (and after any the user set).
    The pass is in Inductor's config for the whole compile: AOTAutograd's cache key holds its uuid."""
    from torch._inductor.compile_fx import compile_fx

    config = torch._inductor.config
    passes = (*get_custom_graph_passes(config.post_grad_custom_post_pass), qmmar_pass)
    with config.patch(post_grad_custom_post_pass=passes):
        compiled = compile_fx(gm, example_inputs)
    assert callable(compiled)  # its other kinds of result are AOT Inductor's, for torch.export
    return compiled


def _compile_key(gm: GraphModule, example_inputs: Sequence[Any], opts: BackendOptions, uuid: str) -> str:
    """What names one compile across processes: qmmar's pass, the Dynamo graph, its inputs'
    kinds, torch's version and Inductor's options, and the world's size (the process groups'
    sizes decide verdicts).  Every cache entry that serves the compile was made under this key.
    Under scenario=auto with min_m, a dynamic m's value in this compile decides too (the caches
    tell its two sides apart by a guard, which a key cannot hold): so do the sizes' values."""
    import torch.distributed as dist

    by_value = opts.scenario == "auto" and opts.min_m > 0

    def size(d: int | torch.SymInt) -> str:
        return f"{d}={d.node.hint}" if by_value and isinstance(d, torch.SymInt) else str(d)

    def kind(x: Any) -> str:
        if isinstance(x, torch.Tensor):
            return f"{x.dtype} {[size(d) for d in x.shape]} {x.stride()} {x.device} {x.requires_grad}"
        return f"{type(x).__name__} {size(x) if isinstance(x, torch.SymInt) else x}"

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 0
    config = torch._inductor.config.save_config_portable()
    text = "\n".join([uuid, torch.__version__, str(world), repr(sorted(config.items())), gm.code,
                       *map(kind, example_inputs)])  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def fuse_graph(gm: GraphModule, opts: BackendOptions, parameters: Mapping[int, Parameter] | None = None
               ) -> list[Rewritten]:  # fmt: skip
    """Import one ATen graph, judge its chains, write the fused calls; report the verdicts."""
    results, verdicts = rewrite_graph(gm, opts, parameters)
    publish(opts, verdicts)
    return results


def rewrite_graph(gm: GraphModule, opts: BackendOptions, parameters: Mapping[int, Parameter] | None = None
                  ) -> tuple[list[Rewritten], GraphVerdicts]:  # fmt: skip
    """Import one ATen graph, judge its chains, write the fused calls: what each chain became,
    and what to report of them.  `parameters` (Dynamo's input index -> the module's parameter
    it is, `compiled_parameters`) gives the values the importer may read."""
    options = ImportOptions(world_size=opts.world_size or None, runnable=False, numerics=opts.numerics)
    try:
        imported = import_graph(gm.graph, options=options, parameters=aot_parameters(gm.graph, parameters or {}))
    except LocatedError as err:
        return [], GraphVerdicts([], [], str(err))
    _check_world_size(imported, opts)
    verdicts = fuse(imported.module, opts.fuse_options(), _compile_time_m(imported, opts))
    calls = [c for v in verdicts if (c := fused_call(v, imported)) is not None]
    done = iter(rewrite_calls(gm, imported, calls) if calls else [])
    results = [next(done) if v.legal else Rewritten(v, chain_source(v, imported)) for v in verdicts]
    notes = [(n.remark(), n.changes) for n in imported.notes]
    return results, GraphVerdicts([_record(r) for r in results], [r.verdict.remark() for r in results], None, notes)


@dataclass(frozen=True)
class GraphVerdicts:
    """What qmmar said of one graph, as the report and the log have it.  Saved beside Inductor's
    cache, under the compile's key, so that a compile served from the cache reports it too."""

    records: list[dict[str, Any]]  # the report's verdicts
    remarks: list[str]  # the log's lines
    error: str | None  # why the graph is compiled unfused
    notes: list[tuple[str, bool]] = dataclasses.field(default_factory=list)
    """The importer's remarks, in its order, each with whether it changes something (`Note.
    changes`): a near miss, or what numerics=relaxed changed, is warned of and reported; what it
    read that changes nothing (a scale's values) is reported only."""

    def warned(self) -> list[str]:
        return [remark for remark, changes in self.notes if changes]

    @staticmethod
    def path(key: str) -> Path:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        return Path(cache_dir()) / "qmmar" / f"{key}.json"

    def save(self, key: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")  # ranks save the same key at once
        temporary.write_text(json.dumps(dataclasses.asdict(self)), encoding="utf-8")
        temporary.replace(path)

    @classmethod
    def load(cls, key: str) -> GraphVerdicts | None:
        try:
            return cls(**json.loads(cls.path(key).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):  # none, or not one of ours: compile afresh
            return None


def publish(opts: BackendOptions, verdicts: GraphVerdicts) -> None:
    """Log the remarks, warn of a graph compiled unfused, and write the report."""
    if verdicts.error is not None:
        warnings.warn(f"qmmar: this graph is compiled unfused: {verdicts.error}", stacklevel=3)
    if warned := verdicts.warned():
        warnings.warn(f"qmmar: {len(warned)} pattern(s) of this graph not imported as PyTorch wrote them, "
                      "or imported under numerics=relaxed:\n" + "\n".join(warned), stacklevel=3)  # fmt: skip
    for remark in verdicts.remarks:
        log.info("%s", remark)
    _report(opts, verdicts)


def _check_world_size(imported: ImportedProgram, opts: BackendOptions) -> None:
    """The world_size option must be the size of every process group that exists."""
    if not opts.world_size:
        return
    for op in imported.module.walk():
        if isinstance(op, CollectiveOp) and (size := process_group_size(op.group.data)) not in (None, opts.world_size):
            raise QmmarOptionsError(f"qmmar backend: option world_size is {opts.world_size}, but process group "
                                    f"'{op.group.data}' has {ranks(size)}")  # fmt: skip


def _compile_time_m(imported: ImportedProgram, opts: BackendOptions) -> Callable[[FusionPlan], Finding | None]:
    """The control function for a chain whose m is dynamic, under scenario=auto with min_m:
    m's value in this compilation decides (POLICY-MIN-M), and a guard on it makes Dynamo
    compile again when a call crosses min_m."""

    def control(plan: FusionPlan) -> Finding | None:
        if opts.scenario != "auto" or opts.min_m <= 0 or plan.dims is None or isinstance(plan.dims[0], int):
            return None
        m = math.prod(fake_tensor(imported.origins[plan.head][0]).shape[:-1])  # the matmul's rows
        if bool(m >= opts.min_m):  # bool() of a symbolic size installs a guard
            return None
        return min_m_finding(m, opts.min_m, plan.head, f" in this compilation (m is dynamic: Dynamo compiles "
                             f"again for a call with m >= {opts.min_m})")  # fmt: skip

    return control


# --- the report --------------------------------------------------------------------------

_REPORTS: dict[str, list[dict[str, Any]]] = {}
"""Per report file, what the graphs compiled so far in this process said."""


def _report(opts: BackendOptions, verdicts: GraphVerdicts) -> None:
    """Write every verdict of every graph compiled so far (`graph`: its number) to the report."""
    if not opts.report:
        return
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    if "{rank}" not in opts.report and rank != 0:
        return
    path = opts.report.replace("{rank}", str(rank))
    graphs = _REPORTS.setdefault(path, [])
    entry: dict[str, Any] = {"graph": len(graphs), "verdicts": verdicts.records,
                             "notes": [remark for remark, _ in verdicts.notes]}  # fmt: skip
    if verdicts.error is not None:
        entry["error"] = verdicts.error
    graphs.append(entry)
    records = [dict(v, graph=g["graph"]) for g in graphs for v in g["verdicts"]]
    errors = [{"graph": g["graph"], "error": g["error"]} for g in graphs if "error" in g]
    notes = [{"graph": g["graph"], "remark": note} for g in graphs for note in g["notes"]]
    write_report(path, records, **({"errors": errors} if errors else {}), **({"import_notes": notes} if notes else {}))


def _record(r: Rewritten) -> dict[str, Any]:
    """The fusion pass's JSON verdict, with the Python frames of the chain (outermost first) and
    the FX nodes the fused call replaced."""
    record = r.verdict.record()
    record["python"] = python_stack(r.source) if r.source is not None else []
    record["fx_nodes"] = list(r.replaced)
    record["fused_node"] = r.call
    return record
