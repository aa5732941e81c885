"""Bounded model checking with Z3 over the transition system of kernel.step (klpmodel.ts).

The solver is incremental: step t's copy of T is added permanently (one `Unrolling` from
the initial state, loop-free, with the symmetry breaking); the query "some still-unviolated
property is violated at step t" is checked under an assumption literal. Because every
shorter depth was unsatisfiable for the properties still open, the first satisfying depth
of a property is its shortest counterexample.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .deadline import Deadline
from .errors import Stopped
from .kernel import Model, Op
from .ts import RawTrace, Solver, Term, TransitionSystem, Unrolling, interruptible

__all__ = ["More", "RawTrace", "Search", "Z3Engine"]


@dataclass
class Search:
    found: dict[str, tuple[int, RawTrace]] = field(default_factory=dict)
    depth_done: int = 0                  # every depth <= this was fully decided
    unknown: str | None = None           # reason the search stopped early
    complete_at: int | None = None       # no path longer than this keeps its states (but the last) distinct
    per_depth: list[tuple[int, float]] = field(default_factory=list)   # (depth, seconds)


class More(NamedTuple):
    """Further counterexamples of one property (Z3Engine.more)."""
    traces: list[RawTrace]
    unknown: str | None                  # why the search for more stopped early (None: it did not)


class Z3Engine:
    """Bounded model checking and the search for further counterexamples over one
    TransitionSystem, within one Deadline."""

    name = "z3"

    def __init__(self, model: Model, seed: int = 0, deadline: Deadline | float | None = None,
                 ts: TransitionSystem | None = None):
        """Builds the transition system unless `ts` is given; raises Stopped when `deadline`
        passes first (a spec of many patches takes long: one symbolic run per operation)."""
        import z3

        self.z3 = z3
        self.m = model
        self.on_depth: Callable[[int, None], None] | None = None   # progress: (depth done, None) after each depth
        z3.set_param("smt.random_seed", seed)
        z3.set_param("sat.random_seed", seed)
        self.deadline = Deadline.of(deadline)
        self.ts = ts if ts is not None else TransitionSystem(model, self.deadline)

    def _path(self, solver: Solver) -> Unrolling:
        """The unrolling of bounded model checking: from the initial state, loop-free, symmetry broken."""
        return Unrolling(self.ts, solver, self.ts.initial(), ("@{}", "@{}"), symmetry=True)

    def canonical(self, ops: Sequence[Op]) -> tuple[Op, ...]:
        """The op sequence with interchangeable patches renamed to be first loaded in spec
        order: the one twin of a trace that the symmetry breaking lets the solver find."""
        m = self.m
        names: dict[str | None, str | None] = {}
        for group in self.m.interchangeable():
            members = [m.P[i].name for i in group]
            first: dict[str, int] = {}
            for n, op in enumerate(ops):
                if op.word == "load" and op.arg in members:
                    first.setdefault(op.arg, n)
            order = sorted(members, key=lambda name: (first.get(name, len(ops)), members.index(name)))
            names.update(zip(order, members, strict=True))
        def renamed(op: Op) -> Op:
            if op.word == "call" and op.arg is not None:   # PATCH.FUNCTION (issue 14)
                patch, _, func = op.arg.partition(".")
                return Op(op.word, f"{names.get(patch, patch)}.{func}", op.params)
            return Op(op.word, names.get(op.arg, op.arg), op.params)
        return tuple(renamed(op) for op in ops)

    def more(self, prop: str, depth: int, known: list[list[Op]], n: int) -> More:
        """Up to n further traces of exactly `depth` operations that break prop at their last
        step, each with an operation sequence different from every known one and from each
        other (and from their interchangeable-patch twins). `depth` must be prop's shortest
        depth: then no trace found here breaks it earlier."""
        found: list[RawTrace] = []
        try:
            with interruptible(self.deadline):
                return self._more(prop, depth, known, n, found)
        except Stopped as e:
            return More(found, e.reason)

    def _more(self, prop: str, depth: int, known: list[list[Op]], n: int, found: list[RawTrace]) -> More:
        z3 = self.z3
        if prop not in self.ts.violation:
            return More([], None)
        solver = Solver(self.deadline)
        path = self._path(solver)
        for _ in range(depth):
            last = path.extend()
        solver.add(last.viol[prop])
        index = {op: k for k, op in enumerate(self.m.ops)}
        ops = path.ops

        def block(seq: Sequence[Op]) -> None:
            solver.add(z3.Or(*[o != index[Op(op.word, op.arg)] for o, op in zip(ops, seq, strict=True)]))

        for seq in {self.canonical(seq) for seq in known}:
            block(seq)
        while len(found) < n:
            r = solver.check()
            if r == "unsat":
                break
            if r == "unknown":
                return More(found, solver.why)
            trace = path.read(solver.model())
            found.append(trace)
            block(self.canonical(trace.ops))
        return More(found, None)

    def run(self, depth: int, props: list[str]) -> Search:
        """Bounded model checking to `depth`; stops at the deadline with what it found and
        the reason in `unknown`."""
        res = Search()
        try:
            with interruptible(self.deadline):
                return self._run(res, depth, props)
        except Stopped as e:
            res.unknown = e.reason
        return res

    def _run(self, res: Search, depth: int, props: list[str]) -> Search:
        deadline = self.deadline
        start = deadline.elapsed()
        solver = Solver(deadline)
        path = self._path(solver)
        open_props = [p for p in props if p in self.ts.violation]
        for t in range(1, depth + 1):
            if not open_props:
                res.depth_done = depth
                break
            viol = path.extend().viol
            viol_t = {p: viol[p] for p in open_props}
            open_props, stop = self._query(res, t, solver, path, viol_t)
            if stop is not None:
                res.unknown = stop
                return res
            res.depth_done = t
            res.per_depth.append((t, deadline.elapsed() - start))
            if self.on_depth is not None:
                self.on_depth(t, None)
            if deadline.expired():
                res.unknown = deadline.reason
                return res
            if open_props and solver.check() == "unsat":
                # no loop-free path of t operations exists: every reachable state is reachable
                # in fewer, so nothing longer can break a property either
                res.complete_at = t - 1
                res.depth_done = depth
                break
        else:
            res.depth_done = depth
        return res

    def _query(self, res: Search, t: int, solver: Solver, path: Unrolling,
               viol: dict[str, Term]) -> tuple[list[str], str | None]:
        """Depth t: every open property some path of t steps breaks at its last step (the
        shortest counterexample: no shorter path broke it), into res.found. Returns the
        properties still open and why the search must stop (None: it goes on)."""
        z3 = self.z3
        open_props = list(viol)
        while open_props:
            a = z3.Bool(f"query@{t}:{len(open_props)}")
            solver.add(z3.Implies(a, z3.Or(*[viol[p] for p in open_props])))
            r = solver.check(a)
            if r == "unsat":
                break
            if r == "unknown":
                return open_props, solver.why
            model = solver.model()
            hit = [p for p in open_props if z3.is_true(model.eval(viol[p], model_completion=True))]
            trace = path.read(model)
            for p in hit:
                res.found[p] = (t, trace)
            open_props = [p for p in open_props if p not in hit]
        return open_props, None
