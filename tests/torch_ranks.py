"""What the ranks of the torch.compile tests run (`run_ranks`, from examples/torch/ranks.py:
W processes on localhost in one gloo group, bounded in time, a failing rank ends the run at
once): the examples of examples/torch compiled with backend="qmmar" on inputs of any row
count, the fused op alone, and the oracle's inputs (the same ones, made here)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

import qmmar.frontends.torch.standins  # noqa: F401  (npu.npu_quant_matmul and vllm.all_reduce on the CPU)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "torch"
sys.path.insert(0, str(EXAMPLES))
import tp_decoder  # noqa: E402
from ranks import run_ranks  # noqa: E402,F401  (W gloo processes, bounded in time)

# --- what the ranks run ---------------------------------------------------------------------


def inputs(variant: str, world_size: int, rank: int, rows: tuple[int, ...], seed: int) -> tuple[torch.Tensor, ...]:
    """The block's hidden states [b, s, HIDDEN] (the same on every rank), or the int8 layer's
    x [m, FFN/W] and residual [m, HIDDEN] (every rank its own)."""
    v = tp_decoder.VARIANTS[variant]
    if v.int8_comm:
        g = torch.Generator().manual_seed(seed * 1000 + 100 + rank)
        (m,) = rows
        return (torch.randn(m, tp_decoder.FFN // world_size, generator=g).to(v.dtype),
                torch.randn(m, tp_decoder.HIDDEN, generator=g).to(v.dtype))  # fmt: skip
    g = torch.Generator().manual_seed(seed * 1000 + 100)
    return (torch.randn(*rows, tp_decoder.HIDDEN, generator=g).to(v.dtype),)


def default_rows(variant: str) -> tuple[int, ...]:
    if tp_decoder.VARIANTS[variant].int8_comm:
        return (tp_decoder.BATCH * tp_decoder.SEQ,)
    return (tp_decoder.BATCH, tp_decoder.SEQ)


@dataclass(frozen=True)
class Job:
    """One model compiled once and called on inputs of each row count in turn (default: the
    example's own)."""

    variant: str
    options: dict = field(default_factory=dict)
    calls: tuple[tuple[int, ...], ...] = ()
    seed: int = 0

    def rows(self) -> tuple[tuple[int, ...], ...]:
        return self.calls or (default_rows(self.variant),)


@dataclass
class Called:
    output: torch.Tensor
    fused: list[torch.Tensor]  # what each run of the fused op returned during this call, in order
    eager: torch.Tensor  # the model's output uncompiled (its collectives are gloo's own)


class _RecordRuns:
    """Records what the fused op's CPU kernel (its composition over numpy) returns."""

    def __init__(self) -> None:
        from qmmar.frontends.torch import fused_op
        from qmmar.interpreter.numerics_torch import to_torch

        self.outputs: list[torch.Tensor] = []
        kernel = fused_op.fused_on_one_rank

        def recorded(*args, **kwargs):
            out = kernel(*args, **kwargs)
            self.outputs.append(to_torch(out.copy()))
            return out

        fused_op.fused_on_one_rank = recorded


def compile_and_call(rank: int, world_size: int, jobs: list[Job]) -> list[list[Called]]:
    """Every job on this rank: for each call, the outputs and what the fused op returned."""
    runs = _RecordRuns()
    results = []
    for job in jobs:
        torch._dynamo.reset()
        model = tp_decoder.build(job.variant, rank, world_size)
        compiled = torch.compile(model, backend="qmmar", options=job.options)
        called = []
        for rows in job.rows():
            args = inputs(job.variant, world_size, rank, rows, job.seed)
            before = len(runs.outputs)
            with torch.no_grad():
                out = compiled(*args)
                called.append(Called(out, runs.outputs[before:], model(*args)))
        results.append(called)
    return results


def fail_on(rank: int, world_size: int, failing: int) -> None:
    """Rank `failing` raises before the first collective; the others wait at it."""
    if rank == failing:
        raise RuntimeError(f"rank {rank} fails on purpose")
    dist.barrier()


def compile_with_rank_scales(rank: int, world_size: int) -> None:
    """The int8 layer with a communication scale that differs on rank 1: the fused op refuses."""
    model = tp_decoder.build("int8-comm", rank, world_size)
    if rank == 1:
        model.s1.mul_(2)
    compiled = torch.compile(model, backend="qmmar", options={"inner": "eager"})
    with torch.no_grad():
        compiled(*inputs("int8-comm", world_size, rank, (tp_decoder.BATCH * tp_decoder.SEQ,), 0))


# --- the fused op alone, over every kind of operand ----------------------------------------


@dataclass(frozen=True)
class FusedCase:
    out: torch.dtype
    transpose_x2: bool
    bias: bool
    x3: bool
    pertoken: bool
    comm: bool
    rows: tuple[int, ...]  # x1's leading dims: (m,) or (b, s)

    K, N = 48, 16

    def operands(self, rank: int, seed: int) -> dict[str, torch.Tensor | None]:
        """x1, x2, bias, x3 per rank; the scales the same on every rank.  The dequant scale is
        bf16 for bf16 output, f32 with per-token scales, else an f32 scale that the graph
        packs with qmmar.trans_quant_param (returned as `packed_from`)."""
        g = torch.Generator().manual_seed(seed * 100 + rank)
        shared = torch.Generator().manual_seed(seed)
        x2_shape = (self.N, self.K) if self.transpose_x2 else (self.K, self.N)

        def scale(lo: float, hi: float, n: int = self.N) -> torch.Tensor:
            return torch.rand(n, generator=shared) * (hi - lo) + lo

        m = 1
        for d in self.rows:
            m *= d
        dequant = scale(1e-3, 4e-3)
        return {
            "x1": torch.randint(-128, 128, (*self.rows, self.K), generator=g, dtype=torch.int8),
            "x2": torch.randint(-128, 128, x2_shape, generator=g, dtype=torch.int8),
            "bias": torch.randint(-5000, 5000, (self.N,), generator=g, dtype=torch.int32) if self.bias else None,
            "x3": torch.randn(*self.rows, self.N, generator=g).to(self.out) if self.x3 else None,
            "dequant_scale": dequant.to(torch.bfloat16) if self.out == torch.bfloat16 else dequant,
            "pertoken_scale": scale(0.5, 2.0, m) if self.pertoken else None,
            "comm_quant_scale_1": scale(0.1, 0.2).to(self.out) if self.comm else None,
            "comm_quant_scale_2": scale(0.2, 0.4).to(self.out) if self.comm else None,
        }

    @property
    def packs_scale(self) -> bool:
        return self.out == torch.float16 and not self.pertoken


def run_fused_cases(rank: int, world_size: int, cases: list[FusedCase], seed: int) -> list[torch.Tensor | str]:
    """Each case through torch.ops.qmmar.quant_matmul_all_reduce (the f32 scale of an f16 case
    without per-token scales packed by torch.ops.qmmar.trans_quant_param first); a case that
    the rule table refuses gives its error."""
    from qmmar.frontends.torch import fused_op  # noqa: F401  (registers the ops)

    group = dist.group.WORLD.group_name
    found: list[torch.Tensor | str] = []
    for case in cases:
        args = case.operands(rank, seed)
        if case.packs_scale:
            args["dequant_scale"] = torch.ops.qmmar.trans_quant_param(args["dequant_scale"])
        try:
            found.append(torch.ops.qmmar.quant_matmul_all_reduce(*args.values(), group, world_size,
                                                                 case.transpose_x2, case.out))  # fmt: skip
        except RuntimeError as err:
            found.append(str(err))
    return found


def disagreeing_shapes(rank: int, world_size: int) -> None:
    """Rank 1 gathers a longer array than rank 0: both ranks get a CollectiveError."""
    import numpy as np

    from qmmar.interpreter.comm import Site
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    comm = TorchDistributedCommunicator()
    comm.all_gather(np.zeros(4 + rank, np.float32), Site("test.gather", "here", "", world_size))


def disagreeing_expectations(rank: int, world_size: int) -> None:
    """Rank 1 announces a longer payload than rank 0 (`Communicator.expect`), then both run
    the sum's exchanges it covers: both ranks get a CollectiveError at the first."""
    import numpy as np

    from qmmar.interpreter.comm import Site
    from qmmar.interpreter.functions import all_reduce_exchanges, all_reduce_sum
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    comm, site = TorchDistributedCommunicator(), Site("test.sum", "here", "", world_size)
    z = np.zeros(4 + rank, np.float16)
    comm.expect(site, all_reduce_exchanges(world_size), z.shape)
    all_reduce_sum(comm, z, site)


def rounds_of_agreement(rank: int, world_size: int) -> list[int | str]:
    """How many exchanges each step makes: a first all-gather at a site, the same again on a
    new communicator (as each call of a custom op makes), one of a new shape, rank 1 with a
    shape of its own (then the CollectiveError's message), and rank 0's shape of that step on
    both ranks, which no rank may take as agreed."""
    import numpy as np

    from qmmar.interpreter.comm import CollectiveError, Site
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    site, found = Site("test.gather", "here", "", world_size), []
    counted = dist.all_to_all_single

    def counting(*args, **kwargs):
        found[-1] += 1
        return counted(*args, **kwargs)

    def step(n: int) -> None:
        found.append(0)
        TorchDistributedCommunicator().all_gather(np.zeros(n, np.float32), site)

    dist.all_to_all_single = counting
    try:
        for n in (4, 4, 8):
            step(n)
        try:
            step(12 + rank)
        except CollectiveError as err:
            found.append(str(err))
        step(12)
    finally:
        dist.all_to_all_single = counted
    return found
