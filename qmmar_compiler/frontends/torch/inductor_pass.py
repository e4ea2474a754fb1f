"""qmmar as an Inductor post-grad graph pass: every chain that MC2 can run becomes one call of
its fused op in the graph Inductor then compiles (the same judging and rewrite as the backend).

    import torch._inductor.config
    from qmmar.frontends.torch.inductor_pass import QmmarInductorPass

    torch._inductor.config.post_grad_custom_post_pass = QmmarInductorPass({"report": "mc2.json"})
    model = torch.compile(model)  # stock Inductor, qmmar inside it

`uuid()` names qmmar's version, its sources and the options that change the graph, so Inductor's
FX graph cache and AOTAutograd's cache key on them: a cache hit is a graph this very pass wrote.
vLLM's pass managers call a pass as `pass_(graph)` after `is_applicable_for_range(range)` and key
on `uuid()` (vllm-project/vllm vllm/compilation/inductor_pass.py `InductorPass`, commit 319abd5e;
vllm-project/vllm-ascend vllm_ascend/compilation/graph_fusion_pass_manager.py, commit e0474ef9).

Left alone, the pass reports what it judged when it runs, not when Inductor serves a graph from
its cache; the backend (`backend="qmmar"`) reports on cache hits as well (`GraphVerdicts`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.fx
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

import qmmar
from qmmar.frontends.torch.backend import BackendOptions, GraphVerdicts, publish, rewrite_graph
from qmmar.frontends.torch.parameter_values import Parameter

REPORTING_ONLY = frozenset({"report", "inner"})
"""The options that do not change the graph the pass writes: not in `uuid()`."""


def sources() -> tuple[Path, ...]:
    """Every Python source of qmmar, as installed (an editable install links its three folders
    under the package: the package's own folder is one of them)."""
    return tuple(sorted(Path(qmmar.__file__).parent.rglob("*.py")))


@functools.cache
def sources_hash() -> str:
    """Of every Python source of qmmar: an edited checkout is a new pass to Inductor's caches."""
    return get_hash_for_files(tuple(map(str, sources()))).hex()


class QmmarInductorPass(CustomGraphPass):
    """The post-grad pass (`torch._inductor.config.post_grad_custom_post_pass`, or a vLLM pass
    manager's pass).  `recorded` holds what it judged in each forward graph it rewrote, for the
    backend; with the `report` option, it writes the report itself as well."""

    def __init__(self, options: Mapping[str, Any] | BackendOptions | None = None, *, reports: bool = True,
                 parameters: Mapping[int, Parameter] | None = None) -> None:  # fmt: skip
        self.options = options if isinstance(options, BackendOptions) else BackendOptions.parse(options)
        self.reports = reports
        self.parameters = dict(parameters or {})
        """Dynamo's input index -> the module's parameter it is (the backend's, for value-aware
        exactness); a pass set in Inductor's config alone reads no values."""
        self.recorded: list[GraphVerdicts] = []

    def __call__(self, graph: torch.fx.Graph) -> None:
        gm = graph.owning_module
        assert isinstance(gm, torch.fx.GraphModule), "Inductor's post-grad graphs belong to a GraphModule"
        if any(n.op == "placeholder" and n.name.startswith("tangents") for n in graph.nodes):
            return  # a backward graph: its collectives end no chain of the forward's
        verdicts = rewrite_graph(gm, self.options, self.parameters)[1]
        self.recorded.append(verdicts)
        if self.reports:
            publish(self.options, verdicts)

    def uuid(self) -> str:
        options = {k: v for k, v in dataclasses.asdict(self.options).items() if k not in REPORTING_ONLY}
        bf16_valued_ones = sorted(p.name for p in self.parameters.values() if p.bf16_valued)  # they decide verdicts
        text = json.dumps({"qmmar": qmmar.__version__, "sources": sources_hash(), "options": options,
                           "bf16_valued": bf16_valued_ones}, sort_keys=True)  # fmt: skip
        return "qmmar-" + hashlib.sha256(text.encode()).hexdigest()

    def is_applicable_for_range(self, compile_range: object) -> bool:
        """vLLM asks before each compile of a range of batch sizes: qmmar judges every m itself
        (scenario, min_m)."""
        return True
