"""The oracle: a PyTorch program run eagerly on W ranks in lockstep, node by node, with PyTorch's
own kernels for every op and the collectives done here, as SEMANTICS.md defines them (sums in
f32 in rank order): gloo's bf16 all-reduce rounds differently, so it is not the oracle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.fx import Graph, Node


def _rank_order_sum(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    total = parts[0].float()
    for part in parts[1:]:
        total = total + part.float()
    return total.to(parts[0].dtype)


def _all_to_all(parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    w = len(parts)
    chunks = [p.chunk(w) for p in parts]
    return [torch.cat([chunks[j][r] for j in range(w)]) for r in range(w)]


def _reduce_scatter(parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Rank r receives the f32 rank-order sum of every rank's chunk r."""
    w = len(parts)
    return [_rank_order_sum([p.chunk(w)[r] for p in parts]) for r in range(w)]


COLLECTIVES = {
    "_c10d_functional.all_reduce.default": lambda xs: [_rank_order_sum(xs)] * len(xs),
    "vllm.all_reduce.default": lambda xs: [_rank_order_sum(xs)] * len(xs),
    "_c10d_functional.all_gather_into_tensor.default": lambda xs: [torch.cat(xs)] * len(xs),
    "_c10d_functional.all_to_all_single.default": _all_to_all,
    "_c10d_functional.reduce_scatter_tensor.default": _reduce_scatter,
}


def run_lockstep(graph: Graph, placeholders: Sequence[Mapping[str, torch.Tensor]]) -> list[dict[Node, object]]:
    """Every node's value on every rank, as it was when the node ran (an in-place op such as
    copy_ changes its operand afterwards); `placeholders[r]` maps placeholder names to values."""
    envs: list[dict[Node, object]] = [{} for _ in placeholders]
    snapshots: list[dict[Node, object]] = [{} for _ in placeholders]
    for node in graph.nodes:
        if node.op == "placeholder":
            for env, values in zip(envs, placeholders, strict=True):
                env[node] = values[node.name]
            continue
        if node.op == "output":
            continue
        calls = [torch.fx.node.map_arg((node.args, node.kwargs), lambda n, env=env: env[n]) for env in envs]
        collective = COLLECTIVES.get(str(node.target))
        if collective is not None:
            for env, value in zip(envs, collective([args[0] for args, _ in calls]), strict=True):
                env[node] = value
        else:
            for env, (args, kwargs) in zip(envs, calls, strict=True):
                env[node] = node.target(*args, **kwargs)
        for env, snapshot in zip(envs, snapshots, strict=True):
            value = env[node]
            snapshot[node] = value.clone() if isinstance(value, torch.Tensor) else value
    return snapshots
