"""A tensor-parallel job on one machine without NPUs: a function run on W processes of one gloo
process group on localhost.  Bounded in time; a rank that fails ends the run at once (the others
are stopped), so that a broken rank never leaves the rest waiting at a collective, and the error
is the first rank's to fail (the others only noticed it leave)."""

from __future__ import annotations

import atexit
import datetime
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException
from torch.utils._python_dispatch import TorchDispatchMode

from qmmar.frontends.torch.meta import resolve_group

c10d = torch.ops._c10d_functional

COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=60)


def rank_order_sum(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Every rank's part of one value summed as SEMANTICS.md sums (f32, in rank order from rank
    0's part, rounded once to the parts' dtype): the eager references' sum, which gloo's 16-bit
    sum of more than two ranks, rounding at every step, is not."""
    total = parts[0].float()
    for part in parts[1:]:
        total = total + part.float()
    return total.to(parts[0].dtype)


class ContractSums(TorchDispatchMode):
    """Eager PyTorch whose 16-bit sums over ranks are SEMANTICS.md's (`rank_order_sum`): the
    all-reduce (torch's functional collective, or vLLM's custom op, which qmmar's stand-in
    defines on the CPU) and the reduce-scatter, each an all-gather of the parts and their sum.
    gloo's bf16 sum rounds at every step, so on more than two ranks it is not the reference the
    fused ops are held to.  (The collectives the handler makes are plain: a mode is off while
    its handler runs.)"""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dtype not in (torch.float16, torch.bfloat16):
            return func(*args, **(kwargs or {}))
        if func is c10d.reduce_scatter_tensor.default and args[1] == "sum":
            _, _, w, group = args
            shares = _every_ranks(x, w, group).view(w, w, -1, *x.shape[1:])  # [from rank, share, rows, ...]
            return rank_order_sum(shares[:, dist.get_rank(resolve_group(group))])  # every rank's rows of my share
        if (func is c10d.all_reduce.default and args[1] == "sum") or func.name() == "vllm::all_reduce":
            group = args[-1]
            return rank_order_sum(_every_ranks(x, resolve_group(group).size(), group))
        return func(*args, **(kwargs or {}))


def _every_ranks(x: torch.Tensor, w: int, group: str) -> torch.Tensor:
    """[w, *x.shape]: every rank's x, in rank order."""
    return c10d.wait_tensor(c10d.all_gather_into_tensor(x, w, group)).view(w, *x.shape)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, fn, world_size: int, port: int, out_dir: str, args: tuple) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=COLLECTIVE_TIMEOUT)  # fmt: skip
    try:
        torch.save(fn(rank, world_size, *args), os.path.join(out_dir, f"rank{rank}.pt"))
    except BaseException:
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w", encoding="utf-8") as f:
            f.write(f"{time.time()!r}\n{traceback.format_exc()}")
        raise
    finally:
        dist.destroy_process_group()
    # The rank's work is done and written.  It leaves without the interpreter's teardown: torch's,
    # after the last Python frame, aborts the process now and then ("terminate called without an
    # active exception"; 2 runs in 21 of a spawn test on a loaded machine).  Its exit handlers run
    # first (CPython's own call for them), for multiprocessing's finalizers, which release the
    # semaphores the rank made (else the parent's resource tracker warns of them).
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _first_failure(out_dir: str) -> str | None:
    """The traceback of the rank that failed first, or None when no rank wrote one."""
    failures = []
    for name in os.listdir(out_dir):
        if name.endswith(".err"):
            with open(os.path.join(out_dir, name), encoding="utf-8") as f:
                when, _, text = f.read().partition("\n")
            failures.append((float(when), name.removesuffix(".err"), text))
    if not failures:
        return None
    _, rank, text = min(failures)
    return f"{rank} failed first:\n{text}"


def run_ranks(fn, world_size: int, *args, timeout: float = 300) -> list:
    """fn(rank, world_size, *args) on every rank of a fresh gloo group (fn must be importable:
    the ranks are spawned); each rank's result, in rank order."""
    with tempfile.TemporaryDirectory() as out_dir:
        context = mp.start_processes(_rank_main, args=(fn, world_size, _free_port(), out_dir, args),
                                     nprocs=world_size, join=False, start_method="spawn")  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=1):  # raises, and stops the other ranks, when one fails
                if time.monotonic() > deadline:
                    for process in context.processes:
                        process.kill()
                    raise TimeoutError(f"{world_size} ranks did not finish in {timeout} s")
        except ProcessException:
            first = _first_failure(out_dir)
            if first is None:
                raise
            raise RuntimeError(first) from None
        # our own files, written just now: not an untrusted checkpoint
        return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(world_size)]


def compile_on_ranks(fn, world_size: int, *args, inner: str, report: str | None = None) -> list:
    """fn(rank, world_size, *args, options) on every rank (run_ranks), `options` the qmmar
    backend's: `inner`, and a JSON report (kept at `report` when given); prints each chain's
    verdict, at its Python frames, and returns each rank's result."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.abspath(report or os.path.join(tmp, "mc2.json"))
        ranks = run_ranks(fn, world_size, *args, {"inner": inner, "report": path})
        with open(path, encoding="utf-8") as f:
            verdicts = json.load(f)["verdicts"]
    for v in verdicts:
        where = " > ".join(v["python"])
        if v["rewritten"]:
            print(f"{where}: fused: {len(v['fx_nodes'])} FX nodes -> {v['fused_node']}")
        else:
            print(f"{where}: not fused: [{v['rule']}] {v['sentence']}")
    return ranks
