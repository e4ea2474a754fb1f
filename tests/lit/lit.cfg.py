# ruff: noqa: F821  (lit provides `config`)
# lit configuration for qmmar's IR tests: `.mlir` files with `// RUN:` lines piped into
# filecheck, as xDSL and MLIR do.
import os
import shutil

import lit.formats

config.name = "qmmar"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["inputs"]
config.environment["PATH"] = os.environ["PATH"]

# Real MLIR (Debian's mlir-N-tools) checks that the generic form we print is MLIR's.
for name in ("mlir-opt", "mlir-opt-19", "mlir-opt-18", "mlir-opt-17", "mlir-opt-16"):
    if (path := shutil.which(name)) is not None:
        config.substitutions.append(("%mlir-opt", path))
        config.available_features.add("mlir-opt")
        break
