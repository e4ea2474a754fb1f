"""The family member mc2.all_gather_quant_matmul: on both SoCs, one verdict per chain, no
'not a chain' line for the all-gather that starts one, check-only rewrites nothing."""

import pytest
from gather_programs import GatherSpec, unfused_gather_program

from helpers import ops_named, parse
from qmmar.dialects.target import Target
from qmmar.passes.family import family
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse_module

SPEC = GatherSpec(world_size=4, out="bf16", m=4, k=256, n=16, transpose_x2=False, pertoken=True,
                  scale_dtype="f32", scale_shape="n", other_user=True, extreme=False)  # fmt: skip


@pytest.mark.parametrize("soc", ["a2", "a3"])
def test_it_is_a_member_on_a2_and_a3(soc):
    assert "mc2.all_gather_quant_matmul" in [k.name for k in family(Target(soc))]


@pytest.mark.parametrize("soc", ["a2", "a3"])
def test_one_verdict_and_no_not_a_chain_line(soc):
    module = parse(unfused_gather_program(SPEC))
    found = fuse_module(module, FuseOptions(soc=soc, remarks="all"))
    assert [(v.kind, v.legal, v.rewritten) for v in found.verdicts] == [("mc2.all_gather_quant_matmul", True, True)]
    assert found.not_chains == []
    plan = found.verdicts[0].plan
    assert plan is not None and plan.dims == (16, 256, 16)  # the gathered rows: W*m


def test_check_only_judges_and_rewrites_nothing():
    module = parse(unfused_gather_program(SPEC))
    found = fuse_module(module, FuseOptions(check_only=True))
    assert [(v.legal, v.rewritten) for v in found.verdicts] == [(True, False)]
    assert ops_named(module, "mc2.") == [] and len(ops_named(module, "qmm.allgather")) == 2


def test_an_all_gather_then_matmul_chain_feeding_an_all_reduce_fuses_its_gather_end_first():
    """allgather -> matmul -> dequant -> all_reduce: the dequant comes first in program order,
    so the all-gather chain fuses; the all-reduce then reads the fused op, and says why it ends
    no chain."""
    text = unfused_gather_program(SPEC).replace(
        "func.return %y, %o", '%r = qmm.all_reduce %y on "tp" world_size = 4 : tensor<16x16xbf16>\n  func.return %r, %o'
    )
    found = fuse_module(parse(text), FuseOptions())
    assert [v.kind for v in found.verdicts] == ["mc2.all_gather_quant_matmul"]
    [why] = found.not_chains
    assert why.op == "qmm.all_reduce" and "'mc2.all_gather_quant_matmul'" in why.why
