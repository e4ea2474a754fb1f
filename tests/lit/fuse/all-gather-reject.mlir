// All-gather chains left alone: one remark each, with the rule id, at the op the rule is about
// (the all-gather for a group or world size, else the matmul or the chain's first op); the
// IR stays as it was, on Atlas A2 and on A3.
// RUN: qmmar-opt %s --split-input-file -p fuse-quant-matmul-all-reduce -o /dev/null 2>&1 | filecheck %s
// RUN: qmmar-opt %s --split-input-file -p 'fuse-quant-matmul-all-reduce{soc=a3}' -o /dev/null 2>&1 | filecheck %s
// RUN: qmmar-opt %s --split-input-file -p 'fuse-quant-matmul-all-reduce{soc=a3}' 2>/dev/null | filecheck %s --check-prefix=IR
// IR-NOT: mc2.all_gather_quant_matmul

// CHECK: all-gather-reject.mlir:[[# @LINE + 3]]:3: remark: not fused: [AGMM-K-RANGE] k must be in [256, 65535)
func.func @small_k(%x: tensor<16x128xi8>, %w: tensor<128x128xi8>, %s: tensor<128xf32>) -> tensor<64x128xbf16> {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x128xi8> -> tensor<64x128xi8>
  %acc = qmm.matmul %g, %w : (tensor<64x128xi8>, tensor<128x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  func.return %y : tensor<64x128xbf16>
}

// -----

// CHECK: all-gather-reject.mlir:[[# @LINE + 3]]:3: remark: not fused: [AGMM-BIAS-NULL] on Atlas A2/A3, bias must be absent
func.func @bias(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %b: tensor<128xi32>, %s: tensor<128xf32>) -> tensor<64x128xbf16> {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc = qmm.matmul %g, %w bias(%b) : (tensor<64x256xi8>, tensor<256x128xi8>, tensor<128xi32>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  func.return %y : tensor<64x128xbf16>
}

// -----

// A bf16 scale with f16 output and no per-token scale: widened to f32 the operator would take
// it as it is where qmm.dequant packs an f32 scale, so no qmm chain computes that op: kept bf16.
// CHECK: all-gather-reject.mlir:[[# @LINE + 3]]:3: remark: not fused: [AGMM-X2SCALE-DTYPE] on Atlas A2/A3, x2_scale must be f32, or int64 or uint64 (packed by TransQuantParamV2) with f16 output (here: x2_scale bf16, output f16)
func.func @bf16_scale(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xbf16>) -> tensor<64x128xf16> {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc = qmm.matmul %g, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xf16>
  func.return %y : tensor<64x128xf16>
}

// -----

// The per-token scale of all the rows, not gathered: the op wants this rank's and gathers it.
// CHECK: all-gather-reject.mlir:[[# @LINE + 3]]:3: remark: not fused: [AGMM-X1SCALE-SHAPE] on Atlas A2/A3, x1_scale must be this rank's per-token scale, [m] or [m, 1] (the op gathers it)
func.func @pertoken_not_gathered(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xf32>, %pt: tensor<64xf32>) -> tensor<64x128xbf16> {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc = qmm.matmul %g, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%pt) : (tensor<64x128xi32>, tensor<128xf32>, tensor<64xf32>) -> tensor<64x128xbf16>
  func.return %y : tensor<64x128xbf16>
}

// -----

// CHECK: all-gather-reject.mlir:[[# @LINE + 2]]:3: remark: not fused: [AGMM-WORLD-SIZE] on Atlas A2/A3, world_size must be 2, 4 or 8
func.func @sixteen_ranks(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xf32>) -> tensor<256x128xbf16> {
  %g = qmm.allgather %x on "tp" world_size = 16 : tensor<16x256xi8> -> tensor<256x256xi8>
  %acc = qmm.matmul %g, %w : (tensor<256x256xi8>, tensor<256x128xi8>) -> tensor<256x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<256x128xi32>, tensor<128xf32>) -> tensor<256x128xbf16>
  func.return %y : tensor<256x128xbf16>
}

// -----

// Another user of the gathered x1 before the dequant: gather_out, defined at the dequant, cannot reach it.
// CHECK: all-gather-reject.mlir:[[# @LINE + 2]]:3: remark: not fused: [AGMM-CHAIN-GATHER-USERS] every other user of the gathered x1 must come after the chain's dequant, where the fused op's gather_out replaces it: 'qmm.matmul' at {{.*}}all-gather-reject.mlir:[[# @LINE + 4]]:3 is not
func.func @user_before(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x128xi32>) {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc = qmm.matmul %g, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %early = qmm.matmul %g, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  func.return %y, %early : tensor<64x128xbf16>, tensor<64x128xi32>
}

// -----

// CHECK: all-gather-reject.mlir:[[# @LINE + 3]]:3: remark: not fused: [AGMM-CHAIN-SINGLE-USE] the matmul's result and the gathered per-token scale must have the chain as their only user: it is also used by 'func.return' at {{.*}}all-gather-reject.mlir:[[# @LINE + 5]]:3
func.func @matmul_result_used(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x128xi32>) {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc = qmm.matmul %g, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  func.return %y, %acc : tensor<64x128xbf16>, tensor<64x128xi32>
}

// -----

// CHECK: all-gather-reject.mlir:[[# @LINE + 4]]:3: remark: not fused: [AGMM-CHAIN-SAME-GROUP] the all-gathers of x1 and of its per-token scale must share group and world_size
func.func @two_groups(%x: tensor<16x256xi8>, %w: tensor<256x128xi8>, %s: tensor<128xf32>, %pt: tensor<32xf32>) -> tensor<64x128xbf16> {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc = qmm.matmul %g, %w : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %t = qmm.allgather %pt on "tp" world_size = 2 : tensor<32xf32> -> tensor<64xf32>
  %y = qmm.dequant %acc, %s pertoken(%t) : (tensor<64x128xi32>, tensor<128xf32>, tensor<64xf32>) -> tensor<64x128xbf16>
  func.return %y : tensor<64x128xbf16>
}

// -----

// Two all-gather chains on two groups: the module's is the first chain's (refused itself, by
// its k), and the second chain's remark, at its all-gather, names both.
// CHECK: all-gather-reject.mlir:[[# @LINE + 5]]:3: remark: not fused: [AGMM-K-RANGE] k must be in [256, 65535)
// CHECK: all-gather-reject.mlir:[[# @LINE + 6]]:3: remark: not fused: [CHAIN-ONE-GROUP] MC2 ops of one model must share one communication group: this chain's group is "dp", the module's is "tp" (the first chain's, at {{.*}}all-gather-reject.mlir:[[# @LINE + 3]]:3; choose it with the pass option group=NAME)
func.func @two_groups(%x: tensor<16x128xi8>, %w: tensor<128x128xi8>, %x2: tensor<16x256xi8>, %w2: tensor<256x128xi8>,
                      %s: tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x128xbf16>) {
  %g = qmm.allgather %x on "tp" world_size = 4 : tensor<16x128xi8> -> tensor<64x128xi8>
  %acc = qmm.matmul %g, %w : (tensor<64x128xi8>, tensor<128x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %g2 = qmm.allgather %x2 on "dp" world_size = 4 : tensor<16x256xi8> -> tensor<64x256xi8>
  %acc2 = qmm.matmul %g2, %w2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y2 = qmm.dequant %acc2, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  func.return %y, %y2 : tensor<64x128xbf16>, tensor<64x128xbf16>
}
