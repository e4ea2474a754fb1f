// Sequence-parallel row-parallel chains, matmul -> dequant -> reduce_scatter, fuse into
// mc2.quant_matmul_reduce_scatter on Atlas A2 and on Atlas A3; the module records the target.
// RUN: qmmar-opt %s -p 'fuse-mc2{soc=a2 remarks=all}' 2>%t.a2 | filecheck %s --check-prefixes=FUSED,ON-A2
// RUN: filecheck %s --check-prefix=REMARK < %t.a2
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=a3}' | filecheck %s --check-prefixes=FUSED,ON-A3
// The fused program runs the chain's numbers: unfusing gives the chain back.
// RUN: qmmar-opt %s -p 'fuse-mc2{soc=a3},unfuse-mc2' | filecheck %s --check-prefix=CHAIN

// ON-A2: builtin.module attributes {qmmar.target = {soc = "a2", cann = "9.0"}}
// ON-A3: builtin.module attributes {qmmar.target = {soc = "a3", cann = "9.0"}}

// bf16 output, an f32 per-channel scale and a per-token scale: taken as they are. The
// activation's quant stays: it computes x1.
// FUSED-LABEL: func.func @pertoken
// FUSED: %q = qmm.quant %h, %qs
// FUSED-NEXT: %rs = mc2.quant_matmul_reduce_scatter %q, %w x1_scale(%t : tensor<64xf32>) x2_scale(%s : tensor<128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
// FUSED-NEXT: func.return %rs
// REMARK: reduce-scatter.mlir:[[# @LINE + 4]]:3: remark: fused into mc2.quant_matmul_reduce_scatter: qmm.matmul -> qmm.dequant -> qmm.reduce_scatter
// CHAIN-LABEL: func.func @pertoken
func.func @pertoken(%h: tensor<64x256xbf16>, %qs: tensor<256xbf16>, %w: tensor<256x128xi8>, %s: tensor<128xf32>, %t: tensor<64xf32>) -> tensor<16x128xbf16> {
  %q = qmm.quant %h, %qs : (tensor<64x256xbf16>, tensor<256xbf16>) -> tensor<64x256xi8>
  %acc = qmm.matmul %q, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%t) : (tensor<64x128xi32>, tensor<128xf32>, tensor<64xf32>) -> tensor<64x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 4 : tensor<64x128xbf16> -> tensor<16x128xbf16>
  // CHAIN: %[[ACC:.*]] = qmm.matmul %q, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  // CHAIN-NEXT: %[[Y:.*]] = qmm.dequant %[[ACC]], %s pertoken(%t) : (tensor<64x128xi32>, tensor<128xf32>, tensor<64xf32>) -> tensor<64x128xbf16>
  // CHAIN-NEXT: %{{.*}} = qmm.reduce_scatter %[[Y]] on "tp" world_size = 4 : tensor<64x128xbf16> -> tensor<16x128xbf16>
  func.return %rs : tensor<16x128xbf16>
}

// A bf16 dequant scale: the fused op takes f32, to which it widens exactly (arith.extf; a dense
// constant is folded into an f32 one).
// FUSED-LABEL: func.func @bf16_scale
// FUSED: %[[S:.*]] = arith.extf %s : tensor<128xbf16> to tensor<128xf32>
// FUSED-NEXT: %rs = mc2.quant_matmul_reduce_scatter %x1, %w x2_scale(%[[S]] : tensor<128xf32>) on "tp" world_size = 2 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<32x128xbf16>
// FUSED-LABEL: func.func @bf16_constant_scale
// FUSED-NOT: tensor<4xbf16>
// FUSED: %[[C:.*]] = arith.constant dense<[1.000000e+00, 1.250000e-01, -3.000000e+00, 5.000000e-01]> : tensor<4xf32>
// FUSED-NEXT: %rs = mc2.quant_matmul_reduce_scatter %x1, %w x2_scale(%[[C]] : tensor<4xf32>)
// CHAIN-LABEL: func.func @bf16_scale
// CHAIN: %[[S:.*]] = arith.extf %s : tensor<128xbf16> to tensor<128xf32>
// CHAIN: qmm.dequant %{{.*}}, %[[S]] : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
func.func @bf16_scale(%x1: tensor<64x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xbf16>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xbf16> -> tensor<32x128xbf16>
  func.return %rs : tensor<32x128xbf16>
}
func.func @bf16_constant_scale(%x1: tensor<64x256xi8>, %w: tensor<256x4xi8>) -> tensor<32x4xbf16> {
  %s = arith.constant dense<[1.0, 0.125, -3.0, 0.5]> : tensor<4xbf16>
  %acc = qmm.matmul %x1, %w : (tensor<64x256xi8>, tensor<256x4xi8>) -> tensor<64x4xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x4xi32>, tensor<4xbf16>) -> tensor<64x4xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x4xbf16> -> tensor<32x4xbf16>
  func.return %rs : tensor<32x4xbf16>
}

// f16 output without per-token scales: qmm.dequant packs an f32 scale (TransQuantParamV2), and
// so does the fused op's x2_scale; a transposed weight, 3-D activations viewed as rows.
// FUSED-LABEL: func.func @packed_rows
// FUSED: %[[X1:.*]] = tensor.collapse_shape %x1 {{\[}}[0 : i64, 1 : i64], [2 : i64]] : tensor<2x32x512xi8> into tensor<64x512xi8>
// FUSED-NEXT: %[[P:.*]] = mc2.trans_quant_param %s : tensor<1x128xf32> -> tensor<1x128xui64>
// FUSED-NEXT: %rs = mc2.quant_matmul_reduce_scatter %[[X1]], %w x2_scale(%[[P]] : tensor<1x128xui64>) on "tp" world_size = 8 transpose_x2 = true : tensor<64x512xi8>, tensor<128x512xi8> -> tensor<8x128xf16>
// REMARK: reduce-scatter.mlir:[[# @LINE + 2]]:3: remark: fused into mc2.quant_matmul_reduce_scatter: qmm.matmul -> qmm.dequant -> tensor.collapse_shape -> qmm.reduce_scatter
func.func @packed_rows(%x1: tensor<2x32x512xi8>, %w: tensor<128x512xi8>, %s: tensor<1x128xf32>) -> tensor<8x128xf16> {
  %acc = qmm.matmul %x1, %w transpose_x2 = true : (tensor<2x32x512xi8>, tensor<128x512xi8>) -> tensor<2x32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<2x32x128xi32>, tensor<1x128xf32>) -> tensor<2x32x128xf16>
  %y2 = tensor.collapse_shape %y [[0, 1], [2]] : tensor<2x32x128xf16> into tensor<64x128xf16>
  %rs = qmm.reduce_scatter %y2 on "tp" world_size = 8 : tensor<64x128xf16> -> tensor<8x128xf16>
  func.return %rs : tensor<8x128xf16>
}
