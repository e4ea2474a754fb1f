// The aclnn-cpp target: prepare (checks, the communicator's rank count, every first phase for
// its workspace size, the arena), run (checks, the calls, every status checked, owners
// released; no allocation, no synchronisation), release and the one-shot entry.
// RUN: qmmar-opt %s -p lower-mc2-to-aclnn -t aclnn-cpp | filecheck %s
// RUN: qmmar-opt %s -p lower-mc2-to-aclnn -t 'aclnn-cpp{header=true}' | filecheck %s --check-prefix=HEADER
// RUN: qmmar-opt %s -p lower-mc2-to-aclnn -t 'aclnn-cpp{memory-plan=true}' | filecheck %s --check-prefix=PLAN
// RUN: not qmmar-opt %S/../../../examples/two_layers.mlir -p fuse-quant-matmul-all-reduce,lower-mc2-to-aclnn -t aclnn-cpp 2>&1 | filecheck %s --check-prefix=NOCPP

// CHECK: #include <utility>
// CHECK: #include "aclnnop/aclnn_quant_matmul_all_reduce_v3.h"
// CHECK: class Owner {
// CHECK:   Owner(const Owner &) = delete;
// CHECK: int64_t qmmar_place(
// CHECK:      // memory plan of @dyn: kept from prepare to release: 0, arena slots: 1
// CHECK-NEXT: //   slot 0: workspace of aclnnQuantMatmulAllReduceV3, sized at prepare, live at ops 11..11
// CHECK-NEXT: struct qmmar_dyn_plan {
// CHECK:      extern "C" int32_t qmmar_dyn_release(qmmar_dyn_plan *plan) noexcept {
// CHECK:        if (plan->arena != nullptr) qmmar_keep_first(status, aclrtFree(plan->arena));
// CHECK:      extern "C" int32_t qmmar_dyn_prepare(qmmar_dyn_plan **out, aclrtStream stream, HcclComm comm, const void *x1, const void *x2, const void *s, const void *pt, void *result0, int64_t x1_d0, int64_t pt_d0, int64_t result0_d0) noexcept {
// CHECK:        if (out == nullptr) return qmmar_guard({{.*}}, "[PLAN-NULL] out must not be null");
// CHECK-NEXT:   if (!qmmar_extent_ok({x1_d0, INT64_C(64)}, 1)) return qmmar_guard("{{.*}}emit-cpp.mlir:[[# @LINE + 53]]:1", "[SIZE] x1: a negative dimension, or a byte size beyond int64");
// CHECK:        if (!((x1_d0 > INT64_C(0)) && (pt_d0 > INT64_C(0)))) return qmmar_guard({{.*}}, "[MC2-NONEMPTY] no operand or result may be an empty tensor");
// CHECK-NEXT:   if (!(x1_d0 <= INT64_C(2147483647))) return qmmar_guard({{.*}}, "[MC2-M-MAX] m (b*s for 3-D x1) must be at most 2147483647");
// CHECK-NEXT:   if (!(pt_d0 == x1_d0)) return qmmar_guard({{.*}}, "[MC2-PERTOKEN-SHAPE] pertoken_scale must be [m] (m = b*s for 3-D x1)");
// CHECK-NEXT:   if (!(x1_d0 == result0_d0)) return qmmar_guard({{.*}}, "[RESULT-SHAPE] result0 must have the shape the function computes");
// CHECK-NEXT:   uint32_t rank_size = 0;
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "HcclGetRankSize", HcclGetRankSize(comm, &rank_size));
// CHECK-NEXT:   if (rank_size != 8u) return qmmar_rank_guard({{.*}}, rank_size, 8u);
// CHECK-NEXT:   qmmar_dyn_plan *const plan = new (std::nothrow) qmmar_dyn_plan{};
// CHECK:        PlanGuard<qmmar_dyn_plan> guard(plan, stream, qmmar_dyn_release);
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "HcclGetCommName", HcclGetCommName(comm, plan->comm_name[0]));
// CHECK-NEXT:   TensorOwner [[Q1:v[0-9]+]];
// CHECK-NEXT:   QMMAR_CREATE({{.*}}, "aclCreateTensor", [[Q1]], qmmar_tensor({x1_d0, INT64_C(64)}, ACL_INT8, nullptr, false));
// CHECK:        QMMAR_REPEATABLE({{.*}});
// CHECK-NEXT:   plan->size[0] = static_cast<int64_t>({{v[0-9]+}});
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclDestroyAclOpExecutor", {{v[0-9]+}}.reset());
// CHECK:        const int64_t arena_bytes = qmmar_place(plan->size, kFirst, kLast, plan->offset);
// CHECK:        if (arena_bytes > 0) QMMAR_CALL({{.*}}, "aclrtMalloc", aclrtMalloc(&plan->arena, static_cast<size_t>(arena_bytes), ACL_MEM_MALLOC_HUGE_FIRST));
// CHECK-NEXT:   *out = guard.release();
// CHECK:      extern "C" int32_t qmmar_dyn_run(qmmar_dyn_plan *plan, aclrtStream stream, HcclComm comm, {{.*}}) noexcept {
// CHECK-NOT:    aclrtSynchronizeStream
// CHECK-NOT:    aclrtMalloc
// CHECK:        QMMAR_CREATE({{.*}}, "aclCreateTensor", [[X1:v[0-9]+]], qmmar_tensor({x1_d0, INT64_C(64)}, ACL_INT8, const_cast<void *>(x1), false));
// CHECK:        QMMAR_CREATE({{.*}}, "aclCreateTensor", {{v[0-9]+}}, qmmar_tensor({x1_d0, INT64_C(128)}, ACL_BF16, result0, false));
// CHECK-NEXT:   uint64_t [[WS:v[0-9]+]] = 0;
// CHECK-NEXT:   ExecutorOwner [[EX:v[0-9]+]];
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclnnQuantMatmulAllReduceV3GetWorkspaceSize", aclnnQuantMatmulAllReduceV3GetWorkspaceSize({{.*}}, nullptr, nullptr, {{.*}}, nullptr, nullptr, plan->comm_name[0], "sum", 0, 1, {{.*}}, &[[WS]], [[EX]].out()));
// CHECK-NEXT:   QMMAR_REPEATABLE({{.*}}, [[EX]]);
// CHECK-NEXT:   if ([[WS]] > static_cast<uint64_t>(plan->size[0])) return qmmar_guard({{.*}}, "[PLAN-WORKSPACE] aclnnQuantMatmulAllReduceV3 needs a larger workspace than at prepare");
// CHECK-NEXT:   void *const [[BUF:v[0-9]+]] = [[WS]] > 0 ? qmmar_at(plan->arena, plan->offset[0]) : nullptr;
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclnnQuantMatmulAllReduceV3", aclnnQuantMatmulAllReduceV3([[BUF]], [[WS]], [[EX]].get(), stream));
// CHECK:        QMMAR_CALL({{.*}}, "aclDestroyTensor", [[X1]].reset());
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclDestroyAclOpExecutor", [[EX]].reset());
// CHECK-NEXT:   return 0;
// CHECK-NEXT: }
// CHECK:      extern "C" int32_t qmmar_dyn(aclrtStream stream, {{.*}}) noexcept {
// CHECK:        const int32_t prepared = qmmar_dyn_prepare(&plan, stream, comm, x1, x2, s, pt, result0, x1_d0, pt_d0, result0_d0);
// CHECK:        const int32_t ran = qmmar_dyn_run(plan, stream, comm, x1, x2, s, pt, result0, x1_d0, pt_d0, result0_d0);
// CHECK-NEXT:   const int32_t synced = qmmar_wait(stream);
// CHECK-NEXT:   const int32_t released = qmmar_dyn_release(plan);
// HEADER: #ifndef QMMAR_GENERATED_ACLNN_H
// HEADER: #include "hccl/hccl.h"
// HEADER: void qmmar_set_sync_timeout(int32_t milliseconds) QMMAR_NOEXCEPT;
// HEADER-NEXT: int32_t qmmar_sync_timeout(void) QMMAR_NOEXCEPT;
// HEADER: typedef struct qmmar_dyn_plan qmmar_dyn_plan;
// HEADER-NEXT: int32_t qmmar_dyn_prepare(qmmar_dyn_plan **plan, aclrtStream stream, HcclComm comm, const void *x1, const void *x2, const void *s, const void *pt, void *result0, int64_t x1_d0, int64_t pt_d0, int64_t result0_d0) QMMAR_NOEXCEPT;
// HEADER-NEXT: int32_t qmmar_dyn_run(qmmar_dyn_plan *plan, aclrtStream stream, {{.*}}) QMMAR_NOEXCEPT;
// HEADER-NEXT: int32_t qmmar_dyn_release(qmmar_dyn_plan *plan) QMMAR_NOEXCEPT;
// HEADER-NEXT: int32_t qmmar_dyn(aclrtStream stream, HcclComm comm, const void *x1, const void *x2, const void *s, const void *pt, void *result0, int64_t x1_d0, int64_t pt_d0, int64_t result0_d0) QMMAR_NOEXCEPT;
// HEADER: #endif
// PLAN: memory plan of @dyn: kept from prepare to release: 0, arena slots: 1
// PLAN-NEXT: slot 0: workspace of aclnnQuantMatmulAllReduceV3, sized at prepare, live at ops 11..11
// PLAN-NEXT: live peak: 0 B, 0 B with each slot a multiple of 512 B (workspaces, sized at prepare, not counted)
func.func @dyn(%x1: tensor<?x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>, %pt: tensor<?xf32>) -> tensor<?x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) pertoken_scale(%pt : tensor<?xf32>) on "tp" world_size = 8 : tensor<?x64xi8>, tensor<64x128xi8> -> tensor<?x128xbf16>
  func.return %o : tensor<?x128xbf16>
}

// A dynamic 3-D x1: the guard's product is checked (no signed overflow) and the whole
// expression is negated, so that it compiles with -Werror and means what it says.
// CHECK-LABEL: int32_t qmmar_dyn3d_prepare(
// CHECK: if (!(qmmar_mul_sat(x1_d0, INT64_C(16)) <= INT64_C(2147483647))) return qmmar_guard({{.*}}, "[MC2-M-MAX]
func.func @dyn3d(%x1: tensor<?x16x128xi8>, %x2: tensor<128x64xi8>, %s: tensor<64xbf16>) -> tensor<?x16x64xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<64xbf16>) on "tp" world_size = 8 : tensor<?x16x128xi8>, tensor<128x64xi8> -> tensor<?x16x64xbf16>
  func.return %o : tensor<?x16x64xbf16>
}

// Every shape static: prepare makes the first phase once, over the caller's pointers, and keeps
// its executor (repeatable) and tensors; run moves the tensors on the caller's memory, each at
// its index among the first phase's aclTensor parameters (absent ones counted), and launches.
// CHECK-LABEL: struct qmmar_stat_plan {
// CHECK:        aclOpExecutor *executor[1] = {};
// CHECK-NEXT:   aclTensor *tensor[4] = {};
// CHECK-NEXT:   uint64_t workspace_size[1] = {};
// CHECK:        for (aclOpExecutor *p : plan->executor) if (p != nullptr) qmmar_keep_first(status, aclDestroyAclOpExecutor(p));
// CHECK-NEXT:   for (aclTensor *p : plan->tensor) if (p != nullptr) qmmar_keep_first(status, aclDestroyTensor(p));
// CHECK:        QMMAR_CREATE({{.*}}, "aclCreateTensor", [[T:v[0-9]+]], qmmar_tensor({INT64_C(48), INT64_C(64)}, ACL_INT8, const_cast<void *>(x1), false));
// CHECK-NEXT:   plan->tensor[0] = [[T]].take();
// CHECK:        aclnnQuantMatmulAllReduceV3GetWorkspaceSize(plan->tensor[0], plan->tensor[1], nullptr, nullptr, plan->tensor[2], nullptr, nullptr, nullptr, plan->comm_name[0], "sum", 0, 1, plan->tensor[3], &[[WS:v[0-9]+]], [[EX:v[0-9]+]].out()));
// CHECK-NEXT:   QMMAR_REPEATABLE({{.*}}, [[EX]]);
// CHECK-NEXT:   if ([[WS]] > static_cast<uint64_t>(plan->size[0])) return qmmar_guard({{.*}}, "[PLAN-WORKSPACE] aclnnQuantMatmulAllReduceV3 needs a larger workspace than at prepare");
// CHECK-NEXT:   plan->workspace_size[0] = [[WS]];
// CHECK-NEXT:   plan->executor[0] = [[EX]].take();
// CHECK-NEXT:   *out = guard.release();
// CHECK:      extern "C" int32_t qmmar_stat_run(
// CHECK:        if (plan == nullptr)
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclSetTensorAddr", aclSetTensorAddr(plan->executor[0], 0, plan->tensor[0], const_cast<void *>(x1)));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclSetTensorAddr", aclSetTensorAddr(plan->executor[0], 1, plan->tensor[1], const_cast<void *>(x2)));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclSetTensorAddr", aclSetTensorAddr(plan->executor[0], 4, plan->tensor[2], const_cast<void *>(s)));
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclSetTensorAddr", aclSetTensorAddr(plan->executor[0], 8, plan->tensor[3], result0));
// CHECK-NEXT:   void *const [[BUF:v[0-9]+]] = plan->workspace_size[0] > 0 ? qmmar_at(plan->arena, plan->offset[0]) : nullptr;
// CHECK-NEXT:   QMMAR_CALL({{.*}}, "aclnnQuantMatmulAllReduceV3", aclnnQuantMatmulAllReduceV3([[BUF]], plan->workspace_size[0], plan->executor[0], stream));
// CHECK-NEXT:   return 0;
func.func @stat(%x1: tensor<48x64xi8>, %x2: tensor<64x128xi8>, %s: tensor<128xbf16>) -> tensor<48x128xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<128xbf16>) on "tp" world_size = 8 : tensor<48x64xi8>, tensor<64x128xi8> -> tensor<48x128xbf16>
  func.return %o : tensor<48x128xbf16>
}

// NOCPP: two_layers.mlir:{{.*}}: error: 'tensor.collapse_shape' op has no aclnn C++ form: the aclnn-cpp target takes what lower-mc2-to-aclnn and lower-qmm-to-aclnn produce
