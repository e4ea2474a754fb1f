func.func @f(%x: tensor<4x8xi8>) {
  %0 = qmm.matmul %x, : (tensor<4x8xi8>) -> tensor<4x8xi32>
  func.return
}
