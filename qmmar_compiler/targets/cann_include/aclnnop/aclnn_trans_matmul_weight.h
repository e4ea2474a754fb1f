// aclnnTransMatmulWeight and aclnnCalculateMatmulWeightSizeV2, as their public
// documentation declares them: the FRACTAL_NZ weight prepack.
#ifndef QMMAR_CANN_ACLNN_TRANS_MATMUL_WEIGHT_H
#define QMMAR_CANN_ACLNN_TRANS_MATMUL_WEIGHT_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnCalculateMatmulWeightSizeV2(const aclIntArray *tensorShape, aclDataType dataType,
                                             uint64_t *weightTensorSize);
aclnnStatus aclnnTransMatmulWeightGetWorkspaceSize(aclTensor *mmWeightRef, uint64_t *workspaceSize,
                                                   aclOpExecutor **executor);
aclnnStatus aclnnTransMatmulWeight(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                   aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
