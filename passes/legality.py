"""Is a matched chain legal to fuse?  The chain rules, the scenario policy, then the
operator's own rule table (`dialects.mc2_rules`) on the signature the fused op would have:
so the pass never writes an op that fails verification."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Operation, SSAValue

from qmmar.dialects.dtypes import dtype_name, shape_of, tensor_sig
from qmmar.dialects.logic import Dim, StaticLogic
from qmmar.dialects.mc2_rules import Signature, TensorSig, first_violation
from qmmar.passes.chain import Chain
from qmmar.passes.cost_model import CostEstimate, estimate

DECODE_MARKER = "qmmar.scenario"
"""A func.func attribute: `qmmar.scenario = "decode"` marks an incremental (decode) function."""


@dataclass(frozen=True)
class Policy:
    group: str  # the module's one communication group
    scenario: str  # "auto" | "prefill" | "decode"
    min_m: int  # with scenario=auto: a static m below this is decode
    int8_tops: float
    link_gbps: float


@dataclass(frozen=True)
class Finding:
    rule: str
    sentence: str


def _single_use(chain: Chain) -> bool:
    inner = set(chain.ops[:-1])
    return all(user in chain.ops for op in inner for r in op.results for user in (u.operation for u in r.uses))


def _layout_ok(chain: Chain) -> bool:
    """The fused op works in the root's layout: x1 as it is, or a 3-D x1 collapsed to 2-D;
    x3 must be added in that layout."""
    x1_rank = len(chain.matmul.x1.type.get_shape())  # type: ignore[attr-defined]
    root_shape = chain.result_type.get_shape()
    if not (len(root_shape) == x1_rank or (x1_rank == 3 and len(root_shape) == 2)):
        return False
    return chain.x3 is None or chain.x3.type == chain.result_type


ChainPredicate = Callable[[Chain, Policy], bool]

CHAIN_RULES: tuple[tuple[str, str, ChainPredicate], ...] = (
    ("CHAIN-SINGLE-USE", "every intermediate value of the chain must have the chain as its "
     "only user", lambda c, p: _single_use(c)),
    ("CHAIN-SAME-S1", "quant and reducesum must read the same s1 value",
     lambda c, p: not c.int8_comm or c.quant.scale == c.reducesum.s1),  # type: ignore[union-attr]
    ("CHAIN-SAME-S2", "reducesum and the last dequant must read the same s2 value",
     lambda c, p: not c.int8_comm or c.reducesum.s2 == c.root.scale),  # type: ignore[union-attr]
    ("CHAIN-SAME-GROUP", "alltoall and allgather must share group and world_size",
     lambda c, p: len({(op.group.data, op.world_size.value.data) for op in c.collectives}) == 1),
    ("CHAIN-ONE-GROUP", "MC2 ops of one model must share one communication group: this chain's "
     "group is not the module's (choose it with the pass option group=NAME)",
     lambda c, p: c.group == p.group),
    ("CHAIN-LAYOUT", "x1 must be 2-D, or 3-D with the chain ending in 3-D or 2-D, and x3 must "
     "be added in the layout the chain ends in",
     lambda c, p: _layout_ok(c)),
)  # fmt: skip


def packs_scale(chain: Chain) -> bool:
    """An f32 dequant scale with f16 output and no pertoken goes through TransQuantParamV2."""
    scale_t = dtype_name(chain.dequant.scale.type.element_type)  # type: ignore[attr-defined]
    out_t = dtype_name(chain.result_type.element_type)
    return scale_t == "f32" and out_t == "f16" and chain.dequant.pertoken is None


def fused_x1_shape(chain: Chain) -> tuple[Dim, ...]:
    """x1 in the root's layout: collapsed to [b*s, k] when a 3-D x1 ends in 2-D."""
    x1 = shape_of(chain.matmul.x1.type, "x1")  # type: ignore[arg-type]
    if len(x1) == 3 and len(chain.result_type.get_shape()) == 2:
        return (StaticLogic.prod(x1[:2]), x1[2])
    return x1


def signature(chain: Chain, drop_comm: bool = False) -> Signature:
    """The signature of the mc2 op that fusing this chain would write."""

    def sig(value: SSAValue | None, name: str) -> TensorSig | None:
        return None if value is None else tensor_sig(value.type, name)

    scales = None if drop_comm else chain.comm_scales
    scale = tensor_sig(chain.dequant.scale.type, "dequant_scale")
    if packs_scale(chain):
        scale = TensorSig("ui64", scale.shape)
    x1 = tensor_sig(chain.matmul.x1.type, "x1")
    return Signature(
        x1=TensorSig(x1.dtype, fused_x1_shape(chain)), x2=sig(chain.matmul.x2, "x2"),
        bias=sig(chain.matmul.bias, "bias"), x3=sig(chain.x3, "x3"), dequant_scale=scale,
        pertoken_scale=sig(chain.dequant.pertoken, "pertoken_scale"),
        comm_quant_scale_1=sig(scales and scales[0], "comm_quant_scale_1"),
        comm_quant_scale_2=sig(scales and scales[1], "comm_quant_scale_2"),
        output=tensor_sig(chain.result_type, "output"), group=chain.group, reduce_op="sum",
        comm_turn=0, stream_mode=1, world_size=chain.world_size,
        transpose_x2=bool(chain.matmul.transpose_x2.value.data),
    )  # fmt: skip


def _is_decode_function(op: Operation) -> bool:
    fn = op.parent_op()
    while fn is not None and not isinstance(fn, func.FuncOp):
        fn = fn.parent_op()
    marker = fn.attributes.get(DECODE_MARKER) if fn is not None else None
    return isinstance(marker, StringAttr) and marker.data == "decode"


def _policy_finding(chain: Chain, sig: Signature, policy: Policy) -> Finding | None:
    if policy.scenario == "decode":
        return Finding(
            "POLICY-DECODE", "scenario=decode: MC2 is for the full (prefill) scenario, not the incremental (decode) one"
        )
    if policy.scenario == "prefill":
        return None
    if _is_decode_function(chain.root):
        return Finding(
            "POLICY-DECODE",
            f'the function is marked {DECODE_MARKER} = "decode": '
            "MC2 is for the full (prefill) scenario, not the incremental one",
        )
    m = StaticLogic.prod(sig.x1.shape[:-1])
    if isinstance(m, int) and m < policy.min_m:
        return Finding(
            "POLICY-MIN-M",
            f"m = {m} is below min-m = {policy.min_m}: treated as "
            "the incremental (decode) scenario, where MC2 is not used",
        )
    return None


def cost(sig: Signature, policy: Policy) -> CostEstimate | None:
    m = StaticLogic.prod(sig.x1.shape[:-1])
    if not (isinstance(m, int) and isinstance(sig.k, int) and isinstance(sig.n, int)):
        return None
    return estimate(m, sig.k, sig.n, sig.world_size, policy.int8_tops, policy.link_gbps)


def first_finding(chain: Chain, policy: Policy, drop_comm: bool = False) -> Finding | None:
    """Why this chain must not be fused, or None when it may be."""
    for rule_id, sentence, holds in CHAIN_RULES:
        if not holds(chain, policy):
            return Finding(rule_id, sentence)
    sig = signature(chain, drop_comm)
    if (rule := first_violation(sig)) is not None:
        return Finding(rule.id, rule.sentence)
    return _policy_finding(chain, sig, policy)
