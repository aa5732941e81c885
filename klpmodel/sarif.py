"""`klpmodel verify --format sarif`: the verdict as SARIF 2.1.0, which code-scanning tools
(GitHub code scanning, GitLab, IDE viewers) show as annotations on the spec.

One rule per property checked; one result per violated property, located at the spec
statement where the violation shows (the report's FILE:LINE), else at the statement that
set it up (explain's culprit), else at the last statement that ran. Each reported trace is
a code flow with one location per operation: the first statement that ran in it, or the
patch it names. The output is byte for byte the same on every run.

Side by side (`--kernel A --kernel B`, docs/compare.md): one log, one run per profile, each
with its own `automationDetails.id` (`klpmodel/SPEC/PROFILE/`): GitHub code scanning takes
each as its own category (it no longer merges runs of one tool and category from one upload;
upload-sarif's `category` fills in only a run without an id; the spec's path keeps the
categories of a matrix of specs apart),
and every result says its profile (in its message, its properties, its fingerprint). A
profile that cannot express the spec is a run without results whose notification points at
the key; one the --timeout left unchecked has no run (its earlier alerts stay as they were)
and every run's invocation says so.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePath
from typing import TYPE_CHECKING

from . import __version__
from .events import Ran, Where
from .kernel import Model
from .report import broke, event_lines
from .spec import Spec
from .verify import Result, Step, Violation

if TYPE_CHECKING:
    from .compare import Comparison

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _artifact(path: str) -> dict:
    p = PurePath(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    return {"uri": p.as_posix(), "uriBaseId": "%SRCROOT%"}


def _location(m: Model, line: int, message: str | None = None) -> dict:
    loc: dict = {"physicalLocation": {"artifactLocation": _artifact(m.spec.path),
                                      "region": {"startLine": max(1, line)}}}
    if message:
        loc["message"] = {"text": message}
    return loc


def _ran(step: Step) -> list[Where]:
    return [ev.where for ev in step.events if isinstance(ev, Ran) and ev.ran]


def _step_line(m: Model, step: Step) -> int | None:
    """Where an operation shows in the spec: the first statement it ran, else the patch or
    module it names."""
    ran = _ran(step)
    if ran:
        return ran[0].stmt.line
    arg = step.op.arg
    for p in m.spec.patches:
        if p.name == arg:
            return p.line
    for mod in m.spec.modules:
        if getattr(mod, "name", None) == arg and getattr(mod, "line", None):
            return mod.line
    return None


def _where(m: Model, v: Violation) -> tuple[int, tuple[int, str] | None]:
    """The result's line, and (line, what it did) of the statement that set the violation up
    when that is another statement (explain's culprit)."""
    from .explain import culprit

    cause = culprit(m, v)
    why = None if cause is None else (cause.where.stmt.line, f"'{cause.where.stmt.text}' in {cause.where.patch}'s "
                                                             f"{cause.where.callback} at step {cause.step}, which {cause.what}")
    if isinstance(v.where, Where):
        return v.where.stmt.line, why
    if why is not None:
        return why[0], why
    for step in reversed(v.trace):
        ran = _ran(step)
        if ran:
            return ran[-1].stmt.line, None
        line = _step_line(m, step)
        if line:
            return line, None
    return 1, None


def code_flow(m: Model, v: Violation) -> dict:
    locations, last = [], 1
    for n, step in enumerate(v.trace, 1):
        line = _step_line(m, step) or last
        last = line
        lines = event_lines(m, step)
        text = f"{n}. {step.op}" + (": " + "; ".join(" ".join(x.split()) for x in lines) if lines else "")
        locations.append({"location": _location(m, line, text), "executionOrder": n,
                          "nestingLevel": 0})
    return {"message": {"text": f"{v.property}: {v.depth} operation{'s' if v.depth != 1 else ''}: "
                                + "; ".join(str(s.op) for s in v.trace)},
            "threadFlows": [{"locations": locations}]}


def _fingerprint(v: Violation, kernel: str | None = None) -> str:
    key = v.property + "|" + "; ".join(str(s.op) for s in v.trace) + (f"|{kernel}" if kernel is not None else "")
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _driver(rules: list) -> dict:
    return {"driver": {"name": "klpmodel", "version": __version__, "semanticVersion": __version__, "rules": rules}}


def _artifacts(spec: Spec) -> list:
    return [{"location": _artifact(spec.path), "hashes": {"sha-256": spec.digest}, "description": {"text": spec.name}}]


def to_sarif(r: Result, kernel: str | None = None) -> dict:
    """The SARIF log of one run. `kernel`: the run is one profile of a side-by-side log:
    its results say so (message, properties, fingerprint)."""
    m = r.model
    names = list(r.properties)
    rules = []
    for name in names:
        prop = m.prop(name)
        rules.append({"id": name, "name": name,
                      "shortDescription": {"text": f"{name}: {prop.violated_when}"},
                      "fullDescription": {"text": prop.seed},
                      "help": {"text": f"Violated when {prop.violated_when}. See klpmodel's docs/properties.md."},
                      "defaultConfiguration": {"level": "error"}})
    results = []
    for v in r.violations:
        line, cause = _where(m, v)
        traces = r.traces(v.property)
        result = {
            "ruleId": v.property, "ruleIndex": names.index(v.property), "level": "error",
            "message": {"text": (f"under kernel {kernel}: " if kernel is not None else "")
                                + f"{v.property} broken after {v.depth} operation{'s' if v.depth != 1 else ''} "
                                f"({'; '.join(str(s.op) for s in v.trace)}): {broke(m, v)}"
                                + (f"; set up by {cause[1]}" if cause else "")},
            "locations": [_location(m, line)],
            "codeFlows": [code_flow(m, t) for t in traces],
            "partialFingerprints": {"klpmodelTrace/v1": _fingerprint(v, kernel)},
        }
        if kernel is not None:
            result["properties"] = {"kernel": kernel}
        if cause and cause[0] != line:
            result["relatedLocations"] = [{"id": 1, **_location(m, cause[0], cause[1])}]
        results.append(result)
    invocation: dict = {"executionSuccessful": r.verdict != "unknown", "exitCode": r.exit_code}
    if r.verdict == "unknown":
        invocation["toolExecutionNotifications"] = [
            {"level": "warning", "message": {"text": f"the search stopped after depth {r.depth_done} of {r.depth} "
                                                     f"({r.unknown}): no verdict for the properties not reported"}}]
    run = {
        "tool": _driver(rules),
        "invocations": [invocation],
        "artifacts": _artifacts(m.spec),
        "results": results,
        "properties": {"verdict": r.verdict, "depth": r.depth, "engine": r.engine},
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [_based(run, m.spec)]}


def _based(run: dict, spec: Spec) -> dict:
    if not PurePath(spec.path).is_absolute():
        run["originalUriBaseIds"] = {"%SRCROOT%": {"description": {"text": "the directory klpmodel verify ran in"}}}
    return run


def sarif_text(r: Result) -> str:
    return json.dumps(to_sarif(r), indent=2) + "\n"


def _cannot_run(spec: Spec, kernel: str, why: str) -> dict:
    """The run of a profile that cannot express the spec: no results; a notification at the key."""
    return _empty_run(spec, kernel, f"kernel {kernel} cannot express the spec: {why}", "cannot-express",
                      re.match(re.escape(spec.path) + r":(\d+): ", why))


def _empty_run(spec: Spec, kernel: str, text: str, verdict: str, line: re.Match | None = None) -> dict:
    """The run of a profile that did not run: no results; a notification saying why (at the
    spec's line, if one is given)."""
    note: dict = {"level": "warning", "message": {"text": text}}
    if line:
        note["locations"] = [{"physicalLocation": {"artifactLocation": _artifact(spec.path),
                                                   "region": {"startLine": max(1, int(line.group(1)))}}}]
    return {"tool": _driver([]),
            "invocations": [{"executionSuccessful": True, "toolConfigurationNotifications": [note]}],
            "artifacts": _artifacts(spec), "results": [],
            "properties": {"verdict": verdict, "kernel": kernel}}


def compare_sarif(c: Comparison) -> dict:
    """The side-by-side log: one run per profile (see the module docstring)."""
    from .compare import not_checked

    unchecked = [f"kernel {col.kernel}: {not_checked(col.stopped)} (the runs stopped before it: no run for it "
                 f"in this log)" for col in c.columns if col.stopped is not None]
    runs = []
    for col in c.columns:
        if col.stopped is not None:
            continue
        if col.lacks:
            run = _empty_run(c.spec, col.kernel, f"kernel {col.kernel} has none of the properties asked for "
                                                 f"({', '.join(col.lacks)})", "not-applicable")
        elif col.result is None:
            run = _cannot_run(c.spec, col.kernel, col.cannot or "")
        else:
            run = to_sarif(col.result, col.kernel)["runs"][0]
            run["properties"]["kernel"] = col.kernel
            run["properties"]["comparison"] = {p: str(c.verdicts[p][col.kernel]) for p in c.properties}
        if unchecked:
            run["invocations"][0]["executionSuccessful"] = False
            run["invocations"][0].setdefault("toolExecutionNotifications", []).extend(
                {"level": "warning", "message": {"text": x}} for x in unchecked)
        run["automationDetails"] = {"id": f"klpmodel/{PurePath(c.spec.path).as_posix().lstrip('/')}/{col.kernel}/",
                                    "description": {"text": f"klpmodel verify under kernel profile {col.kernel}"}}
        runs.append(_based(run, c.spec))
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": runs}


def compare_sarif_text(c: Comparison) -> str:
    return json.dumps(compare_sarif(c), indent=2) + "\n"
