// Bad input: one located error line on stderr, exit code 1, no Python traceback.
// RUN: not qmmar-opt %S/../inputs/malformed.mlir 2>&1 | filecheck %s --check-prefix=MALFORMED
// RUN: not qmmar-opt %S/../inputs/unknown-op.mlir 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not qmmar-opt %S/../inputs/wrong-type.mlir 2>&1 | filecheck %s --check-prefix=TYPE
// RUN: not qmmar-opt %S/../inputs/does-not-exist.mlir 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: not qmmar-opt %S/../inputs/malformed.mlir -p no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// RUN: not qmmar-opt %S/../inputs/wrong-type.mlir 2> %t.err
// RUN: not grep -q Traceback %t.err

// MALFORMED: malformed.mlir:2:23: error: operand expected
// MALFORMED-NOT: Traceback
// UNKNOWN: unknown-op.mlir:2:{{[0-9]+}}: error: Operation qmm.frobnicate is not registered
// TYPE: wrong-type.mlir:2:3: error: 'qmm.quant' op x and scale must both be f16 or both bf16
// MISSING: does-not-exist.mlir: error: cannot read the input: No such file or directory
// PASS: qmmar-opt: error: Unrecognized passes: ['no-such-pass']
