// f16 output without pertoken needs a TransQuantParamV2-packed scale: folded when the f32
// scale is a constant, an mc2.trans_quant_param otherwise.  With pertoken, f32 stays.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce | filecheck %s

// CHECK-LABEL: func.func @constant_scale
// 0.001f = 0x3A83126F; masked with 0xFFFFE000: 0x3A830000 = 981663744; | 1 << 46 = 70369725841408
// CHECK:         %[[P:.*]] = arith.constant dense<70369725841408> : tensor<128xui64>
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%[[P]] : tensor<128xui64>) on "tp" world_size = 2
func.func @constant_scale(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>) -> tensor<32x128xf16> {
  %s = arith.constant dense<0.001> : tensor<128xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xf32>) -> tensor<32x128xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xf16>
  func.return %r : tensor<32x128xf16>
}

// CHECK-LABEL: func.func @argument_scale
// CHECK-NEXT:    %[[P:.*]] = mc2.trans_quant_param %s : tensor<1xf32> -> tensor<1xui64>
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%[[P]] : tensor<1xui64>) on "tp" world_size = 2
func.func @argument_scale(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<1xf32>) -> tensor<32x128xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<1xf32>) -> tensor<32x128xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xf16>
  func.return %r : tensor<32x128xf16>
}

// An already packed scale passes through.
// CHECK-LABEL: func.func @packed_scale
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xi64>) on "tp" world_size = 2
func.func @packed_scale(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xi64>) -> tensor<32x128xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xi64>) -> tensor<32x128xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xf16>
  func.return %r : tensor<32x128xf16>
}
