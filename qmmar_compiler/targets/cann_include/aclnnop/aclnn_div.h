// aclnnDiv, declared as CANN's own op_api header declares it: hicann/ops-math,
// math/div/op_api/aclnn_div.h at commit
// c41933244c31e44fd496e3bb3212164f8c48c214; only the entry points qmmar's code calls.
#ifndef QMMAR_CANN_ACLNN_DIV_H
#define QMMAR_CANN_ACLNN_DIV_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnDivGetWorkspaceSize(const aclTensor *self, const aclTensor *other, aclTensor *out,
                                     uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnDiv(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
