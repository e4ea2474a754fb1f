"""The HTML fusion report as a person sees it: opened in headless Chromium, screenshot and DOM
checked against the verdicts the fusion pass gives (one box per chain, its colour, rule and
location), and self-contained (no script, nothing to fetch)."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_illegal_chains import DEFECTS

from helpers import parse
from programs import chain_specs, unfused_program
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.report import HtmlReport
from qmmar.report.graph import COLOURS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "two_layers.mlir"
SEQUENCE_PARALLEL = ROOT / "examples" / "sequence_parallel.mlir"
WINDOW = (1280, 1600)


def needs(program: str) -> None:
    """The test command installs Chromium and Graphviz; elsewhere their absence skips."""
    if shutil.which(program) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is not installed (scripts/test.sh installs it)")
        pytest.skip(f"{program} is not installed")


def tool(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"qmmar.cli.{module}", *map(str, args)],
                          capture_output=True, text=True)  # fmt: skip


def chromium(page: Path, tmp_path: Path) -> tuple[Image.Image, str]:
    """A screenshot of the page and its DOM after loading, from headless Chromium."""
    needs("chromium")
    shot = tmp_path / "shot.png"
    r = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return Image.open(shot).convert("RGB"), r.stdout


class Dom(HTMLParser):
    """The chain boxes of the graphs (their outline's colours and label) and the chain cards."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.boxes: dict[int, dict] = {}
        self.cards: dict[int, dict] = {}
        self.tags: set[str] = set()
        self._stack: list[dict | None] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        box = self._stack[-1] if self._stack else None
        if tag == "g":
            if (m := re.fullmatch(r"box-(\d+)", a.get("id", ""))) and "chain" in a.get("class", "").split():
                box = self.boxes[int(m.group(1))] = {"class": a["class"].split(), "text": [], "paint": None}
            self._stack.append(box)
        elif box is not None and tag in ("path", "polygon") and box["paint"] is None:
            box["paint"] = (a.get("stroke"), a.get("fill"))
        elif tag == "article" and (m := re.fullmatch(r"chain-(\d+)", a.get("id", ""))):
            self.cards[int(m.group(1))] = a

    def handle_endtag(self, tag):
        if tag == "g":
            self._stack.pop()

    def handle_data(self, data):
        if self._stack and self._stack[-1] is not None and data.strip():
            self._stack[-1]["text"].append(data.strip())


def status(v) -> str:
    return "fused" if v.rewritten else "legal" if v.legal else "refused"


def check_page(page: Path, verdicts, tmp_path: Path) -> None:
    shot, dom_text = chromium(page, tmp_path)
    dom = Dom(dom_text)
    numbers = list(range(1, len(verdicts) + 1))
    assert sorted(dom.boxes) == numbers and sorted(dom.cards) == numbers
    for n, v in zip(numbers, verdicts, strict=True):
        box, card = dom.boxes[n], dom.cards[n]
        assert status(v) in box["class"]
        assert box["paint"] == COLOURS[status(v)], (n, box)
        label = " ".join(box["text"])
        assert f"#{n} {status(v)}" in label and os.path.basename(v.location) in label
        assert (f"[{v.rule}]" in label) == (v.rule is not None)
        assert (card["data-status"], card["data-rule"] or None, card["data-location"]) == (
            status(v),
            v.rule,
            v.location,
        )
    # A screenshot a person can read: far from blank, with each verdict's colour on it.
    assert shot.size == WINDOW
    pixels = np.asarray(shot).reshape(-1, 3)
    background = np.bincount(pixels @ np.array([65536, 256, 1])).argmax()
    assert np.mean(pixels @ np.array([65536, 256, 1]) != background) > 0.05
    for stroke, _ in COLOURS.values():
        rgb = np.array([int(stroke[i : i + 2], 16) for i in (1, 3, 5)])
        assert np.any(np.all(np.abs(pixels.astype(int) - rgb) <= 6, axis=1)), stroke


def test_two_layer_report_from_the_pass_in_chromium(tmp_path):
    needs("dot")
    page = tmp_path / "report.html"
    r = tool("opt", EXAMPLE, "-p", f'fuse-quant-matmul-all-reduce{{report="{page}"}}', "-o", tmp_path / "f.mlir")
    assert r.returncode == 0, r.stderr
    verdicts = fuse(parse(EXAMPLE.read_text(), str(EXAMPLE)))
    assert [status(v) for v in verdicts] == ["fused", "refused"]
    check_page(page, verdicts, tmp_path)
    text = page.read_text()
    assert "mc2.quant_matmul_all_reduce %0, %w_o" in text  # the fused op, after
    assert "%acc1 = qmm.matmul %act, %w_down" in text  # the refused chain's ops, before


def test_a_sequence_parallel_report_shows_both_kinds_with_their_verdicts_and_costs(tmp_path):
    """examples/sequence_parallel.mlir fused (in Chromium), judged only, and refused by min-m:
    each chain's card names its fused op and its verdict, and draws the estimate of that op's
    collective (its label, compute and communication times, m/k/n) beside its cost note."""
    needs("dot")
    fused_page = tmp_path / "fused.html"
    r = tool("opt", SEQUENCE_PARALLEL, "-p", f'fuse-mc2{{report="{fused_page}"}}', "-o", tmp_path / "f.mlir")
    assert r.returncode == 0, r.stderr
    check_page(fused_page, fuse(parse(SEQUENCE_PARALLEL.read_text(), str(SEQUENCE_PARALLEL))), tmp_path)
    labels = {"mc2.all_gather_quant_matmul": "int8 all-gather",
              "mc2.quant_matmul_reduce_scatter": "16-bit reduce-scatter"}  # fmt: skip
    for name, flags, options in (("fused", (), FuseOptions()),
                                 ("legal", (), FuseOptions(check_only=True)),
                                 ("refused", ("--min-m", 128), FuseOptions(check_only=True, min_m=128))):  # fmt: skip
        page = fused_page
        if name != "fused":
            page = tmp_path / f"{name}.html"
            r = tool("check", SEQUENCE_PARALLEL, "--html", page, *flags)
            assert r.returncode == 0, r.stderr
        verdicts = fuse(parse(SEQUENCE_PARALLEL.read_text(), str(SEQUENCE_PARALLEL)), options)
        assert sorted(v.kind for v in verdicts) == sorted(labels) and {status(v) for v in verdicts} == {name}
        html = page.read_text()
        dom = Dom(html)
        for n, v in enumerate(verdicts, 1):
            card = html[html.index(f'id="chain-{n}"') :].split("</article>")[0]
            assert (dom.cards[n]["data-kind"], dom.cards[n]["data-status"], dom.cards[n]["data-rule"] or None) == (
                v.kind, name, v.rule)  # fmt: skip
            assert {"fused": f"fused into {v.kind}", "legal": f"legal to fuse into {v.kind}",
                    "refused": f"not fused into {v.kind}"}[name] in card  # fmt: skip
            [cost] = v.plan.costs
            assert cost.label == labels[v.kind]
            m, k, n_ = v.plan.dims
            assert f"m {m}, k {k}, n {n_}, world size 4" in card
            svg = card.split('<svg class="cost"')[1].split("</svg>")[0]
            assert f">{cost.label}<" in svg and ">as written<" in svg
            for value in (cost.estimate.compute_us, cost.estimate.comm_us):
                assert f">{value:.3g} µs<" in svg
            assert "COST-OVERLAP" in card and escape(cost.estimate.describe()) in card


def benchmark_model(layers: int) -> str:
    """N transformer layers from benchmarks/layers.py: 3 chains a layer, one of them refused."""
    spec = importlib.util.spec_from_file_location("layers_benchmark", ROOT / "benchmarks" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.model(layers)


def test_sixty_layer_report_from_qmmar_check_in_chromium(tmp_path):
    needs("dot")
    source, page = tmp_path / "model.mlir", tmp_path / "model.html"
    source.write_text(benchmark_model(60))
    r = tool("check", source, "--html", page)
    assert r.returncode == 0, r.stderr
    verdicts = fuse(parse(source.read_text(), str(source)), FuseOptions(check_only=True))
    assert len(verdicts) == 180 and {status(v) for v in verdicts} == {"legal", "refused"}
    check_page(page, verdicts, tmp_path)


def test_the_page_is_self_contained(tmp_path):
    needs("dot")
    module = parse(EXAMPLE.read_text(), str(EXAMPLE))
    report = HtmlReport(module, FuseOptions())
    report.write(str(tmp_path / "r.html"), fuse(module), module)
    text = (tmp_path / "r.html").read_text()
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", text)
    assert "url(" not in text and "@import" not in text
    urls = set(re.findall(r"https?://[^\"' )]+", text))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chain_specs(), defect=st.sampled_from([None, *sorted(DEFECTS)]), check_only=st.booleans())
def test_every_chain_gets_its_box_card_and_ops(tmp_path_factory, spec, defect, check_only):
    """Whatever the chain, its verdict, or the mode: one box and one card, all its ops before,
    and the fused op after exactly when it is (or would be) fused."""
    needs("dot")
    text = unfused_program(spec)
    if defect is not None and DEFECTS[defect].applies(spec):
        text = DEFECTS[defect].mutate(text)
    module = parse(text)
    options = FuseOptions(check_only=check_only)
    report = HtmlReport(module, options)
    verdicts = fuse(module, options)
    page = tmp_path_factory.mktemp("page") / "r.html"
    report.write(str(page), verdicts, module)
    html = page.read_text()
    dom = Dom(html)
    assert sorted(dom.boxes) == sorted(dom.cards) == list(range(1, len(verdicts) + 1))
    for n, v in enumerate(verdicts, 1):
        card = html[html.index(f'id="chain-{n}"') :].split("</article>")[0]
        before, after = card.split("<h3>before</h3>")[1].split("<h3>after")
        assert before.count("<tr>") == len(v.chain.split(" -> "))
        assert ("mc2.quant_matmul_all_reduce" in after) == v.legal, after


def test_report_errors_are_one_line(tmp_path):
    needs("dot")
    r = tool("check", EXAMPLE, "--html", tmp_path / "missing" / "r.html")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot write" in r.stderr
    np.savez(tmp_path / "plain.npz", result0=np.zeros(3, np.float32))
    r = tool("check", EXAMPLE, "--html", tmp_path / "r.html", "--run", tmp_path / "plain.npz")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no figures in it" in r.stderr
    r = tool("check", EXAMPLE, "--run", tmp_path / "plain.npz")
    assert r.returncode == 2 and "--run goes with --html" in r.stderr
    r = tool("opt", EXAMPLE, "-p", f'fuse-quant-matmul-all-reduce{{report="{tmp_path / "no" / "r.html"}"}}')
    assert r.returncode == 1 and "Traceback" not in r.stderr and "cannot write the report" in r.stderr


APPLY_THE_PASS = """import sys
from qmmar.context import qmmar_context
from qmmar.source import parse_module
from xdsl.utils.exceptions import PassFailedException
%s
module = parse_module(qmmar_context(), open(sys.argv[1]).read(), sys.argv[1])
try:
    fuse_pass(report=sys.argv[2]).apply(qmmar_context(), module)
except PassFailedException as err:
    print(err)
print("qmm.matmul" in str(module))
"""


def test_without_a_registered_writer_an_html_report_is_one_line_error(tmp_path):
    """qmmar.passes alone (no universe) draws no page: it says so, before changing anything."""
    load = "from qmmar.passes.fuse_quant_matmul_all_reduce import FuseQuantMatmulAllReducePass as fuse_pass"
    r = subprocess.run([sys.executable, "-c", APPLY_THE_PASS % load, EXAMPLE, tmp_path / "r.html"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    error, unchanged = r.stdout.splitlines()
    assert error.startswith(f"report={tmp_path / 'r.html'}: no HTML report writer is registered")
    assert unchanged == "True"
    assert not (tmp_path / "r.html").exists()


def test_the_universe_registers_qmmar_report_as_the_writer(tmp_path):
    """Loaded through qmmar's xDSL universe (as qmmar-opt and xdsl-opt load it), the pass
    writes qmmar.report's page; xdsl-opt too."""
    needs("dot")
    load = "from qmmar.universe import QMMAR_UNIVERSE\n"
    load += "fuse_pass = QMMAR_UNIVERSE.all_passes['fuse-quant-matmul-all-reduce']()"
    r = subprocess.run([sys.executable, "-c", APPLY_THE_PASS % load, EXAMPLE, tmp_path / "r.html"],
                       capture_output=True, text=True)  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "True\n"), r.stderr  # fused one chain, kept the refused one
    assert "<svg" in (tmp_path / "r.html").read_text()
    xdsl_opt = Path(sys.executable).parent / "xdsl-opt"
    r = subprocess.run([xdsl_opt, EXAMPLE, "-p", f'fuse-quant-matmul-all-reduce{{report="{tmp_path / "x.html"}"}}'],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "<svg" in (tmp_path / "x.html").read_text()


def test_the_pass_hands_the_registered_writer_the_graph_before_and_the_verdicts_after(tmp_path, monkeypatch):
    import qmmar.passes.fuse_quant_matmul_all_reduce as fq

    seen = {}

    class Writer:
        def __init__(self, module, options):
            seen["before"] = str(module).count("qmm.matmul")
            seen["options"] = options

        def write(self, path, verdicts, module):
            seen["write"] = (path, [v.rewritten for v in verdicts], str(module).count("qmm.matmul"))

    monkeypatch.setattr(fq, "_html_report_factory", None)  # restored after the test
    fq.register_html_report(Writer)
    fuse_pass = fq.FuseQuantMatmulAllReducePass(report=str(tmp_path / "r.html"), remarks="none")
    fuse_pass.apply(None, parse(EXAMPLE.read_text(), str(EXAMPLE)))  # type: ignore[arg-type]
    assert seen == {"before": 2, "options": fuse_pass, "write": (str(tmp_path / "r.html"), [True, False], 1)}


def test_json_report_keeps_only_the_verdicts_data(tmp_path):
    r = tool("check", EXAMPLE, "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    keys = set(re.findall(r'"(\w+)":', (tmp_path / "r.json").read_text()))
    assert keys == {"verdicts", "location", "chain", "legal", "rewritten", "rule", "sentence", "must_fuse", "notes"}


def test_the_run_figures_appear_in_the_report(tmp_path):
    needs("dot")
    run, page = tmp_path / "run.npz", tmp_path / "r.html"
    r = tool("run", EXAMPLE, "-w", 8, "--random-inputs", 1, "--ideal", "-o", run)
    assert r.returncode == 0, r.stderr
    r = tool("check", EXAMPLE, "--html", page, "--run", run)
    assert r.returncode == 0, r.stderr
    text = page.read_text()
    summary, chains = text.split('<section id="chains">')
    assert f'<a href="#chain-1">{EXAMPLE}:13:3</a>' in summary  # the figures' row links to its chain
    card = chains.split('id="chain-1"')[1].split("</article>")[0]
    assert "this run against the full-precision ideal" in card and "qmm chain" in card and "int8" in card


@settings(max_examples=300, deadline=None)
@given(count=st.integers(0, 400), part_ops=st.integers(1, 60), data=st.data())
def test_parts_cover_the_function_and_never_cut_a_chain(count, part_ops, data):
    from types import SimpleNamespace

    from qmmar.report.graph import cuts

    spans = data.draw(st.lists(st.tuples(st.integers(0, max(count - 1, 0)), st.integers(0, 30)), max_size=20))
    chains = [SimpleNamespace(nodes=tuple(range(a, min(a + n, count - 1) + 1))) for a, n in spans if count]
    parts = cuts(count, chains, part_ops)
    assert [i for p in parts for i in p] == list(range(count))
    for c in chains:
        assert len({next(k for k, p in enumerate(parts) if i in p) for i in c.nodes}) == 1


dot_texts = st.builds(
    lambda head, middle, tail: head + middle + tail,
    st.sampled_from(["", "<", "<unknown>"]),
    st.text(st.sampled_from('<>"\\%\n ae{}[]|:;#é'), max_size=16),
    st.sampled_from(["", ">", "tensor<4xi8>"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=dot_texts, result=dot_texts, text=dot_texts, location=dot_texts)
def test_any_op_text_reaches_dot_as_text(name, result, text, location):
    """Labels and tooltips are dot strings whatever they hold: an op without a location
    (`<unknown>`, as xdsl-opt parses) whose text ends in `tensor<...>` is not an HTML label."""
    needs("dot")
    from qmmar.report.graph import function_parts
    from qmmar.report.model import FunctionGraph, Node

    graph = FunctionGraph("f", (Node(name, result, text, location, ()), Node("b", "", "", "", (0,))))
    (part,) = function_parts(graph, [])
    assert part.svg.count('class="node op"') == 2


def test_graphviz_and_the_report_load_only_when_a_page_is_drawn():
    code = ("import sys, qmmar.passes.fuse_quant_matmul_all_reduce, qmmar.cli.check, qmmar.cli.opt\n"
            "assert 'qmmar.report' not in sys.modules\n"
            "import qmmar.report\n"
            "assert 'graphviz' not in sys.modules")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_refused_chain_shows_the_figures_of_its_run(tmp_path):
    """The figures are keyed by where the chain is (its matmul), whichever op its rule is about:
    here the module's group refuses the chain at its all-to-all (CHAIN-ONE-GROUP)."""
    needs("dot")
    run, page = tmp_path / "run.npz", tmp_path / "r.html"
    assert tool("run", EXAMPLE, "-w", 8, "--random-inputs", 1, "--ideal", "-o", run).returncode == 0
    r = tool("check", EXAMPLE, "--group", "other", "--html", page, "--run", run)
    assert r.returncode == 0, r.stderr
    card = page.read_text().split('<section id="chains">')[1].split('id="chain-1"')[1].split("</article>")[0]
    assert 'data-rule="CHAIN-ONE-GROUP"' in card and f'data-location="{EXAMPLE}:19:3"' in card
    assert "this run against the full-precision ideal" in card and "qmm chain" in card


def test_a_run_of_another_program_is_refused(tmp_path):
    needs("dot")
    other, run, page = tmp_path / "other.mlir", tmp_path / "run.npz", tmp_path / "r.html"
    other.write_text(EXAMPLE.read_text())
    assert tool("run", other, "-w", 8, "--random-inputs", 1, "--ideal", "-o", run).returncode == 0
    r = tool("check", EXAMPLE, "--html", page, "--run", run)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"{run}: error: its figures are of another program: no chain of this one is at "
                               f"{other}:13:3")  # fmt: skip
