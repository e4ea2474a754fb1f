// The aclnn-cpp target: one function per func.func, every status checked, owners that
// release on every path, and run-time guards from the rule table for dynamic dimensions.
// RUN: qmmar-opt %s -p lower-mc2-to-aclnn -t aclnn-cpp | filecheck %s
// RUN: not qmmar-opt %S/../../../examples/two_layers.mlir -p fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn -t aclnn-cpp 2>&1 | filecheck %s --check-prefix=NOCPP

// CHECK: #include "aclnnop/aclnn_quant_matmul_all_reduce_v3.h"
// CHECK: struct TensorOwner {
// CHECK: int32_t qmmar_dyn(aclrtStream stream, HcclComm comm, void *x1, void *x2, void *s, void *pt, void *result0, int64_t x1_d0, int64_t pt_d0, int64_t result0_d0) {
// CHECK-NEXT:   char [[G:v[0-9]+]][128] = {};
// CHECK-NEXT:   QMMAR_CALL("{{.*}}emit-cpp.mlir:[[# @LINE + 19]]:1", "HcclGetCommName", HcclGetCommName(comm, [[G]]));
// CHECK-NEXT:   TensorOwner [[X1:v[0-9]+]];
// CHECK-NEXT:   QMMAR_CREATE({{.*}}, "aclCreateTensor", [[X1]], qmmar_tensor({static_cast<int64_t>(x1_d0), static_cast<int64_t>(64)}, ACL_INT8, x1, false));
// CHECK:        QMMAR_CREATE({{.*}}, "aclCreateTensor", {{v[0-9]+}}, qmmar_tensor({static_cast<int64_t>(result0_d0), static_cast<int64_t>(128)}, ACL_BF16, result0, false));
// CHECK-NEXT:   if (!(x1_d0 > INT64_C(0) && pt_d0 > INT64_C(0) && result0_d0 > INT64_C(0))) return qmmar_guard({{.*}}, "[MC2-NONEMPTY] no operand or result may be an empty tensor");
// CHECK-NEXT:   if (!(x1_d0 <= INT64_C(2147483647))) return qmmar_guard({{.*}}, "[MC2-M-MAX] m (b*s for 3-D x1) must be at most 2147483647");
// CHECK-NEXT:   if (!(result0_d0 == x1_d0)) return qmmar_guard({{.*}}, "[MC2-OUT-SHAPE] the output shape must be x1's leading dimensions followed by n");
// CHECK-NEXT:   if (!(pt_d0 == x1_d0)) return qmmar_guard({{.*}}, "[MC2-PERTOKEN-SHAPE] pertoken_scale must be [m] (m = b*s for 3-D x1)");
// CHECK-NEXT:   uint64_t [[WS:v[0-9]+]] = 0;
// CHECK-NEXT:   aclOpExecutor *[[EX:v[0-9]+]] = nullptr;
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclnnQuantMatmulAllReduceV3GetWorkspaceSize", aclnnQuantMatmulAllReduceV3GetWorkspaceSize({{.*}}, nullptr, nullptr, {{.*}}, nullptr, nullptr, [[G]], "sum", 0, 1, {{.*}}, &[[WS]], &[[EX]]));
// CHECK-NEXT:   DeviceOwner [[BUF:v[0-9]+]];
// CHECK-NEXT:   if ([[WS]] > 0) QMMAR_CALL({{.*}}, "aclrtMalloc", aclrtMalloc(&[[BUF]].p, [[WS]], ACL_MEM_MALLOC_HUGE_FIRST));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclnnQuantMatmulAllReduceV3", aclnnQuantMatmulAllReduceV3([[BUF]].p, [[WS]], [[EX]], stream));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclrtSynchronizeStream", aclrtSynchronizeStream(stream));
// CHECK-NEXT:   [[BUF]].reset();
// CHECK:        [[X1]].reset();
// CHECK-NEXT:   return 0;
// CHECK-NEXT: }
func.func @dyn(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %pt: tensor<?xf32>) -> tensor<?x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<?xf32>) on "tp" world_size = 8 : tensor<?x64xi8>, tensor<64x128xi8> -> tensor<?x128xbf16>
  func.return %o : tensor<?x128xbf16>
}

// NOCPP: two_layers.mlir:{{.*}}: error: 'tensor.collapse_shape' op has no aclnn C++ form
