func.func @f(%x: tensor<4xbf16>) -> tensor<4xbf16> {
  %r = qmm.all_reduce %x on "tp" world_size = 8 : i1 : tensor<4xbf16>
  func.return %r : tensor<4xbf16>
}
