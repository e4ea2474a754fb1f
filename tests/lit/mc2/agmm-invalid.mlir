// One case per rule of the mc2.all_gather_quant_matmul rule table (dialects/agmm_rules.py): each
// breaks exactly that rule and is reported with its id and location.
// RUN: qmmar-opt %s --split-input-file --verify-diagnostics | filecheck %s

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X1-DTYPE]
func.func @agmm_x1_dtype(%x1: tensor<16x256xi16>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi16>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X2-DTYPE]
func.func @agmm_x2_dtype(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi32>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi32>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X1-RANK]
func.func @agmm_x1_rank(%x1: tensor<2x8x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<2x8x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X2-RANK]
func.func @agmm_x2_rank(%x1: tensor<16x256xi8>, %x2: tensor<1x256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<1x256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-OUT-DTYPE]
func.func @agmm_out_dtype(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xf32>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-NONEMPTY]
func.func @agmm_nonempty(%x1: tensor<0x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<0x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<0x128xbf16>, tensor<0x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-K-MATCH]
func.func @agmm_k_match(%x1: tensor<16x256xi8>, %x2: tensor<128x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<128x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-K-RANGE]
func.func @agmm_k_range(%x1: tensor<16x128xi8>, %x2: tensor<128x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x128xi8>, tensor<128x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x128xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-BIAS-NULL]
func.func @agmm_bias_null(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %b: tensor<128xi32>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %b, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xi32>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-OUT-SHAPE]
func.func @agmm_out_shape(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<16x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-GATHER-OUT]
func.func @agmm_gather_out(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<16x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X2SCALE-PRESENT]
func.func @agmm_x2scale_present(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0>}> : (tensor<16x256xi8>, tensor<256x128xi8>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X2SCALE-DTYPE]
func.func @agmm_x2scale_dtype(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xbf16>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xbf16>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X2SCALE-SHAPE]
func.func @agmm_x2scale_shape(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<1xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<1xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X1SCALE-DTYPE]
func.func @agmm_x1scale_dtype(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %pt: tensor<16xf16>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %pt, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 1, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<16xf16>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-X1SCALE-SHAPE]
func.func @agmm_x1scale_shape(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %pt: tensor<64xf32>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %pt, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 1, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<64xf32>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-PERTOKEN-F16-SCALE]
func.func @agmm_pertoken_f16_scale(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %pt: tensor<16xf32>, %s: tensor<128xui64>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %pt, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 1, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<16xf32>, tensor<128xui64>) -> (tensor<64x128xf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-WORLD-SIZE]
func.func @agmm_world_size(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 16 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<256x128xbf16>, tensor<256x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-GROUP]
func.func @agmm_group(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-COMM-MODE]
func.func @agmm_comm_mode(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>, comm_mode = "ai_cpu"}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-GATHER-INDEX]
func.func @agmm_gather_index(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>, gather_index = 1 : i64}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-COMM-TURN]
func.func @agmm_comm_turn(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>, comm_turn = 1 : i64}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-STREAM-MODE]
func.func @agmm_stream_mode(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>, stream_mode = 0 : i64}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-GROUP-SIZE]
func.func @agmm_group_size(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>, group_size = 1 : i64}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}

// -----

// CHECK: agmm-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.all_gather_quant_matmul' op [AGMM-BLOCK-SIZE]
func.func @agmm_block_size(%x1: tensor<16x256xi8>, %x2: tensor<256x128xi8>, %s: tensor<128xf32>) {
  %o, %g = "mc2.all_gather_quant_matmul"(%x1, %x2, %s) <{group = "tp", world_size = 4 : i64, operandSegmentSizes = array<i32: 1, 1, 0, 0, 1>, block_size = 1 : i64}> : (tensor<16x256xi8>, tensor<256x128xi8>, tensor<128xf32>) -> (tensor<64x128xbf16>, tensor<64x256xi8>)
  func.return
}
