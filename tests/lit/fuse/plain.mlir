// The plain form: matmul -> dequant -> [add x3] -> all_reduce becomes one mc2 op without
// communication scales; bias, pertoken, x3 and a transposed x2 are carried over.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce | filecheck %s
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{remarks=all}' -o /dev/null 2>&1 | filecheck %s --check-prefix=REMARK

// CHECK-LABEL: func.func @bf16
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 bias(%b : tensor<128xi32>) x3(%x3 : tensor<32x128xbf16>) dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<32xf32>) on "tp" world_size = 8 : tensor<32x64xi8>, tensor<64x128xi8> -> tensor<32x128xbf16>
// CHECK-NEXT:    func.return %r
// REMARK: plain.mlir:[[# @LINE + 2]]:3: remark: fused into mc2.quant_matmul_all_reduce: qmm.matmul -> qmm.dequant -> qmm.add -> qmm.all_reduce
func.func @bf16(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %b: tensor<128xi32>, %s: tensor<128xbf16>, %pt: tensor<32xf32>, %x3: tensor<32x128xbf16>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xi32>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<32x128xi32>, tensor<128xbf16>, tensor<32xf32>) -> tensor<32x128xbf16>
  %z = qmm.add %y, %x3 : tensor<32x128xbf16>
  %r = qmm.all_reduce %z on "tp" world_size = 8 : tensor<32x128xbf16>
  func.return %r : tensor<32x128xbf16>
}

// x3 may be either operand of the add.
// CHECK-LABEL: func.func @x3_first_transposed
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 x3(%x3 : tensor<32x128xf16>) dequant_scale(%s : tensor<1x128xf32>) pertoken_scale(%pt : tensor<32xf32>) on "tp" world_size = 8 transpose_x2 = true : tensor<32x64xi8>, tensor<128x64xi8> -> tensor<32x128xf16>
// REMARK: plain.mlir:[[# @LINE + 2]]:3: remark: fused
func.func @x3_first_transposed(%x1: tensor<32x64xi8>, %x2: tensor<128x64xi8>, %s: tensor<1x128xf32>, %pt: tensor<32xf32>, %x3: tensor<32x128xf16>) -> tensor<32x128xf16> {
  %acc = qmm.matmul %x1, %x2 transpose_x2 = true : (tensor<32x64xi8>, tensor<128x64xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<32x128xi32>, tensor<1x128xf32>, tensor<32xf32>) -> tensor<32x128xf16>
  %z = qmm.add %x3, %y : tensor<32x128xf16>
  %r = qmm.all_reduce %z on "tp" world_size = 8 : tensor<32x128xf16>
  func.return %r : tensor<32x128xf16>
}

// A bias added after the all-reduce is a different program: it stays outside.
// CHECK-LABEL: func.func @bias_after_reduce
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) on "tp" world_size = 2
// CHECK-NEXT:    %o = qmm.add %r, %late : tensor<32x128xbf16>
func.func @bias_after_reduce(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %late: tensor<32x128xbf16>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xbf16>
  %o = qmm.add %r, %late : tensor<32x128xbf16>
  func.return %o : tensor<32x128xbf16>
}

// Dynamic leading dimensions fuse; the operator's checks on them move to run time.
// CHECK-LABEL: func.func @dynamic_m
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<?xf32>) on "tp" world_size = 4 : tensor<?x64xi8>, tensor<64x128xi8> -> tensor<?x128xbf16>
func.func @dynamic_m(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %pt: tensor<?xf32>) -> tensor<?x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<?x64xi8>, tensor<64x128xi8>) -> tensor<?x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<?x128xi32>, tensor<128xbf16>, tensor<?xf32>) -> tensor<?x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 4 : tensor<?x128xbf16>
  func.return %r : tensor<?x128xbf16>
}
