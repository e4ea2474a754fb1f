// The xdsl.universe entry point: stock xdsl-opt knows qmm, mc2 and qmmar's passes.
// RUN: xdsl-opt %s -p fuse-quant-matmul-all-reduce | filecheck %s

// CHECK: mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<16xbf16>) on "tp" world_size = 2
// CHECK-NOT: qmm.
func.func @f(%x1: tensor<4x8xi8>, %x2: tensor<8x16xi8>, %s: tensor<16xbf16>) -> tensor<4x16xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<4x8xi8>, tensor<8x16xi8>) -> tensor<4x16xi32>
  %y = qmm.dequant %acc, %s : (tensor<4x16xi32>, tensor<16xbf16>) -> tensor<4x16xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<4x16xbf16>
  func.return %r : tensor<4x16xbf16>
}
