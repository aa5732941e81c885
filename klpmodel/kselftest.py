"""`klpmodel kselftest`: a counterexample as a script in the style of
tools/testing/selftests/livepatch/test-*.sh (functions.sh helpers, check_result with the
expected log), to run on a test VM with real modules built from the spec's patches.

The expected log is what `simulate` renders for the trace (klog.py), filtered the way
check_result filters dmesg: only lines with 'livepatch:' or 'test_klp', no taint lines.
"""
from __future__ import annotations

import re

from . import __version__, klog
from .kernel import PATCHING_SITE, PHASES, Choice, Model
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
        if ev[0] == "completed" and ev[1] == patch:
            return "patching" if PHASES[ev[2]] == "enabled" else "unpatching"
    return None


def _transition_patch(step: Step) -> str | None:
    return klog.transition_patch(step.before)


def commands(m: Model, steps: tuple[Step, ...], names: dict[str, str], era: str = "insmod") -> tuple[list[str], list[str], list[str]]:
    """(script lines, expected log lines, notes on what the VM must provide) for the steps."""
    lines: list[str] = []
    log: list[str] = []
    notes: list[str] = []
    skip = set()
    for n, step in enumerate(steps):
        if n in skip:
            continue
        op, var = step.op, f"${names.get(step.op.arg, '')}"
        args = ""
        failed_load = any(ev[0] in ("load-cancelled", "modload-failed") for ev in step.events)
        if step.failed:
            arg = _fail_arg(step)
            owner = step.failed[0].patch
            if op.word == "load" and owner == op.arg:
                args = f"{FAIL_PARAM}={arg}"
            else:
                lines.append(f"echo {arg} > /sys/module/${names[owner]}/parameters/{FAIL_PARAM}")
            notes.append(f"step {n + 1}: {owner} must fail at " + ", ".join(_fail_note(k) for k in step.failed)
                         + f" when its '{FAIL_PARAM}' parameter names it")
        entry = klog.op_lines(m, op, step.before, step.events, args, era)
        nxt = steps[n + 1] if n + 1 < len(steps) else None
        cmd_args = f" {args}" if args else ""
        if op.word == "load":
            if failed_load:
                lines.append(f"load_failing_mod {var}{cmd_args}")
            elif nxt is not None and nxt.op.word == "complete" and _completes(nxt, op.arg) == "patching":
                lines.append(f"load_lp {var}{cmd_args}")
                entry += klog.op_lines(m, nxt.op, nxt.before, nxt.events, era=era)
                skip.add(n + 1)
            else:
                lines.append(f"load_lp_nowait {var}{cmd_args}")
                notes.append(f"step {n + 1}: the patching transition of {op.arg} must stay open until the script "
                             f"completes it (block it, e.g. with a task sleeping in a patched function like "
                             f"test_klp_callbacks_busy)")
        elif op.word == "disable":
            if nxt is not None and nxt.op.word == "complete" and _completes(nxt, op.arg) == "unpatching":
                lines.append(f"disable_lp {var}")
                entry += klog.op_lines(m, nxt.op, nxt.before, nxt.events, era=era)
                skip.add(n + 1)
            else:
                lines += [f'log "% echo 0 > /sys/kernel/livepatch/{var}/enabled"',
                          f"echo 0 > /sys/kernel/livepatch/{var}/enabled"]
                notes.append(f"step {n + 1}: the unpatching transition of {op.arg} must stay open until the script "
                             f"completes it")
        elif op.word == "complete":
            patch = _transition_patch(step)
            kind = _completes(step, patch) if patch else None
            pv = f"${names[patch]}" if patch else "?"
            if kind == "unpatching":
                lines.append(f"loop_until '[[ ! -e /sys/kernel/livepatch/{pv} ]]' || die \"failed to complete the "
                             f"unpatching transition of {pv}\"")
            else:
                lines.append(f"loop_until 'grep -q \"^0$\" /sys/kernel/livepatch/{pv}/transition' || die \"failed "
                             f"to complete the patching transition of {pv}\"")
            notes.append(f"step {n + 1}: release whatever holds the transition of {patch} open here")
        elif op.word in ("reverse", "force"):
            patch = _transition_patch(step)
            pv = f"${names[patch]}"
            if op.word == "force":
                path, value = f"/sys/kernel/livepatch/{pv}/force", 1
            else:
                path, value = f"/sys/kernel/livepatch/{pv}/enabled", int(PHASES[step.before[f"phase[{patch}]"]] != "patching")
            lines += [f'log "% echo {value} > {path}"', f"echo {value} > {path}"]
        elif op.word == "rmmod":
            lines.append(f"unload_lp {var}")
        elif op.word == "modload":
            lines.append(f"load_failing_mod {var}" if failed_load else f"load_mod {var}")
        elif op.word == "modunload":
            lines.append(f"unload_mod {var}")
        log += entry
    return lines, [line for line in log if kept_by_check_result(line)], notes


def script(m: Model, t: TraceFile, era: str = "insmod") -> str:
    from .report import broke
    from .traces import violation_of

    run = rerun(m, t)
    if run.stopped:
        from .errors import UserError
        raise UserError(f"the trace no longer runs against {m.spec.path} ({run.stopped}); "
                        f"check it with 'klpmodel replay {t.path}'", path=t.path)
    v = violation_of(t, run)
    names = _variables(m)
    used = {s.op.arg for s in v.trace if s.op.arg} | {k.patch for s in v.trace for k in s.failed}
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
    for name in sorted(used & set(names), key=lambda x: names[x]):
        kind = "target module" if name in m.module_names else "livepatch"
        where = f"test_modules/{name}.ko" if era == "insmod" else f"{name} (installed for modprobe)"
        header.append(f"#   {where:<40} {kind} '{name}'")
    if notes:
        header.append("# The real run must also provide:")
        header += [f"#   {note}" for note in notes]
    header.append("# check_result compares only lines containing 'livepatch:' or 'test_klp': name the")
    header.append("# modules test_klp_* to have the callbacks' own lines compared too.")
    body = ["", ". $(dirname $0)/functions.sh", ""]
    body += [f"{names[name]}={name}" for name in sorted(used & set(names), key=lambda x: names[x])]
    body += ["", "setup_config", "", "", f"# TEST: klpmodel {t.property} counterexample", "#"]
    body += [f"# {line}" for line in (f"{n}. {s.op}" for n, s in enumerate(v.trace, 1))]
    body += ["", f'start_test "klpmodel: {t.property} counterexample ({m.spec.name})"', ""]
    body += lines
    body += ["", f'check_result "{expected_text}"', "", "exit 0"]
    return "\n".join(header + body) + "\n"
