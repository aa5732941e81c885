"""Side by side (issue 15, item 3): one spec verified under several kernel profiles, the
differences first.

For each property the verdict under each profile; for each property whose verdicts differ,
the shortest trace under the profile where it breaks and why another profile does not
reach it: the same operations, with the same failing statements, replayed under that
profile's rules (interp.apply, i.e. kernel.step with its Model), and the first step whose
outcome differs (refused there, or a different change of the state, or different kernel
log lines and notes). Everything here is read through the read side (events, View via
report.changes/event_lines): no kernel rule and no state variable name.

A profile that cannot express the spec (its `refuse`: a key it gives no meaning) gets a
column "cannot express: <the loader's message>"; the spec is never translated. A profile
the --timeout (or Ctrl-C) left without a run gets a column "timeout: not checked"; the
others are compared as they are.
"""
from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from . import interp
from .deadline import TIMEOUT
from .kernel import PROFILES, Model
from .report import Written, changes, event_lines, to_json, violation_json, violation_text
from .spec import Spec
from .verify import Result, Step, Violation
from .words import plural


@dataclass(frozen=True)
class Column:
    """One profile's run: its result, or why the profile cannot express the spec."""
    kernel: str
    result: Result | None = None
    cannot: str | None = None           # the loader's message (FILE:LINE: ...)
    stopped: str | None = None          # not checked: why (deadline.TIMEOUT, INTERRUPTED) the run never ran
    lacks: tuple[str, ...] = ()         # -p: the properties asked for, none of which this profile has (no run)


def not_checked(why: str) -> str:
    """A profile the deadline left without a run, in a table cell: "timeout: not checked"."""
    return f"{why.split(' (')[0]}: not checked"


@dataclass(frozen=True)
class Verdict:
    kind: str                           # holds, violated, unknown, not-applicable, cannot-express, not-checked
    depth: int | None = None            # violated: the shortest trace's length
    why: str | None = None              # not-checked: what stopped the runs (timeout, interrupted (Ctrl-C))
    searched: int | None = None         # unknown: the depth the search finished without breaking the property

    def __str__(self) -> str:
        if self.kind == "not-checked":
            return not_checked(self.why or "timeout")
        return {"violated": f"violated at depth {self.depth}", "not-applicable": "not applicable",
                "cannot-express": "cannot express"}.get(self.kind, self.kind)

    @property
    def applies(self) -> bool:
        """A verdict of a profile that ran and has the property (what a difference is made of)."""
        return self.kind in ("holds", "violated", "unknown")


@dataclass(frozen=True)
class Outcome:
    """One side of a step replayed under two profiles."""
    events: tuple[str, ...]
    changes: tuple[str, ...]


@dataclass(frozen=True)
class WhyNot:
    """Why profile `kernel` does not reach the violation found under another one."""
    kernel: str
    verdict: Verdict
    step: int | None = None             # the first step whose change of the state differs (else whose log
    operation: str | None = None        # differs); None: none does
    base: Outcome | None = None         # that step under the profile where it breaks
    other: Outcome | None = None        # ... and under `kernel`
    log_only_before: int | None = None  # an earlier step differing only in what it logs
    refused_step: int | None = None     # a step refused under `kernel` (the replay stops there)
    refused_operation: str | None = None
    refused: str | None = None          # why
    breaks: bool = False                # the same operations break the property under `kernel` too
    breaks_other: tuple[str, ...] = ()  # what the same operations break under `kernel` instead


@dataclass(frozen=True)
class Traced:
    """One shortest trace of a difference and why each other profile does not reach it."""
    violation: Violation
    why_not: tuple[WhyNot, ...]


@dataclass(frozen=True)
class Difference:
    property: str
    kernel: str                         # the profile where it breaks (the shortest trace)
    model: Model
    same: tuple[str, ...]               # other profiles with the same verdict
    traces: tuple[Traced, ...]          # each shortest trace reported there (--max-counterexamples), replayed

    @builtins.property                  # (the field `property` hides the builtin in this class)
    def violation(self) -> Violation:
        return self.traces[0].violation

    @builtins.property
    def why_not(self) -> tuple[WhyNot, ...]:
        return self.traces[0].why_not


@dataclass(frozen=True)
class Comparison:
    spec: Spec
    columns: tuple[Column, ...]
    properties: tuple[str, ...]
    verdicts: dict[str, dict[str, Verdict]]
    differences: tuple[Difference, ...]

    @property
    def exit_code(self) -> int:
        """The worst of the runs: 3 if one is unknown or a profile was not checked (the
        deadline came first), else 1 if one has a violation, else 0 (a profile that cannot
        express the spec does not count; none that can is exit 2, before any run)."""
        if any(c.stopped is not None for c in self.columns):
            return 3
        return max(c.result.exit_code for c in self.columns if c.result is not None)


def known(kernel: str) -> tuple[str, ...]:
    """Every property profile `kernel` has (Model.all_properties, without a spec)."""
    p = PROFILES[kernel]
    return tuple(x.name for x in p.PROPERTIES + p.SHADOW + p.EXTRA)


def _verdict(col: Column, prop: str) -> Verdict:
    r = col.result
    if col.stopped is not None:
        return Verdict("not-checked", why=col.stopped)
    if col.lacks:
        return Verdict("not-applicable")
    if r is None:
        return Verdict("cannot-express")
    if prop not in r.properties:
        return Verdict("not-applicable")
    v = next((v for v in r.violations if v.property == prop), None)
    if v is not None:
        return Verdict("violated", v.depth)
    return Verdict("unknown", searched=r.depth_done) if r.unknown else Verdict("holds")


def differs(row: dict[str, Verdict]) -> bool:
    """Two profiles have different verdicts on the property: holds against violated, or
    violated at different depths, or violated at depth N against a search that stopped
    (unknown) after finishing depth N without breaking it. Otherwise unknown, not
    applicable, cannot express and not checked are no verdict to differ from: the table
    shows them."""
    if len({str(v) for v in row.values() if v.kind in ("holds", "violated")}) > 1:
        return True
    broke = [v.depth or 0 for v in row.values() if v.kind == "violated"]
    return bool(broke) and any(v.kind == "unknown" and (v.searched or 0) >= min(broke) for v in row.values())


def compare(spec: Spec, columns: list[Column]) -> Comparison:
    ran = [c for c in columns if c.result is not None]
    props: list[str] = []
    for c in ran:
        assert c.result is not None
        props += [p for p in c.result.properties if p not in props]
    catalog = [p for c in ran for p in known(c.kernel)]
    props.sort(key=catalog.index)
    verdicts = {p: {c.kernel: _verdict(c, p) for c in columns} for p in props}
    diffs = []
    for p in props:
        row = verdicts[p]
        if not differs(row):
            continue
        broke = [c for c in ran if row[c.kernel].kind == "violated"]
        if not broke:                   # holds against unknown: nothing to show
            continue
        base = min(broke, key=lambda c: row[c.kernel].depth or 0)
        assert base.result is not None
        same = tuple(c.kernel for c in ran if c is not base and str(row[c.kernel]) == str(row[base.kernel]))
        others = [c for c in ran if c.kernel not in same and c is not base and row[c.kernel].applies]
        traced = []
        for v in base.result.traces(p):             # each shortest trace reported (-n N), each replayed
            traced.append(Traced(v, tuple(why_not(base.result.model, v, c.result.model, c.kernel, row[c.kernel])
                                          for c in others if c.result is not None)))
        diffs.append(Difference(p, base.kernel, base.result.model, same, tuple(traced)))
    return Comparison(spec, tuple(columns), tuple(props), verdicts, tuple(diffs))


def _outcome(m: Model, step: Step) -> Outcome:
    return Outcome(tuple(event_lines(m, step)), tuple(changes(m, step.before, step.after, step.events)))


def why_not(bm: Model, v: Violation, om: Model, kernel: str, verdict: Verdict) -> WhyNot:
    """Replay v's operations, with the same failing statements, under `om` (profile
    `kernel`): the first step whose change of the state differs (else whose log differs),
    the step refused there if one is, and whether the property breaks there."""
    state = interp.initial(om)
    first: tuple[int, Step, Step] | None = None          # the first change of the state that differs
    log_only: tuple[int, Step, Step] | None = None       # the first step differing only in its log
    other: list[Step] = []
    refused: tuple[int, Step, str] | None = None
    for k, step in enumerate(v.trace, 1):
        why = interp.refusal(om, state, step.op)
        if why is not None:
            refused = (k, step, str(why))
            break
        out = interp.apply(om, state, step.op, {c: True for c in step.failed})
        mine = Step(step.op, tuple(out.failed_choices), tuple(out.events), state, out.state, tuple(out.violations))
        other.append(mine)
        a, b = _outcome(bm, step), _outcome(om, mine)
        if first is None and a.changes != b.changes:
            first = (k, step, mine)
        elif first is None and log_only is None and a.events != b.events:
            log_only = (k, step, mine)
        state = out.state
    breaks = refused is None and any(p == v.property for p, _ in other[-1].violations)
    others = tuple(sorted({p for s in other for p, _ in s.violations} - {v.property}))
    pick = first or log_only
    where: dict[str, Any] = {}
    if pick is not None:
        k, step, mine = pick
        where = {"step": k, "operation": str(step.op), "base": _outcome(bm, step), "other": _outcome(om, mine),
                 "log_only_before": log_only[0] if first is not None and log_only is not None and log_only[0] < k
                 else None}
    if refused is not None:
        where.update(refused_step=refused[0], refused_operation=str(refused[1].op), refused=refused[2])
    return WhyNot(kernel, verdict, **where, breaks=breaks, breaks_other=others)


# ------------------------------------------------------------------ text

def _table(c: Comparison) -> list[str]:
    kernels = [col.kernel for col in c.columns]
    rows = [["property", *kernels]] + [[p, *(str(c.verdicts[p][k]) for k in kernels)] for p in c.properties]
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(x.ljust(w) for x, w in zip(r, width, strict=True)).rstrip() for r in rows]


def headline(c: Comparison) -> str:
    """The comparison in one line: which properties differ, or that none does."""
    ran = [col.kernel for col in c.columns if col.result is not None]
    cannot = [col.kernel for col in c.columns if col.cannot is not None]
    unchecked = "; ".join(f"{col.kernel}: {not_checked(col.stopped)}" for col in c.columns if col.stopped is not None)
    differ = [p for p in c.properties if differs(c.verdicts[p])]
    lacking = [col.kernel for col in c.columns if col.lacks]
    if len(ran) < 2:
        if not unchecked and not lacking and ran:
            return f"no comparison: only {ran[0]} can express the spec ({', '.join(cannot)} cannot)"
        return ("no comparison: " + (f"only {ran[0]} was checked" if ran else "no profile was checked") + " ("
                + "; ".join([*([f"{_and(cannot)} cannot express the spec"] if cannot else []),
                             *([f"{_and(lacking)} {'has' if len(lacking) == 1 else 'have'} none of the properties "
                                f"asked for"] if lacking else []),
                             *([unchecked] if unchecked else [])]) + ")")
    tail = f" ({unchecked})" if unchecked else ""
    kinds = {col.kernel: [c.verdicts[p][col.kernel].kind for p in c.properties]
             for col in c.columns if col.result is not None}
    without = [f"{n} not applicable under {k}" for k, v in kinds.items() if (n := v.count("not-applicable"))]
    without += [f"the search stopped under {k}: {n} unknown" for k, v in kinds.items() if (n := v.count("unknown"))]
    if not differ:
        if not without:
            return f"no difference: every property has the same verdict under {_and(ran)}" + tail
        return (f"no difference: no property has two different verdicts under {_and(ran)} ("
                + "; ".join(without) + (f"; {unchecked}" if unchecked else "") + ")")
    return f"differences: {len(differ)} of {plural(len(c.properties), 'property')}: " + ", ".join(
        f"{p} ({'; '.join(f'{k}: {c.verdicts[p][k]}' for k in ran)})" for p in differ) + tail


def notes(c: Comparison) -> list[str]:
    """Under the headline, a line per profile without a full verdict: it cannot express the
    spec, it was not checked (the deadline came before its run), or its search stopped."""
    out = []
    for col in c.columns:
        if col.cannot is not None:
            out.append(f"{col.kernel}: cannot express: {col.cannot}")
        elif col.stopped is not None:
            what = ("the --timeout expired before its run; run it alone with --kernel {k}, or give a longer "
                    "--timeout" if col.stopped == TIMEOUT else "{why} stopped the runs before it; run it alone "
                    "with --kernel {k}")
            out.append(f"{col.kernel}: {not_checked(col.stopped)}: " + what.format(k=col.kernel, why=col.stopped))
        elif col.lacks:
            why = PROFILES[col.kernel].NOT_APPLICABLE
            out.append(f"{col.kernel}: not applicable: kernel profile {col.kernel} has none of the properties asked "
                       f"for ({', '.join(col.lacks)})" + (f": {why}" if why else ""))
        elif col.result is not None and col.result.unknown:
            r = col.result
            out.append(f"{col.kernel}: unknown: the search stopped after depth {r.depth_done} of {r.depth} "
                       f"({r.unknown})")
    return out


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _side(o: Outcome, against: Outcome) -> list[str]:
    lines = [e for e in o.events if e not in against.events]
    return lines + (["changed: " + "; ".join(o.changes)] if o.changes else ["changed: nothing"])


def why_text(d: Difference, w: WhyNot, v: Violation | None = None) -> list[str]:
    """Why profile w.kernel does not reach trace v (default: the difference's first trace)."""
    v = d.violation if v is None else v
    n = len(v.trace)
    out = [f"  why not under {w.kernel} ({w.verdict}): the same {n} operation{'s' if n > 1 else ''}, with the same "
           f"failing statements, under {w.kernel}:"]
    if w.log_only_before is not None:
        out.append(f"    (step {w.log_only_before} differs only in what it logs)")
    if w.step is not None:
        assert w.base is not None and w.other is not None
        what = "the state changes differently" if w.base.changes != w.other.changes else "it logs differently"
        out.append(f"    step {w.step} `{w.operation}` differs ({what}):")
        out.append(f"      under {d.kernel}:")
        out += [f"        {x}" for x in _side(w.base, w.other)]
        out.append(f"      under {w.kernel}:")
        out += [f"        {x}" for x in _side(w.other, w.base)]
    if w.refused is not None:
        out.append(f"    step {w.refused_step} `{w.refused_operation}` is refused under {w.kernel}: {w.refused}")
        return out
    if w.step is None:
        out.append(f"    every step logs and changes the same under {w.kernel}")
    if v.reason is not None:          # recoverable: judged on the reachable graph, not at a step
        out.append(f"    ({d.property} is judged on every state reachable from the last one, not at a step: "
                   f"'klpmodel verify --kernel {w.kernel} -p {d.property}' says whether a way back exists there)")
    elif w.breaks:
        out.append(f"    under {w.kernel} they break {d.property} too")
    else:
        also = f" (they break {', '.join(w.breaks_other)})" if w.breaks_other else ""
        out.append(f"    under {w.kernel} they do not break {d.property}{also}")
    return out


def _trace_head(d: Difference, t: Traced, q: str = "") -> str:
    """What introduces one trace of a difference: the shortest trace under K (or trace i of
    n); `q` quotes the profiles (Markdown: a backtick)."""
    same = f" (and {_and([q + k + q for k in d.same])}, the same verdict)" if d.same else ""
    n = len(d.traces)
    return (f"the shortest trace under {q}{d.kernel}{q}{same}" if n == 1
            else f"shortest trace {t.violation.index} of {n} under {q}{d.kernel}{q}{same}")


def shown(c: Comparison) -> dict[str, dict[tuple[str, int], str]]:
    """kernel -> (property, index) -> where the comparison prints that trace: each profile's
    report then names it instead of printing it a second time."""
    out: dict[str, dict[tuple[str, int], str]] = {}
    for d in c.differences:
        for t in d.traces:
            out.setdefault(d.kernel, {})[(d.property, t.violation.index)] = f"DIFFERENCE {d.property}"
    return out


def text(c: Comparison, reports: dict[str, str]) -> str:
    """The comparison first (headline, table, each difference), then each profile's report
    (made with report.text(..., shown_above=shown(c)[kernel]): a trace printed here is not
    printed again)."""
    kernels = [col.kernel for col in c.columns]
    out = [f"klpmodel verify {c.spec.path}: {c.spec.name}, side by side under {_and(kernels)}", headline(c),
           *notes(c)]
    out += ["", *_table(c)]
    for d in c.differences:
        row = c.verdicts[d.property]
        out += ["", f"DIFFERENCE {d.property}: " + "; ".join(f"{k}: {row[k]}" for k in kernels if row[k].applies
                                                             or row[k].kind == "not-applicable")]
        for t in d.traces:
            out.append(f"  {_trace_head(d, t)}:")
            out += ["  " + line if line else "" for line in violation_text(d.model, t.violation, len(d.traces))]
            for w in t.why_not:
                out += why_text(d, w, t.violation)
    for k in kernels:
        if k in reports:
            out += ["", f"==== kernel {k} ====", reports[k].rstrip("\n")]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ json

def _verdict_json(v: Verdict, col: Column) -> dict[str, Any]:
    out: dict[str, Any] = {"verdict": v.kind}
    if v.depth is not None:
        out["depth"] = v.depth
    if col.cannot is not None:
        out["reason"] = col.cannot
    if col.stopped is not None:
        out["reason"] = col.stopped
    return out


def _outcome_json(o: Outcome | None) -> dict[str, Any] | None:
    return None if o is None else {"events": list(o.events), "changes": list(o.changes)}


def _why_json(d: Difference, v: Violation, w: WhyNot) -> dict[str, Any]:
    return {"kernel": w.kernel, "step": w.step, "operation": w.operation,
            "refused": None if w.refused is None else
            {"step": w.refused_step, "operation": w.refused_operation, "reason": w.refused},
            "under_breaking": _outcome_json(w.base), "under_this": _outcome_json(w.other),
            "log_only_before": w.log_only_before, "breaks": w.breaks,
            "breaks_instead": list(w.breaks_other), "text": [x.strip() for x in why_text(d, w, v)]}


def to_json_doc(c: Comparison, stats: bool = False, written: dict[str, Written] | None = None) -> dict[str, Any]:
    cols = {col.kernel: col for col in c.columns}
    diffs = []
    for d in c.differences:
        first, *more = d.traces
        diffs.append({
            "property": d.property, "breaks_under": d.kernel, "same_verdict": list(d.same),
            "violation": violation_json(d.model, first.violation),
            "why_not": [_why_json(d, first.violation, w) for w in first.why_not],
            "more_traces": [{"violation": violation_json(d.model, t.violation),
                             "why_not": [_why_json(d, t.violation, w) for w in t.why_not]} for t in more]})
    return {
        "format": 1, "command": "verify", "kernels": [col.kernel for col in c.columns],
        "spec": {"path": c.spec.path, "name": c.spec.name},
        "comparison": {
            "headline": headline(c),
            "properties": list(c.properties),
            "verdicts": {p: {k: _verdict_json(v, cols[k]) for k, v in c.verdicts[p].items()} for p in c.properties},
            "cannot_express": {col.kernel: col.cannot for col in c.columns if col.cannot is not None},
            "not_checked": {col.kernel: col.stopped for col in c.columns if col.stopped is not None},
            "notes": notes(c),
            "differences": diffs},
        "reports": {col.kernel: to_json(col.result, stats, (written or {}).get(col.kernel, ()))
                    for col in c.columns if col.result is not None},
    }


def json_text(c: Comparison, stats: bool = False, written: dict[str, Written] | None = None) -> str:
    return json.dumps(to_json_doc(c, stats, written), indent=2) + "\n"


# ------------------------------------------------------------------ review (Markdown)

def _demote(md: str) -> list[str]:
    """A profile's review under a heading of the side-by-side one: every heading one level
    down (outside code blocks)."""
    out, fenced = [], False
    for line in md.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and line.startswith("#") else line)
    return out


def shown_in_markdown(c: Comparison) -> dict[str, dict[int, str]]:
    """kernel -> id(violation) -> where `markdown` shows that trace (review.Review.shown_above)."""
    out: dict[str, dict[int, str]] = {}
    for d in c.differences:
        for t in d.traces:
            out.setdefault(d.kernel, {})[id(t.violation)] = f"Differences, `{d.property}`"
    return out


def markdown(c: Comparison, reviews: dict[str, str], command: str) -> str:
    """`klpmodel review SPEC --kernel A --kernel B`: the comparison first (headline, the
    verdict table, each difference with its trace and why not under the others), then each
    profile's review, its headings one level down."""
    kernels = [col.kernel for col in c.columns]
    out = [f"# Design review side by side: {c.spec.name}", "",
           f"Spec `{c.spec.path}` (sha256 {c.spec.digest[:16]}) under the kernel profiles "
           + _and([f"`{k}`" for k in kernels]) + ".", "", f"Generated by `{command}`.", "",
           "## Differences", "", headline(c), ""]
    for col in c.columns:
        if col.cannot is not None:
            out += [f"- `{col.kernel}` cannot express the spec: {col.cannot}"]
        elif col.stopped is not None or (col.result is not None and col.result.unknown):
            out += [f"- `{col.kernel}`" + next(x for x in notes(c) if x.startswith(col.kernel + ": "))[len(col.kernel):]]
    out += ["", "| property | " + " | ".join(f"`{k}`" for k in kernels) + " |",
            "|---|" + "---|" * len(kernels)]
    out += [f"| {p} | " + " | ".join(str(c.verdicts[p][k]) for k in kernels) + " |" for p in c.properties]
    for d in c.differences:
        row = c.verdicts[d.property]
        out += ["", f"### {d.property}: " + "; ".join(f"{k} {row[k]}" for k in kernels if row[k].applies
                                                      or row[k].kind == "not-applicable")]
        for t in d.traces:
            head = _trace_head(d, t, "`")
            out += ["", head[0].upper() + head[1:] + ":", "",
                    "```text", *violation_text(d.model, t.violation, len(d.traces)), "```"]
            for w in t.why_not:
                lines = why_text(d, w, t.violation)
                out += ["", f"Why not under `{w.kernel}` ({w.verdict}):", "", "```text",
                        *(x[4:] for x in lines[1:]), "```"]
    for k in kernels:
        if k in reviews:
            lines = _demote(reviews[k])
            lines[0] = f"## Under `{k}`: " + lines[0].lstrip("# ")
            out += ["", *lines]
    text = "\n".join(out).strip("\n") + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text
