// f32 constants that xDSL prints in MLIR's hexadecimal bit-pattern form (313162240.0 is
// 0x4D9553D0), a -0.0 beside a 0.0, and a NaN with a payload.
func.func @main() -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) {
  %a = arith.constant dense<[313162240.0, 1.5]> : tensor<2xf32>
  %b = arith.constant dense<[0.0, -0.0]> : tensor<2xf32>
  %c = arith.constant dense<[0x7FC00001, 0x7F800000]> : tensor<2xf32>
  func.return %a, %b, %c : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>
}
