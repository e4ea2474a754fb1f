func.func @f() {
  %c = arith.constant dense<[(1.0, 2.0), 3.0]> : tensor<2xcomplex<f32>>
  func.return
}
