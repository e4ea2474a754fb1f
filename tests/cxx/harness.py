"""Compile code from the aclnn-cpp target against the genuine ACL/HCCL headers (from the
torch-npu wheel), with AddressSanitizer and UBSan, link it with the recording runtime and a
generated driver, run it, and read its call log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

from qmmar.context import qmmar_context
from qmmar.dialects.dtypes import dtype_name, numpy_dtype
from qmmar.targets.aclnn_cpp import AclnnCppTarget, returned_values, signature

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
TORCH_NPU = "torch-npu==2.14.0"
RUNTIME = Path(__file__).with_name("recording_runtime.cpp")
STREAM, COMM = "0x5", "0x7"
WARNINGS = ["-std=c++17", "-Wall", "-Wextra", "-Wlogical-op", "-Werror"]
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


def acl_include() -> Path:
    """torch_npu/include from the torch-npu wheel, downloaded once into .cache/."""
    if env := os.environ.get("QMMAR_ACL_INCLUDE"):
        return Path(env)
    include = CACHE / "torch_npu" / "include"
    if not (include / "third_party" / "acl" / "inc" / "acl" / "acl.h").exists():
        wheels = CACHE / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "-d", str(wheels), TORCH_NPU], check=True)  # fmt: skip
        (wheel,) = wheels.glob("torch_npu-*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(CACHE, [n for n in z.namelist() if n.startswith("torch_npu/include/")])
    return include


def include_flags() -> list[str]:
    acl = acl_include()
    cann = ROOT / "qmmar_compiler" / "targets" / "cann_include"
    return [f"-I{acl}", f"-I{acl}/third_party/acl/inc", f"-I{acl}/third_party/hccl/inc", f"-I{cann}"]


def compile_cxx(sources: list[Path], output: Path, object_only: bool = False, sanitize: bool = True,
                include: list[Path] = ()) -> None:  # fmt: skip
    """g++ -std=c++17 -Wall -Wextra -Werror against the genuine headers (and, by default,
    with AddressSanitizer and UBSan)."""
    cmd = ["g++", *WARNINGS, *(SANITIZERS if sanitize else []), *include_flags(), *(f"-I{d}" for d in include),
           *(["-c"] if object_only else []), *map(str, sources), "-o", str(output)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def emit_cpp(module: ModuleOp, header: bool = False) -> str:
    out = StringIO()
    AclnnCppTarget(header=header).emit(qmmar_context(), module, out)
    return out.getvalue()


def _params(fn: func.FuncOp) -> list[tuple[str, str]]:
    """(C++ type, name) of each parameter after stream and comm."""
    inside = signature(fn).split("(", 1)[1].rsplit(")", 1)[0]
    return [(p.rsplit(" ", 1)[0].rstrip("*").strip(), p.rsplit(" ", 1)[1].lstrip("*")) for p in inside.split(", ")[2:]]


def _function_driver(fn: func.FuncOp, dims: dict[str, int]) -> list[str]:
    """run_<f>(): named host buffers standing for device memory, sized by the dims (each
    default overridable by $QMMAR_DIM_<name>), then the call."""
    params = [(kind, name) for kind, name in _params(fn) if kind != "HcclComm"]
    comms = len(_params(fn)) - len(params)  # a further group's communicator: the test's one too
    sizes = [name for kind, name in params if kind == "int64_t"]
    lines = [f"int32_t run_{fn.sym_name.data}() {{"]
    lines += [f'  const int64_t {d} = dim("{d}", {dims.get(d, 48)});' for d in sizes]
    values = [*fn.body.blocks.first.args, *returned_values(fn)]  # type: ignore[union-attr]
    pointers = [name for kind, name in params if kind != "int64_t"]
    for name, value in zip(pointers, values, strict=True):
        t = value.type
        assert isinstance(t, TensorType)
        shape = ", ".join(f"{name}_d{i}" if d < 0 else str(d) for i, d in enumerate(t.get_shape()))
        lines += [f'  Buffer {name}({{{shape}}}, {numpy_dtype(dtype_name(t.element_type)).itemsize}, "{name}");']
    args = ", ".join([f"reinterpret_cast<aclrtStream>({STREAM})", f"reinterpret_cast<HcclComm>({COMM})",
                      *[f"reinterpret_cast<HcclComm>({COMM})"] * comms, *(f"{n}.data()" for n in pointers),
                      *sizes])  # fmt: skip
    name, stream = f"qmmar_{fn.sym_name.data}", f"reinterpret_cast<aclrtStream>({STREAM})"
    # $QMMAR_RUNS=n: prepare once, n runs inside a capture, synchronise, release; else
    # $QMMAR_CALLS (default 1) calls of the one-shot entry; each run or call timed (Timer)
    return lines + ["  Timer timer;", "  int32_t status = 0;", '  const int runs = count("QMMAR_RUNS", 0);',
                    "  if (runs == 0) {",
                    '    for (int i = 0; i < count("QMMAR_CALLS", 1) && status == 0; ++i) {',
                    "      timer.start();", f"      status = {name}({args});", "      timer.stop();", "    }",
                    "    return status;", "  }", f"  {name}_plan *plan = nullptr;",
                    f"  status = {name}_prepare(&plan, {args});", "  if (status != 0) return status;",
                    "  qmmar_test_capture(1);", "  for (int i = 0; i < runs && status == 0; ++i) {",
                    "    timer.start();", f"    status = {name}_run(plan, {args});", "    timer.stop();", "  }",
                    "  qmmar_test_capture(0);",
                    f"  const int32_t synced = static_cast<int32_t>(aclrtSynchronizeStreamWithTimeout({stream}, "
                    "qmmar_sync_timeout()));",
                    f"  const int32_t released = {name}_release(plan);",
                    "  return status != 0 ? status : synced != 0 ? synced : released;", "}"]  # fmt: skip


DRIVER_PRELUDE = """\
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <string>
#include <vector>
#include "generated.h"
extern "C" void qmmar_test_begin(aclrtStream, HcclComm);
extern "C" void qmmar_test_name(void *, const char *, size_t);
extern "C" void qmmar_test_capture(int);
extern "C" int qmmar_test_finish();
// the bound of the caller's wait (the header declares it; code emitted before it had none)
extern "C" void qmmar_set_sync_timeout(int32_t milliseconds) noexcept;
extern "C" int32_t qmmar_sync_timeout(void) noexcept;
namespace {
[[maybe_unused]] int64_t dim(const char *name, int64_t fallback) {
  const char *v = std::getenv((std::string("QMMAR_DIM_") + name).c_str());
  return v ? std::strtoll(v, nullptr, 10) : fallback;
}
int count(const char *name, int fallback) {
  const char *v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}
// $QMMAR_TIMES: a line per timed call, its wall and CPU (process) time in ns (for benchmarks).
class Timer {
 public:
  Timer() : out_(std::getenv("QMMAR_TIMES") ? std::fopen(std::getenv("QMMAR_TIMES"), "w") : nullptr) {}
  Timer(const Timer &) = delete;
  Timer &operator=(const Timer &) = delete;
  ~Timer() {
    if (out_ != nullptr) std::fclose(out_);
  }
  void start() { now(wall_, cpu_); }
  void stop() {
    if (out_ == nullptr) return;
    int64_t wall = 0, cpu = 0;
    now(wall, cpu);
    std::fprintf(out_, "%lld %lld\\n", static_cast<long long>(wall - wall_), static_cast<long long>(cpu - cpu_));
  }

 private:
  static void now(int64_t &wall, int64_t &cpu) {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    wall = t.tv_sec * INT64_C(1000000000) + t.tv_nsec;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    cpu = t.tv_sec * INT64_C(1000000000) + t.tv_nsec;
  }
  std::FILE *out_;
  int64_t wall_ = 0, cpu_ = 0;
};
// A host buffer named for the log; a shape the function must refuse gets one byte.
struct Buffer {
  std::vector<char> bytes;
  Buffer(std::initializer_list<int64_t> dims, int64_t size, const char *name) {
    for (int64_t d : dims)
      if (d < 0 || (d != 0 && __builtin_mul_overflow(size, d, &size)) || size > (int64_t{1} << 30)) size = 1;
    bytes.resize(size > 0 ? static_cast<size_t>(size) : 1);
    qmmar_test_name(bytes.data(), name, static_cast<size_t>(size));
  }
  void *data() { return bytes.data(); }
};
"""


def driver(functions: list[func.FuncOp], dims: dict[str, int]) -> str:
    lines = [DRIVER_PRELUDE]
    for fn in functions:
        lines += _function_driver(fn, dims)
    lines += ["}  // namespace", "int main() {", '  const char *entry = std::getenv("QMMAR_ENTRY");',
              f"  qmmar_test_begin(reinterpret_cast<aclrtStream>({STREAM}), reinterpret_cast<HcclComm>({COMM}));",
              '  if (const char *ms = std::getenv("QMMAR_TIMEOUT_MS")) qmmar_set_sync_timeout(std::atoi(ms));',
              "  int32_t status = -1;"]  # fmt: skip
    for fn in functions:
        name = fn.sym_name.data
        lines.append(f'  if (entry == nullptr || std::strcmp(entry, "{name}") == 0) status = run_{name}();')
    lines += ['  std::printf("%d\\n", static_cast<int>(status));', "  return qmmar_test_finish();", "}"]
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    status: int
    leaks: int
    log: list[dict]
    stderr: str

    def calls(self, name: str) -> list[dict]:
        return [entry for entry in self.log if entry["call"] == name]

    @property
    def violations(self) -> list[str]:
        return [entry["what"] for entry in self.calls("violation")]

    def clean(self) -> bool:
        return self.violations == [] and self.leaks == 0


def runtime_object() -> Path:
    obj = CACHE / "recording_runtime.sanitized.o"
    if not obj.exists() or obj.stat().st_mtime < RUNTIME.stat().st_mtime:
        CACHE.mkdir(exist_ok=True)
        compile_cxx([RUNTIME], obj, object_only=True)
    return obj


@dataclass
class Program:
    """One emitted module (source and header), built once, run as often as a test likes."""

    binary: Path
    functions: list[func.FuncOp]

    @property
    def fn(self) -> func.FuncOp:
        return self.functions[0]

    @classmethod
    def build(cls, module: ModuleOp, workdir: Path, dims: dict[str, int] | None = None) -> Program:
        functions = [op for op in module.walk() if isinstance(op, func.FuncOp) and op.body.blocks]
        return cls.compile(emit_cpp(module), emit_cpp(module, header=True), functions, workdir, dims)

    @classmethod
    def compile(cls, source: str, header: str, functions: list[func.FuncOp], workdir: Path,
                dims: dict[str, int] | None = None, extra: list[Path] | None = None) -> Program:  # fmt: skip
        """Emitted code and its header (of `functions`), with the driver and the runtime."""
        (workdir / "emitted.cpp").write_text(source)
        (workdir / "generated.h").write_text(header)
        (workdir / "driver.cpp").write_text(driver(functions, dims or {}))
        compile_cxx([workdir / "emitted.cpp", workdir / "driver.cpp", runtime_object(), *(extra or [])],
                    workdir / "program", include=[workdir])  # fmt: skip
        return cls(workdir / "program", functions)

    def run(self, entry: str | None = None, dims: dict[str, int] | None = None, **env: str) -> Run:
        log = self.binary.with_suffix(".log")
        log.unlink(missing_ok=True)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("QMMAR_")}
        environ |= {"QMMAR_LOG": str(log), **{f"QMMAR_{k.upper()}": v for k, v in env.items()}}
        environ |= {f"QMMAR_DIM_{k}": str(v) for k, v in (dims or {}).items()}
        environ |= {"QMMAR_ENTRY": entry} if entry else {}
        result = subprocess.run([str(self.binary)], capture_output=True, text=True, env=environ)
        assert result.stdout.strip(), result.stderr  # a sanitizer report ends the run without a status
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return Run(int(result.stdout.strip()), result.returncode, entries, result.stderr)
