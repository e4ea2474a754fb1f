// One case per rule of the mc2 rule table: each breaks exactly that rule and is reported
// with its id and location.
// RUN: qmmar-opt %s --split-input-file --verify-diagnostics | filecheck %s

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X1-DTYPE]
func.func @mc2_x1_dtype(%x1: tensor<32x64xi16>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi16>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X1-RANK]
func.func @mc2_x1_rank(%x1: tensor<2x2x8x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<2x2x8x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<2x2x8x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X2-DTYPE]
func.func @mc2_x2_dtype(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi32>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X2-RANK]
func.func @mc2_x2_rank(%x1: tensor<32x64xi8>, %x2: tensor<1x64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<1x64x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-OUT-DTYPE]
func.func @mc2_out_dtype(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x128xf32>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-NONEMPTY]
func.func @mc2_nonempty(%x1: tensor<0x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<0x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<0x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-K-MATCH]
func.func @mc2_k_match(%x1: tensor<32x64xi8>, %x2: tensor<32x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<32x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-K-MAX]
func.func @mc2_k_max(%x1: tensor<32x65536xi8>, %x2: tensor<65536x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x65536xi8>, tensor<65536x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X2-DIM-MAX]
func.func @mc2_x2_dim_max(%x1: tensor<32x64xi8>, %x2: tensor<64x65536xi8>, %scale: tensor<65536xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x65536xi8>, tensor<65536xbf16>) -> tensor<32x65536xbf16>
  func.return
}

// -----

// Transposed, x2 is stored [n, k]: its first dimension, n, may exceed 65535, not INT32_MAX.
// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X2-DIM-MAX] x2's last dimension (n, or k with transpose_x2) must be at most 65535, and its first at most 2147483647
func.func @mc2_x2_first_dim_max(%x1: tensor<32x64xi8>, %x2: tensor<2147483648x64xi8>, %scale: tensor<1xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = true}> : (tensor<32x64xi8>, tensor<2147483648x64xi8>, tensor<1xbf16>) -> tensor<32x2147483648xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-M-MAX]
func.func @mc2_m_max(%x1: tensor<65536x32768x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<65536x32768x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<65536x32768x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-OUT-SHAPE]
func.func @mc2_out_shape(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x64xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-BIAS-DTYPE]
func.func @mc2_bias_dtype(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %bias: tensor<128xi64>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %bias, %scale) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xi64>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-BIAS-SHAPE]
func.func @mc2_bias_shape(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %bias: tensor<64xi32>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %bias, %scale) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<64xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X3-DTYPE]
func.func @mc2_x3_dtype(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %x3: tensor<32x128xf16>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %x3, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<32x128xf16>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-X3-SHAPE]
func.func @mc2_x3_shape(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %x3: tensor<16x128xbf16>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %x3, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<16x128xbf16>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-SCALE-DTYPE]
func.func @mc2_scale_dtype(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xf32>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xf32>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-SCALE-SHAPE]
func.func @mc2_scale_shape(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<64xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<64xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-PERTOKEN-DTYPE]
func.func @mc2_pertoken_dtype(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>, %pt: tensor<32xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale, %pt) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 1, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>, tensor<32xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-PERTOKEN-SHAPE]
func.func @mc2_pertoken_shape(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>, %pt: tensor<16xf32>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale, %pt) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 1, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>, tensor<16xf32>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-COMM-PAIR]
func.func @mc2_comm_pair(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>, %c1: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale, %c1) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 1, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-COMM-DTYPE]
func.func @mc2_comm_dtype(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>, %c1: tensor<128xf16>, %c2: tensor<128xf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale, %c1, %c2) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 1, 1>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>, tensor<128xf16>, tensor<128xf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-COMM-SHAPE]
func.func @mc2_comm_shape(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>, %c1: tensor<128xbf16>, %c2: tensor<1x128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale, %c1, %c2) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 1, 1>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>, tensor<128xbf16>, tensor<1x128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-WORLD-SIZE]
func.func @mc2_world_size(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 3 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-GROUP]
func.func @mc2_group(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-REDUCE-OP]
func.func @mc2_reduce_op(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "max", comm_turn = 0 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-COMM-TURN]
func.func @mc2_comm_turn(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 1 : i64, stream_mode = 1 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}

// -----

// CHECK: mc2-invalid.mlir:[[# @LINE + 2]]:3: error: 'mc2.quant_matmul_all_reduce' op [MC2-STREAM-MODE]
func.func @mc2_stream_mode(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %scale: tensor<128xbf16>) {
  %out = "mc2.quant_matmul_all_reduce"(%x1, %x2, %scale) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 1, 0, 0, 0>, group = "tp", world_size = 8 : i64, reduce_op = "sum", comm_turn = 0 : i64, stream_mode = 0 : i64, transpose_x2 = false}> : (tensor<32x64xi8>, tensor<64x128xi8>, tensor<128xbf16>) -> tensor<32x128xbf16>
  func.return
}
