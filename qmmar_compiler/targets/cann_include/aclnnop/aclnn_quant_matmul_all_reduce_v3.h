// aclnnQuantMatmulAllReduceV3, declared as CANN's own op_api header declares it: hicann/ops-transformer,
// mc2/matmul_all_reduce/op_host/op_api/aclnn_quant_matmul_all_reduce_v3.h at commit 9c461b2571a2399ea667f626b2a93fe6ede97630.
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
