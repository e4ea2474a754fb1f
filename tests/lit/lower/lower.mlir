// lower-mc2-to-aclnn: the two-phase call sequence for each mc2 op, in the order the
// documentation's example makes the calls.
// RUN: qmmar-opt %s --split-input-file -p lower-mc2-to-aclnn | filecheck %s
// RUN: qmmar-opt %s --split-input-file -p 'lower-mc2-to-aclnn{weight-format=nz}' | filecheck %s --check-prefix=NZ

// CHECK-LABEL: func.func @bf16
// CHECK-NEXT:    %[[G:.*]] = aclnn.hccl_get_comm_name "tp" : !aclnn.comm_name
// CHECK-NEXT:    %[[X1:.*]] = aclnn.create_tensor %x1 : tensor<32x64xi8>
// CHECK-NEXT:    %[[X2:.*]] = aclnn.create_tensor %x2 transpose = true : tensor<128x64xi8>
// CHECK-NEXT:    %[[B:.*]] = aclnn.create_tensor %b : tensor<128xi32>
// CHECK-NEXT:    %[[S:.*]] = aclnn.create_tensor %s : tensor<128xbf16>
// CHECK-NEXT:    %[[C1:.*]] = aclnn.create_tensor %c1 : tensor<128xbf16>
// CHECK-NEXT:    %[[C2:.*]] = aclnn.create_tensor %c2 : tensor<128xbf16>
// CHECK-NEXT:    %o = aclnn.alloc_tensor : tensor<32x128xbf16>
// CHECK-NEXT:    %[[O:.*]] = aclnn.create_tensor %o : tensor<32x128xbf16>
// CHECK-NEXT:    %[[WS:.*]], %[[EX:.*]] = aclnn.quant_matmul_all_reduce_v3_get_workspace_size %[[X1]], %[[X2]] bias(%[[B]]) dequant_scale(%[[S]]) comm_quant_scale_1(%[[C1]]) comm_quant_scale_2(%[[C2]]) group(%[[G]]) out(%[[O]]) on "tp" world_size = 8 reduce_op = "sum" comm_turn = 0 stream_mode = 1
// CHECK-NEXT:    %[[BUF:.*]] = aclnn.malloc_workspace %[[WS]]
// CHECK-NEXT:    aclnn.launch "aclnnQuantMatmulAllReduceV3" %[[BUF]], %[[WS]], %[[EX]]
// CHECK-NEXT:    aclnn.synchronize_stream
// CHECK-NEXT:    aclnn.free %[[BUF]]
// CHECK-NEXT:    aclnn.destroy_tensor %[[O]]
// CHECK:         aclnn.destroy_tensor %[[X1]]
// CHECK-NEXT:    func.return %o
// NZ-LABEL: func.func @bf16
// NZ:         %[[A:.*]] = aclnn.create_int_array %x2 transpose : tensor<128x64xi8>
// NZ-NEXT:    %[[SZ:.*]] = aclnn.calculate_matmul_weight_size_v2 %[[A]]
// NZ-NEXT:    aclnn.destroy_int_array %[[A]]
// NZ-NEXT:    %[[NZ:.*]] = aclnn.alloc_tensor bytes(%[[SZ]]) : tensor<128x64xi8>
// NZ-NEXT:    aclnn.memcpy %[[NZ]], %x2 : tensor<128x64xi8>, tensor<128x64xi8>
// NZ-NEXT:    %[[W:.*]] = aclnn.create_tensor %[[NZ]] transpose = true : tensor<128x64xi8>
// NZ-NEXT:    %[[WS:.*]], %[[EX:.*]] = aclnn.trans_matmul_weight_get_workspace_size %[[W]]
// NZ-NEXT:    %[[BUF:.*]] = aclnn.malloc_workspace %[[WS]]
// NZ-NEXT:    aclnn.launch "aclnnTransMatmulWeight" %[[BUF]], %[[WS]], %[[EX]]
// NZ-NEXT:    aclnn.synchronize_stream
// NZ-NEXT:    aclnn.free %[[BUF]]
// NZ:         aclnn.quant_matmul_all_reduce_v3_get_workspace_size %{{.*}}, %[[W]] bias
func.func @bf16(%x1: tensor<32x64xi8>, %x2: tensor<128x64xi8>, %b: tensor<128xi32>, %s: tensor<128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>) -> tensor<32x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 8 transpose_x2 = true : tensor<32x64xi8>, tensor<128x64xi8> -> tensor<32x128xbf16>
  func.return %o : tensor<32x128xbf16>
}

// -----

// A scale that was not a constant: TransQuantParamV2 on the device, before the MC2 call.
// CHECK-LABEL: func.func @f16_scale
// CHECK:         %[[P:.*]] = aclnn.alloc_tensor : tensor<128xui64>
// CHECK-NEXT:    %[[T:.*]] = aclnn.create_tensor %s : tensor<128xf32>
// CHECK-NEXT:    %[[TP:.*]] = aclnn.create_tensor %[[P]] : tensor<128xui64>
// CHECK-NEXT:    %[[WS:.*]], %[[EX:.*]] = aclnn.trans_quant_param_v2_get_workspace_size %[[T]], %[[TP]]
// CHECK-NEXT:    %[[BUF:.*]] = aclnn.malloc_workspace %[[WS]]
// CHECK-NEXT:    aclnn.launch "aclnnTransQuantParamV2" %[[BUF]], %[[WS]], %[[EX]]
// CHECK:         aclnn.create_tensor %[[P]] : tensor<128xui64>
// CHECK:         aclnn.quant_matmul_all_reduce_v3_get_workspace_size
func.func @f16_scale(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xf32>) -> tensor<32x128xf16> {
  %p = mc2.trans_quant_param %s : tensor<128xf32> -> tensor<128xui64>
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%p : tensor<128xui64>) on "tp" world_size = 2 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xf16>
  func.return %o : tensor<32x128xf16>
}
