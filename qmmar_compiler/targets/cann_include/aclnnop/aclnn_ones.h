// aclnnInplaceOne, declared as CANN's own op_api header declares it: hicann/ops-math,
// math/ones_like/op_api/aclnn_ones.h at commit
// c41933244c31e44fd496e3bb3212164f8c48c214; only the entry points qmmar's code calls.
#ifndef QMMAR_CANN_ACLNN_ONES_H
#define QMMAR_CANN_ACLNN_ONES_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnInplaceOneGetWorkspaceSize(const aclTensor *selfRef, uint64_t *workspaceSize,
                                            aclOpExecutor **executor);
aclnnStatus aclnnInplaceOne(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
