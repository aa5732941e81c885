"""Each mainline kernel rule, pinned on the concrete interpreter (the same kernel.step the
Z3 engine encodes). Section numbers are those of ../shared/kernel/semantics.md."""
from __future__ import annotations

import pytest
from sim import Sim, parse_op

from klpmodel.events import AllocFailed, Failed, Replaced

CB = """
pre_patch    = ['log "pre_patch"']
post_patch   = ['log "post_patch"']
pre_unpatch  = ['log "pre_unpatch"']
post_unpatch = ['log "post_unpatch"']
"""


@pytest.fixture
def sim(write_spec):
    return lambda text: Sim(write_spec(text))


# ------------------------------------------------------------ §2.2 compatibility, §2.1 order

COMPAT = """
[states.s]
id = 1
[[patch]]
name = "new2"
replace = true
states = { s = 2 }
[[patch]]
name = "old1"
replace = true
states = { s = 1 }
[[patch]]
name = "plain"
[[patch]]
name = "other3"
states = { s = 3 }
[[patch]]
name = "cumul_none"
replace = true
"""


def test_compatibility_is_checked_before_ebusy_2_1(sim):
    s = sim(COMPAT)
    s.do("load new2")                               # in transition
    assert s.refusal("load old1").startswith("-EINVAL: not compatible")
    assert s.refusal("load plain") == "-EBUSY: another transition is in progress"


def test_compatibility_against_every_listed_patch_including_one_being_disabled_2_2(sim):
    s = sim(COMPAT)
    s.do("load other3"); s.do("complete")           # non-cumulative, s version 3
    assert s.refusal("load new2") == ("-EINVAL: not compatible with the already installed livepatches "
                                      "(new2 declares s version 2 < 3 of installed other3)")
    s.do("disable other3")                          # still on klp_patches while disabling
    assert s.refusal("load new2").startswith("-EINVAL")
    s.do("complete")
    assert s.refusal("load new2") is None           # gone from the list: ignored


def test_cumulative_must_declare_installed_states_plain_need_not_2_2(sim):
    s = sim(COMPAT)
    s.do("load old1"); s.do("complete")
    assert "does not declare state s" in s.refusal("load cumul_none")
    assert s.refusal("load plain") is None
    assert s.refusal("load new2") is None           # same or higher version: allowed


# ------------------------------------------------------------ §3, §3.1 enable and its error path

OBJECTS = """
[states.s]
id = 1
[modules.m1]
loaded = true
[modules.m2]
loaded = true
[modules.m3]
[[patch]]
name = "p"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_unpatch = ["free s"]
[patch.objects.m3]
pre_patch = ['log "m3"']
[patch.objects.m1]
pre_patch = ["maybe-fail -ENODEV"]
post_unpatch = ['log "never"']
[patch.objects.m2]
pre_patch = ['log "m2"']
"""


def test_pre_patch_interleaved_error_path_runs_post_unpatch_only_before_the_failure_3_1(sim):
    s = sim(OBJECTS)
    out = s.do("load p", fail=[("p", "m1")])
    # m3 is not loaded: skipped; m1 fails; m2 is never reached; post_unpatch only for vmlinux
    assert Sim.callbacks(out) == ["p:pre_patch(vmlinux)", "p:pre_patch(m1)", "p:post_unpatch(vmlinux)"]
    assert s.phase("p") == "unloaded"               # the module load fails
    assert Sim.violations(out) == []                # vmlinux's post_unpatch freed the block


def test_successful_enable_runs_pre_patch_for_every_loaded_object_in_order_3(sim):
    s = sim(OBJECTS)
    out = s.do("load p")
    assert Sim.callbacks(out) == ["p:pre_patch(vmlinux)", "p:pre_patch(m1)", "p:pre_patch(m2)"]
    assert s.phase("p") == "patching"


# ------------------------------------------------------------ §4.2 completion, §7 atomic replace

REPLACE = """
[states.s]
id = 1
[[patch]]
name = "a"
replace = true
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_patch = ["save s", "modify s"]
pre_unpatch = ["restore s"]
post_unpatch = ["free s"]
[[patch]]
name = "b"
replace = true
states = { s = 1 }
[patch.objects.vmlinux]
post_patch = ["take s if prev s"]
pre_unpatch = ['log "x" if prev s', "restore s"]
post_unpatch = ["free s"]
"""


def test_replaced_patches_visible_to_prev_in_post_patch_then_dropped_4_2(sim):
    s = sim(REPLACE)
    s.do("load a"); s.do("complete"); s.do("load b")
    assert s.order() == ["a", "b"]
    out = s.do("complete")
    assert Sim.callbacks(out) == ["b:post_patch(vmlinux)"]          # none of a's callbacks run (§7)
    assert Sim.prev_seen(out) == [("take s if prev s", ("s", "a"))]
    assert s.order() == ["b"] and s.phase("a") == "off-list"
    assert Sim.violations(out) == []                                # b took a's block over


def test_prev_is_null_while_disabling_a_cumulative_patch_12(sim):
    s = sim(REPLACE)
    s.do("load a"); s.do("complete"); s.do("load b"); s.do("complete")
    out = s.do("disable b")
    assert Sim.prev_seen(out) == [('log "x" if prev s', ("s", None))]


NONCUMULATIVE = """
[states.s]
id = 1
[[patch]]
name = "p1"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch   = ["alloc s"]
post_patch  = ["save s", "modify s"]
pre_unpatch = ["restore s unless prev s"]
[[patch]]
name = "p2"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch   = ["alloc s"]
post_patch  = ["save s", "modify s"]
pre_unpatch = ["restore s unless prev s"]
"""


def test_prev_sees_older_patches_in_pre_unpatch_of_a_non_cumulative_disable_6_3_12(sim):
    """klp_init_transition sets the transition patch before pre_unpatch runs (§6.3 steps 2-3),
    so a non-cumulative patch being disabled sees the older listed patch (§12)."""
    s = sim(NONCUMULATIVE)
    for op in ("load p1", "complete", "load p2", "complete"):
        s.do(op)
    out = s.do("disable p2")
    assert Sim.prev_seen(out) == [("restore s unless prev s", ("s", "p1"))]
    assert s.model.describe_value("s", s.state["val[s]"]) == "v1"      # not restored: p1 still holds it
    s.do("complete")
    out = s.do("disable p1")                                            # nothing older: NULL, restore
    assert Sim.prev_seen(out) == [("restore s unless prev s", ("s", None))]


def test_failed_replace_leaves_old_patches_enabled_3_1(sim, write_spec):
    s = Sim(write_spec(REPLACE.replace('post_patch = ["take s if prev s"]',
                                       'pre_patch = ["maybe-fail"]\npost_patch = ["take s if prev s"]')))
    s.do("load a"); s.do("complete")
    s.do("load b", fail=[("b", "vmlinux")])
    assert s.order() == ["a"] and s.phase("b") == "unloaded"


# ------------------------------------------------------------ §6.2 reversal

ONE = """
[[patch]]
name = "p"
[patch.objects.vmlinux]
""" + CB


def test_reversed_enable_runs_no_callback_at_reversal_and_post_unpatch_at_completion_6_2(sim):
    s = sim(ONE)
    s.do("load p")
    assert Sim.callbacks(s.do("reverse")) == []
    assert s.phase("p") == "unpatching"
    assert Sim.callbacks(s.do("complete")) == ["p:post_unpatch(vmlinux)"]   # no pre_unpatch ever
    assert s.phase("p") == "off-list"


def test_reversed_disable_runs_post_patch_again_6_2(sim):
    s = sim(ONE)
    s.do("load p"); s.do("complete")
    assert Sim.callbacks(s.do("disable p")) == ["p:pre_unpatch(vmlinux)"]
    assert Sim.callbacks(s.do("reverse")) == []
    assert Sim.callbacks(s.do("complete")) == ["p:post_patch(vmlinux)"]
    assert s.phase("p") == "enabled"


def test_a_reversal_can_be_reversed_6_2(sim):
    s = sim(ONE)
    s.do("load p"); s.do("reverse"); s.do("reverse")
    assert s.phase("p") == "patching"
    assert Sim.callbacks(s.do("complete")) == ["p:post_patch(vmlinux)"]


# ------------------------------------------------------------ §6.1, §6.3 disable; §10 rmmod and reload

TWO = """
[[patch]]
name = "a"
[[patch]]
name = "b"
[patch.objects.vmlinux]
""" + CB


def test_disable_refusals_6_1_6_3(sim):
    s = sim(TWO)
    assert s.refusal("disable a") == "-EINVAL: a is not enabled"
    s.do("load a"); s.do("complete"); s.do("load b")
    assert s.refusal("disable a") == "-EBUSY: another transition is in progress"
    s.do("complete")
    out = s.do("disable b")
    assert Sim.callbacks(out) == ["b:pre_unpatch(vmlinux)"]
    assert Sim.callbacks(s.do("complete")) == ["b:post_unpatch(vmlinux)"]


def test_rmmod_and_reload_as_a_new_instance_6_1_10(sim):
    s = sim(TWO)
    s.do("load b"); s.do("complete")
    assert s.refusal("rmmod b") == "module b is in use: its patch is on klp_patches"
    s.do("load a"); s.do("complete")
    s.do("disable b"); s.do("complete")
    assert s.refusal("load b") == "module b is already loaded (insmod: File exists)"   # no re-enable
    s.do("rmmod b")
    s.do("load b")                                   # a new instance, at the tail of klp_patches
    assert s.order() == ["a", "b"]


# ------------------------------------------------------------ §9 target modules coming and going

MODS = """
[states.s]
id = 1
[modules.m]
""" + "".join("""
[[patch]]
name = "NAME"
states = { s = 1 }
[patch.objects.m]
pre_patch = ['log "pre" if prev s', LAST]
post_patch = ['log "post"']
pre_unpatch = ['log "pre_unpatch"']
post_unpatch = ['log "post_unpatch"']
""".replace("NAME", n).replace("LAST", "'maybe-fail'" if n == "q" else "'log \"x\"'") for n in ("p", "q", "r"))


def test_module_coming_while_enabled_runs_pre_and_post_patch_9_1(sim):
    s = sim(MODS)
    s.do("load p"); s.do("complete")
    out = s.do("modload m")
    assert Sim.callbacks(out) == ["p:pre_patch(m)", "p:post_patch(m)"]
    assert Sim.prev_seen(out) == [('log "pre" if prev s', ("s", None))]   # no transition: NULL (§12)


def test_module_coming_mid_transition_defers_post_patch_9_1(sim):
    s = sim(MODS)
    s.do("load p")
    assert Sim.callbacks(s.do("modload m")) == ["p:pre_patch(m)"]
    assert Sim.callbacks(s.do("complete")) == ["p:post_patch(m)"]


def test_module_going_mid_transition_skips_pre_unpatch_9_2(sim):
    s = sim(MODS)
    s.do("load p"); s.do("complete"); s.do("modload m")
    s.do("load r")
    out = s.do("modunload m")
    assert Sim.callbacks(out) == ["p:pre_unpatch(m)", "p:post_unpatch(m)", "r:post_unpatch(m)"]


def test_failing_pre_patch_refuses_the_module_and_rolls_back_only_earlier_patches_9_1(sim):
    s = sim(MODS)
    for n in ("p", "q", "r"):
        s.do(f"load {n}"); s.do("complete")
    assert s.order() == ["p", "q", "r"]
    out = s.do("modload m", fail=[("q", "m")])
    assert Sim.callbacks(out) == ["p:pre_patch(m)", "p:post_patch(m)", "q:pre_patch(m)",
                                  "p:pre_unpatch(m)", "p:post_unpatch(m)"]
    assert s.state["mod[m]"] is False


def test_module_events_exempt_the_transition_from_revert_restores(sim):
    s = sim(MODS)
    s.do("load p")
    s.do("modload m")
    assert s.state["exempt"] is True


# ------------------------------------------------------------ §6.4 force

def test_force_before_5_18_marks_every_listed_patch_and_pins_its_module_6_4(write_spec):
    s = Sim(write_spec(TWO), profile="5.5")
    assert s.refusal("force") == "-EINVAL: no transition is in progress"
    s.do("load a"); s.do("complete"); s.do("load b")
    assert Sim.callbacks(s.do("force")) == []               # completes nothing by itself
    assert s.phase("b") == "patching"
    assert s.state["forced[a]"] and s.state["forced[b]"]
    assert Sim.callbacks(s.do("complete")) == ["b:post_patch(vmlinux)"]
    s.do("disable b"); s.do("complete")
    assert s.refusal("rmmod b") == "module b is in use for ever: its patch was forced"


FORCE = """
[[patch]]
name = "a"
[[patch]]
name = "b"
[[patch]]
name = "r"
replace = true
"""


def test_force_since_5_18_marks_only_what_it_makes_unsafe_6_4(sim):
    """Commit 2957308343fa: unpatching marks the transition patch; patching with replace
    marks the patches it replaces; patching without replace marks none."""
    s = sim(FORCE)
    s.do("load a"); s.do("complete"); s.do("load b")
    s.do("force")                                           # patching, no replace: none
    assert not any(s.state[f"forced[{p}]"] for p in "abr")
    s.do("complete"); s.do("disable b"); s.do("force")      # unpatching: only b
    assert s.state["forced[b]"] and not s.state["forced[a]"]
    s.do("reverse")                                         # the flag survives a reversal
    assert s.state["forced[b]"]
    s.do("complete"); s.do("load r"); s.do("force")         # replace: every other listed patch
    assert s.state["forced[a]"] and s.state["forced[b]"] and not s.state["forced[r]"]
    s.do("complete")
    assert s.refusal("rmmod a") == "module a is in use for ever: its patch was forced"
    assert s.refusal("rmmod b") == "module b is in use for ever: its patch was forced"
    s.do("disable r"); s.do("complete")
    assert s.refusal("rmmod r") is None


def test_a_repeated_force_is_accepted_6_4(sim):
    s = sim(TWO)
    s.do("load a"); s.do("force")
    assert s.refusal("force") is None


# ------------------------------------------------------------ §8 the hidden post_unpatch_enabled flag

def test_missing_pre_patch_counts_as_success_8(sim):
    s = sim("""
[[patch]]
name = "p"
[patch.objects.vmlinux]
post_unpatch = ['log "bye"']
""")
    s.do("load p"); s.do("complete"); s.do("disable p")
    assert Sim.callbacks(s.do("complete")) == ["p:post_unpatch(vmlinux)"]


# ------------------------------------------------------------ statement semantics (properties.md)

DATA = """
[states.s]
id = 1
[[patch]]
name = "a"
replace = true
states = { s = 1 }
uses = ["s"]
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_patch = ["save s", "modify s"]
[[patch]]
name = "b"
replace = true
states = { s = 2 }
[patch.objects.vmlinux]
post_patch = ["take s if prev s", "free s", "restore s"]
"""


def test_failed_alloc_leaves_data_null_and_returns_enomem(sim):
    s = sim(DATA)
    out = s.do("load a", fail=[("a", "vmlinux")])
    assert not any(isinstance(e, Failed) for e in out.events) and any(isinstance(e, AllocFailed) for e in out.events)
    assert s.state["ptr[a.s]"] == 0 and s.phase("a") == "unloaded"


def test_take_shares_the_block_and_a_freed_block_keeps_its_content(sim):
    s = sim(DATA)
    s.do("load a"); s.do("complete")
    s.do("load b")
    out = s.do("complete")
    # take: b points at a's block; free; restore reads the freed block (last content: original)
    assert Sim.violations(out) == ["no-use-after-free"]
    assert s.state["val[s]"] == 0                       # restored the original from the freed block



# ------------------------------------------------------------ fidelity fixes (issue 10)

SCOPE = """
[states.s]
id = 1
[[patch]]
name = "base"
replace = true
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_unpatch = ["free s unless prev s"]
[[patch]]
name = "hotfix"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_unpatch = ["free s"]
"""


def test_a_replace_patch_replaces_only_the_patches_before_it_4_2(sim):
    """klp_unpatch_replaced_patches / klp_free_replaced_patches_async stop at the transition
    patch: after a reversed disable of `base`, `hotfix` (loaded after it) stays (§17 item 13)."""
    s = sim(SCOPE)
    s.do("load base"); s.do("complete"); s.do("load hotfix"); s.do("complete")
    assert s.order() == ["base", "hotfix"]
    s.do("disable base"); s.do("reverse")
    out = s.do("complete")
    assert s.order() == ["base", "hotfix"] and s.phase("hotfix") == "enabled"
    assert s.state["ptr[hotfix.s]"] != 0                     # keeps its data: nothing leaks
    assert Sim.violations(out) == []
    assert not any(isinstance(e, Replaced) for e in out.events)


def test_a_replace_patch_drops_the_older_patches_and_keeps_the_newer_positions_4_2(sim):
    s = sim(FORCE)
    s.do("load a"); s.do("complete"); s.do("load r"); s.do("complete")
    assert s.order() == ["r"]
    s.do("load b"); s.do("complete")
    s.do("disable r"); s.do("reverse"); s.do("complete")
    assert s.order() == ["r", "b"] and s.state["pos[r]"] == 0 and s.state["pos[b]"] == 1


OWN = """
[states.s]
id = 1
[modules.m]
[[patch]]
name = "old"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
[patch.objects.m]
pre_patch = ["take s if prev s"]
[[patch]]
name = "new"
states = { s = 1 }
uses = ["s"]
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
"""


def test_take_of_the_callers_own_state_is_a_no_op_12(sim):
    """klp_get_prev_state returns old's own state in old's module callback while `new` is in
    transition; state->data = prev_state->data changes nothing (§17 item 14)."""
    s = sim(OWN)
    s.do("load old"); s.do("complete"); s.do("load new")
    before = s.state["ptr[old.s]"]
    out = s.do("modload m")
    assert Sim.prev_seen(out) == [("take s if prev s", ("s", "old"))]
    assert s.state["ptr[old.s]"] == before and s.state[f"live[s#{before - 1}]"]
    assert Sim.violations(out) == []
    assert Sim.violations(s.do("complete")) == []


REPEATED = """
[states.s]
id = 1
[[patch]]
name = "p"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s", "modify s", "alloc s"]
pre_patch_error = ["free s"]
"""


def test_each_fallible_statement_is_its_own_choice_even_on_one_line(sim, write_spec):
    """Two `alloc s` in one callback are two choices (patch, object, callback, index): the
    second failing after the first succeeded is explored, and it breaks error-cleanup."""
    from klpmodel import interp
    s = sim(REPEATED)
    outs = interp.outcomes(s.model, s.state, parse_op("load p"))
    failed = sorted(tuple(k[:4] for k in o.failed_choices) for o in outs)
    assert failed == [(), (("p", "vmlinux", "pre_patch", 0),), (("p", "vmlinux", "pre_patch", 2),)]
    second = next(o for o in outs if o.failed_choices and o.failed_choices[0].index == 2)
    assert "error-cleanup" in Sim.violations(second)          # the value stays modified
    one_line = write_spec(REPEATED.replace('pre_patch = ["alloc s", "modify s", "alloc s"]',
                                           'pre_patch = ["maybe-fail", "save s", "maybe-fail"]'), "one.toml")
    s1 = Sim(one_line)
    keys = {k[:4] for o in interp.outcomes(s1.model, s1.state, parse_op("load p")) for k in o.choices}
    assert keys == {("p", "vmlinux", "pre_patch", 0), ("p", "vmlinux", "pre_patch", 2)}


BUSY = """
[modules.busy]
loaded = true
params = { block = 1 }
sleeps = { function = "work", while = "block" }
[[patch]]
name = "p"
[patch.objects.busy]
funcs = ["work"]
post_patch = ['log "patched"']
"""


def test_force_ends_a_transition_that_a_sleeping_task_holds_6_4_11(sim):
    s = sim(BUSY)
    s.do("load p")
    assert s.refusal("complete").startswith("the transition cannot complete")
    s.do("force")
    assert s.refusal("complete") is None                     # every task was switched
    s.do("reverse")                                          # klp_start_transition: pending again
    assert s.refusal("complete") is None                     # (unpatching is not held, see notes)
    s.do("reverse")
    assert s.refusal("complete").startswith("the transition cannot complete")
    s.do("force"); s.do("complete")
    assert s.phase("p") == "enabled"
    s.do("disable p"); s.do("complete"); s.do("rmmod p"); s.do("load p")     # a new transition: held again
    assert s.refusal("complete").startswith("the transition cannot complete")


def test_disable_during_its_own_patching_transition_is_a_reversal_6_1(sim):
    s = sim(TWO)
    s.do("load b")
    out = s.do("disable b")
    assert s.phase("b") == "unpatching" and Sim.callbacks(out) == []
    assert Sim.log(s.model, out) == ["livepatch: 'b': reversing transition from patching to unpatching",
                                     "livepatch: 'b': starting unpatching transition"]
    assert s.refusal("disable b") == "-EINVAL: b is not enabled"     # 0 during unpatching: -EINVAL


FAULT = """
[check]
faults = ["patching"]
[states.s]
id = 1
[modules.m]
[[patch]]
name = "p"
states = { s = 1 }
[patch.objects.vmlinux]
funcs = ["cmdline_proc_show"]
pre_patch = ["alloc s"]
post_unpatch = ["free s"]
[patch.objects.m]
pre_patch = ['log "m pre"']
post_patch = ['log "m post"']
post_unpatch = ['log "m post_unpatch"']
"""


def test_patching_an_object_can_fail_in_klp_enable_patch_16_3_1(sim):
    """The object's pre_patch succeeded, so its post_unpatch runs on the error path; the
    load fails with -EBUSY (test-kprobe.sh, test-ftrace.sh)."""
    s = sim(FAULT)
    out = s.do("load p", fail=[("p", "vmlinux", "patching", 0)])
    assert Sim.callbacks(out) == ["p:pre_patch(vmlinux)", "p:post_unpatch(vmlinux)"]
    assert Sim.log(s.model, out) == [
        "livepatch: enabling patch 'p'", "livepatch: 'p': initializing patching transition",
        "livepatch: failed to register ftrace handler for function 'cmdline_proc_show' (-16)",
        "livepatch: failed to patch object 'vmlinux'", "livepatch: failed to enable patch 'p'",
        "livepatch: 'p': canceling patching transition, going to unpatch",
        "livepatch: 'p': completing unpatching transition", "livepatch: 'p': unpatching complete",
        "insmod: ERROR: could not insert module test_modules/p.ko: Device or resource busy"]
    assert s.phase("p") == "unloaded" and Sim.violations(out) == []


def test_a_failed_patching_is_judged_by_error_cleanup_16(sim):
    s = sim(FAULT.replace('post_unpatch = ["free s"]', 'post_unpatch = []'))
    out = s.do("load p", fail=[("p", "vmlinux", "patching", 0)])
    assert Sim.violations(out) == ["error-cleanup", "no-leak"]     # the block allocated stays live


def test_patching_a_coming_module_can_fail_9_1_16(sim):
    s = sim(FAULT)
    s.do("load p"); s.do("complete")
    out = s.do("modload m", fail=[("p", "m", "patching", 0)])
    assert Sim.callbacks(out) == ["p:pre_patch(m)", "p:post_unpatch(m)"]
    assert Sim.log(s.model, out)[:2] == ["livepatch: applying patch 'p' to loading module 'm'", "p: m pre"]
    assert Sim.log(s.model, out)[2:] == [
        "livepatch: failed to apply patch 'p' to module 'm' (-16)", "p: m post_unpatch",
        "livepatch: patch 'p' failed for module 'm', refusing to load module 'm'",
        "insmod: ERROR: could not insert module test_modules/m.ko: Device or resource busy"]
    assert not s.state["mod[m]"]


def test_the_patching_fault_is_off_unless_asked_for_16(sim, write_spec):
    from klpmodel import interp
    s = sim(FAULT.replace('faults = ["patching"]', ""))
    assert all(k.callback != "patching" for o in interp.outcomes(s.model, s.state, parse_op("load p"))
               for k in o.choices)
    s2 = Sim(write_spec(FAULT.replace('faults = ["patching"]', ""), "x.toml"), faults=("patching",))
    assert len(interp.outcomes(s2.model, s2.state, parse_op("load p"))) == 3


NOPS = """
[modules.m]
[[patch]]
name = "old"
[patch.objects.m]
pre_patch = ['log "old m"']
[[patch]]
name = "cumul"
replace = true
"""


def test_a_replace_patchs_nop_objects_are_applied_and_reverted_during_its_transition_7_9(sim):
    s = sim(NOPS)
    s.do("load old"); s.do("complete"); s.do("load cumul")
    assert Sim.log(s.model, s.do("modload m")) == ["livepatch: applying patch 'old' to loading module 'm'",
                                                   "old: old m",
                                                   "livepatch: applying patch 'cumul' to loading module 'm'"]
    assert Sim.log(s.model, s.do("modunload m")) == ["livepatch: reverting patch 'old' on unloading module 'm'",
                                                     "livepatch: reverting patch 'cumul' on unloading module 'm'"]
    s.do("complete")                                         # the nop objects are freed
    assert Sim.log(s.model, s.do("modload m")) == []


REPLACE_PARAM = """
[[patch]]
name = "a"
[[patch]]
name = "r"
params = { replace = 0 }
replace_param = "replace"
"""


def test_replace_is_read_once_at_init_7(sim):
    from klpmodel.kernel import Op
    s = sim(REPLACE_PARAM)
    s.do("load a"); s.do("complete")
    from klpmodel import interp
    out = interp.apply(s.model, s.state, Op("load", "r", (("replace", 1),)))
    s.state = out.state
    s.state = interp.apply(s.model, s.state, Op("param", "r replace 0")).state   # written later: no effect
    s.do("complete")
    assert s.order() == ["r"]


PARAMS = """
[[patch]]
name = "p"
params = { ret = 0 }
[patch.objects.vmlinux]
pre_patch = ["fail ret"]
"""


def test_a_module_loaded_again_starts_from_its_parameters_defaults_10(sim):
    """rmmod frees the module; insmod makes a new instance whose parameters are the ones on
    the insmod line or their defaults (load_module() parses only mod->args)."""
    from klpmodel import interp
    from klpmodel.kernel import Op
    s = sim(PARAMS)
    s.do("load p"); s.do("reverse"); s.do("complete")
    s.state = interp.apply(s.model, s.state, Op("param", "p ret -19")).state
    s.do("rmmod p")
    out = s.do("load p")
    assert s.phase("p") == "patching" and not any(isinstance(e, Failed) for e in out.events)


NOP_FUNC = """
[check]
faults = ["patching"]
[modules.m]
loaded = true
[[patch]]
name = "a"
[patch.objects.m]
funcs = ["f"]
[[patch]]
name = "r"
replace = true
[patch.objects.m]
"""


def test_the_failing_function_of_a_replace_patch_can_be_a_nop_7_16(sim):
    """klp_add_object_nops gives r's object m a nop function f (a has f, r does not); the
    patching fault fails the first function on m's func_list, that nop (found by the
    independent reference, D11)."""
    s = sim(NOP_FUNC)
    s.do("load a"); s.do("complete")
    out = s.do("load r", fail=[("r", "m", "patching", 0)])
    assert Sim.log(s.model, out)[2:4] == ["livepatch: failed to register ftrace handler for function 'f' (-16)",
                                          "livepatch: failed to patch object 'm'"]


NOP_OLDER = """
[check]
faults = ["patching"]
[modules.m]
[[patch]]
name = "r1"
replace = true
[patch.objects.m]
[[patch]]
name = "b"
[patch.objects.m]
funcs = ["f"]
[[patch]]
name = "r2"
replace = true
[patch.objects.m]
"""


def test_only_the_patch_being_initialized_has_nop_functions_7(sim):
    """klp_init_patch -> klp_add_nops(patch) gives nops to the patch being loaded only, and
    klp_discard_nops frees them when its transition completes: while r2 is in transition,
    the older, completed r1 has no nop function for b's f (found by the independent
    reference, D13)."""
    s = sim(NOP_OLDER)
    s.do("load r1"); s.do("complete"); s.do("load b"); s.do("complete"); s.do("load r2")
    out = s.do("modload m", fail=[("r1", "m", "patching", 0)])
    assert Sim.log(s.model, out)[:2] == ["livepatch: applying patch 'r1' to loading module 'm'",
                                         "livepatch: failed to apply patch 'r1' to module 'm' (-16)"]


def test_the_list_walk_of_klp_get_prev_state_is_the_formula_12(write_spec):
    """The concrete fast path (state.c's walk of klp_patches) and the formula the Z3
    encoding uses give the same answer on every reachable state of a mixed series."""
    from klpmodel.backend import Concrete
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.kernel import Model

    spec = write_spec("""
[states.s]
id = 1
[states.t]
id = 2
[[patch]]
name = "a"
states = { s = 1 }
[[patch]]
name = "b"
replace = true
states = { s = 1, t = 1 }
[[patch]]
name = "c"
states = { s = 2, t = 1 }
[[patch]]
name = "d"
states = { t = 2 }
""")
    from klpmodel.spec import load_spec
    m = Model(load_spec(spec))
    eng = ExplicitEngine(m, symmetry=False, keep_graph=True)
    eng.run(6, [])
    assert eng.states > 50
    for state in eng.values.values():
        rules = m.profile(m, Concrete(dict(state)))
        for s_ in m.state_names:
            assert rules._prev_walk(s_) == [(q, bool(x)) for q, x in rules._prev_formula(s_)], (state, s_)
    # and on arbitrary states, as prove's counterexamples to induction are: two patches in
    # transition, two listed at one position (a walk that stopped at the first of either
    # disagreed with the formula, and prove's replay of a counterexample failed)
    import random

    from klpmodel.events import PHASES
    rnd = random.Random(12)
    base = dict(next(iter(eng.values.values())))
    for _ in range(3000):
        state = dict(base)
        for i in range(m.n):
            state[m.v.phase[i]] = rnd.randrange(len(PHASES))
            state[m.v.pos[i]] = rnd.randrange(m.n + 1)
        rules = m.profile(m, Concrete(state))
        for s_ in m.state_names:
            assert rules._prev_walk(s_) == [(q, bool(x)) for q, x in rules._prev_formula(s_)], (state, s_)


# ------------------------------------------------------------ the replace-set profile (proposals.md §B.6)

SETS = """
kernel = "replace-set"
[states.s]
id = 1
[states.h]
id = 2
[[patch]]
name = "v1"
states = { s = 1 }
[patch.objects.vmlinux]
funcs = ["f"]
pre_patch = ["alloc s"]
post_patch = ["free-prev s if prev s"]
post_unpatch = ["free s"]
[[patch]]
name = "hot"
replace_set = 1
states = { h = 1 }
[patch.objects.vmlinux]
funcs = ["g"]
pre_patch = ["alloc h"]
post_unpatch = ["free h"]
[[patch]]
name = "hot2"
replace_set = 2
[[patch]]
name = "v2"
states = { s = 2 }
[patch.objects.vmlinux]
funcs = ["f"]
pre_patch = ["alloc s"]
post_patch = ["free-prev s if prev s"]
post_unpatch = ["free s"]
"""


def test_replace_set_a_patch_replaces_only_the_patches_of_its_set_b6(sim):
    """v2 2/4: klp_unpatch_replaced_patches and klp_free_replaced_patches_async skip the
    other sets; the patches left close the gaps in klp_patches."""
    s = sim(SETS)
    for p in ("hot", "v1", "hot2", "v2"):
        s.do(f"load {p}"); out = s.do("complete")
    assert [e.patch for e in out.events if isinstance(e, Replaced)] == ["v1"]
    assert s.order() == ["hot", "hot2", "v2"] and s.phase("v1") == "off-list"
    assert [s.state[f"pos[{p}]"] for p in ("hot", "hot2", "v2")] == [0, 1, 2]
    assert s.state["ptr[hot.h]"] != 0 and Sim.violations(out) == []     # hot keeps its data


def test_replace_set_and_mainline_differ_on_one_spec(write_spec):
    """Without replace keys every patch is in set 0 under replace-set, so the second
    replaces the first; under mainline the two stack."""
    path = write_spec("[[patch]]\nname = \"a\"\n[[patch]]\nname = \"b\"\n")
    for profile, order in (("replace-set", ["b"]), ("mainline", ["a", "b"])):
        s = Sim(path, profile=profile)
        s.do("load a"); s.do("complete"); s.do("load b"); s.do("complete")
        assert s.order() == order, profile


def test_replace_set_compatibility_within_and_across_sets_b6(sim):
    from dataclasses import replace as dc_replace
    s = sim(SETS)
    s.do("load hot"); s.do("complete")
    assert s.refusal("load v1") is None                       # another set, other state and function
    s.do("load v1"); s.do("complete")
    assert s.refusal("load hot2") is None and s.refusal("load v2") is None
    c = s.model.profile.compatible
    v1, hot, v2 = (s.model.spec.patch(n) for n in ("v1", "hot", "v2"))
    assert c(v1, v2, True)[1].rule == "version"               # same set, lower version: as mainline
    assert c(hot, v1, True)[1].rule == "undeclared-in-set"   # same set: must carry every state
    shares_h = dc_replace(hot, name="x", replace_set=3)
    assert c(shares_h, hot, False)[1].rule == "shared-state"  # other sets: no common state id
    shares_f = dc_replace(v2, name="y", states=(), replace_set=3)
    assert str(c(shares_f, v1, False)[1]) == "y patches f, also patched by installed v1, of another replace_set"
    assert c(s.model.spec.patch("hot2"), v1, False) == (True, None)


def test_replace_set_force_marks_only_the_other_patches_of_the_set_b6(sim):
    """v2 2/4 (after Sashiko on the RFC): patching, force marks the other patches of the
    transition patch's set, not the transition patch, not other sets."""
    s = sim(SETS)
    s.do("load v1"); s.do("complete"); s.do("load hot"); s.do("complete"); s.do("load v2")
    s.do("force")
    assert s.state["forced[v1]"] and not s.state["forced[hot]"] and not s.state["forced[v2]"]
    s.do("complete"); s.do("disable hot"); s.do("complete")
    assert s.refusal("rmmod hot") is None
    assert s.refusal("rmmod v1") == "module v1 is in use for ever: its patch was forced"


def test_replace_set_nops_only_for_the_objects_of_its_set_b6(sim):
    s = sim("""
kernel = "replace-set"
[modules.m]
[modules.n]
[[patch]]
name = "a"
[patch.objects.m]
[[patch]]
name = "other"
replace_set = 1
[patch.objects.n]
[[patch]]
name = "r"
""")
    s.do("load a"); s.do("complete"); s.do("load other"); s.do("complete"); s.do("load r")
    assert Sim.log(s.model, s.do("modload m"))[-1] == "livepatch: applying patch 'r' to loading module 'm'"
    assert not any("'r'" in line for line in Sim.log(s.model, s.do("modload n")))


def test_replace_set_sysfs_b6(sim, write_spec):
    """replace_set (%u) replaces replace; stack_order is gone (v2 3/4)."""
    from klpmodel import kernel
    from klpmodel.backend import Concrete
    s = sim(SETS)
    s.do("load hot"); s.do("complete")
    read = lambda rel: kernel.sysfs_read(s.model, Concrete(dict(s.state)), "hot", rel)  # noqa: E731
    assert (read("replace_set"), read("replace"), read("stack_order"), read("enabled")) == ("1", None, None, "1")
    assert kernel.sysfs_mode(s.model, Concrete(dict(s.state)), "hot", "replace_set") == "-r--r--r--"
    m = Sim(write_spec(COMPAT))                                   # mainline: no replace_set
    m.do("load plain"); m.do("complete")
    assert kernel.sysfs_read(m.model, Concrete(dict(m.state)), "plain", "replace_set") is None


def test_replace_set_refuses_the_keys_it_cannot_express(write_spec):
    from klpmodel.errors import UserError
    from klpmodel.kernel import Model
    from klpmodel.spec import load_spec
    path = write_spec("[[patch]]\nname = \"a\"\nreplace = true\n")
    with pytest.raises(UserError) as e:
        Model(load_spec(path), profile="replace-set")
    assert str(e.value).startswith(f"{path}:3: patch 'a': kernel profile 'replace-set' has no replace")
    path = write_spec("[[patch]]\nname = \"a\"\nreplace_set = 1\n")
    with pytest.raises(UserError) as e:
        Model(load_spec(path))
    assert str(e.value).startswith(f"{path}:3: patch 'a': replace_set is a key of kernel = \"replace-set\"")


def test_replace_set_refusals_summarised_by_rule(write_spec):
    from klpmodel.kernel import Model
    from klpmodel.report import refused_rules
    from klpmodel.spec import load_spec
    m = Model(load_spec(write_spec('''kernel = "replace-set"
[states.s]
id = 1
[[patch]]
name = "v1"
states = { s = 1 }
[patch.objects.vmlinux]
funcs = ["f"]
[[patch]]
name = "v2"
[[patch]]
name = "hot"
replace_set = 1
[patch.objects.vmlinux]
funcs = ["f"]
''')))
    assert sorted(refused_rules(m)) == ["hot patches f, also patched by installed v1, of another replace_set",
                                        "v1 patches f, also patched by installed hot, of another replace_set",
                                        "v2 does not declare state s of installed v1, of the same replace_set"]


# ------------------------------------------------------------ the state-callbacks profile (proposals.md §A.4)

STATECB = """
kernel = "state-callbacks"
[states.s]
id = 1
is_shadow = true
pre_patch    = ['log "pre_patch s"', "shadow-alloc sv"]
post_patch   = ['log "post_patch s"']
pre_unpatch  = ['log "pre_unpatch s"']
post_unpatch = ['log "post_unpatch s"']
shadow_dtor  = ['log "dtor s"']
[states.t]
id = 2
block_disable = true
pre_patch    = ['log "pre_patch t"']
[shadows.sv]
id = 1
[[patch]]
name = "a"
states = { s = 1 }
shadows = { sv = "int" }
[[patch]]
name = "b"
states = { s = 1 }
shadows = { sv = "int" }
[[patch]]
name = "c"
replace = true
[[patch]]
name = "blk"
states = { t = 1 }
"""


def _texts(s, out):
    return [line.split(": ", 1)[1] for line in Sim.log(s.model, out) if not line.startswith("livepatch:")]


def test_state_callbacks_run_once_for_two_patches_declaring_the_id_a4(sim):
    """§A.4.2/§A.4.4: a state's callbacks run only when no other listed patch declares its id:
    pre_patch for the first patch, post_unpatch and the shadow free for the last one."""
    s = sim(STATECB)
    assert _texts(s, s.do("load a")) == ["pre_patch s"]
    assert _texts(s, s.do("complete")) == ["post_patch s"]
    assert _texts(s, s.do("load b")) == [] and _texts(s, s.do("complete")) == []
    assert _texts(s, s.do("disable a")) == [] and _texts(s, s.do("complete")) == []
    assert s.state["shadow[sv]"]                       # b still owns the state
    assert _texts(s, s.do("disable b")) == ["pre_unpatch s"]
    assert _texts(s, s.do("complete")) == ["post_unpatch s", "dtor s"]
    assert not s.state["shadow[sv]"]                  # is_shadow: klp_shadow_free_all (§A.4.3)


def test_state_callbacks_and_mainline_differ_on_one_spec(write_spec):
    """The same two patches with the same callbacks: mainline runs the per-object callbacks
    of each patch, state-callbacks runs the state's once."""
    body = '[states.s]\nid = 1\n[[patch]]\nname = "a"\nstates = { s = 1 }\n[[patch]]\nname = "b"\nstates = { s = 1 }\n'
    main = Sim(write_spec(body.replace('states = { s = 1 }\n', 'states = { s = 1 }\n[patch.objects.vmlinux]\n'
                                       'pre_patch = [\'log "pre_patch s"\']\n')))
    mine = Sim(write_spec('kernel = "state-callbacks"\n' + body.replace("id = 1\n", "id = 1\npre_patch = ['log \"pre_patch s\"']\n")))
    for s in (main, mine):
        s.do("load a"); s.do("complete")
    assert _texts(main, main.do("load b")) == ["pre_patch s"]
    assert _texts(mine, mine.do("load b")) == []


def test_state_callbacks_replace_runs_the_replaced_patches_callbacks_a4_8(sim):
    """§A.4.8: a cumulative patch that drops s (carried by one old patch) runs the old patch's
    pre_unpatch at its enable and post_unpatch (then the shadow free) at its completion; a
    reversal runs the old patch's post_patch again (§A.4.3 UNPATCHED 2)."""
    s = sim(STATECB)
    s.do("load a"); s.do("complete")
    out = s.do("load c")
    assert _texts(s, out) == ["pre_unpatch s"] and Sim.log(s.model, out)[-1].endswith("starting patching transition")
    s.do("reverse")
    assert _texts(s, s.do("complete")) == ["post_patch s"]            # reversal: re-enabled
    s.do("rmmod c"); s.do("load c")
    assert _texts(s, s.do("complete")) == ["post_unpatch s", "dtor s"]
    assert s.order() == ["c"] and not s.state["shadow[sv]"]


def test_state_callbacks_shared_state_leaks_on_replace_a4_8(sim):
    """§A.4.8 last row (Sashiko finding 1): two old patches carry s, the cumulative c drops it:
    each sees the other, nothing runs, the shadow variable is left: shadow-leak once both go."""
    s = sim(STATECB)
    for p in ("a", "b"):
        s.do(f"load {p}"); s.do("complete")
    assert _texts(s, s.do("load c")) == [] and _texts(s, s.do("complete")) == []
    s.do("rmmod a")
    assert Sim.violations(s.do("rmmod b")) == ["shadow-leak"]


def test_state_callbacks_block_disable_refuses_disable_and_reversal_a4_4(sim):
    s = sim(STATECB)
    s.do("load blk")
    assert s.refusal("disable blk") == "-EINVAL: blk has a block_disable state"    # no reversal either
    assert s.refusal("reverse") == "-EINVAL: blk has a block_disable state"
    assert s.refusal("disable blk").lines("disable", "blk") == [
        "livepatch: The livepatch 'blk' does not support disable", "echo: write error: Invalid argument"]
    s.do("complete")
    assert s.refusal("disable blk").startswith("-EINVAL: blk has a block_disable state")
    assert s.refusal("load c").startswith("-EINVAL: not compatible")   # §A.4.2: c drops t


def test_state_callbacks_failing_pre_patch_skips_its_post_unpatch_a4_2(sim):
    s = sim(STATECB.replace("""pre_patch    = ['log "pre_patch t"']""", """pre_patch    = ['log "pre_patch t"', "maybe-fail -ENODEV"]
post_unpatch = ['log "post_unpatch t"']"""))
    out = s.do("load blk", fail=[("blk", "state 2")])
    assert s.phase("blk") == "unloaded" and _texts(s, out)[:1] == ["pre_patch t"]
    assert "post_unpatch t" not in _texts(s, out)


def test_state_callbacks_refuses_what_v1_removed(write_spec):
    from klpmodel.errors import UserError
    from klpmodel.kernel import Model
    from klpmodel.spec import load_spec
    cases = [('[[patch]]\nname = "a"\n[patch.objects.vmlinux]\npre_patch = ["return"]\n', 5, "no per-object callbacks"),
             ('[states.s]\nid = 1\npre_patch = ["alloc s"]\n[[patch]]\nname = "a"\nstates = { s = 1 }\n', 4,
              "no klp_state.data"),
             ('[states.s]\nid = 1\n[[patch]]\nname = "a"\nstates = { s = 1 }\n[[patch]]\nname = "b"\nstates = { s = 2 }\n',
              7, "no klp_state.version"),
             # (not removed by v1, but the model needs it) a shadow variable of a state callback: in every
             # patch running it, with its layout -- it crashed the model before (KeyError)
             ('[states.s]\nid = 1\npre_patch = ["log \\"x\\" if shadow v"]\n[shadows.v]\nid = 2\n[[patch]]\nname = "a"\n'
              'states = { s = 1 }\nshadows = { v = "l1" }\n[[patch]]\nname = "b"\nstates = { s = 1 }\n', 4,
              "names shadow variable 'v', which patch 'b' (it declares the state) does not list")]
    for text, line, words in cases:
        path = write_spec('kernel = "state-callbacks"\n' + text)
        with pytest.raises(UserError) as e:
            Model(load_spec(path))
        assert str(e.value).startswith(f"{path}:{line}:") and words in str(e.value), str(e.value)
    path = write_spec('[states.s]\nid = 1\nblock_disable = true\n[[patch]]\nname = "a"\n')
    with pytest.raises(UserError) as e:
        Model(load_spec(path))
    assert str(e.value).startswith(f"{path}:3: state 's': block_disable is a key of kernel = \"state-callbacks\"")


def test_state_callbacks_version_order_and_data_properties_are_not_applicable():
    from klpmodel.kernel import PROFILES
    names = {p.name for p in PROFILES["state-callbacks"].PROPERTIES}
    assert not names & {"version-order", "no-leak", "no-use-after-free", "no-double-free", "no-null-deref"}
    assert {"revert-restores", "disable-restores", "error-cleanup"} <= names


def test_state_callbacks_reversed_disable_runs_post_patch_again_a4_5(sim):
    """§A.4.5: pre_unpatch ran when the disable started; reversed, the completion (PATCHED)
    runs post_patch again and no pre_patch; the shadow variable stays."""
    s = sim(STATECB)
    s.do("load a"); s.do("complete")
    assert _texts(s, s.do("disable a")) == ["pre_unpatch s"]
    assert _texts(s, s.do("reverse")) == []
    assert _texts(s, s.do("complete")) == ["post_patch s"]
    assert s.phase("a") == "enabled" and s.state["shadow[sv]"]


def test_state_callbacks_block_disable_leaves_a_non_replace_load_alone_a4_2(sim):
    s = sim(STATECB)
    s.do("load blk"); s.do("complete")
    assert s.refusal("load a") is None                  # a non-replace patch is always compatible


def test_replace_set_refuses_per_state_callbacks(write_spec):
    """replace-set (v2) has no per-state callbacks, block_disable or is_shadow: a [states.S]
    key of state-callbacks is refused with its line, not silently ignored (it made the
    side-by-side column of specs/proposals/finding2-state-callbacks.toml say "holds")."""
    from klpmodel.errors import UserError
    from klpmodel.kernel import Model
    from klpmodel.spec import load_spec
    path = write_spec('kernel = "replace-set"\n[states.s]\nid = 1\npost_unpatch = [\'log "x"\']\n'
                      '[[patch]]\nname = "a"\nstates = { s = 1 }\n')
    with pytest.raises(UserError) as e:
        Model(load_spec(path))
    assert str(e.value).startswith(f"{path}:4: state 's': post_unpatch is a key of kernel = \"state-callbacks\"")
    assert "not of kernel profile 'replace-set'" in str(e.value)


SPEAKER = """
[modules.m]
params = { block = false }
[modules.m.sleeps]
function = "work"
while = "block"
wake = ['log "woken"', 'call greet " <- from the sleeper"']
[modules.m.code]
greet = ['log "hello{arg}"']
work = ['log "work"']
[[patch]]
name = "p"
[patch.objects.m]
funcs = ["greet", "work"]
[patch.code]
greet = ['log "patched hello{arg}"']
work = ['log "patched work"']
"""


def test_a_sleeping_task_holds_the_transition_out_of_the_version_it_sleeps_in_11(write_spec):
    """(issue 15, proposals.md §A.6.1.4-5) klp_check_stack: a task sleeping in the original
    `work` holds p's patching transition, not its unpatching one; sleeping in p's `work` (it
    went to sleep after p was enabled) it holds p's unpatching transition, and a reversal to
    patching lets it go. Woken, it runs the code version of its own patch state (the one it
    started from while it holds the transition); a new task runs the target's."""
    from klpmodel import interp, simulate
    from klpmodel.kernel import Model
    from klpmodel.spec import load_spec

    m = Model(load_spec(write_spec(SPEAKER)))

    def go(text):
        st = interp.initial(m)
        lines = []
        for r in simulate.parse_run(text, m, "run"):
            if r.op.word in simulate.SCRIPT_WORDS:
                lines += simulate._script(m, st, r)[0]
                continue
            why = interp.refusal(m, st, r.op)
            if why is not None:
                lines.append(f"refused: {why}")
                continue
            out = interp.apply(m, st, r.op)
            st = out.state
            lines += [line for line in Sim.log(m, out) if not line.startswith("livepatch:")]
        return lines

    held = "refused: the transition cannot complete: a task of m sleeps in work"
    # asleep in the original: holds patching, not its reversal; woken, it runs the original
    log = go("modload m block=1; load p; complete; reverse; complete; rmmod p; load p; complete; param m block=0; complete")
    assert log == ["m: work", held, held, "m: woken", "m: hello <- from the sleeper"], log
    # asleep in p's version: holds the unpatching transition; a new task runs the original
    # meanwhile, the woken task p's version; reversed to patching, nothing holds it
    log = go("load p; complete; modload m block=1; read-param m/x greet; disable p; complete; "
             "read-param m/x greet; param m block=0; complete")
    assert log == ["p: patched work", "% cat /sys/module/m/parameters/x", "p: patched hello", held,
                   "% cat /sys/module/m/parameters/x", "m: hello", "m: woken", "p: patched hello <- from the sleeper"], log
    assert go("load p; complete; modload m block=1; disable p; complete; reverse; complete").count(held) == 1
    # force switched it: woken, it runs the target's code (the original while unpatching)
    assert go("load p; complete; modload m block=1; disable p; force; param m block=0")[-2:] == \
        ["m: woken", "m: hello <- from the sleeper"]


INIT_STATES = """
kernel = "state-callbacks"
[states.s]
id = 1
pre_patch = ['log "pre"']
[[patch]]
name = "old"
replace = true
states = { s = 1 }
params = { bd = false }
block_disable_param = { s = "bd" }
[[patch]]
name = "new"
replace = true
states = { s = 1 }
params = { none = false }
no_states_param = "none"
"""


def test_the_init_builds_the_states_array_from_parameters_A_6_3_4(write_spec):
    """(issue 15, test_klp_state.c of the per-state callbacks series) block_disable_param and
    no_states_param are read at the module's init: the installed instance's block_disable
    refuses its disable and a cumulative instance without the state; without the parameter
    both go through, and the instance with its states keeps the state (no callback)."""
    from klpmodel import interp, simulate
    from klpmodel.kernel import Model
    from klpmodel.spec import load_spec

    m = Model(load_spec(write_spec(INIT_STATES)))

    def go(text):
        st, out = interp.initial(m), []
        for r in simulate.parse_run(text, m, "run"):
            why = interp.refusal(m, st, r.op)
            if why is not None:
                out.append(f"refused: {why.kernel or why}")
                continue
            o = interp.apply(m, st, r.op)
            st = o.state
            out += [line for line in Sim.log(m, o) if not line.startswith("livepatch: '")]
        return out

    assert go("load old bd=1; complete; disable old; load new none=1; load new; complete") == [
        "livepatch: enabling patch 'old'", "old: pre",
        "refused: livepatch: The livepatch 'old' does not support disable",
        "refused: livepatch: Livepatch patch (new) is not compatible with the already installed livepatches.",
        "livepatch: enabling patch 'new'"]
    assert go("load old; complete; load new none=1; complete; disable new; complete") == [
        "livepatch: enabling patch 'old'", "old: pre", "livepatch: enabling patch 'new'"]


def test_state_callbacks_refuses_a_shadow_dtor_that_takes_the_shadow_lock(write_spec):
    """klp_shadow_free_all() calls the dtor with klp_shadow_lock held (shadow.c): a dtor that
    allocates or frees a shadow variable would take it again. Refused with the line; a dtor
    that only reads (shadow-get, rcu) is accepted."""
    from klpmodel.errors import UserError
    from klpmodel.kernel import Model
    from klpmodel.spec import load_spec
    body = ('kernel = "state-callbacks"\n[shadows.sv]\nid = 5\n[states.s]\nid = 1\nis_shadow = true\n'
            'shadow_dtor = [\'log "dtor"\',\n               "ACTION sv"]\n'
            '[[patch]]\nname = "a"\nstates = { s = 1 }\nshadows = { sv = "x" }\n')
    for action in ("shadow-free", "shadow-alloc", "shadow-free-all", "put"):
        path = write_spec(body.replace("ACTION", action))
        with pytest.raises(UserError) as e:
            Model(load_spec(path))
        assert str(e.value).startswith(f"{path}:8: {action} in shadow_dtor: the dtor runs under klp_shadow_lock"), str(e.value)
    Model(load_spec(write_spec(body.replace("ACTION", "shadow-get"))))
