"""The constraints of aclnnQuantMatmulAllReduceV3 (and V5, the same on Atlas A2), as one table
of rules (`rules.Rule`) over a plain `Signature` of the op.  Three readers share it: the
`mc2.quant_matmul_all_reduce` verifier, the fusion pass's legality check (on a matched chain,
before any rewrite) and the C++ target's run-time guards for dynamic dimensions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from xdsl.ir import Attribute

from qmmar.dialects import rules
from qmmar.dialects.dtypes import OUTPUT_DTYPES, PACKED_SCALE_DTYPES, dtype_name, shape_of, tensor_type
from qmmar.dialects.logic import Dim, Logic, Truth
from qmmar.dialects.shapes import channel_vector, contraction, pertoken_vector, rows, same_shape

MAX_DIM = 65535
"""k (x1's last dimension) and x2's last dimension: A2's ND2NZ instruction length limit."""
MAX_ROWS = 2**31 - 1
"""m, and x2's first dimension: INT32_MAX."""
WORLD_SIZES = (1, 2, 4, 8)
MAX_GROUP_NAME = 127  # HcclGetCommName writes into a char[128]

OPERANDS = ("x1", "x2", "bias", "x3", "dequant_scale", "pertoken_scale", "comm_quant_scale_1",
            "comm_quant_scale_2")  # fmt: skip
"""The operands of aclnnQuantMatmulAllReduceV3, in its order: the mc2 op's, the signature's."""
OPTIONAL = frozenset({"bias", "x3", "pertoken_scale", "comm_quant_scale_1", "comm_quant_scale_2"})


@dataclass(frozen=True)
class TensorSig:
    dtype: str  # "i8", "i32", "i64", "ui64", "f16", "bf16", "f32"
    shape: tuple[Dim, ...]

    @staticmethod
    def of(value_type: Attribute, name: str) -> TensorSig:
        """A ranked tensor type as the rules read it; dynamic dimensions named after `name`."""
        t = tensor_type(value_type, name)
        return TensorSig(dtype_name(t.element_type), shape_of(t, name))


class MatmulSignature:
    """What the signature of every fused op of the family shares: x1 [..., k], x2 ([k, n], or
    [n, k] with transpose_x2), the output, and the op's operands by name (`OPERAND_NAMES`)."""

    OPERAND_NAMES: ClassVar[tuple[str, ...]]
    x1: TensorSig
    x2: TensorSig
    output: TensorSig
    transpose_x2: bool

    @property
    def k(self) -> Dim:
        return self.x1.shape[-1]

    @property
    def k_of_x2(self) -> Dim:
        return contraction(self.x2.shape, self.transpose_x2)[0]

    @property
    def n(self) -> Dim:
        return contraction(self.x2.shape, self.transpose_x2)[1]

    def tensors(self) -> list[TensorSig]:
        named = [getattr(self, name) for name in self.OPERAND_NAMES] + [self.output]
        return [t for t in named if t is not None]


@dataclass(frozen=True)
class Signature(MatmulSignature):
    """What the rules look at: operand types and the op's properties, nothing else."""

    OPERAND_NAMES: ClassVar[tuple[str, ...]] = OPERANDS
    x1: TensorSig
    x2: TensorSig
    bias: TensorSig | None
    x3: TensorSig | None
    dequant_scale: TensorSig
    pertoken_scale: TensorSig | None
    comm_quant_scale_1: TensorSig | None
    comm_quant_scale_2: TensorSig | None
    output: TensorSig
    group: str
    reduce_op: str
    comm_turn: int
    stream_mode: int
    world_size: int
    transpose_x2: bool

    @staticmethod
    def build(tensors: Mapping[str, TensorSig | None], output: TensorSig, *, group: str, world_size: int,
              transpose_x2: bool, reduce_op: str = "sum", comm_turn: int = 0,
              stream_mode: int = 1) -> Signature:  # fmt: skip
        """The one constructor: every operand of OPERANDS by name (None when absent), the
        output, and the properties.  The mc2 verifier, the fusion pass, the interpreter and
        the C++ target's run-time guards all build their signature here."""
        missing = [name for name in OPERANDS if name not in OPTIONAL and tensors.get(name) is None]
        if missing:
            raise ValueError(f"a signature needs {', '.join(missing)}")
        return Signature(**{name: tensors.get(name) for name in OPERANDS}, output=output, group=group,  # type: ignore[arg-type]  # none missing
                         reduce_op=reduce_op, comm_turn=comm_turn, stream_mode=stream_mode,
                         world_size=world_size, transpose_x2=transpose_x2)  # fmt: skip


Rule = rules.Rule[Signature]


def _scale_dtypes(s: Signature) -> str:
    pertoken = "with" if s.pertoken_scale is not None else "without"
    return f"dequant_scale {s.dequant_scale.dtype}, output {s.output.dtype}, {pertoken} pertoken_scale"


def _dequant_scale_dtype_ok(s: Signature, lg: Logic) -> Truth:
    if s.output.dtype == "bf16":
        return s.dequant_scale.dtype == "bf16"
    if s.pertoken_scale is not None:
        return s.dequant_scale.dtype == "f32"
    return s.dequant_scale.dtype in PACKED_SCALE_DTYPES


def _comm_scales_ok(s: Signature, lg: Logic) -> Truth:
    c1, c2 = s.comm_quant_scale_1, s.comm_quant_scale_2
    if c1 is None or c2 is None:
        return True
    return lg.all(
        len(c1.shape) == len(c2.shape),
        channel_vector(c1.shape, s.n, lg, per_tensor=False),
        channel_vector(c2.shape, s.n, lg, per_tensor=False),
    )


RULES: tuple[Rule, ...] = (
    Rule("MC2-X1-DTYPE", "x1 must be int8",
         lambda s, lg: s.x1.dtype == "i8"),
    Rule("MC2-X1-RANK", "x1 must be 2-D [m, k] or 3-D [b, s, k]",
         lambda s, lg: len(s.x1.shape) in (2, 3), gate=True),
    Rule("MC2-X2-DTYPE", "x2 must be int8",
         lambda s, lg: s.x2.dtype == "i8"),
    Rule("MC2-X2-RANK", "x2 must be 2-D: [k, n], or [n, k] with transpose_x2",
         lambda s, lg: len(s.x2.shape) == 2, gate=True),
    Rule("MC2-OUT-DTYPE", "the output must be f16 or bf16",
         lambda s, lg: s.output.dtype in OUTPUT_DTYPES),
    Rule("MC2-NONEMPTY", "no operand or result may be an empty tensor",
         lambda s, lg: lg.all(*(lg.gt(d, 0) for t in s.tensors() for d in t.shape))),
    Rule("MC2-K-MATCH", "the k dimension of x1 (its last) must equal that of x2 "
         "(x2's first, or its last with transpose_x2)",
         lambda s, lg: lg.eq(s.k, s.k_of_x2)),
    Rule("MC2-K-MAX", f"k, the last dimension of x1, must be at most {MAX_DIM}",
         lambda s, lg: lg.le(s.k, MAX_DIM)),
    Rule("MC2-X2-DIM-MAX", f"x2's last dimension (n, or k with transpose_x2) must be at most "
         f"{MAX_DIM}, and its first at most {MAX_ROWS}",
         lambda s, lg: lg.all(lg.le(s.x2.shape[-1], MAX_DIM), lg.le(s.x2.shape[0], MAX_ROWS))),
    Rule("MC2-M-MAX", f"m (b*s for 3-D x1) must be at most {MAX_ROWS}",
         lambda s, lg: lg.le(rows(s.x1.shape[:-1], lg), MAX_ROWS)),
    Rule("MC2-OUT-SHAPE", "the output shape must be x1's leading dimensions followed by n",
         lambda s, lg: same_shape(s.output.shape, (*s.x1.shape[:-1], s.n), lg)),
    Rule("MC2-BIAS-DTYPE", "bias must be int32",
         lambda s, lg: s.bias is None or s.bias.dtype == "i32"),
    Rule("MC2-BIAS-SHAPE", "bias must be 1-D [n]",
         lambda s, lg: s.bias is None or same_shape(s.bias.shape, (s.n,), lg)),
    Rule("MC2-X3-DTYPE", "x3 must have the output's dtype",
         lambda s, lg: s.x3 is None or s.x3.dtype == s.output.dtype),
    Rule("MC2-X3-SHAPE", "x3 must have the output's shape",
         lambda s, lg: s.x3 is None or same_shape(s.x3.shape, s.output.shape, lg)),
    Rule("MC2-SCALE-DTYPE", "dequant_scale must be bf16 for bf16 output; for f16 output, f32 "
         "with pertoken_scale, else int64 or uint64 (packed by TransQuantParamV2)",
         _dequant_scale_dtype_ok, _scale_dtypes),
    Rule("MC2-SCALE-SHAPE", "dequant_scale must be [1] (per-tensor), [n] or [1, n] (per-channel)",
         lambda s, lg: channel_vector(s.dequant_scale.shape, s.n, lg, per_tensor=True)),
    Rule("MC2-PERTOKEN-DTYPE", "pertoken_scale must be f32",
         lambda s, lg: s.pertoken_scale is None or s.pertoken_scale.dtype == "f32"),
    Rule("MC2-PERTOKEN-SHAPE", "pertoken_scale must be [m] (m = b*s for 3-D x1)",
         lambda s, lg: s.pertoken_scale is None or pertoken_vector(s.pertoken_scale.shape,
                                                                   s.x1.shape[:-1], lg)),
    Rule("MC2-COMM-PAIR", "comm_quant_scale_1 and comm_quant_scale_2 must both be given or "
         "both be absent",
         lambda s, lg: (s.comm_quant_scale_1 is None) == (s.comm_quant_scale_2 is None)),
    Rule("MC2-COMM-DTYPE", "the communication scales must have the output's dtype",
         lambda s, lg: all(c is None or c.dtype == s.output.dtype
                           for c in (s.comm_quant_scale_1, s.comm_quant_scale_2))),
    Rule("MC2-COMM-SHAPE", "the communication scales must share one shape, [n] or [1, n]",
         _comm_scales_ok),
    Rule("MC2-WORLD-SIZE", "world_size must be 1, 2, 4 or 8 (Atlas A2, HCCS all-mesh)",
         lambda s, lg: s.world_size in WORLD_SIZES),
    Rule("MC2-GROUP", f"group must name a communication domain: 1 to {MAX_GROUP_NAME} characters",
         lambda s, lg: 0 < len(s.group) <= MAX_GROUP_NAME),
    Rule("MC2-REDUCE-OP", 'reduce_op must be "sum"',
         lambda s, lg: s.reduce_op == "sum"),
    Rule("MC2-COMM-TURN", "comm_turn must be 0",
         lambda s, lg: s.comm_turn == 0),
    Rule("MC2-STREAM-MODE", "stream_mode must be 1",
         lambda s, lg: s.stream_mode == 1),
)  # fmt: skip

RULES_BY_ID = {rule.id: rule for rule in RULES}

TABLES: rules.Tables[Signature] = {"a2": RULES}
"""The table per SoC: Atlas A3 has no QuantMatmulAllReduce (every matmul_all_reduce doc of
ops-transformer marks it unsupported; docs/mc2-family.md)."""
SOC_RULE = "MC2-SOC"
NOT_ON_A3 = ("aclnnQuantMatmulAllReduce (V1 to V5) is not supported on Atlas A3 (ops-transformer "
             "mc2/matmul_all_reduce/docs); on A3, write the all-reduce as qmm.reduce_scatter then qmm.allgather "
             "(the same values in qmmar's numerics): the matmul, dequant and reduce-scatter then fuse into "
             "mc2.quant_matmul_reduce_scatter")  # fmt: skip
"""Why no table judges the op on a SoC without one: the verifier's and the verdict's sentence."""


def first_violation(sig: Signature) -> Rule | None:
    """The first rule of A2's table that the signature breaks at compile time."""
    return rules.first_violation(RULES, sig)
