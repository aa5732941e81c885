"""`klpmodel simulate`: run one concrete operation sequence through the kernel rules and
print the log the selftests would capture."""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import interp, kernel, klog
from .backend import Concrete
from .errors import UserError
from .kernel import PATCHING_SITE, PHASES, Choice, Model, Op

OP_WORDS = ("load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force", "param", "probe")


def _value(text: str) -> int | None:
    """A module parameter value as insmod/sysfs take it: an integer, or Y/N for a bool."""
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return {"y": 1, "yes": 1, "true": 1, "1": 1, "n": 0, "no": 0, "false": 0}.get(text.lower())


@dataclass(frozen=True)
class RunOp:
    op: Op
    args: str                     # module parameters written on the insmod line
    fails: tuple[str, ...]        # fail=[PATCH/]OBJ[:SITE]: which fallible sites fail (see _chooser)
    line: int


def parse_run(text: str, model: Model, source: str, lines: bool = False) -> list[RunOp]:
    """Operations separated by ';' or newlines; '#' starts a comment."""
    out = []
    patches = {p.name for p in model.P}
    modules = set(model.module_names)
    chunks = []
    for n, raw in enumerate(text.splitlines(), 1):
        for part in raw.split("#", 1)[0].split(";"):
            if part.strip():
                chunks.append((n, part.strip()))

    def bad(n, msg):
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
        if word == "probe":
            if len(rest) != 1:
                bad(n, f"write 'probe FUNCTION' (the output of the function's patched version, if one runs), not '{chunk}'")
            out.append(RunOp(Op("probe", rest[0]), "", (), n))
            continue
        if word in ("load", "disable", "rmmod", "modload", "modunload"):
            if not rest:
                bad(n, f"'{word}' needs a name: write '{word} NAME'")
            arg, rest = rest[0], rest[1:]
            known = modules if word.startswith("mod") else patches
            if arg not in known:
                what = "target module" if word.startswith("mod") else "patch"
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
            params = []
            for w in args.split():
                name, _, value = w.partition("=")
                if name not in declared or _value(value) is None:
                    bad(n, f"'{w}' in '{chunk}': {arg} has no parameter '{name}' or '{value}' is not a value "
                           f"(declared: {', '.join(declared) or 'none'})")
                params.append((name, _value(value)))
            params = tuple(params)
        out.append(RunOp(Op(word, arg, params), args, fails, n))
    return out


FAIL_RE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*/)?[A-Za-z_][A-Za-z0-9_]*"
                     r"(?::(?:[0-9]+|patching|(?:pre_patch|post_patch|pre_unpatch|post_unpatch)\[[0-9]+\]))?")


def _matches(f: str, key: Choice) -> bool:
    """Does fail=F name the site `key`? [PATCH/]OBJECT, then the site: LINE (a fallible
    statement on that spec line), CALLBACK[N] (statement N of the callback, from 0, as in
    trace files), `patching` (the patching fault of the object); none: any fallible
    statement of the object."""
    who, _, at = f.partition(":")
    p, _, o = who.rpartition("/")
    if o != key.obj or (p and p != key.patch):
        return False
    if at == PATCHING_SITE or key.callback == PATCHING_SITE:
        return at == key.callback
    if at.endswith("]"):
        return at == f"{key.callback}[{key.index}]"
    return not at or at == str(key.line)


def _chooser(fails: tuple[str, ...]):
    """Choice oracle: each fail= word makes the first site it names fail (once)."""
    left = list(fails)

    def choose(key: Choice) -> bool:
        for n, f in enumerate(left):
            if _matches(f, key):
                del left[n]
                return True
        return False
    return choose


def state_table(m: Model, state: dict) -> list[str]:
    rows = []
    for p in m.P:
        phase = PHASES[state[f"phase[{p.name}]"]]
        data = ", ".join(f"{s}={'NULL' if not state[f'ptr[{p.name}.{s}]'] else f'block {s}#' + str(state[f'ptr[{p.name}.{s}]'])}"
                         for s, _ in p.states)
        forced = " forced" if state[f"forced[{p.name}]"] else ""
        rows.append(f"#   {p.name:<24} {phase:<11}{forced} {data}".rstrip())
    for s in m.state_names:
        blocks = [f"#{j + 1}:{'live' if state[f'live[{s}#{j}]'] else 'free'}({m.describe_value(s, state[f'cont[{s}#{j}]'])})"
                  for j in range(m.slots[s]) if state[f"live[{s}#{j}]"] or any(
                      state[f"ptr[{p.name}.{s}]"] == j + 1 for p in m.P if p.version(s) is not None)]
        rows.append(f"#   state {s} = {m.describe_value(s, state[f'val[{s}]'])}" + (f"; blocks {' '.join(blocks)}" if blocks else ""))
    for mod in m.module_names:
        rows.append(f"#   module {mod}: {'loaded' if state[f'mod[{mod}]'] else 'not loaded'}")
    return rows


def simulate(m: Model, ops: list[RunOp], show_state: bool = False,
             era: str = "insmod") -> tuple[list[str], list[tuple[str, object]]]:
    """The log lines of the run, and the property violations met on the way."""
    if PATCHING_SITE not in m.faults and any(f.endswith(":" + PATCHING_SITE) for r in ops for f in r.fails):
        m = Model(m.spec, faults=m.faults + (PATCHING_SITE,), force_marks=m.force_marks)   # the run names it
    state = interp.initial(m)
    log: list[str] = []
    violations = []
    for r in ops:
        if r.op.word == "probe":               # the script greps a patched function's output into the log
            owner = kernel.effective(m, Concrete(state), r.op.arg)
            if owner:
                log.append(f"{owner}: this has been live patched")
            continue
        line = klog.command_line(r.op, state, r.args, era)
        if line:
            log.append(line)
        why = interp.refusal(m, state, r.op)
        if why is not None:
            log += klog.refusal_lines(r.op, why, era)
        else:
            out = interp.apply(m, state, r.op, _chooser(r.fails))
            log += klog.event_lines(m, r.op, out.events, era)
            violations += [(p, w) for p, w in out.violations]
            state = out.state
        if show_state:
            log += state_table(m, state)
    return log, violations


def format_run(steps) -> str:
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
