// unfuse-mc2 gives mc2.all_gather_quant_matmul's chain back (fusing it again gives the op back);
// an f32 x2_scale for f16 output without x1_scale has no qmm form, and says so at the op.
// RUN: not qmmar-opt %s --split-input-file -p unfuse-mc2 2>&1 | filecheck %s
// RUN: not qmmar-opt %s --split-input-file -p unfuse-mc2,fuse-mc2 2>&1 | filecheck %s --check-prefix=AGAIN

// CHECK-LABEL: func.func @pertoken_column
// CHECK-NEXT: %[[G:.*]] = qmm.allgather %x on "tp" world_size = 2 : tensor<16x256xi8> -> tensor<32x256xi8>
// CHECK-NEXT: %[[V:.*]] = tensor.collapse_shape %pt {{\[}}[0 : i64, 1 : i64]] : tensor<16x1xf32> into tensor<16xf32>
// CHECK-NEXT: %[[T:.*]] = qmm.allgather %[[V]] on "tp" world_size = 2 : tensor<16xf32> -> tensor<32xf32>
// CHECK-NEXT: %[[ACC:.*]] = qmm.matmul %[[G]], %w transpose_x2 = true : (tensor<32x256xi8>, tensor<128x256xi8>) -> tensor<32x128xi32>
// CHECK-NEXT: %[[Y:.*]] = qmm.dequant %[[ACC]], %s pertoken(%[[T]]) : (tensor<32x128xi32>, tensor<1x128xf32>, tensor<32xf32>) -> tensor<32x128xf16>
// CHECK-NEXT: func.return %[[Y]], %[[G]]
// AGAIN-LABEL: func.func @pertoken_column
// AGAIN-NEXT: tensor.collapse_shape
// AGAIN-NEXT: %{{.*}}, %{{.*}} = mc2.all_gather_quant_matmul %x, %w x1_scale(%{{.*}} : tensor<16xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 2 transpose_x2 = true
func.func @pertoken_column(%x: tensor<16x256xi8>, %w: tensor<128x256xi8>, %s: tensor<1x128xf32>, %pt: tensor<16x1xf32>) -> (tensor<32x128xf16>, tensor<32x256xi8>) {
  %y, %g = mc2.all_gather_quant_matmul %x, %w x1_scale(%pt : tensor<16x1xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 2 transpose_x2 = true : tensor<16x256xi8>, tensor<128x256xi8> -> tensor<32x128xf16>, tensor<32x256xi8>
  func.return %y, %g : tensor<32x128xf16>, tensor<32x256xi8>
}

// -----

// CHECK: all-gather-unfuse.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op cannot be unfused: the kernel uses an f32 x2_scale for f16 output without x1_scale as it is
func.func @unpacked_f16(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xf32>) -> tensor<32x128xf16> {
  %y, %g = mc2.all_gather_quant_matmul %x, %w x2_scale(%s : tensor<128xf32>) on "tp" world_size = 2 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<32x128xf16>, tensor<32x256xi8>
  func.return %y : tensor<32x128xf16>
}
