"""A non-editable install (the wheel a user gets) ships the aclnn headers as package data,
and `qmmar-opt --print-include-dir` finds them inside it."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADERS = ["aclnn/acl_meta.h", "aclnnop/aclnn_quant_matmul_all_reduce_v3.h", "aclnnop/aclnn_trans_matmul_weight.h",
           "aclnnop/aclnn_trans_quant_param_v2.h"]  # fmt: skip


def test_the_wheel_ships_the_headers_and_print_include_dir_finds_them(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("qmmar-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    top_level = sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info"))
    assert top_level == ["qmmar"]  # nothing else lands at the top of site-packages
    assert all((site / "qmmar" / sub / "py.typed").is_file() for sub in ("", "dialects", "passes"))  # PEP 561
    env = os.environ | {"PYTHONPATH": str(site)}  # ahead of the editable install
    r = subprocess.run([sys.executable, "-m", "qmmar.cli.opt", "--print-include-dir"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, check=True)  # fmt: skip
    include = Path(r.stdout.strip())
    assert include.is_relative_to(site), include
    assert all((include / h).is_file() for h in HEADERS)
