// One communication group per model: by default the first chain's (not the first
// collective's: a data-parallel all-reduce placed first is no chain), or the one the `group`
// option names.  A chain on another group stays unfused, and its remark names both groups.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce 2>&1 | filecheck %s --check-prefixes=CHECK,FIRST
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{group=dp}' 2>&1 | filecheck %s --check-prefixes=CHECK,DP

// Remarks come first (stderr), one per chain left unfused, at the op carrying the group, then
// one per all-reduce that ends no chain (the data-parallel one here).
// FIRST: one-group.mlir:[[# @LINE + 31]]:3: remark: not fused: [CHAIN-ONE-GROUP] MC2 ops of one model must share one communication group: this chain's group is "dp", the module's is "tp" (the first chain's, at {{.*}}one-group.mlir:[[# @LINE + 14]]:3; choose it with the pass option group=NAME)
// FIRST-NEXT: one-group.mlir:[[# @LINE + 12]]:3: remark: not a chain: 'qmm.all_reduce' its operand is %g, an argument, not a qmm.dequant (or a qmm.add of one)
// FIRST-NOT: remark
// DP: one-group.mlir:[[# @LINE + 13]]:3: remark: not fused: [CHAIN-ONE-GROUP] MC2 ops of one model must share one communication group: this chain's group is "tp", the module's is "dp" (the group option; choose it with the pass option group=NAME)
// DP-NEXT: one-group.mlir:[[# @LINE + 24]]:3: remark: not fused: [CHAIN-ONE-GROUP] {{.*}} this chain's group is "tp", the module's is "dp"
// DP-NEXT: one-group.mlir:[[# @LINE + 8]]:3: remark: not a chain: 'qmm.all_reduce' its operand is %g, an argument, not a qmm.dequant (or a qmm.add of one)
// DP-NOT: remark

// CHECK-LABEL: func.func @data_parallel_first
// CHECK-NEXT:    %grad = qmm.all_reduce %g on "dp" world_size = 2
// FIRST-NEXT:    %r = mc2.quant_matmul_all_reduce {{.*}} on "tp"
// DP:            %r = qmm.all_reduce %y on "tp"
func.func @data_parallel_first(%g: tensor<16x16xf16>, %x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> (tensor<16x16xf16>, tensor<32x128xbf16>) {
  %grad = qmm.all_reduce %g on "dp" world_size = 2 : tensor<16x16xf16>
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xbf16>
  func.return %grad, %r : tensor<16x16xf16>, tensor<32x128xbf16>
}

// CHECK-LABEL: func.func @two_groups
// FIRST-NEXT: mc2.quant_matmul_all_reduce {{.*}} on "tp"
// FIRST: qmm.all_reduce {{.*}} on "dp"
// DP: qmm.all_reduce {{.*}} on "tp"
// DP: mc2.quant_matmul_all_reduce {{.*}} on "dp"
func.func @two_groups(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> (tensor<32x128xbf16>, tensor<32x128xbf16>) {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xbf16>
  %acc2 = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y2 = qmm.dequant %acc2, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r2 = qmm.all_reduce %y2 on "dp" world_size = 2 : tensor<32x128xbf16>
  func.return %r, %r2 : tensor<32x128xbf16>, tensor<32x128xbf16>
}
