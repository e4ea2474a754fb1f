// The pass's options are typed: a choice not offered, a number that is not one, or a cost
// parameter that is not positive stops the pipeline before it runs, with one line naming the
// option.  Numbers read as a user writes them.
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{scenario=fast}' 2>&1 | filecheck %s --check-prefix=SCENARIO
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{remarks=some}' 2>&1 | filecheck %s --check-prefix=REMARKS
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{int8-tops=0}' 2>&1 | filecheck %s --check-prefix=ZERO
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{link-gbps=-3}' 2>&1 | filecheck %s --check-prefix=NEGATIVE
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{link-gbps=fast}' 2>&1 | filecheck %s --check-prefix=WORD
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{check-only=yes}' 2>&1 | filecheck %s --check-prefix=BOOL
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{min-m=-1}' 2>&1 | filecheck %s --check-prefix=MINM
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{int8-tops=320 link-gbps=1e9 check-only=false}' 2>&1 | filecheck %s --check-prefix=NUMBERS
// RUN: qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{int8-tops=1e9 link-gbps=0.5}' 2>&1 | filecheck %s --check-prefix=COMM-BOUND

// SCENARIO: qmmar-opt: error: fuse-quant-matmul-all-reduce: scenario must be one of auto, prefill, decode, not 'fast'
// REMARKS: qmmar-opt: error: fuse-quant-matmul-all-reduce: remarks must be one of missed, all, none, not 'some'
// ZERO: qmmar-opt: error: fuse-quant-matmul-all-reduce: int8-tops must be a positive number, not 0
// NEGATIVE: qmmar-opt: error: fuse-quant-matmul-all-reduce: link-gbps must be a positive number, not -3
// WORD: qmmar-opt: error: fuse-quant-matmul-all-reduce: link-gbps must be a number, not 'fast'
// BOOL: qmmar-opt: error: fuse-quant-matmul-all-reduce: check-only must be true or false, not 'yes'
// MINM: qmmar-opt: error: fuse-quant-matmul-all-reduce: min-m must be a whole number of rows, at least 0, not -1

// A small chain: 2*64*32*32 int8 operations against 2 * 1/2 * 64*32 bf16 values over one link.
// With 320 TOPS and 1e9 GB/s it is compute-bound by far, and the note shows it in digits.
// NUMBERS: options.mlir:[[# @LINE + 4]]:3: remark: fused into mc2.quant_matmul_all_reduce
// NUMBERS-NEXT: options.mlir:[[# @LINE + 3]]:3: note: int8 communication pays only when communication-bound; this chain is compute-bound: compute 0.0004 us, communication 0.0000 us (COST-COMPUTE-BOUND)
// COMM-BOUND-NOT: note
func.func @small(%x1: tensor<64x32xi8>, %x2: tensor<32x32xi8>, %s: tensor<32xbf16>, %s1: tensor<32xbf16>, %s2: tensor<32xbf16>) -> tensor<64x32xbf16> {
  %acc = qmm.matmul %x1, %x2 : (tensor<64x32xi8>, tensor<32x32xi8>) -> tensor<64x32xi32>
  %y = qmm.dequant %acc, %s : (tensor<64x32xi32>, tensor<32xbf16>) -> tensor<64x32xbf16>
  %q = qmm.quant %y, %s1 : (tensor<64x32xbf16>, tensor<32xbf16>) -> tensor<64x32xi8>
  %a = qmm.alltoall %q on "tp" world_size = 2 : tensor<64x32xi8> -> tensor<2x32x32xi8>
  %r = qmm.reducesum %a s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<2x32x32xi8> -> tensor<32x32xi8>
  %g = qmm.allgather %r on "tp" world_size = 2 : tensor<32x32xi8> -> tensor<64x32xi8>
  %o = qmm.dequant %g, %s2 : (tensor<64x32xi8>, tensor<32xbf16>) -> tensor<64x32xbf16>
  func.return %o : tensor<64x32xbf16>
}
