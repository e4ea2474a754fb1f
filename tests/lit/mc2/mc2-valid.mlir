// Every variant the operator accepts verifies and round-trips in the custom form.
// RUN: qmmar-opt %s | qmmar-opt | filecheck %s

// CHECK-LABEL: func.func @bf16_full
// CHECK: mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<32x128xbf16>) dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<32xf32>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 8 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xbf16>
func.func @bf16_full(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %b: tensor<128xi32>, %x3: tensor<32x128xbf16>, %s: tensor<128xbf16>, %pt: tensor<32xf32>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>) -> tensor<32x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<32x128xbf16>) dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<32xf32>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 8 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xbf16>
  func.return %o : tensor<32x128xbf16>
}

// f16 output without pertoken: a TransQuantParamV2-packed uint64 (or int64) scale.
// CHECK-LABEL: func.func @f16_packed
// CHECK: dequant_scale(%s : tensor<128xui64>) on "tp" world_size = 1 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xf16>
// CHECK: dequant_scale(%si : tensor<1xi64>) on "tp" world_size = 2 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xf16>
func.func @f16_packed(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xui64>, %si: tensor<1xi64>) {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xui64>) on "tp" world_size = 1 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xf16>
  %p = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%si : tensor<1xi64>) on "tp" world_size = 2 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xf16>
  func.return
}

// f16 output with pertoken: an f32 scale; f16 communication scales of shape [1, n].
// CHECK-LABEL: func.func @f16_pertoken
// CHECK: dequant_scale(%s : tensor<1x128xf32>) pertoken_scale(%pt : tensor<32xf32>) comm_quant_scale_1(%c : tensor<1x128xf16>) comm_quant_scale_2(%c : tensor<1x128xf16>) on "tp" world_size = 4 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xf16>
func.func @f16_pertoken(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<1x128xf32>, %pt: tensor<32xf32>, %c: tensor<1x128xf16>) {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<1x128xf32>) pertoken_scale(%pt : tensor<32xf32>) comm_quant_scale_1(%c : tensor<1x128xf16>) comm_quant_scale_2(%c : tensor<1x128xf16>) on "tp" world_size = 4 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xf16>
  func.return
}

// 3-D x1 ([b, s, k], pertoken [b*s]), transposed x2 ([n, k]), the largest k and n.
// CHECK-LABEL: func.func @three_d_transposed
// CHECK: pertoken_scale(%pt : tensor<8xf32>) on "tp" world_size = 8 transpose_x2 = true : tensor<2x4x65535xi8>, tensor<65535x65535xi8> -> tensor<2x4x65535xbf16>
func.func @three_d_transposed(%x1: tensor<2x4x65535xi8>, %x2: tensor<65535x65535xi8>, %s: tensor<65535xbf16>, %pt: tensor<8xf32>) {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<65535xbf16>) pertoken_scale(%pt : tensor<8xf32>) on "tp" world_size = 8 transpose_x2 = true : tensor<2x4x65535xi8>, tensor<65535x65535xi8> -> tensor<2x4x65535xbf16>
  func.return
}

// Dynamic dimensions pass every static check; the checks move to run time.
// CHECK-LABEL: func.func @dynamic
// CHECK: mc2.quant_matmul_all_reduce %x1, %x2 x3(%x3 : tensor<?x128xbf16>) dequant_scale(%s : tensor<1xbf16>) on "tp" world_size = 8 : tensor<?x?xi8>, tensor<?x128xi8> -> tensor<?x128xbf16>
func.func @dynamic(%x1: tensor<?x?xi8>, %x2: tensor<?x128xi8>, %x3: tensor<?x128xbf16>, %s: tensor<1xbf16>) {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 x3(%x3 : tensor<?x128xbf16>) dequant_scale(%s : tensor<1xbf16>) on "tp" world_size = 8 : tensor<?x?xi8>, tensor<?x128xi8> -> tensor<?x128xbf16>
  func.return
}

// The largest m; an explicit default property prints as the default.
// CHECK-LABEL: func.func @largest_m
// CHECK: on "tp" world_size = 8 : tensor<2147483647x64xi8>
func.func @largest_m(%x1: tensor<2147483647x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) on "tp" world_size = 8 reduce_op = "sum" comm_turn = 0 stream_mode = 1 : tensor<2147483647x64xi8>, tensor<64x128xi8> -> tensor<2147483647x128xbf16>
  func.return
}

// A transposed vocabulary-sized projection: x2 is stored [n, k]; its last dimension (k) is at
// most 65535, its first (n = 100000) at most INT32_MAX, as CANN's tiling bounds them.
// CHECK-LABEL: func.func @vocabulary_transposed
// CHECK: transpose_x2 = true : tensor<16x4096xi8>, tensor<100000x4096xi8> -> tensor<16x100000xbf16>
func.func @vocabulary_transposed(%x1: tensor<16x4096xi8>, %x2: tensor<100000x4096xi8>, %s: tensor<100000xbf16>) {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<100000xbf16>) on "tp" world_size = 8 transpose_x2 = true : tensor<16x4096xi8>, tensor<100000x4096xi8> -> tensor<16x100000xbf16>
  func.return
}

// CHECK-LABEL: func.func @trans_quant_param
// CHECK: %p = mc2.trans_quant_param %s : tensor<128xf32> -> tensor<128xui64>
func.func @trans_quant_param(%s: tensor<128xf32>) -> tensor<128xui64> {
  %p = mc2.trans_quant_param %s : tensor<128xf32> -> tensor<128xui64>
  func.return %p : tensor<128xui64>
}
