// The target: a SoC and a CANN version.  Atlas A3 has no QuantMatmulAllReduce: the chain
// becomes its A3 form (aclnnMatmulReduceScatterV2, then HcclAllGather); the fusion pass records
// its target in the module, and a later pass given another target fails naming both.
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=a3 remarks=all}' 2>&1 | filecheck %s --check-prefix=A3
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=a2 cann=9.1}' | filecheck %s --check-prefix=RECORD
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce' | not qmmar-opt -p 'lower-mc2-to-aclnn{soc=a3}' 2>&1 | filecheck %s --check-prefix=MISMATCH
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{cann=9.1},lower-mc2-to-aclnn' | filecheck %s --check-prefix=V5
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{cann=9.0},lower-mc2-to-aclnn' | filecheck %s --check-prefix=V3
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=950}' 2>&1 | filecheck %s --check-prefix=S950
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=a3 cann=8.5}' 2>&1 | filecheck %s --check-prefix=A3-OLD
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=a1}' 2>&1 | filecheck %s --check-prefix=SOC

// A3: targets.mlir:[[# @LINE + 13]]:3: remark: fused into mc2.quant_matmul_reduce_scatter+qmm.allgather
// A3: builtin.module attributes {qmmar.target = {soc = "a3", cann = "9.0"}}
// A3-NOT: mc2.quant_matmul_all_reduce
// A3: mc2.quant_matmul_reduce_scatter
// A3-NEXT: qmm.allgather
// RECORD: builtin.module attributes {qmmar.target = {soc = "a2", cann = "9.1"}}
// MISMATCH: <stdin>: error: the module was compiled for soc=a2 cann=9.0 (qmmar.target), not for soc=a3 cann=9.0
// V5: aclnn.quant_matmul_all_reduce_v5_get_workspace_size
// V3: aclnn.quant_matmul_all_reduce_v3_get_workspace_size
// S950: qmmar-opt: error: fuse-quant-matmul-all-reduce: [SOC-950] Ascend 950 is not supported yet
// A3-OLD: qmmar-opt: error: fuse-quant-matmul-all-reduce: [SOC-A3-CANN] on Atlas A3, qmmar's fused operators
// SOC: qmmar-opt: error: fuse-quant-matmul-all-reduce: soc must be one of a2, a3, not 'a1'
func.func @layer(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xbf16>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xbf16>
  %h = qmm.all_reduce %y on "tp" world_size = 2 : tensor<64x128xbf16>
  func.return %h : tensor<64x128xbf16>
}
