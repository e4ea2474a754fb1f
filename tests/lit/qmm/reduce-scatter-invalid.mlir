// The qmm.reduce_scatter verifier: each broken constraint is reported at the op, with the rule in words.
// RUN: qmmar-opt %s --split-input-file --verify-diagnostics | filecheck %s

// CHECK: reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'qmm.reduce_scatter' op x's leading dim m must be divisible by world_size
func.func @divisible(%x: tensor<6x16xbf16>) {
  %0 = qmm.reduce_scatter %x on "tp" world_size = 4 : tensor<6x16xbf16> -> tensor<1x16xbf16>
  func.return
}

// -----

// CHECK: reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'qmm.reduce_scatter' op the result must be [m / world_size, ...]
func.func @result(%x: tensor<8x16xbf16>) {
  %0 = qmm.reduce_scatter %x on "tp" world_size = 4 : tensor<8x16xbf16> -> tensor<8x16xbf16>
  func.return
}

// -----

// CHECK: error: 'qmm.reduce_scatter' op the result must have x's element type
func.func @element(%x: tensor<8x16xbf16>) {
  %0 = qmm.reduce_scatter %x on "tp" world_size = 4 : tensor<8x16xbf16> -> tensor<2x16xf16>
  func.return
}

// -----

// CHECK: error: 'qmm.reduce_scatter' op reduce_op must be "sum"
func.func @reduce_op(%x: tensor<8x16xbf16>) {
  %0 = qmm.reduce_scatter %x on "tp" world_size = 4 reduce_op = "max" : tensor<8x16xbf16> -> tensor<2x16xbf16>
  func.return
}

// -----

// CHECK: error: 'qmm.reduce_scatter' op world_size must be at least 1
func.func @size(%x: tensor<8x16xbf16>) {
  %0 = qmm.reduce_scatter %x on "tp" world_size = 0 : tensor<8x16xbf16> -> tensor<8x16xbf16>
  func.return
}

// -----

// CHECK: error: 'qmm.reduce_scatter' op x must have a leading dimension
func.func @scalar(%x: tensor<bf16>) {
  %0 = "qmm.reduce_scatter"(%x) <{group = "tp", world_size = 2 : i64, reduce_op = "sum"}> : (tensor<bf16>) -> tensor<bf16>
  func.return
}

// -----

// CHECK: error: 'qmm.reduce_scatter' op operand 'x' at position 0 does not verify:
func.func @int8(%x: tensor<8x16xi8>) {
  %0 = "qmm.reduce_scatter"(%x) <{group = "tp", world_size = 4 : i64, reduce_op = "sum"}> : (tensor<8x16xi8>) -> tensor<2x16xi8>
  func.return
}
