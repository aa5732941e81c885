"""`klpmodel review`: a design review of a livepatch series, in Markdown.

Everything the review states comes from running the model (kernel.py through interp and
the engines); nothing here decides a kernel rule. The sections:

* the patches (states, versions, replace, objects, callbacks);
* the compatibility matrix: for every ordered pair (P installed, Q loaded), refused by the
  kernel (its own refusal text), allowed and safe, or allowed and unsafe, decided by an
  explicit search over the sub-series {P, Q} that starts with P installed and loads Q first;
* upgrade and downgrade paths: the atomic one (Q loaded over P) and the non-atomic one
  (disable P, complete, then load Q), run concretely, with what the window between the two
  exposes;
* the kernel lifecycle (graph.py's Mermaid);
* each property's verdict (verify());
* coverage: the callbacks, statements and lifecycle edges the exploration exercised, and
  which properties hold only because nothing reaches the code they judge (vacuous).
"""
from __future__ import annotations

import re
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from . import events as E
from . import graph, interp, kernel, klog, report
from .backend import Concrete
from .engine_explicit import ExplicitEngine
from .engine_z3 import Search
from .errors import InternalError
from .events import PHASES, Refusal
from .interp import State
from .kernel import MODULE_OBJ, Model, Op
from .simulate import format_run, parse_run, simulate
from .spec import Patch, Spec, Stmt
from .verify import AUTO_STATE_BUDGET, Result, Step, Violation, replay, verify
from .words import pairs_text, plural, runs

# --------------------------------------------------------------------------- trace files


def write_traces(rv: Review, out: Path, option: str = "--traces") -> None:
    """Write the trace file of every violation the review shows (`review --traces DIR`; not
    those of the unsafe pairs past MAX_UNSAFE_PAIRS without --all), each
    run on the whole series so that explain/replay/kselftest read it against the spec itself:
    verify's as PROPERTY.trace.json, a pair's as pair-P-Q-PROPERTY.trace.json."""
    from .traces import file_stem, write_files

    items = [(v, file_stem(v), v) for v in rv.result.violations]
    for x in shown_unsafe(rv):
        for v in x.violations:
            ops = [s.op for s in v.trace]
            whole = replay(rv.model, ops, [dict.fromkeys(s.failed, True) for s in v.trace], None, v.property)
            items.append((Violation(v.property, len(whole), whole), f"pair-{x.installed}-{x.loaded}-{v.property}", v))
    written = write_files(rv.model, [(w, stem) for w, stem, _ in items], out, rv.result.engine, rv.depth, option)
    for (_, _, shown), (_, pj, _) in zip(items, written, strict=True):
        rv.files[id(shown)] = str(pj)


# --------------------------------------------------------------------------- running the model


def _step(model: Model, state: State, op: Op) -> Step:
    """Run op, which the kernel allows here, with no statement failing."""
    out = interp.apply(model, state, op)
    return Step(op, tuple(out.failed_choices), tuple(out.events), state, out.state, tuple(out.violations))


@dataclass(frozen=True)
class NotInstalled:
    """Why `load P; complete` does not leave P enabled."""
    why: str


def _installed(model: Model, name: str) -> State | NotInstalled:
    """The state after `load P; complete` with no statement failing, or why P cannot get there."""
    state = interp.initial(model)
    for op, phase in ((Op("load", name), "patching"), (Op("complete"), "enabled")):
        why = interp.refusal(model, state, op)
        if why is not None:
            return NotInstalled(f"`{op}` is refused: {why}")
        state = _step(model, state, op).after
        now = model.view(state).phase(name)
        if now != phase:
            return NotInstalled(f"`{op}` leaves it {now} even when no fallible statement fails")
    return state


def _sub(spec: Spec, names: tuple[str, ...]) -> Model:
    """The model of the series restricted to these patches (spec order kept)."""
    return Model(replace(spec, patches=tuple(p for p in spec.patches if p.name in names)))


PREFIX = 2          # load P; complete


@dataclass(frozen=True)
class Pair:
    installed: str
    loaded: str
    verdict: str                                   # refused | safe | unsafe | unknown | not-installed
    why: str | None = None                         # the kernel's refusal, or why P cannot be installed
    violations: tuple[Violation, ...] = ()         # new with Q: full traces (load P; complete; load Q; ...)
    inherited: tuple[str, ...] = ()                # also broken from the same start without Q
    states: int = 0
    complete: bool = False

    @property
    def refusal(self) -> Refusal | None:
        """refused: the kernel's refusal (its errno and log lines)."""
        return self.why if isinstance(self.why, Refusal) else None


def _search_from(model: Model, start: State, depth: int, first: list[Op] | None = None) -> tuple[ExplicitEngine, Search]:
    eng = ExplicitEngine(model, max_states=AUTO_STATE_BUDGET)
    res = eng.run(depth, _names(model), start=start, first=first)
    return eng, res


def pair_verdict(spec: Spec, p: str, q: str, depth: int, alone: dict[str, set[str] | None]) -> Pair:
    """Load Q while P is installed: the kernel's answer, then (if allowed) every sequence of up
    to `depth` operations of {P, Q} from P installed whose first operation loads Q.
    `alone` caches, per P, the properties broken from the same start without Q."""
    m = _sub(spec, (p, q))
    start = _installed(m, p)
    if isinstance(start, NotInstalled):
        return Pair(p, q, "not-installed", start.why)
    refusal = interp.refusal(m, start, Op("load", q))
    if refusal is not None:
        return Pair(p, q, "refused", refusal)
    eng, res = _search_from(m, start, depth, first=[Op("load", q)])
    if res.unknown:
        return Pair(p, q, "unknown", res.unknown, states=eng.states)
    if p not in alone:
        m1 = _sub(spec, (p,))
        s1 = _installed(m1, p)
        if isinstance(s1, NotInstalled):                # the other patch was not loaded: it cannot matter
            raise InternalError(f"{p} installs beside {q} but not alone: {s1.why}")
        _, r1 = _search_from(m1, s1, depth)
        alone[p] = None if r1.unknown else set(r1.found)
    base = alone[p] or set()
    new: list[Violation] = []
    inherited: list[str] = []
    for prop in _names(m):
        if prop not in res.found:
            continue
        if prop in base:
            inherited.append(prop)
            continue
        _, raw = res.found[prop]
        ops = [Op("load", p), Op("complete"), *raw.ops]
        steps = replay(m, ops, [{}, {}, *raw.choices], None, prop)
        new.append(Violation(prop, len(steps), steps))
    return Pair(p, q, "unsafe" if new else "safe", None, tuple(new), tuple(inherited), eng.states,
                res.complete_at is not None)


# ---- upgrade and downgrade paths


class Refused(NamedTuple):
    """The operation the kernel refused, and why."""
    op: Op
    why: Refusal


@dataclass(frozen=True)
class PathRun:
    ops: tuple[Op, ...]
    steps: tuple[Step, ...]                     # the steps that ran
    refused: Refused | None                     # the operation the kernel refused (the run stops there)


def run_path(model: Model, ops: list[Op]) -> PathRun:
    state = interp.initial(model)
    steps: list[Step] = []
    for op in ops:
        why = interp.refusal(model, state, op)
        if why is not None:
            return PathRun(tuple(ops), tuple(steps), Refused(op, why))
        steps.append(_step(model, state, op))
        state = steps[-1].after
    return PathRun(tuple(ops), tuple(steps), None)


@dataclass(frozen=True)
class Move:
    old: str
    new: str
    direction: str                                  # upgrade | downgrade | mixed
    versions: tuple[tuple[str, int, int], ...]      # (state, old version, new version)
    atomic: PathRun
    split: PathRun                                  # disable old, complete, load new, complete
    window: State | None                            # the state between the two steps of `split`


def moves(spec: Spec, model: Model) -> list[Move]:
    out = []
    for p in spec.patches:
        for q in spec.patches:
            if p is q:
                continue
            vs = tuple((s, v, w) for s, v in p.states if (w := q.version(s)) is not None and w != v)
            if not vs:
                continue
            ups = {new > old for _, old, new in vs}
            direction = "mixed" if len(ups) > 1 else ("upgrade" if ups == {True} else "downgrade")
            atomic = run_path(model, [Op("load", p.name), Op("complete"), Op("load", q.name), Op("complete")])
            split = run_path(model, [Op("load", p.name), Op("complete"), Op("disable", p.name), Op("complete"),
                                     Op("load", q.name), Op("complete")])
            window = split.steps[3].after if len(split.steps) >= 4 else None
            out.append(Move(p.name, q.name, direction, vs, atomic, split, window))
    return out


# ---- coverage


StmtKey = tuple[str, str, str, int]          # a statement: (patch, object, callback, its index in the callback)


@dataclass
class Coverage:
    """What the exploration exercised, collected from every transition it ran (events recorded)."""
    model: Model
    transitions: int = 0
    ran: Counter[StmtKey] = field(default_factory=Counter)                    # times run
    skipped: Counter[StmtKey] = field(default_factory=Counter)                # condition false
    callbacks: Counter[tuple[str, str, str]] = field(default_factory=Counter)   # (patch, obj, callback)
    edges: dict[tuple[int, int, str], set[str]] = field(default_factory=dict)   # (src, dst, event) -> {patch}
    judged: Counter[str] = field(default_factory=Counter)   # property -> transitions that reached its judging
    unknown: str | None = None
    states: int = 0
    complete: bool = False                                 # every reachable state was explored
    folded: bool = False                                   # with rmmod folded into the next load

    def __call__(self, before: State, out: interp.Outcome) -> None:
        self.transitions += 1
        judged: set[str] = set()
        for ev in out.events:
            took = [ev.edge] if ev.edge is not None else list(ev.edges) if isinstance(ev, E.Force) else []
            for name, (src, dst, event) in took:            # the lifecycle edges the step took
                self.edges.setdefault((src, dst, event), set()).add(name)
            if isinstance(ev, E.Judged):                     # kernel.py says where each property is judged
                judged.add(ev.prop)
            elif isinstance(ev, (E.Callback, E.StateCallback)):   # (a state's: object "state ID")
                self.callbacks[(ev.patch, ev.obj, ev.callback)] += 1
            elif isinstance(ev, E.Ran):
                w = ev.where
                (self.ran if ev.ran else self.skipped)[(w.patch, w.obj, w.callback, w.index)] += 1
                if ev.ran and w.callback == "pre_patch_error":
                    self.callbacks[(w.patch, w.obj, w.callback)] += 1
        for prop in judged:
            self.judged[prop] += 1


def _names(model: Model) -> list[str]:
    """The properties the review checks: the profile's default ones."""
    return [p.name for p in model.properties]


def _judges(model: Model) -> dict[str, str]:
    """What each property judges, in words: its record's `judged_at` (properties.py), the
    antecedent that must be reached for its verdict to mean something (docs/review.md).
    Where it is reached is kernel.py's business: c.violate's `reached` and c.judged emit
    the "judged" events Coverage counts."""
    return {p.name: p.judged_at for p in model.all_properties if p.judged_at}


def coverage(model: Model, depth: int, exhausted: bool = False) -> Coverage:
    """What the sequences of up to `depth` operations exercise. `exhausted`: the verdicts'
    search, rmmod folded into the next load (docs/design.md, Reductions), saw every
    reachable state within the depth; then so does this one, with the fold (a folded run
    takes every transition an unfolded one takes; the folded rmmods are observed too), and
    what ran is exact for sequences of any length, at a fraction of the cost of the
    unfolded search (whose depths count the rmmods)."""
    cov = Coverage(model)
    res = None
    if exhausted:
        eng = ExplicitEngine(model, max_states=AUTO_STATE_BUDGET, symmetry=False, observe=cov, fold_rmmod=True)
        res = eng.run(1 << 30, _names(model))
        cov.folded = bool(eng.fold)
    if res is None or res.complete_at is None:
        cov = Coverage(model)
        eng = ExplicitEngine(model, max_states=AUTO_STATE_BUDGET, symmetry=False, observe=cov)
        res = eng.run(depth, _names(model))
    cov.unknown, cov.states, cov.complete = res.unknown, eng.states, res.complete_at is not None
    return cov


# --------------------------------------------------------------------------- the review


@dataclass
class Review:
    spec: Spec
    model: Model
    depth: int
    engine: str
    result: Result
    pairs: list[Pair]
    moves: list[Move]
    coverage: Coverage
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[int, str] = field(default_factory=dict)      # id(violation shown) -> its trace file (write_traces)
    shown_above: dict[int, str] = field(default_factory=dict)  # id(violation) -> where the side-by-side review shows it
    full: bool = False                                       # --all: no cap on sections and lists


# What the review shows in full, unless --all (review.md, "Caps"): the rest is summarised,
# and the review says what it left out and how to see it.
MAX_UNSAFE_PAIRS = 4        # unsafe pairs with their traces
MAX_PATH_GROUPS = 4         # upgrade/downgrade path groups step by step
MAX_ITEMS = 12              # bullets of a list (statements never run, pairs not decided, ...)
MAX_ROWS = 24               # rows of the per-patch callback table (past it: one row per object and callback)


def shown_unsafe(rv: Review) -> list[Pair]:
    """The unsafe pairs the review shows with their traces."""
    bad = [x for x in rv.pairs if x.verdict == "unsafe"]
    return bad if rv.full else bad[:MAX_UNSAFE_PAIRS]


def review(spec: Spec, *, depth: int | None = None, engine: str = "auto", full: bool = False) -> Review:
    depth = spec.depth if depth is None else depth
    secs = {}
    t = time.perf_counter()
    result = verify(spec, depth=depth, engine=engine)
    secs["verify"] = time.perf_counter() - t
    model = result.model
    t = time.perf_counter()
    alone: dict[str, set[str] | None] = {}
    pairs = [pair_verdict(spec, p.name, q.name, depth, alone)
             for p in spec.patches for q in spec.patches if p is not q]
    secs["pairs"] = time.perf_counter() - t
    t = time.perf_counter()
    mv = moves(spec, model)
    secs["paths"] = time.perf_counter() - t
    t = time.perf_counter()
    cov = coverage(model, depth, exhausted=result.complete_at is not None and bool(result.reductions))
    secs["coverage"] = time.perf_counter() - t
    return Review(spec, model, depth, engine, result, pairs, mv, cov, secs, full=full)


# --------------------------------------------------------------------------- Markdown

WIDTH = 78


def _wrap(text: str, first: str = "", rest: str | None = None) -> list[str]:
    rest = " " * len(first) if rest is None else rest
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _bullet(text: str, level: int = 0) -> list[str]:
    pad = "  " * level
    return _wrap(text, pad + "- ", pad + "  ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def _ops(n: int) -> str:
    return f"{n} operation{'s' if n != 1 else ''}"


def _replays(model: Model, run: str, prop: str) -> bool:
    """Does `simulate --run RUN` on the whole series break prop? (fail= names each failing
    site by its position, so it always should.)"""
    _, violations = simulate(model, parse_run(run, model, "--run"))
    return any(p == prop for p, _ in violations)


def _violation_block(rv: Review, m: Model, v: Violation, level: int = 0) -> list[str]:
    """A violation: what broke it, the command that replays it, and the trace."""
    out = _bullet(f"**{v.property}**, {_ops(v.depth)}: {report.broke(m, v)}", level)
    pad = "  " * (level + 1)
    run = format_run((s.op, s.failed) for s in v.trace)
    out += ["", f"{pad}```sh", f'{pad}klpmodel simulate {rv.spec.path} --run "{run}"', f"{pad}```"]
    if not _replays(rv.model, run, v.property):
        raise InternalError(f"the simulate line for {v.property} does not reproduce it: {run}")
    path = rv.files.get(id(v))
    if path:
        out += ["", f"{pad}Trace file: `{path}`"]
    if id(v) in rv.shown_above:           # side by side: printed once, under its difference
        return out + ["", f"{pad}The trace is shown above, in {rv.shown_above[id(v)]}.", ""]
    out += ["", f"{pad}```text", *[pad + line for line in report.violation_text(m, v)], f"{pad}```", ""]
    return out


def _where(spec: Spec, line: int) -> str:
    return f"{spec.path}:{line}"


def _code(name: str) -> str:
    return f"`{name}`"


def _names_of(rv: Review) -> list[str]:
    return [p.name for p in rv.spec.patches]


def _pairs_md(rv: Review, pairs: list[tuple[str, str]]) -> str:
    """Ordered pairs in few words, Markdown: "`r05`..`r08` -> `r01`..`r04`"."""
    return pairs_text(pairs, _names_of(rv), _code)


def _left_out(rv: Review, command: str, what: str) -> list[str]:
    """The line that says what a cap left out, and how to see it."""
    return _wrap(f"{what}; `{command} --all` shows every one.")


def _items(rv: Review, items: list[list[str]], command: str, noun: str, many: str) -> list[str]:
    """Bullets (each already wrapped), at most MAX_ITEMS unless --all, then what was left out."""
    out = [line for item in (items if rv.full else items[:MAX_ITEMS]) for line in item]
    if not rv.full and len(items) > MAX_ITEMS:
        out += [""] + _left_out(rv, command, plural(len(items) - MAX_ITEMS, f"more {noun}", f"more {many}")
                                + " not shown")
    return out


def _shape(p: Patch) -> tuple[object, ...]:
    """What the callback list says of a patch, without its name and lines."""
    return (p.uses, p.params, tuple((o.name, tuple((cb, tuple(st.text for st in sts)) for cb, sts in o.callbacks))
                                    for o in p.objects))


def _patches(rv: Review) -> list[str]:
    spec = rv.spec
    out = ["## The patches", ""]
    rows = []
    sets = rv.model.profile.SETS
    for n, p in enumerate(spec.patches, 1):
        states = ", ".join(f"{s} v{v}" for s, v in p.states) or "none"
        if sets:                    # kernel replace-set: klp_patch.replace_set (proposals.md §B.6)
            repl = "param " + p.replace_param if p.replace_param else str(p.replace_set)
        else:
            repl = "yes" if p.replace else ("param " + p.replace_param if p.replace_param else "no")
        rows.append([str(n), f"`{p.name}`", str(p.line), repl, states, ", ".join(o.name for o in p.objects)])
    out += _table(["#", "patch", "line", "replace_set" if sets else "replace", "states", "objects"], rows)
    out += ["", "Callbacks per object (statements, first line):", ""]
    same: dict[tuple[object, ...], list[Patch]] = {}
    for p in spec.patches:
        same.setdefault(_shape(p), []).append(p)
    for p in spec.patches:
        group = same[_shape(p)]
        if len(group) >= 3 and p is not group[0]:       # said with the first of its group
            continue
        extra = []
        if p.uses:
            extra.append("its code uses " + ", ".join(p.uses))
        if p.params:
            extra.append("params " + ", ".join(f"{k}={v}" for k, v in p.params))
        who = f"`{p.name}`"
        if len(group) >= 3:
            who = runs([x.name for x in group], _names_of(rv), _code)
            extra.insert(0, f"{len(group)} patches with the same callbacks; the lines are `{p.name}`'s")
        out += _bullet(who + (f" ({'; '.join(extra)})" if extra else ""))
        for o in p.objects:
            cbs = [f"{cb} ({len(st)}, line {st[0].line})" for cb, st in o.callbacks if st]
            out += _bullet(f"{o.name}: " + (", ".join(cbs) if cbs else "no callbacks"), 1)
    return out + [""]


_CELL = {"refused": "refused", "safe": "safe", "unsafe": "UNSAFE", "unknown": "unknown",
         "not-installed": "n/a"}
_MARK = {"refused": "r", "safe": "s", "unsafe": "**U**", "unknown": "?", "not-installed": "n/a"}
_LEGEND = {"refused": "refused by the kernel", "safe": "allowed and safe", "unsafe": "allowed and UNSAFE",
           "unknown": "unknown", "not-installed": "P cannot be installed"}
NARROW = 8                  # past this many patches the matrix marks its cells with one letter


def _matrix(rv: Review, command: str) -> list[str]:
    spec, pairs = rv.spec, rv.pairs
    out = ["## Compatibility matrix", ""]
    if len(spec.patches) < 2:
        return out + ["The series has one patch: there is no pair to load.", ""]
    out += _wrap(f"Row P is installed (`load P; complete`), column Q is loaded next. Allowed "
                 f"pairs are explored for up to {plural(rv.depth, 'operation')} after P is installed "
                 f"(method: see the notes at the end).")
    out.append("")
    names = _names_of(rv)
    cell = {(x.installed, x.loaded): x for x in pairs}
    marks = _CELL if len(names) <= NARROW else _MARK
    rows = []
    for i, p in enumerate(names, 1):
        rows.append([f"{i} `{p}`"] + ["-" if p == q else marks[cell[(p, q)].verdict] for q in names])
    out += _table(["P \\ Q"] + [str(i) for i in range(1, len(names) + 1)], rows)
    if marks is _MARK:
        seen = {x.verdict for x in pairs}
        out += [""] + _wrap("Cells: " + ", ".join(f"{_MARK[k]} {_LEGEND[k]}" for k in _MARK if k in seen) + ".")
    counts = Counter(x.verdict for x in pairs)
    out += ["", f"{len(pairs)} ordered pairs: {counts['refused']} refused by the kernel, {counts['safe']} "
                f"allowed and safe, {counts['unsafe']} allowed and unsafe"
                + (f", {counts['unknown']} unknown" if counts["unknown"] else "")
                + (f", {counts['not-installed']} where P cannot be installed" if counts["not-installed"] else "")
                + ".", ""]
    out += _unsafe_pairs(rv, command)
    out += _refused_pairs(rv)
    out += _safe_pairs(rv, command)
    out += _undecided_pairs(rv, command)
    return out


def _unsafe_pairs(rv: Review, command: str) -> list[str]:
    """Each unsafe pair with its traces (at most MAX_UNSAFE_PAIRS unless --all)."""
    bad = [x for x in rv.pairs if x.verdict == "unsafe"]
    if not bad:
        return []
    out = ["### Unsafe pairs", ""]
    for x in shown_unsafe(rv):
        scope = (f"{plural(x.states, 'state')}, every reachable one" if x.complete
                 else f"{plural(x.states, 'state')} within the depth")
        out += [f"#### `{x.installed}` installed, `{x.loaded}` loaded: UNSAFE", ""]
        out += _bullet(f"Allowed, and unsafe ({scope}):")
        out.append("")
        m = _sub(rv.spec, (x.installed, x.loaded))
        for v in x.violations:
            out += _violation_block(rv, m, v, 1)
        if x.inherited:
            out += _bullet(f"Also broken from the same start without `{x.loaded}` (so not "
                           f"counted against the pair): {', '.join(x.inherited)}.")
        out.append("")
    left = bad[len(shown_unsafe(rv)):]
    if left:
        props = sorted({v.property for x in left for v in x.violations})
        out += _left_out(rv, command, f"{plural(len(left), 'more unsafe pair')} not shown: "
                         f"{_pairs_md(rv, [(x.installed, x.loaded) for x in left])} (breaking "
                         f"{', '.join(props)})") + [""]
    return out


def _refused_pairs(rv: Review) -> list[str]:
    """The refused cells, summarised by the kernel's rule, and the log of one of them."""
    refused = [x for x in rv.pairs if x.refusal is not None]
    if not refused:
        return []
    out = ["### Refused pairs", ""]
    causes = [r.cause for x in refused if (r := x.refusal) is not None and r.cause is not None]
    out += _wrap(f"The kernel refuses {plural(len(refused), 'load')} (the `refused` cells)"
                 + (", by its compatibility rule (klp_is_patch_compatible):" if len(causes) == len(refused) else ":"))
    out.append("")
    for line in report.refused_rules(rv.model, causes, _code):
        out += _bullet(line + ".")
    other: dict[str, list[tuple[str, str]]] = {}
    for x in refused:
        if x.refusal is not None and x.refusal.cause is None:
            other.setdefault(str(x.refusal), []).append((x.installed, x.loaded))
    for why, ps in other.items():
        out += _bullet(f"{_pairs_md(rv, ps)}: {why}.")
    x = refused[0]
    if x.refusal is not None:
        out += [""] + _wrap(f"For example, `load {x.loaded}` while `{x.installed}` is installed: {x.refusal}. "
                            f"The selftests would capture:")
        out += ["", "```text", *klog.refusal_lines(Op("load", x.loaded), x.refusal), "```"]
    return out + [""]


def _safe_pairs(rv: Review, command: str) -> list[str]:
    """The safe cells in one paragraph, and what was broken without the loaded patch."""
    safe = [x for x in rv.pairs if x.verdict == "safe"]
    out: list[str] = []
    if safe:
        lo, hi = min(x.states for x in safe), max(x.states for x in safe)
        seen = f"{lo}" if lo == hi else f"{lo} to {hi}"
        full = sum(1 for x in safe if x.complete)
        scope = ("every reachable one" if full == len(safe) else "within the depth" if not full
                 else f"every reachable one in {full} of them")
        out += ["### Safe pairs", ""]
        out += _wrap(f"{plural(len(safe), 'pair')} (the `safe` cells): no sequence of up to "
                     f"{plural(rv.depth, 'operation')} after P is installed, starting with `load Q`, breaks "
                     f"a property. Each search saw {seen} states ({scope}).")
        out.append("")
    inherited: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for x in rv.pairs:
        if x.inherited and (x.verdict == "safe" or x not in shown_unsafe(rv)):
            inherited.setdefault(x.inherited, []).append((x.installed, x.loaded))
    if inherited:
        out += _wrap("Also broken from the same start without the loaded patch Q (so not counted against "
                     "the pair):") + [""]
        out += _items(rv, [_bullet(f"{', '.join(props)}: {_pairs_md(rv, ps)}.") for props, ps in inherited.items()],
                      command, "set of properties", "sets of properties")
        out.append("")
    return out


def _undecided_pairs(rv: Review, command: str) -> list[str]:
    """Rows whose P cannot be installed, and pairs the search could not decide."""
    items: list[list[str]] = []
    na: dict[str, str | None] = {}
    for x in rv.pairs:
        if x.verdict == "not-installed":
            na.setdefault(x.installed, x.why)          # why P cannot be installed: the same in its whole row
    for p, why in na.items():
        items.append(_bullet(f"`{p}` cannot be installed (its row is n/a): {why}."))
    unknown: dict[str, list[tuple[str, str]]] = {}
    for x in rv.pairs:
        if x.verdict == "unknown":
            unknown.setdefault(str(x.why), []).append((x.installed, x.loaded))
    for why, ps in unknown.items():
        items.append(_bullet(f"Not decided: {_pairs_md(rv, ps)}: {why}."))
    if not items:
        return []
    return ["### Pairs not decided", "", *_items(rv, items, command, "entry", "entries"), ""]


def _describe(m: Model, state: State, funcs: list[str]) -> list[str]:
    view = m.view(state)
    listed = view.order()
    out = ["installed: " + (", ".join(f"`{n}`" for n in listed) if listed else "none (klp_patches is empty)")]
    out += [f"{s} is {view.describe(s)}" for s in m.state_names]
    live = [f"{b.state}#{b.slot}" for s in m.state_names for b in view.blocks(s) if b.live]
    out.append("live blocks: " + (", ".join(live) if live else "none"))
    if funcs:
        c = Concrete(state)
        runs = [f"{f}: {kernel.effective(m, c, f) or 'original code'}" for f in funcs]
        out.append("functions: " + "; ".join(runs))
    return out


def _end(m: Model, state: State) -> dict[str, str]:
    """What a path ends with, for comparing two paths: values and installed patches."""
    view = m.view(state)
    out = {s: view.describe(s) for s in m.state_names}
    out["klp_patches"] = "[" + ", ".join(view.order()) + "]"
    return out


def _path_lines(rv: Review, run: PathRun, skip: int = 0) -> list[str]:
    m, out = rv.model, []
    for n, st in enumerate(run.steps, 1):
        if n <= skip:
            continue
        ch = report.changes(m, st.before, st.after, st.events)
        viol = sorted({p for p, _ in st.violations})
        text = f"{n}. `{st.op}`: " + ("; ".join(ch) if ch else "nothing changes")
        if viol:
            text += f"; **breaks {', '.join(viol)}**"
        out += _wrap(text, "  ", "     ")
    if run.refused:
        op, why = run.refused
        out += _wrap(f"{len(run.steps) + 1}. `{op}`: refused by the kernel: {why}", "  ", "     ")
    return out


def _move_body(rv: Review, mv: Move) -> list[str]:
    """A move's two paths, step by step, and what the window between the non-atomic path's
    steps exposes."""
    m, spec = rv.model, rv.spec
    out: list[str] = []
    funcs = sorted({f for n in (mv.old, mv.new) for o in spec.patch(n).objects for f in o.funcs})
    for title, run in (("Atomic", mv.atomic), ("Non-atomic", mv.split)):
        if m.profile.SETS:
            same = spec.patch(mv.new).replace_set == spec.patch(mv.old).replace_set
            how = "replace within its replace_set" if same else "stacked: another replace_set"
        else:
            how = "replace" if spec.patch(mv.new).replace else "stacked: the new patch is not cumulative"
        label = f"{title} ({how})" if title == "Atomic" else title
        out += [f"{label}: `{format_run((op, ()) for op in run.ops)}`", ""]
        skip = PREFIX if title != "Atomic" and len(mv.atomic.steps) >= PREFIX else 0
        if skip:
            out += [f"Steps 1-{skip} as in the atomic path, then:", ""]
        out += _path_lines(rv, run, skip)
        viol = sorted({p for st in run.steps for p, _ in st.violations})
        end = run.steps[-1].after if run.steps else interp.initial(m)
        out += [""] + _bullet(("Violations on the way: " + ", ".join(viol)) if viol
                              else "No property breaks on the way.")
        if not run.refused:
            out += _bullet("At the end: " + "; ".join(_describe(m, end, funcs)) + ".")
        out.append("")
    diff = _differ(m, mv)
    if diff:
        out += _bullet("The two paths end differently: " + "; ".join(
            f"{k} is {a} after the atomic path, {b} after the non-atomic one" for k, a, b in diff) + ".")
    if mv.window is not None:
        w = mv.window
        out += _bullet("Between the two steps of the non-atomic path (after `disable "
                       f"{mv.old}; complete`): " + "; ".join(_describe(m, w, funcs)) + ".")
        wv = m.view(w)
        changed = [f"{s} is {wv.describe(s)}" for s in m.state_names if wv.value(s) != kernel.ORIGINAL]
        out += _bullet(("Still changed in the window: " + ", ".join(changed) + ".") if changed
                       else "Every system state is back to original in the window.")
        if not funcs:
            for o in spec.patch(mv.old).objects:
                still = [p.name for p in m.P if wv.listed(p.name) and any(x.name == o.name for x in p.objects)]
                out += _bullet(f"What `{mv.old}` patches in {o.name} (the spec names no function) "
                               + (f"runs the code of {', '.join(still)} in the window." if still
                                  else "runs its original code in the window: no installed patch "
                                       "has an object for it."))
        if _bypass(mv):
            out += _bullet(f"The kernel refuses `load {mv.new}` over `{mv.old}` but accepts it "
                           f"after the disable: the version check does not see this "
                           f"{mv.direction}.")
    return out + [""]


def _bypass(mv: Move) -> bool:
    """The kernel refuses the new patch over the old one, and accepts it after a disable."""
    a_ref, s_ref = mv.atomic.refused, mv.split.refused
    return bool(a_ref and a_ref.op == Op("load", mv.new) and not (s_ref and s_ref.op == Op("load", mv.new)))


def _differ(m: Model, mv: Move) -> list[tuple[str, str, str]]:
    """What the atomic and the non-atomic path end with differently (both ran to the end)."""
    if mv.atomic.refused or mv.split.refused:
        return []
    a, b = (_end(m, run.steps[-1].after) for run in (mv.atomic, mv.split))
    return [(k, a[k], b[k]) for k in a if a[k] != b[k]]


@dataclass
class MoveGroup:
    """Moves whose review reads the same once the two patch names are taken out."""
    moves: list[Move]
    body: list[str]                 # the first move's

    @property
    def first(self) -> Move:
        return self.moves[0]

    def breaks(self) -> list[str]:
        return sorted({p for run in (self.first.atomic, self.first.split) for st in run.steps for p, _ in st.violations})


def _anonymous(lines: list[str], old: str, new: str) -> str:
    """The text with the two patch names taken out (and its wrapping undone)."""
    pat = re.compile(r"(?<![\w-])(" + re.escape(old) + "|" + re.escape(new) + r")(?![\w-])")
    text = " ".join(" ".join(lines).split())
    return pat.sub(lambda g: "\0old" if g.group(1) == old else "\0new", text)


def move_groups(rv: Review) -> list[MoveGroup]:
    """The moves grouped by what the review says of them (names aside), most urgent first:
    a property breaks on the way, then the kernel's version check is bypassed, then the two
    paths end differently, then the rest; spec order within each."""
    groups: dict[tuple[object, ...], MoveGroup] = {}
    for mv in rv.moves:
        body = _move_body(rv, mv)
        key = (mv.direction, tuple(mv.versions), _anonymous(body, mv.old, mv.new))
        if key in groups:
            groups[key].moves.append(mv)
        else:
            groups[key] = MoveGroup([mv], body)
    rank = {id(g): k for k, g in enumerate(groups.values())}
    return sorted(groups.values(), key=lambda g: (_kind(rv.model, g), rank[id(g)]))


def _path_cell(run: PathRun) -> str:
    viol = sorted({p for st in run.steps for p, _ in st.violations})
    if viol:
        return "**breaks " + ", ".join(viol) + "**"
    return "refused" if run.refused else "ok"


def _moves(rv: Review, command: str) -> list[str]:
    out = ["## Upgrade and downgrade paths", ""]
    if not rv.moves:
        return out + ["No two patches declare the same state with different versions.", ""]
    out += _wrap("For every ordered pair whose shared states change version: the atomic path "
                 "(load the new patch while the old one is installed) and the non-atomic one "
                 "(disable the old patch, let the transition complete, then load the new one). "
                 "Both run with no statement failing. The kernel's version check only compares "
                 "against installed patches, so it does not see the second path.")
    out.append("")
    groups = move_groups(rv)
    names = _names_of(rv)
    if len(groups) < len(rv.moves):
        out += _wrap(f"The {plural(len(rv.moves), 'pair')} fall into {plural(len(groups), 'group')}: the pairs "
                     f"of a group run the same way, with the same versions (the two patch names aside).")
        out.append("")
    if len(groups) > 1:
        rows = []
        for k, g in enumerate(groups, 1):
            ps = [(mv.old, mv.new) for mv in g.moves]
            olds = runs(sorted({a for a, _ in ps}, key=names.index), names, _code)
            news = runs(sorted({b for _, b in ps}, key=names.index), names, _code)
            if len(ps) != len({a for a, _ in ps}) * len({b for _, b in ps}):   # not every old with every new
                olds, news = _pairs_md(rv, ps), ""
            diff = _differ(rv.model, g.first)
            rows.append([str(k), olds, news, ", ".join(f"{s} {a} -> {b}" for s, a, b in g.first.versions),
                         _path_cell(g.first.atomic), _path_cell(g.first.split),
                         ("differ: " + ", ".join(d[0] for d in diff)) if diff else "-"])
        out += _table(["#", "old", "new", "versions", "atomic", "non-atomic", "ends"], rows)
        out.append("")
    shown = _shown_groups(rv, groups)
    for k, g in enumerate(groups, 1):
        if k not in shown:
            continue
        mv = g.first
        vers = ", ".join(f"{s} {a} -> {b}" for s, a, b in mv.versions)
        number = f"{k}. " if len(groups) > 1 else ""
        if len(g.moves) == 1:
            out += [f"### {number}`{mv.old}` -> `{mv.new}`: {mv.direction} ({vers})", ""]
        else:
            out += [f"### {number}{_pairs_md(rv, [(x.old, x.new) for x in g.moves])}: {mv.direction} ({vers})", ""]
            out += _wrap(f"{plural(len(g.moves), 'pair')} that run the same way; shown for `{mv.old}` -> "
                         f"`{mv.new}`.") + [""]
        out += g.body
    left = [k for k in range(1, len(groups) + 1) if k not in shown]
    if left:
        out += _left_out(rv, command, f"{plural(len(left), 'more group')} not shown step by step "
                         f"({_numbers(left)} in the table)") + [""]
    return out


def _kind(m: Model, g: MoveGroup) -> int:
    """How urgent a path group is: 0 a property breaks on the way, 1 the version check is
    bypassed, 2 the two paths end differently, 3 the rest."""
    return 0 if g.breaks() else 1 if _bypass(g.first) else 2 if _differ(m, g.first) else 3


def _shown_groups(rv: Review, groups: list[MoveGroup]) -> set[int]:
    """The groups (numbered from 1) shown step by step: all with --all; else MAX_PATH_GROUPS,
    the first of each kind first, then the most urgent ones."""
    if rv.full:
        return set(range(1, len(groups) + 1))
    kinds = [_kind(rv.model, g) for g in groups]
    order = [kinds.index(k) + 1 for k in sorted(set(kinds))]
    order += [k for k in range(1, len(groups) + 1) if k not in order]
    return set(order[:MAX_PATH_GROUPS])


def _numbers(ks: list[int]) -> str:
    """#4-#6, #8"""
    out, start = [], 0
    for k in range(1, len(ks) + 1):
        if k == len(ks) or ks[k] != ks[k - 1] + 1:
            out.append(f"#{ks[start]}" if k - 1 == start else f"#{ks[start]}-#{ks[k - 1]}")
            start = k
    return ", ".join(out)


def _lifecycle(profile: str) -> list[str]:
    nodes, edges = graph.lifecycle_graph(profile)
    out = ["## The kernel lifecycle of one patch", ""]
    out += _wrap(f"The per-patch state machine the rules of profile `{profile}` read (kernel.py, `klpmodel graph "
                 f"--lifecycle --kernel {profile}`): one edge per kernel action, with the callbacks it runs.")
    return out + ["", "```mermaid", *graph.mermaid(nodes, edges).rstrip("\n").splitlines(), "```", ""]


def _verdicts(rv: Review) -> list[str]:
    r, cov = rv.result, rv.coverage
    out = ["## Property verdicts", ""]
    if r.complete_at is None:
        scope = (f"bounded: every sequence of up to {plural(r.depth, 'operation')}"
                 + (f" ({plural(r.states, 'state')})" if r.states is not None else ""))
    elif r.states is not None:                    # the explicit engine exhausted the states
        scope = (f"complete: the {plural(r.states, 'reachable state')} were exhausted after "
                 f"{plural(r.complete_at, 'operation')}"
                 + (" (each rmmod folded into the next load)" if r.reductions else ""))
    else:                                         # Z3: no longer sequence keeps its states distinct
        scope = (f"complete: every sequence of more than {plural(r.complete_at, 'operation')} revisits a state "
                 f"before its last step")
    out += _wrap(f"From `klpmodel verify` ({r.engine} engine, depth {r.depth}): {scope}.")
    out.append("")
    bad = {v.property: v for v in r.violations}
    rows = []
    for prop in r.properties:
        if prop in bad:
            verdict, length = "VIOLATED", _ops(bad[prop].depth)
        elif r.unknown:
            verdict, length = "unknown", "-"
        else:
            verdict, length = ("holds" if r.complete_at is not None else f"holds to {r.depth}"), "-"
        n = cov.judged.get(prop, 0)
        judged = "not measured" if cov.unknown else (str(n) if n else "never")
        if prop not in bad and not r.unknown and not cov.unknown and n == 0:
            verdict += " (vacuous)"
        rows.append([prop, verdict, length, judged])
    out += _table(["property", "verdict", "shortest", "judged in"], rows)
    out += ["", "\"judged in\": how many explored transitions reached the code the property "
                "judges (see Coverage).", ""]
    for v in r.violations:
        out += _violation_block(rv, rv.model, v)
    return out


def _coverage(rv: Review, command: str) -> list[str]:
    cov = rv.coverage
    out = ["## Coverage", ""]
    if cov.unknown:
        return out + [f"Not measured: {cov.unknown} within depth {rv.depth}.", ""]
    scope = ("every reachable state: what never ran here cannot run in any sequence"
             if cov.complete else "within the depth: what never ran here may run in a longer sequence")
    if cov.complete and cov.folded:
        searched = (f"Every transition of the explicit search to exhaustion ({cov.states} states, each "
                    f"rmmod folded into the next load and run too, {cov.transitions} transitions, no "
                    f"symmetry reduction)")
    else:
        searched = (f"Every transition of the explicit search to depth {rv.depth} ({cov.states} "
                    f"states, {cov.transitions} transitions, no symmetry reduction)")
    out += _wrap(f"{searched} was run with its events recorded; {scope}.")
    out += _callback_coverage(rv)
    out += _statement_coverage(rv, command)
    out += _action_coverage(rv)
    out += _judged_coverage(rv)
    return out + [""]


def _callback_coverage(rv: Review) -> list[str]:
    """How often each callback ran: per patch, or past MAX_ROWS rows (unless --all) per object
    and callback over the patches that declare it."""
    cov = rv.coverage
    out = ["", "### Callbacks", ""]
    rows = []
    per: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for p in rv.spec.patches:
        objs = [(o.name, o.callbacks) for o in p.objects]
        objs += [(f"{E.STATE_OBJ}{d.id}", d.callbacks) for d in rv.spec.states if p.version(d.name) is not None]
        for name, callbacks in objs:                  # (kernel state-callbacks: a state's, "state ID")
            for cb, _stmts in callbacks:
                n = cov.callbacks.get((p.name, name, cb), 0)
                rows.append([f"`{p.name}`", name, cb, str(n) if n else "**never**"])
                per.setdefault((name, cb), []).append((p.name, n))
    if not rows:
        return out + ["The series declares no callback."]
    if rv.full or len(rows) <= MAX_ROWS:
        return out + _table(["patch", "object", "callback", "runs"], rows)
    names = _names_of(rv)
    grouped = []
    for (obj, cb), counts in per.items():
        ns = [n for _, n in counts]
        never = [p for p, n in counts if not n]
        grouped.append([obj, cb, runs([p for p, _ in counts], names, _code),
                        str(ns[0]) if min(ns) == max(ns) else f"{min(ns)} to {max(ns)}",
                        f"**{runs(never, names, _code)}**" if never else "-"])
    out += _wrap(f"{plural(len(rows), 'callback')} of {plural(len(rv.spec.patches), 'patch')}: one row per object "
                 f"and callback (`--all`: one per patch).") + [""]
    return out + _table(["object", "callback", "declared by", "runs per patch", "never ran in"], grouped)


def _statement_coverage(rv: Review, command: str) -> list[str]:
    """The statements that never ran (and why), and the conditions that always held; the
    same statement of several patches (same object, callback, text and reason) on one line."""
    spec, cov = rv.spec, rv.coverage
    total = ran = 0
    never: dict[tuple[str, str, str, str], list[tuple[str, int, int]]] = {}    # -> [(patch, line, place)]
    always: dict[tuple[str, str, str, str], list[tuple[str, int, int]]] = {}
    for key, st in _sites(spec):
        total += 1
        patch, obj, cb, _n = key
        if not cov.ran.get(key):
            never.setdefault((obj, cb, st.text, _why_never(cov, key)), []).append((patch, st.line, total))
            continue
        ran += 1
        if st.cond is not None and not cov.skipped.get(key):
            always.setdefault((obj, cb, st.text, ""), []).append((patch, st.line, total))
    out = ["", "### Statements", "", f"{ran} of {total} statements ran."]
    for title, found in (("Never ran:", never), ("Condition always held (the other branch was never exercised):",
                                                 always)):
        if not found:
            continue
        items: list[tuple[int, list[str]]] = []       # in the spec's order; a few patches: one line each
        for (obj, cb, text, why), at in found.items():
            tail = f": {why}" if why else ""
            if len(at) >= 3:
                lines = ", ".join(str(line) for _, line, _ in at)
                items.append((at[0][2], _bullet(f"`{text}` ({obj} {cb}) of {plural(len(at), 'patch')}, "
                                                f"{runs([p for p, _, _ in at], _names_of(rv), _code)} ({spec.path} "
                                                f"lines {lines}){tail}")))
            else:
                items += [(place, _bullet(f"{_where(spec, line)}: `{text}` ({patch} {obj} {cb}){tail}"))
                          for patch, line, place in at]
        items.sort(key=lambda it: it[0])
        out += ["", title, ""] + _items(rv, [b for _, b in items], command, "statement", "statements")
    return out


def _sites(spec: Spec) -> list[tuple[StmtKey, Stmt]]:
    """Every statement as (patch, object, callback, index): the objects' callbacks, then
    (issue 14) the livepatch module's init/init_error/exit and code, of object MODULE_OBJ."""
    out: list[tuple[StmtKey, Stmt]] = []
    for p in spec.patches:
        out += [((p.name, o.name, cb, n), st) for o in p.objects for cb, sts in o.callbacks for n, st in enumerate(sts)]
        out += [((p.name, MODULE_OBJ, f, n), st) for f in p.module_funcs() for n, st in enumerate(p.module_func(f))]
        out += [((p.name, f"{E.STATE_OBJ}{d.id}", cb, n), st) for d in spec.states if p.version(d.name) is not None
                for cb, sts in d.callbacks for n, st in enumerate(sts)]      # (kernel state-callbacks)
    for m in spec.modules:           # (issue 14) a target module's shadow API calls (its log lines are not sites)
        out += [((m.name, MODULE_OBJ, f, n), st) for f in ("init", "init_error", "exit")
                for n, st in enumerate(m.func(f)) if st.action != "log"]
    return out


def _why_never(cov: Coverage, key: StmtKey) -> str:
    """Why the statement at key never ran: its callback never did, its condition never held,
    or the callback always returned before it."""
    patch, obj, cb, _ = key
    if not cov.callbacks.get((patch, obj, cb), 0):
        return "pre_patch never failed" if cb == "pre_patch_error" else f"{cb} never ran"
    if cov.skipped.get(key):
        return "its condition never held"
    return "an earlier statement always ended the callback"


def _action_coverage(rv: Review) -> list[str]:
    """Each edge of the profile's lifecycle graph, and the patches that took it."""
    spec, cov = rv.spec, rv.coverage
    names = [p.name for p in spec.patches]
    rows = []
    g = rv.model.profile.lifecycle()
    for u, v, data in sorted(g.edges(data=True), key=lambda e: (e[0], e[1], e[2]["event"])):
        ev = data["event"]
        who = cov.edges.get((u, v, ev), set())
        word = {"load-failed": "load", "replaced": "complete"}.get(ev, ev)
        if who:
            by = "all" if len(who) == len(names) else runs(who, names)
        elif word not in spec.operations:
            by = f"never (`{word}` is not in [check] operations)"
        elif word in ("modload", "modunload") and not rv.model.module_names:
            by = "never (no target module)"
        else:
            by = "**never**"
        rows.append([ev, f"{PHASES[u]} -> {PHASES[v]}", by])
    return ["", "### Kernel actions", ""] + _table(["action", "phases", "exercised by"], rows)


def _judged_coverage(rv: Review) -> list[str]:
    """How many transitions reached what each property judges, and which hold vacuously."""
    cov = rv.coverage
    out = ["", "### What each property judges", ""]
    rows = []
    judges = _judges(rv.model)
    for prop in rv.result.properties:
        if prop in judges:
            n = cov.judged.get(prop, 0)
            rows.append([prop, judges[prop], str(n) if n else "**never**"])
    out += _table(["property", "judges", "transitions"], rows)
    vac = [row[0] for row in rows if row[2] == "**never**" and row[0] not in {v.property for v in rv.result.violations}]
    out += [""] + (_wrap("Vacuous (holds only because nothing reaches what it judges): " + ", ".join(vac) + ".")
                   if vac else ["No property holds vacuously."])
    return out


def _summary(rv: Review, command: str) -> list[str]:
    r, cov = rv.result, rv.coverage
    out = ["## Summary", ""]
    if r.verdict == "holds":
        n = len(r.properties)
        if r.complete_at is None:
            out += _bullet(f"Properties: all {n} hold for every sequence of up to {plural(r.depth, 'operation')}.")
        else:
            why = (f"the {r.states} reachable states were exhausted"
                   + (", each rmmod folded into the next load" if r.reductions else "") if r.states is not None else
                   f"every sequence of more than {plural(r.complete_at, 'operation')} revisits a state")
            out += _bullet(f"Properties: all {n} hold for sequences of any length ({why}).")
    else:
        out += _bullet("Properties: " + report.summary(r)[0].removeprefix("verdict: ") + ".")
    counts = Counter(x.verdict for x in rv.pairs)
    if rv.pairs:
        unsafe = [(x.installed, x.loaded) for x in rv.pairs if x.verdict == "unsafe"]
        out += _bullet(f"Pairs (P installed, Q loaded): {counts['refused']} refused by the kernel, "
                       f"{counts['safe']} allowed and safe, {counts['unsafe']} allowed and unsafe"
                       + (": " + _pairs_md(rv, unsafe) if unsafe else "") + ".")
    groups = move_groups(rv)
    breaks = [(mv.old, mv.new) for g in groups if g.breaks() for mv in g.moves]
    if breaks:
        out += _bullet("Upgrade or downgrade paths that break a property: " + _pairs_md(rv, breaks) + ".")
    bypass = [(mv.old, mv.new) for mv in rv.moves if _bypass(mv) and not mv.split.refused]
    if bypass:
        out += _bullet("Refused atomically but accepted after a disable: " + _pairs_md(rv, bypass) + ".")
    differ = [(mv.old, mv.new) for mv in rv.moves if _differ(rv.model, mv)]
    if differ:
        out += _bullet("Atomic and non-atomic paths end in different states: " + _pairs_md(rv, differ) + ".")
    if not cov.unknown:
        sites = _sites(rv.spec)
        total, ran = len(sites), sum(1 for k, _ in sites if cov.ran.get(k))
        vac = [p for p in r.properties if p in _judges(rv.model) and not cov.judged.get(p)
               and p not in {v.property for v in r.violations}]
        missed = sorted({st.line for k, st in sites if not cov.ran.get(k)})
        some = missed if rv.full else missed[:MAX_ITEMS]
        lines = ", ".join(map(str, some)) + (f" and {len(missed) - len(some)} more" if len(missed) > len(some) else "")
        out += _bullet(f"Coverage ({'every reachable state' if cov.complete else f'depth {rv.depth}'}): "
                       f"{ran} of {total} statements ran"
                       + (f" (never: {rv.spec.path} line{'s' if len(missed) > 1 else ''} {lines})" if missed else "")
                       + "; vacuous properties: " + (", ".join(vac) if vac else "none") + ".")
    capped = _capped(rv, groups)
    if capped:
        out += _bullet("Not shown in full (each section says what it left out): " + ", ".join(capped)
                       + f"; `{command} --all` shows everything.")
    return out + [""]


def _capped(rv: Review, groups: list[MoveGroup]) -> list[str]:
    """What the caps leave out of the sections below, in words (nothing with --all)."""
    if rv.full:
        return []
    out = []
    unsafe = sum(1 for x in rv.pairs if x.verdict == "unsafe")
    if unsafe > MAX_UNSAFE_PAIRS:
        out.append(f"{unsafe - MAX_UNSAFE_PAIRS} of {plural(unsafe, 'unsafe pair')}")
    if len(groups) > MAX_PATH_GROUPS:
        out.append(f"{len(groups) - MAX_PATH_GROUPS} of {plural(len(groups), 'path group')}")
    return out


def _notes(rv: Review, stats: bool) -> list[str]:
    out = ["## Notes on the method", ""]
    notes = [
        "Every statement here comes from running the kernel rules of klpmodel (kernel.py); the "
        "review decides no rule itself.",
        f"Matrix: the series is cut down to the two patches P and Q. The start state is the "
        f"one after `load P; complete` with no statement failing. From there an explicit "
        f"breadth-first search explores every sequence of up to {plural(rv.depth, 'operation')} whose "
        f"first operation is `load Q` (every choice inside an operation, such as an allocation "
        f"failing in pre_patch, included). A property violated there is counted against the "
        f"pair unless the same search without Q (only P, from the same start, any first "
        f"operation) violates it too. Refused pairs are summarised by the kernel's rule, with "
        f"one of them as the selftests' log shows it. "
        f"Traces include the two set-up operations; the `simulate` line replays them on the "
        f"whole spec.",
        "Paths: concrete runs of the operations shown, with no statement failing.",
        f"Verdicts: `klpmodel verify` on the whole series (depth {rv.depth}, engine "
        f"{rv.engine}: {rv.result.engine} answered).",
        "Coverage: a second explicit search of the whole series to the same depth, without "
        "the symmetry reduction (so every patch's own lines are seen), runs every transition "
        "with its events recorded. A property is vacuous when it holds and no explored "
        "transition reaches what it judges (the table in Coverage).",
        "Within the depth only: a statement that never ran may run in a longer sequence, "
        "unless the verdicts say the state space was exhausted.",
    ]
    for n in notes:
        out += _bullet(n)
    if stats:
        out += ["", "Time (s): " + ", ".join(f"{k} {v:.2f}" for k, v in rv.seconds.items())
                + f"; total {sum(rv.seconds.values()):.2f}"]
    return out + [""]


def markdown(rv: Review, stats: bool = False, command: str | None = None) -> str:
    spec = rv.spec
    out = [f"# Design review: {spec.name}", ""]
    out += _wrap(f"Spec `{spec.path}` (sha256 {spec.digest[:16]}), kernel profile "
                 f"`{rv.model.profile.name}` ({rv.model.profile.summary}), depth {rv.depth}.")
    command = command or f"klpmodel review {spec.path}"
    out += ["", f"Generated by `{command}`.", ""]
    out += _summary(rv, command)
    out += _verdicts(rv)
    out += _patches(rv)
    out += _matrix(rv, command)
    out += _moves(rv, command)
    out += _coverage(rv, command)
    out += _lifecycle(rv.model.profile.name)
    out += _notes(rv, stats)
    text = "\n".join(out).strip("\n") + "\n"
    while "\n\n\n" in text:                  # one blank line between blocks
        text = text.replace("\n\n\n", "\n\n")
    return text

