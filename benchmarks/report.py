"""The HTML fusion report of N transformer layers (benchmarks/fusion.py's model): how long it
takes to write, how big it is, and how long headless Chromium takes to open it.

    python benchmarks/report.py [--layers 60 240] [--repeat 3]

"Open" is measured inside Chromium: a wrapper page loads the report in an iframe and, at its
load event, forces style and layout of the whole report (offsetHeight) and reads the clock;
the report itself has no script.  Goal: a 60-layer model's report opens in under a second.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fusion import model  # noqa: E402

from qmmar.context import qmmar_context  # noqa: E402
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse  # noqa: E402
from qmmar.report import HtmlReport  # noqa: E402
from qmmar.source import LocatingParser  # noqa: E402

WRAPPER = """<!DOCTYPE html><html><head><title>-</title></head><body>
<iframe id="r" style="width:1280px;height:1600px" src="{src}"></iframe>
<script>
document.getElementById("r").onload = function () {{
  const doc = this.contentDocument;
  const height = doc.body.offsetHeight;
  document.title = performance.now().toFixed(1) + " " + height;
}};
</script></body></html>
"""


def write(layers: int, path: str) -> tuple[float, int]:
    """Seconds to judge and write the report (parsing excluded), and the number of chains."""
    module = LocatingParser(qmmar_context(), model(layers), f"model{layers}.mlir").parse_module()
    start = time.perf_counter()
    options = FuseOptions(check_only=True)
    report = HtmlReport(module, options)
    verdicts = fuse(module, options)
    report.write(path, verdicts, module)
    return time.perf_counter() - start, len(verdicts)


def open_ms(page: str, tmp: str) -> float:
    """Milliseconds from navigation start to the report laid out, as Chromium's clock says."""
    wrapper = os.path.join(tmp, "wrapper.html")
    Path(wrapper).write_text(WRAPPER.format(src=Path(page).as_uri()))
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--allow-file-access-from-files",
         f"--user-data-dir={os.path.join(tmp, 'profile')}", "--dump-dom", Path(wrapper).as_uri()],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    found = re.search(r"<title>([\d.]+) (\d+)</title>", out)
    if found is None:
        raise RuntimeError("the wrapper page did not report a time")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[60, 240])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"medians of {args.repeat}; 25 ops and 3 chains a layer (2 legal, 1 refused); check-only report")
    print(f"| {'layers':>6} | {'chains':>6} | {'HTML MiB':>8} | {'write s':>7} | {'open s':>6} |")
    print(f"|{'-' * 8}|{'-' * 8}|{'-' * 10}|{'-' * 9}|{'-' * 8}|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.layers:
            page = os.path.join(tmp, f"model{n}.html")
            writes = [write(n, page) for _ in range(args.repeat)]
            opens = [open_ms(page, tmp) / 1e3 for _ in range(args.repeat)]
            size = os.path.getsize(page) / 2**20
            write_s = statistics.median(w[0] for w in writes)
            print(f"| {n:>6} | {writes[0][1]:>6} | {size:8.2f} | {write_s:7.2f} | {statistics.median(opens):6.2f} |")
    print("goal: a 60-layer report opens in under 1 s")


if __name__ == "__main__":
    main()
