"""The target a module is compiled for (dialects/target.py): which SoCs and CANN versions are
accepted, the record the fusion pass leaves in the module, and every way of contradicting it."""

from pathlib import Path

import pytest
from xdsl.dialects.builtin import DictionaryAttr, StringAttr
from xdsl.utils.exceptions import PassFailedException, VerifyException

from helpers import parse, tool
from qmmar.context import qmmar_context
from qmmar.dialects.target import TARGET_ATTR, Target, parse_cann, recorded_target
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse
from qmmar.passes.lower_mc2_to_aclnn import LowerMc2ToAclnnPass
from qmmar.source import read_module

ROOT = Path(__file__).resolve().parent.parent
TWO_LAYERS = ROOT / "examples" / "two_layers.mlir"


def two_layers():
    return read_module(qmmar_context(), str(TWO_LAYERS))


def test_950_is_refused_with_what_it_would_need():
    with pytest.raises(ValueError, match=r"^\[SOC-950\] Ascend 950 is not supported yet: .*use soc=a2 or soc=a3$"):
        Target("950")


@pytest.mark.parametrize("cann", ["8.0", "8.5"])
def test_a3_before_cann_9_has_no_fused_operator(cann):
    with pytest.raises(ValueError, match=rf"^\[SOC-A3-CANN\] on Atlas A3, .* cann={cann} has none"):
        Target("a3", cann)


@pytest.mark.parametrize("cann", ["0.0", "7.9"])
def test_a_cann_older_than_8_0_is_refused(cann):
    with pytest.raises(ValueError, match=rf"^\[SOC-CANN\] cann={cann} is older than CANN 8.0"):
        Target("a2", cann)


@pytest.mark.parametrize("text", ["9", "9.", ".1", "9.1.0", "v9.1", "nine", ""])
def test_cann_is_major_dot_minor(text):
    with pytest.raises(ValueError, match="cann must be a CANN version as major.minor"):
        parse_cann(text)


@pytest.mark.parametrize(("cann", "entry"), [("8.0", "V3"), ("9.0", "V3"), ("9.1", "V5"), ("10.0", "V5")])
def test_the_cann_version_chooses_the_all_reduce_entry_point(cann, entry):
    assert Target("a2", cann).all_reduce_entry == f"aclnnQuantMatmulAllReduce{entry}"


def test_the_fusion_pass_records_its_target_when_it_writes_a_fused_op():
    module = two_layers()
    fuse(module, FuseOptions(soc="a2", cann="9.1"))
    assert recorded_target(module) == Target("a2", "9.1")
    fuse(module, FuseOptions())  # a second run reads the record
    assert recorded_target(module) == Target("a2", "9.1")


def test_judging_alone_records_nothing():
    module = two_layers()
    fuse(module, FuseOptions(check_only=True))
    assert TARGET_ATTR not in module.attributes


def test_on_a3_an_all_reduce_chain_becomes_the_a3_form_and_int8_communication_has_none():
    module = two_layers()
    verdicts = fuse(module, FuseOptions(soc="a3"))
    assert [(v.rule, v.kind) for v in verdicts] == [
        ("CHAIN-A3-INT8-COMM", "mc2.quant_matmul_reduce_scatter+qmm.allgather"),
        (None, "mc2.quant_matmul_reduce_scatter+qmm.allgather"),
    ]
    assert verdicts[1].rewritten and "mc2.quant_matmul_all_reduce" not in str(module)
    assert recorded_target(module) == Target("a3")


@pytest.mark.parametrize(("soc", "cann"), [("a3", ""), ("", "9.1"), ("a2", "8.5")])
def test_a_contradicting_option_is_an_error_naming_both_targets(soc, cann):
    module = two_layers()
    fuse(module, FuseOptions())
    with pytest.raises(PassFailedException, match=r"compiled for soc=a2 cann=9\.0 \(qmmar\.target\), not for"):
        LowerMc2ToAclnnPass(soc=soc, cann=cann).apply(qmmar_context(), module)
    with pytest.raises(PassFailedException, match="compiled for soc=a2 cann=9.0"):
        fuse(module, FuseOptions(soc=soc, cann=cann))


def test_an_mc2_op_in_a_module_for_a3_does_not_verify():
    module = two_layers()
    fuse(module, FuseOptions())
    module.attributes[TARGET_ATTR] = DictionaryAttr({"soc": StringAttr("a3"), "cann": StringAttr("9.0")})
    with pytest.raises(VerifyException, match=r"\[MC2-SOC\] aclnnQuantMatmulAllReduce \(V1 to V5\) is not supported"):
        module.verify()


def test_a_malformed_record_is_a_verification_error():
    module = two_layers()
    fuse(module, FuseOptions())
    module.attributes[TARGET_ATTR] = DictionaryAttr({"soc": StringAttr("950")})
    with pytest.raises(VerifyException, match=r"^qmmar\.target: \[SOC-950\]"):
        module.verify()


def test_the_record_reads_back_from_text():
    module = two_layers()
    fuse(module, FuseOptions(cann="9.1"))
    text = tool("qmmar-opt", "-", stdin=str(module).encode()).stdout
    assert 'qmmar.target = {soc = "a2", cann = "9.1"}' in text
    assert recorded_target(parse(text)) == Target("a2", "9.1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--soc", "950"], "qmmar-check: error: [SOC-950] Ascend 950 is not supported yet"),
        (["--soc", "a3", "--cann", "8.5"], "qmmar-check: error: [SOC-A3-CANN]"),
        (["--cann", "9"], "qmmar-check: error: argument --cann: cann must be a version as major.minor"),
    ],
)
def test_qmmar_check_refuses_a_target_it_cannot_compile_for(args, message):
    r = tool("qmmar-check", TWO_LAYERS, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_qmmar_check_judges_for_the_soc_it_is_given():
    r = tool("qmmar-check", TWO_LAYERS, "--soc", "a3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("[CHAIN-A3-INT8-COMM]") == 1 and "2 chain(s): 1 legal to fuse" in r.stdout


def test_qmmar_opt_takes_the_cann_option_as_typed():
    r = tool("qmmar-opt", TWO_LAYERS, "-p", "fuse-quant-matmul-all-reduce{soc=a2 cann=9.1}")
    assert r.returncode == 0, r.stderr
    assert 'qmmar.target = {soc = "a2", cann = "9.1"}' in r.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [("soc=950", "[SOC-950]"), ("soc=a3 cann=8.5", "[SOC-A3-CANN]"), ("cann=nine", "cann must be a version")],
)
def test_qmmar_opt_refuses_a_bad_target_in_one_line(options, message):
    r = tool("qmmar-opt", TWO_LAYERS, "-p", f"fuse-quant-matmul-all-reduce{{{options}}}")
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_the_torch_backend_refuses_a_bad_target():
    pytest.importorskip("torch")
    from qmmar.frontends.torch.backend import BackendOptions, QmmarOptionsError

    with pytest.raises(QmmarOptionsError, match=r"^qmmar backend: \[SOC-950\]"):
        BackendOptions.parse({"soc": "950"})
    assert BackendOptions.parse({"soc": "a3"}).fuse_options().soc == "a3"
