// Every variant of mc2.quant_matmul_reduce_scatter that its rule table accepts verifies and
// round-trips in the custom form and in the generic form, which real MLIR reads and prints back.
// RUN: qmmar-opt %s | qmmar-opt | filecheck %s
// RUN: qmmar-opt %s --print-op-generic | qmmar-opt --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: %if mlir-opt %{ qmmar-opt %s --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic > %t.mlir %}
// RUN: %if mlir-opt %{ qmmar-opt %t.mlir --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic | diff %t.mlir - %}

builtin.module attributes {qmmar.target = {soc = "a3", cann = "9.0"}} {
  // bf16 output: f32 bias, per-token [m, 1] and per-channel [1, n] scales, as the documentation writes them.
  // CHECK-LABEL: func.func @bf16_full
  // CHECK: mc2.quant_matmul_reduce_scatter %x1, %x2 bias(%b : tensor<128xf32>) x1_scale(%t : tensor<64x1xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  // GENERIC: "mc2.quant_matmul_reduce_scatter"(%x1, %x2, %b, %t, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, group_size = 0 : i64, block_size = 0 : i64, comm_mode = "aiv", transpose_x2 = false}>
  func.func @bf16_full(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %b: tensor<128xf32>, %t: tensor<64x1xf32>, %s: tensor<1x128xf32>) -> tensor<16x128xbf16> {
    %o = mc2.quant_matmul_reduce_scatter %x1, %x2 bias(%b : tensor<128xf32>) x1_scale(%t : tensor<64x1xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
    func.return %o : tensor<16x128xbf16>
  }

  // f16 output: a packed int64 (or uint64) scale without per-token scale; f32 with it; 1-D
  // scales as the documentation's example passes them; every property spelt out.
  // CHECK-LABEL: func.func @f16
  // CHECK: x2_scale(%p : tensor<128xi64>) on "tp" world_size = 2 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<32x128xf16>
  // CHECK: x2_scale(%u : tensor<128xui64>) on "tp" world_size = 8 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<8x128xf16>
  // CHECK: x1_scale(%t : tensor<64xf32>) x2_scale(%s : tensor<128xf32>) on "tp" world_size = 8 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<8x128xf16>
  func.func @f16(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %p: tensor<128xi64>, %u: tensor<128xui64>, %t: tensor<64xf32>, %s: tensor<128xf32>) {
    %a = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%p : tensor<128xi64>) on "tp" world_size = 2 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<32x128xf16>
    %b = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%u : tensor<128xui64>) on "tp" world_size = 8 reduce_op = "sum" comm_turn = 0 stream_mode = 1 group_size = 0 block_size = 0 comm_mode = "aiv" transpose_x2 = false : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<8x128xf16>
    %c = mc2.quant_matmul_reduce_scatter %x1, %x2 x1_scale(%t : tensor<64xf32>) x2_scale(%s : tensor<128xf32>) on "tp" world_size = 8 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<8x128xf16>
    func.return
  }

  // x2 stored [n, k] (transposed), the largest k, a dynamic m (checked at run time).
  // CHECK-LABEL: func.func @transposed_dynamic
  // CHECK: x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 transpose_x2 = true : tensor<64x65534xi8>, tensor<128x65534xi8> -> tensor<16x128xbf16>
  // CHECK: x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<?x256xi8>, tensor<256x128xi8> -> tensor<?x128xbf16>
  func.func @transposed_dynamic(%x1: tensor<64x65534xi8>, %w: tensor<128x65534xi8>, %xd: tensor<?x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
    %a = mc2.quant_matmul_reduce_scatter %x1, %w x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 transpose_x2 = true : tensor<64x65534xi8>, tensor<128x65534xi8> -> tensor<16x128xbf16>
    %b = mc2.quant_matmul_reduce_scatter %xd, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<?x256xi8>, tensor<256x128xi8> -> tensor<?x128xbf16>
    func.return
  }
}
