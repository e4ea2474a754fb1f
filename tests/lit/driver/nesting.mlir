// 200 nested regions read, verify and print (Python's default recursion limit stops xDSL at
// ~120), in every tool that reads MLIR. Far deeper nesting is one located error (tests/test_cli.py).
// RUN: qmmar-opt %S/../inputs/nested-200.mlir | filecheck %s
// RUN: qmmar-check %S/../inputs/nested-200.mlir | filecheck %s --check-prefix=CHECK-TOOL
// RUN: not qmmar-run %S/../inputs/nested-200.mlir -w 1 --random-inputs 0 2>&1 | filecheck %s --check-prefix=RUN-TOOL

// CHECK-COUNT-200: builtin.module {
// CHECK-NOT: builtin.module

// CHECK-TOOL: 0 chain(s): 0 legal to fuse, 0 not; 0 marked qmmar.must_fuse and not fusable

// RUN-TOOL: nested-200.mlir: error: no function @main in the module
