"""The constraints of aclnnAllGatherMatmulV2 on its int8 "aiv" path (Atlas A2 and Atlas A3), as
one table of rules (`rules.Rule`) over a plain `Signature` of `mc2.all_gather_quant_matmul`.
The verifier, the fusion pass's judge and the C++ target's run-time guards read it.

The documentation's A2 and A3 section is one (`npu="A3,910b"`), so both SoCs share the table.
Each rule cites its line of `mc2/all_gather_matmul_v2/docs/aclnnAllGatherMatmulV2.md` in
cannmirror/ops-transformer at 25fb6b92890d33582f2a377aa5f9c975301a73a3 (docs/mc2-family.md,
section 3 (b); the vendor's own checks beside each rule are in section 3 (c) and in
docs/all-gather-matmul.md).  quantScale and amaxOut (always null on A2/A3) are not operands of
the op: the lowering passes null, so they need no rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qmmar.dialects import rules
from qmmar.dialects.dtypes import OUTPUT_DTYPES, PACKED_SCALE_DTYPES
from qmmar.dialects.logic import Dim, Logic, Truth
from qmmar.dialects.mc2_rules import MAX_GROUP_NAME, TensorSig
from qmmar.dialects.shapes import allgather_shape, channel_vector, contraction, same_shape

K_MIN, K_END = 256, 65535
"""k must be in [256, 65535): the aiv kernel's tiling range (doc l.437)."""
WORLD_SIZES = (2, 4, 8)
COMM_MODE = "aiv"

OPERANDS = ("x1", "x2", "bias", "x1_scale", "x2_scale")
"""The operands of aclnnAllGatherMatmulV2, in its order (quantScale, always null, left out)."""
OPTIONAL = frozenset({"bias", "x1_scale", "x2_scale"})
"""x2_scale is optional in the op so that AGMM-X2SCALE-PRESENT, not IRDL, names its absence."""
RESULTS = ("output", "gather_out")
"""Its results: [W*m, n] in the output dtype, and the gathered x1, [W*m, k] int8."""


@dataclass(frozen=True)
class Signature:
    """What the rules look at: operand and result types and the op's properties."""

    x1: TensorSig
    x2: TensorSig
    bias: TensorSig | None
    x1_scale: TensorSig | None
    x2_scale: TensorSig | None
    output: TensorSig
    gather_out: TensorSig
    group: str
    world_size: int
    transpose_x2: bool
    comm_mode: str
    gather_index: int
    comm_turn: int
    stream_mode: int
    group_size: int
    block_size: int

    @staticmethod
    def build(tensors: Mapping[str, TensorSig | None], output: TensorSig, gather_out: TensorSig, *,
              group: str, world_size: int, transpose_x2: bool, comm_mode: str = COMM_MODE,
              gather_index: int = 0, comm_turn: int = 0, stream_mode: int = 1, group_size: int = 0,
              block_size: int = 0) -> Signature:  # fmt: skip
        """The one constructor: every operand of OPERANDS by name (None when absent), the two
        results, and the properties.  The verifier, the fusion pass, the interpreter and the C++
        target's run-time guards all build their signature here."""
        missing = [name for name in OPERANDS if name not in OPTIONAL and tensors.get(name) is None]
        if missing:
            raise ValueError(f"a signature needs {', '.join(missing)}")
        return Signature(**{name: tensors.get(name) for name in OPERANDS}, output=output, gather_out=gather_out,  # type: ignore[arg-type]  # none missing
                         group=group, world_size=world_size, transpose_x2=transpose_x2, comm_mode=comm_mode,
                         gather_index=gather_index, comm_turn=comm_turn, stream_mode=stream_mode,
                         group_size=group_size, block_size=block_size)  # fmt: skip

    @property
    def m(self) -> Dim:
        """This rank's rows (x1 is 2-D by AGMM-X1-RANK)."""
        return self.x1.shape[0]

    @property
    def k(self) -> Dim:
        return self.x1.shape[-1]

    @property
    def n(self) -> Dim:
        return contraction(self.x2.shape, self.transpose_x2)[1]

    @property
    def gathered_rows(self) -> Dim:
        """W*m: the rows of the output and of gather_out."""
        return allgather_shape(self.x1.shape, self.world_size)[0]

    def tensors(self) -> list[TensorSig]:
        named = [getattr(self, name) for name in OPERANDS] + [self.output, self.gather_out]
        return [t for t in named if t is not None]


Rule = rules.Rule[Signature]


def _x2_scale_dtypes(s: Signature) -> str:
    assert s.x2_scale is not None  # AGMM-X2SCALE-PRESENT holds
    return f"x2_scale {s.x2_scale.dtype}, output {s.output.dtype}"


def _x1_scale_shape_ok(s: Signature, lg: Logic) -> Truth:
    """This rank's [m], or [m, 1] as the documentation writes it."""
    shape = s.x1_scale.shape if s.x1_scale is not None else None
    if shape is None:
        return True
    if len(shape) == 2:
        return lg.all(lg.eq(shape[0], s.m), lg.eq(shape[1], 1))
    return len(shape) == 1 and lg.eq(shape[0], s.m)


def _x2_scale_dtype_ok(s: Signature) -> bool:
    assert s.x2_scale is not None
    return s.x2_scale.dtype == "f32" or (s.x2_scale.dtype in PACKED_SCALE_DTYPES and s.output.dtype == "f16")


RULES: tuple[Rule, ...] = (
    # doc l.28, l.314: the A2/A3 data-type table lists INT8 only with "aiv"
    Rule("AGMM-X1-DTYPE", "on Atlas A2/A3, x1 must be int8 (the quantised path)",
         lambda s, lg: s.x1.dtype == "i8"),
    # doc l.441
    Rule("AGMM-X2-DTYPE", "x2 must have x1's dtype",
         lambda s, lg: s.x2.dtype == s.x1.dtype),
    # doc l.436
    Rule("AGMM-X1-RANK", "x1 must be 2-D [m, k]",
         lambda s, lg: len(s.x1.shape) == 2, gate=True),
    # doc l.437
    Rule("AGMM-X2-RANK", "x2 must be 2-D: [k, n], or [n, k] with transpose_x2",
         lambda s, lg: len(s.x2.shape) == 2, gate=True),
    # doc l.320
    Rule("AGMM-OUT-DTYPE", "on Atlas A2/A3, the output must be f16 or bf16",
         lambda s, lg: s.output.dtype in OUTPUT_DTYPES),
    # doc l.440
    Rule("AGMM-NONEMPTY", "on Atlas A2/A3, no operand or result may be an empty tensor",
         lambda s, lg: lg.all(*(lg.gt(d, 0) for t in s.tensors() for d in t.shape))),
    # doc l.437
    Rule("AGMM-K-MATCH", "the k dimension of x1 (its last) must equal that of x2 "
         "(x2's first, or its last with transpose_x2)",
         lambda s, lg: lg.eq(s.k, contraction(s.x2.shape, s.transpose_x2)[0])),
    # doc l.437 (the A2/A3 op_api does not check it; the 950 path does, op_api l.260)
    Rule("AGMM-K-RANGE", f"k must be in [{K_MIN}, {K_END})",
         lambda s, lg: lg.all(lg.le(K_MIN, s.k), lg.le(s.k, K_END - 1))),
    # doc l.315, l.438; tiling arch22 all_gather_matmul_aiv_mode_tiling.cpp l.353
    Rule("AGMM-BIAS-NULL", "on Atlas A2/A3, bias must be absent",
         lambda s, lg: s.bias is None),
    # doc l.439; infershape mc2_common_infershape.cpp l.112-131
    Rule("AGMM-OUT-SHAPE", "the output must be [m * world_size, n]",
         lambda s, lg: same_shape(s.output.shape, (s.gathered_rows, s.n), lg)),
    # doc l.272 (the gatherOut row), l.321; infershape l.146
    Rule("AGMM-GATHER-OUT", "gather_out must have x1's dtype and the shape [m * world_size, k]",
         lambda s, lg: lg.all(s.gather_out.dtype == s.x1.dtype,
                              same_shape(s.gather_out.shape, (s.gathered_rows, s.k), lg))),
    # doc l.317; tiling CheckDtypeX2 l.470-486
    Rule("AGMM-X2SCALE-PRESENT", "the quantised path needs x2_scale",
         lambda s, lg: s.x2_scale is not None, gate=True),
    # doc l.317 ("INT64 when x1/x2 are INT8 or the output is FLOAT16"); the tiling (CheckDtypeX2)
    # requires f16 output for INT64, and qmmar follows the code
    Rule("AGMM-X2SCALE-DTYPE", "on Atlas A2/A3, x2_scale must be f32, or int64 or uint64 (packed by "
         "TransQuantParamV2) with f16 output",
         lambda s, lg: _x2_scale_dtype_ok(s), _x2_scale_dtypes),
    # doc l.317 ("(1, n)"); the kernel reads a flat vector, so [n] means the same
    Rule("AGMM-X2SCALE-SHAPE", "on Atlas A2/A3, x2_scale must be [1, n] or [n] (per-channel)",
         lambda s, lg: s.x2_scale is None or channel_vector(s.x2_scale.shape, s.n, lg, per_tensor=False)),
    # doc l.316
    Rule("AGMM-X1SCALE-DTYPE", "on Atlas A2/A3, x1_scale must be f32",
         lambda s, lg: s.x1_scale is None or s.x1_scale.dtype == "f32"),
    # doc l.316; torch_npu's doc: pass the local (m, 1) x1_scale, the op gathers it
    Rule("AGMM-X1SCALE-SHAPE", "on Atlas A2/A3, x1_scale must be this rank's per-token scale, [m] or [m, 1] "
         "(the op gathers it)",
         _x1_scale_shape_ok),
    # kernel-derived (all_gather_matmul_aiv_mode_dequant.h l.388-402): with a packed scale the
    # fixpipe rounds to f16 before the per-token multiply, a second rounding
    Rule("AGMM-PERTOKEN-F16-SCALE", "on Atlas A2/A3, with x1_scale and f16 output, x2_scale must be f32",
         lambda s, lg: s.x1_scale is None or s.output.dtype != "f16" or s.x2_scale is None
         or s.x2_scale.dtype == "f32"),
    # doc l.443; tiling l.589
    Rule("AGMM-WORLD-SIZE", "on Atlas A2/A3, world_size must be 2, 4 or 8",
         lambda s, lg: s.world_size in WORLD_SIZES),
    # doc l.202 (HcclGetCommName; 127 is qmmar's char[128])
    Rule("AGMM-GROUP", f"group must name a communication domain: 1 to {MAX_GROUP_NAME} characters",
         lambda s, lg: 0 < len(s.group) <= MAX_GROUP_NAME),
    # doc l.319; op_api l.613 (strncmp with "aiv")
    Rule("AGMM-COMM-MODE", f'on Atlas A2/A3, comm_mode must be "{COMM_MODE}"',
         lambda s, lg: s.comm_mode == COMM_MODE),
    # doc l.212
    Rule("AGMM-GATHER-INDEX", "gather_index must be 0 (x1 is gathered)",
         lambda s, lg: s.gather_index == 0),
    # doc l.222
    Rule("AGMM-COMM-TURN", "comm_turn must be 0",
         lambda s, lg: s.comm_turn == 0),
    # doc l.232; op_api CheckParamsAndShapeForAIVMode l.293-352
    Rule("AGMM-STREAM-MODE", "stream_mode must be 1",
         lambda s, lg: s.stream_mode == 1),
    # doc l.242, l.318
    Rule("AGMM-GROUP-SIZE", "on Atlas A2/A3, group_size must be 0",
         lambda s, lg: s.group_size == 0),
    # doc l.192
    Rule("AGMM-BLOCK-SIZE", "block_size must be 0",
         lambda s, lg: s.block_size == 0),
)  # fmt: skip

RULES_BY_ID = {rule.id: rule for rule in RULES}

TABLES: rules.Tables[Signature] = {"a2": RULES, "a3": RULES}
"""One table on both SoCs: the documentation's A2 and A3 section is one."""
