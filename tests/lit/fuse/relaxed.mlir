// The numerics policy.  numerics=exact (the default) refuses an f32 dequant scale for bf16
// output unless its values are bf16 values, and says what would make the chain legal;
// numerics=relaxed fuses it, rounding the scale to bf16 by arith.truncf (a constant too: it stays
// beside its rounding, for qmmar-run --ideal to measure the fused op against the program), and
// the verdict says what changes and by how much at most.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce 2>&1 | filecheck %s --check-prefix=EXACT
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{numerics=relaxed}' 2>&1 | filecheck %s --check-prefix=RELAXED
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{numerics=loose}' 2>&1 | filecheck %s --check-prefix=BAD

// EXACT: relaxed.mlir:[[# @LINE + 18]]:3: remark: not fused: [MC2-SCALE-DTYPE] {{.*}} (here: dequant_scale f32, output bf16, without pertoken_scale); to fuse it, store dequant_scale as bf16 (each value changes by at most 2^-8 relative), or fuse with numerics=relaxed, which does that
// EXACT: relaxed.mlir:[[# @LINE + 24]]:3: remark: not fused: [MC2-SCALE-DTYPE]
// EXACT-NOT: mc2.quant_matmul_all_reduce

// RELAXED: relaxed.mlir:[[# @LINE + 14]]:3: remark: fused into mc2.quant_matmul_all_reduce
// RELAXED-NEXT: relaxed.mlir:[[# @LINE + 13]]:3: note: numerics=relaxed: the f32 dequant_scale is rounded to bf16 (to nearest even), as the fused op takes it: each scale changes by at most 2^-8 of its value (here at most 0.000977), and so, up to one f32 rounding, does each product
// RELAXED-NEXT: relaxed.mlir:[[# @LINE + 19]]:3: remark: fused into mc2.quant_matmul_all_reduce
// RELAXED-NEXT: relaxed.mlir:[[# @LINE + 18]]:3: note: numerics=relaxed: the f32 dequant_scale is rounded to bf16 (to nearest even), as the fused op takes it: each scale changes by at most 2^-8 of its value, and so
// RELAXED-LABEL: func.func @constant
// RELAXED-NEXT:    %s = arith.constant dense<[5.000000e-01, 1.000000e-01, -3.000000e+00, 2.000000e+00]> : tensor<4xf32>
// RELAXED-NEXT:    %[[S:.*]] = arith.truncf %s {qmmar.relaxed_rounding} : tensor<4xf32> to tensor<4xbf16>
// RELAXED-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%[[S]] : tensor<4xbf16>)
// RELAXED-LABEL: func.func @argument
// RELAXED-NEXT:    %[[T:.*]] = arith.truncf %s {qmmar.relaxed_rounding} : tensor<4xf32> to tensor<4xbf16>
// RELAXED-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%[[T]] : tensor<4xbf16>)
// BAD: numerics must be one of exact, relaxed, not 'loose'
func.func @constant(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>) -> tensor<8x4xbf16> {
  %s = arith.constant dense<[0.5, 0.1, -3.0, 2.0]> : tensor<4xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x4xi32>, tensor<4xf32>) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}

func.func @argument(%x1: tensor<8x16xi8>, %x2: tensor<16x4xi8>, %s: tensor<4xf32>) -> tensor<8x4xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<8x16xi8>, tensor<16x4xi8>) -> tensor<8x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x4xi32>, tensor<4xf32>) -> tensor<8x4xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<8x4xbf16>
  func.return %r : tensor<8x4xbf16>
}
