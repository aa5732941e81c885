"""`klpmodel prove`: unbounded verdicts for a spec, per property (docs/proofs.md).

Two routes, both over kernel.step (nothing here restates a kernel rule):

* **exhaustion**: the explicit engine explores the whole reachable state space (it is
  finite); a property no transition breaks holds for sequences of any length.
* **k-induction** on one ts.TransitionSystem (its unrollings and weakening loop; the
  base case is engine_z3 on the same system):
  - auxiliary invariants: candidate facts about one variable, or about a second one when
    the first has a given value, read off states the explicit engine reaches (a sample,
    never trusted); those whose conjunction Z3 proves inductive over the transition
    relation are kept (Houdini; the initial state is in the sample, so they hold there);
  - base case: bounded model checking (Z3Engine.run) from the initial state to the
    spec's depth, deepened to the largest k a step case used and, for what stays
    unproved, to --max-k; what it finds is violated, replayed by the interpreter
    (verify.replay) and printed like `verify` prints it;
  - step case at k: k transitions from an arbitrary state satisfying the invariants, the
    pre-states pairwise distinct (loop-free), no property of the set broken on the first
    k-1, one broken on the k-th. Tried for all properties jointly, with the facts Houdini
    dropped as extra goals that may still be k-inductive (their own base case is bounded
    model checking); then property by property with the proved ones as premises;
  - a step case still satisfiable at --max-k is a counterexample to induction: a pair of
    states, possibly unreachable, shown in the user's words;
  - if the base case runs out of loop-free paths first, every reachable state was seen
    (the recurrence diameter), which proves the rest.

`auto` runs exhaustion while the reachable space is small and k-induction past it; `both`
runs both and cross-checks them.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from . import interp
from .deadline import Deadline
from .errors import InternalError, Stopped, UserError
from .kernel import Choice, Model, Op
from .spec import Spec
from .ts import Solver, TransitionSystem, Unrolling, Weakened, interruptible, labels, weaken
from .verify import AUTO_STATE_BUDGET, Violation, check_properties, replay, shortest
from .words import plural

if TYPE_CHECKING:
    from .engine_z3 import Search

METHODS = ("auto", "induction", "exhaustion", "both")
EXHAUSTION_BUDGET = AUTO_STATE_BUDGET  # states; as verify's auto engine
SMALL_SPACE = 20_000                # auto: exhaustion first up to this many states (about 3 s)
SAMPLE_STATES = 4000                # reachable states read for invariant candidates


@dataclass(frozen=True)
class Invariant:
    """A fact about one variable, or about a second one when the first has a given value;
    or (`counts`) a count: var equals the number of the listed variables that are not at
    their initial value (a refcount taken by each loaded module, say)."""
    text: str
    var: str
    values: tuple[int, ...]                   # var is one of these (when the guard holds)
    guard: tuple[str, int] | None = None      # (variable, value)
    counts: tuple[tuple[str, int], ...] = ()  # (variable, its initial value): var == #{differ}

    def holds(self, state: dict) -> bool:
        if self.counts:
            return int(state[self.var]) == sum(int(state[b]) != x for b, x in self.counts)
        if self.guard is not None and int(state[self.guard[0]]) != self.guard[1]:
            return True
        return int(state[self.var]) in self.values


@dataclass(frozen=True)
class Cti:
    """A counterexample to induction: k transitions that keep the property, then one that
    breaks it, from a state that satisfies every proved invariant."""
    k: int
    op: Op
    before: dict
    after: dict
    failed: tuple[Choice, ...]
    path: tuple[Op, ...]                      # the k operations
    excluded_by: tuple[str, ...]              # facts true in every sampled reachable state, false before


@dataclass(frozen=True)
class PropertyProof:
    property: str
    verdict: str                              # proved | violated | not proved | unknown
    method: str | None = None                 # k-induction | diameter | exhaustion | bmc
    k: int | None = None
    states: int | None = None                 # exhaustion: reachable states
    violation: Violation | None = None
    cti: Cti | None = None
    used: tuple[str, ...] = ()                # invariants the step case needed (an unsat core)
    note: str = ""


@dataclass(frozen=True)
class ProofResult:
    spec: Spec
    model: Model
    method: str
    max_k: int
    proofs: tuple[PropertyProof, ...]
    invariants: tuple[str, ...] = ()          # 1-inductive (Houdini)
    k_facts: tuple[str, ...] = ()             # k-inductive jointly with the properties, at k = facts_k
    facts_k: int | None = None
    candidates: int = 0
    sample: int = 0
    states: int | None = None
    diameter: int | None = None
    seconds: float = 0.0
    folded: bool = False                      # exhaustion folded rmmod into the next load (docs/design.md)

    @property
    def verdict(self) -> str:
        vs = [p.verdict for p in self.proofs]
        if "violated" in vs:
            return "violated"
        if all(v == "proved" for v in vs):
            return "proved"
        return "unknown" if "unknown" in vs else "not proved"

    @property
    def exit_code(self) -> int:
        return {"proved": 0, "violated": 1, "not proved": 3, "unknown": 3}[self.verdict]


# ------------------------------------------------------------------ the user's words

def describe(m: Model, var: str, value) -> str:
    """One variable's value in the words of the spec (kernel.Model.say)."""
    return m.say(var, value)


def say(m: Model, var: str, value) -> str:
    return m.say(var, value)


def _values_text(m: Model, var: str, values) -> str:
    opts = [say(m, var, x) for x in values]
    return opts[0] if len(opts) == 1 else "either " + " or ".join(opts)


def state_lines(m: Model, st: dict) -> list[str]:
    """The meaningful part of a state: phases, values, the listed patches' data, blocks."""
    return m.state_lines(st)


def diff_lines(m: Model, a: dict, b: dict) -> list[str]:
    """What changed between two states, variable by variable, in the user's words."""
    from . import report

    try:
        return report.changes(m, a, b)
    except (IndexError, KeyError):          # a state outside the model's ranges
        return [f"{say(m, v, a[v])} -> {say(m, v, b[v])}" for v in m.vars if a[v] != b[v]]


# ------------------------------------------------------------------ auxiliary invariants

def candidates(m: Model, names: list[str], sample: list[dict], deadline: Deadline | None = None) -> list[Invariant]:
    """Facts true in every sampled reachable state: each variable's values, and for each
    value of one variable, the values a second one takes alongside. Deterministic order.
    Quadratic in the variables: raises Stopped at the deadline."""
    deadline = deadline or Deadline()
    dom = {v: sorted({int(s[v]) for s in sample}) for v in names}
    full = {v: (2 if m.vars[v][0] == "b" else 1 << m.bits[v]) for v in names}
    out = []
    for v in names:
        if len(dom[v]) < full[v]:
            out.append(Invariant(f"{_values_text(m, v, dom[v])}", v, tuple(dom[v])))
    for a in names:
        deadline.check()
        for x in dom[a]:
            rows = [s for s in sample if int(s[a]) == x]
            for b in names:
                if b == a:
                    continue
                vals = sorted({int(s[b]) for s in rows})
                if len(vals) < len(dom[b]):
                    out.append(Invariant(f"when {say(m, a, x)}: {_values_text(m, b, vals)}", b, tuple(vals), (a, x)))
    return out + count_candidates(m, names, sample, dom, deadline)


COUNT_SOLUTIONS = 4                     # count facts tried per variable (Houdini keeps the inductive ones)


def count_candidates(m: Model, names: list[str], sample: list[dict], dom: dict[str, list[int]],
                     deadline: Deadline) -> list[Invariant]:
    """Count facts: an integer variable that is 0 initially and takes three or more values
    equals, in every sampled state, the number of some other variables that are not at their
    initial value (the count kept in a shadow variable and the livepatch modules loaded, when
    each module's init takes a reference and its exit puts it). The variables counted are
    found by Z3 over the distinct sampled rows (a 0/1 weight per variable, one pseudo-Boolean
    equation per row), at most COUNT_SOLUTIONS subsets per variable; a variable can be
    counted only if it is at its initial value whenever the count is 0."""
    import z3

    init = interp.initial(m)
    out = []
    for c in names:
        if m.vars[c][0] != "i" or int(init[c]) != 0 or len(dom[c]) < 3:
            continue
        deadline.check()
        pool = [b for b in names if b != c and any(int(s[b]) != int(init[b]) for s in sample)
                and all(int(s[b]) == int(init[b]) for s in sample if int(s[c]) == 0)]
        if not pool:
            continue
        rows = {(int(s[c]), tuple(int(s[b]) != int(init[b]) for b in pool)) for s in sample}
        w = [z3.Bool(f"count#{b}") for b in pool]
        solver = z3.Solver()
        solver.set("timeout", max(1, min(5000, deadline.ms() or 5000)))
        for n, differ in rows:
            solver.add(z3.PbEq([(wi, 1) for wi, d in zip(w, differ, strict=True) if d] or [(z3.BoolVal(False), 1)], n))
        for _ in range(COUNT_SOLUTIONS):
            if solver.check() != z3.sat:
                break
            model = solver.model()
            chosen = [b for b, wi in zip(pool, w, strict=True) if z3.is_true(model.eval(wi, model_completion=True))]
            solver.add(z3.Or(*[wi != model.eval(wi, model_completion=True) for wi in w]))
            if not chosen:
                continue
            noun = say(m, c, 0).removesuffix(" 0")
            out.append(Invariant(f"{noun} the number of these that hold: "
                                 + ", ".join(f"not ({say(m, b, init[b])})" for b in chosen),
                                 c, (), counts=tuple((b, int(init[b])) for b in chosen)))
    return out


class _FactsBase:
    """The base case of the k-inductive facts, deepened on demand: which facts no state
    reachable within `depth` operations breaks (bounded model checking from the initial
    state on loop-free paths, without the symmetry breaking: a fact names its patches; a
    fact broken at some depth is dropped for good)."""

    def __init__(self, ind: _Inductor, facts: list[Invariant]):
        self.ind, self.facts = ind, facts
        self.solver = Solver(ind.deadline)
        self.path = Unrolling(ind.ts, self.solver, ind.ts.initial(), ("#b{}", "#bt{}"))
        self.active = [i for i, f in enumerate(facts) if f.holds(ind.m.init)]
        self.exhausted = False              # no longer loop-free path: every reachable state seen

    def upto(self, depth: int) -> set[int] | None:
        """The facts no state reachable within `depth` operations breaks (None: the solver
        stopped, `self.solver.why` says why)."""
        z3 = self.ind.z3
        while len(self.path) < depth and not self.exhausted:
            self.path.extend()
            t = len(self.path)
            negated = {i: z3.Not(self.ind.term(self.facts[i], self.path.states[t])) for i in self.active}
            out = weaken(self.solver, self.active, negated.__getitem__, labels(f"base#{t}#"))
            if out.verdict == "unknown":
                return None
            self.active = list(out.kept)
            if self.solver.check() == "unsat":
                self.exhausted = True
        return set(self.active)


@dataclass(frozen=True)
class StepCase:
    """The step case of k-induction at the smallest k that closes it, or at the largest
    tried when none does."""
    verdict: Literal["proved", "cti", "unknown"]
    k: int
    used: tuple[str, ...] = ()                # proved: the invariants and facts of an unsat core
    facts: tuple[Invariant, ...] = ()         # proved: the facts kept (k-inductive jointly with the goal)
    path: tuple[tuple[Op, dict], ...] = ()    # cti: the k transitions (operation, choices)
    before: dict | None = None                # cti: the state before the last transition
    after: dict | None = None                 # cti: the state after it
    reason: str = ""                          # unknown: why


class _StepPath:
    """The step case's solver: a path grown backwards from its last transition, which must
    break a goal property (or make a fact false); the transitions before it keep the
    premise; every pre-state satisfies the invariants (under the literals `use#i`) and the
    facts (`fact#i`), and the pre-states are pairwise distinct (Unrolling)."""

    def __init__(self, ind: _Inductor, goal: list[str], premise: list[str], invs: list[Invariant],
                 facts: list[Invariant]):
        z3, ts = ind.z3, ind.ts
        self.ind, self.premise, self.invs, self.facts = ind, premise, invs, facts
        self.solver = Solver(ind.deadline)
        self.lits = [z3.Bool(f"use#{i}") for i in range(len(invs))]
        self.flits = [z3.Bool(f"fact#{i}") for i in range(len(facts))]
        self.path = Unrolling(ts, self.solver, ts.fresh("#e0"), ("#e{}", "#t{}"))
        last = self.path.prepend()
        self.goal = z3.Or(*[last.viol[p] for p in goal]) if goal else z3.BoolVal(False)
        self.after = {i: ind.term(f, self.path.states[-1]) for i, f in enumerate(facts)}
        self._assume(self.path.states[0])

    def _assume(self, st: dict) -> None:
        for lit, inv in zip(self.lits, self.invs, strict=True):
            self.solver.add(self.ind.z3.Implies(lit, self.ind.term(inv, st)))
        for lit, f in zip(self.flits, self.facts, strict=True):
            self.solver.add(self.ind.z3.Implies(lit, self.ind.term(f, st)))

    def deepen(self) -> None:
        """One more transition in front, keeping the premise."""
        self.path.prepend(keeps=self.premise)
        self._assume(self.path.states[0])

    def close(self, active: list[int], names: Iterator[str]) -> Weakened:
        """Drop the active facts a model makes false after the path until none is (the
        goal then holds too: inductive), or a model breaks the goal alone (broken)."""
        z3 = self.ind.z3
        return weaken(self.solver, active, lambda i: z3.Not(self.after[i]), names,
                      goal=self.goal, assume=self.lits, lits=self.flits)

    def used(self, kept: tuple[int, ...]) -> tuple[str, ...]:
        """The invariants and facts of the unsat core of the last (unsatisfiable) check."""
        core = {str(c) for c in self.solver.unsat_core()}
        return (tuple(inv.text for lit, inv in zip(self.lits, self.invs, strict=True) if str(lit) in core)
                + tuple(self.facts[i].text for i in kept if str(self.flits[i]) in core))

    def cti(self, k: int, model) -> StepCase:
        raw = self.path.read(model)
        assert raw.states is not None           # a model read off the path fixes every state
        return StepCase("cti", k, path=tuple(zip(raw.ops, raw.choices, strict=True)),
                        before=self.ind.ts.read(model, self.path.states[-2]), after=raw.states[-1])


class _Inductor:
    """k-induction for one spec over its transition system (built once: Houdini, the base
    cases and the step cases all use it)."""

    def __init__(self, model: Model, deadline: Deadline | None = None):
        from .engine_z3 import Z3Engine

        self.m = model
        self.deadline = deadline or Deadline()
        self.ts = TransitionSystem(model, self.deadline)
        self.bmc = Z3Engine(model, deadline=self.deadline, ts=self.ts)     # the base case
        self.z3 = self.ts.z3

    def term(self, inv: Invariant, st: dict):
        ts, z3 = self.ts, self.z3
        if inv.counts:
            differ = [(z3.Not(ts.equals(st, b, x)), 1) for b, x in inv.counts]
            return z3.Or(*[z3.And(ts.equals(st, inv.var, k), z3.PbEq(differ, k)) for k in range(len(differ) + 1)])
        body = self.z3.Or(*[ts.equals(st, inv.var, x) for x in inv.values])
        return body if inv.guard is None else self.z3.Implies(ts.equals(st, *inv.guard), body)

    def sample(self) -> list[dict]:
        from .engine_explicit import ExplicitEngine

        eng = ExplicitEngine(self.m, max_states=SAMPLE_STATES, keep_graph=True)
        eng.run(1 << 30, [], timeout=self.deadline)
        self.deadline.check()
        return [eng.values[k] for k in sorted(eng.values, key=lambda k: (eng.level[k], k))]

    def houdini(self, cands: list[Invariant]) -> list[Invariant] | None:
        """The largest subset of cands whose conjunction is inductive (None: out of time)."""
        z3, ts = self.z3, self.ts
        solver = Solver(self.deadline)
        path = Unrolling(ts, solver, ts.fresh("#h0"), ("#h{}", "#h"))
        path.extend()
        pre, post = path.states
        lits = [z3.Bool(f"inv#{i}") for i in range(len(cands))]
        broken = [z3.Bool(f"broken#{i}") for i in range(len(cands))]     # candidate i is false after T
        for lit, brk, c in zip(lits, broken, cands, strict=True):
            solver.add(z3.Implies(lit, self.term(c, pre)), brk == z3.Not(self.term(c, post)))
        out = weaken(solver, range(len(cands)), lambda i: broken[i], labels("houdini#"), lits=lits)
        return None if out.verdict == "unknown" else [cands[i] for i in out.kept]

    def step_case(self, goal: list[str], premise: list[str], invs: list[Invariant], max_k: int,
                  facts: Sequence[Invariant] = (), base: _FactsBase | None = None) -> StepCase:
        """Smallest k <= max_k whose step case is unsatisfiable: k transitions from a state
        satisfying the invariants, pre-states pairwise distinct, no property of `premise`
        broken on the first k-1 and every fact of `facts` true on their pre-states; then
        some property of `goal` broken on the k-th, or some fact false after it. A fact
        false there is dropped and the same k is tried again (k-inductive Houdini); each
        k starts again from every fact that `base` (their base case) keeps to depth k-1."""
        goal = [p for p in goal if p in self.ts.violation]
        premise = [p for p in premise if p in self.ts.violation]
        facts = list(facts)
        if not goal and not facts:
            return StepCase("proved", 1)          # nothing in the template can break them
        case = _StepPath(self, goal, premise, invs, facts)
        names = labels("bad#")
        for k in range(1, max_k + 1):
            if k > 1:
                case.deepen()
            kept = base.upto(k - 1) if base is not None else set(range(len(facts)))
            if kept is None:
                assert base is not None                 # (only a base case stops)
                return StepCase("unknown", k, reason=base.solver.why)
            out = case.close(sorted(kept), names)     # a longer k may keep facts a shorter one lost
            if out.verdict == "inductive":
                return StepCase("proved", k, case.used(out.kept), tuple(facts[i] for i in out.kept))
            if out.verdict == "unknown":
                return StepCase("unknown", k, reason=out.reason)
        return case.cti(max_k, out.model)        # a goal property still breaks at max_k


def _violation(model: Model, prop: str, depth: int, raw) -> Violation:
    return Violation(prop, depth, replay(model, raw.ops, raw.choices, raw.states, prop))


@dataclass
class _Steps:
    """The step cases of the properties bounded model checking did not break."""
    proved: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)   # property -> (k, used)
    last: dict[str, StepCase] = field(default_factory=dict)     # the last step case of each one not proved
    joint: bool = False                       # proved all together (more than one)
    joint_k: int | None = None
    facts: tuple[Invariant, ...] = ()         # the k-inductive facts of the joint proof


def _step_cases(ind: _Inductor, rest: list[str], invs: list[Invariant], max_k: int, base: _FactsBase) -> _Steps:
    """Joint step case (with the droppable facts), then property by property."""
    out = _Steps()
    if not rest:
        return out
    sc = ind.step_case(rest, rest, invs, max_k, base.facts, base)
    if sc.verdict == "proved":
        out.proved = {p: (sc.k, sc.used) for p in rest}
        out.joint, out.joint_k, out.facts = len(rest) > 1, sc.k, sc.facts
        return out
    if sc.verdict == "unknown" or len(rest) == 1:
        out.last = {p: sc for p in rest}
        return out
    # one by one (the joint case was about several): the same premises, the proved ones
    # added; the facts only ever help (a fact that blocks the goal's closure is dropped)
    changed = True
    while changed:
        changed = False
        for p in rest:
            if p in out.proved:
                continue
            sc = out.last[p] = ind.step_case([p], [p, *out.proved], invs, max_k)
            if sc.verdict == "proved":
                out.proved[p] = (sc.k, sc.used)
                changed = True
    return out


@dataclass(frozen=True)
class Induction:
    """The k-induction route's answer."""
    proofs: dict[str, PropertyProof]
    invariants: tuple[str, ...] = ()          # 1-inductive (Houdini)
    k_facts: tuple[str, ...] = ()             # k-inductive jointly with the properties, at k = facts_k
    facts_k: int | None = None
    candidates: int = 0
    sample: int = 0


def induction(model: Model, props: tuple[str, ...], max_k: int, deadline: Deadline) -> Induction:
    """_induction, stopped by the deadline (or Ctrl-C) wherever it is: then every property
    it was asked about is unknown."""
    try:
        with interruptible(deadline):
            return _induction(model, props, max_k, deadline)
    except Stopped as e:
        return Induction({p: PropertyProof(p, "unknown", note=f"k-induction: {e.reason}") for p in props})


def _induction(model: Model, props: tuple[str, ...], max_k: int, deadline: Deadline) -> Induction:
    """The k-induction route.

    1. Auxiliary invariants (Houdini over sampled candidates).
    2. Base case: bounded model checking to the spec's depth; what it breaks is violated
       (replayed).
    3. Step case, all remaining properties jointly, with the facts Houdini dropped as
       droppable extra goals; then one by one, with the properties already proved as
       extra premises, until nothing more closes.
    4. The base case is deepened to the largest k used (a violation found there voids the
       step proofs: they are redone without that property) and, for what is still not
       proved, to --max-k."""
    try:
        ind = _Inductor(model, deadline)
        sample = ind.sample()
        cands = candidates(model, list(ind.ts.names), sample, deadline)
    except Stopped as e:
        return Induction({p: PropertyProof(p, "unknown", note=f"{e.reason} while preparing k-induction (the transition "
                                                              f"template, the auxiliary invariants' candidates)")
                          for p in props})
    invs = ind.houdini(cands)
    if invs is None:
        return Induction({p: PropertyProof(p, "unknown", note=f"{deadline.reason} while proving the auxiliary invariants")
                          for p in props}, candidates=len(cands), sample=len(sample))
    texts = tuple(i.text for i in invs)
    dropped = [c for c in cands if c not in invs]
    r = _base_and_steps(ind, props, invs, max_k, _FactsBase(ind, dropped))
    if r.stopped:
        return Induction(r.out, texts, candidates=len(cands), sample=len(sample))
    unproved = [p for p in r.rest if p not in r.steps.proved]
    if unproved and max_k > r.depth and r.search.complete_at is None:
        deeper = ind.bmc.run(max_k, unproved)
        _record(model, deeper, unproved, r.out)
        if deeper.complete_at is not None:
            r.search = deeper
    rest = [p for p in r.rest if p not in r.out]
    for p in rest:
        r.out[p] = _verdict(model, p, r, len(rest), dropped, max_k)
    return Induction(r.out, texts, tuple(f.text for f in r.steps.facts), r.steps.joint_k, len(cands), len(sample))


@dataclass
class _Rounds:
    """Where the base and step cases ended."""
    out: dict[str, PropertyProof]             # violated (and unknown, when the base case stopped)
    search: Search                            # the base case (its complete_at proves the rest)
    rest: list[str] = field(default_factory=list)   # the properties the base case did not break
    steps: _Steps = field(default_factory=_Steps)
    depth: int = 0                            # the base case covers this many operations
    stopped: bool = False                     # the base case stopped early: out says so


def _record(model: Model, search: Search, props: Sequence[str], out: dict[str, PropertyProof]) -> None:
    """What a base case broke, replayed."""
    for p in props:
        if p in search.found:
            d, raw = search.found[p]
            out[p] = PropertyProof(p, "violated", "bmc", violation=_violation(model, p, d, raw))


def _base_and_steps(ind: _Inductor, props: tuple[str, ...], invs: list[Invariant], max_k: int,
                    base: _FactsBase) -> _Rounds:
    """Base case to the spec's depth, then the step cases; the base case deepened to the
    largest k they used, and everything redone while that finds a violation."""
    out: dict[str, PropertyProof] = {}
    depth = ind.m.spec.depth
    while True:
        search = ind.bmc.run(depth, list(props))
        _record(ind.m, search, props, out)
        if search.unknown:
            for p in props:
                out.setdefault(p, PropertyProof(p, "unknown", note=f"base case: {search.unknown} after depth "
                                                                  f"{search.depth_done}"))
            return _Rounds(out, search, stopped=True)
        rest = [p for p in props if p not in out]
        steps = _step_cases(ind, rest, invs, max_k, base)
        need = max([k for k, _ in steps.proved.values()], default=0)
        if need <= depth or search.complete_at is not None:
            return _Rounds(out, search, rest, steps, depth)
        deeper = ind.bmc.run(need, rest)
        if deeper.unknown:
            for p in rest:
                out[p] = PropertyProof(p, "unknown", note=f"base case: {deeper.unknown} after depth "
                                                          f"{deeper.depth_done}")
            return _Rounds(out, search, stopped=True)
        depth = need
        if not deeper.found:
            return _Rounds(out, search, rest, steps, depth)
        # a violation within the k used voids the step proofs: redo them without it


def _verdict(model: Model, p: str, r: _Rounds, holding: int, dropped: list[Invariant], max_k: int) -> PropertyProof:
    """A property the base case did not break: proved by k-induction or by the diameter,
    else the last step case's counterexample to induction (or why it is unknown).
    `holding`: how many properties are in that case."""
    if p in r.steps.proved:
        k, used = r.steps.proved[p]
        if k > max_k:
            raise InternalError("step case beyond the base case")
        return PropertyProof(p, "proved", "k-induction", k=k, used=used,
                             note=f"jointly with the other {plural(holding - 1, 'property')} that "
                                  f"hold{'s' if holding == 2 else ''}" if r.steps.joint else "")
    if r.search.complete_at is not None:
        return PropertyProof(p, "proved", "diameter", k=r.search.complete_at,
                             note=f"no loop-free path of {plural(r.search.complete_at + 1, 'operation')} exists "
                                  f"from the initial state")
    sc = r.steps.last[p]
    if sc.verdict == "unknown":
        return PropertyProof(p, "unknown", note=f"step case at k = {sc.k}: {sc.reason}")
    return PropertyProof(p, "not proved", cti=_cti(model, p, sc, dropped))


def _cti(model: Model, p: str, sc: StepCase, dropped: list[Invariant]) -> Cti:
    """The counterexample to induction of a failed step case; its last transition, run by
    the interpreter, must agree with the solver."""
    op, chs = sc.path[-1]
    before, after = sc.before, sc.after
    assert before is not None and after is not None        # (a cti has both states)
    ran = interp.apply(model, before, op, chs, record=False)
    refused = interp.refusal(model, before, op)
    differ = sorted(v for v in after if ran.state[v] != after[v])
    if refused is not None or differ or p not in {q for q, _ in ran.violations}:
        why = (f"refused: {refused}" if refused is not None else
               f"differs in {', '.join(f'{v} (solver {after[v]}, interpreter {ran.state[v]})' for v in differ[:4])}"
               if differ else f"the interpreter breaks {sorted({q for q, _ in ran.violations})}")
        raise InternalError(f"the counterexample to induction for {p} ('{op}') does not replay in the "
                            f"interpreter: {why}")
    excluded = tuple(c.text for c in dropped if not c.holds(before))[:3]
    return Cti(sc.k, op, before, after, tuple(ran.failed_choices), tuple(o for o, _ in sc.path), excluded)


class Exhaustion(NamedTuple):
    """The explicit route's answer."""
    proofs: dict[str, PropertyProof]
    states: int | None                        # the reachable states, when all were seen
    diameter: int | None
    folded: bool = False                      # rmmod folded into the next load (docs/design.md)


def exhaustion(model: Model, props: tuple[str, ...], deadline: Deadline, budget: int = 0) -> Exhaustion:
    """The explicit route: the whole reachable state space, when it fits the budget."""
    from .engine_explicit import ExplicitEngine

    eng = ExplicitEngine(model, max_states=budget or EXHAUSTION_BUDGET, fold_rmmod=True)
    search = eng.run(1 << 30, list(props), timeout=deadline)
    if search.found:                        # the shortest traces, without the fold
        search = shortest(model, search, 1 << 30, budget or EXHAUSTION_BUDGET, deadline)
    folded = "each rmmod folded into the next load" if eng.fold else ""
    out = {}
    for p in props:
        if p in search.found:
            d, raw = search.found[p]
            out[p] = PropertyProof(p, "violated", "exhaustion", states=eng.states, violation=_violation(model, p, d, raw))
        elif search.complete_at is not None:
            out[p] = PropertyProof(p, "proved", "exhaustion", states=eng.states, note=folded)
        else:
            out[p] = PropertyProof(p, "unknown", note=f"exhaustion: {search.unknown}")
    complete = search.complete_at is not None
    return Exhaustion(out, eng.states if complete else None, eng.diameter if complete else None, bool(eng.fold))


def prove(spec: Spec, *, properties: list[str] | None = None, max_k: int = 12,
          timeout: Deadline | float | None = None, method: str = "auto") -> ProofResult:
    """auto: exhaustion first while the reachable space is small (SMALL_SPACE states), then
    k-induction for what it could not settle; induction / exhaustion: one route only; both:
    both routes on every property, and a disagreement (proved vs violated) is a loud error."""
    model = Model(spec)
    props = check_properties(properties, model)
    if "recoverable" in props:
        raise UserError("recoverable is not a safety property, prove cannot induct on it; "
                        "use `klpmodel verify --property recoverable` (it explores the whole state space)")
    if max_k < 1:
        raise UserError(f"--max-k must be at least 1, not {max_k}; e.g. --max-k 12")
    if method not in METHODS:
        raise UserError(f"unknown method '{method}'; use one of: {', '.join(METHODS)}")
    deadline = Deadline.of(timeout)
    start = deadline.elapsed()
    ex = Exhaustion({}, None, None)
    if method in ("auto", "exhaustion", "both"):
        ex = exhaustion(model, props, deadline, SMALL_SPACE if method == "auto" else EXHAUSTION_BUDGET)
    todo = props if method in ("induction", "both") else \
        tuple(p for p in props if method == "auto" and ex.proofs[p].verdict == "unknown")
    ind = Induction({})
    if todo and deadline.expired():          # no time left for k-induction: say so, do not start it
        ind = Induction({p: PropertyProof(p, "unknown", note=f"k-induction not tried: {deadline.reason}") for p in todo})
    elif todo:
        ind = induction(model, todo, max_k, deadline)
    proofs = {p: _combine(p, ex.proofs.get(p), ind.proofs.get(p), max_k) for p in props}
    return ProofResult(spec, model, method, max_k, tuple(proofs[p] for p in props), ind.invariants, ind.k_facts,
                       ind.facts_k, ind.candidates, ind.sample, ex.states, ex.diameter, deadline.elapsed() - start,
                       ex.folded)


def _combine(p: str, e: PropertyProof | None, i: PropertyProof | None, max_k: int) -> PropertyProof:
    """One property's verdict from the routes that ran (e: exhaustion, i: k-induction)."""
    if i is None:
        assert e is not None                    # (at least one route ran)
        return e
    if e is None or e.verdict == "unknown":
        return i
    if {e.verdict, i.verdict} == {"proved", "violated"}:
        raise InternalError(f"{p}: exhaustion says {e.verdict}, k-induction says {i.verdict}")
    if i.verdict == "violated":
        assert i.violation is not None and e.violation is not None
        if i.violation.depth != e.violation.depth:
            raise InternalError(f"{p}: shortest violations differ: {i.violation.depth} (bounded model checking) "
                                f"and {e.violation.depth} (exhaustion)")
        return i
    if i.verdict == "proved":                # both proved: keep k and the state count
        return PropertyProof(p, "proved", i.method, i.k, e.states, used=i.used, note=i.note)
    # k-induction did not close; exhaustion settles it
    return PropertyProof(p, e.verdict, e.method, e.k, e.states, e.violation, i.cti,
                         note=f"k-induction up to k = {max_k} did not close" +
                         ("; its counterexample to induction is unreachable" if e.verdict == "proved" else ""))


# ------------------------------------------------------------------ rendering

_METHOD_TEXT = {
    "k-induction": "k-induction",
    "diameter": "bounded model checking to the recurrence diameter",
    "exhaustion": "exhaustion",
    "bmc": "bounded model checking",
}


def _headline(r: ProofResult, pp: PropertyProof) -> str:
    if pp.verdict == "proved":
        if pp.method == "k-induction":
            how = f"by k-induction, k = {pp.k}"
            if pp.used:
                how += ", with the auxiliary invariants"
            if pp.note:
                how += f" ({pp.note})"
        elif pp.method == "diameter":
            how = f"by bounded model checking: {pp.note}"
        else:
            how = f"by exhaustion of {pp.states} reachable states" + (f" ({pp.note})" if pp.note else "")
        if pp.method != "exhaustion" and pp.states is not None:
            how += f"; and by exhaustion of {pp.states} reachable states"
        return f"PROVED {pp.property} {how}"
    if pp.verdict == "violated":
        assert pp.method is not None
        return f"{pp.property}: violated, found by {_METHOD_TEXT[pp.method]} (trace replayed by the interpreter):"
    if pp.verdict == "not proved":
        assert pp.cti is not None
        return f"NOT PROVED {pp.property}: the step case still fails at k = {pp.cti.k}"
    return f"UNKNOWN {pp.property}: {pp.note}"


def cti_lines(m: Model, pp: PropertyProof, ninv: int) -> list[str]:
    c = pp.cti
    assert c is not None
    out = [f"  counterexample to induction: {c.k - 1} operation{'s' if c.k != 2 else ''} "
           f"that keep{'s' if c.k == 2 else ''} "
           f"{pp.property}, then one that breaks it, from a state that satisfies the {ninv} auxiliary invariants",
           "  state before:"]
    out += [f"    {line}" for line in state_lines(m, c.before)]
    out.append(f"  operation: {c.op}" + (" (" + "; ".join(f"'{k.text}' fails, line {k.line}" for k in c.failed) + ")"
                                         if c.failed else ""))
    out.append("  changed: " + "; ".join(diff_lines(m, c.before, c.after)))
    out.append(f"  operations leading to it: {'; '.join(str(o) for o in c.path[:-1]) or '(none)'}")
    out.append("  This pair of states need not be reachable from the initial state: the induction only knows "
               "the invariants above, and the state before may break a fact that holds in every reachable state.")
    if c.excluded_by:
        out.append("  Facts true in every sampled reachable state that the state before breaks (not proved "
                   "inductive; an invariant like one of them would rule it out):")
        out += [f"    - {t}" for t in c.excluded_by]
    return out


def text(r: ProofResult) -> str:
    from . import report

    m, spec = r.model, r.spec
    out = [f"klpmodel prove {spec.path}: {spec.name}"]
    counts = {v: sum(1 for p in r.proofs if p.verdict == v) for v in ("proved", "violated", "not proved", "unknown")}
    out.append(f"verdict: {verdict_word(r.verdict)}: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
    ninv = len(r.invariants) + len(r.k_facts)
    out.append(f"kernel {spec.kernel}, method {r.method}, --max-k {r.max_k}"
               + (f"; {ninv} auxiliary invariant{'s' if ninv != 1 else ''} proved, of {r.candidates} candidate "
                  f"fact{'s' if r.candidates != 1 else ''} read off {r.sample} reachable state{'s' if r.sample != 1 else ''}"
                  if r.sample else "")
               + (f"; exhaustion: {r.states} reachable states{' (each rmmod folded into the next load)' if r.folded else ''}, "
                  f"diameter {r.diameter}" if r.states is not None else ""))
    for pp in r.proofs:
        out.append("")
        out.append(_headline(r, pp))
        if pp.violation is not None:
            out += ["  " + line if line else "" for line in report.violation_text(m, pp.violation)]
        if pp.verdict == "not proved":
            out += cti_lines(m, pp, len(r.invariants))
    if r.invariants or r.k_facts:
        out += ["", "auxiliary invariants (true in the initial state, proved inductive over the transition relation; "
                    "--format json lists them all):",
                f"  e.g. {next((t for t in r.invariants + r.k_facts if t.startswith('when ')), (r.invariants + r.k_facts)[0])}"]
    out += ["", f"verdict: {verdict_word(r.verdict)}"]
    return "\n".join(out) + "\n"


def verdict_word(v: str) -> str:
    """A verdict as verify says it: a property broken is a `violation` (the proofs say
    `violated` of one property)."""
    return "violation" if v == "violated" else v


def to_json(r: ProofResult) -> dict:
    from . import report

    m = r.model
    props = []
    for pp in r.proofs:
        entry: dict = {"property": pp.property, "verdict": verdict_word(pp.verdict), "method": pp.method}
        if pp.k is not None:
            entry["k"] = pp.k
        if pp.states is not None:
            entry["states"] = pp.states
        if pp.used:
            entry["invariants_used"] = list(pp.used)
        if pp.note:
            entry["note"] = pp.note
        if pp.violation is not None:
            entry["violation"] = report.violation_json(m, pp.violation)
        if pp.cti is not None:
            c = pp.cti
            entry["counterexample_to_induction"] = {
                "k": c.k, "operations": [str(o) for o in c.path],
                "before": state_lines(m, c.before), "operation": str(c.op),
                "changes": diff_lines(m, c.before, c.after),
                "excluded_by": list(c.excluded_by)}
        props.append(entry)
    # format 2: the verdict of a broken property is "violation", as in verify's report (format 1
    # said "violated")
    return {"format": 2, "command": "prove", "verdict": verdict_word(r.verdict), "method": r.method, "max_k": r.max_k,
            "properties": props,
            "invariants": list(r.invariants), "k_inductive_facts": list(r.k_facts), "facts_k": r.facts_k,
            "candidates": r.candidates, "sample": r.sample,
            "states": r.states, "diameter": r.diameter, "folded": r.folded,
            "spec": {"path": r.spec.path, "name": r.spec.name, "kernel": r.spec.kernel, "sha256": r.spec.digest}}


def json_text(r: ProofResult) -> str:
    import json

    return json.dumps(to_json(r), indent=2) + "\n"
