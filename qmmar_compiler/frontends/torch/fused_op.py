"""`torch.ops.qmmar.quant_matmul_all_reduce`: the MC2 operator as a PyTorch custom op, which the
torch.compile backend writes in place of each chain it fuses; and `torch.ops.qmmar.
trans_quant_param`, the TransQuantParamV2 packing of an f32 dequant scale, where the fused op
needs it (f16 output without per-token scales).

- CPU: exactly SEMANTICS.md's fused op: the interpreter's composition
  (`interpreter.functions.quant_matmul_all_reduce`, over `dialects.numerics`) on numpy views of
  the tensors, its steps 1 to 4 on torch's kernels with numerics' bits (`interpreter.
  numerics_torch`), with the collectives through torch.distributed on the named process group
  (`TorchDistributedCommunicator`: bytes only, every sum qmmar's own in f32 rank order).
- NPU: `torch_npu.npu_mm_all_reduce_base` on the group's HCCL communicator, and
  `torch_npu.npu_trans_quant_param`.  Registered when torch_npu has been imported
  (`register_npu_kernels`); qmmar never imports torch_npu itself.
- Meta: the output's shape and dtype, so that a graph holding the op is traceable.

Both ops check their operands against the operator's rule table (`dialects.mc2_rules`) at run
time, as the interpreter re-verifies an mc2 op whose shapes were dynamic.
"""

import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from qmmar.dialects import numerics as nx
from qmmar.dialects.diagnostics import ranks
from qmmar.dialects.dtypes import dtype_name
from qmmar.dialects.mc2_rules import OPERANDS, Signature, TensorSig, first_violation
from qmmar.dialects.rules import Rule
from qmmar.frontends.torch.meta import ELEMENT_TYPES, resolve_group
from qmmar.interpreter.comm import Site
from qmmar.interpreter.functions import quant_matmul_all_reduce as fused_on_one_rank
from qmmar.interpreter.numerics_torch import NUMPY_DTYPES, STEPS, to_numpy, to_torch


def process_group(group: str, world_size: int) -> dist.ProcessGroup:
    """The process group torch knows by this name, of `world_size` ranks."""
    pg = resolve_group(group)
    if pg.size() != world_size:
        raise RuntimeError(f"qmmar.quant_matmul_all_reduce: the op was compiled for {ranks(world_size)}, but "
                           f"process group '{group}' has {pg.size()}")  # fmt: skip
    return pg


def tensor_sig(t: Tensor) -> TensorSig:
    """A tensor as a rule table reads it: its dtype and shape."""
    return TensorSig(dtype_name(ELEMENT_TYPES[t.dtype]), tuple(t.shape))


@dataclass(frozen=True)
class Call:
    """One call of a fused op's custom op: its operands by name (the op's rule table's
    OPERANDS), and the properties every fused op has."""

    tensors: dict[str, Tensor | None]
    group: str
    world_size: int
    transpose_x2: bool
    output_dtype: torch.dtype

    @staticmethod
    def bind(signature: inspect.Signature, operands: Sequence[str], args: tuple[object, ...],
             kwargs: dict[str, object]) -> tuple["Call", dict[str, Any]]:  # fmt: skip
        """The call's arguments bound to the op's signature, and all of them by name."""
        named = signature.bind(*args, **kwargs).arguments
        call = Call({name: named[name] for name in operands}, named["group"], named["world_size"],
                    named["transpose_x2"], named["output_dtype"])  # fmt: skip
        return call, named

    def sigs(self) -> dict[str, TensorSig | None]:
        return {name: None if t is None else tensor_sig(t) for name, t in self.tensors.items()}

    def refuse(self, op: str, rule: Rule[Any] | None) -> None:
        """A rule that the run-time shapes break raises its id and sentence, with the shapes."""
        if rule is not None:
            shapes = ", ".join(f"{n} {list(t.shape)}" for n, t in self.tensors.items() if t is not None)
            raise RuntimeError(f"{op} at run time: {rule.message()} (operand shapes: {shapes})")


def fused_output(
    x1: Tensor, x2: Tensor, bias: Tensor | None, x3: Tensor | None, dequant_scale: Tensor,
    pertoken_scale: Tensor | None, comm_quant_scale_1: Tensor | None, comm_quant_scale_2: Tensor | None,
    group: str, world_size: int, transpose_x2: bool, output_dtype: torch.dtype,
) -> Tensor:  # fmt: skip
    """The fused op's signature, stated once: the op's schema is inferred from it and every
    kernel binds its arguments to it (`Call.bind`).  Itself the fake kernel: the output's
    shape and dtype."""
    n = x2.shape[0] if transpose_x2 else x2.shape[1]  # sizes may be symbolic here: not shapes.Dim
    return x1.new_empty((*x1.shape[:-1], n), dtype=output_dtype)


_SIGNATURE = inspect.signature(fused_output)


def _bind(args: tuple[object, ...], kwargs: dict[str, object]) -> Call:
    """The arguments of a call, once the rule table has accepted them."""
    call, named = Call.bind(_SIGNATURE, OPERANDS, args, kwargs)
    sig = Signature.build(call.sigs(), tensor_sig(fused_output(**named)), group=call.group,
                          world_size=call.world_size, transpose_x2=call.transpose_x2)  # fmt: skip
    call.refuse("qmmar.quant_matmul_all_reduce", first_violation(sig))
    return call


def _cpu_kernel(*args: object, **kwargs: object) -> Tensor:
    """allreduce(dequant(x1 @ x2 + bias) + x3) over the process group named `group`, with int8
    communication when the communication scales are given (SEMANTICS.md, "The fused op")."""
    from qmmar.interpreter.torch_comm import TorchDistributedCommunicator

    call = _bind(args, kwargs)
    comm = TorchDistributedCommunicator(process_group(call.group, call.world_size))
    site = Site("qmmar.quant_matmul_all_reduce", "torch.ops.qmmar.quant_matmul_all_reduce", call.group, call.world_size)
    arrays = {name: None if t is None else to_numpy(t) for name, t in call.tensors.items()}
    with np.errstate(all="ignore"):  # inf and NaN are SEMANTICS.md's numerics, not accidents
        out = fused_on_one_rank(comm, site, arrays, call.transpose_x2, NUMPY_DTYPES[call.output_dtype], STEPS)
    return to_torch(out)


quant_matmul_all_reduce = torch.library.custom_op(
    "qmmar::quant_matmul_all_reduce", _cpu_kernel, mutates_args=(), device_types="cpu",
    schema=torch.library.infer_schema(fused_output, mutates_args=()),
)  # fmt: skip
quant_matmul_all_reduce.register_fake(fused_output)


@torch.library.custom_op("qmmar::trans_quant_param", mutates_args=(), device_types="cpu")
def trans_quant_param(scale: Tensor) -> Tensor:
    """An f32 scale packed as aclnnTransQuantParamV2 (round mode 0) packs it: int64."""
    return to_torch(nx.trans_quant_param(to_numpy(scale)).view(np.int64))


@trans_quant_param.register_fake
def _(scale: Tensor) -> Tensor:
    return torch.empty_like(scale, dtype=torch.int64)


# --- the NPU ---------------------------------------------------------------------------------


@runtime_checkable
class HcclBackend(Protocol):
    """What qmmar uses of torch_npu's backend of a process group on the NPU (ProcessGroupHCCL)."""

    def get_hccl_comm_name(self, rank: int) -> str: ...


def hccl_comm_name(pg: dist.ProcessGroup) -> str:
    """The HCCL communicator name of a process group, as npu_mm_all_reduce_base takes it (torch_npu
    asks for this process's global rank)."""
    backend = pg._get_backend(torch.device("npu"))
    if not isinstance(backend, HcclBackend):
        raise RuntimeError(f"the process group's NPU backend is {type(backend).__name__}, not torch_npu's HCCL")
    return backend.get_hccl_comm_name(dist.get_rank())


def npu_quant_matmul_all_reduce(*args: object, **kwargs: object) -> Tensor:
    """The fused op as torch_npu runs it: one call of aclnnQuantMatmulAllReduceV3.  A transposed
    weight is passed as the transposed view (torch_npu reads the layout from the strides)."""
    import torch_npu

    call = _bind(args, kwargs)
    x1, x2 = call.tensors["x1"], call.tensors["x2"]
    assert x2 is not None  # not optional: bound
    optional = {name: t for name, t in call.tensors.items() if name not in ("x1", "x2")}  # torch_npu's names
    out: Tensor = torch_npu.npu_mm_all_reduce_base(
        x1, x2.t() if call.transpose_x2 else x2, hccl_comm_name(process_group(call.group, call.world_size)),
        reduce_op="sum", **optional, comm_turn=0,
    )  # fmt: skip
    if out.dtype != call.output_dtype:
        raise RuntimeError(f"npu_mm_all_reduce_base returned {out.dtype}, the graph expects {call.output_dtype}")
    return out


def npu_trans_quant_param(scale: Tensor) -> Tensor:
    import torch_npu

    packed: Tensor = torch_npu.npu_trans_quant_param(scale)
    return packed


_NPU_REGISTERED: list[bool] = []


def register_npu_kernels() -> bool:
    """Register the NPU implementations, once, if torch_npu has been imported (which makes "npu"
    a device type); True when they are registered."""
    if not _NPU_REGISTERED and "torch_npu" in sys.modules:
        quant_matmul_all_reduce.register_kernel("npu")(npu_quant_matmul_all_reduce)
        trans_quant_param.register_kernel("npu")(npu_trans_quant_param)
        from qmmar.frontends.torch import all_gather_op  # it reads this module's helpers

        all_gather_op.all_gather_quant_matmul.register_kernel("npu")(all_gather_op.npu_all_gather_quant_matmul)
        _NPU_REGISTERED.append(True)
    return bool(_NPU_REGISTERED)
