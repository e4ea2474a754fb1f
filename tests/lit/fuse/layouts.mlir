// The fused op computes on [m, n] rows when x1, x3 and the chain's end do not share one layout:
// the all-reduce is element-wise, so x1 and x3 are viewed as rows before it and its result
// as the end's layout after it.  A flattening W8A8 linear (a Hugging Face module boundary:
// the matmul on [b*s, k] rows, the result given back as [b, s, n] before the all-reduce)
// fuses so, as does an x3 added in another layout than the chain ends in.
// RUN: qmmar-opt %s --split-input-file -p fuse-quant-matmul-all-reduce 2>&1 | filecheck %s
// RUN: qmmar-opt %s --split-input-file -p fuse-quant-matmul-all-reduce,unfuse-mc2,fuse-mc2 2>&1 | filecheck %s --check-prefix=AGAIN

// CHECK-LABEL: func.func @module_boundary
// CHECK-NEXT:    %0 = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) on "tp" world_size = 2 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xbf16>
// CHECK-NEXT:    %r = tensor.expand_shape %0 {{\[}}[0 : i64, 1 : i64], [2 : i64]] output_shape [2, 16, 128] : tensor<32x128xbf16> into tensor<2x16x128xbf16>
// CHECK-NEXT:    func.return %r
// AGAIN-LABEL: func.func @module_boundary
// AGAIN-NEXT:    mc2.quant_matmul_all_reduce
// AGAIN-NEXT:    tensor.expand_shape
// AGAIN-NEXT:    func.return
func.func @module_boundary(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<2x16x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %y3 = tensor.expand_shape %y [[0, 1], [2]] output_shape [2, 16, 128] : tensor<32x128xbf16> into tensor<2x16x128xbf16>
  %r = qmm.all_reduce %y3 on "tp" world_size = 2 : tensor<2x16x128xbf16>
  func.return %r : tensor<2x16x128xbf16>
}

// -----

// The same with a dynamic batch: the end's sizes are the chain's own expand's.
// CHECK-LABEL: func.func @dynamic_boundary
// CHECK:         %[[FUSED:.*]] = mc2.quant_matmul_all_reduce %x1, %x2 {{.*}} -> tensor<?x128xbf16>
// CHECK-NEXT:    %r = tensor.expand_shape %[[FUSED]] {{\[}}[0 : i64, 1 : i64], [2 : i64]] output_shape [%b, 16, 128] : tensor<?x128xbf16> into tensor<?x16x128xbf16>
func.func @dynamic_boundary(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %b: index) -> tensor<?x16x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<?x64xi8>, tensor<64x128xi8>) -> tensor<?x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<?x128xi32>, tensor<128xbf16>) -> tensor<?x128xbf16>
  %y3 = tensor.expand_shape %y [[0, 1], [2]] output_shape [%b, 16, 128] : tensor<?x128xbf16> into tensor<?x16x128xbf16>
  %r = qmm.all_reduce %y3 on "tp" world_size = 2 : tensor<?x16x128xbf16>
  func.return %r : tensor<?x16x128xbf16>
}

// -----

// x3 added in 3-D while the chain ends in 2-D: x1 and x3 as rows.
// CHECK-LABEL: func.func @x3_layout
// CHECK-NEXT:    %[[X1:.*]] = tensor.collapse_shape %x1 {{.*}} : tensor<2x16x64xi8> into tensor<32x64xi8>
// CHECK-NEXT:    %[[X3:.*]] = tensor.collapse_shape %x3 {{.*}} : tensor<2x16x128xbf16> into tensor<32x128xbf16>
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %[[X1]], %x2 x3(%[[X3]] : tensor<32x128xbf16>) {{.*}} -> tensor<32x128xbf16>
func.func @x3_layout(%x1: tensor<2x16x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %x3: tensor<2x16x128xbf16>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<2x16x64xi8>, tensor<64x128xi8>) -> tensor<2x16x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<2x16x128xi32>, tensor<128xbf16>) -> tensor<2x16x128xbf16>
  %z = qmm.add %y, %x3 : tensor<2x16x128xbf16>
  %z2 = tensor.collapse_shape %z [[0, 1], [2]] : tensor<2x16x128xbf16> into tensor<32x128xbf16>
  %r = qmm.all_reduce %z2 on "tp" world_size = 2 : tensor<32x128xbf16>
  func.return %r : tensor<32x128xbf16>
}

// -----

// A 4-D end has no row view the fused op can give back.
// CHECK: layouts.mlir:[[# @LINE + 5]]:3: remark: not fused: [CHAIN-LAYOUT] x1, x3 and the chain's end must each be 2-D [m, n] or 3-D [b, s, n] rows
func.func @four_d(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<2x4x4x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %y4 = tensor.expand_shape %y [[0, 1, 2], [3]] output_shape [2, 4, 4, 128] : tensor<32x128xbf16> into tensor<2x4x4x128xbf16>
  %r = qmm.all_reduce %y4 on "tp" world_size = 2 : tensor<2x4x4x128xbf16>
  func.return %r : tensor<2x4x4x128xbf16>
}
