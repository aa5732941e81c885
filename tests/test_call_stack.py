"""Issue 14, `call P.FUNC` follows the function stack: P's new version of FUNC runs only when
klp_ftrace_handler (kernel/livepatch/patch.c) can pick it for some task -- the newest entry
on the function's func_stack, or the entry below the transition patch's (its func or its nop)
for tasks not yet switched (docs/properties.md "Which function runs"). Pinned on the concrete
interpreter (the rule is kernel.py's `runs`, which the Z3 engine encodes too) and with the
spec pair that flips because of it."""
from __future__ import annotations

import pytest
from conftest import SPECS
from sim import Sim

from klpmodel.spec import load_spec
from klpmodel.verify import verify

STACK = """
[check]
operations = ["load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force", "call"]
[modules.m]
[[patch]]
name = "p1"
[patch.code]
work = ['log "p1 work"']
[patch.objects.vmlinux]
funcs = ["work"]
[[patch]]
name = "p2"
[patch.code]
work = ['log "p2 work"']
[patch.objects.vmlinux]
funcs = ["work"]
[[patch]]
name = "r"
replace = true
[patch.code]
other = ['log "r other"']
[patch.objects.vmlinux]
funcs = ["other"]
[[patch]]
name = "pm"
[patch.code]
mwork = ['log "pm mwork"']
[patch.objects.m]
funcs = ["mwork"]
"""

STACKED = "does not run: another version is the one on its func_stack for every task"


@pytest.fixture
def s(write_spec):
    return Sim(write_spec(STACK))


def runs(s: Sim, call: str) -> bool:
    return s.refusal(call) is None


def test_a_newer_patch_of_the_function_takes_it_over_once_every_task_switched(s):
    s.do("load p1")
    assert runs(s, "call p1.work")                     # p1's transition: switched tasks run it
    s.do("complete")
    s.do("load p2")                                    # p2's transition: both versions run
    assert runs(s, "call p1.work") and runs(s, "call p2.work")
    s.do("force")                                      # every task switched to p2's work
    assert s.refusal("call p1.work").endswith(STACKED) and runs(s, "call p2.work")
    s.do("complete")
    assert s.refusal("call p1.work").endswith(STACKED)     # p1 is still listed and enabled
    s.do("disable p2")                                 # tasks go back to p1's work one by one
    assert runs(s, "call p1.work") and runs(s, "call p2.work")
    s.do("force")
    assert s.refusal("call p2.work").endswith(STACKED) and runs(s, "call p1.work")
    s.do("complete")
    assert runs(s, "call p1.work")


def test_disabling_an_older_patch_does_not_bring_its_version_back(s):
    s.do("load p1"); s.do("complete"); s.do("load p2"); s.do("complete")
    s.do("disable p1")                                 # p1 is not the top entry: its
    assert s.refusal("call p1.work").endswith(STACKED)     # transition flag is never read
    assert runs(s, "call p2.work")


def test_a_replace_patch_nop_keeps_the_replaced_version_for_tasks_not_yet_switched(s):
    s.do("load p1"); s.do("complete")
    s.do("load r")                                     # r's nop for work is the top entry
    assert runs(s, "call p1.work") and runs(s, "call r.other")
    s.do("force")                                      # every task runs the nop: the original work
    assert s.refusal("call p1.work").endswith(STACKED)
    s.do("reverse")                                    # tasks go back one by one
    assert runs(s, "call p1.work")


def test_a_module_function_is_on_no_stack_while_its_module_is_away(s):
    s.do("load pm"); s.do("complete")
    assert s.refusal("call pm.mwork").endswith("its object is not loaded")
    s.do("modload m")
    assert runs(s, "call pm.mwork")
    s.do("modunload m")
    assert s.refusal("call pm.mwork").endswith("its object is not loaded")


def test_a_function_no_object_lists_is_the_patch_alone(write_spec):
    s = Sim(write_spec(STACK.replace('funcs = ["work"]\n', "", 1)))    # p1's work: in no funcs
    s.do("load p1"); s.do("complete"); s.do("load p2"); s.do("complete")
    assert runs(s, "call p1.work")                     # no stack entry above it
    s.do("disable p2"); s.do("complete"); s.do("disable p1"); s.do("force")
    assert s.refusal("call p1.work").endswith(STACKED)     # its own unpatching, every task switched


@pytest.mark.parametrize("engine", ["explicit", "z3"])
def test_the_stack_decides_the_call_stack_pair(engine):
    """call-stack-good holds because lp_base's work does not run under lp_hotfix (it broke
    shadow-duplicate in 5 operations when `call` ran whenever the patch was listed);
    call-stack-bad breaks it through the unpatching transition, where it runs again."""
    good = verify(load_spec(SPECS / "call-stack-good.toml"), engine=engine)
    assert good.verdict == "holds"
    bad = verify(load_spec(SPECS / "call-stack-bad.toml"), engine=engine)
    (v,) = bad.violations
    assert (v.property, v.depth) == ("shadow-duplicate", 6)
    ops = [str(st.op) for st in v.trace]
    assert ops[-2:] == ["disable lp_hotfix", "call lp_base.work"]
