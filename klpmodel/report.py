"""Rendering a Result: the text report a kernel developer reads, and the JSON contract."""
from __future__ import annotations

import json

from . import klog
from .kernel import PHASES, Model, Where
from .properties import BY_NAME
from .spec import ERRNOS
from .verify import Result, Step, Violation
from .words import plural

_ERRNO_NAMES = {-v: "-" + k for k, v in ERRNOS.items()}


def errno_name(e: int) -> str:
    return _ERRNO_NAMES.get(e, str(e))


# ------------------------------------------------------------------ events and changes

def _prev_text(info) -> str:
    if not info:
        return ""
    state, patch = info
    return f"klp_get_prev_state({state}) = {patch if patch else 'NULL'}"


# the kernel's own log lines: rendered by klog.py, the one place that knows their text
_KERNEL_LINES = ("pre-patch-failed", "patch-failed", "apply-failed", "load-started", "complete", "completed",
                 "reverse", "disable-start", "disable-started", "applying", "refused", "reverting", "force", "modlog")


def event_lines(m: Model, step: Step) -> list[str]:
    """What the kernel and the callbacks did during one operation, one line each."""
    out = []
    for ev in step.events:
        kind = ev[0]
        if kind in _KERNEL_LINES:
            out += klog.event_lines(m, step.op, [ev])
        elif kind == "load-start":
            out.append(f"klp_enable_patch: '{ev[1]}' passes the compatibility check, joins klp_patches; patching transition initialized")
        elif kind == "callback":
            out.append(f"{ev[1]}: {ev[3]}({ev[2]})")
        elif kind in ("stmt", "skip"):
            w: Where = ev[1]
            prev = _prev_text(ev[2])
            if kind == "stmt":
                out.append(f"    {w.stmt.text:<48} line {w.stmt.line}" + (f"   [{prev}]" if prev else ""))
            else:
                out.append(f"    (skipped) {w.stmt.text:<38} line {w.stmt.line}" + (f"   [{prev}]" if prev else ""))
        elif kind == "alloc-failed":
            out.append("    -> the allocation fails (explored choice): data = NULL, fails with -ENOMEM")
        elif kind == "failed":
            out.append(f"    -> fails with {errno_name(ev[2])}" + (" (explored choice)" if ev[1].stmt.action == "maybe-fail" else ""))
        elif kind == "load-cancel":
            out.append(f"livepatch: failed to enable patch '{ev[1]}': transition cancelled, "
                       f"post_unpatch only where pre_patch succeeded; the load fails")
        elif kind == "replaced":
            out.append(f"'{ev[1]}' is replaced: it leaves klp_patches, none of its callbacks run")
        elif kind == "modload":
            out.append(f"target module '{ev[1]}' is loading (klp_module_coming)")
        elif kind == "modload-failed":
            out.append(f"the load of module '{ev[1]}' fails; its init never runs")
        elif kind == "modunload":
            out.append(f"target module '{ev[1]}' is going (klp_module_going)")
        elif kind == "log":
            out.append(f"    log: {ev[1].patch}: {ev[2]}")
    return out


def _block(s: str, ptr: int) -> str:
    return "NULL" if ptr == 0 else f"block {s}#{ptr}"


def changes(m: Model, before: dict, after: dict, events=()) -> list[str]:
    """Only what changed, in the words of the abstract system (properties.md)."""
    out = []
    leaks = {ev for ev in events if ev[0] == "leaked"}
    for p in m.P:
        a, b = before[f"phase[{p.name}]"], after[f"phase[{p.name}]"]
        if a != b:
            out.append(f"{p.name}: {PHASES[a]} -> {PHASES[b]}")
        if after[f"forced[{p.name}]"] and not before[f"forced[{p.name}]"]:
            out.append(f"{p.name}: forced (its module can never be removed)")
    for name in m.module_names:
        a, b = before[f"mod[{name}]"], after[f"mod[{name}]"]
        if a != b:
            out.append(f"module {name}: {'loaded' if b else 'not loaded'}")
    for s in m.state_names:
        a, b = before[f"val[{s}]"], after[f"val[{s}]"]
        if a != b:
            out.append(f"{s}: {m.describe_value(s, a)} -> {m.describe_value(s, b)}")
    listed = ("patching", "enabled", "unpatching")
    for p in m.P:
        left = (PHASES[before[f"phase[{p.name}]"]] in listed) and PHASES[after[f"phase[{p.name}]"]] not in listed
        for s, _ in p.states:
            a, b = before[f"ptr[{p.name}.{s}]"], after[f"ptr[{p.name}.{s}]"]
            if a != b and not (left and b == 0):       # a patch off the list holds nothing any more
                out.append(f"{p.name}.{s} data: {_block(s, a)} -> {_block(s, b)}")
    for s in m.state_names:
        for j in range(m.slots[s]):
            la, lb = before[f"live[{s}#{j}]"], after[f"live[{s}#{j}]"]
            ca, cb = before[f"cont[{s}#{j}]"], after[f"cont[{s}#{j}]"]
            name = f"block {s}#{j + 1}"
            if ("leaked", s, j) in leaks and not (la and not lb):
                out.append(f"{name}: leaked (a block allocated here is live, and no installed patch points to it)")
            if not la and lb:
                out.append(f"{name}: allocated, holds {m.describe_value(s, cb)}")
            elif la and not lb:
                out.append(f"{name}: leaked (live, and no installed patch points to it)"
                           if ("leaked", s, j) in leaks else f"{name}: freed")
            elif lb and ca != cb:
                out.append(f"{name}: holds {m.describe_value(s, ca)} -> {m.describe_value(s, cb)}")
            elif not lb and ca != cb and any(after[f"ptr[{p.name}.{s}]"] == j + 1 for p in m.P if p.version(s) is not None):
                out.append(f"{name} (freed): written, holds {m.describe_value(s, ca)} -> {m.describe_value(s, cb)}")
    return out


def _differences(m: Model, steps) -> str:
    """How the abstract system after `steps` differs from before them (properties.md)."""
    before, after = steps[0].before, steps[-1].after
    out = [f"{s} is {m.describe_value(s, after[f'val[{s}]'])}, was {m.describe_value(s, before[f'val[{s}]'])}"
           for s in m.state_names if before[f"val[{s}]"] != after[f"val[{s}]"]]
    out += [f"block {e[1]}#{e[2] + 1} is still allocated and nothing points to it"
            for st in steps for e in st.events if e[0] == "leaked"]
    for p in m.P:
        for s, _ in p.states:
            a, b = before[f"ptr[{p.name}.{s}]"], after[f"ptr[{p.name}.{s}]"]
            if a and a == b and before[f"live[{s}#{a - 1}]"] and not after[f"live[{s}#{a - 1}]"]:
                out.append(f"{p.name}'s {s} data was freed")
            elif a and a == b and after[f"live[{s}#{a - 1}]"] and before[f"cont[{s}#{a - 1}]"] != after[f"cont[{s}#{a - 1}]"]:
                out.append(f"{p.name}'s {s} data now holds {m.describe_value(s, after[f'cont[{s}#{a - 1}]'])}")
    return "; ".join(out) or "see the steps above"


def broke(m: Model, v: Violation) -> str:
    """One sentence: what in the last step broke the property."""
    w = v.where
    spec = m.spec
    if isinstance(w, Where):
        return (f"{spec.path}:{w.stmt.line}: '{w.stmt.text}' in {w.patch}'s {w.callback} "
                f"for {w.obj}")
    last = v.trace[-1].after
    if isinstance(w, tuple):
        if w[0] == "load":
            return (f"the load of {w[1]} failed in pre_patch and the system is not as it was before the load: "
                    + _differences(m, v.trace[-1:]))
        if w[0] == "complete":
            start = max(n for n, st in enumerate(v.trace) if st.op.word == "load")
            return (f"the reversed transition of {v.trace[start].op.arg} completed unpatched, and the system is not "
                    f"as it was before step {start + 1}: " + _differences(m, v.trace[start:]))
        if w[0] == "state":
            return (f"state {w[1]} is {m.describe_value(w[1], last[f'val[{w[1]}]'])}, not original, "
                    f"and no installed patch declares it")
        if w[0] == "quiescent":
            lost = [f"block {e[1]}#{e[2] + 1} (step {n})" for n, st in enumerate(v.trace, 1)
                    for e in st.events if e[0] == "leaked"]
            return ("no transition is in progress and a live block is reachable from no installed patch: "
                    + ", ".join(lost))
        if w[0] == "recoverable":
            return f"from the state after step {len(v.trace)} there is no way back to an unpatched kernel: {w[1]}"
        if w[0] == "uses":
            kind = "NULL" if last[f"ptr[{w[1]}.{w[2]}]"] == 0 else "freed"
            return f"{w[1]} is enabled and its code uses {w[2]}, whose data is {kind}"
    return "see the last step"


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
        out.append(f"complete: every sequence of more than {plural(r.complete_at, 'operation')} revisits a state before its "
                   f"last step, so this verdict holds for sequences of any length")
    return out


def _files(written) -> dict:
    return {(v.property, v.index): (pj, pi) for v, pj, pi in written}


def text(r: Result, stats: bool = False, written=()) -> str:
    m, spec = r.model, r.spec
    out = [f"klpmodel verify {spec.path}: {spec.name}", *summary(r),
           f"kernel {spec.kernel}, depth {r.depth}, engine {r.engine}"
           + ((f" ({plural(r.states, 'state')}, diameter {r.diameter})" if r.complete_at is not None
               else f" ({plural(r.states, 'state')} within the depth)") if r.states is not None else "")
           + (f"; auto chose {r.why_engine}" if r.why_engine else "")]
    files = _files(written)
    refused = m.refused_loads()
    if refused:
        out.append("the compatibility rule (klp_is_patch_compatible) refuses these loads:")
        out += [f"  - {why}" for why in refused]
    for first in r.violations:
        for v in r.traces(first.property):
            out += ["", *violation_text(m, v, len(r.traces(first.property)))]
            if (v.property, v.index) in files:
                pj, pi = files[(v.property, v.index)]
                out.append(f"  trace file: {pj} (ITF: {pi}); 'klpmodel explain {pj}' walks through it")
    if r.violations:
        out += ["", summary(r)[0]]
    if stats:
        out.append(f"time: {r.seconds:.3f} s; per depth: " + ", ".join(f"{d}:{t:.3f}" for d, t in r.per_depth))
    return "\n".join(out) + "\n"


def violation_text(m: Model, v: Violation, of: int = 1) -> list[str]:
    """One counterexample: the property, its seed sentence, each step, what broke it."""
    prop = BY_NAME[v.property]
    ops = f"{v.depth} operation{'s' if v.depth > 1 else ''}"
    head = (f"VIOLATED {v.property}: shortest trace has {ops}" if of == 1
            else f"VIOLATED {v.property}: shortest trace {v.index} of {of}, {ops}")
    out = [head, f"  seed: {prop.seed}", f"  violated when: {prop.violated_when}", ""]
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

def _step_json(m: Model, step: Step) -> dict:
    callbacks, cur = [], None
    for ev in step.events:
        if ev[0] == "callback":
            cur = {"patch": ev[1], "object": ev[2], "callback": ev[3], "statements": []}
            callbacks.append(cur)
        elif ev[0] in ("stmt", "skip") and cur is not None:
            w = ev[1]
            entry = {"statement": w.stmt.text, "line": w.stmt.line, "ran": ev[0] == "stmt"}
            if ev[2]:
                entry["prev_state"] = {"state": ev[2][0], "patch": ev[2][1]}
            cur["statements"].append(entry)
    return {
        "operation": str(step.op),
        "choices": [{"patch": k.patch, "object": k.obj, "callback": k.callback, "index": k.index, "line": k.line,
                     "statement": k.text, "fails": True} for k in step.failed],
        "callbacks": callbacks,
        "events": event_lines(m, step),
        "changes": changes(m, step.before, step.after, step.events),
        "state": {"system": {s: m.describe_value(s, step.after[f"val[{s}]"]) for s in m.state_names},
                  "patches": {p.name: PHASES[step.after[f"phase[{p.name}]"]] for p in m.P}},
    }


def violation_json(m: Model, v: Violation) -> dict:
    entry = {"property": v.property, "depth": v.depth, "seed": BY_NAME[v.property].seed,
             "broken_by": broke(m, v),
             "trace": [_step_json(m, s) for s in v.trace]}
    w = v.where
    if isinstance(w, Where):
        entry["statement"] = {"file": m.spec.path, "line": w.stmt.line, "text": w.stmt.text,
                              "patch": w.patch, "object": w.obj, "callback": w.callback}
    return entry


def to_json(r: Result, stats: bool = False, written=()) -> dict:
    m = r.model
    files = _files(written)

    def entry_of(v: Violation) -> dict:
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
           "refused_loads": m.refused_loads()}
    out["complete"] = r.complete_at is not None
    if r.unknown:
        out["unknown"] = {"reason": r.unknown, "depth_done": r.depth_done}
    if stats:
        out["stats"] = {"seconds": round(r.seconds, 4), "per_depth": [[d, round(t, 4)] for d, t in r.per_depth]}
    return out


def json_text(r: Result, stats: bool = False, written=()) -> str:
    return json.dumps(to_json(r, stats, written), indent=2) + "\n"

