"""Explicit-state exploration: breadth-first search over the concrete interpreter.

The same kernel.step as the Z3 engine (run on Python values), every choice inside an
operation enumerated (interp.outcomes). Level d of the search holds the states first
reached after d operations, so the first violating transition found from level d-1 is a
shortest counterexample. When a level adds no new state, the reachable state space is
exhausted: what was not violated holds for sequences of any length.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from . import interp
from .engine_z3 import RawTrace, Search
from .kernel import ORIGINAL, PHASES, Model, Op


class Symmetry:
    """The quotient the search runs on: states equal up to renaming interchangeable patches
    (Model.interchangeable: the rules never read a name) and renumbering block slots (a
    slot's number only matters through pointer equality) are one state. Renaming maps runs
    to runs with the same violations at the same steps, so verdicts and shortest depths are
    unchanged (tests/test_engine.py compares with the unreduced search and with Z3)."""

    def __init__(self, m: Model):
        self.m = m
        self.groups = [[m.P[i].name for i in g] for g in m.interchangeable()]
        self.local = {}
        for p in m.P:                       # a patch's own variables, aligned across a group
            names = [f"phase[{p.name}]", f"pos[{p.name}]", f"forced[{p.name}]"]
            names += [f"pue[{p.name}.{o.name}]" for o in p.objects]
            for st in sorted(dict(p.states)):
                names += [f"ptr[{p.name}.{st}]", f"snap_kind[{p.name}.{st}]", f"snap_cont[{p.name}.{st}]"]
            names += [f"param[{p.name}.{n}]" for n, _ in p.params]
            self.local[p.name] = names
        # for sorting: each local variable, and for a pointer its state's slot variables
        self.keyvars = {p: [(v, [(f"live[{v[v.index('.') + 1:-1]}#{j}]", f"cont[{v[v.index('.') + 1:-1]}#{j}]")
                                 for j in range(m.slots[v[v.index('.') + 1:-1]])] if v.startswith("ptr[") else None)
                            for v in names] for p, names in self.local.items()}
        self.ptrs = {s: [f"ptr[{p.name}.{s}]" for p in m.P if p.version(s) is not None] for s in m.state_names}

    def _sortkey(self, state: dict, name: str) -> tuple:
        out = []
        for v, slots in self.keyvars[name]:
            value = state[v]
            if slots is None:
                out.append(int(value))
            elif value == 0:
                out.append((0, 0))
            else:
                live, cont = slots[value - 1]
                out.append((1 + (not state[live]), state[cont]))
        return tuple(out)

    def canon(self, state: dict) -> tuple[dict, dict]:
        """(the canonical state, renaming: patch name in `state` -> name in the result)."""
        m, st, ren = self.m, dict(state), {}
        for g in self.groups:
            order = sorted(g, key=lambda n: self._sortkey(state, n))
            for target, source in zip(g, order, strict=True):
                for v, w in zip(self.local[target], self.local[source], strict=True):
                    st[v] = state[w]
                ren[source] = target
        for s in m.state_names:
            slots = m.slots[s]
            if slots < 2:
                continue
            seen: list[int] = []
            for v in self.ptrs[s]:
                ptr = st[v]
                if ptr and ptr - 1 not in seen:
                    seen.append(ptr - 1)
            if all(j == i for i, j in enumerate(seen)):
                continue                        # referenced slots already come first, in order
            order = seen + [j for j in range(slots) if j not in seen]
            new = {old: i for i, old in enumerate(order)}
            lives = [st[f"live[{s}#{j}]"] for j in order]
            conts = [st[f"cont[{s}#{j}]"] for j in order]
            for i in range(slots):
                st[f"live[{s}#{i}]"], st[f"cont[{s}#{i}]"] = lives[i], conts[i]
            for p in m.P:
                ptr = st.get(f"ptr[{p.name}.{s}]", 0)
                if ptr:
                    st[f"ptr[{p.name}.{s}]"] = new[ptr - 1] + 1
        return st, ren


def _rename_op(op: Op, names: dict) -> Op:
    if op.word in ("load", "disable", "rmmod") and op.arg in names:
        return Op(op.word, names[op.arg], op.params)
    return op


def _rename_choice(m: Model, key: tuple, names: dict) -> tuple:
    """A choice key (patch, object, callback, line, statement) of a renamed patch: the
    statement at the same place in the other patch (interchangeable patches have the same
    statements in the same order, on other lines)."""
    patch, obj, cb, line, text = key
    if names.get(patch, patch) == patch:
        return key
    src = next(o for o in m.spec.patch(patch).objects if o.name == obj).cb(cb)
    i = next(n for n, st in enumerate(src) if st.line == line and st.text == text)
    dst = next(o for o in m.spec.patch(names[patch]).objects if o.name == obj).cb(cb)[i]
    return (names[patch], obj, cb, dst.line, dst.text)


def clean(m: Model, state: dict) -> bool:
    """recoverable's target: no patch on klp_patches and every system state original."""
    return all(PHASES[state[f"phase[{p.name}]"]] not in ("patching", "enabled", "unpatching") for p in m.P) \
        and all(state[f"val[{s}]"] == ORIGINAL for s in m.state_names)


def way_back(m: Model, state: dict) -> list[Op] | None:
    """A shortest operation sequence from state to a clean one (None: there is none).
    Breadth-first over every outcome, so "None" means no sequence of any length exists."""
    if clean(m, state):
        return []
    key = tuple(state[v] for v in m.vars)
    parent = {key: None}
    frontier = [(key, state)]
    while frontier:
        nxt = []
        for k, st in frontier:
            for op in interp.possible(m, st):
                for out in interp.outcomes(m, st, op, record=False):
                    kk = tuple(out.state[v] for v in m.vars)
                    if kk in parent:
                        continue
                    parent[kk] = (k, op)
                    if clean(m, out.state):
                        path = []
                        while parent[kk] is not None:
                            kk, o = parent[kk]
                            path.append(o)
                        return path[::-1]
                    nxt.append((kk, out.state))
        frontier = nxt
    return None


class ExplicitEngine:
    name = "explicit"

    def __init__(self, model: Model, max_states: int | None = None, keep_graph: bool = False,
                 symmetry: bool = True, observe: Callable[[dict, interp.Outcome], None] | None = None):
        """`observe(before, outcome)`, when given, sees every transition the search runs,
        with its events recorded (coverage); the search then goes on to the full depth even
        once every property is violated."""
        self.m = model
        self.observe = observe
        self._root: dict = {}                 # canonical -> real patch names in the start state
        self.sym = Symmetry(model) if symmetry and not keep_graph else None
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

    def run(self, depth: int, props: list[str], timeout: float | None = None,
            start: dict | None = None, first: Sequence[Op] | None = None) -> Search:
        """Breadth-first search to `depth` operations. `start`: explore from this state
        instead of the initial one (traces then start there too: the caller prepends how
        it got there); `first`: the only operations allowed as the first step."""
        m = self.m
        t0 = time.perf_counter()
        res = Search()
        open_props = set(props)
        s0, ren0 = (dict(start) if start is not None else interp.initial(m)), {}
        if self.sym:
            s0, ren0 = self.sym.canon(s0)
        self._root = {canon: orig for orig, canon in ren0.items()}     # canonical -> real names at the root
        first_ops = None if first is None else {_rename_op(op, ren0) for op in first}
        k0 = self.key(s0)
        parent: dict[tuple, tuple | None] = {k0: None}   # key -> (parent key, op, choices, renaming)
        frontier = [(k0, s0)]
        if self.keep_graph:
            self.level[k0], self.values[k0] = 0, s0
        for d in range(1, depth + 1):
            nxt = []
            for k, state in frontier:
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    res.unknown = "timeout"
                    return self._done(res, parent, d - 1)
                for op in interp.possible(m, state):
                    if d == 1 and first_ops is not None and op not in first_ops:
                        continue
                    for out in interp.outcomes(m, state, op, record=self.observe is not None):
                        if self.observe is not None:
                            self.observe(state, out)
                        for p, _ in out.violations:
                            if p in open_props and p not in res.found:
                                res.found[p] = (d, self._trace(parent, k, op, out.choices))
                        after, ren = self.sym.canon(out.state) if self.sym else (out.state, {})
                        kk = self.key(after)
                        if kk not in parent:
                            parent[kk] = (k, op, out.choices, ren)
                            nxt.append((kk, after))
                            if self.keep_graph:
                                self.level[kk], self.values[kk] = d, out.state
                        if self.keep_graph:
                            self.edges.append((k, kk, op, tuple(out.failed_choices),
                                               tuple(sorted({p for p, _ in out.violations}))))
                if self.max_states is not None and len(parent) > self.max_states:
                    res.unknown = f"more than {self.max_states} states"
                    return self._done(res, parent, d - 1)
            open_props -= res.found.keys()
            res.per_depth.append((d, time.perf_counter() - t0))
            res.depth_done = d
            if not nxt:                          # nothing new: the reachable states are all known
                res.complete_at = d - 1
                res.depth_done = depth
                return self._done(res, parent, d - 1)
            self.diameter = d
            if not open_props and not self.keep_graph and self.observe is None:
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

        back = {k for k, st in eng.values.items() if clean(m, st)}
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
            k, o, c, _ = eng.parent[k]
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

    def _trace(self, parent: dict, k: tuple, op, choices: dict) -> RawTrace:
        """The path to k, then op: operations and choices named as in a real run.

        Each edge is stored in the names of its (canonical) source state; walking from the
        root, `real` maps canonical names to the names of the actual run."""
        edges = [(op, choices, {})]
        while parent[k] is not None:
            k, o, c, ren = parent[k]
            edges.append((o, c, ren))
        edges.reverse()
        out = RawTrace([], [], None)
        real: dict = dict(self._root)
        for i, (o, c, _) in enumerate(edges):
            out.ops.append(_rename_op(o, real))
            out.choices.append({_rename_choice(self.m, key, real): v for key, v in c.items()})
            ren = edges[i][2] if i < len(edges) - 1 else {}
            if ren:                         # the next state was renamed: compose the inverse
                inverse = {canon: orig for orig, canon in ren.items()}
                real = {n: real.get(inverse.get(n, n), inverse.get(n, n)) for n in set(real) | set(inverse)}
        return out
