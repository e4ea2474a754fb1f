// qmm.reduce_scatter round-trips in its custom form and in the generic form of SEMANTICS.md,
// which real MLIR reads and prints back unchanged (with its properties sorted by name).
// RUN: qmmar-opt %s | qmmar-opt | filecheck %s
// RUN: qmmar-opt %s --print-op-generic | qmmar-opt --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: %if mlir-opt %{ qmmar-opt %s --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic > %t.mlir %}
// RUN: %if mlir-opt %{ qmmar-opt %t.mlir --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic | diff %t.mlir - %}
// RUN: %if mlir-opt %{ filecheck %s --check-prefix=MLIR < %t.mlir %}

func.func @reduce_scatter(%y: tensor<64x256xbf16>, %h: tensor<2x8x16xf16>, %d: tensor<?x16xbf16>) {
  // CHECK: %rs = qmm.reduce_scatter %y on "tp" world_size = 4 : tensor<64x256xbf16> -> tensor<16x256xbf16>
  // GENERIC: "qmm.reduce_scatter"(%y) <{group = "tp", world_size = 4 : i64, reduce_op = "sum"}> : (tensor<64x256xbf16>) -> tensor<16x256xbf16>
  // MLIR: "qmm.reduce_scatter"(%{{.*}}) <{group = "tp", reduce_op = "sum", world_size = 4 : i64}> : (tensor<64x256xbf16>) -> tensor<16x256xbf16>
  %rs = qmm.reduce_scatter %y on "tp" world_size = 4 : tensor<64x256xbf16> -> tensor<16x256xbf16>
  // CHECK: %rs3 = qmm.reduce_scatter %h on "sp" world_size = 2 : tensor<2x8x16xf16> -> tensor<1x8x16xf16>
  %rs3 = qmm.reduce_scatter %h on "sp" world_size = 2 reduce_op = "sum" : tensor<2x8x16xf16> -> tensor<1x8x16xf16>
  // A dynamic m passes; the interpreter checks it at run time.
  // CHECK: %rsd = qmm.reduce_scatter %d on "tp" world_size = 8 : tensor<?x16xbf16> -> tensor<?x16xbf16>
  %rsd = qmm.reduce_scatter %d on "tp" world_size = 8 : tensor<?x16xbf16> -> tensor<?x16xbf16>
  func.return
}
