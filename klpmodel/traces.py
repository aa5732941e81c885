"""Trace files: a counterexample saved as JSON (docs/trace-format.md) and as ITF, read back,
and run again through the kernel rules (for `explain`, `replay` and `kselftest`).

A trace file keeps what is needed to run the counterexample again: the operations and the
statements that failed (the explored choices). The state after each step is kept too, so
that a reader or a trace viewer needs no klpmodel; `explain` checks it against a fresh run.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__, interp
from .errors import UserError
from .kernel import PATCHING_SITE, PHASES, Choice, Model, Op
from .properties import BY_NAME
from .spec import FAULTS, Spec, load_spec
from .verify import Result, Step, Violation

FORMAT = "klpmodel-trace"
VERSION = 2            # 2: a choice names its statement by index (1: by line and text only)
READS = (1, 2)
OP_WORDS = ("load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force")
ITF_DESCRIPTION = "https://apalache-mc.org/docs/adr/015adr-trace.html"


# ------------------------------------------------------------------ writing

def choice_json(key: Choice) -> dict:
    return {"patch": key.patch, "object": key.obj, "callback": key.callback, "index": key.index,
            "line": key.line, "statement": key.text}


def choice_text(key: Choice) -> str:
    if key.callback == PATCHING_SITE:
        return f"{key.patch}/{key.obj} patching fails (klp_patch_object, line {key.line})"
    return f"{key.patch}/{key.obj} {key.callback}[{key.index}] line {key.line}: '{key.text}' fails"


def summary(m: Model, state: dict) -> dict:
    """The state in the words of the abstract system: what a reader looks at first."""
    data = {}
    for p in m.P:
        for s, _ in p.states:
            ptr = state[f"ptr[{p.name}.{s}]"]
            if ptr:
                live = state[f"live[{s}#{ptr - 1}]"]
                data[f"{p.name}.{s}"] = (f"block {s}#{ptr} ({'live' if live else 'freed'}, holds "
                                         f"{m.describe_value(s, state[f'cont[{s}#{ptr - 1}]'])})")
            else:
                data[f"{p.name}.{s}"] = "NULL"
    return {"patches": {p.name: PHASES[state[f"phase[{p.name}]"]] for p in m.P},
            "system": {s: m.describe_value(s, state[f"val[{s}]"]) for s in m.state_names},
            "modules": {name: bool(state[f"mod[{name}]"]) for name in m.module_names},
            "data": data}


def raw_state(state: dict) -> dict:
    """The model variables as the trace file stores them (JSON booleans and integers)."""
    return {k: (bool(v) if isinstance(v, bool) else int(v)) for k, v in state.items()}


def spec_paths(spec_path: str, trace_dir: Path | None) -> dict:
    """Where the spec is, for a trace file written into trace_dir: its absolute path, and its
    path relative to trace_dir (so that the spec is found from any working directory, and
    after the folder holding both is moved)."""
    if trace_dir is None:
        return {}
    full = Path(os.path.abspath(spec_path))
    return {"absolute": str(full), "relative": os.path.relpath(full, os.path.abspath(trace_dir))}


def document(m: Model, v: Violation, engine: str, verify_depth: int, trace_dir: Path | None = None) -> dict:
    """The JSON trace file of one counterexample (schema: docs/trace-format.md)."""
    from .report import broke, violation_json

    spec = m.spec
    detail = violation_json(m, v)
    doc = {
        "format": FORMAT, "version": VERSION, "generator": f"klpmodel {__version__}",
        "spec": {"path": spec.path, **spec_paths(spec.path, trace_dir),
                 "name": spec.name, "kernel": m.profile.name, "sha256": spec.digest,
                 "faults": list(m.faults), "kernel_in_spec": spec.file_kernel or spec.kernel},
        "property": v.property, "seed": BY_NAME[v.property].seed,
        "violated_when": BY_NAME[v.property].violated_when,
        "depth": v.depth, "index": v.index, "engine": engine, "verify_depth": verify_depth,
        "broken_by": broke(m, v),
        "initial": {"summary": summary(m, v.trace[0].before), "state": raw_state(v.trace[0].before)},
        "steps": [{"operation": str(step.op),
                   "choices": [choice_json(k) for k in step.failed],
                   "summary": summary(m, step.after),
                   "state": raw_state(step.after)} for step in v.trace],
    }
    if "statement" in detail:
        doc["statement"] = detail["statement"]
    if v.reason:
        doc["reason"] = v.reason
    return doc


def _itf_value(v):
    """ITF values: integers as {"#bigint": "N"}, records as objects, lists as arrays."""
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return {"#bigint": str(v)}
    if isinstance(v, dict):
        return {str(k): _itf_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_itf_value(x) for x in v]
    raise TypeError(f"no ITF form for {v!r}")


ITF_VARS = ("mbt::actionTaken", "mbt::nondetPicks", "patches", "system", "modules", "data", "model")


def itf(m: Model, v: Violation) -> dict:
    """The same counterexample in the Informal Trace Format (Apalache ADR-015, Quint's
    `mbt::actionTaken` / `mbt::nondetPicks` for the operation and the failed statements)."""

    def state(n: int, action: str, picks: list[str], st: dict) -> dict:
        s = summary(m, st)
        return {"#meta": {"index": n}, "mbt::actionTaken": action,
                "mbt::nondetPicks": {"failing": picks},
                "patches": s["patches"], "system": s["system"], "modules": s["modules"], "data": s["data"],
                "model": _itf_value(raw_state(st))}

    states = [state(0, "init", [], v.trace[0].before)]
    states += [state(n, str(step.op), [choice_text(k) for k in step.failed], step.after)
               for n, step in enumerate(v.trace, 1)]
    return {"#meta": {"format": "ITF", "format-description": ITF_DESCRIPTION, "source": m.spec.path,
                      "description": f"klpmodel {__version__}: {v.property} counterexample "
                                     f"{v.index} ({v.depth} operation{'s' if v.depth != 1 else ''}) of {m.spec.name}",
                      "status": "violation"},
            "vars": list(ITF_VARS),
            "states": states}


def file_stem(v: Violation) -> str:
    return v.property if v.index == 1 else f"{v.property}-{v.index}"


def check_out_dir(out: Path) -> None:
    """Before a run: DIR must be a directory or creatable (nothing is written yet)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory; give a directory for the trace files")


def write_all(r: Result, out: Path) -> list[tuple[Violation, Path, Path]]:
    """Write every counterexample of a verify run (PROPERTY[-N].trace.json / .itf.json)."""
    return write_files(r.model, [(v, file_stem(v)) for v in r.violations + r.more], out, r.engine, r.depth)


def write_files(m: Model, items: list[tuple[Violation, str]], out: Path, engine: str,
                verify_depth: int) -> list[tuple[Violation, Path, Path]]:
    """Write STEM.trace.json and STEM.itf.json per (violation, stem). Only files klpmodel wrote
    before are replaced; any other file in the way is an error, and then nothing is written."""
    check_out_dir(out)
    todo = []
    for v, stem in items:
        paths = out / f"{stem}.trace.json", out / f"{stem}.itf.json"
        for p in paths:
            if p.exists() and not _ours(p):
                raise UserError(f"{p}: exists and is not a klpmodel trace file; move it away or choose "
                                f"another --out directory (nothing was written)")
        todo.append((v, *paths))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for v, pj, pi in todo:
            pj.write_text(json.dumps(document(m, v, engine, verify_depth, out), indent=2) + "\n")
            pi.write_text(json.dumps(itf(m, v), indent=2) + "\n")
    except OSError as e:
        raise UserError(f"--out {out}: cannot write the trace files: {e.strerror}") from None
    return todo


def _ours(p: Path) -> bool:
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and (doc.get("format") == FORMAT or (
        isinstance(doc.get("#meta"), dict) and str(doc["#meta"].get("description", "")).startswith("klpmodel")))


# ------------------------------------------------------------------ reading

@dataclass(frozen=True)
class TraceFile:
    path: str
    doc: dict
    ops: tuple[Op, ...]
    choices: tuple[tuple[Choice, ...], ...]    # per step: the sites that failed (index -1: format 1, unknown)

    @property
    def property(self) -> str:
        return self.doc["property"]


def load_trace(path: Path) -> TraceFile:
    """Read and check a JSON trace file; every problem is a one-line error naming the file."""
    where = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read the trace file: {e.strerror}", path=where) from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise UserError(f"not JSON ({e.msg}); give a .trace.json file written by 'klpmodel verify --out DIR'",
                        path=where, line=getattr(e, "lineno", None)) from None
    if isinstance(doc, dict) and "#meta" in doc and "states" in doc:
        raise UserError("this is the ITF form of a trace (for trace viewers); give the .trace.json file "
                        "written beside it", path=where)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"not a klpmodel trace file (no \"format\": \"{FORMAT}\"); give a .trace.json file "
                        f"written by 'klpmodel verify --out DIR'", path=where)
    if doc.get("version") not in READS:
        raise UserError(f"trace format version {doc.get('version')!r} is not supported (this klpmodel reads "
                        f"versions {', '.join(map(str, READS))}); write the trace again with this klpmodel's "
                        f"verify --out", path=where)
    try:
        if doc["property"] not in BY_NAME:
            raise UserError(f"unknown property '{doc['property']}'", path=where)
        ops, choices = [], []
        for n, step in enumerate(doc["steps"], 1):
            word, _, arg = str(step["operation"]).partition(" ")
            if word not in OP_WORDS:
                raise UserError(f"step {n}: unknown operation '{step['operation']}'; a trace step is one of: "
                                f"{', '.join(OP_WORDS)}", path=where)
            ops.append(Op(word, arg or None))
            choices.append(tuple(Choice(str(c["patch"]), str(c["object"]), str(c["callback"]),
                                        int(c["index"]) if doc["version"] >= 2 else -1,
                                        int(c["line"]), str(c["statement"])) for c in step["choices"]))
        faults = doc["spec"].get("faults", [])
        if not isinstance(faults, list) or any(f not in FAULTS for f in faults):
            raise ValueError("spec.faults")
        if not ops:
            raise UserError("the trace has no steps", path=where)
        if not isinstance(doc["spec"]["path"], str) or not isinstance(doc["spec"]["sha256"], str):
            raise TypeError("spec")
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"malformed trace file (missing or wrong field {e}); write it again with "
                        f"'klpmodel verify --out DIR'", path=where) from None
    return TraceFile(where, doc, tuple(ops), tuple(choices))


def spec_candidates(t: TraceFile) -> list[Path]:
    """Where a trace's spec may be, first match wins: relative to the trace file (as written
    by verify, so the pair works from any directory and can be moved together), its absolute
    path, the path as given to verify (relative to the working directory, or absolute), and
    the spec's file name beside the trace."""
    rec = t.doc["spec"]
    here = Path(t.path).parent
    given = Path(rec["path"])
    out = []
    if isinstance(rec.get("relative"), str):
        out.append(here / rec["relative"])
    if isinstance(rec.get("absolute"), str):
        out.append(Path(rec["absolute"]))
    out += [given, here / given.name]
    return out


def _shown(found: Path, recorded: Path) -> Path:
    """The path to name the spec by: as recorded when that is the same file (the reports then
    read as verify's did), else the found path without `dir/..` detours when that is too."""
    for nicer in (recorded, Path(os.path.normpath(found))):
        try:
            if nicer.is_file() and os.path.samefile(nicer, found):
                return nicer
        except OSError:
            pass
    return found


def spec_for(t: TraceFile, given: Path | None, kernel: str | None = None) -> Spec:
    """The spec a trace runs against: --spec if given, else the first of spec_candidates,
    with the faults and the kernel profile the trace was found under. A trace found under
    one profile is not run under another (`kernel`: the profile the user asks for)."""
    recorded = Path(t.doc["spec"]["path"])
    path = given
    if path is None:
        found = next((c for c in spec_candidates(t) if c.is_file()), None)
        path = None if found is None else _shown(found, recorded)
    if path is None:
        looked = ", ".join(dict.fromkeys(str(c) for c in spec_candidates(t)))
        raise UserError(f"the spec '{recorded}' recorded in the trace is not found (looked for {looked}); "
                        f"give it with --spec FILE", path=t.path)
    spec = load_spec(path)
    profile = t.doc["spec"].get("kernel", "mainline")
    in_file = t.doc["spec"].get("kernel_in_spec", profile)
    if kernel is not None and kernel != profile:
        raise UserError(f"this trace was found under kernel profile '{profile}', not '{kernel}'; a trace runs "
                        f"only under its own profile: run 'klpmodel verify {path} --kernel {kernel}' for that one",
                        path=t.path)
    if spec.kernel != in_file:
        raise UserError(f"this trace was found under kernel profile '{profile}', and the spec now says kernel = "
                        f"'{spec.kernel}'; a trace runs only under its own profile: verify the spec again",
                        path=t.path)
    faults = tuple(t.doc["spec"].get("faults", ()))       # also those given by --faults to verify
    return replace(spec, faults=faults, kernel=profile, file_kernel=None if profile == spec.kernel else spec.kernel)


# ------------------------------------------------------------------ running again

@dataclass(frozen=True)
class Rerun:
    """A trace run again against a spec."""
    steps: tuple[Step, ...]          # the steps that ran
    stopped: str | None              # why step len(steps)+1 could not run as recorded (None: all ran)
    broken_at: int | None            # first step (1-based) where the trace's property breaks


def _match(m: Model, key: Choice) -> Choice | None:
    """The recorded failing site in the current spec: same patch, object and callback; the
    statement at the recorded index if it still has the recorded text, else the statement
    with that text on the recorded line, else its only occurrence (format 1 records no index)."""
    if key.callback == PATCHING_SITE:
        return m.choice_at(key.patch, key.obj, key.callback, 0)
    at = m.choice_at(key.patch, key.obj, key.callback, key.index) if key.index >= 0 else None
    if at is not None and at.text == key.text:
        return at
    same = [c for c in m.sites(key.patch, key.obj, key.callback) if c.text == key.text]
    exact = [c for c in same if c.line == key.line]
    return exact[0] if len(exact) == 1 else (same[0] if len(same) == 1 else None)


def rerun(m: Model, t: TraceFile) -> Rerun:
    state = interp.initial(m)
    steps: list[Step] = []
    broken_at = None
    names = {"patch": {p.name for p in m.P}, "target module": set(m.module_names)}
    for n, (op, failed) in enumerate(zip(t.ops, t.choices, strict=True), 1):
        kind = {"load": "patch", "disable": "patch", "rmmod": "patch",
                "modload": "target module", "modunload": "target module"}.get(op.word)
        if kind and op.arg not in names[kind]:
            return Rerun(tuple(steps), f"step {n} '{op}': the spec has no {kind} '{op.arg}' any more", broken_at)
        why = interp.refusal(m, state, op)
        if why is not None:
            return Rerun(tuple(steps), f"step {n} '{op}': the kernel refuses it now ({why})", broken_at)
        wanted = {}
        for key in failed:
            now = _match(m, key)
            if now is None:
                return Rerun(tuple(steps), f"step {n} '{op}': the statement that failed there, "
                                           f"'{key.text}' in {key.patch}/{key.obj} {key.callback} (line {key.line}), "
                                           f"is not in the spec any more", broken_at)
            wanted[now] = True
        out = interp.apply(m, state, op, wanted)
        unused = [k for k in wanted if k not in out.choices]
        if unused:
            k = unused[0]
            return Rerun(tuple(steps), f"step {n} '{op}': the statement that failed there, '{k.text}' "
                                       f"(line {k.line}), no longer runs in this step", broken_at)
        steps.append(Step(op, tuple(out.failed_choices), tuple(out.events), state, out.state,
                          tuple(out.violations)))
        state = out.state
        if broken_at is None and any(p == t.property for p, _ in out.violations):
            broken_at = n
    return Rerun(tuple(steps), None, broken_at)


def violation_of(t: TraceFile, run: Rerun) -> Violation:
    """The rerun as a Violation (up to the step where the property broke), for the reports."""
    upto = run.broken_at or len(run.steps)
    return Violation(t.property, upto, run.steps[:upto], t.doc.get("reason"), int(t.doc.get("index", 1)))
