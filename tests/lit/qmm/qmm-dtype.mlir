// Element types are IRDL constraints of the qmm ops: xDSL's parser checks them as it reads
// an op's types, and the error is located at the op and says the op's rule in words.
// RUN: not qmmar-opt %s 2>&1 | filecheck %s

// CHECK: qmm-dtype.mlir:[[# @LINE + 3]]:3: error: 'qmm.quant' op x and scale must both be f16 or both bf16
// CHECK-NOT: error
func.func @f(%x: tensor<4x8xf32>, %s: tensor<8xf32>) {
  %q = qmm.quant %x, %s : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xi8>
  func.return
}
