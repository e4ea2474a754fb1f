// aclnnAdd, declared as CANN's own op_api header declares it: hicann/ops-math,
// math/add/op_api/aclnn_add.h at commit
// c41933244c31e44fd496e3bb3212164f8c48c214; only the entry points qmmar's code calls.
#ifndef QMMAR_CANN_ACLNN_ADD_H
#define QMMAR_CANN_ACLNN_ADD_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnAddGetWorkspaceSize(const aclTensor *self, const aclTensor *other, const aclScalar *alpha,
                                     aclTensor *out, uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnAdd(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
