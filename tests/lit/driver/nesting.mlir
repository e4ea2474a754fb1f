// 200 nested regions read, verify and print (Python's default recursion limit stops xDSL at
// ~120). Far deeper nesting is one located error (tests/test_cli.py).
// RUN: qmmar-opt %S/../inputs/nested-200.mlir | filecheck %s

// CHECK-COUNT-200: builtin.module {
// CHECK-NOT: builtin.module
