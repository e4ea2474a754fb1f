// Two tensor-parallel layers of a transformer (8 ranks, group "tp"), unfused.
//
// Layer 0, attention output projection: a 3-D activation [b, s, k] quantised per token,
// dequantised to bf16, residual added, then an all-reduce with int8 communication.
// Layer 1, MLP down projection: its dequant scale is f32 while the output is bf16; the
// operator wants a bf16 scale, so qmmar leaves this chain unfused and says why.
func.func @main(%attn: tensor<2x64x128xi8>, %w_o: tensor<128x256xi8>, %scale_o: tensor<256xbf16>,
                %tok_o: tensor<128xf32>, %residual: tensor<2x64x256xbf16>,
                %s1: tensor<256xbf16>, %s2: tensor<256xbf16>,
                %act_scale: tensor<256xbf16>, %w_down: tensor<256x256xi8>, %scale_down: tensor<256xf32>)
    -> (tensor<2x64x256xbf16>, tensor<128x256xbf16>) {
  // Layer 0: the chain qmmar fuses, with communication scales s1, s2.
  %acc0 = qmm.matmul %attn, %w_o : (tensor<2x64x128xi8>, tensor<128x256xi8>) -> tensor<2x64x256xi32>
  %y0 = qmm.dequant %acc0, %scale_o pertoken(%tok_o) : (tensor<2x64x256xi32>, tensor<256xbf16>, tensor<128xf32>) -> tensor<2x64x256xbf16>
  %y0r = tensor.collapse_shape %y0 [[0, 1], [2]] : tensor<2x64x256xbf16> into tensor<128x256xbf16>
  %res = tensor.collapse_shape %residual [[0, 1], [2]] : tensor<2x64x256xbf16> into tensor<128x256xbf16>
  %z0 = qmm.add %y0r, %res : tensor<128x256xbf16>
  %q0 = qmm.quant %z0, %s1 : (tensor<128x256xbf16>, tensor<256xbf16>) -> tensor<128x256xi8>
  %a0 = qmm.alltoall %q0 on "tp" world_size = 8 : tensor<128x256xi8> -> tensor<8x16x256xi8>
  %r0 = qmm.reducesum %a0 s1(%s1 : tensor<256xbf16>) s2(%s2 : tensor<256xbf16>) : tensor<8x16x256xi8> -> tensor<16x256xi8>
  %g0 = qmm.allgather %r0 on "tp" world_size = 8 : tensor<16x256xi8> -> tensor<128x256xi8>
  %h0 = qmm.dequant %g0, %s2 : (tensor<128x256xi8>, tensor<256xbf16>) -> tensor<128x256xbf16>
  %h0_3d = tensor.expand_shape %h0 [[0, 1], [2]] output_shape [2, 64, 256] : tensor<128x256xbf16> into tensor<2x64x256xbf16>

  // Layer 1: quantise the activation (not part of any chain), then the illegal chain.
  %act = qmm.quant %h0, %act_scale : (tensor<128x256xbf16>, tensor<256xbf16>) -> tensor<128x256xi8>
  %acc1 = qmm.matmul %act, %w_down : (tensor<128x256xi8>, tensor<256x256xi8>) -> tensor<128x256xi32>
  %y1 = qmm.dequant %acc1, %scale_down : (tensor<128x256xi32>, tensor<256xf32>) -> tensor<128x256xbf16>
  %h1 = qmm.all_reduce %y1 on "tp" world_size = 8 : tensor<128x256xbf16>
  func.return %h0_3d, %h1 : tensor<2x64x256xbf16>, tensor<128x256xbf16>
}
