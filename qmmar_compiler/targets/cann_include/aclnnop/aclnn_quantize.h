// aclnnQuantize, declared as CANN's own op_api header declares it: hicann/ops-nn,
// experimental/quant/quantize/op_api/aclnn_quantize.h at commit
// e5c3fa9327ea95ba26d06227e746923580d10921; only the entry points qmmar's code calls.
#ifndef QMMAR_CANN_ACLNN_QUANTIZE_H
#define QMMAR_CANN_ACLNN_QUANTIZE_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnQuantizeGetWorkspaceSize(const aclTensor *x, const aclTensor *scales, const aclTensor *zeroPoints,
                                          aclDataType dtype, int32_t axis, aclTensor *out, uint64_t *workspaceSize,
                                          aclOpExecutor **executor);
aclnnStatus aclnnQuantize(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
