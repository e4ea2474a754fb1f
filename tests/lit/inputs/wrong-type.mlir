func.func @f(%x: tensor<4x8xf32>, %s: tensor<8xf32>) {
  %q = qmm.quant %x, %s : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xi8>
  func.return
}
