"""The two engines against each other: Z3 bounded model checking and the explicit
breadth-first search reach the same verdicts and the same shortest depths on every spec;
every trace is replayed; a trace that does not replay is a loud internal error."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED, SPECS

from klpmodel.errors import InternalError
from klpmodel.kernel import Model, Op
from klpmodel.spec import load_spec
from klpmodel.verify import replay, verify

ALL_SPECS = sorted(SPECS.glob("*.toml")) + sorted(SPECS.glob("selftests/*.toml")) + sorted((SHARED / "specs").glob("*.toml")) \
    + sorted(SPECS.glob("selftests-replace-set/*.toml")) \
    + sorted(SPECS.glob("selftests-state-callbacks/*.toml"))    # (kernel state-callbacks)


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_z3_and_explicit_engines_agree(path: Path):
    spec = load_spec(path)
    z3 = verify(spec, engine="z3")
    explicit = verify(spec, engine="explicit")
    assert (z3.engine, explicit.engine) == ("z3", "explicit")
    assert {v.property: v.depth for v in z3.violations} == {v.property: v.depth for v in explicit.violations}
    assert z3.verdict == explicit.verdict
    for v in z3.violations + explicit.violations:
        assert len(v.trace) == v.depth
        assert any(p == v.property for p, _ in v.trace[-1].violations)
    # a state space the explicit search exhausts is also exhausted for Z3's loop-free paths
    if z3.complete_at is not None:
        assert explicit.complete_at is not None


@pytest.mark.parametrize("engine", ["z3", "explicit"])
def test_depth_flag_bounds_the_search(engine):
    spec = load_spec(SPECS / "no-leak-bad.toml")
    assert verify(spec, depth=3, engine=engine).verdict == "holds"
    assert verify(spec, depth=4, engine=engine).verdict == "violation"


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


@pytest.mark.parametrize("engine", ["z3", "explicit"])
def test_the_state_space_can_be_exhausted_before_the_bound(write_spec, engine):
    # one patch, no states: a handful of states, so no loop-free path of 8 operations exists
    result = verify(load_spec(write_spec('[[patch]]\nname = "p"\n')), depth=8, engine=engine)
    assert result.verdict == "holds" and result.complete_at is not None


def test_auto_falls_back_to_z3_past_the_state_budget(monkeypatch):
    import klpmodel.verify as v

    spec = load_spec(SPECS / "selftest-state.toml")
    assert verify(spec).engine == "explicit"
    monkeypatch.setattr(v, "AUTO_STATE_BUDGET", 10)
    r = verify(spec)
    assert r.engine == "z3" and r.why_engine.startswith("z3: more than 10 states") and r.verdict == "holds"


def test_symmetry_reduction_keeps_depths_and_names_traces_as_run(write_spec):
    """Two interchangeable copies of a buggy v2: the reduced search merges them, yet the
    reported trace is a real run (replayed) and the depths are those of the full search."""
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.kernel import Model
    from klpmodel.properties import NAMES

    text = (SPECS / "no-leak-bad.toml").read_text()
    twin = text[text.index('[[patch]]\nname    = "lp_v2"'):].replace('"lp_v2"', '"lp_v2b"')
    spec = load_spec(write_spec(text + "\n" + twin))
    assert Model(spec).interchangeable() == [[1, 2]]
    reduced = ExplicitEngine(Model(spec))
    r = reduced.run(6, list(NAMES))
    full = ExplicitEngine(Model(spec), symmetry=False)
    f = full.run(6, list(NAMES))
    assert {p: d for p, (d, _) in r.found.items()} == {p: d for p, (d, _) in f.found.items()}
    assert reduced.states < full.states
    result = verify(spec, engine="explicit", depth=6)        # replays every trace
    assert {v.property: v.depth for v in result.violations} == {p: d for p, (d, _) in f.found.items()}


def test_a_renamed_twin_fails_with_its_own_statement():
    spec = load_spec(Path(__file__).parent / "regressions" / "twin-choice-renaming.toml")
    r = verify(spec, engine="explicit", properties=["error-cleanup"])
    (v,) = r.violations
    assert [str(s.op) for s in v.trace] == ["load a", "complete", "load b"]
    assert v.trace[-1].failed == (("b", "vmlinux", "pre_patch", 1, 16, "maybe-fail if prev s"),)


# three compatible non-cumulative patches (bench/bench.py stress(3)): the list order matters
STRESS_3 = '[check]\ndepth = 1000\n[states.a]\nid = 1\n[states.b]\nid = 2\n' + "".join(
    f'[[patch]]\nname = "lp{i}"\nstates = {{ {s} = 1 }}\n[patch.objects.vmlinux]\n'
    f'pre_patch = ["alloc {s}"]\npost_unpatch = ["free {s}"]\n' for i, s in enumerate("aba"))


@pytest.mark.parametrize("name", ["module-state.toml", "selftest-state.toml", "no-double-free-bad.toml",
                                  "no-null-deref-bad.toml", "stress-3"])
def test_the_search_memo_answers_as_the_rules_do(name, write_spec):
    """interp.Memo answers possible() and outcomes() with runs made on other states that
    read the same values: on every reachable state it agrees with running the rules there
    (states, value types, choices and violations). stress-3 catches a read the memo would
    not see (a position, a phase)."""
    from klpmodel import interp
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.properties import NAMES

    m = Model(load_spec(write_spec(STRESS_3) if name == "stress-3" else SPECS / name))
    eng = ExplicitEngine(m, symmetry=False)
    eng.run(m.spec.depth, list(NAMES))
    memo = interp.Memo(m)
    for k in eng.parent:
        state = dict(zip(eng.names, k, strict=True))
        ops = interp.possible(m, state)
        assert list(memo.possible(k)) == ops
        for op in ops:
            want = [(tuple(o.state.values()), o.choices, [(p, repr(w)) for p, w in o.violations])
                    for o in interp.outcomes(m, state, op, record=False)]
            got = [(after, choices, [(p, repr(w)) for p, w in violations])
                   for after, choices, violations, _ in memo.outcomes(k, op)]
            assert got == want
            assert [tuple(map(type, s)) for s, _, _ in got] == [tuple(map(type, s)) for s, _, _ in want]
    assert memo.hits > 0                 # some answers did come from runs on other states


def test_a_patch_a_task_may_sleep_in_has_no_twin(write_spec):
    """sleep[M] holds the index of the patch whose version a task sleeps in (issue 15): the
    symmetry reduction does not rename such patches; nor patches whose init builds their
    states differently (block_disable_param, no_states_param)."""
    from klpmodel.kernel import Model

    twins = '[modules.m]\nparams = { b = true }\nsleeps = { function = "f", while = "b" }\n' + \
        ''.join(f'[[patch]]\nname = "{n}"\n[patch.objects.m]\nfuncs = ["{f}"]\n' for n, f in
                (("a", "f"), ("b", "f"), ("c", "g"), ("d", "g")))
    assert Model(load_spec(write_spec(twins))).interchangeable() == [[2, 3]]
    init = 'kernel = "state-callbacks"\n[states.s]\nid = 1\n' + ''.join(
        f'[[patch]]\nname = "{n}"\nstates = {{ s = 1 }}\nparams = {{ x = false }}\n{extra}' for n, extra in
        (("a", 'block_disable_param = { s = "x" }\n'), ("b", ""), ("c", "")))
    assert Model(load_spec(write_spec(init, "init.toml"))).interchangeable() == [[1, 2]]
