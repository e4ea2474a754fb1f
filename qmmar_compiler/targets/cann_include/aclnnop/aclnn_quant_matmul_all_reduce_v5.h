// aclnnQuantMatmulAllReduceV5, declared as CANN's own op_api header declares it: cannmirror/ops-transformer
// (GitHub mirror of gitcode cann/ops-transformer), mc2/matmul_all_reduce/op_api/aclnn_quant_matmul_all_reduce_v5.h
// at commit 25fb6b92890d33582f2a377aa5f9c975301a73a3 (master; first in tag v9.1.0.pre, absent from v9.0.0).
// Unlike V3, x1ScaleOptional (the per-token scale) comes before x2Scale, and commMode follows reduceOp.
#ifndef QMMAR_CANN_ACLNN_QUANT_MATMUL_ALL_REDUCE_V5_H
#define QMMAR_CANN_ACLNN_QUANT_MATMUL_ALL_REDUCE_V5_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnQuantMatmulAllReduceV5GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *biasOptional, const aclTensor *x3Optional,
    const aclTensor *x1ScaleOptional, const aclTensor *x2Scale, const aclTensor *commQuantScale1Optional,
    const aclTensor *commQuantScale2Optional, const char *group, const char *reduceOp, const char *commMode,
    int64_t commTurn, int64_t streamMode, int64_t groupSize, int64_t commQuantMode, const aclTensor *output,
    uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnQuantMatmulAllReduceV5(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                        const aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
