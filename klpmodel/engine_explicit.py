"""Explicit-state exploration: breadth-first search over the concrete interpreter.

The same kernel.step as the Z3 engine (run on Python values), every choice inside an
operation enumerated (interp.outcomes). Level d of the search holds the states first
reached after d operations, so the first violating transition found from level d-1 is a
shortest counterexample. When a level adds no new state, the reachable state space is
exhausted: what was not violated holds for sequences of any length.
"""
from __future__ import annotations

import time

from . import interp
from .engine_z3 import RawTrace, Search
from .kernel import ORIGINAL, PHASES, Model


class ExplicitEngine:
    name = "explicit"

    def __init__(self, model: Model, max_states: int | None = None, keep_graph: bool = False):
        self.m = model
        self.max_states = max_states
        self.names = list(model.vars)
        self.states = 0
        self.diameter = 0
        self.keep_graph = keep_graph
        self.edges: list[tuple] = []          # (from key, to key, op, failed choices, violated properties)
        self.level: dict[tuple, int] = {}     # key -> BFS level (first reached after that many operations)
        self.values: dict[tuple, dict] = {}   # key -> state

    def key(self, state: dict) -> tuple:
        return tuple(state[v] for v in self.names)

    def run(self, depth: int, props: list[str], timeout: float | None = None) -> Search:
        m = self.m
        start = time.perf_counter()
        res = Search()
        open_props = set(props)
        s0 = interp.initial(m)
        k0 = self.key(s0)
        parent: dict[tuple, tuple | None] = {k0: None}   # key -> (parent key, op, choices)
        frontier = [(k0, s0)]
        if self.keep_graph:
            self.level[k0], self.values[k0] = 0, s0
        for d in range(1, depth + 1):
            nxt = []
            for k, state in frontier:
                if timeout is not None and time.perf_counter() - start > timeout:
                    res.unknown = "timeout"
                    return self._done(res, parent, d - 1)
                for op in m.ops:
                    if interp.refusal(m, state, op) is not None:
                        continue
                    for out in interp.outcomes(m, state, op):
                        for p, _ in out.violations:
                            if p in open_props and p not in res.found:
                                res.found[p] = (d, self._trace(parent, k, op, out.choices))
                        kk = self.key(out.state)
                        if kk not in parent:
                            parent[kk] = (k, op, out.choices)
                            nxt.append((kk, out.state))
                            if self.keep_graph:
                                self.level[kk], self.values[kk] = d, out.state
                        if self.keep_graph:
                            self.edges.append((k, kk, op, tuple(out.failed_choices),
                                               tuple(sorted({p for p, _ in out.violations}))))
                if self.max_states is not None and len(parent) > self.max_states:
                    res.unknown = f"more than {self.max_states} states"
                    return self._done(res, parent, d - 1)
            open_props -= res.found.keys()
            res.per_depth.append((d, time.perf_counter() - start))
            res.depth_done = d
            if not nxt:                          # nothing new: the reachable states are all known
                res.complete_at = d - 1
                res.depth_done = depth
                return self._done(res, parent, d - 1)
            self.diameter = d
            if not open_props and not self.keep_graph:
                res.depth_done = depth
                break
            frontier = nxt
        return self._done(res, parent, self.diameter)

    def _done(self, res: Search, parent: dict, diameter: int) -> Search:
        self.states = len(parent)
        self.diameter = diameter
        self.parent = parent
        return res

    def recoverable(self):
        """AG EF clean, over the whole reachable state space.

        Returns None when every reachable state can get back to a clean state (no patch on
        klp_patches, every system state original); else (trace to the nearest dead end,
        reason); or the string reason the space could not be explored."""
        eng = ExplicitEngine(self.m, max_states=self.max_states, keep_graph=True)
        res = eng.run(1 << 30, [])
        if res.unknown:
            return res.unknown
        m = self.m
        preds: dict[tuple, set] = {}
        succs: dict[tuple, set] = {}
        for a, b, *_ in eng.edges:
            preds.setdefault(b, set()).add(a)
            succs.setdefault(a, set()).add(b)

        def clean(state):
            return all(PHASES[state[f"phase[{p.name}]"]] not in ("patching", "enabled", "unpatching") for p in m.P) \
                and all(state[f"val[{s}]"] == ORIGINAL for s in m.state_names)

        back = {k for k, st in eng.values.items() if clean(st)}
        todo = list(back)
        while todo:
            for a in preds.get(todo.pop(), ()):
                if a not in back:
                    back.add(a)
                    todo.append(a)
        stuck = [k for k in eng.level if k not in back]
        if not stuck:
            return None
        target = min(stuck, key=lambda k: (eng.level[k], k))
        closure, todo = {target}, [target]
        while todo:
            for b in succs.get(todo.pop(), ()):
                if b not in closure:
                    closure.add(b)
                    todo.append(b)
        states = [eng.values[k] for k in closure]
        reasons = []
        for s_ in m.state_names:
            seen = {st[f"val[{s_}]"] for st in states}
            if ORIGINAL not in seen:
                reasons.append(f"{s_} never becomes original again (it can only be "
                               f"{', '.join(m.describe_value(s_, v) for v in sorted(seen))})")
        for p in m.P:
            if all(PHASES[st[f"phase[{p.name}]"]] in ("patching", "enabled", "unpatching") for st in states):
                reasons.append(f"{p.name} can never leave klp_patches")
        reason = "; ".join(reasons) or (f"none of the {len(closure)} states reachable from here has no patch "
                                        f"installed and every state original")
        k, tail = target, RawTrace([], [], None)
        while eng.parent[k] is not None:
            k, o, c = eng.parent[k]
            tail.ops.insert(0, o)
            tail.choices.insert(0, dict(c))
        return tail, f"{reason} ({len(closure)} states reachable from there)"

    def graph(self):
        """The explored state space as a networkx DiGraph (built only when asked for)."""
        import networkx as nx

        g = nx.MultiDiGraph()
        for k, lvl in self.level.items():
            g.add_node(k, level=lvl, state=self.values[k])
        for a, b, op, failed, viol in self.edges:
            g.add_edge(a, b, op=str(op), failed=failed, violations=viol)
        return g

    @staticmethod
    def _trace(parent: dict, k: tuple, op, choices: dict) -> RawTrace:
        ops, chs = [op], [dict(choices)]
        while parent[k] is not None:
            k, o, c = parent[k]
            ops.append(o)
            chs.append(dict(c))
        return RawTrace(ops[::-1], chs[::-1], None)
