// Every qmm and mc2 op, for the interop tests.
func.func @every_op(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %b: tensor<128xi32>, %s: tensor<128xbf16>,
                    %x3: tensor<32x128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>, %pt: tensor<32xf32>,
                    %sf: tensor<128xf32>, %x3h: tensor<32x128xf16>, %x2t: tensor<128x64xi8>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xi32>) -> tensor<32x128xi32>
  %acct = qmm.matmul %x1, %x2t transpose_x2 = true : (tensor<32x64xi8>, tensor<128x64xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<32x128xi32>, tensor<128xbf16>, tensor<32xf32>) -> tensor<32x128xbf16>
  %z = qmm.add %y, %x3 : tensor<32x128xbf16>
  %q = qmm.quant %z, %c1 : (tensor<32x128xbf16>, tensor<128xbf16>) -> tensor<32x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 8 : tensor<32x128xi8> -> tensor<8x4x128xi8>
  %r = qmm.reducesum %a s1(%c1 : tensor<128xbf16>) s2(%c2 : tensor<128xbf16>) : tensor<8x4x128xi8> -> tensor<4x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 8 : tensor<4x128xi8> -> tensor<32x128xi8>
  %o = qmm.dequant %g, %c2 : (tensor<32x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %ar = qmm.all_reduce %z on "tp" world_size = 8 : tensor<32x128xbf16>
  %p = mc2.trans_quant_param %sf : tensor<128xf32> -> tensor<128xui64>
  %m = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<32x128xbf16>) dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<32xf32>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 8 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xbf16>
  %h = mc2.quant_matmul_all_reduce %x1, %x2t dequant_scale(%p : tensor<128xui64>) on "tp" world_size = 8 transpose_x2 = true : tensor<32x64xi8>, tensor<128x64xi8> -> tensor<32x128xf16>
  func.return %o : tensor<32x128xbf16>
}
