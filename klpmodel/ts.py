"""The transition system of a spec as a value, in the spirit of pySMT's TransitionSystem.

`TransitionSystem(model)` runs kernel.step symbolically ONCE per operation and keeps the
result: the state variables (those some operation changes), their initial values, the
operation selector and the choice constants, the transition term T(s, op, choices, s')
and one violation term per property, all over template constants; the groups of
interchangeable patches. A step of any search is one `z3.substitute` of the template onto
that step's own constants (`step`), so Python work does not grow with the depth.

Every Z3 search uses it through two pieces:

* `Unrolling`: a path on one solver, grown forwards from a state (bounded model checking
  and its further counterexamples, the base case of the k-inductive facts, Houdini's one
  step) or backwards from the breaking transition (the step case of k-induction), with
  the loop-free constraint and, from the initial state, the symmetry breaking;
* `weaken`: drop the candidates a model refutes until the rest is inductive (Houdini, the
  facts' base case, the k-inductive facts of the step case).

`Solver` is a QF_BV solver whose every check gets the time the command's `Deadline` leaves.
z3 is imported when a transition system is built, not with this module.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from . import kernel
from .backend import Symbolic
from .deadline import Deadline
from .errors import Stopped
from .kernel import Model, Op

Term = Any                               # a Z3 expression (z3 ships no type information)
State = dict[str, Term]                  # a state: one term per state variable
Key = tuple[Any, ...]                    # a choice's key (kernel.Choice fields)
Verdict = Literal["sat", "unsat", "unknown"]


@dataclass
class RawTrace:
    """A path as the solver (or the explicit search) found it, before the interpreter replays it."""
    ops: list[Op]
    choices: list[dict[Key, bool]]       # per step: every choice variable the solver fixed
    states: list[dict[str, Any]] | None  # per step (after it): every variable's value (None: not known)


class Step(NamedTuple):
    """One copy of the template on a step's own constants."""
    trans: Term                          # T(pre, op, choices, post)
    viol: dict[str, Term]                # property -> this transition breaks it
    op: Term                             # the operation selector (an index into Model.ops)
    choices: dict[Key, Term]             # the choices inside the operation


@contextmanager
def interruptible(deadline: Deadline) -> Iterator[None]:
    """A Z3 call that deadline.watch interrupted raises a Z3Exception: that is the
    deadline, raised as Stopped (any other Z3Exception is a bug and passes through)."""
    import z3

    try:
        yield
    except z3.Z3Exception:
        if deadline.expired():
            raise Stopped(deadline.reason) from None
        raise


class Solver:
    """One incremental QF_BV solver; each check is given the time the deadline leaves, and
    none is made once it has passed (the check is then `unknown`, `why` says why)."""

    def __init__(self, deadline: Deadline):
        import z3

        self.z3 = z3
        self.deadline = deadline
        self.solver = z3.SolverFor("QF_BV")
        self.why = ""                    # the reason of the last `unknown`

    def add(self, *terms: Term) -> None:
        self.solver.add(*terms)

    def check(self, *assumptions: Term) -> Verdict:
        if self.deadline.expired():
            self.why = self.deadline.reason
            return "unknown"
        ms = self.deadline.ms()
        if ms is not None:
            self.solver.set("timeout", ms)
        r = str(self.solver.check(*assumptions))
        if r == "unknown":
            self.why = self.deadline.reason if self.deadline.expired() else \
                (self.solver.reason_unknown() or "solver returned unknown")
            return "unknown"
        return "sat" if r == "sat" else "unsat"

    def model(self) -> Any:
        return self.solver.model()

    def unsat_core(self) -> list[Term]:
        return list(self.solver.unsat_core())


class TransitionSystem:
    """The transition relation of `model`, built once (one symbolic run of kernel.step per
    operation, merged with `If` on the operation selector; refused operations are excluded
    by the `checks` guard). Raises Stopped when `deadline` passes first (a spec of many
    patches takes long)."""

    def __init__(self, model: Model, deadline: Deadline | None = None):
        import z3

        self.z3 = z3
        self.model = model
        self.deadline = deadline or Deadline()
        with interruptible(self.deadline):
            self._build()

    # ---- the template
    def _const(self, var: str, suffix: str = "") -> Term:
        kind, _ = self.model.vars[var]
        name = var + suffix
        return self.z3.Bool(name) if kind == "b" else self.z3.BitVec(name, self.model.bits[var])

    def _value(self, var: str, v: Any) -> Term:
        kind, _ = self.model.vars[var]
        return self.z3.BoolVal(bool(v)) if kind == "b" else self.z3.BitVecVal(int(v), self.model.bits[var])

    def _build(self) -> None:
        z3, m = self.z3, self.model
        names = list(m.vars)
        self.pre: State = {v: self._const(v) for v in names}
        self.post: State = {v: self._const(v, "'") for v in names}
        self.opbits = max(1, (len(m.ops)).bit_length())
        self.op: Term = z3.BitVec("op", self.opbits)
        self.choices: dict[Key, Term] = {}
        cases = []
        nxt = {v: self.pre[v] for v in names}
        viol: dict[str, Term] = {}
        for k in reversed(range(len(m.ops))):
            self.deadline.check()
            op = m.ops[k]
            guard = kernel.enabled(m, Symbolic(z3, dict(self.pre), m.bits), op)
            if guard is False:
                continue
            c = Symbolic(z3, dict(self.pre), m.bits)
            kernel.step(m, c, op)
            self.choices.update(c.choices)
            sel = self.op == k
            cases.append(z3.And(sel, guard) if guard is not True else sel)
            self.deadline.check()
            for v in names:
                val = c.fit(c.st[v], m.bits[v]) if v in m.bits else c._t(c.st[v])
                if not val.eq(nxt[v]):
                    nxt[v] = z3.If(sel, val, nxt[v])
            for p, cond in c.viol.items():
                viol[p] = z3.If(sel, c._t(cond), viol.get(p, z3.BoolVal(False)))
        loads = {op.arg: k for k, op in enumerate(m.ops) if op.word == "load"}
        # interchangeable patches (Model.interchangeable), as the indices of their loads
        self.symmetric: list[list[int]] = [[loads[m.P[i].name] for i in g] for g in m.interchangeable()
                                           if all(m.P[i].name in loads for i in g)]
        # variables no operation ever changes keep their initial value: not state at all
        fixed = [(self.pre[v], self._value(v, m.init[v])) for v in names if nxt[v].eq(self.pre[v])]
        self.names: tuple[str, ...] = tuple(v for v in names if not nxt[v].eq(self.pre[v]))
        trans = z3.And(z3.Or(*cases) if cases else z3.BoolVal(False),
                       *[self.post[v] == nxt[v] for v in self.names])
        self.trans: Term = z3.substitute(trans, *fixed) if fixed else trans
        self.violation: dict[str, Term] = {p: z3.substitute(f, *fixed) if fixed else f for p, f in viol.items()}

    # ---- states and steps
    def initial(self) -> State:
        """The initial state, as values."""
        return {v: self._value(v, self.model.init[v]) for v in self.names}

    def fresh(self, tag: str) -> State:
        """Fresh constants for one state, named after the variables plus `tag`."""
        return {v: self._const(v, tag) for v in self.names}

    def step(self, pre: State, post: State, tag: str) -> Step:
        """One copy of the template from `pre` to `post`; `tag` names the step's own
        constants (the operation selector and the choices)."""
        z3 = self.z3
        op = z3.BitVec(f"op{tag}", self.opbits)
        chs = {k: z3.Bool(f"choice{tag}:" + "/".join(map(str, k))) for k in self.choices}
        sub = [(self.pre[v], pre[v]) for v in self.names]
        sub += [(self.post[v], post[v]) for v in self.names]
        sub += [(self.op, op)]
        sub += [(self.choices[k], chs[k]) for k in self.choices]
        return Step(z3.substitute(self.trans, *sub), {p: z3.substitute(f, *sub) for p, f in self.violation.items()},
                    op, chs)

    def differ(self, a: State, b: State) -> Term:
        """The two states differ in some variable."""
        return self.z3.Or(*[a[v] != b[v] for v in self.names])

    def equals(self, st: State, var: str, value: int) -> Term:
        """`var` has `value` in `st` (a Boolean variable: 0 or 1)."""
        c = st[var]
        if self.model.vars[var][0] == "b":
            return c if value else self.z3.Not(c)
        return c == value

    # ---- reading a solver's model back
    def read(self, model: Any, st: State) -> dict[str, Any]:
        """A full state (the unchanged variables at their initial value) from a solver model."""
        z3, m = self.z3, self.model
        out: dict[str, Any] = dict(m.init)
        for v, const in st.items():
            val = model.eval(const, model_completion=True)
            if m.vars[v][0] == "b":
                out[v] = z3.is_true(val)
            elif v in m.signed:                           # two's complement (kernel.param_top)
                out[v] = val.as_signed_long()
            else:
                out[v] = val.as_long()
        return out

    def read_op(self, model: Any, op: Term) -> Op:
        """The operation a step's selector picks in a solver model."""
        return self.model.ops[int(model.eval(op, model_completion=True).as_long())]

    def read_choices(self, model: Any, choices: dict[Key, Term]) -> dict[Key, bool]:
        """A step's choices in a solver model."""
        return {k: bool(self.z3.is_true(model.eval(c, model_completion=True))) for k, c in choices.items()}


class Unrolling:
    """A path of the transition system on one solver: `states` in time order; step i goes
    from `states[i]` to `states[i + 1]` by operation `ops[i]` with choices `choices[i]`.
    `tags` name the constants of the n-th state and step added (str.format of n). The
    path keeps what reading it back needs; the caller keeps the violation terms it wants
    (`extend` and `prepend` return the new Step).

    Loop-free: the pre-states of the steps are pairwise distinct (the last state is free).
    Bounded model checking may assume it: a shortest counterexample never visits a state
    twice before its last step (cut the loop: same last transition, shorter path), and a
    violation is decided by (state, operation, choices) alone; k-induction's step case
    needs it to be complete (the recurrence diameter).

    Symmetry (only from the initial state, forwards): interchangeable patches are first
    loaded in spec order. Any path has such a renamed twin of the same length with the
    same violations at the same steps, so verdicts and shortest depths are unchanged."""

    def __init__(self, ts: TransitionSystem, solver: Solver, start: State, tags: tuple[str, str], *,
                 symmetry: bool = False):
        self.ts, self.solver, self.tags, self.symmetry = ts, solver, tags, symmetry
        self.states: list[State] = [start]
        self.ops: list[Term] = []
        self.choices: list[dict[Key, Term]] = []

    def __len__(self) -> int:
        return len(self.ops)

    def extend(self) -> Step:
        """One more step after the last state."""
        ts, z3, add = self.ts, self.ts.z3, self.solver.add
        t = len(self.ops) + 1
        self.states.append(ts.fresh(self.tags[0].format(t)))
        step = ts.step(self.states[t - 1], self.states[t], self.tags[1].format(t))
        self.ops.append(step.op)
        self.choices.append(step.choices)
        add(step.trans)
        for i in range(t - 1):
            add(ts.differ(self.states[i], self.states[t - 1]))
        if self.symmetry:
            ops = self.ops
            for group in ts.symmetric:
                for a, b in itertools.pairwise(group):
                    add(z3.Implies(ops[-1] == b, z3.Or(*[o == a for o in ops[:-1]])))
        return step

    def prepend(self, keeps: Sequence[str] = ()) -> Step:
        """One more step before the first state, which breaks none of the properties `keeps`."""
        if self.symmetry:
            raise ValueError("the symmetry breaking holds for paths from the initial state only")
        ts, add = self.ts, self.solver.add
        k = len(self.ops) + 1
        pre = ts.fresh(self.tags[0].format(k))
        step = ts.step(pre, self.states[0], self.tags[1].format(k))
        self.states.insert(0, pre)
        self.ops.insert(0, step.op)
        self.choices.insert(0, step.choices)
        add(step.trans)
        add(*[ts.z3.Not(step.viol[p]) for p in keeps])
        for j in range(1, k):                         # the later pre-states, the latest first
            add(ts.differ(pre, self.states[k - j]))
        return step

    def read(self, model: Any) -> RawTrace:
        """The path in a solver's model: its operations, choices and the states after each step."""
        ts = self.ts
        return RawTrace([ts.read_op(model, op) for op in self.ops], [ts.read_choices(model, c) for c in self.choices],
                        [ts.read(model, st) for st in self.states[1:]])


def labels(prefix: str) -> Iterator[str]:
    """prefix1, prefix2, ...: the names of a loop's query literals."""
    return (f"{prefix}{n}" for n in itertools.count(1))


class Weakened(NamedTuple):
    """What `weaken` ended with."""
    verdict: Literal["inductive", "broken", "unknown"]
    kept: tuple[int, ...]                # the candidates still standing
    model: Any = None                    # broken: the goal fails there, every kept candidate holds
    reason: str = ""                     # unknown: why


def weaken(solver: Solver, active: Iterable[int], bad: Callable[[int], Term], names: Iterator[str], *,
           goal: Term | None = None, assume: Sequence[Term] = (),
           lits: Mapping[int, Term] | Sequence[Term] | None = None) -> Weakened:
    """The weakening loop: ask for a model where `goal` or some active candidate's `bad(i)`
    is true; drop the candidates it makes bad and ask again, until no model exists (the
    candidates left are `inductive`, with the goal), one breaks only the goal (`broken`)
    or the solver cannot tell (`unknown`).

    Each question is guarded by a fresh literal named by `names` and checked under
    `assume` plus `lits[i]` of each active candidate (literals that assume the candidate
    where the caller's constraints need it: Houdini's pre-state, the step case's path).
    Houdini (1-inductive candidates), the base case of the k-inductive facts (bad: false
    in a reachable state) and the step case (bad: false after the path; goal: a property
    broken) are this loop with different terms."""
    z3 = solver.z3
    active = list(active)
    while active or goal is not None:
        q = z3.Bool(next(names))
        solver.add(z3.Implies(q, z3.Or(*([goal] if goal is not None else []), *[bad(i) for i in active])))
        r = solver.check(*assume, *([lits[i] for i in active] if lits is not None else []), q)
        if r == "unsat":
            break
        if r == "unknown":
            return Weakened("unknown", tuple(active), reason=solver.why)
        model = solver.model()
        refuted = {i for i in active if z3.is_true(model.eval(bad(i), model_completion=True))}
        if not refuted:
            return Weakened("broken", tuple(active), model)
        active = [i for i in active if i not in refuted]
    return Weakened("inductive", tuple(active))
