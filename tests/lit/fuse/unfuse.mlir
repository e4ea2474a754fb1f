// unfuse-mc2 writes the primitive chain back; an m that world_size does not divide is padded
// for the all-to-all and sliced back; unfusing then fusing gives the mc2 op back.
// RUN: qmmar-opt %s -p unfuse-mc2 | filecheck %s
// RUN: qmmar-opt %s -p unfuse-mc2,fuse-quant-matmul-all-reduce | filecheck %s --check-prefix=ROUNDTRIP

// CHECK-LABEL: func.func @plain
// CHECK-NEXT:    %0 = qmm.matmul %x1, %x2 bias(%b) transpose_x2 = true : (tensor<8x64xi8>, tensor<128x64xi8>, tensor<128xi32>) -> tensor<8x128xi32>
// CHECK-NEXT:    %1 = qmm.dequant %0, %s pertoken(%pt) : (tensor<8x128xi32>, tensor<128xf32>, tensor<8xf32>) -> tensor<8x128xf16>
// CHECK-NEXT:    %2 = qmm.add %1, %x3 : tensor<8x128xf16>
// CHECK-NEXT:    %o = qmm.all_reduce %2 on "tp" world_size = 2 : tensor<8x128xf16>
// ROUNDTRIP-LABEL: func.func @plain
// ROUNDTRIP-NEXT:  %o = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<8x128xf16>) dequant_scale(%s : tensor<128xf32>) pertoken_scale(%pt : tensor<8xf32>) on "tp" world_size = 2 transpose_x2 = true
func.func @plain(%x1: tensor<8x64xi8>, %x2: tensor<128x64xi8>, %b: tensor<128xi32>, %s: tensor<128xf32>, %pt: tensor<8xf32>, %x3: tensor<8x128xf16>) -> tensor<8x128xf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<8x128xf16>) dequant_scale(%s : tensor<128xf32>) pertoken_scale(%pt : tensor<8xf32>) on "tp" world_size = 2 transpose_x2 = true : tensor<8x64xi8>, tensor<128x64xi8> -> tensor<8x128xf16>
  func.return %o : tensor<8x128xf16>
}

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
func.func @padded(%x1: tensor<2x5x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<128xbf16>) -> tensor<2x5x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) comm_quant_scale_1(%c1 : tensor<128xbf16>) comm_quant_scale_2(%c2 : tensor<128xbf16>) on "tp" world_size = 4 : tensor<2x5x64xi8>, tensor<64x128xi8> -> tensor<2x5x128xbf16>
  func.return %o : tensor<2x5x128xbf16>
}
