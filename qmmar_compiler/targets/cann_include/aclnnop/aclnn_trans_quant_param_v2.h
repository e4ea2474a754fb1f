// aclnnTransQuantParamV2, as its public documentation declares it.
#ifndef QMMAR_CANN_ACLNN_TRANS_QUANT_PARAM_V2_H
#define QMMAR_CANN_ACLNN_TRANS_QUANT_PARAM_V2_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnTransQuantParamV2GetWorkspaceSize(const aclTensor *scale, const aclTensor *offset,
                                                   const aclTensor *out, uint64_t *workspaceSize,
                                                   aclOpExecutor **executor);
aclnnStatus aclnnTransQuantParamV2(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                   aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
