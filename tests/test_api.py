"""The public Python API: the README's example runs as written, every name is documented,
and `import qmmar` stays light."""

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import qmmar
import qmmar.api

ROOT = Path(__file__).resolve().parent.parent


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"### {title}\n")
    return text[start : text.index("\n## ", start)]


def test_the_readme_python_api_example_runs_as_written(monkeypatch):
    monkeypatch.chdir(ROOT)  # its paths are relative to the repository
    blocks = re.findall(r"```pycon\n(.*?)```", readme_section("Python API"), re.DOTALL)
    assert len(blocks) == 1
    test = doctest.DocTestParser().get_doctest(blocks[0], {}, "README.md: Python API", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False) == (0, len(test.examples))


def test_every_public_name_is_exported_and_documented():
    assert sorted(qmmar.__all__) == sorted(qmmar.api.__all__)
    for name in qmmar.__all__:
        obj = getattr(qmmar, name)
        assert obj is getattr(qmmar.api, name)
        assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_import_qmmar_loads_neither_xdsl_nor_numpy():
    probe = "import sys, qmmar; print(sorted(m for m in ('numpy', 'xdsl', 'qmmar.api') if m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_fuse_writes_the_report_its_options_name(tmp_path):
    """FuseOptions.report is honoured by the API as by the pass: JSON, or qmmar's HTML page."""
    import json

    for name in ("r.json", "r.html"):
        module = qmmar.read_module(str(ROOT / "examples" / "two_layers.mlir"))
        verdicts = qmmar.fuse(module, qmmar.FuseOptions(report=str(tmp_path / name)))
        assert [v.legal for v in verdicts] == [True, False]
    assert [v["legal"] for v in json.loads((tmp_path / "r.json").read_text())["verdicts"]] == [True, False]
    assert "MC2-SCALE-DTYPE" in (tmp_path / "r.html").read_text()
