"""Past a broken rule that is not a gate, every later rule can still be judged (`rules.violations`):
over any mix of each table's broken cases, no predicate fails, the first broken rule is the one
`first_violation` names, every rule listed is broken, and nothing is judged past a broken gate."""

import dataclasses

import pytest
import test_agmm_rules as agmm
import test_mrs_rules as mrs
import test_rules as mc2
from hypothesis import given
from hypothesis import strategies as st

from qmmar.dialects import agmm_rules, mc2_rules, mrs_rules, rules
from qmmar.dialects.shapes import STATIC

TABLES = {  # table -> (its rules, a valid signature, the cases that break each rule)
    "mc2": (mc2_rules.RULES, mc2.BASE, mc2.BROKEN),
    "mrs a2": (mrs_rules.TABLES["a2"], mrs.BASE, mrs.BROKEN),
    "mrs a3": (mrs_rules.TABLES["a3"], mrs.BASE, mrs.BROKEN),
    "agmm": (agmm_rules.RULES, agmm.BASE, agmm.BROKEN),
}


@pytest.mark.parametrize("table", TABLES)
@given(data=st.data())
def test_every_broken_rule_is_listed_up_to_the_first_broken_gate(table, data):
    table_rules, base, broken = TABLES[table]
    cases = data.draw(st.lists(st.sampled_from(sorted(broken)), min_size=1, max_size=4, unique=True))
    changes = {name: value for case in cases for name, value in broken[case].items()}
    sig = dataclasses.replace(base, **changes)
    found = rules.violations(table_rules, sig)
    assert found and found[0] == rules.first_violation(table_rules, sig)
    assert all(rule.holds(sig, STATIC) is False for rule in found)
    gates = [i for i, rule in enumerate(found) if rule.gate]
    assert gates in ([], [len(found) - 1])
    last = table_rules.index(found[-1])
    after = table_rules[last + 1 :] if not gates else ()
    assert all(rule.holds(sig, STATIC) is not False for rule in after)
