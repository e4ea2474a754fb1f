// Every qmm op round-trips in its custom form, and in the generic form of SEMANTICS.md.
// RUN: qmmar-opt %s | qmmar-opt | filecheck %s
// RUN: qmmar-opt %s --print-op-generic | qmmar-opt --print-op-generic | filecheck %s --check-prefix=GENERIC

func.func @chain(%x1: tensor<2x16x64xi8>, %x2: tensor<64x128xi8>, %x2t: tensor<128x64xi8>, %b: tensor<128xi32>,
                 %s: tensor<128xbf16>, %pt: tensor<32xf32>, %x3: tensor<2x16x128xbf16>,
                 %c1: tensor<128xbf16>, %c2: tensor<1x128xbf16>) {
  // CHECK: %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<2x16x64xi8>, tensor<64x128xi8>, tensor<128xi32>) -> tensor<2x16x128xi32>
  // GENERIC: "qmm.matmul"(%x1, %x2, %b) <{transpose_x2 = false}> : (tensor<2x16x64xi8>, tensor<64x128xi8>, tensor<128xi32>) -> tensor<2x16x128xi32>
  %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<2x16x64xi8>, tensor<64x128xi8>, tensor<128xi32>) -> tensor<2x16x128xi32>
  // CHECK: %acct = qmm.matmul %x1, %x2t transpose_x2 = true : (tensor<2x16x64xi8>, tensor<128x64xi8>) -> tensor<2x16x128xi32>
  // GENERIC: "qmm.matmul"(%x1, %x2t) <{transpose_x2 = true}>
  %acct = qmm.matmul %x1, %x2t transpose_x2 = true : (tensor<2x16x64xi8>, tensor<128x64xi8>) -> tensor<2x16x128xi32>
  // CHECK: %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<2x16x128xi32>, tensor<128xbf16>, tensor<32xf32>) -> tensor<2x16x128xbf16>
  // GENERIC: "qmm.dequant"(%acc, %s, %pt) : (tensor<2x16x128xi32>, tensor<128xbf16>, tensor<32xf32>) -> tensor<2x16x128xbf16>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<2x16x128xi32>, tensor<128xbf16>, tensor<32xf32>) -> tensor<2x16x128xbf16>
  // CHECK: %z = qmm.add %y, %x3 : tensor<2x16x128xbf16>
  // GENERIC: "qmm.add"(%y, %x3) : (tensor<2x16x128xbf16>, tensor<2x16x128xbf16>) -> tensor<2x16x128xbf16>
  %z = qmm.add %y, %x3 : tensor<2x16x128xbf16>
  // CHECK: %q = qmm.quant %z, %c1 : (tensor<2x16x128xbf16>, tensor<128xbf16>) -> tensor<2x16x128xi8>
  // GENERIC: "qmm.quant"(%z, %c1) : (tensor<2x16x128xbf16>, tensor<128xbf16>) -> tensor<2x16x128xi8>
  %q = qmm.quant %z, %c1 : (tensor<2x16x128xbf16>, tensor<128xbf16>) -> tensor<2x16x128xi8>
  // CHECK: %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<2x16x128xi8> -> tensor<2x1x16x128xi8>
  // GENERIC: "qmm.alltoall"(%q) <{group = "tp", world_size = 2 : i64}> : (tensor<2x16x128xi8>) -> tensor<2x1x16x128xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<2x16x128xi8> -> tensor<2x1x16x128xi8>
  // CHECK: %r = qmm.reducesum %a s1(%c1 : tensor<128xbf16>) s2(%c2 : tensor<1x128xbf16>) : tensor<2x1x16x128xi8> -> tensor<1x16x128xi8>
  // GENERIC: "qmm.reducesum"(%a, %c1, %c2) <{operandSegmentSizes = array<i32: 1, 1, 1>}> : (tensor<2x1x16x128xi8>, tensor<128xbf16>, tensor<1x128xbf16>) -> tensor<1x16x128xi8>
  %r = qmm.reducesum %a s1(%c1 : tensor<128xbf16>) s2(%c2 : tensor<1x128xbf16>) : tensor<2x1x16x128xi8> -> tensor<1x16x128xi8>
  // CHECK: %g = qmm.allgather %r on "tp" world_size = 2 : tensor<1x16x128xi8> -> tensor<2x16x128xi8>
  // GENERIC: "qmm.allgather"(%r) <{group = "tp", world_size = 2 : i64}> : (tensor<1x16x128xi8>) -> tensor<2x16x128xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<1x16x128xi8> -> tensor<2x16x128xi8>
  // CHECK: %o = qmm.dequant %g, %c2 : (tensor<2x16x128xi8>, tensor<1x128xbf16>) -> tensor<2x16x128xbf16>
  %o = qmm.dequant %g, %c2 : (tensor<2x16x128xi8>, tensor<1x128xbf16>) -> tensor<2x16x128xbf16>
  // CHECK: %ar = qmm.all_reduce %z on "tp" world_size = 2 : tensor<2x16x128xbf16>
  // GENERIC: "qmm.all_reduce"(%z) <{group = "tp", world_size = 2 : i64, reduce_op = "sum"}> : (tensor<2x16x128xbf16>) -> tensor<2x16x128xbf16>
  %ar = qmm.all_reduce %z on "tp" world_size = 2 : tensor<2x16x128xbf16>
  // CHECK: %fs = qmm.reducesum %a3 : tensor<2x16x128xbf16> -> tensor<16x128xbf16>
  // GENERIC: "qmm.reducesum"(%a3) <{operandSegmentSizes = array<i32: 1, 0, 0>}>
  %a2 = qmm.alltoall %z on "tp" world_size = 2 : tensor<2x16x128xbf16> -> tensor<2x1x16x128xbf16>
  %a3 = tensor.collapse_shape %a2 [[0], [1, 2], [3]] : tensor<2x1x16x128xbf16> into tensor<2x16x128xbf16>
  %fs = qmm.reducesum %a3 : tensor<2x16x128xbf16> -> tensor<16x128xbf16>
  func.return
}
