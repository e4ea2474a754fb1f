"""Run by test_torch_backend.py in a process of its own: there is no NPU here, so a stand-in
`torch_npu` module records the calls qmmar's NPU kernels make, and this script prints them as
JSON.  Like the real torch_npu it names the PrivateUse1 device "npu" (for good: hence its own
process); it computes nothing."""

import json
import sys
import types

import torch
import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d
from torch.testing._internal.distributed.fake_pg import FakeStore

torch.utils.rename_privateuse1_backend("npu")
names: dict[int, str] = {}
found: dict = {"mm_all_reduce": [], "trans_quant_param": [], "mm_reduce_scatter": [], "all_gather_base_mm": [],
               "all_gather_into_tensor": []}  # fmt: skip


def _name(value):
    if isinstance(value, torch.Tensor):
        return names.get(id(value)) or next((f"{n}.t()" for i, n in names.items() if value._base is not None
                                             and id(value._base) == i), "?")  # fmt: skip
    return value


def npu_mm_all_reduce_base(x1, x2, hcom, **kwargs):
    found["mm_all_reduce"].append({"args": [_name(x1), _name(x2), hcom],
                                   "kwargs": {k: _name(v) for k, v in kwargs.items()}})  # fmt: skip
    out = torch.bfloat16 if kwargs["dequant_scale"].dtype == torch.bfloat16 else torch.float16  # as documented
    return torch.zeros((*x1.shape[:-1], x2.shape[1]), dtype=out)


def npu_trans_quant_param(scale, offset=None):
    found["trans_quant_param"].append(_name(scale))
    return torch.zeros(scale.shape, dtype=torch.int64)


def npu_all_gather_base_mm(x1, x2, hcom, world_size, **kwargs):
    found["all_gather_base_mm"].append({"args": [_name(x1), _name(x2), hcom, world_size],
                                        "kwargs": {k: list(v.shape) if k.endswith("scale") and v is not None
                                                   else str(v) if k == "output_dtype" else _name(v)
                                                   for k, v in kwargs.items()}})  # fmt: skip
    rows = x1.shape[0] * world_size
    return torch.zeros((rows, x2.shape[1]), dtype=kwargs["output_dtype"]), torch.zeros(
        (rows, x1.shape[1]), dtype=x1.dtype
    )


def npu_mm_reduce_scatter_base(x1, x2, hcom, world_size, **kwargs):
    """The scales are recorded by shape: the kernel reshapes them as torch_npu documents."""
    recorded = {k: list(v.shape) if k.endswith("_scale") and v is not None else _name(v) for k, v in kwargs.items()}
    recorded["output_dtype"] = str(kwargs["output_dtype"])
    found["mm_reduce_scatter"].append({"args": [_name(x1), _name(x2), hcom, world_size], "kwargs": recorded})
    out = torch.zeros((x1.shape[0] // world_size, x2.shape[1]), dtype=kwargs["output_dtype"])
    names[id(out)] = f"mm_reduce_scatter_{len(found['mm_reduce_scatter'])}"
    return out


def all_gather_into_tensor(output, input, group=None, async_op=False):
    """torch.distributed's, on the NPU torch_npu's HcclAllGather: recorded, not run."""
    found["all_gather_into_tensor"].append({"output": [list(output.shape), str(output.dtype)], "input": _name(input),
                                            "group_size": group.size(), "async_op": async_op})  # fmt: skip


sys.modules["torch_npu"] = types.SimpleNamespace(npu_mm_all_reduce_base=npu_mm_all_reduce_base,
                                                 npu_trans_quant_param=npu_trans_quant_param,
                                                 npu_mm_reduce_scatter_base=npu_mm_reduce_scatter_base,
                                                 npu_all_gather_base_mm=npu_all_gather_base_mm)  # type: ignore[assignment]  # fmt: skip

from qmmar.frontends.torch import fused_op, fused_reduce_scatter_op  # noqa: E402

fused_op.register_npu_kernels()
found["registered_all_gather"] = torch._C._dispatch_has_kernel_for_dispatch_key("qmmar::all_gather_quant_matmul",
                                                                                "PrivateUse1")  # fmt: skip
found["registered_reduce_scatter"] = fused_reduce_scatter_op.register_npu_kernels() and (
    torch._C._dispatch_has_kernel_for_dispatch_key("qmmar::quant_matmul_reduce_scatter", "PrivateUse1")
)
found["registered"] = {op: torch._C._dispatch_has_kernel_for_dispatch_key(op, "PrivateUse1")
                       for op in ("qmmar::quant_matmul_all_reduce", "qmmar::trans_quant_param")}  # fmt: skip


class HcclBackend:
    def get_hccl_comm_name(self, rank: int) -> str:
        found["hccl"]["rank"] = rank
        return f"hcom-of-rank-{rank}"


class Group:
    """The process group as torch_npu extends it: its backend on the npu device is HCCL."""

    def size(self) -> int:
        return 4

    def _get_backend(self, device: torch.device) -> HcclBackend:
        found["hccl"] = {"device": device.type}
        return HcclBackend()


dist.init_process_group("fake", store=FakeStore(), rank=3, world_size=4)  # this process is global rank 3
c10d._resolve_process_group = lambda name: Group()
dist.all_gather_into_tensor = all_gather_into_tensor


def tensors(**given: torch.Tensor) -> dict[str, torch.Tensor]:
    for name, t in given.items():
        names[id(t)] = name
    return given


m, k, n = 8, 32, 16
t = tensors(x1=torch.zeros(m, k, dtype=torch.int8), x2=torch.zeros(n, k, dtype=torch.int8),
            bias=torch.zeros(n, dtype=torch.int32), x3=torch.zeros(m, n, dtype=torch.bfloat16),
            dequant_scale=torch.ones(n, dtype=torch.bfloat16), pertoken_scale=torch.ones(m),
            comm_quant_scale_1=torch.ones(n, dtype=torch.bfloat16),
            comm_quant_scale_2=torch.ones(n, dtype=torch.bfloat16))  # fmt: skip
fused_op.npu_quant_matmul_all_reduce(*t.values(), "tp", 4, True, torch.bfloat16)

plain = tensors(x1=torch.zeros(m, k, dtype=torch.int8), x2=torch.zeros(k, n, dtype=torch.int8), scale=torch.ones(n))
packed = fused_op.npu_trans_quant_param(plain["scale"])
names[id(packed)] = "packed"
fused_op.npu_quant_matmul_all_reduce(plain["x1"], plain["x2"], None, None, packed, None, None, None, "tp", 4, False,
                                     torch.float16)  # fmt: skip
sp = tensors(
    x1=torch.zeros(16, 256, dtype=torch.int8),
    x2=torch.zeros(8, 256, dtype=torch.int8),
    x1_scale=torch.ones(16),
    x2_scale=torch.ones(1, 8),
)
fused_reduce_scatter_op.npu_quant_matmul_reduce_scatter(sp["x1"], sp["x2"], None, sp["x1_scale"], sp["x2_scale"], None,
                                                        "tp", 4, True, torch.bfloat16)  # fmt: skip

from qmmar.frontends.torch import all_gather_op, fused_all_reduce_a3_op  # noqa: E402

found["registered_a3"] = torch._C._dispatch_has_kernel_for_dispatch_key("qmmar::quant_matmul_all_reduce_a3",
                                                                        "PrivateUse1")  # fmt: skip
fused_all_reduce_a3_op.npu_quant_matmul_all_reduce_a3(sp["x1"], sp["x2"], None, sp["x1_scale"], sp["x2_scale"], None,
                                                      "tp", 4, True, torch.bfloat16)  # fmt: skip

gathered = tensors(x1=torch.zeros(m, 256, dtype=torch.int8), x2=torch.zeros(n, 256, dtype=torch.int8),
                   x1_scale=torch.ones(m), x2_scale=torch.ones(n))  # fmt: skip
all_gather_op.npu_all_gather_quant_matmul(gathered["x1"], gathered["x2"], None, gathered["x1_scale"],
                                          gathered["x2_scale"], "tp", 4, True, torch.bfloat16)  # fmt: skip
print(json.dumps(found))
