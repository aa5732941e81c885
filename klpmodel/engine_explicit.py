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
from .kernel import Model


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
        return res

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
