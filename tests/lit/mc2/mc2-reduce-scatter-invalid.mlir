// One case per rule of mc2.quant_matmul_reduce_scatter's table (dialects/mrs_rules.py): each
// breaks exactly that rule and is reported with its id and location; a rule of the A2/A3
// section names the module's SoC.
// RUN: qmmar-opt %s --split-input-file --verify-diagnostics | filecheck %s

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X1-DTYPE]
func.func @mrs_x1_dtype(%x1: tensor<64x256xi16>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi16>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X2-DTYPE]
func.func @mrs_x2_dtype(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi32>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi32> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X1-RANK]
func.func @mrs_x1_rank(%x1: tensor<2x32x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<2x32x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X2-RANK]
func.func @mrs_x2_rank(%x1: tensor<64x256xi8>, %x2: tensor<1x256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<1x256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-OUT-DTYPE]
func.func @mrs_out_dtype(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xf32>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 3]]:5: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-WORLD-SIZE] on Atlas A3, world_size must be 2, 4 or 8
builtin.module attributes {qmmar.target = {soc = "a3", cann = "9.0"}} {
  func.func @mrs_world_size(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
    %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 16 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<4x128xbf16>
    func.return
  }
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-NONEMPTY]
func.func @mrs_nonempty(%x1: tensor<0x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<0x256xi8>, tensor<256x128xi8> -> tensor<0x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-K-MATCH]
func.func @mrs_k_match(%x1: tensor<64x256xi8>, %x2: tensor<512x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<512x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 3]]:5: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-K-RANGE] on Atlas A3, k must be in [256, 65535)
builtin.module attributes {qmmar.target = {soc = "a3", cann = "9.0"}} {
  func.func @mrs_k_range(%x1: tensor<64x128xi8>, %x2: tensor<128x128xi8>, %s: tensor<1x128xf32>) {
    %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x128xi8>, tensor<128x128xi8> -> tensor<16x128xbf16>
    func.return
  }
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-M-DIVISIBLE]
func.func @mrs_m_divisible(%x1: tensor<66x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<66x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-OUT-SHAPE]
func.func @mrs_out_shape(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<64x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X2SCALE-PRESENT]
func.func @mrs_x2scale_present(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X2SCALE-DTYPE]
func.func @mrs_x2scale_dtype(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xbf16>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xbf16>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X2SCALE-SHAPE]
func.func @mrs_x2scale_shape(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<2x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<2x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X1SCALE-DTYPE]
func.func @mrs_x1scale_dtype(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %t: tensor<64x1xf16>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x1_scale(%t : tensor<64x1xf16>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-X1SCALE-SHAPE]
func.func @mrs_x1scale_shape(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %t: tensor<16x1xf32>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x1_scale(%t : tensor<16x1xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-PERTOKEN-F16-SCALE]
func.func @mrs_pertoken_f16_scale(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %t: tensor<64xf32>, %s: tensor<128xi64>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x1_scale(%t : tensor<64xf32>) x2_scale(%s : tensor<128xi64>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-BIAS-DTYPE]
func.func @mrs_bias_dtype(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %b: tensor<128xi32>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 bias(%b : tensor<128xi32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-BIAS-SHAPE]
func.func @mrs_bias_shape(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %b: tensor<1x128xf32>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 bias(%b : tensor<1x128xf32>) x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-BIAS-PACKED-SCALE]
func.func @mrs_bias_packed_scale(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %b: tensor<128xf32>, %s: tensor<128xi64>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 bias(%b : tensor<128xf32>) x2_scale(%s : tensor<128xi64>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-COMM-MODE]
func.func @mrs_comm_mode(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 comm_mode = "ai_cpu" : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-GROUP]
func.func @mrs_group(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-REDUCE-OP]
func.func @mrs_reduce_op(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 reduce_op = "max" : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-COMM-TURN]
func.func @mrs_comm_turn(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 comm_turn = 1 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-STREAM-MODE]
func.func @mrs_stream_mode(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 stream_mode = 0 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-GROUP-SIZE]
func.func @mrs_group_size(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 group_size = 128 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-BLOCK-SIZE]
func.func @mrs_block_size(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) on "tp" world_size = 4 block_size = 128 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}

// -----

// CHECK: mc2-reduce-scatter-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_reduce_scatter' op [MRS-QUANT-SCALE]
func.func @mrs_quant_scale(%x1: tensor<64x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1x128xf32>, %q: tensor<128xf32>) {
  %out = mc2.quant_matmul_reduce_scatter %x1, %x2 x2_scale(%s : tensor<1x128xf32>) quant_scale(%q : tensor<128xf32>) on "tp" world_size = 4 : tensor<64x256xi8>, tensor<256x128xi8> -> tensor<16x128xbf16>
  func.return
}
