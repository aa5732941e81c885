"""Rendering a Result: the text report a kernel developer reads, and the JSON contract."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import events as E
from .events import Event, Incompatible, Where
from .interp import State
from .kernel import MODULE_OBJ, Model
from .verify import Result, Step, Violation
from .words import plural, rectangles, runs

Written = Sequence[tuple[Violation, Path, Path]]       # (violation, its .trace.json, its .itf.json)

# ------------------------------------------------------------------ events and changes

def event_lines(m: Model, step: Step) -> list[str]:
    """What the kernel and the callbacks did during one operation, one line each: the
    kernel's own log lines, and the model's notes for what the log does not show."""
    op = step.op
    return E.described(step.events, op.word, op.arg if op.word in ("modload", "modunload") else None)


def _block(s: str, ptr: int) -> str:
    return "NULL" if ptr == 0 else f"block {s}#{ptr}"


def changes(m: Model, before: State, after: State, events: Iterable[Event] = ()) -> list[str]:
    """Only what changed, in the words of the abstract system (properties.md)."""
    a, b = m.view(before), m.view(after)
    out = []
    leaks = {(ev.state, ev.slot) for ev in events if isinstance(ev, E.Leaked)}
    for p in m.P:
        if a.phase(p.name) != b.phase(p.name):
            out.append(f"{p.name}: {a.phase(p.name)} -> {b.phase(p.name)}")
        if b.forced(p.name) and not a.forced(p.name):
            out.append(f"{p.name}: forced (its module can never be removed)")
    for name in m.module_names:
        if a.module_loaded(name) != b.module_loaded(name):
            out.append(f"module {name}: {'loaded' if b.module_loaded(name) else 'not loaded'}")
    for s in m.state_names:
        if a.value(s) != b.value(s):
            out.append(f"{s}: {a.describe(s)} -> {b.describe(s)}")
    for sv, obj, words, _ in m.shadow_pair_list():
        if a.shadow(sv, obj) != b.shadow(sv, obj):
            out.append(f"shadow {words}: {'allocated' if b.shadow(sv, obj) else 'freed'}")
        if a.count(sv, obj) != b.count(sv, obj) and b.shadow(sv, obj):
            out.append(f"shadow {words} count: {a.count(sv, obj)} -> {b.count(sv, obj)}")
    for p in m.P:
        left = a.listed(p.name) and not b.listed(p.name)
        for s, _ in p.states:
            pa, pb = a.pointer(p.name, s), b.pointer(p.name, s)
            if pa != pb and not (left and pb == 0):       # a patch off the list holds nothing any more
                out.append(f"{p.name}.{s} data: {_block(s, pa)} -> {_block(s, pb)}")
    for s in m.state_names:
        for ba, bb in zip(a.blocks(s), b.blocks(s), strict=True):
            name = f"block {s}#{bb.slot}"
            leaked = (s, bb.slot) in leaks
            if leaked and not (ba.live and not bb.live):
                out.append(f"{name}: leaked (a block allocated here is live, and no installed patch points to it)")
            if not ba.live and bb.live:
                out.append(f"{name}: allocated, holds {b.describe(s, bb.content)}")
            elif ba.live and not bb.live:
                out.append(f"{name}: leaked (live, and no installed patch points to it)" if leaked else f"{name}: freed")
            elif bb.live and ba.content != bb.content:
                out.append(f"{name}: holds {b.describe(s, ba.content)} -> {b.describe(s, bb.content)}")
            elif not bb.live and ba.content != bb.content and any(
                    b.pointer(p.name, s) == bb.slot for p in m.P if p.version(s) is not None):
                out.append(f"{name} (freed): written, holds {b.describe(s, ba.content)} -> {b.describe(s, bb.content)}")
    return out


def _differences(m: Model, steps: Sequence[Step]) -> str:
    """How the abstract system after `steps` differs from before them (properties.md)."""
    a, b = m.view(steps[0].before), m.view(steps[-1].after)
    out = [f"{s} is {b.describe(s)}, was {a.describe(s)}" for s in m.state_names if a.value(s) != b.value(s)]
    out += [f"block {ev.state}#{ev.slot} is still allocated and nothing points to it"
            for st in steps for ev in st.events if isinstance(ev, E.Leaked)]
    for p in m.P:
        for s, _ in p.states:
            da, db = a.data(p.name, s), b.data(p.name, s)
            if da is None or db is None or da.slot != db.slot:
                continue
            if da.live and not db.live:
                out.append(f"{p.name}'s {s} data was freed")
            elif db.live and da.content != db.content:
                out.append(f"{p.name}'s {s} data now holds {b.describe(s, db.content)}")
    return "; ".join(out) or "see the steps above"


def broke(m: Model, v: Violation) -> str:
    """One sentence: what in the last step broke the property."""
    w = v.where
    last = m.view(v.trace[-1].after)
    if isinstance(w, Where):
        where = "" if w.obj == MODULE_OBJ else f" for {w.obj}"     # (the module's init/exit, its code)
        return f"{m.spec.path}:{w.stmt.line}: '{w.stmt.text}' in {w.patch}'s {w.callback}{where}"
    if isinstance(w, E.FailedLoad):
        return (f"the load of {w.patch} failed and the system is not as it was before the load: "
                + _differences(m, v.trace[-1:]))
    if isinstance(w, E.RevertedLoad):
        start = max(n for n, st in enumerate(v.trace) if st.op.word == "load")
        return (f"the reversed transition of {v.trace[start].op.arg} completed unpatched, and the system is not "
                f"as it was before step {start + 1}: " + _differences(m, v.trace[start:]))
    if isinstance(w, E.StateLeft):
        return f"state {w.state} is {last.describe(w.state)}, not original, and no installed patch declares it"
    if isinstance(w, E.Quiescent):
        lost = [f"block {ev.state}#{ev.slot} (step {n})" for n, st in enumerate(v.trace, 1)
                for ev in st.events if isinstance(ev, E.Leaked)]
        return "no transition is in progress and a live block is reachable from no installed patch: " + ", ".join(lost)
    if isinstance(w, E.NoWayBack):
        return f"from the state after step {len(v.trace)} there is no way back to an unpatched kernel: {w.reason}"
    if isinstance(w, E.Uses):
        kind = "NULL" if last.data(w.patch, w.state) is None else "freed"
        return f"{w.patch} is enabled and its code uses {w.state}, whose data is {kind}"
    if isinstance(w, E.ShadowLeft):
        return f"shadow variable {w.shadow} exists and no loaded livepatch module lists it: nothing can free it"
    if isinstance(w, E.ShadowUses) and v.property == "shadow-layout":
        return f"{w.patch} is enabled and its code reads shadow variable {w.shadow}, created with another layout"
    if isinstance(w, E.ShadowUses):
        return f"{w.patch} is enabled and its code needs shadow variable {w.shadow}, which does not exist"
    if isinstance(w, E.Orphaned):
        return f"module {w.module} unloaded while shadow variable {w.shadow} was attached to its objects"
    return "see the last step"


# ------------------------------------------------------------------ refused loads, by rule

def _alternatives(values: Sequence[int]) -> str:
    """2 / 2 or 3 / 2, 3 or 4"""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def refused_rules(m: Model, refused: Iterable[Incompatible] | None = None,
                  code: Callable[[str], str] = str) -> list[str]:
    """The loads the compatibility rule refuses (default: all of `m.refused_loads()`), one
    sentence per rule, state and loaded version for every product "these loaded over these
    installed" (words.rectangles): `r01..r04 declare s1 version 1 < 2, 3 or 4 of whichever of
    r05..r16 is installed (48 loads)`. A product of one pair is the kernel's own sentence. `code` marks
    patch names up (Markdown)."""
    order = [p.name for p in m.P]
    groups: dict[tuple[str, str, int | None], list[Incompatible]] = {}
    for x in m.refused_loads() if refused is None else refused:
        groups.setdefault((x.rule, x.state, x.version), []).append(x)
    out = []
    for (rule, state, version), xs in groups.items():
        for news, olds in rectangles(((x.new, x.old) for x in xs), order):
            inst = sorted({x.installed for x in xs if x.new in news and x.old in olds})
            n = len(news) * len(olds)
            new = runs(news, order, code)
            old = (f"installed {code(olds[0])}" if len(olds) == 1
                   else f"whichever of {runs(olds, order, code)} is installed")
            one = len(news) == 1
            loads = f" ({n} loads)" if n > 1 else ""
            if rule == "version":
                out.append(f"{new} declare{'s' if one else ''} {state} version {version} < {_alternatives(inst)} "
                           f"of {old}{loads}")
            elif rule == "undeclared-in-set":         # (kernel replace-set)
                out.append(f"{new} do{'es' if one else ''} not declare state {state} of {old}, of the same "
                           f"replace_set{loads}")
            elif rule == "shared-state":
                out.append(f"{new} declare{'s' if one else ''} state {state}, also declared by {old}, of another "
                           f"replace_set{loads}")
            elif rule == "undeclared-block-disable":  # (kernel state-callbacks, §A.4.2)
                out.append(f"cumulative {new} do{'es' if one else ''} not declare state {state} of {old}, which has "
                           f"block_disable{loads}")
            elif rule == "shared-function":
                out.append(f"{new} patch{'es' if one else ''} {state}, also patched by {old}, of another "
                           f"replace_set{loads}")
            else:
                out.append(f"cumulative {new} do{'es' if one else ''} not declare state {state} of {old}{loads}")
    return out


RANGE_NOTE = "a..b: every patch from a to b in spec order"

# ------------------------------------------------------------------ text

def summary(r: Result) -> list[str]:
    """The verdict in a sentence or two: what the report starts with."""
    bad = {v.property for v in r.violations}
    held = [p for p in r.properties if p not in bad]
    found = ", ".join(f"{v.property} ({v.depth} operation{'s' if v.depth > 1 else ''})" for v in r.violations)
    if r.verdict == "unknown":
        out = [f"verdict: unknown: the search stopped after depth {r.depth_done} of {r.depth} ({r.unknown})"]
        if found:
            out.append(f"violated so far: {found}")
        if held:
            out.append(f"no violation up to depth {r.depth_done}: {', '.join(held)}")
        return out
    if r.verdict == "violation":
        out = [f"verdict: violation: {len(bad)} of {plural(len(r.properties), 'property')} broken, shortest traces: "
               f"{found}"]
    else:
        bounded = [p for p in held if p != "recoverable"]
        out = [f"verdict: holds: no sequence of up to {plural(r.depth, 'operation')} breaks {', '.join(bounded)}"
               if bounded else "verdict: holds"]
        held = []
    if "recoverable" in r.properties and "recoverable" not in bad:
        out.append("recoverable: from every reachable state some sequence of operations gets back to no patch "
                   "installed and every system state original")
    if held:
        out.append(f"holds up to depth {r.depth}: {', '.join(held)}")
    if r.complete_at is not None:
        counted = " (not counting the folded rmmods)" if r.reductions else ""
        out.append(f"complete: every sequence of more than {plural(r.complete_at, 'operation')}{counted} revisits a "
                   f"state before its last step, so this verdict holds for sequences of any length")
    return out


def _files(written: Written) -> dict[tuple[str, int], tuple[Path, Path]]:
    return {(v.property, v.index): (pj, pi) for v, pj, pi in written}


def text(r: Result, stats: bool = False, written: Written = (),
         shown_above: Mapping[tuple[str, int], str] | None = None) -> str:
    """The report. `shown_above`: (property, index) -> where the side-by-side report already
    printed that trace; the trace is then named, not printed again (docs/compare.md)."""
    m, spec = r.model, r.spec
    out = [f"klpmodel verify {spec.path}: {spec.name}", *summary(r),
           f"kernel {spec.kernel}, depth {r.depth}, engine {r.engine}"
           + ((f" ({plural(r.states, 'state')}, diameter {r.diameter})" if r.complete_at is not None
               else f" ({plural(r.states, 'state')} within the depth)") if r.states is not None else "")
           + (f"; auto chose {r.why_engine}" if r.why_engine else ""),
           *(f"reduction: {why}" for why in r.reductions),
           *([f"not applicable under kernel {m.profile.name}: {', '.join(m.not_applicable)} "
              f"({m.profile.NOT_APPLICABLE})"] if m.not_applicable else [])]
    files = _files(written)
    refused = refused_rules(m)
    if refused:
        note = f" ({RANGE_NOTE})" if any(".." in why for why in refused) else ""
        out.append(f"the compatibility rule (klp_is_patch_compatible) refuses these loads{note}:")
        out += [f"  - {why}" for why in refused]
    for first in r.violations:
        shown = r.traces(first.property)
        for v in shown:
            where = (shown_above or {}).get((v.property, v.index))
            out += ["", *([f"{violation_head(v, len(shown))}: shown above ({where})"] if where is not None
                          else violation_text(m, v, len(shown)))]
            if (v.property, v.index) in files:
                pj, pi = files[(v.property, v.index)]
                out.append(f"  trace file: {pj} (ITF: {pi}); 'klpmodel explain {pj}' walks through it")
        if first.property in r.capped:
            out += ["", more_not_shown(first.property, len(shown))]
    if r.violations:
        out += ["", summary(r)[0]]
    if stats:
        out.append(f"time: {r.seconds:.3f} s; per depth: " + ", ".join(f"{d}:{t:.3f}" for d, t in r.per_depth))
    return "\n".join(out) + "\n"


def more_not_shown(prop: str, shown: int) -> str:
    """What --max-counterexamples left out: that more shortest traces exist (not how many)."""
    return (f"more shortest traces of {prop} exist than the {shown} shown: not shown "
            f"(--max-counterexamples {shown + 1} or more shows them)")


def violation_head(v: Violation, of: int = 1) -> str:
    """A counterexample's first line: VIOLATED P: shortest trace has N operations."""
    ops = f"{v.depth} operation{'s' if v.depth > 1 else ''}"
    return (f"VIOLATED {v.property}: shortest trace has {ops}" if of == 1
            else f"VIOLATED {v.property}: shortest trace {v.index} of {of}, {ops}")


def violation_text(m: Model, v: Violation, of: int = 1) -> list[str]:
    """One counterexample: the property, its seed sentence, each step, what broke it."""
    prop = m.prop(v.property)
    out = [violation_head(v, of), f"  seed: {prop.seed}", f"  violated when: {prop.violated_when}", ""]
    for n, step in enumerate(v.trace, 1):
        out.append(f"  {n}. {step.op}")
        for line in event_lines(m, step):
            out.append(f"       {line}")
        ch = changes(m, step.before, step.after, step.events)
        if ch:
            out.append("       changed: " + "; ".join(ch))
        others = sorted({p for p, _ in step.violations} - {v.property})
        if others:
            out.append("       also breaks here: " + ", ".join(others))
    out.append(f"  => {v.property} broken: {broke(m, v)}")
    return out


# ------------------------------------------------------------------ json

def _step_json(m: Model, step: Step) -> dict[str, Any]:
    callbacks: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for ev in step.events:
        if isinstance(ev, (E.Callback, E.StateCallback)):     # (a state's: object "state ID")
            cur = {"patch": ev.patch, "object": ev.obj, "callback": ev.callback, "statements": []}
            callbacks.append(cur)
        elif isinstance(ev, E.Ran) and cur is not None:
            entry: dict[str, Any] = {"statement": ev.where.stmt.text, "line": ev.where.stmt.line, "ran": ev.ran}
            if ev.prev:
                entry["prev_state"] = {"state": ev.prev[0], "patch": ev.prev[1]}
            cur["statements"].append(entry)
    after = m.view(step.after)
    state: dict[str, Any] = {"system": {s: after.describe(s) for s in m.state_names},
                             "patches": {p.name: after.phase(p.name) for p in m.P}}
    if m.spec.shadows:                  # (issue 14) only in specs that declare shadow variables
        state["shadows"] = {words: {"exists": after.shadow(sv, obj), "count": after.count(sv, obj)}
                            for sv, obj, words, _ in m.shadow_pair_list()}
    return {
        "operation": str(step.op),
        "choices": [{"patch": k.patch, "object": k.obj, "callback": k.callback, "index": k.index, "line": k.line,
                     "statement": k.text, "fails": True} for k in step.failed],
        "callbacks": callbacks,
        "events": event_lines(m, step),
        "changes": changes(m, step.before, step.after, step.events),
        "state": state,
    }


def violation_json(m: Model, v: Violation) -> dict[str, Any]:
    entry = {"property": v.property, "depth": v.depth, "seed": m.prop(v.property).seed,
             "broken_by": broke(m, v),
             "trace": [_step_json(m, s) for s in v.trace]}
    w = v.where
    if isinstance(w, Where):
        entry["statement"] = {"file": m.spec.path, "line": w.stmt.line, "text": w.stmt.text,
                              "patch": w.patch, "object": w.obj, "callback": w.callback}
    return entry


def to_json(r: Result, stats: bool = False, written: Written = ()) -> dict[str, Any]:
    m = r.model
    files = _files(written)

    def entry_of(v: Violation) -> dict[str, Any]:
        entry = violation_json(m, v)
        if (v.property, v.index) in files:
            pj, pi = files[(v.property, v.index)]
            entry["files"] = {"trace": str(pj), "itf": str(pi)}
        return entry

    viols = []
    for v in r.violations:
        entry = entry_of(v)
        others = r.traces(v.property)[1:]
        if others:
            entry["more"] = [entry_of(o) for o in others]
        if v.property in r.capped:
            entry["more_not_shown"] = True
        viols.append(entry)
    bad = {v.property for v in r.violations}
    out = {"format": 1, "verdict": r.verdict, "depth": r.depth,
           "violations": viols,
           "holds": [p for p in r.properties if p not in bad] if not r.unknown else [],
           "properties": list(r.properties),
           "spec": {"path": r.spec.path, "name": r.spec.name, "kernel": r.spec.kernel, "sha256": r.spec.digest},
           "engine": r.engine,
           "states": r.states,
           "diameter": r.diameter if r.complete_at is not None else None,
           "refused_loads": [str(why) for why in m.refused_loads()],
           "refused_summary": refused_rules(m),
           "reductions": list(r.reductions)}
    out["complete"] = r.complete_at is not None
    if r.model.not_applicable:                   # (a profile without some of mainline's properties)
        out["not_applicable"] = {"properties": list(r.model.not_applicable), "why": r.model.profile.NOT_APPLICABLE}
    if r.unknown:
        out["unknown"] = {"reason": r.unknown, "depth_done": r.depth_done}
    if stats:
        out["stats"] = {"seconds": round(r.seconds, 4), "per_depth": [[d, round(t, 4)] for d, t in r.per_depth]}
    return out


def json_text(r: Result, stats: bool = False, written: Written = ()) -> str:
    return json.dumps(to_json(r, stats, written), indent=2) + "\n"

