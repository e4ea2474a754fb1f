"""`qmmar-check`: which chains are legal to fuse, and why not; for a graph compiler's CI.

Prints one verdict per chain (nothing is rewritten) and exits 3 when a chain marked
`qmmar.must_fuse` cannot be fused, 1 on bad input, 2 on bad usage, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence

from xdsl.utils.exceptions import PassFailedException

from qmmar.cli.common import EXIT_FAILURE, add_version, check_writable, tool_main
from qmmar.context import qmmar_context
from qmmar.dialects.diagnostics import LocatedError
from qmmar.dialects.target import DEFAULT_CANN
from qmmar.passes import cost_model
from qmmar.passes.fuse_quant_matmul_all_reduce import FuseOptions, fuse_module
from qmmar.passes.markers import DECODE, MUST_FUSE, SCENARIO
from qmmar.passes.options import argparse_type
from qmmar.passes.plan import must_fuse_failure, write_report
from qmmar.passes.policy import Numerics
from qmmar.source import read_module

MUST_FUSE_BROKEN = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qmmar-check",
        description="Report, for every chain of an MC2 operator (quantised matmul + all-reduce or "
        "+ reduce-scatter, all-gather + quantised matmul), whether it is legal to fuse, the rule that "
        "stops it if not, and notes (among them the cost model's).",
        epilog=f"Mark a chain's last op with the unit attribute {MUST_FUSE} to make its "
        f"fusion mandatory: exit code {MUST_FUSE_BROKEN} when such a chain is illegal. "
        f'A func.func with {SCENARIO} = "{DECODE}" is an incremental (decode) function.',
    )
    p.add_argument("file", help="the MLIR program")
    p.add_argument("--soc", type=argparse_type(FuseOptions, "soc"), default="", metavar="{a2,a3}",
                   help="the Ascend SoC whose operators and rules judge the chains (default: the one "
                   "the module records, else a2; 950 is not supported yet)")  # fmt: skip
    p.add_argument("--cann", type=argparse_type(FuseOptions, "cann"), default="", metavar="MAJOR.MINOR",
                   help=f"the CANN version (default: the module's, else {DEFAULT_CANN}); on a2, 9.1 "
                   "or later calls aclnnQuantMatmulAllReduceV5, earlier ones V3")  # fmt: skip
    p.add_argument("--group", default="", help="the model's communication group "
                   "(default: the first chain's)")  # fmt: skip
    p.add_argument("--scenario", choices=("auto", "prefill", "decode"), default="auto")
    p.add_argument("--min-m", type=argparse_type(FuseOptions, "min_m"), default=0, help="with --scenario auto, a "
                   "static m below this counts as decode")  # fmt: skip
    p.add_argument("--numerics", choices=typing.get_args(Numerics), default="exact",
                   help="exact: a chain fuses only if its fused op computes every bit the program does; relaxed: "
                   "also if it computes the same up to rounding (an f32 dequant scale for bf16 output, rounded to "
                   "bf16), its verdict saying what changes and a bound (default: %(default)s)")  # fmt: skip
    p.add_argument("--report", metavar="FILE.json", help="write every verdict as JSON")
    p.add_argument("--html", metavar="FILE.html", help="write a self-contained HTML report: a summary, each "
                   "function's graph with every chain boxed by verdict, each chain's cost and its ops before "
                   "and after (needs Graphviz: pip install 'qmmar[report]', and Debian's graphviz)")  # fmt: skip
    p.add_argument("--run", metavar="RUN.npz", help="with --html: a `qmmar-run --ideal -o RUN.npz` output, "
                   "whose int8-communication error figures the report shows")  # fmt: skip
    p.add_argument("--int8-tops", type=argparse_type(FuseOptions, "int8_tops"), default=cost_model.INT8_TOPS,
                   help="the cost model's int8 peak in TOPS (default: %(default)s)")  # fmt: skip
    p.add_argument("--link-gbps", type=argparse_type(FuseOptions, "link_gbps"), default=cost_model.LINK_GBPS,
                   help="the cost model's HCCS bandwidth per link in GB/s (default: %(default)s)")  # fmt: skip
    add_version(p, "qmmar-check")
    return p


def run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.run and not args.html:
        parser.error("--run goes with --html")
    try:
        for path in filter(None, (args.report, args.html)):
            check_writable(path, "the report")
        if args.run:
            _check_readable(args.run)
        module = read_module(qmmar_context(), args.file)
    except LocatedError as err:
        print(err, file=sys.stderr)
        return EXIT_FAILURE
    try:
        options = FuseOptions(soc=args.soc, cann=args.cann, group=args.group, scenario=args.scenario, min_m=args.min_m,
                              numerics=args.numerics, check_only=True, int8_tops=args.int8_tops,
                              link_gbps=args.link_gbps)  # fmt: skip
    except ValueError as err:  # a target qmmar cannot compile for (950; A3 before CANN 9.0)
        parser.error(str(err))
    try:
        found = fuse_module(module, options)
    except PassFailedException as err:  # the options contradict the target the module records
        print(f"{args.file}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    verdicts = found.verdicts
    for line in found.remarks("all"):
        print(line)
    legal = sum(v.legal for v in verdicts)
    broken = sum(v.must_fuse and not v.legal for v in verdicts)
    print(f"{len(verdicts)} chain(s): {legal} legal to fuse, {len(verdicts) - legal} not; "
          f"{broken} marked {MUST_FUSE} and not fusable")  # fmt: skip
    if args.report:
        try:
            records = found.records()
            write_report(args.report, records.pop("verdicts"), **records)
        except OSError as err:
            print(f"{args.report}: error: cannot write the report: {err.strerror}", file=sys.stderr)
            return EXIT_FAILURE
    if args.html:
        try:
            from qmmar.report import HtmlReport, ReportError  # graphviz: only when asked for

            HtmlReport(module, options).write(args.html, verdicts, module, args.run)
        except ReportError as err:
            print(_report_error(str(err), args.run), file=sys.stderr)
            return EXIT_FAILURE
        except OSError as err:
            print(f"{args.html}: error: cannot write the report: {err.strerror}", file=sys.stderr)
            return EXIT_FAILURE
    return MUST_FUSE_BROKEN if must_fuse_failure(verdicts, MUST_FUSE) else 0


def _check_readable(path: str) -> None:
    """Fail before the analysis, not after it, when the --run file cannot be read."""
    try:
        open(path, "rb").close()
    except OSError as err:
        raise LocatedError(path, f"cannot read it: {err.strerror}") from None


def _report_error(message: str, run: str | None) -> str:
    """The report's error as one line, in the `FILE: error:` form when the --run file is at
    fault (its messages start with the file's name)."""
    if run is not None and message.startswith(f"{run}: "):
        return f"{run}: error: {message.removeprefix(f'{run}: ')}"
    return f"qmmar-check: error: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    return tool_main("qmmar-check", lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
