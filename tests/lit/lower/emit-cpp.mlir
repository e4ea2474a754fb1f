// The aclnn-cpp target: checks first (sizes, the rule table's guards, the result shapes), then
// the communicator's rank count, then the calls, every status checked, owners released.
// RUN: qmmar-opt %s -p lower-mc2-to-aclnn -t aclnn-cpp | filecheck %s
// RUN: qmmar-opt %s -p lower-mc2-to-aclnn -t 'aclnn-cpp{header=true}' | filecheck %s --check-prefix=HEADER
// RUN: not qmmar-opt %S/../../../examples/two_layers.mlir -p fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn -t aclnn-cpp 2>&1 | filecheck %s --check-prefix=NOCPP

// CHECK: #include <utility>
// CHECK: #include "aclnnop/aclnn_quant_matmul_all_reduce_v3.h"
// CHECK: class Owner {
// CHECK:   Owner(const Owner &) = delete;
// CHECK: int32_t qmmar_dyn(aclrtStream stream, HcclComm comm, const void *x1, const void *x2, const void *s, const void *pt, void *result0, int64_t x1_d0, int64_t pt_d0, int64_t result0_d0) noexcept {
// CHECK-NEXT:   if (!qmmar_extent_ok({x1_d0, INT64_C(64)}, 1)) return qmmar_guard("{{.*}}emit-cpp.mlir:[[# @LINE + 31]]:1", "[SIZE] x1: a negative dimension, or a byte size beyond int64");
// CHECK:        if (!((x1_d0 > INT64_C(0)) && (pt_d0 > INT64_C(0)))) return qmmar_guard({{.*}}, "[MC2-NONEMPTY] no operand or result may be an empty tensor");
// CHECK-NEXT:   if (!(x1_d0 <= INT64_C(2147483647))) return qmmar_guard({{.*}}, "[MC2-M-MAX] m (b*s for 3-D x1) must be at most 2147483647");
// CHECK-NEXT:   if (!(pt_d0 == x1_d0)) return qmmar_guard({{.*}}, "[MC2-PERTOKEN-SHAPE] pertoken_scale must be [m] (m = b*s for 3-D x1)");
// CHECK-NEXT:   if (!(x1_d0 == result0_d0)) return qmmar_guard({{.*}}, "[RESULT-SHAPE] result0 must have the shape the function computes");
// CHECK-NEXT:   uint32_t rank_size = 0;
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "HcclGetRankSize", HcclGetRankSize(comm, &rank_size));
// CHECK-NEXT:   if (rank_size != 8u) return qmmar_rank_guard({{.*}}, rank_size, 8u);
// CHECK-NEXT:   char [[G:v[0-9]+]][COMM_NAME_MAX_LENGTH] = {};
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "HcclGetCommName", HcclGetCommName(comm, [[G]]));
// CHECK-NEXT:   TensorOwner [[X1:v[0-9]+]];
// CHECK-NEXT:   QMMAR_CREATE({{.*}}, "aclCreateTensor", [[X1]], qmmar_tensor({x1_d0, INT64_C(64)}, ACL_INT8, const_cast<void *>(x1), false));
// CHECK:        QMMAR_CREATE({{.*}}, "aclCreateTensor", {{v[0-9]+}}, qmmar_tensor({x1_d0, INT64_C(128)}, ACL_BF16, result0, false));
// CHECK-NEXT:   uint64_t [[WS:v[0-9]+]] = 0;
// CHECK-NEXT:   ExecutorOwner [[EX:v[0-9]+]];
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclnnQuantMatmulAllReduceV3GetWorkspaceSize", aclnnQuantMatmulAllReduceV3GetWorkspaceSize({{.*}}, nullptr, nullptr, {{.*}}, nullptr, nullptr, [[G]], "sum", 0, 1, {{.*}}, &[[WS]], [[EX]].out()));
// CHECK-NEXT:   QMMAR_REPEATABLE({{.*}}, [[EX]]);
// CHECK-NEXT:   DeviceOwner [[BUF:v[0-9]+]](stream);
// CHECK-NEXT:   if ([[WS]] > 0) QMMAR_CALL({{.*}}, "aclrtMalloc", aclrtMalloc([[BUF]].out(), [[WS]], ACL_MEM_MALLOC_HUGE_FIRST));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclnnQuantMatmulAllReduceV3", aclnnQuantMatmulAllReduceV3([[BUF]].get(), [[WS]], [[EX]].get(), stream));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclrtSynchronizeStream", aclrtSynchronizeStream(stream));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclrtFree", [[BUF]].reset());
// CHECK:        QMMAR_CALL({{.*}}, "aclDestroyTensor", [[X1]].reset());
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclrtSynchronizeStream", aclrtSynchronizeStream(stream));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclDestroyAclOpExecutor", [[EX]].reset());
// CHECK-NEXT:   return 0;
// CHECK-NEXT: }
// HEADER: #ifndef QMMAR_GENERATED_ACLNN_H
// HEADER: #include "hccl/hccl.h"
// HEADER: int32_t qmmar_dyn(aclrtStream stream, HcclComm comm, const void *x1, const void *x2, const void *s, const void *pt, void *result0, int64_t x1_d0, int64_t pt_d0, int64_t result0_d0) noexcept;
// HEADER: #endif
func.func @dyn(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %pt: tensor<?xf32>) -> tensor<?x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<?xf32>) on "tp" world_size = 8 : tensor<?x64xi8>, tensor<64x128xi8> -> tensor<?x128xbf16>
  func.return %o : tensor<?x128xbf16>
}

// A dynamic 3-D x1: the guard's product is checked (no signed overflow) and the whole
// expression is negated, so that it compiles with -Werror and means what it says.
// CHECK-LABEL: int32_t qmmar_dyn3d(
// CHECK: if (!(qmmar_mul_sat(x1_d0, INT64_C(16)) <= INT64_C(2147483647))) return qmmar_guard({{.*}}, "[MC2-M-MAX]
func.func @dyn3d(%x1: tensor<?x16x128xi8>, %x2: tensor<128x64xi8>, %s: tensor<64xbf16>) -> tensor<?x16x64xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<64xbf16>) on "tp" world_size = 8 : tensor<?x16x128xi8>, tensor<128x64xi8> -> tensor<?x16x64xbf16>
  func.return %o : tensor<?x16x64xbf16>
}

// NOCPP: two_layers.mlir:{{.*}}: error: 'tensor.collapse_shape' op has no aclnn C++ form: the aclnn-cpp target takes what lower-mc2-to-aclnn and lower-qmm-to-aclnn produce
