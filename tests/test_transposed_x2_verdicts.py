"""The mc2 op and its aclnn form judge x2 alike (issue 19): for any n, k and transpose_x2, the
mc2 verifier's verdict on the static program is the verdict of the lowered op's contract,
decided at compile time (static n) or by the run-time guard evaluated on the true n (dynamic
n). Before the aclnn signature read a transposed x2 as stored, x2 tensor<65536x16xi8> with
transpose_x2 verified as an mc2 op but failed lowering with [MC2-X2-DIM-MAX], and a dynamic n
was guarded as if it were k."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import TensorType

from helpers import parse
from qmmar.context import qmmar_context
from qmmar.dialects import aclnn
from qmmar.dialects.logic import StaticLogic
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.source import verify

SIZES = st.sampled_from([1, 16, 32, 65535, 65536, 70000])


def program(m: int, n: int | str, k: int, transpose: bool) -> str:
    x2 = f"{n}x{k}" if transpose else f"{k}x{n}"
    return f"""
func.func @f(%x1: tensor<{m}x{k}xi8>, %x2: tensor<{x2}xi8>, %s: tensor<{n}xbf16>) -> tensor<{m}x{n}xbf16> {{
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<{n}xbf16>) on "tp" world_size = 8 \
transpose_x2 = {str(transpose).lower()} : tensor<{m}x{k}xi8>, tensor<{x2}xi8> -> tensor<{m}x{n}xbf16>
  func.return %o : tensor<{m}x{n}xbf16>
}}
"""


def mc2_verdict(text: str) -> bool:
    try:
        parse(text)
    except Exception:  # noqa: BLE001 - any refusal of the verifier is the verdict "no"
        return False
    return True


def lowered_query(text: str) -> aclnn.QuantMatmulAllReduceV3GetWorkspaceSizeOp:
    module = parse(text)
    LowerMc2ToAclnnPass().apply(qmmar_context(), module)
    verify(module)
    return next(op for op in module.walk() if isinstance(op, aclnn.QuantMatmulAllReduceV3GetWorkspaceSizeOp))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([1, 48]), SIZES, SIZES, st.booleans())
def test_the_mc2_verifier_and_the_lowered_guard_agree_on_x2(m, n, k, transpose):
    verdict = mc2_verdict(program(m, n, k, transpose))
    if verdict:  # a static program fusion accepts lowers, its contract decided true
        query = lowered_query(program(m, n, k, transpose))
        assert all(v is True for v, _ in query.contract(StaticLogic(), aclnn.static_dims))
    # a dynamic n: the guard, evaluated on the true n, says what the verifier says (a k
    # the verifier refuses whatever n is refuses the dynamic program too)
    if not mc2_verdict(program(m, "?", k, transpose)):
        assert not verdict
        return
    query = lowered_query(program(m, "?", k, transpose))

    def true_dims(value):
        t = value.type
        assert isinstance(t, TensorType)
        return tuple(n if d < 0 else d for d in t.get_shape())

    verdicts = [v for v, _ in query.contract(StaticLogic(), true_dims)]
    assert all(v is not None for v in verdicts)
    assert all(verdicts) == verdict, (m, n, k, transpose, verdicts)
