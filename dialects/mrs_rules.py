"""The constraints of aclnnMatmulReduceScatterV2's int8 path (commMode "aiv", Atlas A2 and A3),
as one table of rules (`rules.Rule`) per SoC over a plain `Signature` of the op.  The
`mc2.quant_matmul_reduce_scatter` verifier, the fusion pass's legality check and the C++
target's run-time guards read it.

Each rule's comment cites its line of the vendor's documentation, `mc2/matmul_reduce_scatter_v2/
docs/aclnnMatmulReduceScatterV2.md` ("doc") of cannmirror/ops-transformer at 25fb6b92 (last
changed at dd4b7122), or the kernel source it comes from; docs/mc2-family.md section 2 lists
them beside the vendor's own checks.  The A2 and A3 sections of the documentation are one
(`npu="A3,910b"`), so both SoCs have the same rules; a rule from that section (not shared with
950's) names the SoC in its sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from qmmar.dialects import rules
from qmmar.dialects.dtypes import OUTPUT_DTYPES, PACKED_SCALE_DTYPES
from qmmar.dialects.logic import Dim, Logic, Truth
from qmmar.dialects.mc2_rules import MAX_GROUP_NAME, MatmulSignature, TensorSig
from qmmar.dialects.shapes import channel_vector, reduce_scatter_shape, same_shape
from qmmar.dialects.target import SOC_NAMES

K_RANGE = (256, 65535)
"""k in [256, 65535): the A2/A3 "aiv" kernel's tiling (doc l.410; op_api CheckShape l.255)."""
WORLD_SIZES = (2, 4, 8)
COMM_MODE = "aiv"
"""The only commMode whose int8 kernel is built for Atlas A2/A3 (DAV_2201)."""

OPERANDS = ("x1", "x2", "bias", "x1_scale", "x2_scale", "quant_scale")
"""The operands of aclnnMatmulReduceScatterV2, in its order: the mc2 op's, the signature's."""
OPTIONAL = frozenset({"bias", "x1_scale", "x2_scale", "quant_scale"})
"""x2_scale is optional in the aclnn signature (the f16/bf16 path has none); the int8 path
needs it, which MRS-X2SCALE-PRESENT says.  quant_scale must be absent (MRS-QUANT-SCALE)."""


@dataclass(frozen=True)
class Signature(MatmulSignature):
    """What the rules look at: operand types and the op's properties, nothing else."""

    OPERAND_NAMES: ClassVar[tuple[str, ...]] = OPERANDS
    x1: TensorSig
    x2: TensorSig
    bias: TensorSig | None
    x1_scale: TensorSig | None
    x2_scale: TensorSig | None
    quant_scale: TensorSig | None
    output: TensorSig
    group: str
    world_size: int
    transpose_x2: bool
    reduce_op: str
    comm_turn: int
    stream_mode: int
    group_size: int
    block_size: int
    comm_mode: str

    @staticmethod
    def build(tensors: Mapping[str, TensorSig | None], output: TensorSig, *, group: str, world_size: int,
              transpose_x2: bool, reduce_op: str = "sum", comm_turn: int = 0, stream_mode: int = 1,
              group_size: int = 0, block_size: int = 0, comm_mode: str = COMM_MODE) -> Signature:  # fmt: skip
        """The one constructor: every operand of OPERANDS by name (None when absent), the
        output, and the properties."""
        missing = [name for name in OPERANDS if name not in OPTIONAL and tensors.get(name) is None]
        if missing:
            raise ValueError(f"a signature needs {', '.join(missing)}")
        return Signature(**{name: tensors.get(name) for name in OPERANDS}, output=output, group=group,  # type: ignore[arg-type]  # none missing
                         world_size=world_size, transpose_x2=transpose_x2, reduce_op=reduce_op,
                         comm_turn=comm_turn, stream_mode=stream_mode, group_size=group_size,
                         block_size=block_size, comm_mode=comm_mode)  # fmt: skip

    @property
    def m(self) -> Dim:
        return self.x1.shape[0]


Rule = rules.Rule[Signature]


def _scale_dtypes(s: Signature) -> str:
    x2s = s.x2_scale.dtype if s.x2_scale is not None else "absent"
    x1s = "with" if s.x1_scale is not None else "without"
    return f"x2_scale {x2s}, output {s.output.dtype}, {x1s} x1_scale"


def _x2_scale_dtype_ok(s: Signature, lg: Logic) -> Truth:
    assert s.x2_scale is not None  # MRS-X2SCALE-PRESENT
    if s.x2_scale.dtype == "f32":
        return True
    # int64 is TransQuantParamV2's packing; a uint64 tensor holds the same 64 bits (the
    # lowering passes it as ACL_INT64, as V5's op_api turns one into the other).
    return s.x2_scale.dtype in PACKED_SCALE_DTYPES and s.output.dtype == "f16"


def _x1_scale_shape_ok(s: Signature, lg: Logic) -> Truth:
    """[m, 1] as the constraint says, or [m] as the doc's own example passes it (l.494): the
    kernel reads a flat vector either way."""
    if s.x1_scale is None:
        return True
    shape = s.x1_scale.shape
    if len(shape) == 2:
        return lg.all(lg.eq(shape[0], s.m), lg.eq(shape[1], 1))
    return len(shape) == 1 and lg.eq(shape[0], s.m)


def _table(soc: str) -> tuple[Rule, ...]:
    """The rules on one SoC; a rule of the A2/A3 section names it (`on Atlas A3, ...`)."""
    on = f"on {SOC_NAMES[soc]},"
    return (
        # doc l.281 (x1 row of the A2/A3 dtype table: INT8 for the quantised path)
        Rule("MRS-X1-DTYPE", f"{on} x1 must be int8 (the quantised path)",
             lambda s, lg: s.x1.dtype == "i8"),
        # doc l.414 ("x1和x2的数据类型必须一致")
        Rule("MRS-X2-DTYPE", "x2 must have x1's dtype",
             lambda s, lg: s.x2.dtype == s.x1.dtype),
        # doc l.409 (x1 is 2-D [m, k])
        Rule("MRS-X1-RANK", "x1 must be 2-D [m, k]",
             lambda s, lg: len(s.x1.shape) == 2, gate=True),
        # doc l.410 (x2 is 2-D [k, n]; transposed as a view of the last two axes)
        Rule("MRS-X2-RANK", "x2 must be 2-D: [k, n], or [n, k] with transpose_x2",
             lambda s, lg: len(s.x2.shape) == 2, gate=True),
        # doc l.287 (output dtype FLOAT16, BFLOAT16 on A2/A3)
        Rule("MRS-OUT-DTYPE", f"{on} the output must be f16 or bf16",
             lambda s, lg: s.output.dtype in OUTPUT_DTYPES),
        # doc l.416 (A2/A3: 2, 4 or 8 ranks); tiling l.1158.  Before the shapes that divide by it.
        Rule("MRS-WORLD-SIZE", f"{on} world_size must be 2, 4 or 8",
             lambda s, lg: s.world_size in WORLD_SIZES),
        # doc l.413 (no empty tensors on A2/A3)
        Rule("MRS-NONEMPTY", f"{on} no operand or result may be an empty tensor",
             lambda s, lg: lg.all(*(lg.gt(d, 0) for t in s.tensors() for d in t.shape))),
        # doc l.410 (x1's k equals x2's k)
        Rule("MRS-K-MATCH", "the k dimension of x1 (its last) must equal that of x2 "
             "(x2's first, or its last with transpose_x2)",
             lambda s, lg: lg.eq(s.k, s.k_of_x2)),
        # doc l.410 ("k取值范围为[256, 65535)"), in the A2/A3 section
        Rule("MRS-K-RANGE", f"{on} k must be in [{K_RANGE[0]}, {K_RANGE[1]})",
             lambda s, lg: lg.all(lg.le(K_RANGE[0], s.k), lg.le(s.k, K_RANGE[1] - 1))),
        # doc l.409 (m a multiple of the rank count); no vendor check: infershape divides
        Rule("MRS-M-DIVISIBLE", "m, the rows of x1, must be a multiple of world_size",
             lambda s, lg: lg.divides(s.world_size, s.m)),
        # doc l.412 (output [m / rankSize, n])
        Rule("MRS-OUT-SHAPE", "the output must be [m / world_size, n]",
             lambda s, lg: same_shape(s.output.shape, reduce_scatter_shape((s.m, s.n), s.world_size), lg)),
        # doc l.284 (x2Scale required when x1, x2 are INT8); tiling CheckDtype_X2 l.1066
        Rule("MRS-X2SCALE-PRESENT", "the quantised path needs x2_scale",
             lambda s, lg: s.x2_scale is not None, gate=True),
        # doc l.284 (FLOAT32, or INT64 only with FLOAT16 output); tiling CheckDtype_X2 l.1066-1085
        Rule("MRS-X2SCALE-DTYPE", f"{on} x2_scale must be f32, or int64 (packed by TransQuantParamV2) with "
             "f16 output", _x2_scale_dtype_ok, _scale_dtypes),
        # doc l.284 ([1, n] per-channel; the doc's example passes [n], l.495)
        Rule("MRS-X2SCALE-SHAPE", f"{on} x2_scale must be [1, n] or [n] (per-channel)",
             lambda s, lg: s.x2_scale is not None and channel_vector(s.x2_scale.shape, s.n, lg, per_tensor=False)),
        # doc l.283 (x1Scale FLOAT32); tiling CheckDtype_X1 l.1053 ignores any other silently
        Rule("MRS-X1SCALE-DTYPE", f"{on} x1_scale must be f32",
             lambda s, lg: s.x1_scale is None or s.x1_scale.dtype == "f32"),
        # doc l.283 ([m, 1] per-token; the doc's example passes [m], l.494)
        Rule("MRS-X1SCALE-SHAPE", f"{on} x1_scale must be [m, 1] or [m] (per-token)",
             _x1_scale_shape_ok),
        # kernel-derived (docs/mc2-family.md 2(d)): with a packed scale the fixpipe writes f16,
        # which the AIV reads back for the per-token product: two roundings, not the one of
        # qmmar's numerics
        Rule("MRS-PERTOKEN-F16-SCALE", f"{on} with x1_scale and f16 output, x2_scale must be f32 "
             "(a packed scale rounds to f16 before the per-token product)",
             lambda s, lg: s.x1_scale is None or s.output.dtype != "f16"
             or s.x2_scale is not None and s.x2_scale.dtype == "f32", _scale_dtypes),
        # doc l.415 (bias FLOAT32 with INT8 inputs); the op_api also takes f16/bf16 (l.157)
        Rule("MRS-BIAS-DTYPE", f"{on} bias must be f32",
             lambda s, lg: s.bias is None or s.bias.dtype == "f32"),
        # doc l.411 (bias 1-D [n])
        Rule("MRS-BIAS-SHAPE", "bias must be 1-D [n]",
             lambda s, lg: s.bias is None or same_shape(s.bias.shape, (s.n,), lg)),
        # kernel-derived: matmul_reduce_scatter_aiv_mode.h l.178 and l.382-388 skip the AIV
        # dequant, where the bias is added, for a packed scale without x1_scale
        Rule("MRS-BIAS-PACKED-SCALE", f"{on} bias needs an f32 x2_scale or an x1_scale: with an int64 "
             "x2_scale and no x1_scale the kernel drops it",
             lambda s, lg: s.bias is None or s.x1_scale is not None
             or s.x2_scale is not None and s.x2_scale.dtype == "f32", _scale_dtypes),
        # doc l.286, l.383-384 (A2/A3: commMode "aiv" only)
        Rule("MRS-COMM-MODE", f'{on} comm_mode must be "{COMM_MODE}"',
             lambda s, lg: s.comm_mode == COMM_MODE),
        # doc l.179 (group: the HCCL communication domain's name); 127 is qmmar's char[128]
        Rule("MRS-GROUP", f"group must name a communication domain: 1 to {MAX_GROUP_NAME} characters",
             lambda s, lg: 0 < len(s.group) <= MAX_GROUP_NAME),
        # doc l.189 (reduceOp "sum" only)
        Rule("MRS-REDUCE-OP", 'reduce_op must be "sum"',
             lambda s, lg: s.reduce_op == "sum"),
        # doc l.199 (commTurn 0)
        Rule("MRS-COMM-TURN", "comm_turn must be 0",
             lambda s, lg: s.comm_turn == 0),
        # doc l.209 (streamMode 1); op_api CheckAttr l.171
        Rule("MRS-STREAM-MODE", "stream_mode must be 1",
             lambda s, lg: s.stream_mode == 1),
        # doc l.219, l.285 (groupSize 0 for per-token/per-channel scales)
        Rule("MRS-GROUP-SIZE", f"{on} group_size must be 0",
             lambda s, lg: s.group_size == 0),
        # doc l.169 (blockSize 0)
        Rule("MRS-BLOCK-SIZE", "block_size must be 0",
             lambda s, lg: s.block_size == 0),
        # doc l.159 (quantScale: null, low-bit communication is 950's)
        Rule("MRS-QUANT-SCALE", "quant_scale must be absent",
             lambda s, lg: s.quant_scale is None),
    )  # fmt: skip


TABLES: rules.Tables[Signature] = {soc: _table(soc) for soc in ("a2", "a3")}
"""The table per SoC.  amaxOutOptional (doc l.249-252: null) is not an operand of the op: the
op has one result, and the lowering passes null."""

RULE_IDS = tuple(rule.id for rule in TABLES["a2"])

CCL_BUFFER_MB = 200
CCL_BUFFER = (f"[MRS-CCL-BUFFER] the HCCL buffer (HCCL_BUFFSIZE, in MB) must be at least {CCL_BUFFER_MB} MB for "
              "aclnnMatmulReduceScatterV2's aiv path")  # fmt: skip
"""A run-time guard of the C++ target, not a rule over the signature: doc l.383-384; the tiling
(l.1146-1153) checks it only where it can read the size, and so does the guard (unset: not
checked; the default was not found in the sources read)."""
WORKSPACE = ("[MRS-WORKSPACE] aclnnMatmulReduceScatterV2GetWorkspaceSize must report a workspace: the launch "
             "with none returns success without running (op_api l.553)")  # fmt: skip
"""A run-time guard of the C++ target, after the first phase."""


def first_violation(sig: Signature, soc: str) -> Rule | None:
    """The first rule of the SoC's table that the signature breaks at compile time."""
    return rules.first_violation(TABLES[soc], sig)
