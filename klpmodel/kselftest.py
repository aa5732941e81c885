"""`klpmodel kselftest`: a counterexample as a script in the style of
tools/testing/selftests/livepatch/test-*.sh (functions.sh helpers, check_result with the
expected log), to run on a test VM with real modules built from the spec's patches.

The expected log is what `simulate` renders for the trace (klog.py), filtered the way
check_result filters dmesg: only lines with 'livepatch:' or 'test_klp', no taint lines.
"""
from __future__ import annotations

import re
import shlex
from typing import NamedTuple

from . import __version__, klog
from .errors import InternalError, UserError, printable
from .events import Completed, LoadCancelled, ModLoadFailed
from .kernel import PATCHING_SITE, Choice, Model
from .spec import MAX_NAME, NAME_RE
from .traces import TraceFile, rerun
from .verify import Step

FAIL_PARAM = "klp_fail"       # the module parameter the script uses to make a statement fail


def kept_by_check_result(line: str) -> bool:
    """functions.sh check_result: grep -e 'livepatch:' -e 'test_klp' | grep -v '(tainting|taints) kernel'."""
    return ("livepatch:" in line or "test_klp" in line) and not re.search(r"(tainting|taints) kernel", line)


def _variables(m: Model) -> dict[str, str]:
    """Shell variables for the modules, as the selftests name them."""
    names = {}
    for n, p in enumerate(m.P, 1):
        names[p.name] = "MOD_LIVEPATCH" if n == 1 else f"MOD_LIVEPATCH{n}"
    for n, mod in enumerate(m.module_names, 1):
        names[mod] = "MOD_TARGET" if n == 1 else f"MOD_TARGET{n}"
    return names


def _subst(text: str, names: dict[str, str]) -> str:
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", f"${names[name]}", text)
    return text


def _fail_arg(step: Step) -> str:
    """OBJECT:CALLBACK:INDEX (statement INDEX of the callback, from 0), or OBJECT:patching."""
    return ",".join(f"{k.obj}:{k.callback}" + ("" if k.callback == PATCHING_SITE else f":{k.index}")
                    for k in step.failed)


def _fail_note(k: Choice) -> str:
    if k.callback == PATCHING_SITE:
        return (f"patching {k.obj} (klp_patch_object: e.g. a kprobe with a post handler on one of its "
                f"functions, or sysctl kernel.ftrace_enabled=0)")
    return f"'{k.text}' ({k.obj} {k.callback}[{k.index}], spec line {k.line})"


def _completes(step: Step, patch: str) -> str | None:
    """'patching'/'unpatching' when this `complete` step finished patch's transition."""
    for ev in step.events:
        if isinstance(ev, Completed) and ev.patch == patch:
            return "patching" if ev.patched else "unpatching"
    return None


def _transition_patch(m: Model, step: Step) -> str | None:
    return m.view(step.before).transition_patch()


def _waits_for(nxt: Step | None, patch: str, kind: str) -> bool:
    """Is the next step the `complete` that finishes patch's `kind` transition?"""
    return nxt is not None and nxt.op.word == "complete" and _completes(nxt, patch) == kind


class Commands(NamedTuple):
    """A trace as a selftest script: its lines, the log check_result expects (filtered as
    check_result filters dmesg), and notes on what the VM must provide."""
    script: list[str]
    expected: list[str]
    notes: list[str]


def commands(m: Model, steps: tuple[Step, ...], names: dict[str, str], era: str = "insmod") -> Commands:
    """The script's lines, expected log and notes for the steps."""
    w = _Writer(m, names, era)
    n = 0
    while n < len(steps):
        n += w.step(n, steps[n], steps[n + 1] if n + 1 < len(steps) else None)
    return Commands(w.lines, [line for line in w.log if kept_by_check_result(line)], w.notes)


class _Writer:
    """The script of a trace, written one step at a time. A step may take the next one with
    it: `load_lp` and `disable_lp` wait for the transition that the next `complete` ends."""

    def __init__(self, m: Model, names: dict[str, str], era: str):
        self.m, self.names, self.era = m, names, era
        self.lines: list[str] = []
        self.log: list[str] = []
        self.notes: list[str] = []

    def var(self, name: str) -> str:
        return f"${self.names[name]}"

    def step(self, n: int, step: Step, nxt: Step | None) -> int:
        """Write step n (from 0) and its expected log; returns how many steps that took."""
        args = self.fail_param(n, step)
        self.log += klog.op_lines(self.m, step.op, step.before, step.events, args, self.era)
        write = {"load": self.load, "disable": self.disable, "complete": self.complete, "reverse": self.echo,
                 "force": self.echo, "rmmod": self.rmmod, "modload": self.modload, "modunload": self.modunload,
                 "call": self.call}
        waited = write[step.op.word](n, step, args, nxt)
        if waited is None:
            return 1
        self.log += klog.op_lines(self.m, waited.op, waited.before, waited.events, era=self.era)
        return 2

    def fail_param(self, n: int, step: Step) -> str:
        """Make the step's failing sites fail: the klp_fail parameter, on the insmod line of the
        patch's own load (returned), else written to sysfs first."""
        if not step.failed:
            return ""
        arg = _fail_arg(step)
        owner = step.failed[0].patch
        args = ""
        if step.op.word == "load" and owner == step.op.arg:
            args = f"{FAIL_PARAM}={arg}"
        else:
            self.lines.append(f"echo {shlex.quote(arg)} > /sys/module/{self.var(owner)}/parameters/{FAIL_PARAM}")
        self.notes.append(f"step {n + 1}: {owner} must fail at " + ", ".join(_fail_note(k) for k in step.failed)
                          + f" when its '{FAIL_PARAM}' parameter names it")
        return args

    # one method per operation: writes its lines; returns the next step when it waits for it

    def load(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        patch = step.op.target
        cmd = f"{self.var(patch)}" + (f" {shlex.quote(args)}" if args else "")
        if _failed_load(step):
            self.lines.append(f"load_failing_mod {cmd}")
            return None
        if _waits_for(nxt, patch, "patching"):
            self.lines.append(f"load_lp {cmd}")
            return nxt
        self.lines.append(f"load_lp_nowait {cmd}")
        self.notes.append(f"step {n + 1}: the patching transition of {patch} must stay open until the script "
                          f"completes it (block it, e.g. with a task sleeping in a patched function like "
                          f"test_klp_callbacks_busy)")
        return None

    def disable(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        patch = step.op.target
        var = self.var(patch)
        if _waits_for(nxt, patch, "unpatching"):
            self.lines.append(f"disable_lp {var}")
            return nxt
        self.lines += [f'log "% echo 0 > /sys/kernel/livepatch/{var}/enabled"',
                       f"echo 0 > /sys/kernel/livepatch/{var}/enabled"]
        self.notes.append(f"step {n + 1}: the unpatching transition of {patch} must stay open until the script "
                          f"completes it")
        return None

    def complete(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        patch = _transition_patch(self.m, step)
        kind = _completes(step, patch) if patch else None
        pv = self.var(patch) if patch else "?"
        if kind == "unpatching":
            self.lines.append(f"loop_until '[[ ! -e /sys/kernel/livepatch/{pv} ]]' || die \"failed to complete the "
                              f"unpatching transition of {pv}\"")
        else:
            self.lines.append(f"loop_until 'grep -q \"^0$\" /sys/kernel/livepatch/{pv}/transition' || die \"failed "
                              f"to complete the patching transition of {pv}\"")
        self.notes.append(f"step {n + 1}: release whatever holds the transition of {patch} open here")
        return None

    def echo(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        """reverse and force: the sysfs write, logged as the selftests log it."""
        patch = _transition_patch(self.m, step)
        if patch is None:
            raise InternalError(f"step {n + 1} '{step.op}' ran with no patch in transition")
        pv = self.var(patch)
        if step.op.word == "force":
            path, value = f"/sys/kernel/livepatch/{pv}/force", 1
        else:
            path, value = f"/sys/kernel/livepatch/{pv}/enabled", int(self.m.view(step.before).phase(patch) != "patching")
        self.lines += [f'log "% echo {value} > {path}"', f"echo {value} > {path}"]
        return None

    def rmmod(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        self.lines.append(f"unload_lp {self.var(step.op.target)}")
        return None

    def modload(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        var = self.var(step.op.target)
        self.lines.append(f"load_failing_mod {var}" if _failed_load(step) else f"load_mod {var}")
        return None

    def call(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        """The patched code runs: the test's workload, not a command the script can give."""
        self.lines.append(f"# the workload calls {step.op.target}'s new code here (klpmodel: call {step.op.target})")
        return None

    def modunload(self, n: int, step: Step, args: str, nxt: Step | None) -> Step | None:
        self.lines.append(f"unload_mod {self.var(step.op.target)}")
        return None


def _failed_load(step: Step) -> bool:
    return any(isinstance(ev, LoadCancelled | ModLoadFailed) for ev in step.events)


def _owned(m: Model, steps: tuple[Step, ...]) -> tuple[list[str], list[str]]:
    """(livepatch modules, target modules) the script loads itself, hence may unload: every
    patch of the trace (none is loaded at the start), and every target module the trace
    loads or unloads (one loaded at the start is loaded by the script's set-up, which
    refuses to run when it is loaded already: a module the script did not load is never
    unloaded)."""
    patches = [p.name for p in m.P if any(s.op.arg == p.name and s.op.word in ("load", "disable", "rmmod")
                                          for s in steps) or any(k.patch == p.name for s in steps for k in s.failed)]
    targets = [name for name in m.module_names if any(s.op.arg == name and s.op.word in ("modload", "modunload")
                                                      for s in steps)]
    return patches, targets


def _setup(m: Model, names: dict[str, str], patches: list[str], targets: list[str], era: str) -> list[str]:
    """Checks and loads before the test, and the trap that undoes them when the script ends."""
    loaded_at_start = {mod.name for mod in m.spec.modules if mod.loaded}
    objects = {o.name for p in m.P if p.name in patches for o in p.objects if o.name != "vmlinux"}
    out = ["klpmodel_skip() {", '\techo "SKIP: $1" >&2', "\texit 4\t\t# ksft_skip", "}", ""]
    for name in patches:
        out.append(f'[[ -e /sys/module/${names[name]} ]] && klpmodel_skip "${names[name]} is loaded already; '
                   f'the test loads it itself"')
    for name in m.module_names:
        if name in targets and name in loaded_at_start:
            out.append(f'[[ -e /sys/module/${names[name]} ]] && klpmodel_skip "${names[name]} is loaded already: '
                       f'the test loads and unloads it itself and never unloads a module it did not load"')
        elif name in targets:
            out.append(f'[[ -e /sys/module/${names[name]} ]] && klpmodel_skip "${names[name]} is loaded already; '
                       f'the test loads it itself"')
        elif name in objects and name in loaded_at_start:
            out.append(f'[[ -e /sys/module/{name} ]] || klpmodel_skip "target module {name} must be loaded '
                       f'(the spec starts with it loaded)"')
        elif name in objects:
            out.append(f'[[ -e /sys/module/{name} ]] && klpmodel_skip "target module {name} must not be loaded '
                       f'(the spec starts without it)"')
    lps = " ".join(f'"${names[p]}"' for p in reversed(patches))
    mods = " ".join(f'"${names[x]}"' for x in [*reversed(patches), *targets])
    out += ["",
            "# However the script ends: settle any transition, disable the livepatches and unload",
            "# every module this script loaded (only those), then the clean-up of setup_config.",
            "klpmodel_prev_trap=$(trap -p EXIT)",
            "klpmodel_prev_trap=${klpmodel_prev_trap#trap -- }",
            "klpmodel_prev_trap=${klpmodel_prev_trap% EXIT}",
            "klpmodel_cleanup() {",
            "\tlocal m",
            "\ttrap - EXIT",
            f"\tfor m in {lps}; do",
            '\t\tif [[ "$(cat "/sys/kernel/livepatch/$m/transition" 2>/dev/null)" == 1 &&',
            '\t\t      "$(cat "/sys/kernel/livepatch/$m/enabled" 2>/dev/null)" == 1 ]]; then',
            '\t\t\techo 0 > "/sys/kernel/livepatch/$m/enabled"\t# reverse a patching transition',
            "\t\tfi",
            '\t\tloop_until "[[ \\"\\$(cat /sys/kernel/livepatch/$m/transition 2>/dev/null)\\" != 1 ]]"',
            "\tdone",
            f"\tfor m in {lps}; do",
            '\t\tif [[ "$(cat "/sys/kernel/livepatch/$m/enabled" 2>/dev/null)" == 1 ]]; then',
            '\t\t\techo 0 > "/sys/kernel/livepatch/$m/enabled"',
            '\t\t\tloop_until "[[ ! -e /sys/kernel/livepatch/$m ]]"',
            "\t\tfi",
            "\tdone",
            f"\tfor m in {mods}; do",
            '\t\t[[ -e "/sys/module/$m" ]] && rmmod "$m" 2>/dev/null',
            "\tdone",
            '\teval "$klpmodel_prev_trap"',
            "}",
            "trap klpmodel_cleanup EXIT",
            "trap 'exit 130' INT TERM HUP"]
    for name in targets:
        if name in loaded_at_start:
            out.append(f"load_mod ${names[name]}\t\t# the spec starts with it loaded")
    return out


def _comment(text: str) -> str:
    """A comment line: one line whatever the text holds (no newline ends it early)."""
    return printable(text)


def _shadow_notes(m: Model, prop: str, expected: list[str], trace: tuple[Step, ...]) -> list[str]:
    """(issue 14) What the kernel log cannot show of shadow variables."""
    out = []
    if any(s.op.word == "call" for s in trace):
        out.append("each 'call PATCH.FUNCTION' step: a task calling FUNCTION while the patch is on klp_patches "
                   "(the test's workload; the script only marks the place)")
    if any("$OBJ" in line for line in expected):
        out.append("the object's address in 'Failed to construct shadow variable <$OBJ, ID>': the kernel prints "
                   "its hashed %p, which check_result cannot know; edit that expected line")
    if prop == "shadow-duplicate":
        out.append("the check of the WARN: 'Duplicate shadow variable' has no 'livepatch:' prefix, so "
                   "check_result does not compare it; look for it in dmesg")
    elif prop in {p.name for p in m.all_properties if p.name.startswith("shadow-") or p.name == "disable-keeps-shared"}:
        out.append(f"a check of {prop}: the kernel logs nothing for it; the script replays the sequence only")
    return out


def script(m: Model, t: TraceFile, era: str = "insmod") -> str:
    from .report import broke
    from .traces import violation_of

    run = rerun(m, t)
    if run.stopped:
        raise UserError(f"the trace no longer runs against {m.spec.path} ({run.stopped}); "
                        f"check it with 'klpmodel replay {t.path}'", path=t.path)
    v = violation_of(t, run)
    names = _variables(m)
    for name in names:                                # the spec's loader checked them; the shell relies on it
        if not NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
            raise UserError(f"module name {name!r} cannot be a kernel module name; rename it in the spec "
                            f"(letters, digits and '_')", path=m.spec.path)
    patches, targets = _owned(m, v.trace)
    used = set(patches) | set(targets)
    lines, expected, notes = commands(m, v.trace, names, era)
    raw = "\n".join(expected)
    for ch in ("\\", '"', "`", "$"):                 # literal inside "...", then the module variables
        raw = raw.replace(ch, "\\" + ch)
    expected_text = _subst(raw, names)
    header = [
        "#!/bin/bash",
        "# SPDX-License-Identifier: GPL-2.0",
        "#",
        f"# Generated by klpmodel {__version__} from {t.path}",
        f"# spec: {m.spec.path} ({m.spec.name}), sha256 {m.spec.digest[:16]}",
        f"# Replays the {t.property} counterexample ({len(v.trace)} operations):",
        "#   " + "; ".join(str(s.op) for s in v.trace),
        f"# which breaks it: {broke(m, v)}",
        "#",
        "# Run it as root from tools/testing/selftests/livepatch/ (it sources functions.sh),",
        "# with these modules built from the spec's patches (see docs/kselftest.md):",
    ]
    for name in sorted(used, key=lambda x: names[x]):
        kind = "target module" if name in m.module_names else "livepatch"
        where = f"test_modules/{name}.ko" if era == "insmod" else f"{name} (installed for modprobe)"
        header.append(f"#   {where:<40} {kind} '{name}'")
    notes = notes + _shadow_notes(m, t.property, expected, v.trace)
    if notes:
        header.append("# The real run must also provide:")
        header += [f"#   {note}" for note in notes]
    header.append("# check_result compares only lines containing 'livepatch:' or 'test_klp': name the")
    header.append("# modules test_klp_* to have the callbacks' own lines compared too.")
    header.append("# The script unloads only modules it loaded itself, also when it fails or is interrupted.")
    header = [_comment(x) if x.startswith("#") else x for x in header]
    body = ["", ". $(dirname $0)/functions.sh", ""]
    body += [f"{names[name]}={shlex.quote(name)}" for name in sorted(used, key=lambda x: names[x])]
    body += ["", "setup_config", ""]
    body += _setup(m, names, patches, targets, era)
    body += ["", "", _comment(f"# TEST: klpmodel {t.property} counterexample"), "#"]
    body += [_comment(f"# {line}") for line in (f"{n}. {s.op}" for n, s in enumerate(v.trace, 1))]
    body += ["", "start_test " + shlex.quote(printable(f"klpmodel: {t.property} counterexample ({m.spec.name})")), ""]
    body += lines
    body += ["", f'check_result "{expected_text}"', "", "exit 0"]
    return "\n".join(header + body) + "\n"
