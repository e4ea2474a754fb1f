// Every all-reduce gets a line: a chain's verdict, or why it ends no chain; a rule about
// dtypes says what the chain has; a dynamic m says that min-m cannot stop it.
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{min-m=64}' -o /dev/null 2>&1 | filecheck %s
// RUN: qmmar-check %s --report %t.json | filecheck %s --check-prefix=CHECKCMD
// RUN: filecheck %s --input-file %t.json --check-prefix=JSON

// CHECK: no-chain.mlir:[[# @LINE + 5]]:3: remark: not fused: [MC2-SCALE-DTYPE] dequant_scale must be bf16 for bf16 output; for f16 output, f32 with pertoken_scale, else int64 or uint64 (packed by TransQuantParamV2) (here: dequant_scale bf16, output f16, without pertoken_scale)
// CHECKCMD: no-chain.mlir:[[# @LINE + 4]]:3: remark: not fused: [MC2-SCALE-DTYPE] {{.*}} (here: dequant_scale bf16, output f16, without pertoken_scale)
// A bf16 scale with f16 output: the scale is bf16, and the sentence must not read as if it
// were not.
func.func @bf16_scale_f16_output(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<32x128xf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xf16>
  func.return %r : tensor<32x128xf16>
}

// CHECK-NEXT: no-chain.mlir:[[# @LINE + 3]]:3: remark: fused into mc2.quant_matmul_all_reduce
// CHECK-NEXT: no-chain.mlir:[[# @LINE + 2]]:3: note: m is dynamic: min-m = 64 cannot be decided when compiling, so it does not stop this chain (make m static, or mark the function's scenario)
func.func @dynamic_m(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<?x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<?x64xi8>, tensor<64x128xi8>) -> tensor<?x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<?x128xi32>, tensor<128xbf16>) -> tensor<?x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<?x128xbf16>
  func.return %r : tensor<?x128xbf16>
}

// Reshapes that regroup the last dimension: the fused op keeps n last, so no chain.
// CHECK: no-chain.mlir:[[# @LINE + 5]]:3: remark: not a chain: 'qmm.all_reduce' its operand comes through 'tensor.collapse_shape' at {{.*}}no-chain.mlir:[[# @LINE + 4]]:3, a reshape that regroups the last dimension: the fused op keeps n last
func.func @collapse_of_n(%x1: tensor<2x16x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<2x2048xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<2x16x64xi8>, tensor<64x128xi8>) -> tensor<2x16x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<2x16x128xi32>, tensor<128xbf16>) -> tensor<2x16x128xbf16>
  %z = tensor.collapse_shape %y [[0], [1, 2]] : tensor<2x16x128xbf16> into tensor<2x2048xbf16>
  %r = qmm.all_reduce %z on "tp" world_size = 2 : tensor<2x2048xbf16>
  func.return %r : tensor<2x2048xbf16>
}

// CHECK-NEXT: no-chain.mlir:[[# @LINE + 5]]:3: remark: not a chain: 'qmm.all_reduce' its operand comes through 'tensor.expand_shape' at {{.*}}no-chain.mlir:[[# @LINE + 4]]:3, a reshape that regroups the last dimension
func.func @expand_of_n(%x1: tensor<8x64xi8>, %x2: tensor<64x16xi8>, %s: tensor<16xbf16>) -> tensor<8x4x4xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<8x64xi8>, tensor<64x16xi8>) -> tensor<8x16xi32>
  %y = qmm.dequant %acc, %s : (tensor<8x16xi32>, tensor<16xbf16>) -> tensor<8x16xbf16>
  %z = tensor.expand_shape %y [[0], [1, 2]] output_shape [8, 4, 4] : tensor<8x16xbf16> into tensor<8x4x4xbf16>
  %r = qmm.all_reduce %z on "tp" world_size = 2 : tensor<8x4x4xbf16>
  func.return %r : tensor<8x4x4xbf16>
}

// CHECK-NEXT: no-chain.mlir:[[# @LINE + 3]]:3: remark: not a chain: 'qmm.all_reduce' its operand is %g, an argument, not a qmm.dequant (or a qmm.add of one)
// CHECK-NOT: remark
func.func @gradient(%g: tensor<16x16xbf16>) -> tensor<16x16xbf16> {
  %r = qmm.all_reduce %g on "dp" world_size = 2 : tensor<16x16xbf16>
  func.return %r : tensor<16x16xbf16>
}

// CHECKCMD: 2 chain(s): 1 legal to fuse, 1 not; 0 marked qmmar.must_fuse and not fusable
// JSON: "not_chains": [
// JSON-NEXT: {
// JSON-NEXT: "location": "{{.*}}no-chain.mlir:[[# @LINE - 23]]:3",
// JSON-NEXT: "op": "qmm.all_reduce",
// JSON-NEXT: "why": "its operand comes through 'tensor.collapse_shape'
