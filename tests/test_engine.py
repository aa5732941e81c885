"""The Z3 engine against the interpreter: same verdicts, same shortest depths, every trace
replayed; a trace that does not replay is a loud internal error."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED, SPECS
from oracle import shortest_violations

from klpmodel.errors import InternalError
from klpmodel.kernel import Model, Op
from klpmodel.spec import load_spec
from klpmodel.verify import replay, verify

ALL_SPECS = sorted(SPECS.glob("*.toml")) + sorted(SPECS.glob("selftests/*.toml")) + sorted((SHARED / "specs").glob("*.toml"))


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_z3_agrees_with_breadth_first_search(path: Path):
    spec = load_spec(path)
    result = verify(spec)
    expected = shortest_violations(Model(spec), spec.depth)
    assert {v.property: v.depth for v in result.violations} == expected
    for v in result.violations:
        assert len(v.trace) == v.depth
        assert any(p == v.property for p, _ in v.trace[-1].violations)


def test_depth_flag_bounds_the_search():
    spec = load_spec(SPECS / "no-leak-bad.toml")
    assert verify(spec, depth=3).verdict == "holds"
    assert verify(spec, depth=4).verdict == "violation"


def test_a_trace_that_does_not_replay_is_an_internal_error():
    model = Model(load_spec(SPECS / "no-leak-bad.toml"))
    ops = [Op("load", "lp_v1"), Op("complete"), Op("load", "lp_v2")]
    with pytest.raises(InternalError, match="finds no violation"):
        replay(model, ops, [{}] * 3, None, "no-leak")
    with pytest.raises(InternalError, match="is not possible in the interpreter"):
        replay(model, [Op("complete")], [{}], None, "no-leak")
    good = replay(model, ops + [Op("complete")], [{}] * 4, None, "no-leak")
    states = [s.after for s in good]
    states[1] = dict(states[1], **{"val[loglevel]": 0})
    with pytest.raises(InternalError, match="disagree on val\\[loglevel\\]"):
        replay(model, ops + [Op("complete")], [{}] * 4, states, "no-leak")


def test_the_state_space_can_be_exhausted_before_the_bound(write_spec):
    # one patch, no states: a handful of states, so no loop-free path of 8 operations exists
    result = verify(load_spec(write_spec('[[patch]]\nname = "p"\n')), depth=8)
    assert result.verdict == "holds"
