// aclnnQuantMatmulAllReduceV3, as its public documentation declares it.
#ifndef QMMAR_CANN_ACLNN_QUANT_MATMUL_ALL_REDUCE_V3_H
#define QMMAR_CANN_ACLNN_QUANT_MATMUL_ALL_REDUCE_V3_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnQuantMatmulAllReduceV3GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *biasOptional, const aclTensor *x3Optional,
    const aclTensor *dequantScale, const aclTensor *pertokenScaleOptional,
    const aclTensor *commQuantScale1Optional, const aclTensor *commQuantScale2Optional, const char *group,
    const char *reduceOp, int64_t commTurn, int64_t streamMode, const aclTensor *output,
    uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnQuantMatmulAllReduceV3(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                        aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
