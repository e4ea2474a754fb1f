func.func @f(%x: tensor<2x3x4xbf16>) -> tensor<6x4xbf16> {
  %r = tensor.collapse_shape %x [[0, 1], [1]] : tensor<2x3x4xbf16> into tensor<6x4xbf16>
  func.return %r : tensor<6x4xbf16>
}
