"""Issue 14: shadow variables (semantics §14) and the livepatch module's own init/exit, pinned
on the concrete interpreter (the same kernel.step the Z3 engine encodes), the spec language's
errors, and the opt-in rule that keeps the contract's specs as they were."""
from __future__ import annotations

import pytest
from conftest import SPECS, expectations
from sim import Sim

from klpmodel.errors import UserError
from klpmodel.kernel import Model
from klpmodel.properties import SHADOW
from klpmodel.spec import load_spec
from klpmodel.verify import verify

SHADOW_NAMES = tuple(p.name for p in SHADOW)

INIT = """
[shadows.sv]
id = 0x1234
[[patch]]
name = "lp"
shadows = { sv = "counter" }
init = ['log "init"', "get sv", "fail -ENOMEM if param broken"]
init_error = ["put sv"]
exit = ['log "exit"', "put sv"]
params = { broken = 0 }
[patch.objects.vmlinux]
pre_patch = ["maybe-fail -ENODEV"]
"""


@pytest.fixture
def sim(write_spec):
    return lambda text: Sim(write_spec(text))


def test_init_runs_before_klp_enable_patch_and_exit_at_rmmod(sim):
    s = sim(INIT)
    out = s.do("load lp")
    log = s.log(s.model, out)
    assert log[:2] == ["lp: init", "livepatch: enabling patch 'lp'"]
    assert s.model.view(s.state).count("sv") == 1
    s.do("complete"); s.do("disable lp"); s.do("complete")
    assert s.model.view(s.state).shadow("sv")          # the module is still loaded: exit has not run
    out = s.do("rmmod lp")
    assert s.log(s.model, out)[-1] == "lp: exit"
    assert not s.model.view(s.state).shadow("sv") and s.violations(out) == []


def test_a_failing_init_refuses_the_module_before_any_livepatch_line(write_spec):
    from klpmodel import interp
    from klpmodel.kernel import Op
    m = Model(load_spec(write_spec(INIT)))
    out = interp.apply(m, interp.initial(m), Op("load", "lp", (("broken", 1),)), {})
    assert Sim.log(m, out) == ["lp: init", "insmod: ERROR: could not insert module test_modules/lp.ko: "
                                           "Cannot allocate memory"]
    assert m.view(out.state).phase("lp") == "unloaded"
    assert sorted(p for p, _ in out.violations) == ["shadow-leak"]     # init's get has no cleanup


def test_init_error_runs_when_klp_enable_patch_fails(sim):
    s = sim(INIT)
    out = s.do("load lp", fail=[("lp", "vmlinux")])
    assert s.phase("lp") == "unloaded" and not s.model.view(s.state).shadow("sv")
    assert s.violations(out) == []


DUP = """
[shadows.sv]
id = 0x1234
[[patch]]
name = "lp"
shadows = { sv = "counter" }
[patch.objects.vmlinux]
pre_patch = ["shadow-get-or-alloc sv with ctor-fail -ENOMEM"]
post_patch = ["shadow-alloc sv"]
"""


def test_alloc_of_an_existing_pair_warns_and_changes_nothing(sim):
    s = sim(DUP)
    s.do("load lp")
    out = s.do("complete")
    assert s.log(s.model, out)[1] == "Duplicate shadow variable <$OBJ, 1234>"
    assert s.violations(out) == ["shadow-duplicate"] and s.model.view(s.state).shadow("sv")


def test_a_failing_constructor_fails_pre_patch(sim):
    s = sim(DUP)
    out = s.do("load lp", fail=[("lp", "vmlinux")])
    assert "livepatch: Failed to construct shadow variable <$OBJ, 1234> (-12)" in s.log(s.model, out)
    assert s.log(s.model, out)[-1].endswith("Cannot allocate memory")
    assert s.phase("lp") == "unloaded" and not s.model.view(s.state).shadow("sv")


ORPHAN = (SPECS / "shadow-orphan-bad.toml").read_text()


def test_a_module_unload_leaves_the_variables_of_its_objects(sim):
    s = sim(ORPHAN)
    s.do("load lp_shadow"); s.do("complete")
    out = s.do("modunload target_mod")
    assert s.violations(out) == ["shadow-orphan"] and not s.model.view(s.state).shadow("sv")


def test_the_count_decides_who_undoes_a_shared_state(sim):
    s = sim((SPECS / "disable-keeps-shared-good.toml").read_text())
    for op in ("load lp_a", "complete", "load lp_b", "complete"):
        s.do(op)
    assert s.model.view(s.state).count("users") == 2
    out = s.do("disable lp_b")
    assert s.model.view(s.state).describe("feature") == "v1" and s.violations(out) == []
    s.do("complete"); s.do("disable lp_a"); out = s.do("complete")
    assert s.model.view(s.state).describe("feature") == "original" and not s.model.view(s.state).shadow("users")


# ------------------------------------------------------------ the properties: bad and good specs

@pytest.mark.parametrize("prop", SHADOW_NAMES)
@pytest.mark.parametrize("engine", ["explicit", "z3"])
def test_violating_spec_is_caught_by_both_engines(prop, engine):
    path = SPECS / f"{prop}-bad.toml"
    depth = next(int(e[2]) for e in expectations(path) if e[:2] == ["violation", prop])
    r = verify(load_spec(path), properties=[prop], engine=engine)
    (v,) = r.violations
    assert (r.verdict, v.property, v.depth) == ("violation", prop, depth)


@pytest.mark.parametrize("prop", SHADOW_NAMES)
@pytest.mark.parametrize("engine", ["explicit", "z3"])
def test_satisfying_spec_holds_on_both_engines(prop, engine):
    path = SPECS / f"{prop}-good.toml"
    assert expectations(path) == [["holds"]]
    r = verify(load_spec(path), engine=engine)
    assert r.verdict == "holds" and prop in r.properties


def test_the_shadow_properties_are_opt_in_for_specs_without_shadows():
    """The contract's specs keep their property list (so their verdicts and formulas)."""
    plain = Model(load_spec(SPECS / "no-leak-bad.toml"))
    assert not any(p.name in SHADOW_NAMES for p in plain.properties)
    assert all(name in (p.name for p in plain.all_properties) for name in SHADOW_NAMES)
    asked = Model(load_spec(SPECS / "disable-keeps-shared-bad.toml"))
    assert [p.name for p in asked.properties if p.name in SHADOW_NAMES] == ["disable-keeps-shared"]
    shadowed = Model(load_spec(SPECS / "shadow-leak-bad.toml"))
    assert all(name in (p.name for p in shadowed.properties) for name in SHADOW_NAMES)
    assert not any(v.startswith(("shadow[", "count[")) for v in plain.vars)


# ------------------------------------------------------------ spec errors: FILE:LINE, one line

BASE = """[shadows.sv]
id = 1
[[patch]]
name = "lp"
shadows = { sv = "counter" }
"""


@pytest.mark.parametrize("extra, message", [
    ('init = ["alloc s"]\n', "6: 'alloc' is not allowed in the livepatch module's init"),
    ('exit = ["shadow-get nope"]\n', "6: 'shadow-get nope' names shadow variable 'nope', which patch 'lp' does not "
                                     "list in its shadows"),
    ('exit = ["fail"]\n', "6: 'fail' is not allowed in exit"),
    ('init = ["log \\"x\\" if prev s"]\n', "6: 'prev' in 'log \"x\" if prev s'"),
    ('init = ["get sv if count sv"]\n', "6: malformed condition 'if count sv'"),
    ('init = ["shadow-get-or-alloc sv with ctor-fail -EWHAT"]\n', "6: bad errno '-EWHAT'"),
    ('[patch.objects.vmlinux]\npre_patch = ["shadow-free sv sv"]\n', "7: malformed statement 'shadow-free sv sv'"),
    ('[patch.objects.vmlinux]\npost_patch = ["shadow-alloc sv on new"]\n', "7: 'on new' in 'shadow-alloc sv on new'"),
    ('[patch.code]\ninit = ["log \\"x\\""]\n', "7: 'init' is not a function name for code"),
    ('[patch.code]\nf = ["fail"]\n', "7: 'fail' is not allowed in code"),
])
def test_bad_shadow_statements_name_their_line(write_spec, extra, message):
    path = write_spec(BASE + extra)
    with pytest.raises(UserError) as e:
        load_spec(path)
    assert str(e.value).startswith(f"{path}:{message}")


@pytest.mark.parametrize("text, message", [
    ('[shadows.sv]\nid = -1\n[[patch]]\nname = "lp"\n', "2: shadow id must be an integer from 0 to"),
    ('[shadows.sv]\nid = 1\n[shadows.sw]\nid = 1\n[[patch]]\nname = "lp"\n', "4: shadow id 1 is already used"),
    ('[shadows.sv]\nid = 1\nparent = "nomod"\n[[patch]]\nname = "lp"\n', "3: parent 'nomod' is not a target module"),
    ('[shadows.sv]\nid = 1\n[[patch]]\nname = "lp"\nshadows = { sw = "x" }\n', "5: unknown shadow variable 'sw'"),
    ('[shadows.sv]\nid = 1\n[[patch]]\nname = "lp"\nshadows = { sv = 3 }\n', "5: the layout of shadow variable 'sv'"),
    ('[check]\nproperties = ["no-leak"]\n[[patch]]\nname = "lp"\n', "2: 'no-leak' is not an opt-in property"),
    ('[states.sv]\nid = 1\n[shadows.sv]\nid = 1\n[[patch]]\nname = "lp"\n', "3: 'sv' is also a state name"),
])
def test_bad_shadow_declarations_name_their_line(write_spec, text, message):
    path = write_spec(text)
    with pytest.raises(UserError) as e:
        load_spec(path)
    assert str(e.value).startswith(f"{path}:{message}")


# ------------------------------------------------------------ the samples (specs/samples/)

SAMPLES = sorted((SPECS / "samples").glob("*.toml"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("engine", ["explicit", "z3"])
def test_samples_give_the_verdicts_their_headers_state(path, engine):
    exp = expectations(path)
    r = verify(load_spec(path), engine=engine)
    found = {v.property: v.depth for v in r.violations}
    assert found == ({} if exp == [["holds"]] else {e[1]: int(e[2]) for e in exp})


def test_kpatch_934_is_a_reload_onto_a_stale_entry():
    """The duplicate needs the entries a previous load left behind: load, fork, unload, reload,
    fork (dynup/kpatch#934)."""
    r = verify(load_spec(SPECS / "samples" / "kpatch-934-newpid.toml"), properties=["shadow-duplicate"])
    (v,) = r.violations
    ops = [str(s.op) for s in v.trace]
    assert ops.count("rmmod kpatch_shadow_newpid") == 1 and ops[-1] == "call kpatch_shadow_newpid.do_fork"
    assert ops.index("rmmod kpatch_shadow_newpid") < ops.index("load kpatch_shadow_newpid", 1)


SUSE = (SPECS / "samples" / "suse-shared-state.toml").read_text()


@pytest.mark.parametrize("old, new, nth, broken", [
    ('exit       = ["put shared"]', 'exit       = []', 1, {"shadow-leak": 4}),             # release1 keeps its reference
    ('init_error = ["put shared"]', 'init_error = []', 3, {"shadow-leak": 1}),             # a failed hotfix load keeps it
    ('init       = ["get shared"]', 'init       = ["shadow-alloc shared"]', 1,            # no count: the next one warns
     {"shadow-duplicate": 3, "shadow-use-after-free": 3}),
    ('exit       = ["put shared"]', 'exit       = ["shadow-free-all shared"]', 1,         # frees it under the others
     {"shadow-use-after-free": 5}),
    ('shadows    = { shared = "shared_v1" }', 'shadows    = { shared = "shared_v2" }', 2,  # release2 changes the layout
     {"shadow-layout": 3}),
    ('init       = ["get shared"]', 'init       = []', 1, {"shadow-use-after-free": 2}),  # release1 takes none
])
@pytest.mark.parametrize("engine", ["explicit", "z3"])
def test_one_line_mutations_of_the_suse_pattern_break_it(write_spec, old, new, nth, broken, engine):
    parts = SUSE.split(old)
    text = old.join(parts[:nth]) + new + old.join(parts[nth:])
    assert text.count("\n") == SUSE.count("\n") and text != SUSE
    r = verify(load_spec(write_spec(text)), engine=engine)
    assert {v.property: v.depth for v in r.violations} == broken


def test_call_runs_a_new_function_only_while_its_patch_is_listed(sim):
    s = sim((SPECS / "samples" / "kpatch-934-newpid.toml").read_text())
    assert s.refusal("call kpatch_shadow_newpid.do_fork").endswith("the patch is not on klp_patches")
    s.do("load kpatch_shadow_newpid")                  # patching: some task may run the new code already
    out = s.do("call kpatch_shadow_newpid.do_fork")
    assert s.model.view(s.state).shadow("newpid") and s.violations(out) == []
    out = s.do("call kpatch_shadow_newpid.do_fork")    # another new task: no duplicate
    assert s.violations(out) == []


def test_simulate_runs_call_and_fails_a_site_of_init(write_spec):
    from conftest import cli
    p = cli("simulate", str(SPECS / "samples" / "kpatch-934-newpid.toml"), "--run",
            "load kpatch_shadow_newpid; call kpatch_shadow_newpid.do_fork; reverse; complete; rmmod kpatch_shadow_newpid; "
            "load kpatch_shadow_newpid; call kpatch_shadow_newpid.do_fork")
    assert p.returncode == 0, p.stderr
    assert "Duplicate shadow variable <$OBJ, 1>" in p.stdout
    assert "# violation: shadow-duplicate" in p.stdout
    spec = write_spec('[[patch]]\nname = "lp"\ninit = [\'log "init"\', "maybe-fail -ENOMEM"]\n')
    p = cli("simulate", str(spec), "--run", "load lp fail=lp/module:init[1]; load lp")
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.split("% insmod test_modules/lp.ko\n")[1:]
    assert first.splitlines() == ["lp: init", "insmod: ERROR: could not insert module test_modules/lp.ko: Cannot allocate memory"]
    assert "livepatch: enabling patch 'lp'" in second
