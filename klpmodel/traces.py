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
from .errors import UserError, printable
from .kernel import PATCHING_SITE, Choice, Model, Op
from .spec import FAULTS, Spec, load_spec
from .verify import Result, Step, Violation

FORMAT = "klpmodel-trace"
VERSION = 2            # 2: a choice names its statement by index (1: by line and text only)
READS = (1, 2)
OP_WORDS = ("load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force", "call")
ARG_WORDS = ("load", "disable", "rmmod", "modload", "modunload", "call")
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
    view, data = m.view(state), {}
    for p in m.P:
        for s, _ in p.states:
            b = view.data(p.name, s)
            data[f"{p.name}.{s}"] = "NULL" if b is None else \
                f"block {s}#{b.slot} ({'live' if b.live else 'freed'}, holds {view.describe(s, b.content)})"
    return {"patches": {p.name: view.phase(p.name) for p in m.P},
            "system": {s: view.describe(s) for s in m.state_names},
            "modules": {name: view.module_loaded(name) for name in m.module_names},
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
        "property": v.property, "seed": m.prop(v.property).seed,
        "violated_when": m.prop(v.property).violated_when,
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


def check_out_dir(out: Path, option: str = "--out") -> None:
    """Before a run: DIR is a directory, or can be created, and takes new files (tried), so
    that a write failure cannot lose the verdict after the search."""
    from .files import probe_dir

    try:
        exists, is_dir = out.exists(), out.is_dir()
    except (OSError, ValueError) as e:
        raise UserError(f"{option} {out}: cannot check it ({e}); give a writable directory for the trace files") from None
    if exists and not is_dir:
        raise UserError(f"{option} {out}: exists and is not a directory; give a directory for the trace files")
    if exists:
        probe_dir(out, option, str(out))
        return
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{option} {out}: {parent} is not a directory; give a directory for the trace files")
    probe_dir(parent, option, str(out))


def write_all(r: Result, out: Path) -> list[tuple[Violation, Path, Path]]:
    """Write every counterexample of a verify run (PROPERTY[-N].trace.json / .itf.json)."""
    return write_files(r.model, [(v, file_stem(v)) for v in r.violations + r.more], out, r.engine, r.depth)


def write_files(m: Model, items: list[tuple[Violation, str]], out: Path, engine: str,
                verify_depth: int, option: str = "--out") -> list[tuple[Violation, Path, Path]]:
    """Write STEM.trace.json and STEM.itf.json per (violation, stem). Only files klpmodel wrote
    before are replaced; any other file in the way (a user's file, a symbolic link, a FIFO)
    is an error, and then nothing is written. Each file is written under a temporary name
    and renamed into place (files.write_new): nothing is written through a link."""
    from .files import refuse_link, write_new

    check_out_dir(out, option)
    todo = []
    for v, stem in items:
        paths = out / f"{stem}.trace.json", out / f"{stem}.itf.json"
        for p in paths:
            refuse_link(p, option)
            if p.exists() and not _ours(p):
                raise UserError(f"{p}: exists and is not a klpmodel trace file; move it away or choose "
                                f"another {option} directory (nothing was written)")
        todo.append((v, *paths))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{option} {out}: cannot create it: {e.strerror}; give a writable directory") from None
    for v, pj, pi in todo:
        write_new(pj, json.dumps(document(m, v, engine, verify_depth, out), indent=2) + "\n", option)
        write_new(pi, json.dumps(itf(m, v), indent=2) + "\n", option)
    return todo


def _ours(p: Path) -> bool:
    from .files import read_regular

    try:
        doc = json.loads(read_regular(p, "file", MAX_TRACE_BYTES, "").decode("utf-8"))
    except (UserError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and (doc.get("format") == FORMAT or (
        isinstance(doc.get("#meta"), dict) and str(doc["#meta"].get("description", "")).startswith("klpmodel")))


# ------------------------------------------------------------------ reading

MAX_TRACE_BYTES = 64 << 20
TRACE_INSTEAD = "give a .trace.json file written by 'klpmodel verify --out DIR'"
REWRITE = "write it again with 'klpmodel verify --out DIR'"


@dataclass(frozen=True)
class TraceFile:
    path: str
    doc: dict
    ops: tuple[Op, ...]
    choices: tuple[tuple[Choice, ...], ...]    # per step: the sites that failed (index -1: format 1, unknown)

    @property
    def property(self) -> str:
        return self.doc["property"]


def json_lines(text: str) -> dict[tuple, int]:
    """The line of each value in a JSON text, by path (keys and list indices), for messages.
    Iterative and linear; on text that is not JSON it returns what it found."""
    lines: dict[tuple, int] = {(): 1}
    stack: list[list] = []                # ["o", path, key] or ["a", path, index]
    i, n, ln = 0, len(text), 1
    expect_key = False

    def value_path():
        top = stack[-1]
        return top[1] + ((top[2],) if top[0] == "a" or top[2] is not None else ())

    while i < n:
        c = text[i]
        if c == "\n":
            ln += 1
            i += 1
        elif c in " \t\r:":
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            raw = text[i:j + 1]
            i = j + 1
            if stack and stack[-1][0] == "o" and expect_key:
                try:
                    stack[-1][2] = json.loads(raw)
                except ValueError:
                    stack[-1][2] = raw
                expect_key = False
            elif stack:
                lines.setdefault(value_path(), ln)
        elif c in "[{":
            path = value_path() if stack else ()
            lines.setdefault(path, ln)
            stack.append(["a", path, 0] if c == "[" else ["o", path, None])
            expect_key = c == "{"
            i += 1
        elif c in "]}":
            if stack:
                stack.pop()
            i += 1
        elif c == ",":
            if stack:
                if stack[-1][0] == "a":
                    stack[-1][2] += 1
                else:
                    expect_key = True
            i += 1
        else:
            if stack:
                lines.setdefault(value_path(), ln)
            while i < n and text[i] not in ',]}\n \t\r':
                i += 1
    return lines


class _Reader:
    """Checks a trace document field by field; a bad field is one FILE:LINE message."""

    def __init__(self, where: str, text: str):
        self.where, self.text = where, text
        self._lines: dict | None = None

    def err(self, path: tuple, message: str):
        if self._lines is None:
            self._lines = json_lines(self.text)
        p = path
        while p and p not in self._lines:
            p = p[:-1]
        raise UserError(message, path=self.where, line=self._lines.get(p, 1))

    def field(self, doc: dict, path: tuple, kind: type | tuple, what: str):
        """doc[path[-1]], which must be of `kind` (bool is no int)."""
        if not isinstance(doc, dict) or path[-1] not in doc:
            self.err(path, f"malformed trace file: no field {'.'.join(map(str, path))}; {REWRITE}")
        v = doc[path[-1]]
        if not isinstance(v, kind) or (isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
            self.err(path, f"malformed trace file: {'.'.join(map(str, path))} must be {what}, not "
                           f"{_quoted(v)}; {REWRITE}")
        return v


def _quoted(v) -> str:
    """A JSON value of the file as messages quote it: strings in quotes, cut to 60 characters."""
    from .spec import _show

    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    return _show(v) if isinstance(v, str) else json.dumps(v)[:60]


def load_trace(path: Path) -> TraceFile:
    """Read and check a JSON trace file; every problem is a one-line error naming the file."""
    from .files import read_regular

    where = str(path)
    raw = read_regular(path, "trace file", MAX_TRACE_BYTES, TRACE_INSTEAD)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 text; {TRACE_INSTEAD}", path=where, line=raw[:e.start].count(b"\n") + 1) from None

    def no_constant(name):
        raise json.JSONDecodeError(f"{name} is not a JSON number", text, 0)

    try:
        doc = json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as e:
        raise UserError(f"not JSON ({e.msg}); {TRACE_INSTEAD}", path=where,
                        line=e.lineno if e.pos else None) from None
    except (ValueError, RecursionError) as e:             # 4,300-digit integers; deep nesting
        what = "nested too deeply" if isinstance(e, RecursionError) else "a number too long"
        raise UserError(f"not a trace file ({what}); {TRACE_INSTEAD}", path=where) from None
    if isinstance(doc, dict) and "#meta" in doc and "states" in doc:
        raise UserError("this is the ITF form of a trace (for trace viewers); give the .trace.json file "
                        "written beside it", path=where)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"not a klpmodel trace file (no \"format\": \"{FORMAT}\"); {TRACE_INSTEAD}", path=where)
    if doc.get("version") not in READS or isinstance(doc.get("version"), bool):
        raise UserError(f"trace format version {_quoted(doc.get('version'))} is not supported (this klpmodel reads "
                        f"versions {', '.join(map(str, READS))}); write the trace again with this klpmodel's "
                        f"verify --out", path=where)
    r = _Reader(where, text)
    prop = r.field(doc, ("property",), str, "a property name")
    from .kernel import PROFILES

    if prop not in {p.name for rules in PROFILES.values() for p in rules.PROPERTIES + rules.SHADOW + rules.EXTRA}:
        r.err(("property",), f"unknown property {_quoted(prop)}; {REWRITE}")
    spec = r.field(doc, ("spec",), dict, "an object")
    r.field(spec, ("spec", "path"), str, "a file name")
    r.field(spec, ("spec", "sha256"), str, "a sha256 digest")
    for key in ("kernel", "kernel_in_spec"):
        if key in spec and (not isinstance(spec[key], str) or spec[key] not in PROFILES):
            r.err(("spec", key), f"malformed trace file: spec.{key} must be a kernel profile ({', '.join(PROFILES)}), "
                                 f"not {_quoted(spec[key])}; {REWRITE}")
    faults = spec.get("faults", [])
    if not isinstance(faults, list) or any(not isinstance(f, str) or f not in FAULTS for f in faults):
        r.err(("spec", "faults"), f"malformed trace file: spec.faults must be a list of fault names "
                                  f"({', '.join(FAULTS)}); {REWRITE}")
    for key, kind, what in (("index", int, "an integer"), ("depth", int, "an integer"), ("generator", str, "a string"),
                            ("engine", str, "a string"), ("reason", str, "a string")):
        if key in doc:
            r.field(doc, (key,), kind, what)
    steps = r.field(doc, ("steps",), list, "a list of steps")
    if not steps:
        r.err(("steps",), f"the trace has no steps; {REWRITE}")
    ops, choices = [], []
    for n, step in enumerate(steps):
        at = ("steps", n)
        if not isinstance(step, dict):
            r.err(at, f"malformed trace file: steps[{n}] must be an object; {REWRITE}")
        operation = r.field(step, at + ("operation",), str, "an operation")
        word, _, arg = operation.partition(" ")
        if word not in OP_WORDS:
            r.err(at + ("operation",), f"step {n + 1}: unknown operation {_quoted(operation)}; a trace step is one of: "
                                       f"{', '.join(OP_WORDS)}")
        if bool(arg) != (word in ARG_WORDS):
            instead = f"'{word} NAME'" if word in ARG_WORDS else f"'{word}' alone"
            r.err(at + ("operation",), f"step {n + 1}: malformed operation {_quoted(operation)}; write {instead}")
        ops.append(Op(word, arg or None))
        got = []
        for k, c in enumerate(r.field(step, at + ("choices",), list, "a list")):
            cat = at + ("choices", k)
            if not isinstance(c, dict):
                r.err(cat, f"malformed trace file: steps[{n}].choices[{k}] must be an object; {REWRITE}")
            texts = [r.field(c, cat + (f,), str, "a string") for f in ("patch", "object", "callback", "statement")]
            index = r.field(c, cat + ("index",), int, "an integer") if doc["version"] >= 2 else -1
            line = r.field(c, cat + ("line",), int, "an integer")
            got.append(Choice(texts[0], texts[1], texts[2], index, line, texts[3]))
        choices.append(tuple(got))
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


def spec_for(t: TraceFile, given: Path | None, kernel: str | None = None, command: str = "replay") -> Spec:
    """The spec a trace runs against: --spec if given, else the first of spec_candidates
    whose sha256 is the recorded one,
    with the faults and the kernel profile the trace was found under. A trace found under
    one profile is not run under another (`kernel`: the profile the user asks for).

    The recorded file is read only when its sha256 is the recorded one: a trace may name any
    file, and nothing of one that does not match is parsed or shown; an edited spec runs
    only when the user gives it with --spec (`command` names the command in the message)."""
    import hashlib

    from .files import read_regular
    from .spec import MAX_SPEC_BYTES, SPEC_INSTEAD, parse_spec

    recorded = Path(t.doc["spec"]["path"])
    digest = t.doc["spec"]["sha256"]
    spec: Spec | None = None
    path: Path | None = None
    if given is not None:
        spec, path = load_spec(given), given
    else:
        changed: Path | None = None
        for candidate in spec_candidates(t):
            if not candidate.is_file():
                continue
            raw = read_regular(candidate, "spec", MAX_SPEC_BYTES, SPEC_INSTEAD)
            if hashlib.sha256(raw).hexdigest() == digest:
                path = _shown(candidate, recorded)
                spec = parse_spec(str(path), raw, digest)
                break
            changed = changed or _shown(candidate, recorded)
        if spec is None and changed is not None:
            how = (f"'klpmodel replay {t.path} --spec {changed}' checks the trace against the edited spec"
                   if command == "explain" else
                   f"to run the trace against the spec as it is now, give it: klpmodel {command} {t.path} --spec {changed}")
            raise UserError(f"the spec {changed} changed since this trace was written (sha256 differs); {how}",
                            path=t.path)
        if spec is None:
            looked = ", ".join(dict.fromkeys(str(c) for c in spec_candidates(t)))
            raise UserError(f"the spec '{recorded}' recorded in the trace is not found (looked for {looked}); "
                            f"give it with --spec FILE", path=t.path)
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
    run = _rerun(m, t)
    return run if run.stopped is None else replace(run, stopped=printable(run.stopped))   # names from the file


def _rerun(m: Model, t: TraceFile) -> Rerun:
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
