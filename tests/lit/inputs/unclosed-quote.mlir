func.func @f(%x: tensor<4xbf16>) -> tensor<4xbf16> {
  %r = qmm.all_reduce %x on "tp world_size = 8 : tensor<4xbf16> abcdefghijklmnopqrstuvwxyz0123456789
  func.return %r : tensor<4xbf16>
}
