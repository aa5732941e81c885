"""`klpmodel verify --format sarif`: the verdict as SARIF 2.1.0, which code-scanning tools
(GitHub code scanning, GitLab, IDE viewers) show as annotations on the spec.

One rule per property checked; one result per violated property, located at the spec
statement where the violation shows (the report's FILE:LINE), else at the statement that
set it up (explain's culprit), else at the last statement that ran. Each reported trace is
a code flow with one location per operation: the first statement that ran in it, or the
patch it names. The output is byte for byte the same on every run.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import PurePath

from . import __version__
from .events import Ran, Where
from .kernel import Model
from .report import broke, event_lines
from .verify import Result, Step, Violation

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


def _fingerprint(v: Violation) -> str:
    key = v.property + "|" + "; ".join(str(s.op) for s in v.trace)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def to_sarif(r: Result) -> dict:
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
            "message": {"text": f"{v.property} broken after {v.depth} operation{'s' if v.depth != 1 else ''} "
                                f"({'; '.join(str(s.op) for s in v.trace)}): {broke(m, v)}"
                                + (f"; set up by {cause[1]}" if cause else "")},
            "locations": [_location(m, line)],
            "codeFlows": [code_flow(m, t) for t in traces],
            "partialFingerprints": {"klpmodelTrace/v1": _fingerprint(v)},
        }
        if cause and cause[0] != line:
            result["relatedLocations"] = [{"id": 1, **_location(m, cause[0], cause[1])}]
        results.append(result)
    invocation: dict = {"executionSuccessful": r.verdict != "unknown", "exitCode": r.exit_code}
    if r.verdict == "unknown":
        invocation["toolExecutionNotifications"] = [
            {"level": "warning", "message": {"text": f"the search stopped after depth {r.depth_done} of {r.depth} "
                                                     f"({r.unknown}): no verdict for the properties not reported"}}]
    run = {
        "tool": {"driver": {"name": "klpmodel", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "invocations": [invocation],
        "artifacts": [{"location": _artifact(m.spec.path), "hashes": {"sha-256": m.spec.digest},
                       "description": {"text": m.spec.name}}],
        "results": results,
        "properties": {"verdict": r.verdict, "depth": r.depth, "engine": r.engine},
    }
    if not PurePath(m.spec.path).is_absolute():
        run["originalUriBaseIds"] = {"%SRCROOT%": {"description": {"text": "the directory klpmodel verify ran in"}}}
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def sarif_text(r: Result) -> str:
    return json.dumps(to_sarif(r), indent=2) + "\n"
