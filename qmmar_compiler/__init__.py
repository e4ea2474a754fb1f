"""qmmar: fuse quantised matmul + all-reduce chains into Ascend's aclnnQuantMatmulAllReduceV3.

The public API (`qmmar.api`) is re-exported here lazily, so that `import qmmar.dialects`
loads neither the driver nor the interpreter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from qmmar.api import (
        FuseOptions,
        InputError,
        LocatedError,
        RunError,
        Verdict,
        fuse,
        ideal_run,
        import_program,
        include_dir,
        parse_module,
        plans,
        print_module,
        qmmar_context,
        random_inputs,
        read_module,
        run_spmd,
    )

__all__ = [
    "FuseOptions", "InputError", "RunError", "LocatedError", "Verdict", "fuse", "ideal_run", "import_program",
    "include_dir", "parse_module", "plans", "print_module", "qmmar_context", "random_inputs", "read_module", "run_spmd",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in __all__:
        from qmmar import api

        return getattr(api, name)
    raise AttributeError(f"module 'qmmar' has no attribute {name!r}")
