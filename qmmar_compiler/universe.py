"""Registration through the `xdsl.universe` entry point, so stock `xdsl-opt` sees qmmar too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.universe import Universe
from xdsl.utils.target import Target

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp

    from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions
    from qmmar.report import HtmlReport


def _qmm() -> Dialect:
    from qmmar.dialects.qmm import Qmm

    return Qmm


def _mc2() -> Dialect:
    from qmmar.dialects.mc2 import Mc2

    return Mc2


def _fuse() -> type[ModulePass]:
    """The fusion pass, with qmmar's HTML report as the writer of its report=FILE.html."""
    from qmmar.passes.fuse_quant_matmul_all_reduce import FuseQuantMatmulAllReducePass, register_html_report

    register_html_report(html_report)
    return FuseQuantMatmulAllReducePass


def _fuse_mc2() -> type[ModulePass]:
    from qmmar.passes.fuse_quant_matmul_all_reduce import FuseMc2Pass

    _fuse()  # the HTML report's writer
    return FuseMc2Pass


def html_report(module: ModuleOp, options: FuseOptions) -> HtmlReport:
    """qmmar's writer of the fusion pass's report=FILE.html."""
    from qmmar.report import HtmlReport  # graphviz and the page: only when a page is asked for

    return HtmlReport(module, options)


def _lower() -> type[ModulePass]:
    from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass

    return LowerMc2ToAclnnPass


def _lower_qmm() -> type[ModulePass]:
    from qmmar.passes.lower_qmm_to_aclnn import LowerQmmToAclnnPass

    return LowerQmmToAclnnPass


def _aclnn() -> Dialect:
    from qmmar.dialects.aclnn import Aclnn

    return Aclnn


def _unfuse() -> type[ModulePass]:
    from qmmar.passes.unfuse_mc2 import UnfuseMc2Pass

    return UnfuseMc2Pass


def _aclnn_cpp() -> type[Target]:
    from qmmar.targets.aclnn_cpp import AclnnCppTarget

    return AclnnCppTarget


QMMAR_UNIVERSE = Universe(
    all_dialects={"qmm": _qmm, "mc2": _mc2, "aclnn": _aclnn},
    all_passes={
        "fuse-quant-matmul-all-reduce": _fuse,
        "fuse-mc2": _fuse_mc2,
        "unfuse-mc2": _unfuse,
        "lower-mc2-to-aclnn": _lower,
        "lower-qmm-to-aclnn": _lower_qmm,
    },
    all_targets={"aclnn-cpp": _aclnn_cpp},
)
