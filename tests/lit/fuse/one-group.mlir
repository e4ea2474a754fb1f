// One communication group per model: the first collective's group, or the one the `group`
// option names.  Chains on another group stay unfused, and say why.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce 2>&1 | filecheck %s --check-prefixes=CHECK,FIRST
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{group=tp}' 2>&1 | filecheck %s --check-prefixes=CHECK,TP

// FIRST: one-group.mlir:[[# @LINE + 11]]:3: remark: not fused: [CHAIN-ONE-GROUP]
// TP: one-group.mlir:[[# @LINE + 7]]:3: remark: not fused: [CHAIN-ONE-GROUP]
// CHECK-LABEL: func.func @two_groups
// FIRST-NEXT: mc2.quant_matmul_all_reduce {{.*}} on "dp"
// FIRST: qmm.all_reduce {{.*}} on "tp"
// TP: qmm.all_reduce {{.*}} on "dp"
// TP: mc2.quant_matmul_all_reduce {{.*}} on "tp"
func.func @two_groups(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> (tensor<32x128xbf16>, tensor<32x128xbf16>) {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "dp" world_size = 2 : tensor<32x128xbf16>
  %acc2 = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y2 = qmm.dequant %acc2, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r2 = qmm.all_reduce %y2 on "tp" world_size = 2 : tensor<32x128xbf16>
  func.return %r, %r2 : tensor<32x128xbf16>, tensor<32x128xbf16>
}
