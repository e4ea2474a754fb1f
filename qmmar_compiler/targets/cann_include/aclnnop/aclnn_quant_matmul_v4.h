// aclnnQuantMatmulV4, declared as CANN's own op_api header declares it: hicann/ops-nn,
// matmul/quant_batch_matmul_v3/op_api/aclnn_quant_matmul_v4.h at commit
// e5c3fa9327ea95ba26d06227e746923580d10921; only the entry points qmmar's code calls.
#ifndef QMMAR_CANN_ACLNN_QUANT_MATMUL_V4_H
#define QMMAR_CANN_ACLNN_QUANT_MATMUL_V4_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

// CANN marks both phases deprecated (to be replaced by aclnnQuantMatmulV5 after December 2026); so
// does this declaration, and the emitted code silences the warning around its one call site.
__attribute__((deprecated("aclnnQuantMatmulV4GetWorkspaceSize is scheduled to be deprecated; use aclnnQuantMatmulV5")))
aclnnStatus aclnnQuantMatmulV4GetWorkspaceSize(const aclTensor *x1, const aclTensor *x2, const aclTensor *scale,
                                               const aclTensor *offset, const aclTensor *pertokenScaleOptional,
                                               const aclTensor *bias, bool transposeX1, bool transposeX2,
                                               const aclTensor *out, uint64_t *workspaceSize,
                                               aclOpExecutor **executor);
__attribute__((deprecated("aclnnQuantMatmulV4 is scheduled to be deprecated; use aclnnQuantMatmulV5")))
aclnnStatus aclnnQuantMatmulV4(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
