// An f32 dequant scale for bf16 output that is a bf16 value widened (arith.extf: the torch
// importer writes a parameter whose every value it read is a bf16 value so) has bf16 values by
// construction: numerics=exact fuses it, the fused op reading the bf16 value (the extf goes),
// and the verdict says why.  An f32 argument, or an f32 constant with a value that is not a bf16
// value, is still refused under exact.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce 2>&1 | filecheck %s

// CHECK: widened-bf16.mlir:[[# @LINE + 15]]:3: remark: fused into mc2.quant_matmul_all_reduce
// CHECK-NEXT: widened-bf16.mlir:[[# @LINE + 14]]:3: note: dequant_scale is a bf16 value widened to f32 ('arith.extf' at {{.*}}widened-bf16.mlir:[[# @LINE + 13]]:3), so every value is a bf16 value: the fused op takes the bf16 value, the same values (exact)
// CHECK-NEXT: widened-bf16.mlir:[[# @LINE + 20]]:3: remark: not fused: [MC2-SCALE-DTYPE] {{.*}}or fuse with numerics=relaxed, which does that
// CHECK-NEXT: widened-bf16.mlir:[[# @LINE + 27]]:3: remark: not fused: [MC2-SCALE-DTYPE] {{.*}}or fuse with numerics=relaxed, which does that
// CHECK-LABEL: func.func @widened
// CHECK-NEXT:    %t = arith.truncf %s : tensor<4xf32> to tensor<4xbf16>
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%t : tensor<4xbf16>)
// CHECK-NOT:     arith.extf
// CHECK-LABEL: func.func @argument
// CHECK-NOT:     mc2.
// CHECK-LABEL: func.func @constant
// CHECK-NOT:     mc2.
func.func @widened(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>, %s: tensor<4xf32>) -> tensor<8x4xbf16> {
  %t = arith.truncf %s : tensor<4xf32> to tensor<4xbf16>
  %e = arith.extf %t : tensor<4xbf16> to tensor<4xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %e : (tensor<8x4xi32>, tensor<4xf32>) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}

func.func @argument(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>, %s: tensor<4xf32>) -> tensor<8x4xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x4xi32>, tensor<4xf32>) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}

func.func @constant(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>) -> tensor<8x4xbf16> {
  %s = arith.constant dense<[0.5, 0.1, -3.0, 2.0]> : tensor<4xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x4xi32>, tensor<4xf32>) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}

