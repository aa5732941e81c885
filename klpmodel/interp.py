"""The concrete interpreter: kernel.step run on Python values.

Used to replay every counterexample the solver returns, to render traces, and by tests
(an exhaustive breadth-first search over small specs cross-checks the Z3 engine).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Generic, NamedTuple, TypeVar

from . import kernel
from .backend import Choose, Concrete, Tracking, Val
from .errors import InternalError
from .events import Event, Refusal, Site
from .kernel import Choice, Model, Op

State = dict[str, Val]                  # a state: every variable of Model.vars with its value
StateKey = tuple[Val, ...]              # a state as the explicit search stores it: Model.vars' values in order
Violations = list[tuple[str, Site]]     # (property, where it broke)
Choices = Mapping[Choice, bool] | Callable[[Choice], bool] | None
MakeBackend = Callable[[State, Choose], Concrete]
A = TypeVar("A")


@dataclass
class Outcome:
    """One way an operation can go from a state (one assignment of its choices)."""
    op: Op
    state: State
    choices: dict[Choice, bool]        # every choice consulted, with the value taken
    violations: Violations
    events: list[Event] = field(default_factory=list)

    @property
    def failed_choices(self) -> list[Choice]:
        return [k for k, v in self.choices.items() if v]


def initial(model: Model) -> State:
    return dict(model.init)


def possible(model: Model, state: State) -> list[Op]:
    """The operations of the search that the kernel does not refuse in this state."""
    return kernel.possible(model, Concrete(state), model.ops)


def refusal(model: Model, state: State, op: Op) -> Refusal | None:
    """Why the kernel refuses op in this state (None: it is possible)."""
    return kernel.refusal(model, Concrete(state), op)


def apply(model: Model, state: State, op: Op, choices: Choices = None, record: bool = True,
          backend: MakeBackend | None = None) -> Outcome:
    """Run op with the given choices: a dict (missing keys: the statement does not fail)
    or a function of the key. `record=False` skips the events (for searches); `backend`
    makes the context of the run (default Concrete)."""
    pick = choices if callable(choices) else _fixed(choices)
    seen: dict[Choice, bool] = {}

    def choose(key: Choice) -> bool:
        seen[key] = bool(pick(key))
        return seen[key]

    c = Concrete(dict(state), choose, record) if backend is None else backend(dict(state), choose)
    kernel.step(model, c, op)
    return Outcome(op, c.st, seen, c.violations, c.events)


def _fixed(choices: Mapping[Choice, bool] | None) -> Callable[[Choice], bool]:
    """The oracle of a dict of choices: a missing key does not fail."""
    fixed = dict(choices or {})
    return lambda key: fixed.get(key, False)


def outcomes(model: Model, state: State, op: Op, record: bool = True, backend: MakeBackend | None = None) -> list[Outcome]:
    """Every outcome of op: a depth-first walk over the choices it consults, in the order
    it consults them (a run's fixed choices are always a prefix of that order)."""
    out: list[Outcome] = []
    todo: list[dict[Choice, bool]] = [{}]
    while todo:
        fixed = todo.pop()
        o = apply(model, state, op, fixed, record, backend)
        out.append(o)
        keys = list(o.choices)
        for n, k in enumerate(keys):
            if k not in fixed:
                alt = {kk: o.choices[kk] for kk in keys[:n]}
                alt[k] = True
                todo.append(alt)
    return out


_Node = Any      # a trie node: (answer,) | [index, {value: node}] | [indices, values, getter, node]


class _Trie(Generic[A]):
    """Answers keyed by the values a run read, in the order it read them: [(index, value)].

    Nodes: (answer,) a leaf; [index, {value: node}] a branch; [indices, values, getter,
    node] a chain of reads that have not branched yet (most reads never branch: one node
    per run of them saves memory and walking). Lookups compare values with ==, as dict
    keys do."""

    def __init__(self) -> None:
        self.root: _Node = None

    def find(self, k: StateKey) -> tuple[A] | None:
        """The leaf holding the answer for state k, or None."""
        node = self.root
        while node.__class__ is list:
            if len(node) == 2:
                node = node[1].get(k[node[0]])
            elif node[2](k) == node[1]:
                node = node[3]
            else:
                return None
        leaf: tuple[A] | None = node
        return leaf

    @staticmethod
    def _chain(idxs: tuple[int, ...], vals: tuple[Val, ...], nxt: _Node) -> _Node:
        if not idxs:
            return nxt
        if len(idxs) == 1:
            return [idxs[0], {vals[0]: nxt}]
        return [idxs, vals, itemgetter(*idxs), nxt]

    def insert(self, path: list[tuple[int, Val]], answer: A) -> None:
        def fresh(rest: list[tuple[int, Val]]) -> _Node:
            return self._chain(tuple(i for i, _ in rest), tuple(v for _, v in rest), (answer,))

        def clash() -> InternalError:
            return InternalError("memo: two runs that read the same values went on to read different "
                                 "variables or to different answers: the rules are not deterministic")

        if self.root is None:
            self.root = fresh(path)
            return
        node, at = self.root, 0
        while True:
            if node.__class__ is not list or at == len(path):
                raise clash()
            if len(node) == 2:                          # branch
                idx, value = path[at]
                if idx != node[0]:
                    raise clash()
                if value not in node[1]:
                    node[1][value] = fresh(path[at + 1:])
                    return
                node, at = node[1][value], at + 1
                continue
            idxs, vals = node[0], node[1]               # chain: how far does the path follow it?
            j = 0
            while j < len(idxs) and at + j < len(path) and path[at + j] == (idxs[j], vals[j]):
                j += 1
            if j == len(idxs):
                node, at = node[3], at + j
                continue
            if at + j == len(path) or path[at + j][0] != idxs[j]:
                raise clash()
            branch = [idxs[j], {vals[j]: self._chain(idxs[j + 1:], vals[j + 1:], node[3]),
                                path[at + j][1]: fresh(path[at + j + 1:])}]
            node[:] = self._chain(idxs[:j], vals[:j], branch)   # in place: the parent keeps pointing here
            return


Written = TypeVar("Written", tuple[int, ...], frozenset[int])
# an outcome as Memo stores it: the indices the run wrote, their values, its choices and
# violations, and the written indices as a set
_Run = tuple[tuple[int, ...], tuple[Val, ...], dict[Choice, bool], Violations, frozenset[int]]


class Successor(NamedTuple):
    """One outcome of an operation from a state, as the explicit search uses it."""
    after: StateKey
    choices: dict[Choice, bool]        # every choice consulted, with the value taken
    violations: Violations
    written: frozenset[int]            # the indices of the variables the run wrote


class Memo:
    """`possible` and `outcomes` for the explicit search, on state tuples (the values of
    Model.vars in order), memoized exactly.

    Both are deterministic functions of the state variables the rules read (through the
    backend's `get`; choices are enumerated from the state alone). A run with
    `backend.Tracking` notes those variables and their values in the order first read;
    the answer is stored in a trie keyed by those values in that order. A later state
    walks the trie reading its own values: where it reaches the answer, a run of the rules
    on it would read exactly the same values, so it would give the same answer. States
    that differ only in variables the rules do not read for that operation (the list
    order for `rmmod`, the data of other patches for `reverse`, ...) share one run. An
    outcome is stored as the variables the run wrote, applied to the state it is used on."""

    def __init__(self, model: Model):
        self.m = model
        self.names = tuple(model.vars)
        self.index = {v: i for i, v in enumerate(self.names)}
        self.possible_trie: _Trie[tuple[Op, ...]] = _Trie()
        self.tries: dict[Op, _Trie[list[_Run]]] = {op: _Trie() for op in model.ops}
        self.shared: dict[Any, Any] = {}       # equal tuples (and sets) of written variables, stored once
        self.hits = 0               # answers found in the memo

    def _path(self, reads: State) -> list[tuple[int, Val]]:
        return [(self.index[name], value) for name, value in reads.items()]

    def _share(self, t: Written) -> Written:
        shared: Written = self.shared.setdefault(t, t)      # equal values of one type: the same type
        return shared

    def possible(self, k: StateKey) -> tuple[Op, ...]:
        hit = self.possible_trie.find(k)
        if hit is not None:
            self.hits += 1
            return hit[0]
        reads: State = {}
        answer = tuple(kernel.possible(self.m, Tracking(dict(zip(self.names, k, strict=True)), None, reads), self.m.ops))
        self.possible_trie.insert(self._path(reads), answer)
        return answer

    def outcomes(self, k: StateKey, op: Op) -> list[Successor]:
        """Every outcome of op from k (`outcomes`), as the search needs it."""
        hit = self.tries[op].find(k)
        if hit is not None:
            self.hits += 1
            answer = hit[0]
        else:
            reads: State = {}
            runs: list[Tracking] = []

            def backend(state: State, choose: Choose) -> Tracking:
                runs.append(Tracking(state, choose, reads))
                return runs[-1]

            outs = outcomes(self.m, dict(zip(self.names, k, strict=True)), op, record=False, backend=backend)
            answer = []
            for c, o in zip(runs, outs, strict=True):
                idxs = self._share(tuple(sorted(self.index[v] for v in c.written)))
                vals = tuple(c.st[self.names[i]] for i in idxs)     # (not shared: 1 == True)
                answer.append((idxs, vals, o.choices, o.violations, self._share(frozenset(idxs))))
            self.tries[op].insert(self._path(reads), answer)
        out = []
        for idxs, vals, choices, violations, written in answer:
            st = list(k)
            for i, v in zip(idxs, vals, strict=True):
                st[i] = v
            out.append(Successor(tuple(st), choices, violations, written))
        return out

