#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run every test: ruff,
# mypy, the lit suite (IR tests, through filecheck and real mlir-opt) and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: real MLIR (the generic form qmmar prints must be MLIR's) and g++ (the
# emitted C++ is compiled with AddressSanitizer and UBSan, whose runtimes come with Debian's g++,
# and run against the genuine ACL/HCCL headers, which the tests
# fetch from the torch-npu wheel on PyPI into .cache/).
missing=()
command -v mlir-opt-19 >/dev/null || command -v mlir-opt >/dev/null || missing+=(mlir-19-tools)
command -v g++ >/dev/null || missing+=(g++)
# Graphviz's dot draws the HTML report's graphs; headless Chromium opens the report in the tests.
command -v dot >/dev/null || missing+=(graphviz)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# editable_mode=strict: the installed `qmmar` package is a tree of links to the source folders,
# which static tools (mypy) can follow; a new module needs this line run again.
# torch first, pinned: that CPU build is on local disk, and the extra's range (torch>=2.5) is then
# already satisfied; a bare `torch` would download a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
# The mpi extra: MPICH and mpi4py from PyPI (mpiexec lands in .venv/bin), for the tests that run
# ranks as processes; the models extra: transformers and torchao, for the tests on real models.
.venv/bin/python -m pip install -q -e '.[test,torch,report,mpi,models]' --config-settings editable_mode=strict
export PATH="$PWD/.venv/bin:$PATH"

ruff check .
ruff format --check .
# strict on qmmar as installed (pyproject.toml's [tool.mypy]: the link tree under build/)
mypy
lit -v tests/lit
python -m pytest tests
