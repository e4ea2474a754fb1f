"""Every message that names an op names an opaque (unregistered) op as the program writes it,
`'torch.aten.add.Tensor'`, never xDSL's `'builtin.unregistered'`: the not-a-chain line of a
collective fed by one, and the single-use rule of a chain whose value one also reads."""

import pytest

from helpers import parse
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse_module

NAMES = ["torch.aten.add.Tensor", "torch.npu.npu_add_rms_norm.default", "torch.vllm.all_reduce.default"]

FED_BY = """
func.func @main(%a: tensor<8x16xbf16>) -> tensor<8x16xbf16> {{
  %b = "{name}"(%a) : (tensor<8x16xbf16>) -> tensor<8x16xbf16>
  %h = qmm.all_reduce %b on "tp" world_size = 2 : tensor<8x16xbf16>
  func.return %h : tensor<8x16xbf16>
}}
"""

ALSO_READ_BY = """
func.func @main(%x1: tensor<8x256xi8>, %x2: tensor<256x16xi8>, %s: tensor<16xbf16>)
    -> (tensor<8x16xbf16>, tensor<8x16xbf16>) {{
  %acc = qmm.matmul %x1, %x2 : (tensor<8x256xi8>, tensor<256x16xi8>) -> tensor<8x16xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x16xi32>, tensor<16xbf16>) -> tensor<8x16xbf16>
  %other = "{name}"(%y) : (tensor<8x16xbf16>) -> tensor<8x16xbf16>
  %h = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x16xbf16>
  func.return %h, %other : tensor<8x16xbf16>, tensor<8x16xbf16>
}}
"""


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("program", [FED_BY, ALSO_READ_BY], ids=["fed by", "also read by"])
def test_a_remark_names_an_opaque_op_as_written(program, name):
    found = fuse_module(parse(program.format(name=name)), FuseOptions(check_only=True, remarks="all"))
    remarks = found.remarks("all")
    assert remarks and any(f"'{name}' at " in line for line in remarks), remarks
    assert not any("builtin.unregistered" in line for line in remarks), remarks
