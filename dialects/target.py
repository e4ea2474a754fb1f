"""The Ascend target a module is compiled for: the SoC and the CANN version.

The SoC decides which MC2 operators exist (Atlas A3 has no QuantMatmulAllReduce: every
`matmul_all_reduce/docs/*.md` of ops-transformer marks it unsupported) and which rule table
judges each one; the CANN version decides the entry point (V3 before 9.1, V5 from 9.1 on A2;
the int8 "aiv" MatmulReduceScatterV2 and AllGatherMatmulV2 from 9.0).  docs/mc2-family.md
gives the sources.  The fusion pass records its target in the module (`TARGET_ATTR`), so that
lowering a fused module for another target is an error, not a silent mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.utils.exceptions import VerifyException

Soc = Literal["a2", "a3", "950"]
"""The SoCs a user can name; 950 is refused with what it would need (`Target.__post_init__`)."""

SOC_NAMES = {"a2": "Atlas A2", "a3": "Atlas A3"}
"""The SoCs qmmar compiles for, as the vendor's documentation names them."""

SOC_950 = (
    "[SOC-950] Ascend 950 is not supported yet: its MC2 kernels (the arch35 tiling and kernels behind "
    "QuantMatmulAllReduceV5 with comm_mode ai_cpu or ccu, 1 to 64 ranks) are not modelled, and its "
    "MatmulReduceScatterV2 and AllGatherMatmulV2 take no int8 (docs/mc2-family.md, section 7); use soc=a2 or soc=a3"
)

TARGET_ATTR = "qmmar.target"
"""The module attribute the fusion pass writes: `{soc = "a3", cann = "9.0"}`."""

DEFAULT_CANN = "9.0"
"""The CANN version qmmar assumes unless told (README, "Targets"): the first with every operator
qmmar uses on both SoCs; on A2 it calls V3, as every release since 8.0 can."""

FIRST_CANN = (8, 0)
"""The oldest CANN release qmmar compiles for: aclnnQuantMatmulAllReduceV3's documentation asks for
8.0.RC2 or later (shared/reference/aclnnQuantMatmulAllReduceV3.md, its first note)."""
V5_CANN = (9, 1)
"""The first CANN release with aclnnQuantMatmulAllReduceV5 (ops-transformer tag v9.1.0.pre)."""
SP_CANN = (9, 0)
"""The first CANN release with the int8 "aiv" MatmulReduceScatterV2 and AllGatherMatmulV2."""


def parse_cann(text: str) -> tuple[int, int]:
    """`major.minor` as two numbers; a ValueError naming the option otherwise."""
    major, dot, minor = text.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise ValueError(f"cann must be a CANN version as major.minor, e.g. cann=9.1, not {text!r}")
    return int(major), int(minor)


@dataclass(frozen=True)
class Target:
    soc: Soc = "a2"
    cann: str = DEFAULT_CANN
    """The CANN version, `major.minor`."""

    def __post_init__(self) -> None:
        if self.soc == "950":
            raise ValueError(SOC_950)
        if self.soc not in SOC_NAMES:
            raise ValueError(f"soc must be one of {', '.join(SOC_NAMES)}, not {self.soc!r}")
        version = parse_cann(self.cann)
        if version < FIRST_CANN:
            raise ValueError(
                f"[SOC-CANN] cann={self.cann} is older than CANN {FIRST_CANN[0]}.{FIRST_CANN[1]}, the first release "
                "qmmar compiles for (its aclnnQuantMatmulAllReduceV3)"
            )
        if self.soc == "a3" and version < SP_CANN:
            raise ValueError(
                f"[SOC-A3-CANN] on Atlas A3, qmmar's fused operators (MatmulReduceScatterV2, AllGatherMatmulV2 with "
                f"int8) first ship in CANN {SP_CANN[0]}.{SP_CANN[1]}; cann={self.cann} has none (use cann=9.0 or later)"
            )

    @property
    def name(self) -> str:
        """The SoC as the documentation names it: "Atlas A2"."""
        return SOC_NAMES[self.soc]

    @property
    def version(self) -> tuple[int, int]:
        return parse_cann(self.cann)

    @property
    def all_reduce_entry(self) -> str:
        """The aclnn entry point of `mc2.quant_matmul_all_reduce` (A2 only): V5 from CANN 9.1."""
        return "aclnnQuantMatmulAllReduceV5" if self.version >= V5_CANN else "aclnnQuantMatmulAllReduceV3"

    def describe(self) -> str:
        return f"soc={self.soc} cann={self.cann}"

    def attribute(self) -> DictionaryAttr:
        return DictionaryAttr({"soc": StringAttr(self.soc), "cann": StringAttr(self.cann)})


def recorded_target(op: Operation) -> Target | None:
    """The target recorded in the module enclosing `op` (or `op` itself), None when none is."""
    current: Operation | None = op
    while current is not None:
        if isinstance(current, ModuleOp) and isinstance(attr := current.attributes.get(TARGET_ATTR), DictionaryAttr):
            fields = {k: v.data for k, v in attr.data.items() if isinstance(v, StringAttr)}
            return Target(fields.get("soc", "a2"), fields.get("cann", DEFAULT_CANN))  # type: ignore[arg-type]  # checked by Target
        current = current.parent_op()
    return None


def target_of(op: Operation) -> Target:
    """The target `op` is compiled for: the one its module records, else the default."""
    return recorded_target(op) or Target()


def verified_target(op: Operation) -> Target:
    """`target_of` for a verifier: a malformed record is the op's verification error."""
    try:
        return target_of(op)
    except ValueError as err:
        raise VerifyException(f"{TARGET_ATTR}: {err}") from None


def resolve_target(op: Operation, soc: str = "", cann: str = "") -> Target:
    """The target a pass compiles `op`'s module for: the options given (empty: not given),
    else what the module records, else the default; options that contradict the record are an
    error (the module was fused for that target)."""
    recorded = recorded_target(op)
    target = Target(soc or (recorded.soc if recorded else "a2"), cann or (recorded.cann if recorded else DEFAULT_CANN))  # type: ignore[arg-type]  # checked by Target
    if recorded is not None and recorded != target:
        raise ValueError(
            f"the module was compiled for {recorded.describe()} ({TARGET_ATTR}), not for {target.describe()}: "
            f"run this pass with the module's target, or fuse the source again for {target.describe()}"
        )
    return target


def record_target(module: ModuleOp, target: Target) -> None:
    """Record the target in the module (`resolve_target` has checked it against any record)."""
    module.attributes[TARGET_ATTR] = target.attribute()
