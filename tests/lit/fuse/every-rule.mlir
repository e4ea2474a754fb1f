// A chain that breaks several rules of the operator's table gets the first as its verdict and
// every other one as a note, so that fixing the first is not followed by a surprise.
// RUN: qmmar-opt %s -p fuse-mc2 2>&1 >/dev/null | filecheck %s

// CHECK: every-rule.mlir:[[# @LINE + 5]]:3: remark: not fused: [MC2-K-MAX] k, the last dimension of x1, must be at most 65535
// CHECK-NEXT: every-rule.mlir:[[# @LINE + 4]]:3: note: also breaks [MC2-SCALE-DTYPE] dequant_scale must be bf16 for bf16 output
// CHECK-NEXT: every-rule.mlir:[[# @LINE + 3]]:3: note: also breaks [MC2-WORLD-SIZE] world_size must be 1, 2, 4 or 8
// CHECK-NOT: note
func.func @main(%x1: tensor<64x65536xi8>, %x2: tensor<65536x128xi8>, %sc: tensor<128xf32>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x65536xi8>, tensor<65536x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %sc : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %h = qmm.all_reduce %y on "tp" world_size = 16 : tensor<64x128xbf16>
  func.return %h : tensor<64x128xbf16>
}
