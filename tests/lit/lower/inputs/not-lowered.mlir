// A matmul whose int32 result is used twice: aclnnQuantMatmulV4 computes the matmul and its
// dequant as one call, so this has no aclnn form.
func.func @twice(%x1: tensor<4x64xi8>, %x2: tensor<64x32xi8>, %s: tensor<32xbf16>) -> (tensor<4x32xbf16>, tensor<4x32xi32>) {
  %acc = qmm.matmul %x1, %x2 : (tensor<4x64xi8>, tensor<64x32xi8>) -> tensor<4x32xi32>
  %y = qmm.dequant %acc, %s : (tensor<4x32xi32>, tensor<32xbf16>) -> tensor<4x32xbf16>
  func.return %y, %acc : tensor<4x32xbf16>, tensor<4x32xi32>
}
