"""specs/proposals/: the §B.8 findings of ../shared/kernel/proposals.md and the design questions,
found by the checker under the profile that has them and not under the one that fixes them
(docs/proposals.md). Nothing here states a verdict: the `# expect:` lines of each spec are
compared with what `verify` finds, and every violated property must hold in the spec's pair."""
from __future__ import annotations

import dataclasses

import pytest
from conftest import SPECS, expectations

from klpmodel.kernel import PROFILES
from klpmodel.spec import load_spec
from klpmodel.verify import verify

PROPOSALS = SPECS / "proposals"
# each spec and the one that shows the other side (the fix, or the control)
PAIRS = {
    "finding1-state-callbacks.toml": "finding1-replace-set.toml",
    "finding2-state-callbacks.toml": "finding2-mainline.toml",
    "design-block-disable-reversal.toml": "design-block-disable-off.toml",
}
ALL = sorted(p.name for p in PROPOSALS.glob("*.toml"))
OPT_IN = {"recoverable"}            # properties only --property checks (docs/properties.md)


def _properties(name: str) -> list[str] | None:
    """The opt-in properties the spec's expectations name (the header's `--property`)."""
    named = {e[1] for e in expectations(PROPOSALS / name) if e[0] == "violation"}
    named |= {w for pair in PAIRS.items() if name in pair for n in pair
              for e in expectations(PROPOSALS / n) if e[0] == "violation" for w in e[1:2]}
    opt = sorted(named & OPT_IN)
    return opt or None


def _run(name: str, kernel: str | None = None):
    spec = load_spec(PROPOSALS / name)
    if kernel is not None and kernel != spec.kernel:
        spec = dataclasses.replace(spec, kernel=kernel, file_kernel=spec.kernel)
    PROFILES[spec.kernel].refuse(spec)
    return verify(spec, properties=_properties(name), engine="explicit")


def test_every_proposal_spec_is_paired_and_has_expectations():
    assert set(ALL) == set(PAIRS) | set(PAIRS.values())
    for name in ALL:
        assert expectations(PROPOSALS / name), name


@pytest.mark.parametrize("name", ALL)
def test_the_checker_finds_what_the_header_expects(name):
    r = _run(name)
    exp = expectations(PROPOSALS / name)
    assert r.unknown is None
    if exp == [["holds"]]:
        assert r.verdict == "holds" and not r.violations, [(v.property, v.depth) for v in r.violations]
        return
    found = {v.property: v.depth for v in r.violations}
    assert found == {e[1]: int(e[2]) for e in exp if e[0] == "violation"}


@pytest.mark.parametrize("bad,good", sorted(PAIRS.items()))
def test_each_finding_flips_in_its_pair(bad, good):
    """The property the finding breaks holds under the profile (or the setting) that fixes it."""
    broken = {v.property for v in _run(bad).violations}
    assert broken
    r = _run(good)
    assert r.unknown is None
    assert broken.isdisjoint(v.property for v in r.violations)
    assert broken <= set(r.properties)


def test_finding1_cannot_be_written_the_other_way_round():
    """Each file of the pair is refused under the other profile (why there are two files)."""
    from klpmodel.errors import UserError

    for name, other in (("finding1-state-callbacks.toml", "replace-set"),
                        ("finding1-replace-set.toml", "state-callbacks"),
                        ("finding2-mainline.toml", "state-callbacks")):
        with pytest.raises(UserError):
            _run(name, other)


def test_finding2_fix_holds_under_replace_set_too():
    r = _run("finding2-mainline.toml", "replace-set")
    assert r.verdict == "holds" and "shadow-orphan" in r.properties
