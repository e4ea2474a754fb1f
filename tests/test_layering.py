"""The layering of README's "Layout": `qmmar.dialects` imports only xDSL, numpy and ml_dtypes;
`qmmar.passes` imports those and the dialects; nothing in either imports the driver (`qmmar`,
its interpreter, report, frontends) or a heavy dependency (torch, graphviz, mpi4py).

Read from the source (ast), every import statement wherever it stands: at the top, inside a
function (a lazy import is still a dependency) and under TYPE_CHECKING (mypy follows it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import qmmar.dialects
import qmmar.passes

THIRD_PARTY = {"xdsl", "numpy", "ml_dtypes", "typing_extensions"}  # typing_extensions: xDSL's own dependency
LAYERS = {
    "qmmar.dialects": ("qmmar.dialects",),
    "qmmar.passes": ("qmmar.dialects", "qmmar.passes"),
}


def imported(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module name) of every import in `source`, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            name = ".".join(part for part in (base, node.module) if part)
            found.append((node.lineno, name))
    return found


def allowed(name: str, layer: str) -> bool:
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names or top in THIRD_PARTY:
        return True
    return any(name == pkg or name.startswith(pkg + ".") for pkg in LAYERS[layer])


def violations(source: str, module: str, layer: str, is_package: bool = False) -> list[str]:
    return [f"{module}:{line} imports {name}" for line, name in imported(source, module, is_package)
            if not allowed(name, layer)]  # fmt: skip


def modules(package) -> list[tuple[str, Path]]:
    """(module name, source file) of every module of the package, subpackages included."""
    (root,) = map(Path, package.__path__)
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join((package.__name__, *parts))
        found.append((name.removesuffix(".__init__"), path))
    return found


@pytest.mark.parametrize(
    "package, one_of_them",
    [(qmmar.dialects, "qmmar.dialects.numerics"), (qmmar.passes, "qmmar.passes.fuse_quant_matmul_all_reduce")],
    ids=["dialects", "passes"],
)
def test_dialects_and_passes_import_only_their_layers(package, one_of_them):
    found = modules(package)
    assert one_of_them in [name for name, _ in found] and len(found) > 5  # the walk found the files
    broken = [v for name, path in found
              for v in violations(path.read_text(), name, package.__name__, path.name == "__init__.py")]  # fmt: skip
    assert broken == []


@pytest.mark.parametrize(
    "source, layer",
    [
        ("def f():\n    import torch\n", "qmmar.dialects"),
        ("import typing\nif typing.TYPE_CHECKING:\n    from qmmar.report import HtmlReport\n", "qmmar.passes"),
        ("from qmmar.passes import chain\n", "qmmar.dialects"),
        ("from qmmar import api\n", "qmmar.passes"),
        ("import qmmar.interpreter.gemm as g\n", "qmmar.passes"),
        ("from ..interpreter import gemm\n", "qmmar.passes"),
        ("import graphviz, numpy\n", "qmmar.passes"),
    ],
)
def test_the_check_sees_every_kind_of_import(source, layer):
    """Lazy, TYPE_CHECKING, absolute, relative and multiple imports are all read."""
    assert len(violations(source, f"{layer}.m", layer)) == 1


def test_what_the_layers_may_import_passes():
    source = "from __future__ import annotations\nimport numpy.typing\nfrom xdsl.ir import Operation\n"
    source += "from . import chain\nfrom qmmar.dialects import numerics\n"
    assert violations(source, "qmmar.passes.m", "qmmar.passes") == []
    assert violations("from . import numerics\n", "qmmar.dialects.m", "qmmar.dialects") == []
