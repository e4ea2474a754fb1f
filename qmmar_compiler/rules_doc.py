"""The operator's rule table as Markdown, for the README: generated, never written twice.

python -m qmmar.rules_doc
"""

from qmmar.dialects.mc2_rules import RULES
from qmmar.passes.legality import CHAIN_RULES
from qmmar.passes.policy import POLICY_RULES


def markdown() -> str:
    lines = ["| rule id | constraint |", "|---|---|"]
    lines += [f"| `{r.id}` | {r.sentence} |" for r in RULES]
    lines += ["", "| chain rule id | constraint |", "|---|---|"]
    lines += [f"| `{r.id}` | {r.sentence} |" for r in CHAIN_RULES]
    lines += ["", "Policy verdicts: " + ", ".join(f"`{rule_id}`" for rule_id in POLICY_RULES) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
