// mc2.all_gather_quant_matmul lowers to aclnnAllGatherMatmulV2's two-phase call: x1, x2 (a
// transposed view), the scales, the group's name, output and gather_out, commMode "aiv"; both
// results are the buffers the call writes.
// RUN: qmmar-opt %s -p lower-mc2-to-aclnn | filecheck %s

// CHECK: %[[NAME:.*]] = aclnn.hccl_get_comm_name "tp"
// CHECK: %[[W:.*]] = aclnn.create_tensor %w transpose = true : tensor<128x256xi8>
// CHECK: %y = aclnn.alloc_tensor : tensor<64x128xbf16>
// CHECK-NEXT: %g = aclnn.alloc_tensor : tensor<64x256xi8>
// CHECK: %[[SIZE:.*]], %[[EXEC:.*]] = aclnn.all_gather_matmul_v2_get_workspace_size %{{.*}}, %[[W]] x1_scale(%{{.*}}) x2_scale(%{{.*}}) group(%[[NAME]]) out(%{{.*}}, %{{.*}}) on "tp" world_size = 4 comm_mode = "aiv" gather_index = 0 comm_turn = 0 stream_mode = 1 group_size = 0 block_size = 0
// CHECK: aclnn.launch "aclnnAllGatherMatmulV2" %{{.*}}, %[[SIZE]], %[[EXEC]]
// CHECK: func.return %y, %g
func.func @main(%x: tensor<16x256xi8>, %w: tensor<128x256xi8>, %s: tensor<128xf32>, %pt: tensor<16xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>) {
  %y, %g = mc2.all_gather_quant_matmul %x, %w x1_scale(%pt : tensor<16xf32>) x2_scale(%s : tensor<128xf32>) on "tp" world_size = 4 transpose_x2 = true : tensor<16x256xi8>, tensor<128x256xi8> -> tensor<64x128xbf16>, tensor<64x256xi8>
  func.return %y, %g : tensor<64x128xbf16>, tensor<64x256xi8>
}
