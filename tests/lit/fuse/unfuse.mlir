// unfuse-mc2 writes the primitive chain back; rows that world_size does not divide (or may not:
// a dynamic m) are padded for the all-to-all and sliced back; unfusing then fusing gives the
// mc2 op back, padding or not.
// RUN: qmmar-opt %s -p unfuse-mc2 | filecheck %s
// RUN: qmmar-opt %s -p unfuse-mc2,fuse-quant-matmul-all-reduce | filecheck %s --check-prefix=ROUNDTRIP
// RUN: qmmar-opt %s -p unfuse-mc2 --print-op-generic | %mlir-opt --allow-unregistered-dialect | filecheck %s --check-prefix=MLIR
// REQUIRES: mlir-opt

// CHECK-LABEL: func.func @plain
// CHECK-NEXT:    %0 = qmm.matmul %x1, %x2 bias(%b) transpose_x2 = true : (tensor<8x64xi8>, tensor<128x64xi8>, tensor<128xi32>) -> tensor<8x128xi32>
// CHECK-NEXT:    %1 = qmm.dequant %0, %s pertoken(%pt) : (tensor<8x128xi32>, tensor<128xf32>, tensor<8xf32>) -> tensor<8x128xf16>
// CHECK-NEXT:    %2 = qmm.add %1, %x3 : tensor<8x128xf16>
// CHECK-NEXT:    %o = qmm.all_reduce %2 on "tp" world_size = 2 : tensor<8x128xf16>
// ROUNDTRIP-LABEL: func.func @plain
// ROUNDTRIP-NEXT:  %o = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<8x128xf16>) dequant_scale(%s : tensor<128xf32>) pertoken_scale(%pt : tensor<8xf32>) on "tp" world_size = 2 transpose_x2 = true
// ROUNDTRIP-NEXT:  func.return %o
func.func @plain(%x1: tensor<8x64xi8>, %x2: tensor<128x64xi8>, %b: tensor<128xi32>, %s: tensor<128xf32>, %pt: tensor<8xf32>, %x3: tensor<8x128xf16>) -> tensor<8x128xf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<8x128xf16>) dequant_scale(%s : tensor<128xf32>) pertoken_scale(%pt : tensor<8xf32>) on "tp" world_size = 2 transpose_x2 = true : tensor<8x64xi8>, tensor<128x64xi8> -> tensor<8x128xf16>
  func.return %o : tensor<8x128xf16>
}

// A 3-D value whose leading dimension world_size does not divide: viewed as rows, padded.
// CHECK-LABEL: func.func @padded
// CHECK:         %[[Q:.*]] = qmm.quant %{{.*}}, %c1 : (tensor<10x128xbf16>, tensor<128xbf16>) -> tensor<10x128xi8>
// CHECK-NEXT:    %[[E:.*]] = tensor.empty() : tensor<12x128xi8>
// CHECK-NEXT:    %[[P:.*]] = tensor.insert_slice %[[Q]] into %[[E]][0, 0] [10, 128] [1, 1]
// CHECK-NEXT:    %[[A:.*]] = qmm.alltoall %[[P]] on "tp" world_size = 4 : tensor<12x128xi8> -> tensor<4x3x128xi8>
// CHECK-NEXT:    %[[R:.*]] = qmm.reducesum %[[A]] s1(%c1 : tensor<128xbf16>) s2(%c2 : tensor<128xbf16>)
// CHECK-NEXT:    %[[G:.*]] = qmm.allgather %[[R]] on "tp" world_size = 4 : tensor<3x128xi8> -> tensor<12x128xi8>
// CHECK-NEXT:    %[[S:.*]] = tensor.extract_slice %[[G]][0, 0] [10, 128] [1, 1] : tensor<12x128xi8> to tensor<10x128xi8>
// CHECK-NEXT:    %{{.*}} = qmm.dequant %[[S]], %c2 : (tensor<10x128xi8>, tensor<128xbf16>) -> tensor<10x128xbf16>
// CHECK-NEXT:    %o = tensor.expand_shape
// ROUNDTRIP-LABEL: func.func @padded
// ROUNDTRIP-NEXT:  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<2x5x64xi8>, tensor<64x128xi8> -> tensor<2x5x128xbf16>
// ROUNDTRIP-NEXT:  func.return %o
func.func @padded(%x1: tensor<2x5x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>) -> tensor<2x5x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<2x5x64xi8>, tensor<64x128xi8> -> tensor<2x5x128xbf16>
  func.return %o : tensor<2x5x128xbf16>
}

// A dynamic m: padded to ceil(m / W) * W rows through tensor.dim and index arithmetic.
// CHECK-LABEL: func.func @dynamic_m
// CHECK:         %[[Q:.*]] = qmm.quant %{{.*}}, %c1 : (tensor<?x128xbf16>, tensor<128xbf16>) -> tensor<?x128xi8>
// CHECK-NEXT:    %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    %[[M:.*]] = tensor.dim %[[Q]], %[[C0]] : tensor<?x128xi8>
// CHECK-NEXT:    %[[W:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[N:.*]] = arith.ceildivui %[[M]], %[[W]] : index
// CHECK-NEXT:    %[[PADDED:.*]] = arith.muli %[[N]], %[[W]] : index
// CHECK-NEXT:    %[[E:.*]] = tensor.empty(%[[PADDED]]) : tensor<?x128xi8>
// CHECK-NEXT:    %[[P:.*]] = tensor.insert_slice %[[Q]] into %[[E]][0, 0] [%[[M]], 128] [1, 1] : tensor<?x128xi8> into tensor<?x128xi8>
// CHECK-NEXT:    %[[A:.*]] = qmm.alltoall %[[P]] on "tp" world_size = 4 : tensor<?x128xi8> -> tensor<4x?x128xi8>
// CHECK-NEXT:    %[[R:.*]] = qmm.reducesum %[[A]] s1(%c1 : tensor<128xbf16>) s2(%c2 : tensor<128xbf16>) : tensor<4x?x128xi8> -> tensor<?x128xi8>
// CHECK-NEXT:    %[[G:.*]] = qmm.allgather %[[R]] on "tp" world_size = 4 : tensor<?x128xi8> -> tensor<?x128xi8>
// CHECK-NEXT:    %[[S:.*]] = tensor.extract_slice %[[G]][0, 0] [%[[M]], 128] [1, 1] : tensor<?x128xi8> to tensor<?x128xi8>
// CHECK-NEXT:    %o = qmm.dequant %[[S]], %c2 : (tensor<?x128xi8>, tensor<128xbf16>) -> tensor<?x128xbf16>
// ROUNDTRIP-LABEL: func.func @dynamic_m
// ROUNDTRIP-NEXT:  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<?x64xi8>, tensor<64x128xi8> -> tensor<?x128xbf16>
// ROUNDTRIP-NEXT:  func.return %o
func.func @dynamic_m(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>) -> tensor<?x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<?x64xi8>, tensor<64x128xi8> -> tensor<?x128xbf16>
  func.return %o : tensor<?x128xbf16>
}

// On one rank nothing is split: no padding at all.
// CHECK-LABEL: func.func @dynamic_m_one_rank
// CHECK-NOT:     tensor.
// CHECK:         qmm.alltoall %{{.*}} on "tp" world_size = 1 : tensor<?x128xi8> -> tensor<1x?x128xi8>
// CHECK-NOT:     tensor.
// CHECK:         func.return
// ROUNDTRIP-LABEL: func.func @dynamic_m_one_rank
// ROUNDTRIP-NEXT:  %o = mc2.quant_matmul_all_reduce
// ROUNDTRIP-NEXT:  func.return %o
func.func @dynamic_m_one_rank(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>) -> tensor<?x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 1 : tensor<?x64xi8>, tensor<64x128xi8> -> tensor<?x128xbf16>
  func.return %o : tensor<?x128xbf16>
}

// A dynamic 3-D value is viewed as rows, padded, and given its layout back with x1's sizes;
// x3 is added in 3-D.  Fusing again absorbs the reshapes: the op stays 3-D.
// CHECK-LABEL: func.func @dynamic_3d
// CHECK:         %[[Z:.*]] = qmm.add %{{.*}}, %x3 : tensor<?x5x128xbf16>
// CHECK-NEXT:    %{{.*}} = tensor.collapse_shape %[[Z]] {{\[}}[0 : i64, 1 : i64], [2 : i64]] : tensor<?x5x128xbf16> into tensor<?x128xbf16>
// CHECK:         %[[C0:.*]] = arith.constant 0 : index
// CHECK:         tensor.extract_slice
// CHECK-NEXT:    %[[D:.*]] = qmm.dequant
// CHECK-NEXT:    %[[B:.*]] = tensor.dim %x1, %[[C0]] : tensor<?x5x64xi8>
// CHECK-NEXT:    %o = tensor.expand_shape %[[D]] {{\[}}[0 : i64, 1 : i64], [2 : i64]] output_shape [%[[B]], 5, 128] : tensor<?x128xbf16> into tensor<?x5x128xbf16>
// ROUNDTRIP-LABEL: func.func @dynamic_3d
// ROUNDTRIP-NEXT:  %o = mc2.quant_matmul_all_reduce %x1, %x2 x3(%x3 : tensor<?x5x128xbf16>) dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<?x5x64xi8>, tensor<64x128xi8> -> tensor<?x5x128xbf16>
// ROUNDTRIP-NEXT:  func.return %o
// MLIR-LABEL: func.func @dynamic_3d
// MLIR: tensor.expand_shape
func.func @dynamic_3d(%x1: tensor<?x5x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %x3: tensor<?x5x128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>) -> tensor<?x5x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 x3(%x3 : tensor<?x5x128xbf16>) dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<?x5x64xi8>, tensor<64x128xi8> -> tensor<?x5x128xbf16>
  func.return %o : tensor<?x5x128xbf16>
}
