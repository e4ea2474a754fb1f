// Nothing qmmar prints reads back as another value: f32 313162240.0 prints as 0x4D9553D0
// (MLIR's bit pattern, which qmmar reads as bits), a splat-looking [0.0, -0.0] and NaN
// payloads print as MLIR's exact hexadecimal blob; printing again changes nothing.
// RUN: qmmar-opt %S/../inputs/f32-constants.mlir > %t.mlir
// RUN: qmmar-opt %t.mlir | diff %t.mlir -
// RUN: filecheck %s < %t.mlir
// Real MLIR reads the same values.
// RUN: %if mlir-opt %{ %mlir-opt --allow-unregistered-dialect %t.mlir | filecheck %s --check-prefix=MLIR %}

// CHECK: arith.constant dense<[0x4D9553D0, 1.500000e+00]> : tensor<2xf32>
// CHECK: arith.constant dense<"0x0000000000000080"> : tensor<2xf32>
// CHECK: arith.constant dense<"0x0100C07F0000807F"> : tensor<2xf32>
// MLIR: arith.constant dense<[0x4D9553D0, 1.500000e+00]> : tensor<2xf32>
// MLIR: arith.constant dense<[0.000000e+00, -0.000000e+00]> : tensor<2xf32>
// MLIR: arith.constant dense<[0x7FC00001, 0x7F800000]> : tensor<2xf32>
