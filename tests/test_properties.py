"""Each built-in property: its violating spec is caught at the stated depth, its satisfying
spec holds. The pairs are the ones docs/properties.md shows."""
from __future__ import annotations

import pytest
from conftest import SPECS, expectations

from klpmodel.properties import NAMES
from klpmodel.spec import load_spec
from klpmodel.verify import verify


@pytest.mark.parametrize("prop", NAMES)
def test_violating_spec_is_caught(prop):
    path = SPECS / f"{prop}-bad.toml"
    depth = next(int(e[2]) for e in expectations(path) if e[:2] == ["violation", prop])
    result = verify(load_spec(path), properties=[prop])
    assert result.verdict == "violation" and result.exit_code == 1
    (v,) = result.violations
    assert (v.property, v.depth) == (prop, depth)


@pytest.mark.parametrize("prop", NAMES)
def test_satisfying_spec_holds(prop):
    path = SPECS / f"{prop}-good.toml"
    assert expectations(path) == [["holds"]]
    result = verify(load_spec(path))
    assert result.verdict == "holds" and result.exit_code == 0
    assert result.violations == ()


def test_every_header_expectation_of_every_spec():
    """specs/README.md lists these verdicts; the headers are what ../shared/bin/acceptance reads."""
    for path in sorted(SPECS.glob("*.toml")) + sorted(SPECS.glob("selftests/*.toml")):
        exp = expectations(path)
        assert exp, f"{path.name} has no '# expect:' header"
        result = verify(load_spec(path))
        found = {v.property: v.depth for v in result.violations}
        if exp == [["holds"]]:
            assert found == {}, path.name
        else:
            assert {e[1]: int(e[2]) for e in exp} == found, path.name


def test_recoverable_finds_a_dead_end_and_says_why():
    r = verify(load_spec(SPECS / "disable-restores-bad.toml"), properties=["recoverable"])
    (v,) = r.violations
    assert (v.property, v.depth, r.engine) == ("recoverable", 2, "explicit")
    assert [str(s.op) for s in v.trace] == ["load lp_forgetful", "complete"]
    assert v.reason.startswith("feature never becomes original again (it can only be v1)")


def test_recoverable_holds_for_the_selftest_series():
    r = verify(load_spec(SPECS / "selftest-state.toml"), properties=["recoverable"])
    assert r.verdict == "holds" and r.violations == ()


def test_recoverable_is_not_for_bounded_checking():
    import pytest

    from klpmodel.errors import UserError

    with pytest.raises(UserError, match="recoverable needs the explicit engine"):
        verify(load_spec(SPECS / "selftest-state.toml"), properties=["recoverable"], engine="z3")


def test_recoverable_honours_the_timeout():
    """recoverable explores the whole state space; it stops at the timeout like the search
    does (nothing is timed: no exploration fits in a microsecond)."""
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.kernel import Model

    assert ExplicitEngine(Model(load_spec(SPECS / "module-state.toml"))).recoverable(timeout=1e-6) == "timeout"
    r = verify(load_spec(SPECS / "disable-restores-bad.toml"), properties=["recoverable"], timeout=1e-6)
    assert r.verdict == "unknown" and r.unknown.endswith("timeout") and r.violations == ()
