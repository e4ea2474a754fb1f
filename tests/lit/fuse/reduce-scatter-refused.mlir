// Reduce-scatter chains left alone, on either SoC (soc=a2, soc=a3): each gets one remark with its
// rule id and reason, located at the op the rule is about, and the IR stays as it was.
// RUN: qmmar-opt %s --split-input-file -p 'fuse-mc2{soc=a2}' -o /dev/null 2>&1 | filecheck %s --check-prefixes=CHECK,A2
// RUN: qmmar-opt %s --split-input-file -p 'fuse-mc2{soc=a3}' -o /dev/null 2>&1 | filecheck %s --check-prefixes=CHECK,A3
// RUN: qmmar-opt %s --split-input-file -p 'fuse-mc2{soc=a3}' 2>/dev/null | filecheck %s --check-prefix=IR
// IR-NOT: mc2.quant_matmul_reduce_scatter

// The fused op takes an f32 x2_scale, and a bf16 dequant scale widens to one exactly; but with
// f16 output and no per-token scale, qmm.dequant's f32 scale would be packed (TransQuantParamV2)
// where the kernel multiplies by it as it is: no qmm chain computes that op, so it stays bf16.
// A2: reduce-scatter-refused.mlir:[[# @LINE + 3]]:3: remark: not fused: [MRS-X2SCALE-DTYPE] on Atlas A2, x2_scale must be f32, or int64 (packed by TransQuantParamV2) with f16 output (here: x2_scale bf16, output f16, without x1_scale)
// A3: reduce-scatter-refused.mlir:[[# @LINE + 2]]:3: remark: not fused: [MRS-X2SCALE-DTYPE] on Atlas A3, x2_scale must be f32
func.func @bf16_scale(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xbf16>) -> tensor<32x128xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xbf16>) -> tensor<64x128xf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xf16> -> tensor<32x128xf16>
  func.return %rs : tensor<32x128xf16>
}

// -----

// A2: reduce-scatter-refused.mlir:[[# @LINE + 3]]:3: remark: not fused: [MRS-K-RANGE] on Atlas A2, k must be in [256, 65535)
// A3: reduce-scatter-refused.mlir:[[# @LINE + 2]]:3: remark: not fused: [MRS-K-RANGE] on Atlas A3, k must be in [256, 65535)
func.func @small_k(%x1: tensor<64x128xi8>, %x2: tensor<128x128xi8>, %s: tensor<128xf32>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x128xi8>, tensor<128x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xbf16> -> tensor<32x128xbf16>
  func.return %rs : tensor<32x128xbf16>
}

// -----

// The world size is the reduce-scatter's: the remark points at it.
// A2: reduce-scatter-refused.mlir:[[# @LINE + 5]]:3: remark: not fused: [MRS-WORLD-SIZE] on Atlas A2, world_size must be 2, 4 or 8
// A3: reduce-scatter-refused.mlir:[[# @LINE + 4]]:3: remark: not fused: [MRS-WORLD-SIZE] on Atlas A3, world_size must be 2, 4 or 8
func.func @sixteen_ranks(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) -> tensor<4x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 16 : tensor<64x128xbf16> -> tensor<4x128xbf16>
  func.return %rs : tensor<4x128xbf16>
}

// -----

// f16 output with a packed scale and per-token scales: the kernel would round twice.
// CHECK: reduce-scatter-refused.mlir:[[# @LINE + 2]]:3: remark: not fused: [MRS-PERTOKEN-F16-SCALE] on Atlas A{{[23]}}, with x1_scale and f16 output, x2_scale must be f32 (a packed scale rounds to f16 before the per-token product) (here: x2_scale i64, output f16, with x1_scale)
func.func @packed_pertoken(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xi64>, %t: tensor<64xf32>) -> tensor<32x128xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s pertoken(%t) : (tensor<64x128xi32>, tensor<128xi64>, tensor<64xf32>) -> tensor<64x128xf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xf16> -> tensor<32x128xf16>
  func.return %rs : tensor<32x128xf16>
}

// -----

// CHECK: reduce-scatter-refused.mlir:[[# @LINE + 2]]:3: remark: not fused: [CHAIN-RS-INT32-BIAS] the matmul's int32 bias is added before the dequant, and aclnnMatmulReduceScatterV2 adds an f32 bias after it: other numbers
func.func @int32_bias(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %b: tensor<128xi32>, %s: tensor<128xf32>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 bias(%b) : (tensor<64x256xi8>, tensor<256x128xi8>, tensor<128xi32>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xbf16> -> tensor<32x128xbf16>
  func.return %rs : tensor<32x128xbf16>
}

// -----

// CHECK: reduce-scatter-refused.mlir:[[# @LINE + 3]]:3: remark: not fused: [CHAIN-SINGLE-USE] every intermediate value of the chain must have the chain as its only user: %y ('qmm.dequant' at {{.*}}reduce-scatter-refused.mlir:[[# @LINE + 3]]:3) is also used by 'func.return' at {{.*}}reduce-scatter-refused.mlir:[[# @LINE + 5]]:3
func.func @multi_use(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) -> (tensor<32x128xbf16>, tensor<64x128xbf16>) {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xbf16> -> tensor<32x128xbf16>
  func.return %rs, %y : tensor<32x128xbf16>, tensor<64x128xbf16>
}

// -----

// CHECK: reduce-scatter-refused.mlir:[[# @LINE + 4]]:3: remark: not fused: [CHAIN-RS-ROWS] the reduce-scatter must scatter 2-D [m, n] rows: the fused op's output is [m / world_size, n]
func.func @three_d(%x1: tensor<2x32x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) -> tensor<1x32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<2x32x256xi8>, tensor<256x128xi8>) -> tensor<2x32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<2x32x128xi32>, tensor<128xf32>) -> tensor<2x32x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<2x32x128xbf16> -> tensor<1x32x128xbf16>
  func.return %rs : tensor<1x32x128xbf16>
}

// -----

// A reduce-scatter of anything but a matmul's dequant ends no chain: one line says why.
// CHECK: reduce-scatter-refused.mlir:[[# @LINE + 2]]:3: remark: not a chain: 'qmm.reduce_scatter' its operand is an argument, not a qmm.dequant of a qmm.matmul's int32 result
func.func @not_a_chain(%y: tensor<64x128xbf16>) -> tensor<32x128xbf16> {
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xbf16> -> tensor<32x128xbf16>
  func.return %rs : tensor<32x128xbf16>
}

// -----

// Two reduce-scatters on two groups: the module's is the first chain's (refused itself, by its
// k), and the second chain's remark, at its reduce-scatter, names both.
// CHECK: reduce-scatter-refused.mlir:[[# @LINE + 4]]:3: remark: not fused: [MRS-K-RANGE] on Atlas A{{[23]}}, k must be in [256, 65535)
// CHECK: reduce-scatter-refused.mlir:[[# @LINE + 8]]:3: remark: not fused: [CHAIN-ONE-GROUP] MC2 ops of one model must share one communication group: this chain's group is "dp", the module's is "tp" (the first chain's, at {{.*}}reduce-scatter-refused.mlir:[[# @LINE + 3]]:3; choose it with the pass option group=NAME)
func.func @two_groups(%x1: tensor<64x128xi8>, %x2: tensor<128x128xi8>, %w: tensor<64x256xi8>, %w2: tensor<256x128xi8>,
                      %s: tensor<128xf32>) -> (tensor<32x128xbf16>, tensor<32x128xbf16>) {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x128xi8>, tensor<128x128xi8>) -> tensor<64x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 2 : tensor<64x128xbf16> -> tensor<32x128xbf16>
  %acc2 = qmm.matmul %w, %w2 : (tensor<64x256xi8>, tensor<256x128xi8>) -> tensor<64x128xi32>
  %y2 = qmm.dequant %acc2, %s : (tensor<64x128xi32>, tensor<128xf32>) -> tensor<64x128xbf16>
  %rs2 = qmm.reduce_scatter %y2 on "dp" world_size = 2 : tensor<64x128xbf16> -> tensor<32x128xbf16>
  func.return %rs, %rs2 : tensor<32x128xbf16>, tensor<32x128xbf16>
}
