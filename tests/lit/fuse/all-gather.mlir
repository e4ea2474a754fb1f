// all-gather(int8 x1) [+ all-gather(per-token scale)] -> matmul -> dequant fuses into
// mc2.all_gather_quant_matmul on Atlas A2 and A3; the gathered x1's other users read the
// fused op's gather_out; fused and unfused compute the same bits.
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{remarks=all}' -o /dev/null 2>&1 | filecheck %s --check-prefix=REMARK
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=a3 remarks=all}' -o /dev/null 2>&1 | filecheck %s --check-prefix=REMARK
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce | filecheck %s --check-prefixes=CHECK,A2
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{soc=a3}' | filecheck %s --check-prefixes=CHECK,A3
// RUN: qmmar-opt %s -p 'fuse-mc2{soc=a3}' -o %t.mlir
// RUN: qmmar-run %s -w 4 --random-inputs 5 -o %t.unfused.npz > /dev/null
// RUN: qmmar-run %t.mlir -w 4 --random-inputs 5 -o %t.fused.npz > /dev/null
// RUN: qmmar-compare %t.unfused.npz %t.fused.npz | filecheck %s --check-prefix=SAME
// SAME: 3 result(s): 3 identical

// A2: builtin.module attributes {qmmar.target = {soc = "a2", cann = "9.0"}}
// A3: builtin.module attributes {qmmar.target = {soc = "a3", cann = "9.0"}}
// CHECK: %y, %gx = mc2.all_gather_quant_matmul %x, %w x1_scale(%pt : tensor<16xf32>) x2_scale(%s : tensor<128xf32>) on "tp" world_size = 4 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<64x128xbf16>, tensor<64x256xi8>
// The gathered x1 also feeds another matmul: it reads gather_out.
// CHECK-NEXT: %other = qmm.matmul %gx, %w2
// f16 output with an f32 scale and no per-token scale: qmm.dequant packs that scale, so the
// fused op takes it packed (the kernel would use an f32 scale as it is).
// CHECK: %[[PACKED:.*]] = mc2.trans_quant_param %s16 : tensor<128xf32> -> tensor<128xui64>
// CHECK-NEXT: %y16, %{{.*}} = mc2.all_gather_quant_matmul %x, %w x2_scale(%[[PACKED]] : tensor<128xui64>) on "tp" world_size = 4 : tensor<16x256xi8>, tensor<256x128xi8> -> tensor<64x128xf16>, tensor<64x256xi8>
// CHECK-NOT: qmm.allgather
// CHECK: func.return %y, %y16, %other
func.func @main(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %w2: tensor<256x64xi8>, %s: tensor<128xf32>, %s16: tensor<128xf32>, %pt: tensor<16xf32>) -> (tensor<64x128xbf16>, tensor<64x128xf16>, tensor<64x64xi32>) {
  %gx = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %t = qmm.allgather %pt on "tp" world_size = 4 : tensor<16xf32> -> tensor<64xf32>
  %acc = qmm.matmul %gx, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%t) : (tensor<64x128xi32>, tensor<128xf32>, tensor<64xf32>) -> tensor<64x128xbf16>
  %other = qmm.matmul %gx, %w2 : (tensor<64x256xi8>, tensor<256x64xi8>) -> tensor<64x64xi32>
  %g16 = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc16 = qmm.matmul %g16, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y16 = qmm.dequant %acc16, %s16 : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xf16>
  func.return %y, %y16, %other : tensor<64x128xbf16>, tensor<64x128xf16>, tensor<64x64xi32>
}
// Each remark is at its chain's first op, the all-gather of x1.
// REMARK: all-gather.mlir:[[# @LINE - 11]]:3: remark: fused into mc2.all_gather_quant_matmul: qmm.allgather -> qmm.allgather -> qmm.matmul -> qmm.dequant
// REMARK: all-gather.mlir:[[# @LINE - 7]]:3: remark: fused into mc2.all_gather_quant_matmul: qmm.allgather -> qmm.matmul -> qmm.dequant
