"""The rmmod fold (docs/design.md, "Reductions"): what it claims of the rules, and what
verify and prove say and report when they use it. The differential test
(test_differential.py::test_folding_rmmod_keeps_every_violation) compares it with the
unfolded search on random specs."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import cli

from klpmodel import interp
from klpmodel.engine_explicit import ExplicitEngine
from klpmodel.events import OFFLIST, UNLOADED
from klpmodel.kernel import Model, Op
from klpmodel.spec import load_spec
from klpmodel.verify import verify

SPECS = Path(__file__).resolve().parent.parent / "specs"


def test_rmmod_of_a_folded_module_only_moves_its_phase():
    """The premise of the fold, on every reachable state of the shipped specs: `rmmod` of a
    patch that rmmod_folds() names, off the list and not forced, is possible, has one
    outcome, changes nothing but that phase (to unloaded), and breaks no property that
    every operation into the state did not already break (no-leak is judged on each
    quiescent state: it is said again after rmmod, never first there). A rule that gives
    rmmod an effect fails here until it takes the patch out of rmmod_folds()."""
    seen = 0
    for path in sorted(SPECS.glob("*.toml")):
        m = Model(load_spec(path))
        folds = dict(m.rmmod_folds())
        eng = ExplicitEngine(m, keep_graph=True)
        eng.run(1 << 30, [])
        into: dict = {}
        for _, kk, _, _, props in eng.edges:
            into.setdefault(kk, []).append(set(props))
        for key, state in eng.values.items():
            for i, p in enumerate(m.P):
                phase = m.v.phase[i]
                if phase not in folds or state[phase] != OFFLIST or state[folds[phase]]:
                    continue
                op = Op("rmmod", p.name)
                assert interp.refusal(m, state, op) is None, (path.name, p.name)
                outs = interp.outcomes(m, state, op, record=False)
                assert len(outs) == 1, (path.name, p.name)
                broke = {q for q, _ in outs[0].violations}
                assert all(broke <= before for before in into[key]), (path.name, p.name, broke)
                after = outs[0].state
                assert {v for v in state if after[v] != state[v]} == {phase} and after[phase] == UNLOADED
                seen += 1
    assert seen > 20          # (the shipped specs do reach such states)


def test_a_folded_depth_is_not_reported_as_the_trace_length():
    """disable-restores breaks after 8 operations, one of them an rmmod the fold does not
    count: verify reports 8 (the plain search's shortest trace), and at depth 7 the
    property holds and the report no longer claims any length."""
    r = verify(load_spec(SPECS / "revert-restores-bad.toml"), depth=8)
    (v,) = r.traces("disable-restores")
    assert v.depth == len(v.trace) == 8 and any(s.op.word == "rmmod" for s in v.trace)
    assert r.complete_at is not None
    r = verify(load_spec(SPECS / "revert-restores-bad.toml"), depth=7)
    assert not r.traces("disable-restores") and r.traces("revert-restores")
    assert r.complete_at is None


def test_verify_and_prove_say_when_they_fold():
    p = cli("verify", "specs/selftest-state.toml")
    assert "reduction: rmmod folded into the next load" in p.stdout
    doc = json.loads(cli("verify", "specs/selftest-state.toml", "--format", "json").stdout)
    assert doc["reductions"] and doc["reductions"][0].startswith("rmmod folded")
    doc = json.loads(cli("verify", "specs/selftest-state.toml", "--format", "json", "--engine", "z3").stdout)
    assert doc["reductions"] == []
    assert "reduction:" not in cli("verify", "specs/selftest-state.toml", "--engine", "z3").stdout
    p = cli("prove", "specs/selftest-state.toml", "--method", "exhaustion")
    assert "reachable states (each rmmod folded into the next load)" in p.stdout


def test_the_fold_makes_a_cumulative_series_small(tmp_path):
    """Without the fold every subset of released livepatch modules still loaded is its own
    state; with it, 8 cumulative releases are exhausted in under a thousand states."""
    import sys
    sys.path.insert(0, str(SPECS.parent / "bench"))
    from bench import cumulative

    path = tmp_path / "cumulative-8.toml"
    path.write_text(cumulative(8, states=2, modules=1))
    m = Model(load_spec(path))
    names = [p.name for p in m.properties]
    folded = ExplicitEngine(m, fold_rmmod=True)
    r = folded.run(1 << 30, names)
    assert r.complete_at is not None and not r.found and folded.states < 1000
    plain = ExplicitEngine(m, max_states=5 * folded.states)
    assert plain.run(1 << 30, names).unknown            # more than five times as many


def test_folded_coverage_sees_what_the_unfolded_search_sees():
    """The review's coverage with the fold (when the verdicts' search was exhausted) runs
    the same statements, callbacks and lifecycle edges (the folded rmmods included) and
    reaches the same judging sites as the unfolded search to exhaustion."""
    from klpmodel.review import coverage

    for name in ("selftest-state.toml", "module-state.toml", "revert-restores-bad.toml", "no-leak-bad.toml"):
        m = Model(load_spec(SPECS / name))
        folded, plain = coverage(m, 1000, exhausted=True), coverage(m, 1000)
        assert folded.complete and folded.folded and plain.complete and not plain.folded
        assert folded.states < plain.states, name
        for what in ("ran", "skipped", "callbacks", "edges", "judged"):
            assert set(getattr(folded, what)) == set(getattr(plain, what)), (name, what)
        assert {e: names for e, names in folded.edges.items()} == plain.edges, name
