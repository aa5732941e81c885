"""`klpmodel verify`: run an engine, replay every counterexample concretely, build the Result."""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import interp
from .deadline import Deadline
from .errors import InternalError, Stopped, UserError
from .events import Event, NoWayBack, Site
from .kernel import Choice, Model, Op
from .spec import Spec

if TYPE_CHECKING:
    from .engine_z3 import Search, Z3Engine


@dataclass(frozen=True)
class Step:
    """One operation of a trace, as the concrete interpreter ran it."""
    op: Op
    failed: tuple[Choice, ...]          # the choices taken: the sites that failed
    events: tuple[Event, ...]           # what the kernel and the callbacks did (events.py)
    before: dict
    after: dict
    violations: tuple[tuple[str, Site], ...]


@dataclass(frozen=True)
class Violation:
    property: str
    depth: int
    trace: tuple[Step, ...]
    reason: str | None = None           # recoverable: why no way back exists
    index: int = 1                      # the n-th shortest trace reported for this property

    @builtins.property                  # (the field `property` hides the builtin in this class)
    def where(self) -> Site | None:
        """What broke the property in the last step: a statement (events.Where) or the
        kernel event that judged it (events.FailedLoad, StateLeft, ...)."""
        if self.reason is not None:
            return NoWayBack(self.reason)
        for prop, where in self.trace[-1].violations:
            if prop == self.property:
                return where
        return None


@dataclass(frozen=True)
class Result:
    spec: Spec
    model: Model
    engine: str
    depth: int
    properties: tuple[str, ...]
    violations: tuple[Violation, ...]
    unknown: str | None = None            # why the answer is incomplete (timeout, solver unknown)
    depth_done: int = 0
    complete_at: int | None = None        # the search space was exhausted: holds for any length
    seconds: float = 0.0
    per_depth: tuple = field(default_factory=tuple)
    states: int | None = None             # explicit engine: distinct states reached
    diameter: int | None = None           # explicit engine: deepest level with a new state
    why_engine: str = ""                  # how --engine auto chose
    more: tuple[Violation, ...] = ()      # --max-counterexamples: further shortest traces, by property
    capped: tuple[str, ...] = ()          # --max-counterexamples: properties with more shortest traces than shown
    reductions: tuple[str, ...] = ()      # the reductions the search used, in words (docs/design.md)

    def traces(self, prop: str) -> tuple[Violation, ...]:
        """Every reported trace of prop: the shortest first, then the others of that length."""
        return tuple(v for v in self.violations + self.more if v.property == prop)

    @property
    def verdict(self) -> str:
        if self.unknown:
            return "unknown"
        return "violation" if self.violations else "holds"

    @property
    def exit_code(self) -> int:
        return {"holds": 0, "violation": 1, "unknown": 3}[self.verdict]


def replay(model: Model, ops: list[Op], choices: list[dict], states: list[dict] | None, prop: str,
           check_last: bool = True) -> tuple[Step, ...]:
    """Run a trace through the concrete interpreter; any disagreement with the solver is a bug."""
    state = interp.initial(model)
    steps = []
    for t, op in enumerate(ops):
        why = interp.refusal(model, state, op)
        if why is not None:
            raise InternalError(f"replay of the {prop} counterexample: step {t + 1} '{op}' is not possible "
                                f"in the interpreter ({why}) but the engine took it")
        out = interp.apply(model, state, op, choices[t])
        if states is not None:
            diff = sorted(k for k in out.state if out.state[k] != states[t][k])
            if diff:
                raise InternalError(f"replay of the {prop} counterexample: after step {t + 1} '{op}' the "
                                    f"interpreter and the solver disagree on {', '.join(diff)}")
        steps.append(Step(op, tuple(out.failed_choices), tuple(out.events), state, out.state,
                          tuple(out.violations)))
        state = out.state
    if check_last and not any(p == prop for p, _ in steps[-1].violations):
        raise InternalError(f"replay of the {prop} counterexample: the interpreter finds no violation "
                            f"at its last step")
    return tuple(steps)


def check_properties(names: list[str] | None, model: Model) -> tuple[str, ...]:
    """The properties asked for (default: the profile's), in the catalog's order."""
    known = tuple(p.name for p in model.all_properties)
    if not names:
        return tuple(p.name for p in model.properties)
    for n in names:
        if n in model.not_applicable:
            raise UserError(f"property '{n}' is not applicable under kernel profile '{model.profile.name}' "
                            f"({model.profile.NOT_APPLICABLE}); its properties: {', '.join(known)}")
        if n not in known:
            raise UserError(f"unknown property '{n}'; known properties: {', '.join(known)}")
    return tuple(p for p in known if p in names)


ENGINES = ("auto", "explicit", "z3")
AUTO_STATE_BUDGET = 1_000_000    # docs/performance.md: explicit wins on every measured spec; ~2.8 KiB a state
MAX_COUNTEREXAMPLES = 100        # --max-counterexamples: each further trace is one more solver query and a replay


def verify(spec: Spec, *, depth: int | None = None, properties: list[str] | None = None,
           timeout: Deadline | float | None = None, engine: str = "auto", max_counterexamples: int = 1,
           progress=None, max_states: int | None = None) -> Result:
    """`progress(engine, depth done, states or None)`, if given, is called after each depth.
    `timeout`: seconds or the command's Deadline (Ctrl-C too): the result is then unknown
    with what was found. `max_states`: the explicit engine's state budget (default
    AUTO_STATE_BUDGET); past it `auto` goes on with Z3 and `explicit` stops with an unknown
    verdict."""
    model = Model(spec)
    props = check_properties(properties, model)
    depth = spec.depth if depth is None else depth
    max_states = AUTO_STATE_BUDGET if max_states is None else max_states
    _check_options(props, depth, engine, max_counterexamples, max_states)
    deadline = Deadline.of(timeout)
    start = deadline.elapsed()
    run = _search(model, props, depth, engine, max_states, deadline, progress)
    found, unknown = _violations(model, props, run.search, max_states, deadline)
    more: list[Violation] = []
    capped: list[str] = []
    if max_counterexamples > 1 and any(v.property != "recoverable" for v in found):
        more, capped, why_not = _more(model, found, max_counterexamples, run.z3, deadline)
        unknown = unknown or why_not
    s = run.search
    return Result(spec, model, run.engine, depth, props, tuple(found), unknown,
                  s.depth_done, s.complete_at, deadline.elapsed() - start, tuple(s.per_depth),
                  run.states, run.diameter, run.why, tuple(more), tuple(capped), run.reductions)


def _check_options(props: tuple[str, ...], depth: int, engine: str, max_counterexamples: int, max_states: int) -> None:
    if depth < 1:
        raise UserError(f"--depth must be at least 1, not {depth}; e.g. --depth 8")
    if max_counterexamples < 1:
        raise UserError(f"--max-counterexamples must be at least 1, not {max_counterexamples}; e.g. -n 3")
    if max_counterexamples > MAX_COUNTEREXAMPLES:
        raise UserError(f"--max-counterexamples must be at most {MAX_COUNTEREXAMPLES}, not {max_counterexamples}")
    if max_states < 1:
        raise UserError(f"--max-states must be at least 1, not {max_states}; e.g. --max-states 1000000")
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}'; use one of: {', '.join(ENGINES)}")
    if "recoverable" in props and engine == "z3":
        raise UserError("recoverable needs the explicit engine (bounded checking cannot show that a way back "
                        "always exists); use --engine explicit or auto")


@dataclass
class _Run:
    """The search verify ran: which engine, its result, and why auto chose it."""
    engine: str
    search: Search
    z3: Z3Engine | None = None          # the Z3 engine, when it ran (--max-counterexamples reuses it)
    states: int | None = None           # explicit engine: distinct states reached
    diameter: int | None = None
    why: str = ""
    reductions: tuple[str, ...] = ()


FOLDED = ("rmmod folded into the next load (a livepatch module off klp_patches and not forced counts as "
          "removed; the shortest traces come from the search without it)")


def _search(model: Model, props: tuple[str, ...], depth: int, engine: str, max_states: int, deadline: Deadline,
            progress) -> _Run:
    """The explicit search (auto: while the reachable states fit the budget), else Z3."""
    from .engine_explicit import BUDGET_REASON, ExplicitEngine

    why = ""
    if engine in ("auto", "explicit"):
        eng = ExplicitEngine(model, max_states=max_states, fold_rmmod=True)
        if progress is not None:
            eng.on_depth = lambda d, n: progress("explicit", d, n)
        search = eng.run(depth, list(props), timeout=deadline)
        if search.found:
            search = shortest(model, search, depth, max_states, deadline)
        budget = bool(search.unknown and search.unknown.startswith(BUDGET_REASON))
        if engine == "explicit" or not budget:
            if budget:
                search.unknown = (f"state budget: {search.unknown} (raise it with --max-states N, or use "
                                  f"--engine z3)")
            return _Run("explicit", search, None, eng.states, eng.diameter,
                        "explicit: the reachable states fit the budget" if engine == "auto" else "",
                        (FOLDED,) if eng.fold else ())
        why = f"z3: {search.unknown} within depth {depth}"
    from .engine_z3 import Search, Z3Engine

    try:
        z3eng = Z3Engine(model, deadline=deadline)
    except Stopped as e:                     # still building the transition system
        return _Run("z3", Search(unknown=e.reason), None, why=why)
    if progress is not None:
        z3eng.on_depth = lambda d, n: progress("z3", d, n)
    return _Run("z3", z3eng.run(depth, list(props)), z3eng, why=why)


def shortest(model: Model, folded: Search, depth: int, max_states: int, deadline: Deadline) -> Search:
    """The folded search's answer with each violation's shortest trace: a folded depth
    does not count the folded `rmmod`s, so the plain search (no fold) looks again for the
    properties it broke, up to the longest of its traces with their `rmmod`s put back
    (each is a real trace: the plain search finds one at most that long) or `depth`.

    A folded trace longer than `depth` may have no real counterpart within it: what the
    plain search does not find there holds up to `depth`, and the folded search's
    exhaustion then says nothing about longer sequences."""
    from .engine_explicit import ExplicitEngine
    from .engine_z3 import Search

    bound = min(depth, max(len(raw.ops) for _, raw in folded.found.values()))
    plain = ExplicitEngine(model, max_states=max_states).run(bound, list(folded.found), timeout=deadline)
    out = Search(found=dict(plain.found), depth_done=folded.depth_done, unknown=folded.unknown,
                 complete_at=folded.complete_at, per_depth=folded.per_depth)
    if plain.unknown:                       # keep the folded traces that fit, not known to be shortest
        for p, (_, raw) in folded.found.items():
            if p not in out.found and len(raw.ops) <= depth:
                out.found[p] = (len(raw.ops), raw)
        out.unknown = out.unknown or f"{plain.unknown} while looking for the shortest traces"
    elif set(out.found) != set(folded.found):   # broken only past the depth: not "any length"
        out.complete_at = None
    return out


def _violations(model: Model, props: tuple[str, ...], search: Search, max_states: int,
                deadline: Deadline) -> tuple[list[Violation], str | None]:
    """The search's counterexamples replayed, shortest first, and recoverable's (it needs
    the whole reachable graph); with why the answer is incomplete."""
    from .engine_explicit import ExplicitEngine

    found = []
    unknown = search.unknown
    if "recoverable" in props:
        rec = ExplicitEngine(model, max_states=max_states, fold_rmmod=True).recoverable(timeout=deadline)
        if isinstance(rec, str):
            unknown = unknown or f"recoverable: {rec}"
        elif rec is not None:
            raw, reason = rec
            steps = replay(model, raw.ops, raw.choices, None, "recoverable", check_last=False)
            found.append(Violation("recoverable", len(steps), steps, reason))
    for p in props:
        if p in search.found:
            d, raw = search.found[p]
            found.append(Violation(p, d, replay(model, raw.ops, raw.choices, raw.states, p)))
    found.sort(key=lambda v: (v.depth, props.index(v.property)))
    return found, unknown


def _more(model: Model, found: list[Violation], n: int, z3engine: Z3Engine | None,
          deadline: Deadline) -> tuple[list[Violation], list[str], str | None]:
    """Further shortest traces per violated property (bounded model checking at exactly the
    shortest depth, each new operation sequence blocked), replayed like the first ones; and
    the properties that have more than the n shown (one more trace is asked for, not shown)."""
    from .engine_z3 import Z3Engine

    try:
        eng = z3engine or Z3Engine(model, deadline=deadline)
    except Stopped as e:
        return [], [], f"--max-counterexamples: {e.reason}"
    out, capped = [], []
    for v in found:
        if v.property == "recoverable":
            continue
        raws, unknown = eng.more(v.property, v.depth, [[s.op for s in v.trace]], n)
        if len(raws) == n:                  # the n-th further trace: there are more than n
            raws = raws[:-1]
            capped.append(v.property)
        for k, raw in enumerate(raws, 2):
            out.append(Violation(v.property, v.depth, replay(model, raw.ops, raw.choices, raw.states, v.property),
                                 index=k))
        if unknown:
            return out, capped, f"--max-counterexamples: {unknown}"
    return out, capped, None
