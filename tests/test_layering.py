"""The layering of README's "Layout": `qmmar.dialects` imports only xDSL, numpy and ml_dtypes;
`qmmar.passes` imports those and the dialects; nothing in either imports the driver (`qmmar`,
its interpreter, report, frontends) or a heavy dependency (torch, graphviz, mpi4py).  Inside the
driver, the interpreter imports no pass at all (`--ideal` takes the chains to measure as input),
and the report reads only the passes' public face: plans, the family, the rewrite of a plan and
the pass's options; no matcher, no legality, no cost model.

Read from the source (ast), every import statement wherever it stands: at the top, inside a
function (a lazy import is still a dependency) and under TYPE_CHECKING (mypy follows it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import qmmar.dialects
import qmmar.interpreter
import qmmar.passes
import qmmar.report

THIRD_PARTY = {"xdsl", "numpy", "ml_dtypes", "typing_extensions"}  # typing_extensions: xDSL's own dependency
PASSES_PUBLIC = ("qmmar.passes.plan", "qmmar.passes.family", "qmmar.passes.rewrite",
                 "qmmar.passes.fuse_quant_matmul_all_reduce")  # fmt: skip
LAYERS = {
    "qmmar.dialects": ("qmmar.dialects",),
    "qmmar.passes": ("qmmar.dialects", "qmmar.passes"),
    # located errors (qmmar.source), and the optional accelerators and transports, imported lazily
    "qmmar.interpreter": (
        "qmmar.dialects",
        "qmmar.interpreter",
        "qmmar.source",
        "torch",
        "mpi4py",
        "tqdm",
    ),  # fmt: skip
    "qmmar.report": ("qmmar.dialects", "qmmar.report", "qmmar.interpreter", "graphviz", *PASSES_PUBLIC),
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
    [(qmmar.dialects, "qmmar.dialects.numerics"), (qmmar.passes, "qmmar.passes.fuse_quant_matmul_all_reduce"),
     (qmmar.interpreter, "qmmar.interpreter.ideal"), (qmmar.report, "qmmar.report.model")],
    ids=["dialects", "passes", "interpreter", "report"],
)  # fmt: skip
def test_each_layer_imports_only_what_it_may(package, one_of_them):
    found = modules(package)
    assert one_of_them in [name for name, _ in found] and len(found) > 2  # the walk found the files
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


def test_the_report_may_read_plans_but_not_the_matcher():
    assert violations("from qmmar.passes.plan import FusionPlan\n", "qmmar.report.m", "qmmar.report") == []
    for internal in ("chain", "legality", "cost_model"):
        assert len(violations(f"from qmmar.passes.{internal} import x\n", "qmmar.report.m", "qmmar.report")) == 1
    assert len(violations("from qmmar.passes.chain import match_chains\n", "qmmar.interpreter.m",
                          "qmmar.interpreter")) == 1  # fmt: skip


def test_what_the_layers_may_import_passes():
    source = "from __future__ import annotations\nimport numpy.typing\nfrom xdsl.ir import Operation\n"
    source += "from . import chain\nfrom qmmar.dialects import numerics\n"
    assert violations(source, "qmmar.passes.m", "qmmar.passes") == []
    assert violations("from . import numerics\n", "qmmar.dialects.m", "qmmar.dialects") == []
