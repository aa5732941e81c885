"""`klpmodel simulate`: run one concrete operation sequence through the kernel rules and
print the log the selftests would capture."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NoReturn

from . import interp, kernel, klog
from .backend import Concrete
from .errors import UserError
from .interp import State, Violations
from .kernel import PATCHING_SITE, Choice, Model, Op

# the kernel operations (verify's, plus `param`), then what the selftest scripts do besides:
# read a patched function's output, check sysfs attributes, set kernel.ftrace_enabled
SCRIPT_WORDS = ("probe", "runs", "ok", "pending", "sysfs", "sysfs-rights", "sysfs-gone", "sysctl", "read-param")
OP_WORDS = ("load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force", "call",
            "param") + SCRIPT_WORDS
SYSFS_KLP_DIR = "/sys/kernel/livepatch"
MODE_RE = re.compile(r"[-d][-r][-w][-x][-r][-w][-x][-r][-w][-x]")


def _value(text: str) -> int | None:
    """A module parameter value as insmod/sysfs take it: an integer, or Y/N for a bool."""
    if re.fullmatch(r"-?[0-9]{1,20}", text):            # at most a (unsigned) long
        return int(text)
    return {"y": 1, "yes": 1, "true": 1, "1": 1, "n": 0, "no": 0, "false": 0}.get(text.lower())


@dataclass(frozen=True)
class RunOp:
    op: Op
    args: str                     # module parameters written on the insmod line
    fails: tuple[str, ...]        # fail=[PATCH/]OBJ[:SITE]: which fallible sites fail (see _chooser)
    line: int
    words: tuple[str, ...] = ()   # a script word's arguments (SCRIPT_WORDS), checked by parse_run


def parse_run(text: str, model: Model, source: str, lines: bool = False) -> list[RunOp]:
    """Operations separated by ';' or newlines; '#' starts a comment."""
    out = []
    patches = {p.name for p in model.P}
    modules = set(model.module_names)
    chunks = []
    for n, raw in enumerate(text.split("\n"), 1):        # lines count "\n" only
        for part in raw.split("#", 1)[0].split(";"):
            if part.strip():
                chunks.append((n, part.strip()))

    def bad(n: int, msg: str) -> NoReturn:
        raise UserError(msg, path=source, line=n if lines else None)

    for n, chunk in chunks:
        words = chunk.split()
        word, rest = words[0], words[1:]
        if word not in OP_WORDS:
            bad(n, f"unknown operation '{word}' in '{chunk}'; known operations: {', '.join(OP_WORDS)}")
        arg = None
        if word == "param":
            if len(rest) != 2 or "=" not in rest[1]:
                bad(n, f"write 'param MODULE NAME=VALUE' (echo VALUE > /sys/module/MODULE/parameters/NAME), not '{chunk}'")
            owner, (name, _, value) = rest[0], rest[1].partition("=")
            owners = {p.name: p.params for p in model.P} | {mod.name: mod.params for mod in model.spec.modules}
            if owner not in owners or name not in dict(owners[owner]) or _value(value) is None:
                bad(n, f"'{chunk}': {owner} has no parameter '{name}' or '{value}' is not a value; "
                       f"declare it in the spec's params and give an integer or Y/N")
            out.append(RunOp(Op("param", f"{owner} {name} {_value(value)}"), "", (), n))
            continue
        if word in SCRIPT_WORDS:
            checked = _script_words(word, rest, chunk, model, partial(bad, n))
            out.append(RunOp(Op(word, " ".join(rest)), "", (), n, checked))   # arg: as written
            continue
        if word in ("load", "disable", "rmmod", "modload", "modunload", "call"):
            if not rest:
                bad(n, f"'{word}' needs a name: write '{word} NAME'")
            arg, rest = rest[0], rest[1:]
            known = modules if word.startswith("mod") else patches
            if word == "call":                  # PATCH.FUNCTION: a function the patch gives code for
                known = {f"{p.name}.{f}" for p in model.P for f, _ in p.code}
            if arg not in known:
                what = "target module" if word.startswith("mod") else ("PATCH.FUNCTION with code" if word == "call" else "patch")
                bad(n, f"unknown {what} '{arg}' in '{chunk}'; the spec has: {', '.join(sorted(known)) or '(none)'}")
        fails = tuple(w[len("fail="):] for w in rest if w.startswith("fail="))
        for f in fails:
            if not FAIL_RE.fullmatch(f):
                bad(n, f"bad 'fail={f}' in '{chunk}'; write fail=[PATCH/]OBJECT[:LINE], "
                       f"fail=[PATCH/]OBJECT:CALLBACK[N] (statement N of the callback, from 0) "
                       f"or fail=[PATCH/]OBJECT:patching")
        args = " ".join(w for w in rest if not w.startswith("fail="))
        for w in args.split():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S+", w):
                bad(n, f"unexpected '{w}' in '{chunk}'; after the operation write module parameters "
                       f"(name=value) or fail=[PATCH/]OBJECT[:LINE]")
        if args and word not in ("load", "modload"):
            bad(n, f"'{word}' takes no module parameters ('{args}')")
        params = None
        if word in ("load", "modload"):
            declared = dict(next(p.params for p in model.P if p.name == arg) if word == "load"
                            else next(mod.params for mod in model.spec.modules if mod.name == arg))
            given: list[tuple[str, int]] = []
            for w in args.split():
                name, _, value = w.partition("=")
                if value.startswith("$"):           # a runtime value of the script (klp_pids=$pid_list):
                    continue                        # written on the insmod line, not a model parameter
                number = _value(value)
                if name not in declared or number is None:
                    bad(n, f"'{w}' in '{chunk}': {arg} has no parameter '{name}' or '{value}' is not a value "
                           f"(declared: {', '.join(declared) or 'none'})")
                given.append((name, number))
            params = tuple(given)
        out.append(RunOp(Op(word, arg, params), args, fails, n))
    return out


def _script_words(word: str, rest: list[str], chunk: str, model: Model, bad: Callable[[str], NoReturn]) -> tuple[str, ...]:
    """Check the arguments of a script word; returns them. `bad(msg)` raises."""
    patches = {p.name: p for p in model.P}
    funcs = {f for p in model.P for o in p.objects for f in o.funcs}

    def patch_path(text: str, what: str) -> tuple[str, str]:
        patch, _, rel = text.partition("/")
        if patch not in patches:
            bad(f"unknown patch '{patch}' in '{chunk}'; the spec has: {', '.join(sorted(patches))}")
        objs = {o.name for o in patches[patch].objects}
        obj, _, leaf = rel.partition("/")
        if what == "value":
            if rel == "force":
                bad(f"'{chunk}': force is write-only (mode 0200): check_sysfs_value cannot read it")
            ok = (rel in kernel.SYSFS_MODES and rel != "") or (obj in objs and leaf == "patched")
        else:
            ok = rel in kernel.SYSFS_MODES or (obj in objs and leaf in kernel.OBJECT_SYSFS_MODES)
        if not ok:
            names = [a for a in kernel.SYSFS_MODES if a and (a != "force" or what == "rights")]
            bad(f"'{chunk}': {patch} has no attribute '{rel}' the model reads; use "
                f"{', '.join(names)} or OBJECT/patched (OBJECT one of {', '.join(sorted(objs))})")
        return patch, rel

    def function(f: str) -> str:
        if f not in funcs:
            bad(f"'{chunk}': no object of the spec lists '{f}' in its funcs; add it where the patch patches it")
        return f

    if word == "read-param":                # read_module_param MODULE PARAM: its show function FUNCTION runs
        mods = {mod.name for mod in model.spec.modules}
        if len(rest) != 2 or rest[0].partition("/")[0] not in mods or not rest[0].partition("/")[2]:
            bad(f"write 'read-param MODULE/PARAM FUNCTION' (read_module_param MODULE PARAM; FUNCTION prints "
                f"the value), MODULE one of the spec's modules, not '{chunk}'")
        return (rest[0], function(rest[1]))
    if word == "probe":
        if len(rest) != 1:
            bad(f"write 'probe FUNCTION' (the output of the function's patched version, if one runs), not '{chunk}'")
        return (rest[0],)
    if word in ("runs", "ok", "pending"):
        usage = {"runs": "runs FUNCTION PATCH|original", "ok": "ok FUNCTION PATCH", "pending": "pending PATCH FUNCTION"}
        if len(rest) != 2:
            bad(f"write '{usage[word]}', not '{chunk}'")
        if word == "pending":
            rest = rest[::-1]
        func, owner = function(rest[0]), rest[1]
        if owner not in patches and not (word == "runs" and owner == "original"):
            bad(f"unknown patch '{owner}' in '{chunk}'; the spec has: {', '.join(sorted(patches))}"
                + (" (or 'original')" if word == "runs" else ""))
        return (func, owner) if word != "pending" else (owner, func)
    if word == "sysfs-gone":                # loop_until 'test ! -f /sys/kernel/livepatch/PATCH/ATTRIBUTE'
        if len(rest) != 1:
            bad(f"write 'sysfs-gone PATCH/ATTRIBUTE' (loop_until 'test ! -f $SYSFS_KLP_DIR/PATCH/ATTRIBUTE'), not '{chunk}'")
        return patch_path(rest[0], "value")
    if word in ("sysfs", "sysfs-rights"):
        what = "value" if word == "sysfs" else "rights"
        if len(rest) != 2:
            bad(f"write '{word} PATCH/ATTRIBUTE {what.upper()}' (check_sysfs_{what} PATCH ATTRIBUTE {what.upper()}), not '{chunk}'")
        if word == "sysfs-rights" and not MODE_RE.fullmatch(rest[1]):
            bad(f"'{chunk}': '{rest[1]}' is not a mode as stat --format %A prints it (e.g. -r--r--r--)")
        return (*patch_path(rest[0].rstrip("/") if word == "sysfs-rights" else rest[0], what), rest[1])
    # sysctl [--fail] ftrace_enabled=0|1: set_ftrace_enabled [--fail] 0|1
    fail = rest[:1] == ["--fail"]
    if len(rest) != 1 + fail or rest[-1] not in ("ftrace_enabled=0", "ftrace_enabled=1"):
        bad(f"write 'sysctl [--fail] ftrace_enabled=0|1' (set_ftrace_enabled [--fail] 0|1), not '{chunk}'")
    return ("--fail",) * fail + (rest[-1][-1],)


FAIL_RE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*/)?[A-Za-z_][A-Za-z0-9_]*"
                     r"(?::(?:[0-9]+|patching|[A-Za-z_][A-Za-z0-9_]*\[[0-9]+\]))?")


def _matches(f: str, key: Choice) -> bool:
    """Does fail=F name the site `key`? [PATCH/]OBJECT (a state callback's: `stateID`), then the site: LINE (a fallible
    statement on that spec line), CALLBACK[N] (statement N of the callback, from 0, as in
    trace files), `patching` (the patching fault of the object); none: any fallible
    statement of the object."""
    who, _, at = f.partition(":")
    p, _, o = who.rpartition("/")
    if o not in (key.obj, key.obj.replace(" ", "")) or (p and p != key.patch):   # (a state's: stateID)
        return False
    if at == PATCHING_SITE or key.callback == PATCHING_SITE:
        return at == key.callback
    if at.endswith("]"):
        return at == f"{key.callback}[{key.index}]"
    return not at or at == str(key.line)


def _chooser(fails: tuple[str, ...]) -> Callable[[Choice], bool]:
    """Choice oracle: each fail= word makes the first site it names fail (once)."""
    left = list(fails)

    def choose(key: Choice) -> bool:
        for n, f in enumerate(left):
            if _matches(f, key):
                del left[n]
                return True
        return False
    return choose


def state_table(m: Model, state: State) -> list[str]:
    view, rows = m.view(state), []
    for p in m.P:
        data = ", ".join(f"{s}={'NULL' if not view.pointer(p.name, s) else f'block {s}#{view.pointer(p.name, s)}'}"
                         for s, _ in p.states)
        forced = " forced" if view.forced(p.name) else ""
        rows.append(f"#   {p.name:<24} {view.phase(p.name):<11}{forced} {data}".rstrip())
    for s in m.state_names:
        pointed = {view.pointer(p.name, s) for p in m.P if p.version(s) is not None}
        blocks = [f"#{b.slot}:{'live' if b.live else 'free'}({view.describe(s, b.content)})"
                  for b in view.blocks(s) if b.live or b.slot in pointed]
        rows.append(f"#   state {s} = {view.describe(s)}" + (f"; blocks {' '.join(blocks)}" if blocks else ""))
    for mod in m.module_names:
        rows.append(f"#   module {mod}: {'loaded' if view.module_loaded(mod) else 'not loaded'}")
    for sv, obj, words, key in m.shadow_pair_list():        # (issue 14)
        count = f", count {view.count(sv, obj)}" if key in m.counted else ""
        what = f"exists{count}" if view.shadow(sv, obj) else "does not exist"
        stale = obj is None and view.stale(sv)
        rows.append(f"#   shadow {words}: {what}" + ("; entries on freed objects may remain" if stale else ""))
    return rows


@dataclass
class Run:
    """One simulated run: the log, the property violations met on the way, and, when the
    script stops early (a failed check: `die`, or `skip`), why, naming the run line."""
    log: list[str]
    violations: Violations
    died: str | None = None


def run(m: Model, ops: list[RunOp], show_state: bool = False, era: str = "insmod") -> Run:
    """Run the operations through the kernel rules and the script words; stop where the
    kernel script would stop."""
    if PATCHING_SITE not in m.faults and any(f.endswith(":" + PATCHING_SITE) for r in ops for f in r.fails):
        m = Model(m.spec, faults=m.faults + (PATCHING_SITE,), profile=m.profile.name)   # the run names it
    if era == "modprobe":
        for r in ops:
            attr = r.words[1].rpartition("/")[2] if r.op.word in ("sysfs", "sysfs-rights") else None
            if attr in ("replace", "stack_order"):
                raise UserError(f"'{r.op.word} {r.op.arg}': the {attr} attribute exists "
                                f"since Linux {kernel.SYSFS_SINCE[attr]}, after the modprobe era (5.1-6.7); use --era insmod")
    state = interp.initial(m)
    out = Run([], [])
    for r in ops:
        if r.op.word in SCRIPT_WORDS:
            lines, died = _script(m, state, r)
            out.log += lines
            if died:
                out.died = f"run line {r.line} ({r.op.word} {r.op.arg}): {died}"
                return out
            continue
        line = klog.command_line(m, r.op, state, r.args, era)
        if line:
            out.log.append(line)
        why = interp.refusal(m, state, r.op)
        if why is not None:
            out.log += klog.refusal_lines(r.op, why, era)
        else:
            o = interp.apply(m, state, r.op, _chooser(r.fails))
            out.log += klog.event_lines(r.op, o.events, era)
            out.violations += [(p, w) for p, w in o.violations]
            state = o.state
        if show_state:
            out.log += state_table(m, state)
    return out



def _why_absent(m: Model, c: Concrete, patch: str) -> str:
    if m.view(c.st).listed(patch):
        return f"kernel profile {m.profile.name} has no such attribute"
    return f"{patch} is not on klp_patches"

def _script(m: Model, state: State, r: RunOp) -> tuple[list[str], str | None]:
    """A script word: the lines the script writes into the kernel log, and why it stops
    (None: it goes on). What it reads comes from kernel.py's read helpers."""
    c, word, w = Concrete(state), r.op.word, r.words
    if word == "read-param":                # cat /sys/module/MODULE/parameters/PARAM: FUNCTION runs once
        mod, _, param = w[0].partition("/")
        func = w[1]
        lines = [f"% cat /sys/module/{mod}/parameters/{param}"]
        if not m.view(state).module_loaded(mod):
            return lines, f"/sys/module/{mod} does not exist ({mod} is not loaded)"
        owner = kernel.effective(m, c, func) if kernel.function_loaded(m, c, func) else None
        if owner:                           # the patched version: a call of the patch's code
            op = kernel.Op("call", f"{owner}.{func}")
            if interp.refusal(m, state, op) is None:
                o = interp.apply(m, state, op, {})
                state.clear()
                state.update(o.state)
                return lines + klog.event_lines(op, o.events), None
            return lines, None
        orig = Concrete(dict(state))        # the module's own code (its log lines, its calls)
        kernel.run_code(m, orig, func)
        return lines + klog.event_lines(kernel.Op("call", func), orig.events), None
    if word in ("probe", "runs", "ok", "pending"):
        func = w[1] if word == "pending" else w[0]
        owner = kernel.effective(m, c, func) if kernel.function_loaded(m, c, func) else ""
        if word == "probe":                     # grep 'live patched' /proc/...  > /dev/kmsg
            return ([f"{owner}: this has been live patched"] if owner else []), None
        if word == "ok":                        # test-ftrace.sh: [[ "$(cat ...)" == "P: ...patched" ]] && log
            return (["livepatch: ok"] if owner == w[1] else []), None
        if word == "runs":                      # [[ "$(cat ...)" != "...expected" ]] && die
            want = None if w[1] == "original" else w[1]
            if owner == want:
                return [], None
            ran = ("not in memory (its module is not loaded)" if owner == "" else
                   "the original" if owner is None else f"{owner}'s version")
            return ["ERROR: livepatch kselftest(s) failed"], \
                f"{func} runs {ran}; the script expects {'the original' if want is None else want + chr(39) + 's version'}"
        # pending: loop_until npids reads 0 (every process calling FUNC ran PATCH's version
        # once), then log the count: 0 once PATCH's version runs for every task
        patch, view = w[0], m.view(state)
        if not view.loaded(patch):                                        # no /sys/kernel/PATCH: cat fails
            return [f"{patch}: Remaining not livepatched processes:"], None
        quiet = view.transition_patch() is None
        n = "0" if quiet and owner == patch else "$pending_pids"          # a runtime count
        return [f"{patch}: Remaining not livepatched processes: {n}"], None
    if word == "sysfs":                         # check_sysfs_value
        patch, rel, want = w
        got = kernel.sysfs_read(m, c, patch, rel)
        if got == want:
            return [], None
        path = f"{SYSFS_KLP_DIR}/{patch}/{rel}"
        return [f"ERROR: Unexpected value in {path}: {want} vs. {got or ''}".rstrip()], \
            f"{path} reads {got}, the script expects {want}" if got is not None else \
            f"{path} does not exist ({_why_absent(m, c, patch)}), the script expects {want}"
    if word == "sysfs-gone":                    # the file is gone (the patch left klp_patches)
        patch, rel = w
        path = f"{SYSFS_KLP_DIR}/{patch}/{rel}"
        got = kernel.sysfs_read(m, c, patch, rel)
        if got is None:
            return [], None
        return [f"ERROR: {path} still exists"], f"{path} still exists (it reads {got}), the script waits for it to go"
    if word == "sysfs-rights":                  # check_sysfs_rights
        patch, rel, want = w
        got = kernel.sysfs_mode(m, c, patch, rel)
        if got == want:
            return [], None
        path = f"{SYSFS_KLP_DIR}/{patch}/{rel}"
        return [f"ERROR: Unexpected access rights of {path}: {want} vs. {got or ''}".rstrip()], \
            f"{path} has mode {got}, the script expects {want}" if got is not None else \
            f"{path} does not exist ({_why_absent(m, c, patch)}), the script expects mode {want}"
    # sysctl: set_ftrace_enabled [--fail] V. Only the refusal of 0 while a livepatch's ftrace
    # handlers are registered is modelled; the value itself is not (a load that fails because
    # ftrace is off is the scenario's fail=OBJECT:patching)
    value = w[-1]
    if value == "0" and kernel.ftrace_ops_registered(m, c):
        if w[0] == "--fail":
            return ['livepatch: sysctl: setting key "kernel.ftrace_enabled": Device or resource busy'], None
        return [f"SKIP: failed to set kernel.ftrace_enabled = {value}"], \
            "kernel.ftrace_enabled=0 is refused (-EBUSY: a livepatch's ftrace handlers are registered); the script skips"
    return [f"livepatch: kernel.ftrace_enabled = {value}"], None


def simulate(m: Model, ops: list[RunOp], show_state: bool = False,
             era: str = "insmod") -> tuple[list[str], Violations]:
    """The log lines of the run (with a `#` line saying why the script stops, if it does),
    and the property violations met on the way."""
    out = run(m, ops, show_state, era)
    return out.log + ([f"# the script stops here: {out.died}"] if out.died else []), out.violations


def format_run(steps: Iterable[tuple[Op, Sequence[Choice]]]) -> str:
    """The `--run` text that replays a trace: the inverse of `parse_run`. `steps` are
    (Op, failed choices) pairs (a verify.Step has both as `.op` and `.failed`); a failed
    choice becomes fail=PATCH/OBJECT:CALLBACK[N] (or :patching)."""
    out = []
    for op, failed in steps:
        words = [str(op)]
        if op.params:
            words += [f"{name}={value}" for name, value in op.params]
        words += [f"fail={k.patch}/{k.obj}:" + (k.callback if k.callback == PATCHING_SITE else f"{k.callback}[{k.index}]")
                  for k in failed]
        out.append(" ".join(words))
    return "; ".join(out)
