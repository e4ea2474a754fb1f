"""Registration through the `xdsl.universe` entry point, so stock `xdsl-opt` sees qmmar too."""

from xdsl.universe import Universe


def _qmm():
    from dialects.qmm import Qmm

    return Qmm


def _mc2():
    from dialects.mc2 import Mc2

    return Mc2


def _fuse():
    from passes.fuse_quant_matmul_all_reduce import FuseQuantMatmulAllReducePass

    return FuseQuantMatmulAllReducePass


def _unfuse():
    from passes.unfuse_mc2 import UnfuseMc2Pass

    return UnfuseMc2Pass


QMMAR_UNIVERSE = Universe(
    all_dialects={"qmm": _qmm, "mc2": _mc2},
    all_passes={"fuse-quant-matmul-all-reduce": _fuse, "unfuse-mc2": _unfuse},
    all_targets={},
)
