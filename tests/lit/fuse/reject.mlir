// Chains left alone: each prints one remark with its rule id and reason, located at the op
// the rule is about (the collective for a group or world size, the add for x3), and the IR
// stays as it was.
// RUN: qmmar-opt %s --split-input-file -p fuse-quant-matmul-all-reduce -o /dev/null 2>&1 | filecheck %s
// RUN: qmmar-opt %s --split-input-file -p fuse-quant-matmul-all-reduce 2>/dev/null | filecheck %s --check-prefix=IR
// IR-NOT: mc2.quant_matmul_all_reduce

// CHECK: reject.mlir:[[# @LINE + 3]]:3: remark: not fused: [CHAIN-SINGLE-USE] every intermediate value of the chain must have the chain as its only user: %y ('qmm.dequant' at {{.*}}reject.mlir:[[# @LINE + 3]]:3) is also used by 'func.return' at {{.*}}reject.mlir:[[# @LINE + 5]]:3
func.func @multi_use(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> (tensor<32x128xbf16>, tensor<32x128xbf16>) {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xbf16>
  func.return %r, %y : tensor<32x128xbf16>, tensor<32x128xbf16>
}

// -----

// CHECK: reject.mlir:[[# @LINE + 6]]:3: remark: not fused: [CHAIN-SAME-S1] quant and reducesum must read the same s1 value
func.func @different_s1(%x1: tensor<16x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %s1: tensor<128xbf16>, %t1: tensor<128xbf16>, %s2: tensor<128xbf16>) -> tensor<16x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<16x64xi8>, tensor<64x128xi8>) -> tensor<16x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<16x128xi32>, tensor<128xbf16>) -> tensor<16x128xbf16>
  %q = qmm.quant %y, %s1 : (tensor<16x128xbf16>, tensor<128xbf16>) -> tensor<16x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<16x128xi8> -> tensor<2x8x128xi8>
  %r = qmm.reducesum %a s1(%t1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<2x8x128xi8> -> tensor<8x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<8x128xi8> -> tensor<16x128xi8>
  %o = qmm.dequant %g, %s2 : (tensor<16x128xi8>, tensor<128xbf16>) -> tensor<16x128xbf16>
  func.return %o : tensor<16x128xbf16>
}

// -----

// CHECK: reject.mlir:[[# @LINE + 8]]:3: remark: not fused: [CHAIN-SAME-S2] reducesum and the last dequant must read the same s2 value
func.func @different_s2(%x1: tensor<16x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %s1: tensor<128xbf16>, %s2: tensor<128xbf16>, %t2: tensor<128xbf16>) -> tensor<16x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<16x64xi8>, tensor<64x128xi8>) -> tensor<16x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<16x128xi32>, tensor<128xbf16>) -> tensor<16x128xbf16>
  %q = qmm.quant %y, %s1 : (tensor<16x128xbf16>, tensor<128xbf16>) -> tensor<16x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<16x128xi8> -> tensor<2x8x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<2x8x128xi8> -> tensor<8x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<8x128xi8> -> tensor<16x128xi8>
  %o = qmm.dequant %g, %t2 : (tensor<16x128xi8>, tensor<128xbf16>) -> tensor<16x128xbf16>
  func.return %o : tensor<16x128xbf16>
}

// -----

// CHECK: reject.mlir:[[# @LINE + 7]]:3: remark: not fused: [CHAIN-SAME-GROUP] alltoall and allgather must share group and world_size
func.func @different_groups(%x1: tensor<16x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %s1: tensor<128xbf16>, %s2: tensor<128xbf16>) -> tensor<16x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<16x64xi8>, tensor<64x128xi8>) -> tensor<16x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<16x128xi32>, tensor<128xbf16>) -> tensor<16x128xbf16>
  %q = qmm.quant %y, %s1 : (tensor<16x128xbf16>, tensor<128xbf16>) -> tensor<16x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<16x128xi8> -> tensor<2x8x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<2x8x128xi8> -> tensor<8x128xi8>
  %g = qmm.allgather %r on "dp" world_size = 2 : tensor<8x128xi8> -> tensor<16x128xi8>
  %o = qmm.dequant %g, %s2 : (tensor<16x128xi8>, tensor<128xbf16>) -> tensor<16x128xbf16>
  func.return %o : tensor<16x128xbf16>
}

// -----

// CHECK: reject.mlir:[[# @LINE + 4]]:3: remark: not fused: [MC2-WORLD-SIZE] world_size must be 1, 2, 4 or 8
func.func @world_size(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 16 : tensor<32x128xbf16>
  func.return %r : tensor<32x128xbf16>
}

// -----

// bf16 output needs a bf16 dequant scale: an f32 one cannot be narrowed without changing it.
// CHECK: reject.mlir:[[# @LINE + 2]]:3: remark: not fused: [MC2-SCALE-DTYPE]
func.func @f32_scale_bf16(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xf32>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xf32>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xbf16>
  func.return %r : tensor<32x128xbf16>
}

// -----

// CHECK: reject.mlir:[[# @LINE + 2]]:3: remark: not fused: [MC2-K-MAX] k, the last dimension of x1, must be at most 65535
func.func @k_too_large(%x1: tensor<32x65536xi8>, %x2: tensor<65536x128xi8>, %s: tensor<128xbf16>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x65536xi8>, tensor<65536x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xbf16>
  func.return %r : tensor<32x128xbf16>
}
