#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run every test:
# the lit suite (IR tests, through filecheck and real mlir-opt) and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real MLIR, to check that the generic form qmmar prints is MLIR's.
if ! command -v mlir-opt-19 >/dev/null && ! command -v mlir-opt >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mlir-19-tools >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

lit -v tests/lit
python -m pytest tests
