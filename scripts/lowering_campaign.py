"""A campaign (not a test): N generated programs through fuse + lower + aclnn-cpp + g++
-fsyntax-only (tests/lowerable.py), counted by outcome; each defect's program is written to
the output folder.

    .venv/bin/python scripts/lowering_campaign.py --count 3000 --seed 1 --out /tmp/campaign
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from lowerable import lower_and_compile, programs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("campaign"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    counts: collections.Counter[str] = collections.Counter()

    @seed(args.seed)
    @settings(max_examples=args.count, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=["generate"])  # fmt: skip
    @given(programs())
    def one(generated: tuple[str, str]) -> None:
        text, weight_format = generated
        outcome = lower_and_compile(text, weight_format)
        counts[outcome.kind if outcome.kind != "refused" else f"refused {outcome.detail}"] += 1
        if outcome.kind == "defect":
            (args.out / f"defect{counts['defect']}.mlir").write_text(f"// {weight_format}\n// {outcome.detail}\n{text}")
        if sum(counts.values()) % 500 == 0:
            print(f"{sum(counts.values())} programs: {dict(counts)}", file=sys.stderr, flush=True)

    one()
    for kind, n in sorted(counts.items()):
        print(f"{kind}: {n}")
    print(f"total: {sum(counts.values())}")
    return 1 if counts["defect"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
