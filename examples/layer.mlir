// One tensor-parallel projection of a transformer layer (row-parallel linear), unfused:
// int8 matmul + bias, dequantise to bf16, add the residual, then an all-reduce with
// int8 communication (quantise, all-to-all, reduce-sum, all-gather, dequantise).
func.func @main(%x1: tensor<64x256xi8>, %w: tensor<256x128xi8>, %bias: tensor<128xi32>,
                %scale: tensor<128xbf16>, %residual: tensor<64x128xbf16>,
                %s1: tensor<128xbf16>, %s2: tensor<128xbf16>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %w bias(%bias) : (tensor<64x256xi8>, tensor<256x128xi8>, tensor<128xi32>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %scale : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xbf16>
  %z = qmm.add %y, %residual : tensor<64x128xbf16>
  %q = qmm.quant %z, %s1 : (tensor<64x128xbf16>, tensor<128xbf16>) -> tensor<64x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 4 : tensor<64x128xi8> -> tensor<4x16x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<4x16x128xi8> -> tensor<16x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 4 : tensor<16x128xi8> -> tensor<64x128xi8>
  %out = qmm.dequant %g, %s2 : (tensor<64x128xi8>, tensor<128xbf16>) -> tensor<64x128xbf16>
  func.return %out : tensor<64x128xbf16>
}
