"""qmmar as Inductor's post-grad pass: a uuid that names qmmar's version and the options that change
the graph (and nothing else), and the backend on warm caches: a compile in a fresh process is
served from AOTAutograd's cache and reports what the compile that filled the cache reported, with
the same output bits (2 gloo processes a run)."""

import json
import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch_ranks as tr  # noqa: E402
from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402

import qmmar  # noqa: E402
import qmmar.dialects.qmm  # noqa: E402
import qmmar.passes.plan  # noqa: E402
from qmmar.frontends.torch import rewrite  # noqa: E402
from qmmar.frontends.torch.backend import BackendOptions, _compile_key  # noqa: E402
from qmmar.frontends.torch.inductor_pass import QmmarInductorPass, sources  # noqa: E402


def test_the_uuid_is_stable_and_names_what_changes_the_graph(monkeypatch):
    uuid = QmmarInductorPass({"min_m": 64}).uuid()
    assert uuid == QmmarInductorPass(BackendOptions(min_m=64)).uuid()
    assert uuid == QmmarInductorPass({"min_m": 64, "report": "r.json", "inner": "eager"}).uuid()
    changed = [{"min_m": 32}, {"scenario": "prefill"}, {"group": "tp"}, {"world_size": 2}, {"link_gbps": 1.0},
               {"int8_tops": 1.0}]  # fmt: skip
    changed = [{"min_m": 64} | o for o in changed]
    assert len({uuid, *(QmmarInductorPass(o).uuid() for o in changed)}) == 1 + len(changed)
    monkeypatch.setattr(qmmar, "__version__", "0.0.0")
    assert QmmarInductorPass({"min_m": 64}).uuid() != uuid


def test_the_uuid_hashes_every_source_folder_of_qmmar():
    hashed = {p.resolve() for p in sources()}
    assert {Path(m.__file__).resolve() for m in (qmmar.dialects.qmm, qmmar.passes.plan, rewrite)} <= hashed


def test_a_dynamic_m_s_value_is_in_the_report_s_key_only_when_it_decides_the_verdicts():
    """Under scenario=auto with min_m, a compile of each side of min_m has the same Dynamo graph
    and symbolic inputs (the caches tell them apart by a guard): the report's key holds m's value."""

    def symbolic(rows: int):
        gm = make_fx(lambda x: x + 1, tracing_mode="symbolic")(torch.ones(rows, 4))
        return gm, [n.meta["val"] for n in gm.graph.nodes if n.op == "placeholder"]

    (gm, small), (_, large) = symbolic(8), symbolic(32)
    for options, differ in (({"min_m": 16}, True), ({"min_m": 16, "scenario": "prefill"}, False), ({}, False)):
        opts = BackendOptions.parse(options)
        uuid = QmmarInductorPass(opts).uuid()
        assert (_compile_key(gm, small, opts, uuid) != _compile_key(gm, large, opts, uuid)) == differ


def compile_once(rank: int, world_size: int, cache: str, report: str) -> tuple[bytes, int, int]:
    """The bf16-static block compiled by backend="qmmar" (inner=inductor) with this Inductor
    cache: (the output's bytes, AOTAutograd cache hits, misses)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    model = tr.tp_decoder.build("bf16-static", rank, world_size)
    compiled = torch.compile(model, backend="qmmar", options={"report": report})
    with torch.no_grad():
        out = compiled(*tr.inputs("bf16-static", world_size, rank, tr.default_rows("bf16-static"), 0))
    counters = torch._dynamo.utils.counters["aot_autograd"]
    return out.view(torch.uint8).numpy().tobytes(), counters["autograd_cache_hit"], counters["autograd_cache_miss"]


def test_a_warm_cache_serves_the_compile_and_its_report(tmp_path):
    cache = str(tmp_path / "cache")

    def run(name: str) -> tuple[list[tuple[bytes, int, int]], str]:
        report = tmp_path / f"{name}.json"
        return tr.run_ranks(compile_once, 2, cache, str(report), timeout=900), report.read_text()

    cold, cold_report = run("cold")
    assert all(hits == 0 and misses == 1 for _, hits, misses in cold)
    assert [v["rewritten"] for v in json.loads(cold_report)["verdicts"]] == [True, True]
    warm, warm_report = run("warm")
    assert all(hits == 1 and misses == 0 for _, hits, misses in warm)
    assert warm_report == cold_report
    assert len(os.listdir(os.path.join(cache, "qmmar"))) == 1  # the key is the same in every process
    assert [out for out, _, _ in warm] == [out for out, _, _ in cold]
    shutil.rmtree(os.path.join(cache, "qmmar"))  # a cache filled without qmmar's record: compiled afresh
    again, again_report = run("again")
    assert again_report == cold_report
    assert [out for out, _, _ in again] == [out for out, _, _ in cold]
    assert os.listdir(os.path.join(cache, "qmmar"))
