"""The kernel log as the livepatch selftests capture it (semantics.md §15): the script's
`% ...` command lines and loader errors, livepatch's lines (debug lines included, as with
dynamic debug on), and the modules' own lines.

Only the script's side lives here: the kernel's lines are the events' own renderers
(events.py), in the order kernel.step emitted them.
"""
from __future__ import annotations

from collections.abc import Sequence

from . import events
from .backend import Val
from .events import Event, Refusal
from .kernel import Model, Op

ERAS = ("insmod", "modprobe")     # selftests 6.8+ load test_modules/*.ko with insmod; 5.1-6.7 used modprobe


def command_line(m: Model, op: Op, before: dict[str, Val], args: str = "", era: str = "insmod") -> str | None:
    """The line the selftest script writes into the log right before the action."""
    tail = f" {args}" if args else ""
    if op.word in ("load", "modload"):
        return f"% modprobe {op.arg}{tail}" if era == "modprobe" else f"% insmod test_modules/{op.arg}.ko{tail}"
    if op.word in ("rmmod", "modunload"):
        return f"% rmmod {op.arg}"
    if op.word == "disable":
        return f"% echo 0 > /sys/kernel/livepatch/{op.arg}/enabled"
    if op.word in ("reverse", "force"):
        view = m.view(before)
        patch = view.transition_patch()
        if patch is None:
            return None
        if op.word == "force":
            return f"% echo 1 > /sys/kernel/livepatch/{patch}/force"
        return f"% echo {0 if view.phase(patch) == 'patching' else 1} > /sys/kernel/livepatch/{patch}/enabled"
    if op.word == "param":
        module, param, value = op.target.split(" ")
        return f"% echo {value} > /sys/module/{module}/parameters/{param}"
    return None                                           # complete: the kernel's own work


def op_lines(m: Model, op: Op, before: dict[str, Val], evs: Sequence[Event], args: str = "", era: str = "insmod") -> list[str]:
    """The whole log of one operation that ran: the script's command line, then the kernel's."""
    line = command_line(m, op, before, args, era)
    return ([line] if line else []) + event_lines(op, evs, era)


def refusal_lines(op: Op, why: Refusal, era: str = "insmod") -> list[str]:
    """What the kernel and the user-space tool print for a refused operation."""
    return why.lines(op.word, op.arg, era)


def event_lines(op: Op, evs: Sequence[Event], era: str = "insmod") -> list[str]:
    """The kernel log lines of one operation's events, in the kernel's order."""
    return events.lines(evs, op.word, op.arg if op.word in ("modload", "modunload") else None, era)

