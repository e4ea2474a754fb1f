// Value-aware exactness: an f32 dequant scale for bf16 output, which the operator does not
// take, fuses when it is a constant whose every value is a bf16 value (its low 16 bits zero):
// the fused op then takes it as a bf16 constant of the same values, and computes the same bits.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce 2>&1 | filecheck %s
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce -o %t.mlir 2>/dev/null
// RUN: qmmar-run %s -w 2 --random-inputs 3 -o %t.unfused.npz > /dev/null
// RUN: qmmar-run %t.mlir -w 2 --random-inputs 3 -o %t.fused.npz > /dev/null
// RUN: qmmar-compare %t.unfused.npz %t.fused.npz | filecheck %s --check-prefix=SAME

// CHECK: known-values.mlir:[[# @LINE + 8]]:3: remark: fused into mc2.quant_matmul_all_reduce
// CHECK-NEXT: known-values.mlir:[[# @LINE + 7]]:3: note: dequant_scale is an f32 constant whose every value is a bf16 value: the fused op takes it as bf16, the same values (exact)
// CHECK-NEXT: known-values.mlir:[[# @LINE + 16]]:3: remark: not fused: [MC2-SCALE-DTYPE] {{.*}} (here: dequant_scale f32, output bf16, without pertoken_scale)
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[S:.*]] = arith.constant dense<{{.*}}> : tensor<4xbf16>
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%[[S]] : tensor<4xbf16>)
func.func @main(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>) -> tensor<8x4xbf16> {
  %s = arith.constant dense<[0.5, 0.0078125, -3.0, 1.52587890625e-05]> : tensor<4xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x4xi32>, tensor<4xf32>) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}
// SAME: 1 result(s): 1 identical, 0 within tolerance, 0 different

// 0.1 is no bf16 value: the scale stays f32 and the chain is refused.
func.func @refused(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>) -> tensor<8x4xbf16> {
  %s = arith.constant dense<[0.5, 0.1, -3.0, 2.0]> : tensor<4xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x4xi32>, tensor<4xf32>) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}
