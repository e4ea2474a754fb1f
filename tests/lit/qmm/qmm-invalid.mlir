// The qmm verifiers: each broken constraint is reported at the op, with the rule in words.
// RUN: qmmar-opt %s --split-input-file --verify-diagnostics | filecheck %s

// CHECK: qmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'qmm.matmul' op the k dimensions of x1 and x2 must be equal
func.func @k(%x1: tensor<4x64xi8>, %x2: tensor<32x16xi8>) {
  %0 = qmm.matmul %x1, %x2 : (tensor<4x64xi8>, tensor<32x16xi8>) -> tensor<4x16xi32>
  func.return
}

// -----

// Transposed, x2 is [n, k]: the same x2 is now fine.
// CHECK-NOT: error
// CHECK: qmm.matmul %x1, %x2 transpose_x2 = true
func.func @k_transposed(%x1: tensor<4x16xi8>, %x2: tensor<32x16xi8>) {
  %0 = qmm.matmul %x1, %x2 transpose_x2 = true : (tensor<4x16xi8>, tensor<32x16xi8>) -> tensor<4x32xi32>
  func.return
}

// -----

// Element types are IRDL constraints: in the custom form the parser reports them with the
// op's sentence (qmm-dtype.mlir); in the generic form, the verifier names the operand.
// CHECK: qmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'qmm.matmul' op operand 'x1' at position 0 does not verify:
func.func @dtype(%x1: tensor<4x64xf16>, %x2: tensor<64x16xi8>) {
  %0 = "qmm.matmul"(%x1, %x2) <{transpose_x2 = false}> : (tensor<4x64xf16>, tensor<64x16xi8>) -> tensor<4x16xi32>
  func.return
}

// -----

// CHECK: error: 'qmm.matmul' op bias must be int32 [n]
func.func @bias(%x1: tensor<4x64xi8>, %x2: tensor<64x16xi8>, %b: tensor<64xi32>) {
  %0 = qmm.matmul %x1, %x2 bias(%b) : (tensor<4x64xi8>, tensor<64x16xi8>, tensor<64xi32>) -> tensor<4x16xi32>
  func.return
}

// -----

// CHECK: error: 'qmm.matmul' op the result must be x1's leading dims + [n]
func.func @result(%x1: tensor<4x64xi8>, %x2: tensor<64x16xi8>) {
  %0 = qmm.matmul %x1, %x2 : (tensor<4x64xi8>, tensor<64x16xi8>) -> tensor<4x64xi32>
  func.return
}

// -----

// CHECK: error: 'qmm.dequant' op scale must be [1], [n] or [1, n]
func.func @scale_shape(%x: tensor<4x16xi32>, %s: tensor<2x16xbf16>) {
  %0 = qmm.dequant %x, %s : (tensor<4x16xi32>, tensor<2x16xbf16>) -> tensor<4x16xbf16>
  func.return
}

// -----

// CHECK: error: 'qmm.dequant' op pertoken must be [m] (m = b*s for a 3-D input)
func.func @pertoken(%x: tensor<2x4x16xi32>, %s: tensor<16xf32>, %pt: tensor<4xf32>) {
  %0 = qmm.dequant %x, %s pertoken(%pt) : (tensor<2x4x16xi32>, tensor<16xf32>, tensor<4xf32>) -> tensor<2x4x16xf16>
  func.return
}

// -----

// CHECK: error: 'qmm.dequant' op result 'result' at position 0 does not verify:
func.func @dequant_out(%x: tensor<4x16xi32>, %s: tensor<16xf32>) {
  %0 = "qmm.dequant"(%x, %s) : (tensor<4x16xi32>, tensor<16xf32>) -> tensor<4x16xf32>
  func.return
}

// -----

// CHECK: error: 'qmm.quant' op scale must be [n] or [1, n]
func.func @quant(%x: tensor<4x16xbf16>, %s: tensor<1xbf16>) {
  %0 = qmm.quant %x, %s : (tensor<4x16xbf16>, tensor<1xbf16>) -> tensor<4x16xi8>
  func.return
}

// -----

// CHECK: error: 'qmm.alltoall' op x's leading dim must be divisible by world_size
func.func @alltoall_divisible(%x: tensor<6x16xi8>) {
  %0 = qmm.alltoall %x on "tp" world_size = 4 : tensor<6x16xi8> -> tensor<4x1x16xi8>
  func.return
}

// -----

// CHECK: error: 'qmm.alltoall' op the result must be [world_size, d0 / world_size, ...]
func.func @alltoall_result(%x: tensor<8x16xi8>) {
  %0 = qmm.alltoall %x on "tp" world_size = 4 : tensor<8x16xi8> -> tensor<2x4x16xi8>
  func.return
}

// -----

// CHECK: error: 'qmm.reducesum' op s1 and s2 must both be given or both absent
func.func @reducesum_pair(%x: tensor<4x2x16xi8>, %s: tensor<16xbf16>) {
  %0 = "qmm.reducesum"(%x, %s) <{operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<4x2x16xi8>, tensor<16xbf16>) -> tensor<2x16xi8>
  func.return
}

// -----

// CHECK: error: 'qmm.reducesum' op without scales, x must be f16 or bf16
func.func @reducesum_int(%x: tensor<4x2x16xi8>) {
  %0 = qmm.reducesum %x : tensor<4x2x16xi8> -> tensor<2x16xi8>
  func.return
}

// -----

// CHECK: error: 'qmm.allgather' op the result must be [world_size * c, ...]
func.func @allgather(%x: tensor<2x16xi8>) {
  %0 = qmm.allgather %x on "tp" world_size = 4 : tensor<2x16xi8> -> tensor<4x16xi8>
  func.return
}

// -----

// CHECK: error: 'qmm.all_reduce' op reduce_op must be "sum"
func.func @all_reduce_op(%x: tensor<2x16xbf16>) {
  %0 = qmm.all_reduce %x on "tp" world_size = 4 reduce_op = "max" : tensor<2x16xbf16>
  func.return
}

// -----

// CHECK: error: 'qmm.all_reduce' op world_size must be at least 1
func.func @all_reduce_size(%x: tensor<2x16xbf16>) {
  %0 = qmm.all_reduce %x on "tp" world_size = 0 : tensor<2x16xbf16>
  func.return
}

// -----

// CHECK: error: 'mc2.trans_quant_param' op operand 'scale' at position 0 does not verify:
func.func @tqp(%s: tensor<16xbf16>) {
  %0 = "mc2.trans_quant_param"(%s) : (tensor<16xbf16>) -> tensor<16xui64>
  func.return
}
