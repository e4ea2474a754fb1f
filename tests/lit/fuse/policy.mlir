// Policy: MC2 is for the full (prefill) scenario; int8 communication pays only when the
// chain is communication-bound.  Check-only mode, must-fuse marks and the JSON report.
// RUN: qmmar-opt %s -p fuse-quant-matmul-all-reduce -o /dev/null 2>&1 | filecheck %s --check-prefix=AUTO
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{min-m=64}' -o /dev/null 2>&1 | filecheck %s --check-prefix=MINM
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{scenario=decode}' -o /dev/null 2>&1 | filecheck %s --check-prefix=DECODE
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{scenario=prefill drop-compute-bound-int8-comm=true}' 2>/dev/null | filecheck %s --check-prefix=DROP
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{check-only=true report="%t.json"}' 2>&1 | filecheck %s --check-prefix=MUST
// RUN: filecheck %s --input-file %t.json --check-prefix=JSON
// RUN: not qmmar-check %s 2>&1 | filecheck %s --check-prefix=CHECKCMD

// A decode function whose chain is marked must-fuse: check-only mode and qmmar-check fail.
// AUTO: policy.mlir:[[# @LINE + 13]]:3: remark: not fused: [POLICY-DECODE] the function is marked qmmar.scenario = "decode"
// MINM: policy.mlir:[[# @LINE + 12]]:3: remark: not fused: [POLICY-DECODE]
// DECODE: policy.mlir:[[# @LINE + 11]]:3: remark: not fused: [POLICY-DECODE] scenario=decode
// MUST: policy.mlir:[[# @LINE + 10]]:3: remark: not fused: [POLICY-DECODE]
// MUST: policy.mlir:[[# @LINE + 9]]:3: error: a chain marked qmmar.must_fuse cannot be fused: [POLICY-DECODE] the function is marked
// JSON: "location": "{{.*}}policy.mlir:[[# @LINE + 8]]:3"
// JSON-NEXT: "chain": "qmm.matmul -> qmm.dequant -> qmm.all_reduce",
// JSON-NEXT: "legal": false,
// JSON-NEXT: "rewritten": false,
// JSON-NEXT: "rule": "POLICY-DECODE",
// JSON: "must_fuse": true,
// CHECKCMD: policy.mlir:[[# @LINE + 2]]:3: remark: not fused: [POLICY-DECODE]
func.func @decode_step(%x1: tensor<4x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<4x128xbf16> attributes {qmmar.scenario = "decode"} {
  %acc = qmm.matmul %x1, %x2 : (tensor<4x64xi8>, tensor<64x128xi8>) -> tensor<4x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<4x128xi32>, tensor<128xbf16>) -> tensor<4x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 {qmmar.must_fuse} : tensor<4x128xbf16>
  func.return %r : tensor<4x128xbf16>
}

// AUTO-NOT: policy.mlir:[[# @LINE + 4]]:3: remark
// MINM: policy.mlir:[[# @LINE + 3]]:3: remark: not fused: [POLICY-MIN-M] m = 32 is below min-m = 64
// DECODE: policy.mlir:[[# @LINE + 2]]:3: remark: not fused: [POLICY-DECODE] scenario=decode
func.func @small_m(%x1: tensor<32x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<32x128xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<32x64xi8>, tensor<64x128xi8>) -> tensor<32x128xi32>
  %y = qmm.dequant %acc, %s : (tensor<32x128xi32>, tensor<128xbf16>) -> tensor<32x128xbf16>
  %r = qmm.all_reduce %y on "tp" world_size = 2 : tensor<32x128xbf16>
  func.return %r : tensor<32x128xbf16>
}

// A deep k and a thin n: compute dominates, so int8 communication buys nothing.
// AUTO: policy.mlir:[[# @LINE + 6]]:3: remark: fused into mc2.quant_matmul_all_reduce
// AUTO-NEXT: policy.mlir:[[# @LINE + 5]]:3: note: int8 communication pays only when communication-bound; this chain is compute-bound: compute {{.*}} us, communication {{.*}} us (COST-COMPUTE-BOUND)
// DROP-LABEL: func.func @compute_bound
// DROP-NEXT: %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<16xbf16>) on "tp" world_size = 2 : tensor<4096x32768xi8>, tensor<32768x16xi8> -> tensor<4096x16xbf16>
// CHECKCMD: 3 chain(s): 2 legal to fuse, 1 not; 1 marked qmmar.must_fuse and not fusable
func.func @compute_bound(%x1: tensor<4096x32768xi8>, %x2: tensor<32768x16xi8>, %s: tensor<16xbf16>, %s1: tensor<16xbf16>, %s2: tensor<16xbf16>) -> tensor<4096x16xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<4096x32768xi8>, tensor<32768x16xi8>) -> tensor<4096x16xi32>
  %y = qmm.dequant %acc, %s : (tensor<4096x16xi32>, tensor<16xbf16>) -> tensor<4096x16xbf16>
  %q = qmm.quant %y, %s1 : (tensor<4096x16xbf16>, tensor<16xbf16>) -> tensor<4096x16xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<4096x16xi8> -> tensor<2x2048x16xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<16xbf16>) s2(%s2 : tensor<16xbf16>) : tensor<2x2048x16xi8> -> tensor<2048x16xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<2048x16xi8> -> tensor<4096x16xi8>
  %o = qmm.dequant %g, %s2 : (tensor<4096x16xi8>, tensor<16xbf16>) -> tensor<4096x16xbf16>
  func.return %o : tensor<4096x16xbf16>
}
