// Every variant mc2.all_gather_quant_matmul accepts verifies and round-trips in the custom form,
// on Atlas A2 (the default target) and on Atlas A3.
// RUN: qmmar-opt %s --split-input-file | qmmar-opt --split-input-file | filecheck %s

// bf16 output, f32 x2_scale [n], this rank's per-token scale [m].
// CHECK-LABEL: func.func @bf16_pertoken
// CHECK: %o, %g = mc2.all_gather_quant_matmul %x1, %x2 x1_scale(%pt : tensor<16xf32>) x2_scale(%s : tensor<128xf32>) on "tp" world_size = 4 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<64x128xbf16>, tensor<64x256xi8>
func.func @bf16_pertoken(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>, %pt: tensor<16xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>) {
  %o, %g = mc2.all_gather_quant_matmul %x1, %x2 x1_scale(%pt : tensor<16xf32>) x2_scale(%s : tensor<128xf32>) on "tp" world_size = 4 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<64x128xbf16>, tensor<64x256xi8>
  func.return %o, %g : tensor<64x128xbf16>, tensor<64x256xi8>
}

// f16 output: a packed scale [1, n] without a per-token scale; an f32 one [1, n] with the
// documentation's [m, 1] per-token scale; x2 transposed; the smallest and largest k.
// CHECK-LABEL: func.func @f16
// CHECK: x2_scale(%p : tensor<1x128xui64>) on "tp" world_size = 2 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<32x128xf16>, tensor<32x256xi8>
// CHECK: x1_scale(%pt : tensor<16x1xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 8 transpose_x2 = true : tensor<16x65534xi8>, tensor<128x65534xi8> -> tensor<128x128xf16>, tensor<128x65534xi8>
func.func @f16(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %p: tensor<1x128xui64>, %wide: tensor<16x65534xi8>, %x2t: tensor<128x65534xi8>, %s: tensor<1x128xf32>, %pt: tensor<16x1xf32>) {
  %o, %g = mc2.all_gather_quant_matmul %x1, %x2 x2_scale(%p : tensor<1x128xui64>) on "tp" world_size = 2 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<32x128xf16>, tensor<32x256xi8>
  %o2, %g2 = mc2.all_gather_quant_matmul %wide, %x2t x1_scale(%pt : tensor<16x1xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 8 transpose_x2 = true : tensor<16x65534xi8>, tensor<128x65534xi8> -> tensor<128x128xf16>, tensor<128x65534xi8>
  func.return
}

// A dynamic m: the row rules are the run time's (the interpreter's and the C++ guards).
// CHECK-LABEL: func.func @dynamic_m
// CHECK: on "tp" world_size = 8 : tensor<?x256xi8>, tensor<256x128xi8> -> tensor<?x128xbf16>, tensor<?x256xi8>
func.func @dynamic_m(%x1: tensor<?x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = mc2.all_gather_quant_matmul %x1, %x2 x2_scale(%s : tensor<128xf32>) on "tp" world_size = 8 : tensor<?x256xi8>, tensor<256x128xi8> -> tensor<?x128xbf16>, tensor<?x256xi8>
  func.return
}

// -----

// Atlas A3 has the operator too (one table for both SoCs).
// CHECK: qmmar.target = {soc = "a3", cann = "9.0"}
// CHECK: mc2.all_gather_quant_matmul %x1, %x2 x2_scale(%s : tensor<128xf32>) on "tp" world_size = 8
builtin.module attributes {qmmar.target = {soc = "a3", cann = "9.0"}} {
  func.func @on_a3(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
    %o, %g = mc2.all_gather_quant_matmul %x1, %x2 x2_scale(%s : tensor<128xf32>) on "tp" world_size = 8 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<128x128xbf16>, tensor<128x256xi8>
    func.return
  }
}
