"""Compile code from the aclnn-cpp target against the genuine ACL/HCCL headers (from the
torch-npu wheel), link it with the recording runtime, run it, and read its call log."""

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
from qmmar.dialects.dtypes import dtype_name
from qmmar.targets.aclnn_cpp import ACL_DTYPES, AclnnCppTarget, _FunctionEmitter

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
TORCH_NPU = "torch-npu==2.14.0"
RUNTIME = Path(__file__).with_name("recording_runtime.cpp")
STREAM, COMM = "0x5", "0x7"


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


def compile_cxx(sources: list[Path], output: Path, object_only: bool = False) -> None:
    """g++ -std=c++17 -Wall -Wextra -Werror against the genuine headers."""
    cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", *include_flags(), *(["-c"] if object_only else []),
           *map(str, sources), "-o", str(output)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def emit_cpp(module: ModuleOp) -> str:
    out = StringIO()
    AclnnCppTarget().emit(qmmar_context(), module, out)
    return out.getvalue()


def driver(fn: func.FuncOp, dims: dict[str, int]) -> str:
    """A main() that calls the emitted function with named host buffers standing for device
    memory, then reports leaks through the recording runtime."""
    params = _FunctionEmitter(fn).signature_params()
    lines = ["#include <cstdio>", "#include <vector>", '#include "acl/acl.h"', '#include "hccl/hccl.h"',
             'extern "C" void qmmar_test_begin(aclrtStream);', 'extern "C" void qmmar_test_name(void *, const char *);',
             'extern "C" int qmmar_test_finish();', f"int32_t qmmar_{fn.sym_name.data}({', '.join(params)});",
             "int main() {"]  # fmt: skip
    args = [f"reinterpret_cast<aclrtStream>({STREAM})", f"reinterpret_cast<HcclComm>({COMM})"]
    values = [*fn.body.blocks.first.args, *_returned(fn)]  # type: ignore[union-attr]
    pointers = [p.split()[-1].lstrip("*") for p in params if p.startswith("void *")]
    for name, value in zip(pointers, values, strict=True):
        t = value.type
        assert isinstance(t, TensorType)
        shape = [d if d >= 0 else dims[f"{name}_d{i}"] for i, d in enumerate(t.get_shape())]
        size = ACL_DTYPES[dtype_name(t.element_type)][1]
        for d in shape:
            size *= d
        lines += [
            f"  std::vector<char> {name}_buf({max(size, 1)});",
            f'  qmmar_test_name({name}_buf.data(), "{name}");',
        ]
        args.append(f"{name}_buf.data()")
    args += [str(dims[p.split()[-1]]) for p in params if p.startswith("int64_t ")]
    lines += [f"  qmmar_test_begin(reinterpret_cast<aclrtStream>({STREAM}));",
              f"  const int32_t status = qmmar_{fn.sym_name.data}({', '.join(args)});",
              '  std::printf("%d\\n", static_cast<int>(status));', "  return qmmar_test_finish();", "}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _returned(fn: func.FuncOp):
    ret = fn.body.blocks.first.last_op  # type: ignore[union-attr]
    return list(ret.operands) if isinstance(ret, func.ReturnOp) else []


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


@dataclass
class Program:
    """One emitted module, built once, run as often as a test likes."""

    binary: Path
    fn: func.FuncOp

    @classmethod
    def build(cls, module: ModuleOp, workdir: Path, dims: dict[str, int] | None = None) -> Program:
        fn = next(op for op in module.walk() if isinstance(op, func.FuncOp))
        (workdir / "emitted.cpp").write_text(emit_cpp(module))
        (workdir / "driver.cpp").write_text(driver(fn, dims or {}))
        runtime_obj = CACHE / "recording_runtime.o"
        if not runtime_obj.exists() or runtime_obj.stat().st_mtime < RUNTIME.stat().st_mtime:
            CACHE.mkdir(exist_ok=True)
            compile_cxx([RUNTIME], runtime_obj, object_only=True)
        compile_cxx([workdir / "emitted.cpp", workdir / "driver.cpp", runtime_obj], workdir / "program")
        return cls(workdir / "program", fn)

    def run(self, **env: str) -> Run:
        log = self.binary.with_suffix(".log")
        environ = {k: v for k, v in os.environ.items() if not k.startswith("QMMAR_")}
        environ |= {"QMMAR_LOG": str(log), **{f"QMMAR_{k.upper()}": v for k, v in env.items()}}
        result = subprocess.run([str(self.binary)], capture_output=True, text=True, env=environ)
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        return Run(int(result.stdout.strip()), result.returncode, entries, result.stderr)
