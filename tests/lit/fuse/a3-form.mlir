// On Atlas A3 (no MatmulAllReduce), a matmul + all-reduce chain becomes the A3 form:
// mc2.quant_matmul_reduce_scatter (aclnnMatmulReduceScatterV2, "aiv"), this rank's [m / W, n]
// block of the sum, then qmm.allgather (HcclAllGather) of the blocks into [m, n]; a 3-D end gets
// its view back.  Unfusing gives the reduce-scatter's chain and the all-gather; lowering gives
// the two calls.  Chains the form cannot take are refused, each with its rule.
// RUN: qmmar-opt %s --split-input-file -p 'fuse-mc2{soc=a3 remarks=all}' 2>%t.err | filecheck %s --check-prefix=FUSED
// RUN: filecheck %s --check-prefix=REMARK < %t.err
// RUN: qmmar-opt %s --split-input-file -p 'fuse-mc2{soc=a3},unfuse-mc2' | filecheck %s --check-prefix=CHAIN
// RUN: qmmar-opt %s --split-input-file -p 'fuse-mc2{soc=a3},lower-mc2-to-aclnn,lower-qmm-to-aclnn' | filecheck %s --check-prefix=LOWERED
// The shipped example on A3, to C++ (tests/test_aclnn_cpp_a3.py compiles and runs it): layer 0's
// int8 communication stays as HCCL calls; layer 1 is the reduce-scatter call, then the all-gather
// of its [16, 256] block into the [128, 256] result.
// RUN: qmmar-opt %S/../../../examples/two_layers.mlir -p 'fuse-quant-matmul-all-reduce{soc=a3},lower-mc2-to-aclnn{soc=a3},lower-qmm-to-aclnn' -t aclnn-cpp 2>/dev/null | filecheck %s --check-prefix=CPP
// CPP: HcclAllGather({{.*}}, HCCL_DATA_TYPE_INT8, comm, stream)
// CPP: "aclnnMatmulReduceScatterV2", aclnnMatmulReduceScatterV2(
// CPP: HcclAllGather({{.*}}, result1, static_cast<uint64_t>(INT64_C(4096)), HCCL_DATA_TYPE_BFP16, comm, stream)

// A 3-D chain: x1 as rows, the bf16 scale widened to f32 (exact), the per-token scale as x1_scale.
// FUSED-LABEL: func.func @rows
// FUSED:      %[[X1:.*]] = tensor.collapse_shape %x1 {{\[}}[0 : i64, 1 : i64], [2 : i64]] : tensor<2x32x256xi8> into tensor<64x256xi8>
// FUSED-NEXT: %[[S:.*]] = arith.extf %s : tensor<128xbf16> to tensor<128xf32>
// FUSED-NEXT: %[[B:.*]] = mc2.quant_matmul_reduce_scatter %[[X1]], %x2 x1_scale(%t : tensor<64xf32>) x2_scale(%[[S]] : tensor<128xf32>) on "tp" world_size = 4 transpose_x2 = true : tensor<64x256xi8>, tensor<128x256xi8> -> tensor<16x128xbf16>
// FUSED-NEXT: %[[G:.*]] = qmm.allgather %[[B]] on "tp" world_size = 4 : tensor<16x128xbf16> -> tensor<64x128xbf16>
// FUSED-NEXT: %h = tensor.expand_shape %[[G]] {{\[}}[0 : i64, 1 : i64], [2 : i64]] output_shape [2, 32, 128] : tensor<64x128xbf16> into tensor<2x32x128xbf16>
// FUSED-NEXT: func.return %h
// REMARK: a3-form.mlir:[[# @LINE + 13]]:3: remark: fused into mc2.quant_matmul_reduce_scatter+qmm.allgather: qmm.matmul -> qmm.dequant -> qmm.all_reduce
// CHAIN-LABEL: func.func @rows
// CHAIN:      %[[S:.*]] = arith.extf %s
// CHAIN:      %[[ACC:.*]] = qmm.matmul %{{.*}}, %x2 transpose_x2 = true
// CHAIN-NEXT: %[[Y:.*]] = qmm.dequant %[[ACC]], %[[S]] pertoken(%t)
// CHAIN-NEXT: %[[R:.*]] = qmm.reduce_scatter %[[Y]] on "tp" world_size = 4 : tensor<64x128xbf16> -> tensor<16x128xbf16>
// CHAIN-NEXT: %[[G:.*]] = qmm.allgather %[[R]] on "tp" world_size = 4
// LOWERED-LABEL: func.func @rows
// LOWERED:      aclnn.cast_get_workspace_size
// LOWERED:      aclnn.matmul_reduce_scatter_v2_get_workspace_size
// LOWERED:      %[[G:.*]] = aclnn.alloc_tensor : tensor<64x128xbf16>
// LOWERED-NEXT: aclnn.hccl_all_gather %{{.*}} into %[[G]] on "tp" world_size = 4
func.func @rows(%x1: tensor<2x32x256xi8>, %x2: tensor<128x256xi8>, %s: tensor<128xbf16>, %t: tensor<64xf32>) -> tensor<2x32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 transpose_x2 = true : (tensor<2x32x256xi8>, tensor<128x256xi8>) -> tensor<2x32x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%t) : (tensor<2x32x128xi32>, tensor<128xbf16>, tensor<64xf32>) -> tensor<2x32x128xbf16>
  %h = qmm.all_reduce %y on "tp" world_size = 4 : tensor<2x32x128xbf16>
  func.return %h : tensor<2x32x128xbf16>
}

// -----

// A dynamic m, f16 output without per-token scales: the f32 scale packed as qmm.dequant packs it.
// FUSED-LABEL: func.func @dynamic_packed
// FUSED:      %[[P:.*]] = mc2.trans_quant_param %s : tensor<128xf32> -> tensor<128xui64>
// FUSED-NEXT: %[[B:.*]] = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%[[P]] : tensor<128xui64>) on "tp" world_size = 2 : tensor<?x256xi8>, tensor<256x128xi8> -> tensor<?x128xf16>
// FUSED-NEXT: %h = qmm.allgather %[[B]] on "tp" world_size = 2 : tensor<?x128xf16> -> tensor<?x128xf16>
func.func @dynamic_packed(%x1: tensor<?x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) -> tensor<?x128xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<?x256xi8>, tensor<256x128xi8>) -> tensor<?x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<?x128xi32>, tensor<128xf32>) -> tensor<?x128xf16>
  %h = qmm.all_reduce %y on "tp" world_size = 2 : tensor<?x128xf16>
  func.return %h : tensor<?x128xf16>
}

// -----

// REMARK: a3-form.mlir:[[# @LINE + 6]]:3: remark: not fused: [CHAIN-A3-X3] on Atlas A3, the chain cannot add x3: aclnnMatmulReduceScatterV2 has no x3, and the all-reduce sums every rank's x3 (world_size of them)
// FUSED-LABEL: func.func @x3
// FUSED-NOT: mc2.
func.func @x3(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>, %r: tensor<64x128xbf16>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %z = qmm.add %y, %r : tensor<64x128xbf16>
  %h = qmm.all_reduce %z on "tp" world_size = 2 : tensor<64x128xbf16>
  func.return %h : tensor<64x128xbf16>
}

// -----

// REMARK: a3-form.mlir:[[# @LINE + 4]]:3: remark: not fused: [CHAIN-RS-INT32-BIAS] the matmul's int32 bias is added before the dequant, and aclnnMatmulReduceScatterV2 adds an f32 bias after it: other numbers
// FUSED-LABEL: func.func @int32_bias
// FUSED-NOT: mc2.
func.func @int32_bias(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %b: tensor<128xi32>, %s: tensor<128xf32>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<64x256xi8>, tensor<256x128xi8>, tensor<128xi32>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %h = qmm.all_reduce %y on "tp" world_size = 2 : tensor<64x128xbf16>
  func.return %h : tensor<64x128xbf16>
}

// -----

// REMARK: a3-form.mlir:[[# @LINE + 7]]:3: remark: not fused: [CHAIN-A3-INT8-COMM] on Atlas A3, int8 communication (comm_quant_scale_1/2) has no fused form: there is no MatmulAllReduce, and aclnnMatmulReduceScatterV2 and aclnnAllGatherMatmulV2 take no communication-quantisation operand; the chain runs unfused, as separate aclnn and HCCL calls
// FUSED-LABEL: func.func @int8_comm
// FUSED-NOT: mc2.
func.func @int8_comm(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xbf16>, %s1: tensor<128xbf16>, %s2: tensor<128xbf16>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xbf16>
  %q = qmm.quant %y, %s1 : (tensor<64x128xbf16>, tensor<128xbf16>) -> tensor<64x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<64x128xi8> -> tensor<2x32x128xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<128xbf16>) s2(%s2 : tensor<128xbf16>) : tensor<2x32x128xi8> -> tensor<32x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<32x128xi8> -> tensor<64x128xi8>
  %h = qmm.dequant %g, %s2 : (tensor<64x128xi8>, tensor<128xbf16>) -> tensor<64x128xbf16>
  func.return %h : tensor<64x128xbf16>
}

// -----

// REMARK: a3-form.mlir:[[# @LINE + 4]]:3: remark: not fused: [MRS-K-RANGE] on Atlas A3, k must be in [256, 65535)
// FUSED-LABEL: func.func @small_k
// FUSED-NOT: mc2.
func.func @small_k(%x1: tensor<64x128xi8>, %x2: tensor<128x128xi8>, %s: tensor<128xf32>) -> tensor<64x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x128xi8>, tensor<128x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %h = qmm.all_reduce %y on "tp" world_size = 2 : tensor<64x128xbf16>
  func.return %h : tensor<64x128xbf16>
}
