"""`klpmodel prove`: unbounded verdicts for a spec, per property (docs/proofs.md).

Two routes, both over kernel.step (nothing here restates a kernel rule):

* **exhaustion**: the explicit engine explores the whole reachable state space (it is
  finite); a property no transition breaks holds for sequences of any length.
* **k-induction** on the Z3 transition template of engine_z3:
  - auxiliary invariants: candidate facts about one variable, or about a second one when
    the first has a given value, read off states the explicit engine reaches (a sample,
    never trusted); those whose conjunction Z3 proves inductive over the template are
    kept (Houdini; the initial state is in the sample, so they hold there);
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

import time
from dataclasses import dataclass

from . import interp
from .deadline import Deadline
from .errors import InternalError, Stopped, UserError
from .kernel import Model, Op
from .spec import Spec
from .verify import AUTO_STATE_BUDGET, Violation, check_properties, replay
from .words import plural

METHODS = ("auto", "induction", "exhaustion", "both")
EXHAUSTION_BUDGET = AUTO_STATE_BUDGET  # states; as verify's auto engine
SMALL_SPACE = 20_000                # auto: exhaustion first up to this many states (about 3 s)
SAMPLE_STATES = 4000                # reachable states read for invariant candidates


@dataclass(frozen=True)
class Invariant:
    """A fact about one variable, or about a second one when the first has a given value."""
    text: str
    var: str
    values: tuple[int, ...]                   # var is one of these (when the guard holds)
    guard: tuple[str, int] | None = None      # (variable, value)

    def holds(self, state: dict) -> bool:
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
    failed: tuple[tuple, ...]
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
    return out


class _FactsBase:
    """The base case of the k-inductive facts, deepened on demand: which facts no state
    reachable within `depth` operations breaks (bounded model checking from the initial
    state on loop-free paths; a fact broken at some depth is dropped for good)."""

    def __init__(self, ind: _Inductor, facts: list[Invariant]):
        self.ind, self.facts = ind, facts
        z3, eng = ind.z3, ind.eng
        self.solver = z3.SolverFor("QF_BV")
        self.states = [{v: eng._value(v, ind.m.init[v]) for v in eng.names}]
        self.active = [i for i, f in enumerate(facts) if f.holds(ind.m.init)]
        self.depth = 0
        self.exhausted = False              # no longer loop-free path: every reachable state seen

    def upto(self, depth: int) -> set[int] | None:
        z3, eng, solver = self.ind.z3, self.ind.eng, self.solver
        while self.depth < depth and not self.exhausted:
            t = self.depth = self.depth + 1
            self.states.append(eng.state_consts(f"#b{t}"))
            trans, _, _, _ = eng.instance(self.states[t - 1], self.states[t], f"#bt{t}")
            solver.add(trans)
            for i in range(t - 1):
                solver.add(eng.distinct(self.states[i], self.states[t - 1]))
            terms = {i: self.ind.term(self.facts[i], self.states[t]) for i in self.active}
            rnd = 0
            while self.active:
                if not self.ind._left(solver):
                    return None
                rnd += 1
                q = z3.Bool(f"base#{t}#{rnd}")
                solver.add(z3.Implies(q, z3.Or(*[z3.Not(terms[i]) for i in self.active])))
                r = solver.check(q)
                if r == z3.unsat:
                    break
                if r == z3.unknown:
                    return None
                model = solver.model()
                self.active = [i for i in self.active if z3.is_true(model.eval(terms[i], model_completion=True))]
            if solver.check() == z3.unsat:
                self.exhausted = True
        return set(self.active)


class _Inductor:
    """k-induction for one spec over the Z3 template."""

    def __init__(self, model: Model, deadline: Deadline | float | None = None):
        from .engine_z3 import Z3Engine

        deadline = Deadline.of(deadline)
        self.m = model
        self.eng = Z3Engine(model, deadline=deadline)
        self.z3 = self.eng.z3
        self.deadline = deadline

    def _left(self, solver) -> bool:
        if self.deadline.expired():
            return False
        if self.deadline.ms() is not None:
            solver.set("timeout", self.deadline.ms())
        return True

    def term(self, inv: Invariant, st: dict):
        z3, eng = self.z3, self.eng

        def is_(var, x):
            c = st[var]
            return c if (eng.m.vars[var][0] == "b" and x) else (z3.Not(c) if eng.m.vars[var][0] == "b"
                                                                  else c == x)
        body = z3.Or(*[is_(inv.var, x) for x in inv.values])
        return body if inv.guard is None else z3.Implies(is_(*inv.guard), body)

    def sample(self) -> list[dict]:
        from .engine_explicit import ExplicitEngine

        eng = ExplicitEngine(self.m, max_states=SAMPLE_STATES, keep_graph=True)
        eng.run(1 << 30, [], timeout=self.deadline)
        self.deadline.check()
        return [eng.values[k] for k in sorted(eng.values, key=lambda k: (eng.level[k], k))]

    def houdini(self, cands: list[Invariant]) -> list[Invariant] | None:
        """The largest subset of cands whose conjunction is inductive (None: out of time)."""
        z3, eng = self.z3, self.eng
        pre, post = eng.state_consts("#h0"), eng.state_consts("#h1")
        trans, _, _, _ = eng.instance(pre, post, "#h")
        solver = z3.SolverFor("QF_BV")
        solver.add(trans)
        lits = [z3.Bool(f"inv#{i}") for i in range(len(cands))]
        broken = [z3.Bool(f"broken#{i}") for i in range(len(cands))]     # candidate i is false after T
        for lit, brk, c in zip(lits, broken, cands, strict=True):
            solver.add(z3.Implies(lit, self.term(c, pre)), brk == z3.Not(self.term(c, post)))
        active = list(range(len(cands)))
        rounds = 0
        while active:
            if not self._left(solver):
                return None
            rounds += 1
            q = z3.Bool(f"houdini#{rounds}")
            solver.add(z3.Implies(q, z3.Or(*[broken[i] for i in active])))
            r = solver.check(*[lits[i] for i in active], q)
            if r == z3.unsat:
                break
            if r == z3.unknown:
                return None
            model = solver.model()
            active = [i for i in active if not z3.is_true(model.eval(broken[i], model_completion=True))]
        return [cands[i] for i in active]

    def step_case(self, goal: list[str], premise: list[str], invs: list[Invariant], max_k: int,
                  facts: list[Invariant] = (), base: _FactsBase | None = None):
        """Smallest k <= max_k whose step case is unsatisfiable: k transitions from a state
        satisfying the invariants, pre-states pairwise distinct, no property of `premise`
        broken on the first k-1 and every fact of `facts` true on their pre-states; then
        some property of `goal` broken on the k-th, or some fact false after it. A fact
        false there is dropped and the same k is tried again (k-inductive Houdini); each
        k starts again from every fact that `base` (their base case) keeps to depth k-1.
        Returns ('proved', k, (invariants used, facts kept)), ('cti', k, (path, before,
        after)) or ('unknown', k, reason)."""
        z3, eng = self.z3, self.eng
        goal = [p for p in goal if p in eng.viol]
        premise = [p for p in premise if p in eng.viol]
        facts = list(facts)
        if not goal and not facts:
            return "proved", 1, ((), ())          # nothing in the template can break them
        solver = z3.SolverFor("QF_BV")
        lits = [z3.Bool(f"use#{i}") for i in range(len(invs))]
        flits = [z3.Bool(f"fact#{i}") for i in range(len(facts))]
        active = list(range(len(facts)))
        # states from the end: ends[0] is after the last transition, ends[j] before it
        ends = [eng.state_consts("#e0"), eng.state_consts("#e1")]
        steps = []
        trans, viol, op, chs = eng.instance(ends[1], ends[0], "#t1")
        solver.add(trans)
        steps.append((op, chs))
        goal_bad = z3.Or(*[viol[p] for p in goal]) if goal else z3.BoolVal(False)
        last = {i: self.term(f, ends[0]) for i, f in enumerate(facts)}

        def assume(st):
            for lit, inv in zip(lits, invs, strict=True):
                solver.add(z3.Implies(lit, self.term(inv, st)))
            for lit, f in zip(flits, facts, strict=True):
                solver.add(z3.Implies(lit, self.term(f, st)))
        assume(ends[1])
        rnd = 0
        for k in range(1, max_k + 1):
            if k > 1:           # one more transition in front, keeping the premise
                ends.append(eng.state_consts(f"#e{k}"))
                trans, viol, op, chs = eng.instance(ends[k], ends[k - 1], f"#t{k}")
                solver.add(trans)
                solver.add(*[z3.Not(viol[p]) for p in premise])
                steps.append((op, chs))
                for j in range(1, k):
                    solver.add(eng.distinct(ends[k], ends[j]))
                assume(ends[k])
            kept = base.upto(k - 1) if base is not None else set(range(len(facts)))
            if kept is None:
                return "unknown", k, "timeout"
            active = sorted(kept)               # a longer k may keep facts a shorter one lost
            while True:
                if not self._left(solver):
                    return "unknown", k, "timeout"
                rnd += 1
                bad = z3.Bool(f"bad#{rnd}")
                solver.add(z3.Implies(bad, z3.Or(goal_bad, *[z3.Not(last[i]) for i in active])))
                r = solver.check(*lits, *[flits[i] for i in active], bad)
                if r == z3.unsat:
                    core = {str(c) for c in solver.unsat_core()}
                    used = tuple(inv.text for lit, inv in zip(lits, invs, strict=True) if str(lit) in core)
                    used += tuple(facts[i].text for i in active if str(flits[i]) in core)
                    return "proved", k, (used, tuple(facts[i] for i in active))
                if r == z3.unknown:
                    return "unknown", k, solver.reason_unknown() or "solver returned unknown"
                model = solver.model()
                broken = [i for i in active if not z3.is_true(model.eval(last[i], model_completion=True))]
                if not broken:
                    break                       # a goal property breaks: try a longer k
                active = [i for i in active if i not in broken]
        k = max_k
        path = []
        for j in range(k, 0, -1):              # transition j goes from ends[j] to ends[j - 1]
            op, chs = steps[j - 1]
            path.append((self.m.ops[model.eval(op, model_completion=True).as_long()],
                         {key: z3.is_true(model.eval(c, model_completion=True)) for key, c in chs.items()}))
        before = eng.state_value(model, ends[1])
        after = eng.state_value(model, ends[0])
        return "cti", k, (path, before, after)


def _violation(model: Model, prop: str, depth: int, raw) -> Violation:
    return Violation(prop, depth, replay(model, raw.ops, raw.choices, raw.states, prop))


def _step_cases(ind: _Inductor, rest: list[str], invs: list[Invariant], max_k: int, base: _FactsBase):
    """Joint step case (with the droppable facts), then property by property."""
    proved: dict[str, tuple[int, tuple[str, ...]]] = {}
    last: dict[str, tuple] = {}
    joint, joint_k, facts = False, None, ()
    if rest:
        kind, k, data = ind.step_case(rest, rest, invs, max_k, base.facts, base)
        if kind == "proved":
            used, facts = data
            proved = {p: (k, used) for p in rest}
            joint, joint_k = len(rest) > 1, k
        elif kind == "unknown":
            last = {p: (kind, k, data) for p in rest}
    # one by one, unless the joint case was about one property already (same premises; the
    # facts only ever help: a fact that blocks the goal's closure is dropped)
    changed = not proved and not last and len(rest) > 1
    if len(rest) == 1 and not proved and not last:
        last = {rest[0]: (kind, k, data)}
    while changed:
        changed = False
        for p in rest:
            if p in proved:
                continue
            kind, k, data = ind.step_case([p], [p, *proved], invs, max_k)
            last[p] = (kind, k, data)
            if kind == "proved":
                proved[p] = (k, data[0])
                changed = True
    return proved, last, joint, joint_k, facts


def induction(model: Model, props: tuple[str, ...], max_k: int, deadline: Deadline):
    """_induction, stopped by the deadline (or Ctrl-C) wherever it is: then every property
    it was asked about is unknown."""
    import z3

    try:
        return _induction(model, props, max_k, deadline)
    except (Stopped, z3.Z3Exception) as e:
        if isinstance(e, z3.Z3Exception) and not deadline.expired():     # not Z3 interrupted by the deadline
            raise
        reason = e.reason if isinstance(e, Stopped) else deadline.reason
        return {p: PropertyProof(p, "unknown", note=f"k-induction: {reason}") for p in props}, ((), (), None), 0, 0


def _induction(model: Model, props: tuple[str, ...], max_k: int, deadline: Deadline):
    """The k-induction route: (proofs by property, invariants, candidate count, sample size).

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
        cands = candidates(model, ind.eng.names, sample, deadline)
    except Stopped as e:
        return {p: PropertyProof(p, "unknown", note=f"{e.reason} while preparing k-induction (the transition "
                                                     f"template, the auxiliary invariants' candidates)")
                for p in props}, ((), (), None), 0, 0
    invs = ind.houdini(cands)
    out: dict[str, PropertyProof] = {}
    if invs is None:
        return {p: PropertyProof(p, "unknown", note=f"{deadline.reason} while proving the auxiliary invariants")
                for p in props}, ((), (), None), len(cands), len(sample)
    base = _FactsBase(ind, [c for c in cands if c not in invs])
    depth = model.spec.depth
    while True:
        search = ind.eng.run(depth, list(props), timeout=deadline)
        for p in props:
            if p in search.found:
                d, raw = search.found[p]
                out[p] = PropertyProof(p, "violated", "bmc", violation=_violation(model, p, d, raw))
        if search.unknown:
            for p in props:
                out.setdefault(p, PropertyProof(p, "unknown", note=f"base case: {search.unknown} after depth "
                                                                  f"{search.depth_done}"))
            return out, (tuple(i.text for i in invs), (), None), len(cands), len(sample)
        rest = [p for p in props if p not in out]
        proved, last, joint, joint_k, facts = _step_cases(ind, rest, invs, max_k, base)
        need = max([k for k, _ in proved.values()], default=0)
        if need <= depth or search.complete_at is not None:
            break
        # deepen the base case to the largest k used; a violation there voids the step proofs
        deeper = ind.eng.run(need, rest, timeout=deadline)
        if deeper.unknown:
            for p in rest:
                out[p] = PropertyProof(p, "unknown", note=f"base case: {deeper.unknown} after depth "
                                                          f"{deeper.depth_done}")
            return out, (tuple(i.text for i in invs), (), None), len(cands), len(sample)
        if not deeper.found:
            depth = need
            break
        depth = need                      # redo with the violations the deeper base case found
    unproved = [p for p in rest if p not in proved]
    if unproved and max_k > depth and search.complete_at is None:
        deeper = ind.eng.run(max_k, unproved, timeout=deadline)
        for p in unproved:
            if p in deeper.found:
                d, raw = deeper.found[p]
                out[p] = PropertyProof(p, "violated", "bmc", violation=_violation(model, p, d, raw))
        if deeper.complete_at is not None:
            search = deeper
    rest = [p for p in rest if p not in out]
    dropped = [c for c in cands if c not in invs]
    for p in rest:
        if p in proved:
            k, used = proved[p]
            if k > max_k:
                raise InternalError("step case beyond the base case")
            out[p] = PropertyProof(p, "proved", "k-induction", k=k, used=used,
                                   note=f"jointly with the other {plural(len(rest) - 1, 'property')} that "
                                        f"hold{'s' if len(rest) == 2 else ''}" if joint else "")
            continue
        if search.complete_at is not None:
            out[p] = PropertyProof(p, "proved", "diameter", k=search.complete_at,
                                   note=f"no loop-free path of {plural(search.complete_at + 1, 'operation')} exists "
                                        f"from the initial state")
            continue
        kind, k, data = last[p]
        if kind == "unknown":
            out[p] = PropertyProof(p, "unknown", note=f"step case at k = {k}: {data}")
            continue
        path, before, after = data
        op, chs = path[-1]
        # the last transition, run by the interpreter: it must agree with the solver
        ran = interp.apply(model, before, op, chs, record=False)
        if interp.refusal(model, before, op) is not None or any(ran.state[v] != after[v] for v in after) \
                or p not in {q for q, _ in ran.violations}:
            raise InternalError(f"the counterexample to induction for {p} ('{op}') does not replay in the interpreter")
        excluded = tuple(c.text for c in dropped if not c.holds(before))[:3]
        out[p] = PropertyProof(p, "not proved", cti=Cti(k, op, before, after, tuple(ran.failed_choices),
                                                      tuple(o for o, _ in path), excluded))
    return out, (tuple(i.text for i in invs), tuple(f.text for f in facts), joint_k), len(cands), len(sample)


def exhaustion(model: Model, props: tuple[str, ...], deadline: Deadline, budget: int = 0):
    """The explicit route: (proofs by property, states, diameter)."""
    from .engine_explicit import ExplicitEngine

    eng = ExplicitEngine(model, max_states=budget or EXHAUSTION_BUDGET)
    search = eng.run(1 << 30, list(props), timeout=deadline)
    out = {}
    for p in props:
        if p in search.found:
            d, raw = search.found[p]
            out[p] = PropertyProof(p, "violated", "exhaustion", states=eng.states, violation=_violation(model, p, d, raw))
        elif search.complete_at is not None:
            out[p] = PropertyProof(p, "proved", "exhaustion", states=eng.states)
        else:
            out[p] = PropertyProof(p, "unknown", note=f"exhaustion: {search.unknown}")
    return out, (eng.states if search.complete_at is not None else None), (eng.diameter if search.complete_at is not None else None)


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
    start = time.perf_counter()
    deadline = Deadline.of(timeout)
    ex: dict[str, PropertyProof] = {}
    ind: dict[str, PropertyProof] = {}
    invs: tuple = ((), (), None)
    ncand = nsample = 0
    states = diameter = None
    if method in ("auto", "exhaustion", "both"):
        budget = SMALL_SPACE if method == "auto" else EXHAUSTION_BUDGET
        ex, states, diameter = exhaustion(model, props, deadline, budget)
    todo = props if method in ("induction", "both") else \
        tuple(p for p in props if method == "auto" and ex[p].verdict == "unknown")
    if todo and deadline.expired():          # no time left for k-induction: say so, do not start it
        ind = {p: PropertyProof(p, "unknown", note=f"k-induction not tried: {deadline.reason}") for p in todo}
    elif todo:
        ind, invs, ncand, nsample = induction(model, todo, max_k, deadline)
    proofs = {}
    for p in props:
        e, i = ex.get(p), ind.get(p)
        if i is None:
            proofs[p] = e
        elif e is None or e.verdict == "unknown":
            proofs[p] = i
        elif {e.verdict, i.verdict} == {"proved", "violated"}:
            raise InternalError(f"{p}: exhaustion says {e.verdict}, k-induction says {i.verdict}")
        elif i.verdict == "violated":
            if i.violation.depth != e.violation.depth:
                raise InternalError(f"{p}: shortest violations differ: {i.violation.depth} (bounded model checking) "
                                    f"and {e.violation.depth} (exhaustion)")
            proofs[p] = i
        elif i.verdict == "proved":          # both proved: keep k and the state count
            proofs[p] = PropertyProof(p, "proved", i.method, i.k, e.states, used=i.used, note=i.note)
        else:                                # k-induction did not close; exhaustion settles it
            proofs[p] = PropertyProof(p, e.verdict, e.method, e.k, e.states, e.violation, i.cti,
                                      note=f"k-induction up to k = {max_k} did not close" +
                                      ("; its counterexample to induction is unreachable" if e.verdict == "proved" else ""))
    return ProofResult(spec, model, method, max_k, tuple(proofs[p] for p in props), invs[0], invs[1], invs[2],
                       ncand, nsample, states, diameter, time.perf_counter() - start)


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
        return f"{pp.property}: violated, found by {_METHOD_TEXT[pp.method]} (trace replayed by the interpreter):"
    if pp.verdict == "not proved":
        return f"NOT PROVED {pp.property}: the step case still fails at k = {pp.cti.k}"
    return f"UNKNOWN {pp.property}: {pp.note}"


def cti_lines(m: Model, pp: PropertyProof, ninv: int) -> list[str]:
    c = pp.cti
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
               + (f"; exhaustion: {r.states} reachable states, diameter {r.diameter}" if r.states is not None else ""))
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
            "states": r.states, "diameter": r.diameter,
            "spec": {"path": r.spec.path, "name": r.spec.name, "kernel": r.spec.kernel, "sha256": r.spec.digest}}


def json_text(r: ProofResult) -> str:
    import json

    return json.dumps(to_json(r), indent=2) + "\n"
