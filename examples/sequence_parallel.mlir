// A sequence-parallel MLP on 4 ranks (Megatron-style): each rank holds 16 of the sequence's
// 64 rows.  The column-parallel up projection starts with an all-gather of the int8 activation
// and of its per-token scale; the row-parallel down projection ends with a reduce-scatter that
// gives each rank its 16 rows of the sum back.  Both chains fuse, on Atlas A2 and A3:
//   qmmar-opt examples/sequence_parallel.mlir -p 'fuse-mc2{soc=a3 remarks=all}'
// into mc2.all_gather_quant_matmul (aclnnAllGatherMatmulV2) and mc2.quant_matmul_reduce_scatter
// (aclnnMatmulReduceScatterV2), whose numbers are the chains' bit for bit (tests/test_sequence_parallel.py).
func.func @main(%x: tensor<16x512xi8>, %x_tok: tensor<16xf32>, %w_up: tensor<512x256xi8>, %s_up: tensor<256xf32>,
                %act_scale: tensor<256xbf16>, %w_down: tensor<256x512xi8>, %s_down: tensor<512xf32>,
                %tok_down: tensor<64xf32>) -> tensor<16x512xbf16> {
  %gx = qmm.allgather %x on "tp" world_size = 4 : tensor<16x512xi8> -> tensor<64x512xi8>
  %tok = qmm.allgather %x_tok on "tp" world_size = 4 : tensor<16xf32> -> tensor<64xf32>
  %acc_up = qmm.matmul %gx, %w_up : (tensor<64x512xi8>, tensor<512x256xi8>) -> tensor<64x256xi32>
  %h = qmm.dequant %acc_up, %s_up pertoken(%tok) : (tensor<64x256xi32>, tensor<256xf32>, tensor<64xf32>) -> tensor<64x256xbf16>
  %q = qmm.quant %h, %act_scale : (tensor<64x256xbf16>, tensor<256xbf16>) -> tensor<64x256xi8>
  %acc_down = qmm.matmul %q, %w_down : (tensor<64x256xi8>, tensor<256x512xi8>) -> tensor<64x512xi32>
  %y = qmm.dequant %acc_down, %s_down pertoken(%tok_down) : (tensor<64x512xi32>, tensor<512xf32>, tensor<64xf32>) -> tensor<64x512xbf16>
  %out = qmm.reduce_scatter %y on "tp" world_size = 4 : tensor<64x512xbf16> -> tensor<16x512xbf16>
  func.return %out : tensor<16x512xbf16>
}
