// The generic form qmmar prints is MLIR's: real mlir-opt reads it, and what mlir-opt prints
// back reads into qmmar-opt unchanged.
// REQUIRES: mlir-opt
// RUN: qmmar-opt %S/../inputs/every-op.mlir --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic > %t.mlir
// RUN: qmmar-opt %t.mlir --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic | diff %t.mlir -
// RUN: qmmar-opt %t.mlir | filecheck %s
// The aclnn dialect too, after lowering:
// RUN: qmmar-opt %S/../inputs/every-op.mlir -p 'lower-mc2-to-aclnn{weight-format=nz}' --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic > %t.aclnn.mlir
// RUN: qmmar-opt %t.aclnn.mlir --print-op-generic | %mlir-opt --allow-unregistered-dialect --mlir-print-op-generic | diff %t.aclnn.mlir -
// RUN: qmmar-opt %t.aclnn.mlir | filecheck %s --check-prefix=ACLNN
// ACLNN-DAG: aclnn.quant_matmul_all_reduce_v3_get_workspace_size
// ACLNN-DAG: aclnn.trans_matmul_weight
// ACLNN-DAG: aclnn.trans_quant_param_v2

// CHECK: qmm.matmul %arg0, %arg1 bias(%arg2)
// CHECK: qmm.matmul %arg0, %arg10 transpose_x2 = true
// CHECK: qmm.dequant %0, %arg3 pertoken(%arg7)
// CHECK: qmm.add
// CHECK: qmm.quant
// CHECK: qmm.alltoall {{.*}} on "tp" world_size = 8
// CHECK: qmm.reducesum {{.*}} s1(%arg5 : tensor<128xbf16>) s2(%arg6 : tensor<128xbf16>)
// CHECK: qmm.allgather {{.*}} on "tp" world_size = 8
// CHECK: qmm.dequant %7, %arg6
// CHECK: qmm.all_reduce {{.*}} on "tp" world_size = 8
// CHECK: mc2.trans_quant_param %arg8 : tensor<128xf32> -> tensor<128xui64>
// CHECK: mc2.quant_matmul_all_reduce %arg0, %arg1 bias(%arg2 : tensor<128xi32>) x3(%arg4 : tensor<32x128xbf16>) dequant_scale(%arg3 : tensor<128xbf16>) pertoken_scale(%arg7 : tensor<32xf32>) comm_quant_scale_1(%arg5 : tensor<128xbf16>) comm_quant_scale_2(%arg6 : tensor<128xbf16>) on "tp" world_size = 8
// CHECK: mc2.quant_matmul_all_reduce %arg0, %arg10 dequant_scale(%10 : tensor<128xui64>) on "tp" world_size = 8 transpose_x2 = true
