"""The transition system as a value (klpmodel.ts): built once per command and shared by
bounded model checking, the further counterexamples and k-induction (Houdini, the facts'
base case, the step case); the one weakening loop they use."""
from __future__ import annotations

import z3
from conftest import SPECS

import klpmodel.ts as ts_module
from klpmodel.deadline import INTERRUPTED, Deadline
from klpmodel.prove import prove
from klpmodel.spec import load_spec
from klpmodel.ts import Solver, TransitionSystem, labels, weaken
from klpmodel.verify import verify


def _spy(monkeypatch):
    """Record every TransitionSystem built and every Unrolling made (its system and tags)."""
    built, paths = [], []
    build, unroll = TransitionSystem.__init__, ts_module.Unrolling.__init__

    def new_ts(self, *a, **k):
        build(self, *a, **k)
        built.append(self)

    def new_unrolling(self, ts, solver, start, tags, **k):
        unroll(self, ts, solver, start, tags, **k)
        paths.append((ts, tags[0]))

    monkeypatch.setattr(TransitionSystem, "__init__", new_ts)
    monkeypatch.setattr(ts_module.Unrolling, "__init__", new_unrolling)
    return built, paths


def test_bounded_model_checking_and_more_share_one_transition_system(monkeypatch):
    built, paths = _spy(monkeypatch)
    r = verify(load_spec(SPECS / "no-leak-bad.toml"), engine="z3", max_counterexamples=3)
    assert r.verdict == "violation"
    assert len(built) == 1
    assert len(paths) == 2 and all(ts is built[0] for ts, _ in paths)   # run() and more()


def test_k_induction_shares_one_transition_system(monkeypatch):
    built, paths = _spy(monkeypatch)
    r = prove(load_spec(SPECS / "no-leak-good.toml"), method="induction", max_k=6)
    assert r.verdict == "proved" and r.k_facts                      # the facts' base case ran
    assert len(built) == 1
    assert all(ts is built[0] for ts, _ in paths)
    # Houdini, the facts' base case, the step case and the base case (bounded model checking)
    assert {tag for _, tag in paths} == {"#h{}", "#b{}", "#e{}", "@{}"}


# ---- the weakening loop, on a counter x -> x + 2 over 4 bits

CANDIDATES = [
    lambda v: z3.Extract(0, 0, v) == 0,    # 0: x is even: inductive
    lambda v: z3.ULT(v, 8),                # 1: x < 8: 6 -> 8 breaks it
    lambda v: v != 3,                      # 2: x != 3: 1 -> 3 breaks it alone, not with "even"
    lambda v: v != 5,                      # 3: the same
    lambda v: v != 4,                      # 4: 2 -> 4 breaks it, even with "even"
]


def _counter(deadline: Deadline):
    x, y = z3.BitVec("x", 4), z3.BitVec("y", 4)
    solver = Solver(deadline)
    solver.add(y == x + 2)
    lits = [z3.Bool(f"lit#{i}") for i in range(len(CANDIDATES))]
    for lit, c in zip(lits, CANDIDATES, strict=True):
        solver.add(z3.Implies(lit, c(x)))                           # assumed before the step
    return solver, x, y, lits


def test_weakening_keeps_the_largest_inductive_subset():
    solver, _, y, lits = _counter(Deadline())
    out = weaken(solver, range(len(CANDIDATES)), lambda i: z3.Not(CANDIDATES[i](y)), labels("q#"), lits=lits)
    assert out.verdict == "inductive" and out.kept == (0, 2, 3)


def test_weakening_stops_at_a_model_that_breaks_only_the_goal():
    solver, _, y, lits = _counter(Deadline())
    out = weaken(solver, [0, 4], lambda i: z3.Not(CANDIDATES[i](y)), labels("q#"), goal=(y == 6), lits=lits)
    assert out.verdict == "broken" and 0 in out.kept
    assert out.model.eval(y).as_long() == 6
    assert all(z3.is_true(out.model.eval(CANDIDATES[i](y), model_completion=True)) for i in out.kept)


def test_weakening_says_why_it_stopped():
    deadline = Deadline()
    deadline.stopped = INTERRUPTED
    solver, _, y, lits = _counter(deadline)
    out = weaken(solver, range(len(CANDIDATES)), lambda i: z3.Not(CANDIDATES[i](y)), labels("q#"), lits=lits)
    assert out.verdict == "unknown" and out.reason == INTERRUPTED
