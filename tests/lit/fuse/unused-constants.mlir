// Constants the fused chain read and the fused op no longer reads are erased: an f32 scale
// folded into its TransQuantParamV2 packing, communication scales dropped from a compute-bound
// chain.  A constant something else still reads stays.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce 2>/dev/null | filecheck %s
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{drop-compute-bound-int8-comm=true}' 2>/dev/null | filecheck %s --check-prefix=DROP

// CHECK-LABEL: func.func @folded_scale
// CHECK-NEXT:    %[[P:.*]] = arith.constant dense<70369725841408> : tensor<128xui64>
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%[[P]] : tensor<128xui64>)
// CHECK-NEXT:    func.return %r
func.func @folded_scale(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>) -> tensor<32x128xf16> {
  %s = arith.constant dense<0.001> : tensor<128xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xf32>) -> tensor<32x128xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xf16>
  func.return %r : tensor<32x128xf16>
}

// One scale constant for two chains: it goes when the second chain is fused.
// CHECK-LABEL: func.func @shared_scale
// CHECK-NOT:     tensor<128xf32>
// CHECK:         mc2.quant_matmul_all_reduce
// CHECK-NOT:     tensor<128xf32>
// CHECK:         mc2.quant_matmul_all_reduce
// CHECK-NOT:     tensor<128xf32>
// CHECK:         func.return
func.func @shared_scale(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %x3: tensor<64x128xi8>) -> (tensor<32x128xf16>, tensor<32x128xf16>) {
  %s = arith.constant dense<0.001> : tensor<128xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xf32>) -> tensor<32x128xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xf16>
  %acc2 = qmm.matmul %x1, %x3 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y2 = qmm.dequant %acc2, %s : (tensor<32x128xi32>, tensor<128xf32>) -> tensor<32x128xf16>
  %r2 = qmm.all_reduce %y2 on "tp" world_size = 2 : tensor<32x128xf16>
  func.return %r, %r2 : tensor<32x128xf16>, tensor<32x128xf16>
}

// CHECK-LABEL: func.func @scale_used_elsewhere
// CHECK-NEXT:    %s = arith.constant dense<1.000000e-03> : tensor<128xf32>
// CHECK-NEXT:    %[[P:.*]] = arith.constant dense<70369725841408> : tensor<128xui64>
// CHECK-NEXT:    %r = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%[[P]] : tensor<128xui64>)
// CHECK-NEXT:    func.return %r, %s
func.func @scale_used_elsewhere(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>) -> (tensor<32x128xf16>, tensor<128xf32>) {
  %s = arith.constant dense<0.001> : tensor<128xf32>
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xf32>) -> tensor<32x128xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xf16>
  func.return %r, %s : tensor<32x128xf16>, tensor<128xf32>
}

// A deep k and a thin n: compute-bound.  Fused with its communication scales by default;
// with drop-compute-bound-int8-comm the fused op reads neither, and their constants go.
// CHECK-LABEL: func.func @compute_bound
// CHECK-NEXT:    %s1 = arith.constant
// CHECK-NEXT:    %s2 = arith.constant
// CHECK-NEXT:    %o = mc2.quant_matmul_all_reduce {{.*}} comm_quant_scale_1(%s1 : tensor<16xbf16>) comm_quant_scale_2(%s2 : tensor<16xbf16>)
// DROP-LABEL: func.func @compute_bound
// DROP-NEXT:    %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<16xbf16>) on "tp" world_size = 2 :
// DROP-NEXT:    func.return %o
func.func @compute_bound(%x1: tensor<4096x32768xi8>, %x2: tensor<32768x16xi8>, %s: tensor<16xbf16>) -> tensor<4096x16xbf16> {
  %s1 = arith.constant dense<0.5> : tensor<16xbf16>
  %s2 = arith.constant dense<2.0> : tensor<16xbf16>
  %acc = qmm.matmul %x1, %x2 : (tensor<4096x32768xi8>, tensor<32768x16xi8>) -> tensor<4096x16xi32>
  %y = qmm.dequant %acc, %s : (tensor<4096x16xi32>, tensor<16xbf16>) -> tensor<4096x16xbf16>
  %q = qmm.quant %y, %s1 : (tensor<4096x16xbf16>, tensor<16xbf16>) -> tensor<4096x16xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<4096x16xi8> -> tensor<2x2048x16xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<16xbf16>) s2(%s2 : tensor<16xbf16>) : tensor<2x2048x16xi8> -> tensor<2048x16xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<2048x16xi8> -> tensor<4096x16xi8>
  %o = qmm.dequant %g, %s2 : (tensor<4096x16xi8>, tensor<16xbf16>) -> tensor<4096x16xbf16>
  func.return %o : tensor<4096x16xbf16>
}
