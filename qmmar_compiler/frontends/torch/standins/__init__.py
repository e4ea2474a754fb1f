"""CPU stand-ins for the custom ops of torch_npu and vLLM(-Ascend) that W8A8 graphs hold, under
their real names and schemas, so that such a program exports, imports and runs on a machine
without an NPU:

- `npu.npu_dynamic_quant`, `npu.npu_quantize`, `npu.npu_quant_matmul`, `npu.npu_add_rms_norm`
  (torch_npu, `npu.py`);
- `vllm.quantize`, `vllm.all_reduce` (vLLM-Ascend's and vLLM's custom ops, `vllm.py`).

Importing this package (`qmmar-import --library qmmar.frontends.torch.standins`) declares each
op that no library in the process defines, and gives each op without a CPU kernel (or without a
fake kernel) the one written here.  A process that has torch_npu keeps torch_npu's ops: only the
kernels they lack are added.  The kernels are plain PyTorch, written from the operators'
documented formulas (and, for the quantised matmul, SEMANTICS.md), not with qmmar's code, so that
a test comparing qmmar's interpreter with them is not circular.
"""

from qmmar.frontends.torch.standins import npu, vllm
from qmmar.frontends.torch.standins.registry import SCHEMAS, declare_schemas

__all__ = ["SCHEMAS", "declare_schemas", "npu", "vllm"]
