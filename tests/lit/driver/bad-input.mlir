// Bad input: one located error line on stderr, exit code 1, no Python traceback.
// (tests/test_cli.py checks, for every file of ../inputs that must fail, that the exit code is
// 1 and stderr is this one line.)
// RUN: not qmmar-opt %S/../inputs/malformed.mlir 2>&1 | filecheck %s --check-prefix=MALFORMED
// RUN: not qmmar-opt %S/../inputs/unknown-op.mlir 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not qmmar-opt %S/../inputs/wrong-type.mlir 2>&1 | filecheck %s --check-prefix=TYPE
// RUN: not qmmar-opt %S/../inputs/does-not-exist.mlir 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: not qmmar-opt %S/../inputs/malformed.mlir -p no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// RUN: not qmmar-opt %S/../inputs/not-utf8.mlir 2>&1 | filecheck %s --check-prefix=UTF8 --match-full-lines
// RUN: not qmmar-opt %S/../inputs/dense-paren.mlir 2>&1 | filecheck %s --check-prefix=PAREN --match-full-lines
// RUN: not qmmar-opt %S/../inputs/unclosed-quote.mlir 2>&1 | filecheck %s --check-prefix=QUOTE --match-full-lines
// RUN: not qmmar-opt %S/../inputs/world-size-type.mlir 2>&1 | filecheck %s --check-prefix=WSTYPE --match-full-lines
// RUN: not qmmar-opt %S/../inputs/bad-reassociation.mlir 2>&1 | filecheck %s --check-prefix=REASSOC --match-full-lines
// RUN: not qmmar-opt %S/../inputs/every-op.mlir -o %t.no-such-dir/out.mlir 2>&1 | filecheck %s --check-prefix=NODIR --match-full-lines
// RUN: not qmmar-opt %S/../inputs/every-op.mlir -o %S 2>&1 | filecheck %s --check-prefix=ISDIR --match-full-lines
// RUN: not qmmar-opt < %S/../inputs/wrong-type.mlir 2>&1 | filecheck %s --check-prefix=STDIN --match-full-lines
// RUN: not qmmar-opt - < %S/../inputs/wrong-type.mlir 2>&1 | filecheck %s --check-prefix=STDIN --match-full-lines
// RUN: not qmmar-opt %S/../inputs/wrong-type.mlir 2> %t.err
// RUN: not grep -q Traceback %t.err

// MALFORMED: malformed.mlir:2:23: error: operand expected
// MALFORMED-NOT: Traceback
// UNKNOWN: unknown-op.mlir:2:{{[0-9]+}}: error: Operation qmm.frobnicate is not registered
// TYPE: wrong-type.mlir:2:3: error: 'qmm.quant' op x and scale must both be f16 or both bf16
// MISSING: does-not-exist.mlir: error: cannot read the input: No such file or directory
// PASS: qmmar-opt: error: unknown pass 'no-such-pass' in -p: qmmar-opt --help lists the passes
// UTF8: {{.*}}not-utf8.mlir:4:7: error: the input is not UTF-8 text (byte 0xe9)
// PAREN: {{.*}}dense-paren.mlir:2:42: error: expected a complex value (re, im) for element type complex<f32>
// QUOTE: {{.*}}unclosed-quote.mlir:2:29: error: expected '"' in string literal: it is not closed on its line
// WSTYPE: {{.*}}world-size-type.mlir:2:3: error: 'qmm.all_reduce' op qmm.all_reduce works on f16 or bf16
// REASSOC: {{.*}}bad-reassociation.mlir:2:3: error: 'tensor.collapse_shape' op All inner arrays must be contiguous: [[0 : i64, 1 : i64], [1 : i64]]
// NODIR: {{.*}}.no-such-dir/out.mlir: error: cannot write the output: No such file or directory
// ISDIR: {{.*}}driver: error: cannot write the output: Is a directory
// STDIN: <stdin>:2:3: error: 'qmm.quant' op x and scale must both be f16 or both bf16
