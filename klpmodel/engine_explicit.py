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
from operator import itemgetter
from typing import Any, NamedTuple, cast

from . import interp
from .backend import Val
from .deadline import Deadline
from .engine_z3 import Search
from .errors import InternalError, Stopped
from .events import OFFLIST, UNLOADED
from .interp import State, StateKey
from .kernel import ORIGINAL, Choice, Model, Op
from .ts import RawTrace

BUDGET_REASON = "more than"       # "more than N states": the state budget (max_states) stopped the search

Slots = list[tuple[int, int]]                       # a state's block slots: (live, content) variable indices
Getter = Callable[[Sequence[Val]], Any]             # an itemgetter: one value, or a tuple of 2+
Orders = tuple[tuple[int, ...] | None, ...]         # per group of interchangeable patches: how it was sorted
Renaming = dict[str, str]                           # patch name -> patch name
# the search tree: key -> (parent key, operation, its choices, how the key's state was renamed)
Parents = dict[StateKey, tuple[StateKey, Op, dict[Choice, bool], Renaming] | None]


class Symmetry:
    """The quotient the search runs on: states equal up to renaming interchangeable patches
    (Model.interchangeable: the rules never read a name) and renumbering block slots (a
    slot's number only matters through pointer equality) are one state. Renaming maps runs
    to runs with the same violations at the same steps, so verdicts and shortest depths are
    unchanged (tests/test_engine.py compares with the unreduced search and with Z3).

    Works on state tuples (the values of Model.vars in order, as the search stores them);
    every variable name is resolved to its index once, here."""

    def __init__(self, m: Model):
        self.m = m
        ix = {v: k for k, v in enumerate(m.vars)}
        self.groups = [[m.P[i].name for i in g] for g in m.interchangeable()]
        self.local: dict[str, list[int]] = {}
        self.keyvars: dict[str, list[tuple[int, Slots | None]]] = {}
        self.getters: dict[str, Getter] = {}               # patch -> its local variables' values, as a tuple
        self.pointers: dict[str, list[tuple[int, Slots]]] = {}   # patch -> [(place in that tuple, its slots)]
        for p in m.P:                       # a patch's own variables, aligned across a group
            own = m.patch_vars(m.index[p.name])
            # for sorting: a pointer is compared by what it points at (live or freed, content)
            keyvars = [(ix[v], None if s is None else [(ix[a], ix[b]) for a, b in m.slot_vars(s)]) for v, s in own]
            self.local[p.name] = [ix[v] for v, _ in own]
            self.keyvars[p.name] = keyvars
            self.getters[p.name] = itemgetter(*self.local[p.name])      # 3+ variables: a tuple
            self.pointers[p.name] = [(at, slots) for at, (_, slots) in reversed(list(enumerate(keyvars)))
                                     if slots is not None]
        # per state with 2+ slots: its slots' (live, cont) indices, and its pointers in spec order
        self.slotvars: list[tuple[Slots, list[int], frozenset[int], Getter]] = []
        for s in m.state_names:
            if m.slots[s] >= 2:
                ptrs = [ix[v] for v in m.pointer_vars(s)]
                self.slotvars.append(([(ix[a], ix[b]) for a, b in m.slot_vars(s)],
                                      ptrs, frozenset(ptrs), itemgetter(*ptrs)))    # 2+ pointers: a tuple
        # per group: every variable its order depends on (the members' own, their states' slots)
        self.keyed: list[frozenset[int]] = []
        for g in self.groups:
            keyed: set[int] = set()
            for n in g:
                for v, slots in self.keyvars[n]:
                    keyed.add(v)
                    keyed.update(x for pair in slots or () for x in pair)
            self.keyed.append(frozenset(keyed))
        self.members = [[(self.getters[n], self.pointers[n]) for n in g] for g in self.groups]
        self._movers: dict[Orders, Getter] = {}

    @staticmethod
    def _key(state: StateKey, getter: Getter, pointers: list[tuple[int, Slots]]) -> tuple[Val, ...]:
        """How the members of a group are ordered: their own variables in `local` order,
        a pointer as (0, 0) when NULL, else (1 live / 2 freed, content) of its block (the
        pair is spliced in flat: every member has it at the same place)."""
        key: tuple[Val, ...] = getter(state)
        for at, slots in pointers:             # from the last one: `at` stays valid
            value = key[at]
            if value == 0:
                key = key[:at] + (0, 0) + key[at + 1:]
            else:
                live, cont = slots[value - 1]
                key = key[:at] + (1 + (not state[live]), state[cont]) + key[at + 1:]
        return key

    def canon(self, state: StateKey, changed: frozenset[int] | None = None) -> tuple[StateKey, Orders | None]:
        """(the canonical state, how it was renamed: per group, None or the positions of its
        members in the order they were mapped onto the group; `renaming` names it).

        `changed`: when `state` is a canonical state with only these variables (indices)
        assigned, a group none of whose sort-key variables changed is still in order, and a
        state's slots whose pointers neither changed nor were renamed are still numbered in
        order: they are not looked at again (the result is the same)."""
        key = self._key
        sorted_as: list[tuple[int, ...] | None] | None = None
        for gi, (keyed, members) in enumerate(zip(self.keyed, self.members, strict=True)):
            if changed is not None and keyed.isdisjoint(changed):
                continue
            keys = [key(state, getter, pointers) for getter, pointers in members]
            prev = keys[0]
            for k in keys:
                if k < prev:
                    break
                prev = k
            else:
                continue                        # already in order (a stable sort keeps it)
            if sorted_as is None:
                sorted_as = [None] * len(self.groups)
            sorted_as[gi] = tuple(sorted(range(len(members)), key=keys.__getitem__))
        orders = None if sorted_as is None else tuple(sorted_as)
        if orders is not None:
            move = self._movers.get(orders)
            if move is None:
                move = self._movers[orders] = self._mover(orders)
            state = move(state)
        st: list[Val] | None = None
        for lc, ptrs, ptrset, getptrs in self.slotvars:
            if changed is not None and orders is None and ptrset.isdisjoint(changed):
                continue
            values = getptrs(state if st is None else st)
            top = 0                             # slots 1..top seen so far, in order
            for ptr in values:
                if ptr > top:
                    if ptr != top + 1:
                        break
                    top = ptr
            else:
                continue                        # referenced slots already come first, in order
            seen: list[int] = []
            for ptr in values:
                if ptr and ptr - 1 not in seen:
                    seen.append(ptr - 1)
            if st is None:
                st = list(state)
            order = seen + [j for j in range(len(lc)) if j not in seen]
            new = {old: i for i, old in enumerate(order)}
            moved = [(st[lc[j][0]], st[lc[j][1]]) for j in order]
            for (live, cont), (lv, cv) in zip(lc, moved, strict=True):
                st[live], st[cont] = lv, cv
            for v in ptrs:
                if st[v]:
                    st[v] = new[st[v] - 1] + 1
        return (state if st is None else tuple(st)), orders

    def _mover(self, orders: Orders) -> Getter:
        """The state with each group's members' variables moved as `orders` says, as one
        itemgetter (made once per combination of orders)."""
        idx = list(range(len(self.m.vars)))
        for g, order in zip(self.groups, orders, strict=True):
            if order is not None:
                for target, source in zip(g, (g[i] for i in order), strict=True):
                    for v, w in zip(self.local[target], self.local[source], strict=True):
                        idx[v] = w
        return itemgetter(*idx)

    def renaming(self, orders: Orders | None) -> Renaming:
        """Patch name in the state given to `canon` -> name in its result."""
        return {(g if order is None else [g[i] for i in order])[t]: target
                for g, order in zip(self.groups, orders or [None] * len(self.groups), strict=True)
                for t, target in enumerate(g)}


def _rename_op(op: Op, names: Renaming) -> Op:
    if op.word in ("load", "disable", "rmmod") and op.arg in names:
        return Op(op.word, names[op.arg], op.params)
    if op.word == "call" and op.arg is not None:           # PATCH.FUNCTION (issue 14)
        patch, _, func = op.arg.partition(".")
        if patch in names:
            return Op(op.word, f"{names[patch]}.{func}", op.params)
    return op


def _rename_choice(m: Model, key: Choice, names: Renaming) -> Choice:
    """A choice of a renamed patch: the site at the same position in the other patch
    (interchangeable patches have the same statements in the same order, on other lines)."""
    if names.get(key.patch, key.patch) == key.patch:
        return key
    renamed = m.choice_at(names[key.patch], key.obj, key.callback, key.index)
    if renamed is None:
        raise InternalError(f"symmetry: {names[key.patch]} has no site {key.obj} {key.callback}[{key.index}] as "
                            f"{key.patch} has: the two patches are not interchangeable")
    return renamed


def clean(m: Model, state: State) -> bool:
    """recoverable's target: no patch on klp_patches and every system state original."""
    return m.view(state).clean()


def way_back(m: Model, state: State) -> list[Op] | None:
    """A shortest operation sequence from state to a clean one (None: there is none).
    Breadth-first over every outcome, so "None" means no sequence of any length exists."""
    if clean(m, state):
        return []
    key = tuple(state[v] for v in m.vars)
    parent: dict[StateKey, tuple[StateKey, Op] | None] = {key: None}
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
                        step = parent[kk]
                        while step is not None:
                            kk, o = step
                            path.append(o)
                            step = parent[kk]
                        return path[::-1]
                    nxt.append((kk, out.state))
        frontier = nxt
    return None


class DeadEnd(NamedTuple):
    """recoverable's counterexample: the way to the nearest state from which no sequence of
    operations gets back to a clean kernel, and why (what never returns)."""
    trace: RawTrace
    reason: str


class ExplicitEngine:
    name = "explicit"

    def __init__(self, model: Model, max_states: int | None = None, keep_graph: bool = False,
                 symmetry: bool = True, observe: Callable[[State, interp.Outcome], None] | None = None,
                 fold_rmmod: bool = False):
        """`observe(before, outcome)`, when given, sees every transition the search runs,
        with its events recorded (coverage); the search then goes on to the full depth even
        once every property is violated.

        `fold_rmmod`: a livepatch module off klp_patches and not forced is taken as removed
        (its `rmmod` folded into its next `load`; docs/design.md, "Reductions"). Every
        reachable violation is kept, but depths no longer count those `rmmod`s: for
        unbounded answers (prove by exhaustion), not for shortest traces. The traces it
        returns have the `rmmod`s put back, so they replay as they are."""
        self.m = model
        names = list(model.vars)
        self.fold = [(names.index(ph), names.index(f)) for ph, f in model.rmmod_folds()] if fold_rmmod else []
        self._fold_ops = {names.index(model.v.phase[i]): Op("rmmod", p.name) for i, p in enumerate(model.P)}
        self.sym = Symmetry(model) if symmetry and not keep_graph else None
        self.max_states = max_states
        self.names = list(model.vars)
        self.memo = interp.Memo(model)
        self.states = 0
        self.diameter = 0
        self.keep_graph = keep_graph
        # (from key, to key, op, failed choices, violated properties)
        self.edges: list[tuple[StateKey, StateKey, Op, tuple[Choice, ...], tuple[str, ...]]] = []
        self.level: dict[StateKey, int] = {}  # key -> BFS level (first reached after that many operations)
        self.values: dict[StateKey, State] = {}   # key -> state
        self.observe = observe
        self.on_depth: Callable[[int, int | None], None] | None = None   # progress: (depth done, states)
        self.parent: Parents = {}
        self._root: Renaming = {}             # canonical -> real patch names in the start state

    def key(self, state: State) -> tuple[Val, ...]:
        """A state as the search stores it: the values of Model.vars, in order."""
        return tuple(state[v] for v in self.names)

    def run(self, depth: int, props: list[str], timeout: Deadline | float | None = None,
            start: State | None = None, first: Sequence[Op] | None = None) -> Search:
        """Breadth-first search to `depth` operations. `start`: explore from this state
        instead of the initial one (traces then start there too: the caller prepends how
        it got there); `first`: the only operations allowed as the first step. Stops at the
        deadline (`timeout`: seconds or a Deadline), past `max_states`, or out of memory,
        with what it found and the reason in `unknown`."""
        res = Search()
        self.parent = {}
        try:
            return self._run(res, depth, props, Deadline.of(timeout), start, first)
        except Stopped as e:
            res.unknown = e.reason
        except MemoryError:
            reached = len(self.parent)
            self.parent = {}                            # free it: the report still has to be made
            res.unknown = "out of memory (lower --max-states or --depth)"
            self._done(res, {}, self.diameter)
            self.states = reached
            return res
        return self._done(res, self.parent, self.diameter)

    def _run(self, res: Search, depth: int, props: list[str], deadline: Deadline,
             start: State | None, first: Sequence[Op] | None) -> Search:
        m, sym, names = self.m, self.sym, self.names
        memo = self.memo
        t0 = time.perf_counter()
        open_props = set(props)
        self._start = dict(start if start is not None else interp.initial(m))
        k0, ren0 = self.key(self._start), Renaming()
        if sym:
            k0, perm = sym.canon(k0)
            ren0 = sym.renaming(perm)
        self._root = {canon: orig for orig, canon in ren0.items()}     # canonical -> real names at the root
        first_ops = None if first is None else {_rename_op(op, ren0) for op in first}
        parent: Parents = {k0: None}
        self.parent = parent
        frontier = [k0]
        if self.keep_graph:
            self.level[k0], self.values[k0] = 0, dict(zip(names, k0, strict=True))
        for d in range(1, depth + 1):
            nxt: list[StateKey] = []
            for k in frontier:
                if deadline.expired():
                    res.unknown = deadline.reason
                    return self._done(res, parent, d - 1)
                for op in memo.possible(k):
                    if d == 1 and first_ops is not None and op not in first_ops:
                        continue
                    if deadline.end is not None and deadline.expired():     # a state of a large spec is slow too
                        res.unknown = deadline.reason
                        return self._done(res, parent, d - 1)
                    if self.observe is not None:          # coverage: the same outcomes, with their events
                        before = dict(zip(names, k, strict=True))
                        for out in interp.outcomes(m, before, op, record=True):
                            self.observe(before, out)
                    for after, choices, violations, written in memo.outcomes(k, op):
                        if self.fold:
                            if self.observe is not None:
                                self._observe_folded(after)
                            after, written = self._folded(after, written)
                        for p, _ in violations:
                            if p in open_props and p not in res.found:
                                res.found[p] = (d, self._trace(parent, k, op, choices))
                        kk, perm = sym.canon(after, written) if sym else (after, None)
                        if kk not in parent:
                            parent[kk] = (k, op, choices, sym.renaming(perm) if sym else {})
                            nxt.append(kk)
                            if self.keep_graph:
                                self.level[kk], self.values[kk] = d, dict(zip(names, after, strict=True))
                        if self.keep_graph:
                            self.edges.append((k, kk, op, tuple(c for c, v in choices.items() if v),
                                               tuple(sorted({p for p, _ in violations}))))
                if self.max_states is not None and len(parent) > self.max_states:
                    res.unknown = f"{BUDGET_REASON} {self.max_states} states"
                    return self._done(res, parent, d - 1)
            open_props -= res.found.keys()
            res.per_depth.append((d, time.perf_counter() - t0))
            if self.on_depth is not None:
                self.on_depth(d, len(parent))
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

    def _observe_folded(self, state: StateKey) -> None:
        """Coverage sees the rmmods the fold applies as transitions too (their lifecycle edge)."""
        off = [ph for ph, f in self.fold if state[ph] == OFFLIST and not state[f]]
        if off and self.observe is not None:
            before = dict(zip(self.names, state, strict=True))
            for ph in off:
                for out in interp.outcomes(self.m, before, self._fold_ops[ph], record=True):
                    self.observe(before, out)

    def _folded(self, state: StateKey, written: frozenset[int]) -> tuple[StateKey, frozenset[int]]:
        """The state with every removable livepatch module removed (fold_rmmod), and the
        variables written with the phases it changed (the symmetry's canon reads them)."""
        off = [ph for ph, f in self.fold if state[ph] == OFFLIST and not state[f]]
        if not off:
            return state, written
        st = list(state)
        for ph in off:
            st[ph] = UNLOADED
        return tuple(st), written | frozenset(off)

    def _done(self, res: Search, parent: Parents, diameter: int) -> Search:
        self.states = len(parent)
        self.diameter = diameter
        self.parent = parent
        return res

    def recoverable(self, timeout: Deadline | float | None = None) -> DeadEnd | str | None:
        """AG EF clean, over the whole reachable state space.

        Returns None when every reachable state can get back to a clean state (no patch on
        klp_patches, every system state original); else the DeadEnd nearest the start; or
        the string reason the space could not be explored ("timeout" when exploring it took
        more than `timeout` seconds)."""
        eng = ExplicitEngine(self.m, max_states=self.max_states, keep_graph=True, fold_rmmod=bool(self.fold))
        res = eng.run(1 << 30, [], timeout=timeout)
        if res.unknown:
            return res.unknown
        m = self.m
        preds: dict[StateKey, set[StateKey]] = {}
        succs: dict[StateKey, set[StateKey]] = {}
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
        views = [m.view(eng.values[k]) for k in closure]
        reasons = []
        for s_ in m.state_names:
            seen = {v.value(s_) for v in views}
            if ORIGINAL not in seen:
                reasons.append(f"{s_} never becomes original again (it can only be "
                               f"{', '.join(m.describe_value(s_, v) for v in sorted(seen))})")
        for p in m.P:
            if all(v.listed(p.name) for v in views):
                reasons.append(f"{p.name} can never leave klp_patches")
        reason = "; ".join(reasons) or (f"none of the {len(closure)} states reachable from here has no patch "
                                        f"installed and every state original")
        tail = RawTrace([], [], None)
        edge = eng.parent[target]
        while edge is not None:
            k, o, c, _ = edge
            tail.ops.insert(0, o)
            tail.choices.insert(0, {key: v for key, v in c.items()})   # a copy, keyed as RawTrace says
            edge = eng.parent[k]
        if eng.fold:                    # (a folded removal can get back: recoverability is kept)
            tail = eng._unfold(tail)
        return DeadEnd(tail, f"{reason} ({len(closure)} states reachable from there)")

    def graph(self) -> Any:
        """The explored state space as a networkx DiGraph (built only when asked for)."""
        import networkx as nx

        g = nx.MultiDiGraph()
        for k, lvl in self.level.items():
            g.add_node(k, level=lvl, state=self.values[k])
        for a, b, op, failed, viol in self.edges:
            g.add_edge(a, b, op=str(op), failed=failed, violations=viol)
        return g

    def _trace(self, parent: Parents, k: StateKey, op: Op, choices: dict[Choice, bool]) -> RawTrace:
        """The path to k, then op: operations and choices named as in a real run.

        Each edge is stored in the names of its (canonical) source state; walking from the
        root, `real` maps canonical names to the names of the actual run."""
        edges: list[tuple[Op, dict[Choice, bool], Renaming]] = [(op, choices, {})]
        edge = parent[k]
        while edge is not None:
            k, o, c, ren = edge
            edges.append((o, c, ren))
            edge = parent[k]
        edges.reverse()
        out = RawTrace([], [], None)
        real = dict(self._root)
        for i, (o, c, _) in enumerate(edges):
            out.ops.append(_rename_op(o, real))
            out.choices.append({_rename_choice(self.m, key, real): v for key, v in c.items()})
            ren = edges[i][2] if i < len(edges) - 1 else {}
            if ren:                         # the next state was renamed: compose the inverse
                inverse = {canon: orig for orig, canon in ren.items()}
                real = {n: real.get(inverse.get(n, n), inverse.get(n, n)) for n in set(real) | set(inverse)}
        return self._unfold(out) if self.fold else out

    def _unfold(self, t: RawTrace) -> RawTrace:
        """Put the folded `rmmod`s back: run the trace from the start and remove a module
        off the list right before it is loaded again."""
        out = RawTrace([], [], None)
        state = dict(self._start)
        for op, choices in zip(t.ops, t.choices, strict=True):
            if op.word == "load" and self.m.view(state).phase(op.target) == "off-list":
                rmmod = Op("rmmod", op.target)
                out.ops.append(rmmod)
                out.choices.append({})
                state = interp.apply(self.m, state, rmmod, {}, record=False).state
            out.ops.append(op)
            out.choices.append(choices)
            state = interp.apply(self.m, state, op, cast(dict[Choice, bool], choices), record=False).state
        return out
