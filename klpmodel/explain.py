"""`klpmodel explain` and `klpmodel replay`: a saved counterexample walked through step by
step, and run again against a (possibly edited) spec — the fix-check loop."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import events as E
from . import klog
from .errors import UserError, printable
from .events import Where
from .interp import State
from .kernel import MODULE_OBJ, Model
from .properties import EXPECTED_USAGE
from .report import broke, changes
from .spec import SHADOW_ACTIONS, Stmt
from .traces import Rerun, TraceFile, raw_state, rerun, summary, violation_of
from .verify import Step, Violation

# what the explain's callbacks section shows: the model's side of a step (the kernel's
# own lines are in its log section)
_CALLBACK_EVENTS = (E.Callback, E.StateCallback, E.ShadowFreeAll, E.Ran, E.AllocFailed, E.Failed, E.PatchFailed, E.Replaced, E.Leaked)


def callback_lines(step: Step) -> list[str]:
    """Each callback that ran, with its statements (spec line, skipped or not, what
    klp_get_prev_state returned) and what failed: the events' own notes."""
    return [ev.note() or "" for ev in step.events if isinstance(ev, _CALLBACK_EVENTS)]


def _state_line(m: Model, state: State) -> str:
    s = summary(m, state)
    parts = [", ".join(f"{p} {ph}" for p, ph in s["patches"].items())]
    if s["system"]:
        parts.append(", ".join(f"{k} {v}" for k, v in s["system"].items()))
    data = {k: v for k, v in s["data"].items() if v != "NULL"}
    if data:
        parts.append(", ".join(f"{k} -> {v}" for k, v in data.items()))
    if s["modules"]:
        parts.append(", ".join(f"module {k} {'loaded' if v else 'not loaded'}" for k, v in s["modules"].items()))
    return "; ".join(parts)


def _check_recorded(t: TraceFile, steps: Sequence[Step]) -> None:
    """explain shows a trace of the unchanged spec: the run must reproduce every recorded state."""
    for n, (step, rec) in enumerate(zip(steps, t.doc["steps"], strict=False), 1):
        if rec.get("state") is not None and rec["state"] != raw_state(step.after):
            raise UserError(f"step {n}: the recorded state differs from a run of the spec; the trace file was "
                            f"edited or comes from another spec version (write it again with verify --out)",
                            path=t.path)


def explain(m: Model, t: TraceFile, era: str = "insmod") -> str:
    if t.doc["spec"]["sha256"] != m.spec.digest:
        raise UserError(f"the spec {m.spec.path} changed since this trace was written (sha256 differs); "
                        f"'klpmodel replay {t.path}' checks the trace against the edited spec", path=t.path)
    run = rerun(m, t)
    if run.stopped or (run.broken_at is None and t.property != "recoverable"):
        raise UserError("the trace does not reproduce against its own spec "
                        f"({run.stopped or 'the property holds at every step'}); the trace file was edited",
                        path=t.path)
    _check_recorded(t, run.steps)
    v = violation_of(t, run)
    prop = m.prop(t.property)
    n_ops = len(v.trace)
    out = [f"klpmodel explain {t.path}",
           f"spec: {m.spec.path} ({m.spec.name}), kernel {m.spec.kernel}; the trace was written by "
           f"{printable(t.doc.get('generator', 'klpmodel'))} for this exact spec (sha256 matches)",
           f"property: {t.property}, broken after {n_ops} operation{'s' if n_ops > 1 else ''} "
           f"(shortest trace {t.doc.get('index', 1)}, found by the {printable(t.doc.get('engine', '?'))} engine)",
           f"  seed rule: {prop.seed}",
           f"  violated when: {prop.violated_when}",
           "",
           f"start: {_state_line(m, v.trace[0].before)}"]
    for n, step in enumerate(v.trace, 1):
        out += ["", f"step {n}: {step.op}"]
        log = klog.op_lines(m, step.op, step.before, step.events, era=era)
        if log:
            out.append("  kernel log:")
            out += [f"    {line}" for line in log]
        cbs = callback_lines(step)
        if cbs:
            out.append("  callbacks:")
            out += [f"    {line}" for line in cbs]
        ch = changes(m, step.before, step.after, step.events)
        out.append("  changed: " + ("; ".join(ch) if ch else "nothing"))
        others = sorted({p for p, _ in step.violations} - {t.property})
        if others:
            out.append("  also breaks here: " + ", ".join(others))
    out += ["", f"violated: {t.property} after step {n_ops}", f"  where it shows: {broke(m, v)}"]
    cause = culprit(m, v)
    callbacks = []
    if cause:
        n, w, what = cause
        obj = "" if w.obj == MODULE_OBJ else f"for {w.obj} "
        out.append(f"  caused by: {m.spec.path}:{w.stmt.line}: '{w.stmt.text}' in {w.patch}'s {w.callback} "
                   f"{obj}(step {n}) {what}")
        callbacks.append(w.callback)
    elif isinstance(v.where, Where):
        callbacks.append(v.where.callback)
    if prop.seed.startswith("(data discipline)"):
        out.append("  the seed rule it breaks: no single sentence: this is the data discipline the seed's callbacks "
                   "need (state->data is valid while any code that can run uses it)")
    else:
        out.append(f"  the seed rule it breaks: {prop.seed}")
    if cause and cause.where.stmt.action in ("free", "free-prev") and cause.where.callback != "post_unpatch":
        callbacks.append("post_unpatch")
    callbacks += [cb for cb in prop.fix_in if cb not in callbacks]
    for cb in callbacks:
        if cb not in EXPECTED_USAGE:        # (the module's init/exit: the seed says nothing of them)
            continue
        out.append(f"  the seed's expected usage of {cb}():")
        out += [f"    - {line}" for line in EXPECTED_USAGE.get(cb, ())]
    return "\n".join(out) + "\n"




class Culprit(NamedTuple):
    """The statement that set a violation up: the step it ran in (from 1), where, and what it did."""
    step: int
    where: Where
    what: str


def _pair(stmt: Stmt) -> str | None:
    """(issue 14) The shadow pair a statement names, in the words the sites use: "SV" on the
    abstract parent object, "SV on OBJ" on a named one."""
    return stmt.arg if stmt.obj is None else f"{stmt.arg} on {stmt.obj}"


def culprit(m: Model, v: Violation) -> Culprit | None:
    """The statement that set the violation up, when it is not the one where it shows:
    the free before a use after free or a double free, the allocation of a leaked block,
    the failed allocation behind a NULL dereference."""
    w = v.where
    state = w.stmt.arg if isinstance(w, Where) else (w.state if isinstance(w, E.Uses) else None)
    ran = [(n, ev.where) for n, st in enumerate(v.trace, 1) for ev in st.events if isinstance(ev, E.Ran) and ev.ran]
    if isinstance(w, Where):          # only what ran before the violating statement itself
        last = max(i for i, (n, x) in enumerate(ran) if n == len(v.trace) and x.stmt is w.stmt and x.patch == w.patch)
        ran = ran[:last]
    if v.property in ("no-use-after-free", "no-double-free") and state:
        frees = [(n, x) for n, x in ran if x.stmt.action in ("free", "free-prev") and x.stmt.arg == state]
        if frees:
            return Culprit(*frees[-1], "freed the block")
    if v.property in ("no-leak", "revert-restores", "error-cleanup"):
        leaked = [ev.state for st in v.trace for ev in st.events if isinstance(ev, E.Leaked)]
        allocs = [(n, x) for n, x in ran if x.stmt.action == "alloc" and x.stmt.arg in leaked]
        if allocs:
            return Culprit(*allocs[-1], "allocated the block that nothing frees")
    shadow = w.shadow if isinstance(w, (E.ShadowLeft, E.ShadowUses, E.Orphaned)) else \
        (_pair(w.stmt) if isinstance(w, Where) and w.stmt.action in SHADOW_ACTIONS else None)
    if shadow is not None and v.property == "shadow-use-after-free":
        frees = [(n, x) for n, x in ran if (x.stmt.action in ("shadow-free", "put") and _pair(x.stmt) == shadow)
                 or (x.stmt.action == "shadow-free-all" and x.stmt.arg == shadow.split(" on ")[0])]
        if frees:
            return Culprit(*frees[-1], f"freed shadow variable {shadow}")
    if shadow is not None and v.property in ("shadow-leak", "shadow-orphan", "shadow-layout"):
        made = [(n, x) for n, x in ran if _pair(x.stmt) == shadow and x.stmt.action in ("shadow-alloc", "shadow-get-or-alloc", "get")]
        if made and v.property == "shadow-layout":     # the first creation since it last did not exist
            return Culprit(*made[0], f"created shadow variable {shadow} with {made[0][1].patch}'s layout")
        if made:
            return Culprit(*made[-1], f"created shadow variable {shadow}, and nothing that ran later freed it")
    changed: list[str] = []
    end = m.view(v.trace[-1].after)
    if isinstance(w, E.StateLeft):
        changed = [w.state]
    elif v.property in ("revert-restores", "error-cleanup"):
        start = m.view(v.trace[max(n for n, st in enumerate(v.trace) if st.op.word == "load")].before)
        changed = [s for s in m.state_names if start.value(s) != end.value(s)]
    writes = [(n, x) for n, x in ran if x.stmt.action in ("modify", "restore", "reset") and x.stmt.arg in changed]
    if writes:
        n, x = writes[-1]
        s = x.stmt.arg or ""
        return Culprit(n, x, f"set {s} to {end.describe(s)}, and no statement that ran later restored it")
    if v.property == "no-null-deref" and state:
        failed = [(n, ev.where) for n, st in enumerate(v.trace, 1) for ev in st.events
                  if isinstance(ev, E.AllocFailed) and ev.where.stmt.arg == state]
        if failed:
            return Culprit(*failed[-1], "failed to allocate, and the data stayed NULL")
    return None


# ------------------------------------------------------------------ replay

@dataclass(frozen=True)
class ReplayResult:
    outcome: str                # "violated" | "fixed" | "not-possible"
    text: str
    doc: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return {"violated": 1, "fixed": 0, "not-possible": 3}[self.outcome]


def replay(m: Model, t: TraceFile) -> ReplayResult:
    run = rerun(m, t)
    same = t.doc["spec"]["sha256"] == m.spec.digest
    n_ops = len(t.ops)
    head = [f"klpmodel replay {t.path}",
            f"trace: {t.property}, {n_ops} operation{'s' if n_ops > 1 else ''}: " + "; ".join(map(str, t.ops)),
            f"spec: {m.spec.path} ({'unchanged since the trace was written' if same else 'edited since the trace was written'})"]
    doc = {"format": 1, "trace": t.path, "property": t.property, "spec": m.spec.path, "spec_changed": not same,
           "operations": len(t.ops)}
    if t.property == "recoverable":
        return _replay_recoverable(m, t, run, head, doc)
    if run.broken_at is not None:
        v = violation_of(t, run)
        at = run.broken_at
        note = "" if at == n_ops else f" (earlier than recorded: step {n_ops})"
        head += [f"result: still violated: {t.property} breaks at step {at}{note}", f"  {broke(m, v)}"]
        doc.update(outcome="violated", step=at, broken_by=broke(m, v))
        return ReplayResult("violated", "\n".join(head) + "\n", doc)
    if run.stopped:
        head += [f"result: the trace is no longer possible: {run.stopped}",
                 f"  (it ran {len(run.steps)} of {n_ops} operation{'s' if n_ops != 1 else ''} without breaking {t.property}); "
                 f"this says nothing about other sequences: run 'klpmodel verify {m.spec.path}'"]
        doc.update(outcome="not-possible", step=len(run.steps) + 1, reason=run.stopped)
        return ReplayResult("not-possible", "\n".join(head) + "\n", doc)
    head += ["result: fixed for this trace: "
             + (f"all {n_ops} operations still run" if n_ops != 1 else "its operation still runs")
             + f" and {t.property} holds at every step",
             f"  other sequences may still break it: run 'klpmodel verify {m.spec.path}'"]
    doc.update(outcome="fixed")
    return ReplayResult("fixed", "\n".join(head) + "\n", doc)


def _replay_recoverable(m: Model, t: TraceFile, run: Rerun, head: list[str], doc: dict[str, Any]) -> ReplayResult:
    from .engine_explicit import way_back

    if run.stopped:
        head.append(f"result: the trace is no longer possible: {run.stopped}")
        doc.update(outcome="not-possible", step=len(run.steps) + 1, reason=run.stopped)
        return ReplayResult("not-possible", "\n".join(head) + "\n", doc)
    end = run.steps[-1].after
    path = way_back(m, end)
    if path is None:
        head.append("result: still violated: from the state after the last step there is no way back to an "
                    "unpatched kernel")
        doc.update(outcome="violated", step=len(run.steps))
        return ReplayResult("violated", "\n".join(head) + "\n", doc)
    head.append("result: fixed for this trace: from its last state this sequence gets back to no patch installed "
                "and every state original: " + "; ".join(map(str, path)))
    doc.update(outcome="fixed", way_back=[str(op) for op in path])
    return ReplayResult("fixed", "\n".join(head) + "\n", doc)


def replay_json(r: ReplayResult) -> str:
    return json.dumps(r.doc, indent=2) + "\n"
