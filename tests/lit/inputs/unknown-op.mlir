func.func @f(%x: tensor<4xbf16>) {
  %0 = "qmm.frobnicate"(%x) : (tensor<4xbf16>) -> tensor<4xbf16>
  func.return
}
