// The add of a chain: the matcher tries both operands, prefers the one that makes a legal
// chain, and gives every chain a verdict.
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{remarks=all}' 2>&1 | filecheck %s
// RUN: qmmar-check %s | filecheck %s --check-prefix=COUNT

// Remarks first (stderr), one per chain, in order.
// CHECK: operands.mlir:[[# @LINE + 18]]:3: remark: fused into mc2.quant_matmul_all_reduce: qmm.matmul -> qmm.dequant -> qmm.quant -> qmm.alltoall -> qmm.reducesum -> qmm.allgather -> qmm.dequant
// CHECK-NEXT: operands.mlir:[[# @LINE + 24]]:3: remark: fused into mc2.quant_matmul_all_reduce: qmm.matmul -> qmm.dequant -> qmm.add -> qmm.all_reduce
// CHECK-NEXT: operands.mlir:[[# @LINE + 27]]:3: remark: fused
// CHECK-NEXT: operands.mlir:[[# @LINE + 40]]:3: remark: fused
// CHECK-NEXT: operands.mlir:[[# @LINE + 53]]:3: remark: not fused: [CHAIN-X3-OUTSIDE] x3, the add's other operand, must come from outside the chain (the fused op cannot add its own intermediate): it is %y ('qmm.dequant' at {{.*}}operands.mlir:[[# @LINE + 52]]:3)
// CHECK-NEXT: operands.mlir:[[# @LINE + 63]]:3: remark: fused into mc2.quant_matmul_all_reduce: qmm.matmul -> qmm.dequant -> qmm.add -> qmm.all_reduce
// CHECK-NEXT: operands.mlir:[[# @LINE + 77]]:3: remark: not fused: [MC2-SCALE-DTYPE]
// CHECK-NEXT: operands.mlir:[[# @LINE + 92]]:3: remark: not fused: [CHAIN-PADDING] slices around the all-to-all must be the row padding unfuse-mc2 writes: {{.*}}: 'tensor.insert_slice' at {{.*}}operands.mlir:[[# @LINE + 92]]:3 is not
// CHECK-NOT: remark
// COUNT: 8 chain(s): 5 legal to fuse, 3 not

// A residual from an earlier int8-communication chain (its final dequant reads int8) is x3,
// whichever operand of the add it is.
// CHECK-LABEL: func.func @residual_from_int8_chain
// CHECK-NEXT:    %h0 = mc2.quant_matmul_all_reduce %x1, %w dequant_scale(%s : tensor<64xbf16>) comm_quant_scale_1(%s1 : tensor<64xbf16>) comm_quant_scale_2(%s2 : tensor<64xbf16>) on "tp" world_size = 2
// CHECK-NEXT:    %h1 = mc2.quant_matmul_all_reduce %x1, %w x3(%h0 : tensor<16x64xbf16>) dequant_scale(%s : tensor<64xbf16>) on "tp" world_size = 2
// CHECK-NEXT:    %h2 = mc2.quant_matmul_all_reduce %x1, %w x3(%h0 : tensor<16x64xbf16>) dequant_scale(%s : tensor<64xbf16>) on "tp" world_size = 2
func.func @residual_from_int8_chain(%x1: tensor<16x64xi8>, %w: tensor<64x64xi8>, %s: tensor<64xbf16>, %s1: tensor<64xbf16>, %s2: tensor<64xbf16>) -> (tensor<16x64xbf16>, tensor<16x64xbf16>) {
  %acc0 = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %y0 = qmm.dequant %acc0, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %q0 = qmm.quant %y0, %s1 : (tensor<16x64xbf16>, tensor<64xbf16>) -> tensor<16x64xi8>
  %a0 = qmm.alltoall %q0 on "tp" world_size = 2 : tensor<16x64xi8> -> tensor<2x8x64xi8>
  %r0 = qmm.reducesum %a0 s1(%s1 : tensor<64xbf16>) s2(%s2 : tensor<64xbf16>) : tensor<2x8x64xi8> -> tensor<8x64xi8>
  %g0 = qmm.allgather %r0 on "tp" world_size = 2 : tensor<8x64xi8> -> tensor<16x64xi8>
  %h0 = qmm.dequant %g0, %s2 : (tensor<16x64xi8>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %acc1 = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %y1 = qmm.dequant %acc1, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %z1 = qmm.add %h0, %y1 : tensor<16x64xbf16>
  %h1 = qmm.all_reduce %z1 on "tp" world_size = 2 : tensor<16x64xbf16>
  %acc2 = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %y2 = qmm.dequant %acc2, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %z2 = qmm.add %y2, %h0 : tensor<16x64xbf16>
  %h2 = qmm.all_reduce %z2 on "tp" world_size = 2 : tensor<16x64xbf16>
  func.return %h1, %h2 : tensor<16x64xbf16>, tensor<16x64xbf16>
}

// Both operands are matmul dequants; the first one's result has a second user, so the chain
// runs through the second, and the first is its x3.
// CHECK-LABEL: func.func @two_dequants
// CHECK:         %r = mc2.quant_matmul_all_reduce %x1, %w x3(%p : tensor<16x64xbf16>) dequant_scale(%s : tensor<64xbf16>) on "tp" world_size = 2
func.func @two_dequants(%x1: tensor<16x64xi8>, %w: tensor<64x64xi8>, %s: tensor<64xbf16>) -> (tensor<16x64xbf16>, tensor<16x64xbf16>) {
  %pacc = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %p = qmm.dequant %pacc, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %acc = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %y = qmm.dequant %acc, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %z = qmm.add %p, %y : tensor<16x64xbf16>
  %r = qmm.all_reduce %z on "tp" world_size = 2 : tensor<16x64xbf16>
  func.return %r, %p : tensor<16x64xbf16>, tensor<16x64xbf16>
}

// The dequant's result as both operands: x3 would be the chain's own intermediate.
// CHECK-LABEL: func.func @same_value_twice
// CHECK:         %z = qmm.add %y, %y
// CHECK-NEXT:    %r = qmm.all_reduce %z
func.func @same_value_twice(%x1: tensor<16x64xi8>, %w: tensor<64x64xi8>, %s: tensor<64xbf16>) -> tensor<16x64xbf16> {
  %acc = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %y = qmm.dequant %acc, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %z = qmm.add %y, %y : tensor<16x64xbf16>
  %r = qmm.all_reduce %z on "tp" world_size = 2 : tensor<16x64xbf16>
  func.return %r : tensor<16x64xbf16>
}

// Both operands are legal chains: the first, in operand order, is the chain.
// CHECK-LABEL: func.func @both_legal
// CHECK:         %r = mc2.quant_matmul_all_reduce %x1, %w x3(%y : tensor<16x64xbf16>) dequant_scale(%s : tensor<64xbf16>)
func.func @both_legal(%x1: tensor<16x64xi8>, %w: tensor<64x64xi8>, %s: tensor<64xbf16>) -> tensor<16x64xbf16> {
  %acc = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %y = qmm.dequant %acc, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %pacc = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %p = qmm.dequant %pacc, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %z = qmm.add %p, %y : tensor<16x64xbf16>
  %r = qmm.all_reduce %z on "tp" world_size = 2 : tensor<16x64xbf16>
  func.return %r : tensor<16x64xbf16>
}

// Neither is legal: the first has a second user (CHAIN-SINGLE-USE), the second an f32 scale
// for bf16 output (MC2-SCALE-DTYPE).  The verdict names the rule that stopped the chain that
// got further through the rules: the second's.
// CHECK-LABEL: func.func @neither_legal
// CHECK:         %z = qmm.add %p, %y
func.func @neither_legal(%x1: tensor<16x64xi8>, %w: tensor<64x64xi8>, %s: tensor<64xbf16>, %f: tensor<64xf32>) -> (tensor<16x64xbf16>, tensor<16x64xbf16>) {
  %pacc = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %p = qmm.dequant %pacc, %s : (tensor<16x64xi32>, tensor<64xbf16>) -> tensor<16x64xbf16>
  %acc = qmm.matmul %x1, %w : (tensor<16x64xi8>, tensor<64x64xi8>) -> tensor<16x64xi32>
  %y = qmm.dequant %acc, %f : (tensor<16x64xi32>, tensor<64xf32>) -> tensor<16x64xbf16>
  %z = qmm.add %p, %y : tensor<16x64xbf16>
  %r = qmm.all_reduce %z on "tp" world_size = 2 : tensor<16x64xbf16>
  func.return %r, %p : tensor<16x64xbf16>, tensor<16x64xbf16>
}

// Slices are looked through only in the exact padding that unfuse-mc2 writes: a slice at
// another offset is the program's own, which the fused op cannot do (CHAIN-PADDING).
// CHECK-LABEL: func.func @not_the_padding
// CHECK:         qmm.alltoall
func.func @not_the_padding(%x1: tensor<10x64xi8>, %w: tensor<64x64xi8>, %s: tensor<64xbf16>, %s1: tensor<64xbf16>, %s2: tensor<64xbf16>) -> tensor<10x64xbf16> {
  %acc = qmm.matmul %x1, %w : (tensor<10x64xi8>, tensor<64x64xi8>) -> tensor<10x64xi32>
  %y = qmm.dequant %acc, %s : (tensor<10x64xi32>, tensor<64xbf16>) -> tensor<10x64xbf16>
  %q = qmm.quant %y, %s1 : (tensor<10x64xbf16>, tensor<64xbf16>) -> tensor<10x64xi8>
  %e = tensor.empty() : tensor<12x64xi8>
  %p = tensor.insert_slice %q into %e[2, 0] [10, 64] [1, 1] : tensor<10x64xi8> into tensor<12x64xi8>
  %a = qmm.alltoall %p on "tp" world_size = 2 : tensor<12x64xi8> -> tensor<2x6x64xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<64xbf16>) s2(%s2 : tensor<64xbf16>) : tensor<2x6x64xi8> -> tensor<6x64xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<6x64xi8> -> tensor<12x64xi8>
  %u = tensor.extract_slice %g[2, 0] [10, 64] [1, 1] : tensor<12x64xi8> to tensor<10x64xi8>
  %o = qmm.dequant %u, %s2 : (tensor<10x64xi8>, tensor<64xbf16>) -> tensor<10x64xbf16>
  func.return %o : tensor<10x64xbf16>
}
