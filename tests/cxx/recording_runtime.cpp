// TEST SCAFFOLDING: a recording stand-in for the ACL, HCCL and aclnn runtime, so that code
// emitted by qmmar's aclnn-cpp target runs without an NPU. It logs every call with its
// arguments as one JSON line (to $QMMAR_LOG), checks what it can, and reports each broken
// expectation as a {"call": "violation", ...} line:
//   - tensors: created before use, destroyed once, none left alive at the end;
//   - device memory: freed once, only what was allocated, none left at the end;
//   - int arrays: destroyed once, none left;
//   - two-phase calls: each executor launched once, with the workspace size phase one gave
//     and a workspace that was allocated with at least that size (nullptr when it is 0),
//     on the test's stream;
//   - the MC2 call: group equal to what HcclGetCommName wrote, reduceOp "sum", commTurn 0,
//     streamMode 1, every tensor alive; memcpy within the destination's capacity.
// $QMMAR_FAIL=<call>[#n] makes the n-th call (default first) of that name fail.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "hccl/hccl.h"
#include "aclnn/acl_meta.h"
#include "aclnnop/aclnn_quant_matmul_all_reduce_v3.h"
#include "aclnnop/aclnn_trans_matmul_weight.h"
#include "aclnnop/aclnn_trans_quant_param_v2.h"

struct aclTensor {
  int id;
  std::vector<int64_t> view, strides, storage;
  aclDataType dtype;
  aclFormat format;
  void *data;
};
struct aclIntArray {
  int id;
  std::vector<int64_t> values;
};
struct aclOpExecutor {
  int id;
  std::string op;
  uint64_t workspace_size;
  bool launched;
};

namespace {

const char *const kGroupName = "hccl_world_group";
std::FILE *log_file() {
  static std::FILE *f = [] {
    const char *path = std::getenv("QMMAR_LOG");
    return path ? std::fopen(path, "w") : stdout;
  }();
  return f;
}
std::set<const aclTensor *> live_tensors;
std::set<const aclIntArray *> live_arrays;
std::map<void *, size_t> live_memory;
std::map<void *, std::string> names;
std::map<std::string, int> call_counts;
int next_id = 1;
aclrtStream expected_stream = nullptr;

std::string quote(const std::string &s) { return "\"" + s + "\""; }
std::string dims(const std::vector<int64_t> &v) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
  o << "]";
  return o.str();
}
std::string pointer(const void *p) {
  if (p == nullptr) return "null";
  auto it = names.find(const_cast<void *>(p));
  if (it != names.end()) return quote(it->second);
  std::ostringstream o;
  o << "\"0x" << std::hex << reinterpret_cast<uintptr_t>(p) << "\"";
  return o.str();
}
void log(const std::string &call, const std::string &fields) {
  std::fprintf(log_file(), "{\"call\": %s%s%s}\n", quote(call).c_str(), fields.empty() ? "" : ", ", fields.c_str());
  std::fflush(log_file());
}
void violation(const std::string &what) { log("violation", "\"what\": " + quote(what)); }
bool fails(const std::string &call) {
  const int n = ++call_counts[call];
  const char *spec = std::getenv("QMMAR_FAIL");
  if (spec == nullptr) return false;
  std::string s(spec);
  const size_t hash = s.find('#');
  const std::string name = s.substr(0, hash);
  const int nth = hash == std::string::npos ? 1 : std::atoi(s.c_str() + hash + 1);
  if (name != call || n != nth) return false;
  log("injected_failure", "\"of\": " + quote(call));
  return true;
}
std::string tensor(const aclTensor *t) {
  if (t == nullptr) return "null";
  if (!live_tensors.count(t)) violation("a tensor used after destroy, or never created");
  std::ostringstream o;
  o << "{\"id\": " << t->id << ", \"view\": " << dims(t->view) << ", \"strides\": " << dims(t->strides)
    << ", \"storage\": " << dims(t->storage) << ", \"dtype\": " << t->dtype << ", \"format\": " << t->format
    << ", \"data\": " << pointer(t->data) << "}";
  return o.str();
}
aclOpExecutor *new_executor(const std::string &op) { return new aclOpExecutor{next_id++, op, 0, false}; }
int32_t launch(const std::string &call, const std::string &op, void *workspace, uint64_t size,
               aclOpExecutor *executor, aclrtStream stream) {
  std::ostringstream o;
  o << "\"workspace\": " << pointer(workspace) << ", \"workspace_size\": " << size
    << ", \"executor\": " << (executor ? executor->id : 0);
  log(call, o.str());
  if (executor == nullptr || executor->op != op) { violation(call + ": not the executor of its first phase"); return 1; }
  if (executor->launched) violation(call + ": executor launched twice");
  if (size != executor->workspace_size) violation(call + ": workspace size differs from the first phase's");
  if (size == 0 ? workspace != nullptr : (!live_memory.count(workspace) || live_memory[workspace] < size))
    violation(call + ": the workspace is not the one allocated for it");
  if (stream != expected_stream) violation(call + ": not the function's stream");
  executor->launched = true;
  if (fails(call)) return 561000;
  return 0;
}
uint64_t workspace_size() {
  const char *s = std::getenv("QMMAR_WORKSPACE");
  return s ? std::strtoull(s, nullptr, 10) : 4096;
}

}  // namespace

extern "C" {

// Test-only entry points for the driver.
void qmmar_test_begin(aclrtStream stream) { expected_stream = stream; }
void qmmar_test_name(void *p, const char *name) { names[p] = name; }
int qmmar_test_finish() {
  for (auto *t : live_tensors) violation("leak: tensor " + std::to_string(t->id) + " never destroyed");
  for (auto *a : live_arrays) violation("leak: int array " + std::to_string(a->id) + " never destroyed");
  for (auto &m : live_memory) violation("leak: device memory " + pointer(m.first) + " never freed");
  return static_cast<int>(live_tensors.size() + live_arrays.size() + live_memory.size());
}

aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy) {
  if (fails("aclrtMalloc")) return 207001;
  *devPtr = std::malloc(size == 0 ? 1 : size);
  live_memory[*devPtr] = size;
  names[*devPtr] = "alloc" + std::to_string(next_id++);
  log("aclrtMalloc", "\"ptr\": " + pointer(*devPtr) + ", \"size\": " + std::to_string(size) +
                         ", \"policy\": " + std::to_string(policy));
  return 0;
}

aclError aclrtFree(void *devPtr) {
  log("aclrtFree", "\"ptr\": " + pointer(devPtr));
  if (!live_memory.erase(devPtr)) { violation("aclrtFree of memory not allocated, or freed twice"); return 1; }
  std::free(devPtr);
  return 0;
}

aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count, aclrtMemcpyKind kind) {
  log("aclrtMemcpy", "\"dst\": " + pointer(dst) + ", \"dest_max\": " + std::to_string(destMax) + ", \"src\": " +
                         pointer(src) + ", \"count\": " + std::to_string(count) + ", \"kind\": " + std::to_string(kind));
  if (count > destMax) violation("aclrtMemcpy beyond the destination's capacity");
  if (live_memory.count(dst) && live_memory[dst] < destMax) violation("aclrtMemcpy: destMax beyond the allocation");
  if (fails("aclrtMemcpy")) return 507011;
  return 0;
}

aclError aclrtSynchronizeStream(aclrtStream stream) {
  log("aclrtSynchronizeStream", "");
  if (stream != expected_stream) violation("aclrtSynchronizeStream: not the function's stream");
  return fails("aclrtSynchronizeStream") ? 507011 : 0;
}

HcclResult HcclGetCommName(HcclComm comm, char *commName) {
  log("HcclGetCommName", "\"comm\": " + pointer(comm));
  if (fails("HcclGetCommName")) return HCCL_E_INTERNAL;
  std::strcpy(commName, kGroupName);
  return HCCL_SUCCESS;
}

aclTensor *aclCreateTensor(const int64_t *viewDims, uint64_t viewDimsNum, aclDataType dataType, const int64_t *stride,
                           int64_t offset, aclFormat format, const int64_t *storageDims, uint64_t storageDimsNum,
                           void *tensorData) {
  if (fails("aclCreateTensor")) return nullptr;
  auto *t = new aclTensor{next_id++, std::vector<int64_t>(viewDims, viewDims + viewDimsNum),
                          std::vector<int64_t>(stride, stride + viewDimsNum),
                          std::vector<int64_t>(storageDims, storageDims + storageDimsNum), dataType, format,
                          tensorData};
  live_tensors.insert(t);
  log("aclCreateTensor", "\"tensor\": " + tensor(t) + ", \"offset\": " + std::to_string(offset));
  return t;
}

aclnnStatus aclDestroyTensor(const aclTensor *t) {
  log("aclDestroyTensor", "\"id\": " + std::to_string(t ? t->id : 0));
  if (!live_tensors.erase(t)) { violation("aclDestroyTensor of a tensor not alive"); return 1; }
  delete t;
  return 0;
}

aclIntArray *aclCreateIntArray(const int64_t *value, uint64_t size) {
  if (fails("aclCreateIntArray")) return nullptr;
  auto *a = new aclIntArray{next_id++, std::vector<int64_t>(value, value + size)};
  live_arrays.insert(a);
  log("aclCreateIntArray", "\"id\": " + std::to_string(a->id) + ", \"values\": " + dims(a->values));
  return a;
}

aclnnStatus aclDestroyIntArray(const aclIntArray *a) {
  log("aclDestroyIntArray", "\"id\": " + std::to_string(a ? a->id : 0));
  if (!live_arrays.erase(a)) { violation("aclDestroyIntArray of an array not alive"); return 1; }
  delete a;
  return 0;
}

aclnnStatus aclnnCalculateMatmulWeightSizeV2(const aclIntArray *shape, aclDataType dataType, uint64_t *size) {
  if (!live_arrays.count(shape)) violation("aclnnCalculateMatmulWeightSizeV2 of an array not alive");
  // FRACTAL_NZ pads both dims of an int8 weight to multiples of 16 and 32.
  const int64_t rows = (shape->values[0] + 15) / 16 * 16, cols = (shape->values[1] + 31) / 32 * 32;
  *size = static_cast<uint64_t>(rows * cols);
  log("aclnnCalculateMatmulWeightSizeV2", "\"shape\": " + dims(shape->values) + ", \"dtype\": " +
                                              std::to_string(dataType) + ", \"size\": " + std::to_string(*size));
  return fails("aclnnCalculateMatmulWeightSizeV2") ? 161002 : 0;
}

aclnnStatus aclnnTransMatmulWeightGetWorkspaceSize(aclTensor *weight, uint64_t *workspaceSize,
                                                   aclOpExecutor **executor) {
  log("aclnnTransMatmulWeightGetWorkspaceSize", "\"weight\": " + tensor(weight));
  if (fails("aclnnTransMatmulWeightGetWorkspaceSize")) return 161002;
  weight->format = ACL_FORMAT_FRACTAL_NZ;
  *executor = new_executor("TransMatmulWeight");
  *workspaceSize = (*executor)->workspace_size = workspace_size();
  return 0;
}

aclnnStatus aclnnTransMatmulWeight(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnTransMatmulWeight", "TransMatmulWeight", workspace, size, executor, stream);
}

aclnnStatus aclnnTransQuantParamV2GetWorkspaceSize(const aclTensor *scale, const aclTensor *offset,
                                                   const aclTensor *out, uint64_t *workspaceSize,
                                                   aclOpExecutor **executor) {
  log("aclnnTransQuantParamV2GetWorkspaceSize",
      "\"scale\": " + tensor(scale) + ", \"offset\": " + tensor(offset) + ", \"out\": " + tensor(out));
  if (fails("aclnnTransQuantParamV2GetWorkspaceSize")) return 161002;
  *executor = new_executor("TransQuantParamV2");
  *workspaceSize = (*executor)->workspace_size = workspace_size();
  return 0;
}

aclnnStatus aclnnTransQuantParamV2(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnTransQuantParamV2", "TransQuantParamV2", workspace, size, executor, stream);
}

aclnnStatus aclnnQuantMatmulAllReduceV3GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *bias, const aclTensor *x3, const aclTensor *dequantScale,
    const aclTensor *pertokenScale, const aclTensor *commQuantScale1, const aclTensor *commQuantScale2,
    const char *group, const char *reduceOp, int64_t commTurn, int64_t streamMode, const aclTensor *output,
    uint64_t *workspaceSize, aclOpExecutor **executor) {
  std::ostringstream o;
  o << "\"x1\": " << tensor(x1) << ", \"x2\": " << tensor(x2) << ", \"bias\": " << tensor(bias)
    << ", \"x3\": " << tensor(x3) << ", \"dequant_scale\": " << tensor(dequantScale)
    << ", \"pertoken_scale\": " << tensor(pertokenScale) << ", \"comm_quant_scale_1\": " << tensor(commQuantScale1)
    << ", \"comm_quant_scale_2\": " << tensor(commQuantScale2) << ", \"group\": " << quote(group ? group : "")
    << ", \"reduce_op\": " << quote(reduceOp ? reduceOp : "") << ", \"comm_turn\": " << commTurn
    << ", \"stream_mode\": " << streamMode << ", \"output\": " << tensor(output);
  log("aclnnQuantMatmulAllReduceV3GetWorkspaceSize", o.str());
  if (group == nullptr || std::strcmp(group, kGroupName) != 0) violation("group is not HcclGetCommName's");
  if (reduceOp == nullptr || std::strcmp(reduceOp, "sum") != 0) violation("reduceOp is not \"sum\"");
  if (commTurn != 0) violation("commTurn is not 0");
  if (streamMode != 1) violation("streamMode is not 1");
  if (x1 == nullptr || x2 == nullptr || dequantScale == nullptr || output == nullptr)
    violation("a required tensor is null");
  if (fails("aclnnQuantMatmulAllReduceV3GetWorkspaceSize")) return 161002;
  *executor = new_executor("QuantMatmulAllReduceV3");
  *workspaceSize = (*executor)->workspace_size = workspace_size();
  return 0;
}

aclnnStatus aclnnQuantMatmulAllReduceV3(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnQuantMatmulAllReduceV3", "QuantMatmulAllReduceV3", workspace, size, executor, stream);
}

}  // extern "C"
