// lower-qmm-to-aclnn: each qmm op, and the reshapes and padding around it, becomes its calls,
// before it and at its location; its result becomes the buffer they write.
// RUN: qmmar-opt %s --split-input-file -p lower-qmm-to-aclnn | filecheck %s
// RUN: qmmar-opt %s --split-input-file -p lower-qmm-to-aclnn --print-op-generic | %mlir-opt --allow-unregistered-dialect --split-input-file > /dev/null
// RUN: not qmmar-opt %S/inputs/not-lowered.mlir -p lower-qmm-to-aclnn 2>&1 | filecheck %s --check-prefix=ERR

// A 3-D matmul + dequant: one aclnnQuantMatmulV4 over 2-D row views; [1, n] scale as [n].
// CHECK-LABEL: func.func @v4
// CHECK:      %[[S:.*]] = aclnn.view %s : tensor<1x32xf32> -> tensor<32xf32>
// CHECK-NEXT: %y = aclnn.alloc_tensor : tensor<2x8x32xbf16>
// CHECK-NEXT: %[[X1:.*]] = aclnn.view %x1 : tensor<2x8x64xi8> -> tensor<16x64xi8>
// CHECK:      %[[OUT:.*]] = aclnn.view %y : tensor<2x8x32xbf16> -> tensor<16x32xbf16>
// CHECK:      aclnn.quant_matmul_v4_get_workspace_size %{{.*}}, %{{.*}} scale(%{{.*}}) pertoken_scale(%{{.*}}) bias(%{{.*}}) out(%{{.*}}) transpose_x2 = true
// CHECK:      %[[ALPHA:.*]] = aclnn.create_scalar 1.000000e+00 : f32
// CHECK:      aclnn.add_get_workspace_size %{{.*}}, %{{.*}} alpha(%[[ALPHA]]) out(%{{.*}})
// CHECK:      aclnn.destroy_scalar %[[ALPHA]]
// CHECK:      %h = aclnn.alloc_tensor : tensor<2x8x32xbf16>
// CHECK-NEXT: aclnn.hccl_all_reduce %z into %h on "tp" world_size = 2
// CHECK-NEXT: func.return %h
func.func @v4(%x1: tensor<2x8x64xi8>, %x2: tensor<32x64xi8>, %b: tensor<32xi32>, %s: tensor<1x32xf32>, %pt: tensor<16xf32>, %r: tensor<2x8x32xbf16>) -> tensor<2x8x32xbf16> {
  %acc = qmm.matmul %x1, %x2 bias(%b) transpose_x2 = true : (tensor<2x8x64xi8>, tensor<32x64xi8>, tensor<32xi32>) -> tensor<2x8x32xi32>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<2x8x32xi32>, tensor<1x32xf32>, tensor<16xf32>) -> tensor<2x8x32xbf16>
  %z = qmm.add %y, %r : tensor<2x8x32xbf16>
  %h = qmm.all_reduce %z on "tp" world_size = 2 : tensor<2x8x32xbf16>
  func.return %h : tensor<2x8x32xbf16>
}

// -----

// f16 output from an f32 scale without pertoken: packed by TransQuantParamV2 first.
// CHECK-LABEL: func.func @packed
// CHECK:      %[[P:.*]] = aclnn.alloc_tensor : tensor<32xui64>
// CHECK:      aclnn.trans_quant_param_v2_get_workspace_size
// CHECK:      %[[PH:.*]] = aclnn.create_tensor %[[P]] : tensor<32xui64>
// CHECK:      aclnn.quant_matmul_v4_get_workspace_size %{{.*}}, %{{.*}} scale(%[[PH]]) out(%{{.*}}) transpose_x2 = false
func.func @packed(%x1: tensor<4x64xi8>, %x2: tensor<64x32xi8>, %s: tensor<32xf32>) -> tensor<4x32xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<4x64xi8>, tensor<64x32xi8>) -> tensor<4x32xi32>
  %y = qmm.dequant %acc, %s : (tensor<4x32xi32>, tensor<32xf32>) -> tensor<4x32xf16>
  func.return %y : tensor<4x32xf16>
}

// -----

// int8 communication: quant (Cast s1, Div to f16, a unit-scale Quantize), all-to-all,
// requantisation (ReduceSum to f32, s1/s2, Mul to f16, Quantize), all-gather, dequant (Mul).
// CHECK-LABEL: func.func @int8_comm
// CHECK:      aclnn.cast_get_workspace_size
// CHECK:      %[[H:.*]] = aclnn.alloc_tensor : tensor<16x32xf16>
// CHECK:      aclnn.div_get_workspace_size
// CHECK:      %[[ONE:.*]] = aclnn.alloc_tensor : tensor<1xf16>
// CHECK:      aclnn.inplace_one_get_workspace_size
// CHECK:      %q = aclnn.alloc_tensor : tensor<16x32xi8>
// CHECK:      aclnn.quantize_get_workspace_size
// CHECK:      %a = aclnn.alloc_tensor : tensor<4x4x32xi8>
// CHECK-NEXT: aclnn.hccl_all_to_all %q into %a on "tp" world_size = 4 : tensor<16x32xi8>, tensor<4x4x32xi8>
// CHECK:      aclnn.create_int_array {values = array<i64: 0>}
// CHECK:      aclnn.reduce_sum_get_workspace_size
// CHECK:      aclnn.div_get_workspace_size
// CHECK:      aclnn.mul_get_workspace_size
// CHECK:      aclnn.quantize_get_workspace_size
// CHECK:      %g = aclnn.alloc_tensor : tensor<16x32xi8>
// CHECK-NEXT: aclnn.hccl_all_gather %rs into %g on "tp" world_size = 4
// CHECK:      %out = aclnn.alloc_tensor : tensor<16x32xbf16>
// CHECK:      aclnn.mul_get_workspace_size
// CHECK:      func.return %out
func.func @int8_comm(%z: tensor<16x32xbf16>, %s1: tensor<32xbf16>, %s2: tensor<32xbf16>) -> tensor<16x32xbf16> {
  %q = qmm.quant %z, %s1 : (tensor<16x32xbf16>, tensor<32xbf16>) -> tensor<16x32xi8>
  %a = qmm.alltoall %q on "tp" world_size = 4 : tensor<16x32xi8> -> tensor<4x4x32xi8>
  %rs = qmm.reducesum %a s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<4x4x32xi8> -> tensor<4x32xi8>
  %g = qmm.allgather %rs on "tp" world_size = 4 : tensor<4x32xi8> -> tensor<16x32xi8>
  %out = qmm.dequant %g, %s2 : (tensor<16x32xi8>, tensor<32xbf16>) -> tensor<16x32xbf16>
  func.return %out : tensor<16x32xbf16>
}

// -----

// unfuse-mc2's padding for a dynamic m: a buffer of the padded rows, a copy into its leading
// rows, collectives on `?` rows, and a prefix view of the gathered rows.
// CHECK-LABEL: func.func @pad
// CHECK:      %padded = arith.muli %n, %w : index
// CHECK-NEXT: %e = aclnn.alloc_tensor(%padded) : tensor<?x32xi8>
// CHECK-NEXT: aclnn.memset_zero %e : tensor<?x32xi8>
// CHECK-NEXT: aclnn.memcpy %e, %q : tensor<?x32xi8>, tensor<?x32xi8>
// CHECK:      %[[ROWS:.*]] = arith.divui
// CHECK-NEXT: %a = aclnn.alloc_tensor(%[[ROWS]]) : tensor<4x?x32xi8>
// CHECK-NEXT: aclnn.hccl_all_to_all %e into %a
// CHECK:      aclnn.hccl_all_gather %rs into %g
// CHECK-NEXT: %x = aclnn.view %g(%m) prefix : tensor<?x32xi8> -> tensor<?x32xi8>
func.func @pad(%q: tensor<?x32xi8>, %s1: tensor<32xbf16>, %s2: tensor<32xbf16>) -> tensor<?x32xi8> {
  %c0 = arith.constant 0 : index
  %m = tensor.dim %q, %c0 : tensor<?x32xi8>
  %w = arith.constant 4 : index
  %n = arith.ceildivui %m, %w : index
  %padded = arith.muli %n, %w : index
  %e = tensor.empty(%padded) : tensor<?x32xi8>
  %i = tensor.insert_slice %q into %e[0, 0] [%m, 32] [1, 1] : tensor<?x32xi8> into tensor<?x32xi8>
  %a = qmm.alltoall %i on "tp" world_size = 4 : tensor<?x32xi8> -> tensor<4x?x32xi8>
  %rs = qmm.reducesum %a s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<4x?x32xi8> -> tensor<?x32xi8>
  %g = qmm.allgather %rs on "tp" world_size = 4 : tensor<?x32xi8> -> tensor<?x32xi8>
  %x = tensor.extract_slice %g[0, 0] [%m, 32] [1, 1] : tensor<?x32xi8> to tensor<?x32xi8>
  func.return %x : tensor<?x32xi8>
}

// ERR: not-lowered.mlir:4:3: {{(error: )?}}'qmm.matmul' op result must have one user, a qmm.dequant: aclnnQuantMatmulV4 computes both

// -----

// Float casts of a tensor (fusion widens a bf16 scale to the f32 a kernel takes): one aclnnCast
// each into a new buffer of the result's type; a dynamic size comes from the operand.
// CHECK-LABEL: func.func @float_casts
// CHECK:      %[[W:.*]] = aclnn.alloc_tensor : tensor<128xf32>
// CHECK-NEXT: %[[S:.*]] = aclnn.create_tensor %s : tensor<128xbf16>
// CHECK-NEXT: %[[WH:.*]] = aclnn.create_tensor %[[W]] : tensor<128xf32>
// CHECK-NEXT: %{{.*}}, %{{.*}} = aclnn.cast_get_workspace_size %[[S]] out(%[[WH]])
// CHECK:      aclnn.launch "aclnnCast"
// CHECK:      %[[N:.*]] = tensor.dim %d, %{{.*}} : tensor<?xf32>
// CHECK-NEXT: %[[T:.*]] = aclnn.alloc_tensor(%[[N]]) : tensor<?xf16>
// CHECK:      aclnn.cast_get_workspace_size %{{.*}} out(%{{.*}})
// CHECK:      aclnn.launch "aclnnCast"
// CHECK:      func.return %[[W]], %[[T]]
func.func @float_casts(%s: tensor<128xbf16>, %d: tensor<?xf32>) -> (tensor<128xf32>, tensor<?xf16>) {
  %w = arith.extf %s : tensor<128xbf16> to tensor<128xf32>
  %t = arith.truncf %d : tensor<?xf32> to tensor<?xf16>
  func.return %w, %t : tensor<128xf32>, tensor<?xf16>
}
