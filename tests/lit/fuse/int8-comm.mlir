// The int8-communication form: quant -> alltoall -> reducesum -> allgather -> dequant
// fuses with comm_quant_scale_1/2 = the s1/s2 that quant, reducesum and dequant share.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce | filecheck %s

// CHECK-LABEL: func.func @int8_comm
// CHECK-NEXT:    %out = mc2.quant_matmul_all_reduce %x1, %w bias(%bias : tensor<128xi32>) x3(%res : tensor<64x128xbf16>) dequant_scale(%scale : tensor<128xbf16>) comm_quant_scale_1(%s1 : tensor<128xbf16>) comm_quant_scale_2(%s2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<64x128xbf16>
// CHECK-NEXT:    func.return %out
func.func @int8_comm(%x1: tensor<64x256xi8>, %w: tensor<256x128xi8>, %bias: tensor<128xi32>, %scale: tensor<128xbf16>,
                     %res: tensor<64x128xbf16>, %s1: tensor<128xbf16>, %s2: tensor<128xbf16>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %w bias(%bias) : (tensor<64x256xi8>, tensor<256x128xi8>, tensor<128xi32>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %scale : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xbf16>
  %z = qmm.add %y, %res : tensor<64x128xbf16>
  %q = qmm.quant %z, %s1 : (tensor<64x128xbf16>, tensor<128xbf16>) -> tensor<64x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 4 : tensor<64x128xi8> -> tensor<4x16x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<4x16x128xi8> -> tensor<16x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 4 : tensor<16x128xi8> -> tensor<64x128xi8>
  %out = qmm.dequant %g, %s2 : (tensor<64x128xi8>, tensor<128xbf16>) -> tensor<64x128xbf16>
  func.return %out : tensor<64x128xbf16>
}

// A 3-D activation, collapsed to 2-D for the communication and expanded back right after:
// the expand gives x1's layout back, so the fused op stays 3-D and both reshapes go.
// CHECK-LABEL: func.func @three_d
// CHECK-NEXT:    %out3 = mc2.quant_matmul_all_reduce %x1, %w dequant_scale(%scale : tensor<128xbf16>) pertoken_scale(%pt : tensor<64xf32>) comm_quant_scale_1(%s1 : tensor<1x128xbf16>) comm_quant_scale_2(%s2 : tensor<1x128xbf16>) on "tp" world_size = 8 : tensor<2x32x64xi8>, tensor<64x128xi8> -> tensor<2x32x128xbf16>
// CHECK-NEXT:    func.return %out3
func.func @three_d(%x1: tensor<2x32x64xi8>, %w: tensor<64x128xi8>, %scale: tensor<128xbf16>, %pt: tensor<64xf32>,
                   %s1: tensor<1x128xbf16>, %s2: tensor<1x128xbf16>) -> tensor<2x32x128xbf16> {
  %acc = qmm.matmul %x1, %w : (tensor<2x32x64xi8>, tensor<64x128xi8>) -> tensor<2x32x128xi32>
  %y = qmm.dequant %acc, %scale pertoken(%pt) : (tensor<2x32x128xi32>, tensor<128xbf16>, tensor<64xf32>) -> tensor<2x32x128xbf16>
  %q = qmm.quant %y, %s1 : (tensor<2x32x128xbf16>, tensor<1x128xbf16>) -> tensor<2x32x128xi8>
  %q2 = tensor.collapse_shape %q [[0, 1], [2]] : tensor<2x32x128xi8> into tensor<64x128xi8>
  %a = qmm.alltoall %q2 on "tp" world_size = 8 : tensor<64x128xi8> -> tensor<8x8x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<1x128xbf16>) s2(%s2 : tensor<1x128xbf16>) : tensor<8x8x128xi8> -> tensor<8x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 8 : tensor<8x128xi8> -> tensor<64x128xi8>
  %out = qmm.dequant %g, %s2 : (tensor<64x128xi8>, tensor<1x128xbf16>) -> tensor<64x128xbf16>
  %out3 = tensor.expand_shape %out [[0, 1], [2]] output_shape [2, 32, 128] : tensor<64x128xbf16> into tensor<2x32x128xbf16>
  func.return %out3 : tensor<2x32x128xbf16>
}

// Staying 3-D all along: x1 stays [b, s, k].
// CHECK-LABEL: func.func @three_d_throughout
// CHECK-NEXT:    %out = mc2.quant_matmul_all_reduce %x1, %w dequant_scale(%scale : tensor<128xbf16>) comm_quant_scale_1(%s1 : tensor<128xbf16>) comm_quant_scale_2(%s2 : tensor<128xbf16>) on "tp" world_size = 2 : tensor<2x8x64xi8>, tensor<64x128xi8> -> tensor<2x8x128xbf16>
func.func @three_d_throughout(%x1: tensor<2x8x64xi8>, %w: tensor<64x128xi8>, %scale: tensor<128xbf16>,
                              %s1: tensor<128xbf16>, %s2: tensor<128xbf16>) -> tensor<2x8x128xbf16> {
  %acc = qmm.matmul %x1, %w : (tensor<2x8x64xi8>, tensor<64x128xi8>) -> tensor<2x8x128xi32>
  %y = qmm.dequant %acc, %scale : (tensor<2x8x128xi32>, tensor<128xbf16>) -> tensor<2x8x128xbf16>
  %q = qmm.quant %y, %s1 : (tensor<2x8x128xbf16>, tensor<128xbf16>) -> tensor<2x8x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<2x8x128xi8> -> tensor<2x1x8x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<2x1x8x128xi8> -> tensor<1x8x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<1x8x128xi8> -> tensor<2x8x128xi8>
  %out = qmm.dequant %g, %s2 : (tensor<2x8x128xi8>, tensor<128xbf16>) -> tensor<2x8x128xbf16>
  func.return %out : tensor<2x8x128xbf16>
}

// The same chain whose 2-D result is also used as it is: the expand is not the chain's, so
// the fused op takes x1 collapsed to [b*s, k] and works in 2-D.
// CHECK-LABEL: func.func @three_d_used_in_2d
// CHECK-NEXT:    %0 = tensor.collapse_shape %x1 {{\[}}[0 : i64, 1 : i64], [2 : i64]] : tensor<2x32x64xi8> into tensor<64x64xi8>
// CHECK-NEXT:    %out = mc2.quant_matmul_all_reduce %0, %w dequant_scale(%scale : tensor<128xbf16>) comm_quant_scale_1(%s1 : tensor<128xbf16>) comm_quant_scale_2(%s2 : tensor<128xbf16>) on "tp" world_size = 8 : tensor<64x64xi8>, tensor<64x128xi8> -> tensor<64x128xbf16>
// CHECK-NEXT:    %out3 = tensor.expand_shape %out
func.func @three_d_used_in_2d(%x1: tensor<2x32x64xi8>, %w: tensor<64x128xi8>, %scale: tensor<128xbf16>,
                              %s1: tensor<128xbf16>, %s2: tensor<128xbf16>) -> (tensor<2x32x128xbf16>, tensor<64x128xbf16>) {
  %acc = qmm.matmul %x1, %w : (tensor<2x32x64xi8>, tensor<64x128xi8>) -> tensor<2x32x128xi32>
  %y = qmm.dequant %acc, %scale : (tensor<2x32x128xi32>, tensor<128xbf16>) -> tensor<2x32x128xbf16>
  %y2 = tensor.collapse_shape %y [[0, 1], [2]] : tensor<2x32x128xbf16> into tensor<64x128xbf16>
  %q = qmm.quant %y2, %s1 : (tensor<64x128xbf16>, tensor<128xbf16>) -> tensor<64x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 8 : tensor<64x128xi8> -> tensor<8x8x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<8x8x128xi8> -> tensor<8x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 8 : tensor<8x128xi8> -> tensor<64x128xi8>
  %out = qmm.dequant %g, %s2 : (tensor<64x128xi8>, tensor<128xbf16>) -> tensor<64x128xbf16>
  %out3 = tensor.expand_shape %out [[0, 1], [2]] output_shape [2, 32, 128] : tensor<64x128xbf16> into tensor<2x32x128xbf16>
  func.return %out3, %out : tensor<2x32x128xbf16>, tensor<64x128xbf16>
}
