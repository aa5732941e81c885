"""Side by side (issue 15, item 3): `verify --kernel A --kernel B` runs one spec under each
profile and leads with the differences: the verdict table, for each difference the shortest
trace where it breaks and the first step that differs under the other profile (or is refused
there); a profile that cannot express the spec says so and the others still run."""
from __future__ import annotations

import json

from conftest import cli
from test_ci import validate

DEFAULT_ZERO = "tests/regressions/replace-set-default-zero.toml"

# b's replace_param makes it cumulative under mainline (replacing a, whose block then leaks)
# and puts it in replace_set 1 under replace-set, where sharing state s with a (set 0) is refused
SHARED = """
[check]
depth = 4
operations = ["load", "complete", "disable", "rmmod"]

[states.s]
id = 1

[[patch]]
name = "a"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_unpatch = ["free s"]

[[patch]]
name = "b"
replace_param = "r"
params = { r = 1 }
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_unpatch = ["free s"]
"""


# force pins a patching patch's module under 5.5 (it marks every listed patch) but not since
# 5.18 (a patching transition without replace marks none, commit 2957308343fa). a's patching
# transition completes only by force (a task sleeps in busy's work); its post_patch attaches a
# shadow variable that nothing frees: only the rmmod that 5.5 refuses leaves it to no module
FORCE = """
[check]
depth = 7
operations = ["load", "complete", "disable", "rmmod", "force"]

[shadows.users]
id = 1

[modules.busy]
loaded = true
params = { block = 1 }
sleeps = { function = "work", while = "block" }

[[patch]]
name = "a"
shadows = { users = "counter" }
[patch.objects.busy]
funcs = ["work"]
post_patch = ["shadow-alloc users"]
"""


def test_a_difference_comes_first_with_its_trace_and_the_step_that_differs():
    p = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set")
    assert p.returncode == 1, p.stderr                      # the worst of the runs: a violation
    lines = p.stdout.splitlines()
    assert lines[0].endswith(", side by side under mainline and replace-set")
    assert lines[1] == "differences: 1 of 8 properties: no-leak (mainline: holds; replace-set: violated at depth 4)"
    row = next(x for x in lines if x.split()[:1] == ["no-leak"])
    assert row.split() == ["no-leak", "holds", "violated", "at", "depth", "4"]
    text = p.stdout
    first = text.index("DIFFERENCE no-leak: mainline: holds; replace-set: violated at depth 4")
    assert first < text.index("==== kernel mainline ====") < text.index("==== kernel replace-set ====")
    diff = text[first:text.index("==== kernel mainline ====")]
    assert "the shortest trace under replace-set:" in diff and "VIOLATED no-leak: shortest trace has 4 operations" in diff
    assert "why not under mainline (holds)" in diff
    assert "step 4 `complete` differs (the state changes differently):" in diff
    mainline_side = diff[diff.index("      under mainline:"):]
    assert "changed: b: patching -> enabled" in mainline_side and "a: enabled -> off-list" not in mainline_side
    assert "'a' is replaced: it leaves klp_patches, none of its callbacks run" in diff
    assert "under mainline they do not break no-leak" in diff


def test_a_step_refused_under_the_other_profile_is_the_answer(write_spec):
    spec = write_spec(SHARED)
    p = cli("verify", str(spec), "--kernel", "mainline", "--kernel", "replace-set")
    assert p.returncode == 1, p.stderr
    assert "no-leak (mainline: violated at depth 4; replace-set: holds)" in p.stdout.splitlines()[1]
    assert ("step 3 `load b` is refused under replace-set: -EINVAL: not compatible with the already installed "
            "livepatches (b declares state s, also declared by installed a, of another replace_set)") in p.stdout


def test_force_under_5_5_and_mainline(write_spec):
    """The difference is the force step (5.5 marks a forced), which makes the rmmod refused."""
    spec = write_spec(FORCE)
    p = cli("verify", str(spec), "--kernel", "mainline", "--kernel", "5.5")
    assert p.returncode == 1, p.stderr
    assert p.stdout.splitlines()[1] == ("differences: 1 of 14 properties: shadow-leak (mainline: violated at depth 6; "
                                        "5.5: holds)")
    why = p.stdout[p.stdout.index("why not under 5.5 (holds)"):p.stdout.index("==== kernel mainline")]
    assert why.splitlines()[1:] == [
        "    step 2 `force` differs (the state changes differently):",
        "      under mainline:",
        "        changed: nothing",
        "      under 5.5:",
        "        changed: a: forced (its module can never be removed)",
        "    step 6 `rmmod a` is refused under 5.5: module a is in use for ever: its patch was forced",
        ""]
    doc = json.loads(cli("verify", str(spec), "--kernel", "mainline", "--kernel", "5.5", "-f", "json").stdout)
    validate(doc, "verify-compare.schema.json")
    (w,) = doc["comparison"]["differences"][0]["why_not"]
    assert (w["step"], w["refused"]) == (2, {"step": 6, "operation": "rmmod a",
                                             "reason": "module a is in use for ever: its patch was forced"})


def test_the_same_verdicts_say_no_difference():
    p = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "5.5")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1] == "no difference: every property has the same verdict under mainline and 5.5"
    assert "DIFFERENCE" not in p.stdout
    q = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "5.5", "-q")
    assert q.stdout == "no difference: every property has the same verdict under mainline and 5.5\n"


def test_a_profile_that_cannot_express_the_spec_says_so_and_the_others_run():
    p = cli("verify", "specs/selftest-state.toml", "--kernel", "mainline", "--kernel", "replace-set")
    assert p.returncode == 0, p.stderr                      # mainline's verdict: holds
    lines = p.stdout.splitlines()
    assert lines[1] == "no comparison: only mainline can express the spec (replace-set cannot)"
    assert lines[2].startswith("replace-set: cannot express: specs/selftest-state.toml:17: patch 'test_klp_state': "
                               "kernel profile 'replace-set' has no replace")
    row = next(x for x in lines if x.split()[:1] == ["no-leak"])
    assert row.split() == ["no-leak", "holds", "cannot", "express"]
    assert "==== kernel mainline ====" in p.stdout and "==== kernel replace-set ====" not in p.stdout
    # no profile can express it: exit 2, each profile's message
    both = cli("verify", "specs/selftest-state.toml", "--kernel", "replace-set", "--kernel", "replace-set")
    assert both.returncode == 2 and "given twice" in both.stderr
    none = cli("verify", "specs/selftests-replace-set/test-state.toml", "--kernel", "mainline", "--kernel", "5.5")
    assert none.returncode == 2 and none.stdout == ""
    assert "under mainline: specs/selftests-replace-set/test-state.toml:17: patch 'test_klp_state': replace_set is a key" \
        in none.stderr and "under 5.5: " in none.stderr


def test_one_kernel_is_the_single_report_byte_for_byte():
    for args in ([DEFAULT_ZERO], [DEFAULT_ZERO, "--kernel", "mainline"], ["specs/no-leak-bad.toml", "--kernel", "5.5"]):
        text = cli("verify", *args).stdout
        assert "side by side" not in text and text.startswith(f"klpmodel verify {args[0]}: ")
    one = cli("verify", DEFAULT_ZERO, "--kernel", "replace-set")
    plain = cli("verify", DEFAULT_ZERO)
    assert (one.stdout, one.returncode) == (plain.stdout, plain.returncode) == (plain.stdout, 1)
    both = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set").stdout
    assert both.endswith("==== kernel replace-set ====\n" + plain.stdout)     # the full reports follow


def test_the_json_document_follows_its_schema(write_spec):
    p = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set", "--format", "json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    validate(doc, "verify-compare.schema.json")
    assert doc["kernels"] == ["mainline", "replace-set"] and doc["command"] == "verify"
    assert doc["comparison"]["verdicts"]["no-leak"] == {"mainline": {"verdict": "holds"},
                                                        "replace-set": {"verdict": "violated", "depth": 4}}
    (d,) = doc["comparison"]["differences"]
    assert (d["property"], d["breaks_under"]) == ("no-leak", "replace-set")
    (w,) = d["why_not"]
    assert (w["kernel"], w["step"], w["operation"], w["refused"], w["breaks"]) == ("mainline", 4, "complete", None, False)
    single = json.loads(cli("verify", DEFAULT_ZERO, "--format", "json").stdout)
    assert doc["reports"]["replace-set"] == single
    for args in (["specs/selftest-state.toml", "--kernel", "mainline", "--kernel", "replace-set"],
                 [str(write_spec(SHARED)), "--kernel", "replace-set", "--kernel", "mainline", "--kernel", "5.5"]):
        doc = json.loads(cli("verify", *args, "--format", "json").stdout)
        validate(doc, "verify-compare.schema.json")
    assert set(doc["reports"]) == {"replace-set", "mainline", "5.5"}


def test_options_with_several_profiles(tmp_path):
    p = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set", "--format", "sarif")
    assert p.returncode == 2 and "--format sarif takes one kernel profile" in p.stderr
    p = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set", "--out", str(tmp_path / "o"))
    assert p.returncode == 1 and sorted(f.name for f in (tmp_path / "o").rglob("*.json")) == [
        "no-leak.itf.json", "no-leak.trace.json"]
    assert (tmp_path / "o" / "replace-set" / "no-leak.trace.json").exists()
    assert f"trace file: {tmp_path / 'o' / 'replace-set' / 'no-leak.trace.json'}" in p.stdout
    assert cli("replay", str(tmp_path / "o" / "replace-set" / "no-leak.trace.json"), "-q").returncode == 1
    p = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "4.19")
    assert p.returncode == 2 and "unknown kernel profile '4.19' for --kernel" in p.stderr


def test_the_commands_of_docs_compare_md_run():
    from conftest import ROOT

    text = (ROOT / "docs" / "compare.md").read_text()
    assert "klpmodel verify tests/regressions/replace-set-default-zero.toml --kernel mainline --kernel replace-set" in text
    p = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set")
    block = text.split("$ klpmodel verify ", 1)[1].split("```", 1)[0].splitlines()[1:]
    shown = [x for x in block if x != "..."]
    assert len(shown) > 8 and all(x in p.stdout.splitlines() for x in shown)


def test_review_side_by_side(tmp_path):
    out = tmp_path / "r.md"
    p = cli("review", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set", "-o", str(out))
    assert p.returncode == 0, p.stderr
    md = out.read_text()
    assert md.startswith("# Design review side by side: replace-set-default-zero\n")
    assert "| no-leak | holds | violated at depth 4 |" in md
    assert md.index("### no-leak: mainline holds; replace-set violated at depth 4") \
        < md.index("## Under `mainline`: Design review: replace-set-default-zero") \
        < md.index("## Under `replace-set`: Design review: replace-set-default-zero")
    assert "step 4 `complete` differs (the state changes differently):" in md
    one = cli("review", DEFAULT_ZERO, "--kernel", "replace-set").stdout
    assert one.startswith("# Design review: replace-set-default-zero\n")
    assert "side by side" not in one and "## Under" not in one               # one --kernel: the single review
    cannot = cli("review", "specs/selftest-state.toml", "--kernel", "mainline", "--kernel", "replace-set").stdout
    assert "- `replace-set` cannot express the spec: specs/selftest-state.toml:17: patch 'test_klp_state'" in cannot
