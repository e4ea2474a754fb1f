func.func @main(%x: tensor<6x32xi8>, %w: tensor<16x32xi8>, %b: tensor<16xi32>, %x3: tensor<6x16xf16>, %s1: tensor<1x16xf16>, %s2: tensor<1x16xf16>) -> tensor<6x16xf16> {
  %sc = arith.constant dense<0.0123456789> : tensor<16xf32>
  %acc = qmm.matmul %x, %w bias(%b) transpose_x2 = true : (tensor<6x32xi8>, tensor<16x32xi8>, tensor<16xi32>) -> tensor<6x16xi32>
  %y = qmm.dequant %acc, %sc : (tensor<6x16xi32>, tensor<16xf32>) -> tensor<6x16xf16>
  %z = qmm.add %x3, %y : tensor<6x16xf16>
  %q = qmm.quant %z, %s1 : (tensor<6x16xf16>, tensor<1x16xf16>) -> tensor<6x16xi8>
  %pad = tensor.empty() : tensor<8x16xi8>
  %qp = tensor.insert_slice %q into %pad[0, 0] [6, 16] [1, 1] : tensor<6x16xi8> into tensor<8x16xi8>
  %a = qmm.alltoall %qp on "tp" world_size = 4 : tensor<8x16xi8> -> tensor<4x2x16xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<1x16xf16>) s2(%s2 : tensor<1x16xf16>) : tensor<4x2x16xi8> -> tensor<2x16xi8>
  %g = qmm.allgather %r on "tp" world_size = 4 : tensor<2x16xi8> -> tensor<8x16xi8>
  %gs = tensor.extract_slice %g[0, 0] [6, 16] [1, 1] : tensor<8x16xi8> to tensor<6x16xi8>
  %h = qmm.dequant %gs, %s2 : (tensor<6x16xi8>, tensor<1x16xf16>) -> tensor<6x16xf16>
  func.return %h : tensor<6x16xf16>
}
