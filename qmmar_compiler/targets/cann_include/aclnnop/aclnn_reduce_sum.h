// aclnnReduceSum, declared as CANN's own op_api header declares it: hicann/ops-math,
// math/reduce_sum/op_api/aclnn_reduce_sum.h at commit
// c41933244c31e44fd496e3bb3212164f8c48c214; only the entry points qmmar's code calls.
#ifndef QMMAR_CANN_ACLNN_REDUCE_SUM_H
#define QMMAR_CANN_ACLNN_REDUCE_SUM_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnReduceSumGetWorkspaceSize(const aclTensor *self, const aclIntArray *dims, bool keepDims,
                                           aclDataType dtype, aclTensor *out, uint64_t *workspaceSize,
                                           aclOpExecutor **executor);
aclnnStatus aclnnReduceSum(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
