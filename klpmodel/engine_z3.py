"""Bounded model checking with Z3 over the transition system of kernel.step.

The transition relation T(s, op, choices, s') is built ONCE by running kernel.step on
symbolic pre-state constants (one symbolic run per operation, merged with `If` on the
operation selector). Each unrolling step is a `z3.substitute` of that template onto the
step's own constants, so Python work does not grow with the depth.

The solver is incremental: step t's copy of T is added permanently; the query "some
still-unviolated property is violated at step t" is checked under an assumption literal.
Because every shorter depth was unsatisfiable for the properties still open, the first
satisfying depth of a property is its shortest counterexample.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from . import kernel
from .backend import Symbolic
from .deadline import Deadline
from .errors import Stopped
from .kernel import Model, Op


@dataclass
class RawTrace:
    ops: list[Op]
    choices: list[dict[tuple, bool]]     # per step: every choice variable the solver fixed
    states: list[dict]                   # per step (after it): the solver's values of every variable


@dataclass
class Search:
    found: dict[str, tuple[int, RawTrace]] = field(default_factory=dict)
    depth_done: int = 0                  # every depth <= this was fully decided
    unknown: str | None = None           # reason the search stopped early
    complete_at: int | None = None       # no path longer than this keeps its states (but the last) distinct
    per_depth: list[tuple[int, float]] = field(default_factory=list)   # (depth, seconds)


class Z3Engine:
    name = "z3"

    def __init__(self, model: Model, seed: int = 0, deadline: Deadline | float | None = None):
        """Builds the transition template; raises Stopped when `deadline` passes first (a
        spec of many patches takes long: the template is one symbolic run per operation)."""
        import z3

        self.z3 = z3
        self.m = model
        self.on_depth = None             # progress: called with (depth done, None) after each depth
        z3.set_param("smt.random_seed", seed)
        z3.set_param("sat.random_seed", seed)
        self._deadline = Deadline.of(deadline)
        try:
            self._build()
        except z3.Z3Exception:
            if self._deadline.expired():     # interrupted by deadline.watch in a Z3 call
                raise Stopped(self._deadline.reason) from None
            raise

    # ---- the template
    def _const(self, var: str, suffix: str = ""):
        kind, _ = self.m.vars[var]
        name = var + suffix
        return self.z3.Bool(name) if kind == "b" else self.z3.BitVec(name, self.m.bits[var])

    def _value(self, name: str, v):
        kind, _ = self.m.vars[name]
        return self.z3.BoolVal(bool(v)) if kind == "b" else self.z3.BitVecVal(int(v), self.m.bits[name])

    def _build(self):
        z3, m = self.z3, self.m
        names = list(m.vars)
        self.names = names
        self.pre = {v: self._const(v) for v in names}
        self.post = {v: self._const(v, "'") for v in names}
        self.opbits = max(1, (len(m.ops)).bit_length())
        self.opv = z3.BitVec("op", self.opbits)
        self.choice_consts: dict[tuple, object] = {}
        cases = []
        nxt = {v: self.pre[v] for v in names}
        viol: dict[str, object] = {}
        for k in reversed(range(len(m.ops))):
            self._deadline.check()
            op = m.ops[k]
            guard = kernel.enabled(m, Symbolic(z3, dict(self.pre), m.bits), op)
            if guard is False:
                continue
            c = Symbolic(z3, dict(self.pre), m.bits)
            kernel.step(m, c, op)
            self.choice_consts.update(c.choices)
            sel = self.opv == k
            cases.append(z3.And(sel, guard) if guard is not True else sel)
            self._deadline.check()
            for v in names:
                val = c.fit(c.st[v], m.bits[v]) if v in m.bits else c._t(c.st[v])
                if not val.eq(nxt[v]):
                    nxt[v] = z3.If(sel, val, nxt[v])
            for p, cond in c.viol.items():
                viol[p] = z3.If(sel, c._t(cond), viol.get(p, z3.BoolVal(False)))
        loads = {op.arg: k for k, op in enumerate(m.ops) if op.word == "load"}
        self.symmetric = [[loads[m.P[i].name] for i in g] for g in m.interchangeable()
                          if all(m.P[i].name in loads for i in g)]
        # variables no operation ever changes keep their initial value: not state at all
        fixed = [(self.pre[v], self._value(v, m.init[v])) for v in names if nxt[v].eq(self.pre[v])]
        self.names = [v for v in names if not nxt[v].eq(self.pre[v])]
        trans = z3.And(z3.Or(*cases) if cases else z3.BoolVal(False),
                       *[self.post[v] == nxt[v] for v in self.names])
        self.trans = z3.substitute(trans, *fixed) if fixed else trans
        self.viol = {p: z3.substitute(f, *fixed) if fixed else f for p, f in viol.items()}

    # ---- unrolling
    def _step_consts(self, t: int):
        if t == 0:
            return {v: self._value(v, self.m.init[v]) for v in self.names}
        return {v: self._const(v, f"@{t}") for v in self.names}

    def state_consts(self, tag: str) -> dict:
        """Fresh constants for one state (the variables some operation changes)."""
        return {v: self._const(v, tag) for v in self.names}

    def instance(self, pre: dict, post: dict, tag: str):
        """One copy of the template on the given state constants: (T, violation flags, the
        operation selector, the choice constants). `tag` names the step's own constants."""
        z3 = self.z3
        op = z3.BitVec(f"op{tag}", self.opbits)
        chs = {k: z3.Bool(f"choice{tag}:" + "/".join(map(str, k))) for k in self.choice_consts}
        sub = [(self.pre[v], pre[v]) for v in self.names]
        sub += [(self.post[v], post[v]) for v in self.names]
        sub += [(self.opv, op)]
        sub += [(self.choice_consts[k], chs[k]) for k in self.choice_consts]
        return (z3.substitute(self.trans, *sub), {p: z3.substitute(f, *sub) for p, f in self.viol.items()},
                op, chs)

    def distinct(self, a: dict, b: dict):
        """The two states differ in some variable."""
        return self.z3.Or(*[a[v] != b[v] for v in self.names])

    def state_value(self, model, consts: dict) -> dict:
        """A full state (the unchanged variables at their initial value) from a solver model."""
        z3, m = self.z3, self.m
        st = dict(m.init)
        for v, const in consts.items():
            val = model.eval(const, model_completion=True)
            if m.vars[v][0] == "b":
                st[v] = z3.is_true(val)
            elif v.startswith("param["):                  # two's complement (kernel.param_top)
                st[v] = val.as_signed_long()
            else:
                st[v] = val.as_long()
        return st

    def _unroll(self, solver, t: int, states: list, ops: list, chs: list) -> dict:
        """Add step t (its constants appended to states/ops/chs) to the solver; return the
        step's violation flags."""
        z3 = self.z3
        states.append(self._step_consts(t))
        trans, viol, op, ch = self.instance(states[t - 1], states[t], f"@{t}")
        ops.append(op)
        chs.append(ch)
        solver.add(trans)
        # Only loop-free paths: a shortest counterexample never visits a state twice
        # before its last step (cut the loop: same last transition, shorter path), and
        # a violation is decided by (state, operation, choices) alone.
        for i in range(t - 1):
            solver.add(self.distinct(states[i], states[t - 1]))
        # Interchangeable patches (Model.interchangeable): rename them so that they are
        # first loaded in spec order. Any counterexample has such a renamed twin of the
        # same length, so verdicts and shortest depths are unchanged.
        for group in self.symmetric:
            for a, b in itertools.pairwise(group):
                solver.add(z3.Implies(ops[-1] == b, z3.Or(*[o == a for o in ops[:-1]])))
        return viol

    def canonical(self, ops: list[Op]) -> tuple[Op, ...]:
        """The op sequence with interchangeable patches renamed to be first loaded in spec
        order: the one twin of a trace that the symmetry breaking lets the solver find."""
        m, names = self.m, {}
        for group in self.m.interchangeable():
            members = [m.P[i].name for i in group]
            first = {}
            for n, op in enumerate(ops):
                if op.word == "load" and op.arg in members:
                    first.setdefault(op.arg, n)
            order = sorted(members, key=lambda name: (first.get(name, len(ops)), members.index(name)))
            names.update(zip(order, members, strict=True))
        return tuple(Op(op.word, names.get(op.arg, op.arg), op.params) for op in ops)

    def more(self, prop: str, depth: int, known: list[list[Op]], n: int,
             timeout: Deadline | float | None = None) -> tuple[list[RawTrace], str | None]:
        """Up to n further traces of exactly `depth` operations that break prop at their last
        step, each with an operation sequence different from every known one and from each
        other (and from their interchangeable-patch twins). `depth` must be prop's shortest
        depth: then no trace found here breaks it earlier. Returns (traces, unknown reason)."""
        deadline = Deadline.of(timeout)
        found: list[RawTrace] = []
        try:
            return self._more(prop, depth, known, n, deadline, found)
        except Stopped as e:
            return found, e.reason
        except self.z3.Z3Exception:
            if deadline.expired():
                return found, deadline.reason
            raise

    def _more(self, prop, depth, known, n, deadline: Deadline, found: list) -> tuple[list[RawTrace], str | None]:
        z3 = self.z3
        solver = z3.SolverFor("QF_BV")
        states, ops, chs = [self._step_consts(0)], [], []
        if prop not in self.viol:
            return [], None
        viol = {}
        for t in range(1, depth + 1):
            viol = self._unroll(solver, t, states, ops, chs)
        solver.add(viol[prop])
        index = {op: k for k, op in enumerate(self.m.ops)}
        seen = {self.canonical(seq) for seq in known}

        def block(seq):
            solver.add(z3.Or(*[o != index[Op(op.word, op.arg)] for o, op in zip(ops, seq, strict=True)]))

        for seq in seen:
            block(seq)
        while len(found) < n:
            if deadline.expired():
                return found, deadline.reason
            if deadline.ms() is not None:
                solver.set("timeout", deadline.ms())
            r = solver.check()
            if r == z3.unsat:
                break
            if r == z3.unknown:
                return found, deadline.reason if deadline.expired() else (solver.reason_unknown() or "solver returned unknown")
            trace = self._extract(solver.model(), depth, ops, chs, states)
            found.append(trace)
            block(self.canonical(trace.ops))
        return found, None

    def run(self, depth: int, props: list[str], timeout: Deadline | float | None = None) -> Search:
        """Bounded model checking to `depth`; stops at the deadline (`timeout`: seconds or a
        Deadline) with what it found and the reason in `unknown`."""
        deadline = Deadline.of(timeout)
        res = Search()
        try:
            return self._run(res, depth, props, deadline)
        except Stopped as e:
            res.unknown = e.reason
        except self.z3.Z3Exception:
            if not deadline.expired():
                raise
            res.unknown = deadline.reason
        return res

    def _run(self, res: Search, depth: int, props: list[str], deadline: Deadline) -> Search:
        z3 = self.z3
        start = time.perf_counter()
        solver = z3.SolverFor("QF_BV")
        open_props = [p for p in props if p in self.viol]
        states = [self._step_consts(0)]
        ops, chs = [], []
        for t in range(1, depth + 1):
            if not open_props:
                res.depth_done = depth
                break
            viol = self._unroll(solver, t, states, ops, chs)
            viol_t = {p: viol[p] for p in open_props}
            while open_props:
                if deadline.expired():
                    res.unknown = deadline.reason
                    return res
                if deadline.ms() is not None:
                    solver.set("timeout", deadline.ms())
                a = z3.Bool(f"query@{t}:{len(open_props)}")
                solver.add(z3.Implies(a, z3.Or(*[viol_t[p] for p in open_props])))
                r = solver.check(a)
                if r == z3.unsat:
                    break
                if r == z3.unknown:
                    res.unknown = deadline.reason if deadline.expired() else (solver.reason_unknown() or "solver returned unknown")
                    return res
                model = solver.model()
                hit = [p for p in open_props if z3.is_true(model.eval(viol_t[p], model_completion=True))]
                trace = self._extract(model, t, ops, chs, states)
                for p in hit:
                    res.found[p] = (t, trace)
                open_props = [p for p in open_props if p not in hit]
            res.depth_done = t
            res.per_depth.append((t, time.perf_counter() - start))
            if self.on_depth is not None:
                self.on_depth(t, None)
            if deadline.expired():
                res.unknown = deadline.reason
                return res
            if deadline.ms() is not None:
                solver.set("timeout", deadline.ms())
            if open_props and solver.check() == z3.unsat:
                # no loop-free path of t operations exists: every reachable state is reachable
                # in fewer, so nothing longer can break a property either
                res.complete_at = t - 1
                res.depth_done = depth
                break
        else:
            res.depth_done = depth
        return res

    def _extract(self, model, t, ops, chs, states) -> RawTrace:
        z3, m = self.z3, self.m
        out = RawTrace([], [], [])
        for i in range(t):
            out.ops.append(m.ops[model.eval(ops[i], model_completion=True).as_long()])
            out.choices.append({k: z3.is_true(model.eval(c, model_completion=True)) for k, c in chs[i].items()})
            out.states.append(self.state_value(model, states[i + 1]))
        return out
