"""The kernel log as the livepatch selftests capture it (../shared/kernel/selftests.md §0,
semantics.md §15): the script's `% ...` command lines and loader errors, livepatch's lines
(debug lines included, as with dynamic debug on), and the modules' own lines.

Only rendering lives here: what happens, and in which order, comes from the events that
kernel.step emits while it runs the operation.
"""
from __future__ import annotations

from .kernel import PHASES, Model, Op

MODULE_STATE = {
    "COMING": "[MODULE_STATE_COMING] Full formed, running module_init",
    "LIVE": "[MODULE_STATE_LIVE] Normal state",
    "GOING": "[MODULE_STATE_GOING] Going away",
}
# what insmod prints for an errno (kmod's mod_strerror; -EINVAL is special-cased there)
INSMOD_ERROR = {-22: "Invalid parameters", -19: "No such device", -16: "Device or resource busy",
                -12: "Cannot allocate memory", -17: "File exists", -1: "Operation not permitted"}
STRERROR = {-22: "Invalid argument", -19: "No such device", -16: "Device or resource busy",
            -12: "Cannot allocate memory", -17: "File exists", -1: "Operation not permitted"}
ERAS = ("insmod", "modprobe")     # selftests 6.8+ load test_modules/*.ko with insmod; 5.1-6.7 used modprobe


def insmod_error(name: str, errno: int, era: str = "insmod") -> str:
    """The loader's error line that load_failing_mod writes into the log (selftests.md §0.2)."""
    if era == "modprobe":
        return f"modprobe: ERROR: could not insert '{name}': {STRERROR.get(errno, f'errno {errno}')}"
    return f"insmod: ERROR: could not insert module test_modules/{name}.ko: {INSMOD_ERROR.get(errno, f'errno {errno}')}"


def command_line(op: Op, before: dict, args: str = "", era: str = "insmod") -> str | None:
    """The line the selftest script writes into the log right before the action."""
    tail = f" {args}" if args else ""
    if op.word in ("load", "modload"):
        return f"% modprobe {op.arg}{tail}" if era == "modprobe" else f"% insmod test_modules/{op.arg}.ko{tail}"
    if op.word in ("rmmod", "modunload"):
        return f"% rmmod {op.arg}"
    if op.word == "disable":
        return f"% echo 0 > /sys/kernel/livepatch/{op.arg}/enabled"
    if op.word in ("reverse", "force"):
        patch = transition_patch(before)
        if patch is None:
            return None
        if op.word == "force":
            return f"% echo 1 > /sys/kernel/livepatch/{patch}/force"
        value = 0 if PHASES[before[f"phase[{patch}]"]] == "patching" else 1
        return f"% echo {value} > /sys/kernel/livepatch/{patch}/enabled"
    if op.word == "param":
        module, param, value = op.arg.split(" ")
        return f"% echo {value} > /sys/module/{module}/parameters/{param}"
    return None                                           # complete: the kernel's own work


def op_lines(m: Model, op: Op, before: dict, events, args: str = "", era: str = "insmod") -> list[str]:
    """The whole log of one operation that ran: the script's command line, then the kernel's."""
    line = command_line(op, before, args, era)
    return ([line] if line else []) + event_lines(m, op, events, era)


def transition_patch(state: dict) -> str | None:
    for key, value in state.items():
        if key.startswith("phase[") and PHASES[value] in ("patching", "unpatching"):
            return key[len("phase["):-1]
    return None


def refusal_lines(op: Op, why: str, era: str = "insmod") -> list[str]:
    """What the kernel and the user-space tool print for a refused operation."""
    if op.word in ("load", "modload"):
        if "not compatible" in why:
            return [f"livepatch: Livepatch patch ({op.arg}) is not compatible with the already installed livepatches.",
                    insmod_error(op.arg, -22, era)]
        if why.startswith("-EBUSY"):
            return [insmod_error(op.arg, -16, era)]
        return [insmod_error(op.arg, -17, era)]           # already loaded
    if op.word in ("disable", "reverse", "force"):
        return [f"echo: write error: {STRERROR[-16] if why.startswith('-EBUSY') else STRERROR[-22]}"]
    if op.word in ("rmmod", "modunload"):
        return [f"rmmod: ERROR: Module {op.arg} is {'not currently loaded' if 'not loaded' in why else 'in use'}"]
    return []


def event_lines(m: Model, op: Op, events, era: str = "insmod") -> list[str]:
    """The log lines of one operation's events, in the kernel's order."""
    out: list[str] = []
    errno = None
    module = {"modload": "COMING", "modunload": "GOING"}.get(op.word)
    for ev in events:
        kind = ev[0]
        if kind == "load-start":
            out += [f"livepatch: enabling patch '{ev[1]}'", f"livepatch: '{ev[1]}': initializing patching transition"]
        elif kind == "banner":
            w = ev[1]
            state = "" if w.obj == "vmlinux" else f" -> {MODULE_STATE[module if w.obj == op.arg and module else 'LIVE']}"
            out.append(f"{w.patch}: {w.callback}_callback: {w.obj}{state}")
        elif kind == "log":
            out.append(f"{ev[1].patch}: {ev[2]}")
        elif kind == "failed":
            errno = ev[2]
        elif kind == "alloc-failed":
            errno = -12
        elif kind == "pre-patch-failed":
            out.append(f"livepatch: pre-patch callback failed for object '{ev[2]}'")
        elif kind in ("patch-failed", "apply-failed"):    # klp_patch_object failed (§16): -EBUSY
            errno = -16
            if ev[3]:
                out.append(f"livepatch: failed to register ftrace handler for function '{ev[3]}' (-16)")
            out.append(f"livepatch: failed to patch object '{ev[2]}'" if kind == "patch-failed" else
                       f"livepatch: failed to apply patch '{ev[1]}' to module '{ev[2]}' (-16)")
        elif kind == "load-cancel":
            out += [f"livepatch: failed to enable patch '{ev[1]}'",
                    f"livepatch: '{ev[1]}': canceling patching transition, going to unpatch",
                    f"livepatch: '{ev[1]}': completing unpatching transition"]
        elif kind == "load-cancelled":
            out += [f"livepatch: '{ev[1]}': unpatching complete", insmod_error(ev[1], errno or -22, era)]
        elif kind == "load-started":
            out.append(f"livepatch: '{ev[1]}': starting patching transition")
        elif kind == "complete":
            out.append(f"livepatch: '{ev[1]}': completing {PHASES[ev[2]]} transition")
        elif kind == "completed":
            out.append(f"livepatch: '{ev[1]}': {'patching' if PHASES[ev[2]] == 'enabled' else 'unpatching'} complete")
        elif kind == "reverse":
            frm, to = ("patching", "unpatching") if PHASES[ev[2]] == "patching" else ("unpatching", "patching")
            out += [f"livepatch: '{ev[1]}': reversing transition from {frm} to {to}",
                    f"livepatch: '{ev[1]}': starting {to} transition"]
        elif kind == "disable-start":
            out.append(f"livepatch: '{ev[1]}': initializing unpatching transition")
        elif kind == "disable-started":
            out.append(f"livepatch: '{ev[1]}': starting unpatching transition")
        elif kind == "force":
            out.append("livepatch: forcing remaining tasks to the patched state")
        elif kind == "modlog":
            out.append(f"{ev[1]}: {ev[2]}")
        elif kind == "applying":
            out.append(f"livepatch: applying patch '{ev[1]}' to loading module '{ev[2]}'")
        elif kind == "refused":
            out.append(f"livepatch: patch '{ev[1]}' failed for module '{ev[2]}', refusing to load module '{ev[2]}'")
        elif kind == "reverting":
            out.append(f"livepatch: reverting patch '{ev[1]}' on unloading module '{ev[2]}'")
        elif kind == "modload-failed":
            out.append(insmod_error(ev[1], errno or -22, era))
    return out
