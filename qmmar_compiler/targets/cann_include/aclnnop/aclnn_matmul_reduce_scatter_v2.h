// aclnnMatmulReduceScatterV2, declared as CANN's own op_api header declares it: cannmirror/ops-transformer
// (GitHub mirror of gitcode cann/ops-transformer), mc2/matmul_reduce_scatter_v2/op_api/aclnn_matmul_reduce_scatter_v2.h
// at commit 25fb6b92890d33582f2a377aa5f9c975301a73a3 (master; the same declaration as hicann/ops-transformer at
// da10a1a3ba772bc5428c032c59dc714c9ec19908). output and amaxOutOptional are non-const there too.
#ifndef QMMAR_CANN_ACLNN_MATMUL_REDUCE_SCATTER_V2_H
#define QMMAR_CANN_ACLNN_MATMUL_REDUCE_SCATTER_V2_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnMatmulReduceScatterV2GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *bias, const aclTensor *x1Scale, const aclTensor *x2Scale,
    const aclTensor *quantScale, int64_t blockSize, const char *group, const char *reduceOp, int64_t commTurn,
    int64_t streamMode, int64_t groupSize, const char *commMode, aclTensor *output, aclTensor *amaxOutOptional,
    uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnMatmulReduceScatterV2(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                       aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
