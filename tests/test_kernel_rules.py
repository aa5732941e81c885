"""Each mainline kernel rule, pinned on the concrete interpreter (the same kernel.step the
Z3 engine encodes). Section numbers are those of ../shared/kernel/semantics.md."""
from __future__ import annotations

import pytest
from sim import Sim

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
    assert s.refusal("disable b") == "b is in its own patching transition: that is `reverse`"
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

def test_force_marks_every_listed_patch_and_pins_its_module_6_4(sim):
    s = sim(TWO)
    assert s.refusal("force") == "-EINVAL: no transition is in progress"
    s.do("load a"); s.do("complete"); s.do("load b")
    assert Sim.callbacks(s.do("force")) == []               # completes nothing by itself
    assert s.phase("b") == "patching"
    assert s.state["forced[a]"] and s.state["forced[b]"]
    assert Sim.callbacks(s.do("complete")) == ["b:post_patch(vmlinux)"]
    s.do("disable b"); s.do("complete")
    assert s.refusal("rmmod b") == "module b is in use for ever: its patch was forced"


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
    assert ("failed" not in [e[0] for e in out.events]) and any(e[0] == "alloc-failed" for e in out.events)
    assert s.state["ptr[a.s]"] == 0 and s.phase("a") == "unloaded"


def test_take_shares_the_block_and_a_freed_block_keeps_its_content(sim):
    s = sim(DATA)
    s.do("load a"); s.do("complete")
    s.do("load b")
    out = s.do("complete")
    # take: b points at a's block; free; restore reads the freed block (last content: original)
    assert Sim.violations(out) == ["no-use-after-free"]
    assert s.state["val[s]"] == 0                       # restored the original from the freed block

