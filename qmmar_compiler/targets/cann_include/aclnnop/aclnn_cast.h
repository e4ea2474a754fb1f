// aclnnCast, declared as CANN's own op_api header declares it: hicann/ops-math,
// math/cast/op_api/aclnn_cast.h at commit
// c41933244c31e44fd496e3bb3212164f8c48c214; only the entry points qmmar's code calls.
#ifndef QMMAR_CANN_ACLNN_CAST_H
#define QMMAR_CANN_ACLNN_CAST_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnCastGetWorkspaceSize(const aclTensor *self, const aclDataType dtype, aclTensor *out,
                                      uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnCast(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
