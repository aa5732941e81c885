"""`klpmodel prove`: k-induction and exhaustion agree on every spec; verdicts, exit codes,
the counterexample to induction, and the auxiliary invariants really are invariants.

What the agreement test asserts, per spec and property (exhaustion is exact: the explicit
engine explores every reachable state):
* exhaustion always answers (proved or violated) on these specs;
* k-induction "violated" => exhaustion "violated", with the same shortest depth;
* k-induction "proved"   => exhaustion "proved";
* exhaustion "violated" at a depth the base case covers => k-induction "violated";
* so the only allowed difference is k-induction "not proved" where exhaustion says "proved".
CI runs k-induction with --max-k 3; KLP_PROVE_FULL=1 runs it with the default 12."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SHARED, SPECS, cli

from klpmodel.kernel import Model
from klpmodel.prove import _Inductor, candidates, prove
from klpmodel.spec import load_spec

ALL_SPECS = sorted(SPECS.glob("*.toml")) + sorted(SPECS.glob("selftests/*.toml")) + sorted((SHARED / "specs").glob("*.toml"))
FULL = bool(os.environ.get("KLP_PROVE_FULL"))
MAX_K = 12 if FULL else 3


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_k_induction_and_exhaustion_agree(path: Path):
    spec = load_spec(path)
    ind = prove(spec, method="induction", max_k=MAX_K)
    exh = prove(spec, method="exhaustion")
    base = max(MAX_K, spec.depth)
    for i, e in zip(ind.proofs, exh.proofs, strict=True):
        assert e.verdict in ("proved", "violated"), e
        if i.verdict == "violated":
            assert e.verdict == "violated" and i.violation.depth == e.violation.depth, (i, e)
        if i.verdict == "proved":
            assert e.verdict == "proved", (i.property, i.method, i.k)
        if e.verdict == "violated" and e.violation.depth <= base:
            assert i.verdict == "violated", i
        assert i.verdict in ("proved", "violated", "not proved"), i
    # the header's verdict (tests/test_properties.py checks it with verify) is prove's too
    expect_holds = any(line == ["holds"] for line in _expect(path))
    assert (exh.verdict == "proved") == expect_holds


def _expect(path):
    from conftest import expectations
    return expectations(path)


@pytest.mark.skipif(not FULL, reason="KLP_PROVE_FULL=1: k-induction closes the selftest series at k = 9 (~10-30 s)")
def test_selftest_series_is_proved_by_k_induction():
    r = prove(load_spec(SPECS / "selftest-state.toml"), method="induction")
    assert r.verdict == "proved" and {p.method for p in r.proofs} == {"k-induction"}


def test_two_patch_series_is_proved_by_k_induction_and_the_bad_twin_is_violated():
    good = prove(load_spec(SPECS / "no-leak-good.toml"), method="induction", max_k=6)
    assert good.verdict == "proved" and {p.method for p in good.proofs} == {"k-induction"}
    assert all(p.k <= 6 for p in good.proofs) and good.k_facts
    bad = prove(load_spec(SPECS / "no-leak-bad.toml"), method="induction", max_k=6)
    (v,) = [p for p in bad.proofs if p.verdict == "violated"]
    assert v.property == "no-leak" and v.violation.depth == 4


def test_auxiliary_invariants_hold_in_every_reachable_state():
    """Houdini keeps only what Z3 proves inductive: check it against the explicit engine."""
    from klpmodel.engine_explicit import ExplicitEngine

    for name in ("module-state.toml",):
        m = Model(load_spec(SPECS / name))
        ind = _Inductor(m, None)
        invs = ind.houdini(candidates(m, list(ind.ts.names), ind.sample()[:40]))   # a small sample: weak facts too
        eng = ExplicitEngine(m, keep_graph=True)
        eng.run(1 << 30, [])
        for st in eng.values.values():
            assert all(inv.holds(st) for inv in invs), name


def test_exhaustion_says_so_with_the_state_count():
    r = prove(load_spec(SPECS / "disable-restores-good.toml"), method="exhaustion")
    assert r.verdict == "proved" and {p.method for p in r.proofs} == {"exhaustion"}
    assert all(p.states == r.states == 6 for p in r.proofs)      # (7 without the rmmod fold)


def test_auto_falls_back_to_k_induction_past_the_small_space(monkeypatch):
    import klpmodel.prove as pr

    spec = load_spec(SPECS / "no-leak-good.toml")
    assert {p.method for p in prove(spec).proofs} == {"exhaustion"}
    monkeypatch.setattr(pr, "SMALL_SPACE", 10)
    r = prove(spec, max_k=4)
    assert r.verdict == "proved" and {p.method for p in r.proofs} == {"k-induction"} and r.states is None


# ---- the command line

def test_cli_proved_exit_0():
    p = cli("prove", "specs/version-order-good.toml", "--max-k", "6", "--method", "both")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "verdict: proved: 8 proved" in p.stdout
    assert "PROVED version-order by k-induction, k = 5, with the auxiliary invariants" in p.stdout
    assert "; and by exhaustion of 13 reachable states" in p.stdout
    p = cli("prove", "specs/version-order-good.toml")           # auto: the space is small, exhaustion
    assert p.returncode == 0 and "PROVED version-order by exhaustion of 13 reachable states (each rmmod folded into the next load)\n" in p.stdout


def test_cli_violated_exit_1_prints_the_replayed_trace_like_verify():
    p = cli("prove", "specs/no-leak-bad.toml", "-p", "no-leak")
    assert p.returncode == 1
    assert "no-leak: violated, found by exhaustion (trace replayed by the interpreter):" in p.stdout
    p = cli("prove", "specs/no-leak-bad.toml", "-p", "no-leak", "--max-k", "4", "--method", "induction")
    assert p.returncode == 1
    assert "no-leak: violated, found by bounded model checking (trace replayed by the interpreter):" in p.stdout
    assert "VIOLATED no-leak: shortest trace has 4 operations" in p.stdout
    assert "    1. load lp_v1\n" in p.stdout and "=> no-leak broken:" in p.stdout


def test_cli_not_proved_exit_3_shows_the_counterexample_to_induction():
    p = cli("prove", "specs/version-order-good.toml", "--method", "induction", "--max-k", "2", "-p", "version-order")
    assert p.returncode == 3
    out = p.stdout
    assert "NOT PROVED version-order: the step case still fails at k = 2" in out
    assert "counterexample to induction: 1 operation that keeps version-order, then one that breaks it" in out
    assert "the newest variant loglevel held since it was last original is v2" in out   # what it compares with
    assert "state before:" in out and "operation:" in out and "changed:" in out
    assert "need not be reachable" in out
    # exhaustion settles it, and says which
    p = cli("prove", "specs/version-order-good.toml", "--max-k", "2", "-p", "version-order", "--method", "both")
    assert p.returncode == 0
    assert "PROVED version-order by exhaustion of 13 reachable states (k-induction up to k = 2 did not close" in p.stdout


def test_cli_json():
    p = cli("prove", "specs/error-cleanup-bad.toml", "--format", "json", "--max-k", "2", "--method", "both")
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert r["command"] == "prove" and r["verdict"] == "violation" and r["format"] == 2     # verify's word
    by = {e["property"]: e for e in r["properties"]}
    assert by["error-cleanup"]["verdict"] == "violation"
    assert by["error-cleanup"]["violation"]["trace"][0]["operation"] == "load lp_feature"
    assert by["no-double-free"]["verdict"] == "proved" and by["no-double-free"]["method"] == "k-induction"
    assert by["no-double-free"]["states"] == 12
    assert r["invariants"] and r["spec"]["sha256"]


def test_cli_output_is_deterministic():
    a = cli("prove", "specs/no-double-free-bad.toml", "--max-k", "2", "--method", "induction")
    b = cli("prove", "specs/no-double-free-bad.toml", "--max-k", "2", "--method", "induction")
    assert a.stdout == b.stdout and a.returncode == b.returncode


@pytest.mark.parametrize("args, message", [
    (["--max-k", "0"], "--max-k must be at least 1, not 0"),
    (["-p", "recoverable"], "recoverable is not a safety property"),
    (["-p", "nope"], "unknown property 'nope'"),
    (["--timeout", "0"], "--timeout must be a positive number"),
])
def test_cli_bad_usage_exit_2_one_line(args, message):
    p = cli("prove", "specs/no-leak-good.toml", *args)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("klpmodel: error: ") and message in p.stderr and p.stderr.count("\n") == 1


def test_cli_bad_spec_exit_2_with_file_and_line(write_spec):
    bad = write_spec('[[patch]]\nname = "p"\nreplace = "yes"\n')
    p = cli("prove", str(bad))
    assert p.returncode == 2 and f"{bad}:3:" in p.stderr and "Traceback" not in p.stderr


def test_count_facts_let_k_induction_close_the_suse_shared_state_pattern(monkeypatch):
    """The count kept in the shared shadow variable equals the number of livepatch modules
    loaded: a count fact (prove.count_candidates). Without that shape Houdini has no fact
    relating the count to the modules, and shadow-leak/shadow-use-after-free stay open."""
    import klpmodel.prove as pr

    spec = load_spec(SPECS / "samples" / "suse-shared-state.toml")
    r = prove(spec, method="induction", max_k=3)
    assert r.verdict == "proved" and {(p.method, p.k) for p in r.proofs} == {("k-induction", 1)}
    (fact,) = [t for t in r.invariants if "the number of these that hold" in t]
    assert fact == ("the count kept in shadow variable shared is the number of these that hold: "
                    "not (lp_release1 is unloaded), not (lp_release2 is unloaded), not (lp_hotfix is unloaded)")
    monkeypatch.setattr(pr, "count_candidates", lambda *a: [])
    r = prove(spec, method="induction", max_k=3)
    assert {p.property for p in r.proofs if p.verdict != "proved"} == {"shadow-leak", "shadow-use-after-free"}
    assert all(p.verdict == "not proved" for p in r.proofs if p.verdict != "proved")


def test_count_facts_hold_in_every_reachable_state(write_spec):
    """A count fact is a guess like the others: the one Houdini keeps is true in every state
    the explicit engine reaches, and one that a mutation breaks is not kept."""
    from klpmodel.engine_explicit import ExplicitEngine

    text = (SPECS / "samples" / "suse-shared-state.toml").read_text()
    for spec_text, kept in ((text, 1), (text.replace('exit       = ["put shared"]', 'exit       = []', 1), 0)):
        m = Model(load_spec(write_spec(spec_text)))
        ind = _Inductor(m, None)
        invs = [i for i in ind.houdini(candidates(m, list(ind.ts.names), ind.sample())) if i.counts]
        assert len(invs) == kept
        eng = ExplicitEngine(m, keep_graph=True)
        eng.run(1 << 30, [])
        assert all(inv.holds(st) for inv in invs for st in eng.values.values())
