// TEST SCAFFOLDING: a recording stand-in for the ACL, HCCL and aclnn runtime, so that code
// emitted by qmmar's aclnn-cpp target runs without an NPU. It logs every call with its
// arguments as one JSON line (to $QMMAR_LOG), checks what it can, and reports each broken
// expectation as a {"call": "violation", ...} line:
//   - tensors: created before use, destroyed once, none left alive at the end, and every
//     element a tensor can reach (its view, strides and offset) inside one buffer: an argument
//     or result the driver named, or live device memory;
//   - device memory: freed once, only what was allocated, none left at the end;
//   - int arrays, scalars: destroyed once, none left;
//   - two-phase calls: each executor launched with the workspace size phase one gave and a
//     workspace inside live device memory (nullptr when its size is 0) that none of its own
//     tensors shares, on the test's stream; a launch consumes its executor unless aclSetAclOpExecutorRepeatable made
//     it repeatable, and only a repeatable one may be destroyed (aclDestroyAclOpExecutor, as
//     CANN documents them together), none left at the end; a repeatable executor may be launched
//     again, its tensors alive, after aclSetTensorAddr moved them (each at its own index);
//   - aclnnTransMatmulWeight writes the NZ image of its weight's view (the vendor sizes it so):
//     a buffer sized for less overflows, which AddressSanitizer reports;
//   - aclrtMalloc of 0 bytes (AscendCL refuses it);
//   - device memory read before it was written: each allocation's bytes are marked when a
//     copy, a memset, a launch (its out tensor) or an HCCL recv writes them, and an HCCL send or
//     a device-to-device copy of an unwritten byte is a violation (padding rows that reach HCCL
//     uninitialised);
//   - the MC2 call: group equal to what HcclGetCommName wrote, reduceOp "sum", commTurn 0,
//     streamMode 1, every tensor alive;
//   - copies (aclrtMemcpyAsync, on the stream) and HCCL collectives (on the test's comm and
//     stream): every byte read or written inside one buffer.
//   - capture (qmmar_test_capture): between its begin and end, as in an ACL graph capture, no
//     aclrtMalloc, aclrtFree, aclrtMemcpy (host to device) nor stream synchronisation;
//   - a tensor without data (nullptr: a first phase asked only for its workspace size) is
//     never launched.
//   - waits: $QMMAR_HANG=1 makes the stream never complete (until aclrtStreamAbort), so that a
//     wait without a bound is a violation and aclrtSynchronizeStreamWithTimeout times out.
// $QMMAR_FAIL=<call>[#n] makes the n-th call (default first) of that name fail;
// $QMMAR_RANKS is what HcclGetRankSize reports (default 8).
#include <algorithm>
#include <cstddef>
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
#include "aclnnop/aclnn_add.h"
#include "aclnnop/aclnn_all_gather_matmul_v2.h"
#include "aclnnop/aclnn_cast.h"
#include "aclnnop/aclnn_div.h"
#include "aclnnop/aclnn_matmul_reduce_scatter_v2.h"
#include "aclnnop/aclnn_mul.h"
#include "aclnnop/aclnn_ones.h"
#include "aclnnop/aclnn_quant_matmul_all_reduce_v3.h"
#include "aclnnop/aclnn_quant_matmul_all_reduce_v5.h"
#include "aclnnop/aclnn_quant_matmul_v4.h"
#include "aclnnop/aclnn_quantize.h"
#include "aclnnop/aclnn_reduce_sum.h"
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
struct aclScalar {
  int id;
  double value;
  aclDataType dtype;
};
struct aclOpExecutor {
  int id;
  std::string op;
  uint64_t workspace_size;
  bool repeatable = false;
  void *writes = nullptr;  // what the launch writes (its out tensor's reach), and how much
  size_t write_bytes = 0;
  const aclTensor *out = nullptr;
  std::vector<const aclTensor *> tensors;  // the first phase's aclTensor parameters, in order (absent ones null)
  int launches = 0;
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
std::set<const aclScalar *> live_scalars;
std::set<const aclOpExecutor *> live_executors;
std::map<void *, size_t> live_memory;
std::map<void *, size_t> named_buffers;  // the driver's arguments and results
std::map<void *, std::string> names;
std::map<std::string, int> call_counts;
int next_id = 1;
bool capturing = false;
aclrtStream expected_stream = nullptr;
HcclComm expected_comm = nullptr;

size_t element_size(int dtype) {
  switch (dtype) {
    case ACL_INT8: return 1;
    case ACL_FLOAT16: case ACL_BF16: return 2;
    case ACL_INT32: case ACL_FLOAT: return 4;
    default: return 8;
  }
}
size_t hccl_size(HcclDataType dtype) {
  switch (dtype) {
    case HCCL_DATA_TYPE_INT8: return 1;
    case HCCL_DATA_TYPE_FP16: case HCCL_DATA_TYPE_BFP16: return 2;
    case HCCL_DATA_TYPE_INT32: case HCCL_DATA_TYPE_FP32: return 4;
    default: return 8;
  }
}
// Which bytes of each live device allocation were written (by a copy, a memset, a launch's
// out or an HCCL recv): reading an unwritten byte is reading uninitialised memory.
std::map<void *, std::vector<bool>> written;
void mark_written(const void *p, size_t bytes) {
  const auto *c = static_cast<const char *>(p);
  for (auto &w : written) {
    const auto *start = static_cast<const char *>(w.first);
    if (c >= start && c + bytes <= start + w.second.size())
      std::fill(w.second.begin() + (c - start), w.second.begin() + (c - start) + static_cast<ptrdiff_t>(bytes), true);
  }
}
bool initialised(const void *p, size_t bytes) {
  const auto *c = static_cast<const char *>(p);
  for (const auto &w : written) {
    const auto *start = static_cast<const char *>(w.first);
    if (c >= start && c + bytes <= start + w.second.size())
      return std::all_of(w.second.begin() + (c - start), w.second.begin() + (c - start) + static_cast<ptrdiff_t>(bytes),
                         [](bool b) { return b; });
  }
  return true;  // an argument or result the driver named: the caller's data
}
// The bytes from a tensor's data pointer to the last element its view reaches (0 when empty).
size_t reach(const std::vector<int64_t> &view, const std::vector<int64_t> &strides, int64_t offset, int dtype);
// [p, p + bytes) inside one buffer: a named argument or result, or live device memory.
bool inside(const void *p, size_t bytes) {
  if (bytes == 0) return true;  // nothing read or written: any pointer, nullptr too
  const auto *c = static_cast<const char *>(p);
  for (const auto *m : {&named_buffers, &live_memory})
    for (const auto &b : *m) {
      const auto *start = static_cast<const char *>(b.first);
      if (c >= start && c + bytes <= start + b.second) return true;
    }
  return false;
}

// [p, p + bytes) inside live device memory (a workspace: an allocation, or a slot of one).
bool in_device_memory(const void *p, size_t bytes) {
  const auto *c = static_cast<const char *>(p);
  for (const auto &b : live_memory) {
    const auto *start = static_cast<const char *>(b.first);
    if (c >= start && c + bytes <= start + b.second) return true;
  }
  return false;
}

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
void not_in_capture(const std::string &call) {
  if (capturing) violation(call + " during a capture");
}
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
uint64_t ranks() {
  const char *r = std::getenv("QMMAR_RANKS");
  return r ? std::strtoull(r, nullptr, 10) : 8;
}
uint64_t workspace_size() {
  const char *s = std::getenv("QMMAR_WORKSPACE");
  return s ? std::strtoull(s, nullptr, 10) : 4096;
}
aclOpExecutor *new_executor(const std::string &op) {
  auto *e = new aclOpExecutor{next_id++, op, 0, false, nullptr, 0, nullptr, {}, 0};
  live_executors.insert(e);
  return e;
}
int32_t launch(const std::string &call, const std::string &op, void *workspace, uint64_t size,
               aclOpExecutor *executor, aclrtStream stream) {
  std::ostringstream o;
  const bool alive = live_executors.count(executor) != 0;
  o << "\"workspace\": " << pointer(workspace) << ", \"workspace_size\": " << size
    << ", \"executor\": " << (alive ? executor->id : 0) << ", \"launch\": " << (alive ? ++executor->launches : 0);
  log(call, o.str());
  if (!alive) { violation(call + ": executor launched twice without being repeatable, or destroyed"); return 1; }
  if (executor == nullptr || executor->op != op) { violation(call + ": not the executor of its first phase"); return 1; }
  for (const auto *t : executor->tensors)
    if (t != nullptr && !live_tensors.count(t)) violation(call + ": a tensor of its first phase was destroyed");
  if (executor->writes == nullptr && executor->write_bytes > 0) violation(call + ": a tensor without data");
  if (executor->writes != nullptr) {
    std::memset(executor->writes, 0x5a, executor->write_bytes);
    mark_written(executor->writes, executor->write_bytes);
  }
  if (size != executor->workspace_size) violation(call + ": workspace size differs from the first phase's");
  if (size == 0 ? workspace != nullptr : !in_device_memory(workspace, size))
    violation(call + ": the workspace is not the one allocated for it");
  for (const auto *t : executor->tensors) {  // none of the call's own tensors may share its workspace
    if (t == nullptr || !live_tensors.count(t)) continue;
    const auto *data = static_cast<const char *>(t->data), *ws = static_cast<const char *>(workspace);
    const size_t bytes = reach(t->view, t->strides, 0, t->dtype);
    if (size > 0 && data != nullptr && bytes > 0 && data < ws + size && ws < data + bytes)
      violation(call + ": the workspace overlaps a live tensor");
  }
  if (stream != expected_stream) violation(call + ": not the function's stream");
  // The launch consumes its executor (CANN releases it), whether the launch succeeds or not,
  // unless it was made repeatable.
  if (!executor->repeatable) {
    live_executors.erase(executor);
    delete executor;
  }
  if (fails(call)) return 561000;
  return 0;
}
// The first phase of an aclnn call: log it, fail on request, else hand out an executor whose
// launch writes `out` (every element its view reaches).
aclnnStatus first_phase(const std::string &api, const std::string &op, const std::string &fields,
                        uint64_t *workspaceSize, aclOpExecutor **executor, const aclTensor *out,
                        std::vector<const aclTensor *> tensors) {
  log(api, fields);
  if (fails(api)) return 161002;
  *executor = new_executor(op);
  (*executor)->tensors = std::move(tensors);
  (*executor)->out = out;
  *workspaceSize = (*executor)->workspace_size = workspace_size();
  if (out != nullptr && live_tensors.count(out)) {
    (*executor)->writes = out->data;
    (*executor)->write_bytes = reach(out->view, out->strides, 0, out->dtype);
  }
  return 0;
}

size_t reach(const std::vector<int64_t> &view, const std::vector<int64_t> &strides, int64_t offset, int dtype) {
  int64_t last = offset;
  for (size_t i = 0; i < view.size(); ++i) {
    if (view[i] == 0) return 0;
    last += (view[i] - 1) * strides[i];
  }
  return static_cast<size_t>(last + 1) * element_size(dtype);
}

// $QMMAR_HANG=1: the stream never completes (a collective whose peer failed) until
// aclrtStreamAbort: a wait without a bound is a violation (it would hang), a bounded one times out.
bool stream_hangs() {
  static bool hangs = std::getenv("QMMAR_HANG") != nullptr;
  return hangs;
}
bool aborted = false;
aclError stream_wait(const std::string &call, aclrtStream stream, int32_t timeout) {
  not_in_capture(call);
  if (stream != expected_stream) violation(call + ": not the function's stream");
  if (stream_hangs() && !aborted) {
    if (timeout < 0) violation(call + " waits forever: the stream never completes");
    return ACL_ERROR_RT_STREAM_SYNC_TIMEOUT;
  }
  return fails(call) ? 507011 : 0;
}

}  // namespace

extern "C" {

// Test-only entry points for the driver.
void qmmar_test_begin(aclrtStream stream, HcclComm comm) {
  expected_stream = stream;
  expected_comm = comm;
}
void qmmar_test_capture(int on) {
  log(on ? "capture_begin" : "capture_end", "");
  capturing = on != 0;
}
void qmmar_test_name(void *p, const char *name, size_t bytes) {
  names[p] = name;
  named_buffers[p] = bytes;
}
int qmmar_test_finish() {
  for (auto *t : live_tensors) violation("leak: tensor " + std::to_string(t->id) + " never destroyed");
  for (auto *a : live_arrays) violation("leak: int array " + std::to_string(a->id) + " never destroyed");
  for (auto *a : live_scalars) violation("leak: scalar " + std::to_string(a->id) + " never destroyed");
  for (auto *e : live_executors) violation("leak: executor " + std::to_string(e->id) + " of " + e->op + " never launched nor destroyed");
  for (auto &m : live_memory) violation("leak: device memory " + pointer(m.first) + " never freed");
  return static_cast<int>(live_tensors.size() + live_arrays.size() + live_scalars.size() + live_executors.size() +
                          live_memory.size());
}

aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy) {
  if (size == 0) violation("aclrtMalloc of 0 bytes");
  not_in_capture("aclrtMalloc");
  if (fails("aclrtMalloc")) return 207001;
  *devPtr = std::malloc(size == 0 ? 1 : size);
  live_memory[*devPtr] = size;
  written[*devPtr] = std::vector<bool>(size, false);
  names[*devPtr] = "alloc" + std::to_string(next_id++);
  log("aclrtMalloc", "\"ptr\": " + pointer(*devPtr) + ", \"size\": " + std::to_string(size) +
                         ", \"policy\": " + std::to_string(policy));
  return 0;
}

aclError aclrtFree(void *devPtr) {
  log("aclrtFree", "\"ptr\": " + pointer(devPtr));
  not_in_capture("aclrtFree");
  if (!live_memory.erase(devPtr)) { violation("aclrtFree of memory not allocated, or freed twice"); return 1; }
  written.erase(devPtr);
  std::free(devPtr);
  return 0;
}

aclError aclrtMemcpyAsync(void *dst, size_t destMax, const void *src, size_t count, aclrtMemcpyKind kind,
                          aclrtStream stream) {
  log("aclrtMemcpyAsync", "\"dst\": " + pointer(dst) + ", \"dest_max\": " + std::to_string(destMax) +
                              ", \"src\": " + pointer(src) + ", \"count\": " + std::to_string(count) +
                              ", \"kind\": " + std::to_string(kind));
  if (count > destMax) violation("aclrtMemcpyAsync beyond the destination's capacity");
  if (!inside(dst, destMax)) violation("aclrtMemcpyAsync: destMax beyond the destination buffer");
  if (!inside(src, count)) violation("aclrtMemcpyAsync: reads beyond the source buffer");
  else if (!initialised(src, count)) violation("aclrtMemcpyAsync: reads uninitialised memory");
  if (inside(dst, count)) mark_written(dst, count);
  if (stream != expected_stream) violation("aclrtMemcpyAsync: not the function's stream");
  if (fails("aclrtMemcpyAsync")) return 507011;
  return 0;
}

aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count, aclrtMemcpyKind kind) {
  log("aclrtMemcpy", "\"dst\": " + pointer(dst) + ", \"dest_max\": " + std::to_string(destMax) +
                         ", \"count\": " + std::to_string(count) + ", \"kind\": " + std::to_string(kind));
  if (count > destMax) violation("aclrtMemcpy beyond the destination's capacity");
  not_in_capture("aclrtMemcpy");
  if (!inside(dst, destMax)) violation("aclrtMemcpy: destMax beyond the destination buffer");
  if (fails("aclrtMemcpy")) return 507011;
  std::memcpy(dst, src, count);
  mark_written(dst, count);
  return 0;
}

aclError aclrtMemsetAsync(void *devPtr, size_t maxCount, int32_t value, size_t count, aclrtStream stream) {
  log("aclrtMemsetAsync", "\"ptr\": " + pointer(devPtr) + ", \"max\": " + std::to_string(maxCount) +
                              ", \"value\": " + std::to_string(value) + ", \"count\": " + std::to_string(count));
  if (count > maxCount || !inside(devPtr, maxCount)) violation("aclrtMemsetAsync beyond its buffer");
  if (stream != expected_stream) violation("aclrtMemsetAsync: not the function's stream");
  if (fails("aclrtMemsetAsync")) return 507011;
  std::memset(devPtr, value, count);
  mark_written(devPtr, count);
  return 0;
}

aclError aclrtSynchronizeStream(aclrtStream stream) {
  log("aclrtSynchronizeStream", "");
  return stream_wait("aclrtSynchronizeStream", stream, -1);
}

aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout) {
  log("aclrtSynchronizeStreamWithTimeout", "\"timeout\": " + std::to_string(timeout));
  return stream_wait("aclrtSynchronizeStreamWithTimeout", stream, timeout);
}

aclError aclrtStreamAbort(aclrtStream stream) {
  log("aclrtStreamAbort", "");
  if (stream != expected_stream) violation("aclrtStreamAbort: not the function's stream");
  aborted = true;
  return fails("aclrtStreamAbort") ? 507011 : 0;
}

HcclResult HcclGetCommName(HcclComm comm, char *commName) {
  log("HcclGetCommName", "\"comm\": " + pointer(comm));
  if (comm != expected_comm) violation("HcclGetCommName: not the function's comm");
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
  const size_t bytes = reach(t->view, t->strides, offset, dataType);
  if (format == ACL_FORMAT_ND && bytes != 0 && tensorData != nullptr && !inside(tensorData, bytes))
    violation("aclCreateTensor: the view reaches beyond its buffer");
  return t;
}

aclnnStatus aclDestroyTensor(const aclTensor *t) {
  log("aclDestroyTensor", "\"id\": " + std::to_string(t ? t->id : 0));
  if (!live_tensors.erase(t)) { violation("aclDestroyTensor of a tensor not alive"); return 1; }
  delete t;
  return 0;
}

aclScalar *aclCreateScalar(void *value, aclDataType dataType) {
  if (fails("aclCreateScalar")) return nullptr;
  const double v = dataType == ACL_FLOAT ? *static_cast<float *>(value) : 0.0 / 0.0;
  auto *s = new aclScalar{next_id++, v, dataType};
  live_scalars.insert(s);
  std::ostringstream o;
  o << "\"id\": " << s->id << ", \"value\": " << v << ", \"dtype\": " << dataType;
  log("aclCreateScalar", o.str());
  return s;
}

aclnnStatus aclDestroyScalar(const aclScalar *s) {
  log("aclDestroyScalar", "\"id\": " + std::to_string(s ? s->id : 0));
  if (!live_scalars.erase(s)) { violation("aclDestroyScalar of a scalar not alive"); return 1; }
  delete s;
  return 0;
}

aclnnStatus aclDestroyAclOpExecutor(aclOpExecutor *executor) {
  log("aclDestroyAclOpExecutor", "\"executor\": " + std::to_string(executor ? executor->id : 0));
  if (!live_executors.count(executor)) { violation("aclDestroyAclOpExecutor of an executor not alive"); return 1; }
  if (!executor->repeatable) violation("aclDestroyAclOpExecutor of an executor not made repeatable");
  live_executors.erase(executor);
  delete executor;
  return 0;
}

aclnnStatus aclSetAclOpExecutorRepeatable(aclOpExecutor *executor) {
  log("aclSetAclOpExecutorRepeatable", "\"executor\": " + std::to_string(executor ? executor->id : 0));
  if (!live_executors.count(executor)) { violation("aclSetAclOpExecutorRepeatable of an executor not alive"); return 1; }
  if (fails("aclSetAclOpExecutorRepeatable")) {
    // CANN documents no way to release an executor left one-shot, but by launching it: the
    // caller drops it, and the stand-in frees it so that the leak checks stay about qmmar.
    live_executors.erase(executor);
    delete executor;
    return 161002;
  }
  executor->repeatable = true;
  return 0;
}

// A repeatable executor's tensor moved to new memory (CANN's aclSetTensorAddr): `index` is the
// tensor's position among its first phase's aclTensor parameters.
aclnnStatus aclSetTensorAddr(aclOpExecutor *executor, const size_t index, aclTensor *tensor, void *addr) {
  log("aclSetTensorAddr", "\"executor\": " + std::to_string(live_executors.count(executor) ? executor->id : 0) +
                              ", \"index\": " + std::to_string(index) + ", \"addr\": " + pointer(addr));
  if (!live_executors.count(executor)) { violation("aclSetTensorAddr of an executor not alive"); return 161002; }
  if (!executor->repeatable) violation("aclSetTensorAddr of an executor not made repeatable");
  if (index >= executor->tensors.size() || executor->tensors[index] != tensor || tensor == nullptr) {
    violation("aclSetTensorAddr: index is not the tensor's position among its first phase's tensors");
    return 161002;
  }
  if (!live_tensors.count(tensor)) { violation("aclSetTensorAddr of a tensor not alive"); return 161002; }
  if (fails("aclSetTensorAddr")) return 161002;
  const size_t bytes = reach(tensor->view, tensor->strides, 0, tensor->dtype);
  if (tensor->format == ACL_FORMAT_ND && bytes != 0 && !inside(addr, bytes))
    violation("aclSetTensorAddr: the view reaches beyond its buffer");
  if (executor->writes == tensor->data) executor->writes = addr;
  tensor->data = addr;
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
  const aclnnStatus status = first_phase("aclnnTransMatmulWeightGetWorkspaceSize", "TransMatmulWeight",
                                         "\"weight\": " + tensor(weight), workspaceSize, executor, nullptr, {weight});
  if (status == 0) {
    weight->format = ACL_FORMAT_FRACTAL_NZ;
    // The NZ image of the weight's view [k, n] (transposed or not): [align16(k), align32(n)]
    // int8 elements (aclnnCalculateMatmulWeightSizeV2's formula over the same view).
    const int64_t r = weight->view.size() >= 2 ? weight->view[weight->view.size() - 2] : 1;
    const int64_t c = weight->view.empty() ? 1 : weight->view.back();
    (*executor)->writes = weight->data;
    (*executor)->write_bytes = static_cast<size_t>((r + 15) / 16 * 16 * ((c + 31) / 32 * 32));
  }
  return status;
}

aclnnStatus aclnnTransMatmulWeight(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnTransMatmulWeight", "TransMatmulWeight", workspace, size, executor, stream);
}

aclnnStatus aclnnTransQuantParamV2GetWorkspaceSize(const aclTensor *scale, const aclTensor *offset,
                                                   const aclTensor *out, uint64_t *workspaceSize,
                                                   aclOpExecutor **executor) {
  return first_phase("aclnnTransQuantParamV2GetWorkspaceSize", "TransQuantParamV2",
                     "\"scale\": " + tensor(scale) + ", \"offset\": " + tensor(offset) + ", \"out\": " + tensor(out),
                     workspaceSize, executor, out, {scale, offset, out});
}

aclnnStatus aclnnTransQuantParamV2(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnTransQuantParamV2", "TransQuantParamV2", workspace, size, executor, stream);
}

// V3 and V5 on Atlas A2 take the same tensors in two orders (V5: the per-token scale first) and
// log them by role; V5's extra arguments must hold the only values A2 accepts.
static aclnnStatus all_reduce_first_phase(const char *call, const char *kernel, const aclTensor *x1,
                                          const aclTensor *x2, const aclTensor *bias, const aclTensor *x3,
                                          const aclTensor *dequantScale, const aclTensor *pertokenScale,
                                          const aclTensor *commQuantScale1, const aclTensor *commQuantScale2,
                                          const char *group, const char *reduceOp, int64_t commTurn,
                                          int64_t streamMode, const aclTensor *output, uint64_t *workspaceSize,
                                          aclOpExecutor **executor, std::vector<const aclTensor *> tensors) {
  std::ostringstream o;
  o << "\"x1\": " << tensor(x1) << ", \"x2\": " << tensor(x2) << ", \"bias\": " << tensor(bias)
    << ", \"x3\": " << tensor(x3) << ", \"dequant_scale\": " << tensor(dequantScale)
    << ", \"pertoken_scale\": " << tensor(pertokenScale) << ", \"comm_quant_scale_1\": " << tensor(commQuantScale1)
    << ", \"comm_quant_scale_2\": " << tensor(commQuantScale2) << ", \"group\": " << quote(group ? group : "")
    << ", \"reduce_op\": " << quote(reduceOp ? reduceOp : "") << ", \"comm_turn\": " << commTurn
    << ", \"stream_mode\": " << streamMode << ", \"output\": " << tensor(output);
  if (group == nullptr || std::strcmp(group, kGroupName) != 0) violation("group is not HcclGetCommName's");
  if (reduceOp == nullptr || std::strcmp(reduceOp, "sum") != 0) violation("reduceOp is not \"sum\"");
  if (commTurn != 0) violation("commTurn is not 0");
  if (streamMode != 1) violation("streamMode is not 1");
  if (x1 == nullptr || x2 == nullptr || dequantScale == nullptr || output == nullptr)
    violation("a required tensor is null");
  return first_phase(call, kernel, o.str(), workspaceSize, executor, output, std::move(tensors));
}

aclnnStatus aclnnQuantMatmulAllReduceV3GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *bias, const aclTensor *x3, const aclTensor *dequantScale,
    const aclTensor *pertokenScale, const aclTensor *commQuantScale1, const aclTensor *commQuantScale2,
    const char *group, const char *reduceOp, int64_t commTurn, int64_t streamMode, const aclTensor *output,
    uint64_t *workspaceSize, aclOpExecutor **executor) {
  return all_reduce_first_phase("aclnnQuantMatmulAllReduceV3GetWorkspaceSize", "QuantMatmulAllReduceV3", x1, x2, bias,
                                x3, dequantScale, pertokenScale, commQuantScale1, commQuantScale2, group, reduceOp,
                                commTurn, streamMode, output, workspaceSize, executor,
                                {x1, x2, bias, x3, dequantScale, pertokenScale, commQuantScale1, commQuantScale2, output});
}

aclnnStatus aclnnQuantMatmulAllReduceV3(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnQuantMatmulAllReduceV3", "QuantMatmulAllReduceV3", workspace, size, executor, stream);
}

aclnnStatus aclnnQuantMatmulAllReduceV5GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *biasOptional, const aclTensor *x3Optional,
    const aclTensor *x1ScaleOptional, const aclTensor *x2Scale, const aclTensor *commQuantScale1Optional,
    const aclTensor *commQuantScale2Optional, const char *group, const char *reduceOp, const char *commMode,
    int64_t commTurn, int64_t streamMode, int64_t groupSize, int64_t commQuantMode, const aclTensor *output,
    uint64_t *workspaceSize, aclOpExecutor **executor) {
  if (commMode != nullptr && std::strcmp(commMode, "ai_cpu") != 0) violation("commMode is neither null nor \"ai_cpu\"");
  if (groupSize != 0) violation("groupSize is not 0");
  if (commQuantMode != 0) violation("commQuantMode is not 0");
  return all_reduce_first_phase("aclnnQuantMatmulAllReduceV5GetWorkspaceSize", "QuantMatmulAllReduceV5", x1, x2,
                                biasOptional, x3Optional, x2Scale, x1ScaleOptional, commQuantScale1Optional,
                                commQuantScale2Optional, group, reduceOp, commTurn, streamMode, output, workspaceSize,
                                executor, {x1, x2, biasOptional, x3Optional, x1ScaleOptional, x2Scale,
                                           commQuantScale1Optional, commQuantScale2Optional, output});
}

aclnnStatus aclnnQuantMatmulAllReduceV5(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnQuantMatmulAllReduceV5", "QuantMatmulAllReduceV5", workspace, size, executor, stream);
}

aclnnStatus aclnnAllGatherMatmulV2GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *bias, const aclTensor *x1Scale, const aclTensor *x2Scale,
    const aclTensor *quantScale, int64_t blockSize, const char *group, int64_t gatherIndex, int64_t commTurn,
    int64_t streamMode, int64_t groupSize, const char *commMode, aclTensor *output, aclTensor *gatherOut,
    aclTensor *amaxOut, uint64_t *workspaceSize, aclOpExecutor **executor) {
  std::ostringstream o;
  o << "\"x1\": " << tensor(x1) << ", \"x2\": " << tensor(x2) << ", \"bias\": " << tensor(bias)
    << ", \"x1_scale\": " << tensor(x1Scale) << ", \"x2_scale\": " << tensor(x2Scale)
    << ", \"quant_scale\": " << tensor(quantScale) << ", \"block_size\": " << blockSize
    << ", \"group\": " << quote(group ? group : "") << ", \"gather_index\": " << gatherIndex
    << ", \"comm_turn\": " << commTurn << ", \"stream_mode\": " << streamMode << ", \"group_size\": " << groupSize
    << ", \"comm_mode\": " << quote(commMode ? commMode : "") << ", \"output\": " << tensor(output)
    << ", \"gather_out\": " << tensor(gatherOut) << ", \"amax_out\": " << tensor(amaxOut);
  if (group == nullptr || std::strcmp(group, kGroupName) != 0) violation("group is not HcclGetCommName's");
  if (commMode == nullptr || std::strcmp(commMode, "aiv") != 0) violation("commMode is not \"aiv\"");
  if (bias != nullptr || quantScale != nullptr || amaxOut != nullptr) violation("bias, quantScale or amaxOut is not null");
  if (blockSize != 0 || gatherIndex != 0 || commTurn != 0 || groupSize != 0) violation("an attribute is not 0");
  if (streamMode != 1) violation("streamMode is not 1");
  if (x1 == nullptr || x2 == nullptr || x2Scale == nullptr || output == nullptr || gatherOut == nullptr)
    violation("a required tensor is null");
  return first_phase("aclnnAllGatherMatmulV2GetWorkspaceSize", "AllGatherMatmulV2", o.str(), workspaceSize, executor,
                     output, {x1, x2, bias, x1Scale, x2Scale, quantScale, output, gatherOut, amaxOut});
}

aclnnStatus aclnnAllGatherMatmulV2(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnAllGatherMatmulV2", "AllGatherMatmulV2", workspace, size, executor, stream);
}

aclnnStatus aclnnMatmulReduceScatterV2GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *bias, const aclTensor *x1Scale, const aclTensor *x2Scale,
    const aclTensor *quantScale, int64_t blockSize, const char *group, const char *reduceOp, int64_t commTurn,
    int64_t streamMode, int64_t groupSize, const char *commMode, aclTensor *output, aclTensor *amaxOutOptional,
    uint64_t *workspaceSize, aclOpExecutor **executor) {
  std::ostringstream o;
  o << "\"x1\": " << tensor(x1) << ", \"x2\": " << tensor(x2) << ", \"bias\": " << tensor(bias)
    << ", \"x1_scale\": " << tensor(x1Scale) << ", \"x2_scale\": " << tensor(x2Scale)
    << ", \"quant_scale\": " << tensor(quantScale) << ", \"block_size\": " << blockSize
    << ", \"group\": " << quote(group ? group : "") << ", \"reduce_op\": " << quote(reduceOp ? reduceOp : "")
    << ", \"comm_turn\": " << commTurn << ", \"stream_mode\": " << streamMode << ", \"group_size\": " << groupSize
    << ", \"comm_mode\": " << quote(commMode ? commMode : "") << ", \"output\": " << tensor(output)
    << ", \"amax_out\": " << tensor(amaxOutOptional);
  if (group == nullptr || std::strcmp(group, kGroupName) != 0) violation("group is not HcclGetCommName's");
  if (reduceOp == nullptr || std::strcmp(reduceOp, "sum") != 0) violation("reduceOp is not \"sum\"");
  if (commMode == nullptr || std::strcmp(commMode, "aiv") != 0) violation("commMode is not \"aiv\"");
  if (commTurn != 0 || streamMode != 1 || groupSize != 0 || blockSize != 0)
    violation("commTurn, streamMode, groupSize, blockSize are not 0, 1, 0, 0");
  if (quantScale != nullptr || amaxOutOptional != nullptr) violation("quantScale or amaxOutOptional is not null");
  if (x1 == nullptr || x2 == nullptr || x2Scale == nullptr || output == nullptr) violation("a required tensor is null");
  return first_phase("aclnnMatmulReduceScatterV2GetWorkspaceSize", "MatmulReduceScatterV2", o.str(), workspaceSize,
                     executor, output, {x1, x2, bias, x1Scale, x2Scale, quantScale, output, amaxOutOptional});
}

aclnnStatus aclnnMatmulReduceScatterV2(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnMatmulReduceScatterV2", "MatmulReduceScatterV2", workspace, size, executor, stream);
}

aclnnStatus aclnnQuantMatmulV4GetWorkspaceSize(const aclTensor *x1, const aclTensor *x2, const aclTensor *scale,
                                               const aclTensor *offset, const aclTensor *pertokenScaleOptional,
                                               const aclTensor *bias, bool transposeX1, bool transposeX2,
                                               const aclTensor *out, uint64_t *workspaceSize,
                                               aclOpExecutor **executor) {
  std::ostringstream o;
  o << "\"x1\": " << tensor(x1) << ", \"x2\": " << tensor(x2) << ", \"scale\": " << tensor(scale)
    << ", \"offset\": " << tensor(offset) << ", \"pertoken_scale\": " << tensor(pertokenScaleOptional)
    << ", \"bias\": " << tensor(bias) << ", \"transpose_x1\": " << (transposeX1 ? "true" : "false")
    << ", \"transpose_x2\": " << (transposeX2 ? "true" : "false") << ", \"out\": " << tensor(out);
  if (x1 == nullptr || x2 == nullptr || scale == nullptr || out == nullptr) violation("a required tensor is null");
  return first_phase("aclnnQuantMatmulV4GetWorkspaceSize", "QuantMatmulV4", o.str(), workspaceSize, executor, out,
                     {x1, x2, scale, offset, pertokenScaleOptional, bias, out});
}

aclnnStatus aclnnQuantMatmulV4(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnQuantMatmulV4", "QuantMatmulV4", workspace, size, executor, stream);
}

aclnnStatus aclnnAddGetWorkspaceSize(const aclTensor *self, const aclTensor *other, const aclScalar *alpha,
                                     aclTensor *out, uint64_t *workspaceSize, aclOpExecutor **executor) {
  std::ostringstream o;
  o << "\"self\": " << tensor(self) << ", \"other\": " << tensor(other) << ", \"alpha\": "
    << (live_scalars.count(alpha) ? alpha->value : -1.0) << ", \"out\": " << tensor(out);
  if (!live_scalars.count(alpha)) violation("aclnnAdd: alpha is not a live scalar");
  return first_phase("aclnnAddGetWorkspaceSize", "Add", o.str(), workspaceSize, executor, out, {self, other, out});
}

aclnnStatus aclnnAdd(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnAdd", "Add", workspace, size, executor, stream);
}

aclnnStatus aclnnCastGetWorkspaceSize(const aclTensor *self, const aclDataType dtype, aclTensor *out,
                                      uint64_t *workspaceSize, aclOpExecutor **executor) {
  std::ostringstream o;
  o << "\"self\": " << tensor(self) << ", \"dtype\": " << dtype << ", \"out\": " << tensor(out);
  if (out != nullptr && out->dtype != dtype) violation("aclnnCast: dtype is not out's");
  return first_phase("aclnnCastGetWorkspaceSize", "Cast", o.str(), workspaceSize, executor, out, {self, out});
}

aclnnStatus aclnnCast(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnCast", "Cast", workspace, size, executor, stream);
}

aclnnStatus aclnnDivGetWorkspaceSize(const aclTensor *self, const aclTensor *other, aclTensor *out,
                                     uint64_t *workspaceSize, aclOpExecutor **executor) {
  const std::string fields = "\"self\": " + tensor(self) + ", \"other\": " + tensor(other) + ", \"out\": " + tensor(out);
  return first_phase("aclnnDivGetWorkspaceSize", "Div", fields, workspaceSize, executor, out, {self, other, out});
}

aclnnStatus aclnnDiv(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnDiv", "Div", workspace, size, executor, stream);
}

aclnnStatus aclnnMulGetWorkspaceSize(const aclTensor *self, const aclTensor *other, aclTensor *out,
                                     uint64_t *workspaceSize, aclOpExecutor **executor) {
  const std::string fields = "\"self\": " + tensor(self) + ", \"other\": " + tensor(other) + ", \"out\": " + tensor(out);
  return first_phase("aclnnMulGetWorkspaceSize", "Mul", fields, workspaceSize, executor, out, {self, other, out});
}

aclnnStatus aclnnMul(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnMul", "Mul", workspace, size, executor, stream);
}

aclnnStatus aclnnReduceSumGetWorkspaceSize(const aclTensor *self, const aclIntArray *dims, bool keepDims,
                                           aclDataType dtype, aclTensor *out, uint64_t *workspaceSize,
                                           aclOpExecutor **executor) {
  if (!live_arrays.count(dims)) violation("aclnnReduceSum: dims is not a live int array");
  std::ostringstream o;
  o << "\"self\": " << tensor(self) << ", \"dims\": " << (live_arrays.count(dims) ? ::dims(dims->values) : "null")
    << ", \"keep_dims\": " << (keepDims ? "true" : "false") << ", \"dtype\": " << dtype << ", \"out\": " << tensor(out);
  if (out != nullptr && out->dtype != dtype) violation("aclnnReduceSum: dtype is not out's");
  return first_phase("aclnnReduceSumGetWorkspaceSize", "ReduceSum", o.str(), workspaceSize, executor, out, {self, out});
}

aclnnStatus aclnnReduceSum(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnReduceSum", "ReduceSum", workspace, size, executor, stream);
}

aclnnStatus aclnnQuantizeGetWorkspaceSize(const aclTensor *x, const aclTensor *scales, const aclTensor *zeroPoints,
                                          aclDataType dtype, int32_t axis, aclTensor *out, uint64_t *workspaceSize,
                                          aclOpExecutor **executor) {
  std::ostringstream o;
  o << "\"x\": " << tensor(x) << ", \"scales\": " << tensor(scales) << ", \"zero_points\": " << tensor(zeroPoints)
    << ", \"dtype\": " << dtype << ", \"axis\": " << axis << ", \"out\": " << tensor(out);
  if (out != nullptr && out->dtype != dtype) violation("aclnnQuantize: dtype is not out's");
  return first_phase("aclnnQuantizeGetWorkspaceSize", "Quantize", o.str(), workspaceSize, executor, out,
                     {x, scales, zeroPoints, out});
}

aclnnStatus aclnnQuantize(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnQuantize", "Quantize", workspace, size, executor, stream);
}

aclnnStatus aclnnInplaceOneGetWorkspaceSize(const aclTensor *selfRef, uint64_t *workspaceSize,
                                            aclOpExecutor **executor) {
  return first_phase("aclnnInplaceOneGetWorkspaceSize", "InplaceOne", "\"self\": " + tensor(selfRef), workspaceSize,
                     executor, selfRef, {selfRef});
}

aclnnStatus aclnnInplaceOne(void *workspace, uint64_t size, aclOpExecutor *executor, aclrtStream stream) {
  return launch("aclnnInplaceOne", "InplaceOne", workspace, size, executor, stream);
}

HcclResult HcclGetRankSize(HcclComm comm, uint32_t *rankSize) {
  log("HcclGetRankSize", "\"comm\": " + pointer(comm));
  if (comm != expected_comm) violation("HcclGetRankSize: not the function's comm");
  if (fails("HcclGetRankSize")) return HCCL_E_INTERNAL;
  const char *ranks = std::getenv("QMMAR_RANKS");
  *rankSize = ranks ? static_cast<uint32_t>(std::strtoul(ranks, nullptr, 10)) : 8;
  return HCCL_SUCCESS;
}

// One collective: its buffers, counts, dtype and reduce op logged; comm, stream and bounds checked.
HcclResult collective(const std::string &call, const void *send, uint64_t send_count, const void *recv,
                      uint64_t recv_count, HcclDataType dtype, int op, HcclComm comm, aclrtStream stream) {
  std::ostringstream o;
  o << "\"send\": " << pointer(send) << ", \"send_count\": " << send_count << ", \"recv\": " << pointer(recv)
    << ", \"recv_count\": " << recv_count << ", \"dtype\": " << dtype << ", \"op\": " << op;
  log(call, o.str());
  if (comm != expected_comm) violation(call + ": not the function's comm");
  if (stream != expected_stream) violation(call + ": not the function's stream");
  if (!inside(send, send_count * hccl_size(dtype))) violation(call + ": reads beyond the send buffer");
  else if (!initialised(send, send_count * hccl_size(dtype))) violation(call + ": sends uninitialised memory");
  if (!inside(recv, recv_count * hccl_size(dtype))) violation(call + ": writes beyond the recv buffer");
  else mark_written(recv, recv_count * hccl_size(dtype));
  return fails(call) ? HCCL_E_INTERNAL : HCCL_SUCCESS;
}

HcclResult HcclAllReduce(void *sendBuf, void *recvBuf, uint64_t count, HcclDataType dataType, HcclReduceOp op,
                         HcclComm comm, aclrtStream stream) {
  return collective("HcclAllReduce", sendBuf, count, recvBuf, count, dataType, op, comm, stream);
}

HcclResult HcclAllGather(void *sendBuf, void *recvBuf, uint64_t sendCount, HcclDataType dataType, HcclComm comm,
                         aclrtStream stream) {
  return collective("HcclAllGather", sendBuf, sendCount, recvBuf, sendCount * ranks(), dataType, -1, comm, stream);
}

HcclResult HcclReduceScatter(void *sendBuf, void *recvBuf, uint64_t recvCount, HcclDataType dataType,
                             HcclReduceOp op, HcclComm comm, aclrtStream stream) {
  return collective("HcclReduceScatter", sendBuf, recvCount * ranks(), recvBuf, recvCount, dataType, op, comm,
                    stream);
}

HcclResult HcclAlltoAll(const void *sendBuf, uint64_t sendCount, HcclDataType sendType, const void *recvBuf,
                        uint64_t recvCount, HcclDataType recvType, HcclComm comm, aclrtStream stream) {
  if (sendType != recvType || sendCount != recvCount) violation("HcclAlltoAll: send and recv differ");
  return collective("HcclAlltoAll", sendBuf, sendCount * ranks(), recvBuf, recvCount * ranks(), sendType, -1, comm,
                    stream);
}

}  // extern "C"
