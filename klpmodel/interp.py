"""The concrete interpreter: kernel.step run on Python values.

Used to replay every counterexample the solver returns, to render traces, and by tests
(an exhaustive breadth-first search over small specs cross-checks the Z3 engine).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import kernel
from .backend import Concrete
from .kernel import Model, Op


@dataclass
class Outcome:
    """One way an operation can go from a state (one assignment of its choices)."""
    op: Op
    state: dict
    choices: dict[tuple, bool]         # every choice consulted, with the value taken
    violations: list[tuple[str, object]]
    events: list[tuple] = field(default_factory=list)

    @property
    def failed_choices(self) -> list[tuple]:
        return [k for k, v in self.choices.items() if v]


def initial(model: Model) -> dict:
    return dict(model.init)


def possible(model: Model, state: dict) -> list[Op]:
    """The operations of the search that the kernel does not refuse in this state."""
    return kernel.possible(model, Concrete(state), model.ops)


def refusal(model: Model, state: dict, op: Op) -> str | None:
    """Why the kernel refuses op in this state (None: it is possible)."""
    return kernel.refusal(model, Concrete(state), op)


def apply(model: Model, state: dict, op: Op, choices=None, record: bool = True) -> Outcome:
    """Run op with the given choices: a dict (missing keys: the statement does not fail)
    or a function of the key. `record=False` skips the events (for searches)."""
    pick = choices if callable(choices) else (lambda key, d=dict(choices or {}): d.get(key, False))
    seen: dict[tuple, bool] = {}

    def choose(key):
        seen[key] = bool(pick(key))
        return seen[key]

    c = Concrete(dict(state), choose, record)
    kernel.step(model, c, op)
    return Outcome(op, c.st, seen, c.violations, c.events)


def outcomes(model: Model, state: dict, op: Op, record: bool = True) -> list[Outcome]:
    """Every outcome of op: a depth-first walk over the choices it consults, in the order
    it consults them (a run's fixed choices are always a prefix of that order)."""
    out, todo = [], [{}]
    while todo:
        fixed = todo.pop()
        o = apply(model, state, op, fixed, record)
        out.append(o)
        keys = list(o.choices)
        for n, k in enumerate(keys):
            if k not in fixed:
                alt = {kk: o.choices[kk] for kk in keys[:n]}
                alt[k] = True
                todo.append(alt)
    return out
