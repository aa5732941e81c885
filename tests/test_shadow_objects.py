"""Issue 14, named parent objects: shadow variables per (variable, object) pair ([objects],
`on OBJ`), a target module's init/exit calling the shadow API, and test-shadow-vars.sh
reproduced from the per-pair state (its echo, `or fail` and `expect` are conformance aids)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import SHARED, SPECS
from sim import Sim

from klpmodel import interp
from klpmodel.conformance import run_scenario
from klpmodel.kernel import Model, Op
from klpmodel.spec import load_spec
from klpmodel.verify import verify

SCENARIO = SPECS / "selftests" / "test-shadow-vars" / "basic-shadow-variable-api.toml"
MODULE_SPEC = SPECS / "selftests" / "test-shadow-vars.toml"
MOD = "test_klp_shadow_vars"


def mutated(tmp_path: Path, edit) -> Path:
    """A copy of the test-shadow-vars scenario whose module spec `edit(text)` changed; returns
    the scenario's path."""
    (tmp_path / "sc").mkdir()
    shutil.copy(SCENARIO, tmp_path / "sc" / SCENARIO.name)
    (tmp_path / MODULE_SPEC.name).write_text(edit(MODULE_SPEC.read_text()))
    return tmp_path / "sc" / SCENARIO.name


def test_test_shadow_vars_passes_in_conformance():
    ok, name, diff = run_scenario(SCENARIO)
    assert ok and name == "basic shadow variable API", "\n".join(diff)


@pytest.mark.skipif(not (SHARED / "kernel" / "selftests.md").exists(), reason="../shared is not beside this checkout")
def test_the_expected_log_is_selftests_md_section_5():
    import tomllib
    doc = (SHARED / "kernel" / "selftests.md").read_text()
    sec = doc[doc.index("## 5. test-shadow-vars.sh"):doc.index("## 6.")]
    block = sec.split("```\n", 1)[1].split("```", 1)[0]
    block = block.replace("$MOD_TEST", MOD).replace(f'% rmmod {MOD}"', f"% rmmod {MOD}")   # (the script's closing quote)
    assert tomllib.loads(SCENARIO.read_text())["expected"].strip("\n") == block.strip("\n")


def test_a_get_or_alloc_on_a_freed_pair_fails_conformance_with_a_readable_diff(tmp_path):
    """Pass 3's get_or_alloc of <objs[2], SV_ID1> swapped with pass 4's free of it: the pair
    is created again (the constructor runs, a new data pointer) and the module's check
    against the data it first got stays silent, as in the C (sv != sv1[i])."""
    get = '    "shadow-get-or-alloc SV_ID1 on obj2 or fail -EINVAL expect data",\n'
    free = '    "shadow-free SV_ID1 on obj2 with dtor",\n'
    path = mutated(tmp_path, lambda t: t.replace(get, "@").replace(free, get).replace("@", free))
    ok, _, diff = run_scenario(path)
    assert not ok
    assert diff[:2] == ["--- expected (kernel selftest)", "+++ simulated (klpmodel)"]
    assert f"-{MOD}:   got expected PTR13 -> PTR12 result" in diff
    assert f"+{MOD}: shadow_ctor: PTR18 -> PTR12" in diff
    assert f"+{MOD}: klp_shadow_get_or_alloc(obj=PTR14, id=0x1234, size=8, gfp_flags=GFP_KERNEL), ctor=PTR4, " \
           f"ctor_data=PTR12 = PTR18" in diff
    assert f"+{MOD}:   got expected PTR18 -> PTR12 result" not in diff      # not the data it first got


def test_a_duplicate_alloc_takes_the_goto_out_path_and_the_module_is_not_loaded(tmp_path):
    """klp_shadow_alloc of an existing pair: WARN, NULL; the init frees both ids (out:) and
    returns -ENOMEM; the loader prints the error; nothing is left in the hash."""
    first = '    "shadow-alloc SV_ID2 on obj0 or fail -ENOMEM",\n'
    path = mutated(tmp_path, lambda t: t.replace(first, first + first))
    m = Model(load_spec(path.parent.parent / MODULE_SPEC.name))
    out = interp.apply(m, interp.initial(m), Op("modload", MOD), {})
    log = Sim.log(m, out)
    assert "Duplicate shadow variable <$OBJ, 1235>" in log
    assert log[-3:] == [f"{MOD}: klp_shadow_free_all(id=0x1234, dtor=PTR0)",
                        f"{MOD}: klp_shadow_free_all(id=0x1235, dtor=PTR0)",
                        f"insmod: ERROR: could not insert module test_modules/{MOD}.ko: Cannot allocate memory"]
    view = m.view(out.state)
    assert not view.module_loaded(MOD)
    assert not any(view.shadow(sv, obj) for sv in ("SV_ID1", "SV_ID2") for obj in ("obj0", "obj1", "obj2"))
    assert sorted(p for p, _ in out.violations) == ["shadow-duplicate"]


def test_a_get_that_finds_nothing_fails_the_init_with_einval(tmp_path):
    """Pass 2's check of <objs[0], SV_ID1> after that pair was freed: NULL, -EINVAL (goto out)."""
    check = '    "shadow-get SV_ID1 on obj0 or fail -EINVAL expect data",\n'
    path = mutated(tmp_path, lambda t: t.replace(check, '    "shadow-free SV_ID1 on obj0",\n' + check))
    m = Model(load_spec(path.parent.parent / MODULE_SPEC.name))
    out = interp.apply(m, interp.initial(m), Op("modload", MOD), {})
    log = Sim.log(m, out)
    assert f"{MOD}: klp_shadow_free(obj=PTR1, id=0x1234, dtor=PTR0)" in log
    assert log[-1] == f"insmod: ERROR: could not insert module test_modules/{MOD}.ko: Invalid parameters"
    assert not m.view(out.state).module_loaded(MOD) and out.violations == []


def test_the_pointer_numbers_are_the_wrappers_not_the_model():
    """The model's state has no pointer: only which pairs exist (the PTR numbers are the
    echoing module's ptr_id(), per run of its init)."""
    m = Model(load_spec(MODULE_SPEC))
    assert not any("PTR" in v or "ptr" in v for v in m.vars if v.startswith(("shadow", "count", "layout")))
    assert sorted(v for v in m.vars if v.startswith("shadow[")) == sorted(
        f"shadow[{sv}@{o}]" for sv in ("SV_ID1", "SV_ID2") for o in ("obj0", "obj1", "obj2"))


PAIRS = """
[shadows.sv]
id = 1
[objects]
a = "vmlinux"
b = "m"
[modules.m]
[[patch]]
name = "lp"
shadows = { sv = "x" }
[patch.objects.vmlinux]
post_patch = ["shadow-alloc sv on a", "shadow-alloc sv on b", "shadow-alloc sv on a if shadow sv on b"]
pre_unpatch = ["shadow-free sv on a"]
post_unpatch = ["shadow-free-all sv"]
"""


def test_pairs_are_separate_and_free_all_frees_every_pair(write_spec):
    s = Sim(write_spec(PAIRS))
    s.do("modload m")
    s.do("load lp")
    out = s.do("complete")
    view = s.model.view(s.state)
    assert view.shadow("sv", "a") and view.shadow("sv", "b")
    assert [p for p, _ in out.violations] == ["shadow-duplicate"]     # the third: <a, sv> exists; <b, sv> was new
    s.do("disable lp")
    assert not s.model.view(s.state).shadow("sv", "a") and s.model.view(s.state).shadow("sv", "b")
    s.do("complete")
    assert not s.model.view(s.state).shadow("sv", "b")


def test_a_pair_on_a_module_object_is_orphaned_when_the_module_goes(write_spec):
    s = Sim(write_spec(PAIRS.replace('post_unpatch = ["shadow-free-all sv"]', "")))
    s.do("modload m")
    s.do("load lp")
    s.do("complete")
    out = s.do("modunload m")
    assert [(p, str(w)) for p, w in out.violations] == [("shadow-orphan", "Orphaned(module='m', shadow='sv on b')")]
    view = s.model.view(s.state)
    assert view.shadow("sv", "a") and not view.shadow("sv", "b")      # vmlinux's object stays


@pytest.mark.parametrize("name,prop", [("shadow-object-leak-bad", "shadow-leak"),
                                       ("shadow-object-get-bad", "shadow-use-after-free")])
def test_only_the_per_object_model_sees_it(tmp_path, name, prop):
    """The bad spec breaks its property; the same spec on the abstract parent object (every
    `on OBJ` removed) holds: one object cannot tell dev_a's variable from dev_b's."""
    text = (SPECS / f"{name}.toml").read_text()
    r = verify(load_spec(SPECS / f"{name}.toml"), engine="explicit")
    assert [v.property for v in r.violations] == [prop]
    flat = tmp_path / "flat.toml"
    flat.write_text(re.sub(r" on (dev_[ab]|sk_\w+)\"", '"', text))
    assert " on dev" not in flat.read_text() and " on sk_" not in flat.read_text()
    assert verify(load_spec(flat), engine="explicit").verdict == "holds"


def test_a_spec_of_target_modules_only_is_verified():
    """No livepatch: the spec's modules alone (modload/modunload) are checked."""
    for engine in ("explicit", "z3"):
        r = verify(load_spec(MODULE_SPEC), engine=engine)
        assert r.verdict == "holds" and "shadow-orphan" in r.properties


def test_explain_and_sarif_name_a_target_module_statement(tmp_path):
    """A violation in a target module's init is located at its statement (explain, SARIF)."""
    from conftest import cli
    first = '    "shadow-alloc SV_ID2 on obj0 or fail -ENOMEM",\n'
    spec = tmp_path / "dup.toml"
    spec.write_text(MODULE_SPEC.read_text().replace(first, first + first))
    line = spec.read_text().splitlines().index(first.rstrip("\n").rstrip(",")+",") + 2
    p = cli("verify", str(spec), "-o", str(tmp_path / "out"), "-q")
    assert p.returncode == 1
    p = cli("explain", str(tmp_path / "out" / "shadow-duplicate.trace.json"))
    assert p.returncode == 0, p.stderr
    assert f"where it shows: {spec}:{line}: 'shadow-alloc SV_ID2 on obj0 or fail -ENOMEM' in {MOD}'s init" \
        in p.stdout
    import json
    p = cli("verify", str(spec), "-f", "sarif")
    (result,) = json.loads(p.stdout)["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": line}
