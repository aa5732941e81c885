"""Side by side (issue 15, item 3): `verify --kernel A --kernel B` runs one spec under each
profile and leads with the differences: the verdict table, for each difference the shortest
trace where it breaks and the first step that differs under the other profile (or is refused
there); a profile that cannot express the spec says so and the others still run."""
from __future__ import annotations

import dataclasses
import json

from conftest import ROOT, cli
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
    both = cli("verify", DEFAULT_ZERO, "--kernel", "replace-set", "--kernel", "mainline").stdout
    mainline = cli("verify", DEFAULT_ZERO, "--kernel", "mainline").stdout
    assert both.endswith("==== kernel mainline ====\n" + mainline)     # the full reports follow


def test_the_trace_of_a_difference_is_printed_once():
    """The difference's trace is printed next to its why-not; the profile's own report names
    it instead of printing it again (and the rest of that report is the single one's)."""
    both = cli("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set").stdout
    assert both.count("VIOLATED no-leak: shortest trace has 4 operations") == 2
    assert both.count("    1. load a\n") == 1 and both.count("'a' is replaced: it leaves klp_patches") == 2  # + why-not
    single = cli("verify", DEFAULT_ZERO).stdout
    own = both[both.index("==== kernel replace-set ====\n") + len("==== kernel replace-set ====\n"):]
    trace = single[single.index("VIOLATED no-leak"):single.index("\n\nverdict: violation")]
    assert own == single.replace(trace, "VIOLATED no-leak: shortest trace has 4 operations: shown above "
                                        "(DIFFERENCE no-leak)")


def test_every_counterexample_of_a_difference_is_replayed():
    """-n 2: each shortest trace under mainline, each with its own why-not under replace-set
    (the first is refused there at step 5, the second runs and breaks nothing)."""
    args = ("verify", "specs/disable-keeps-shared-bad.toml", "--kernel", "mainline", "--kernel", "replace-set", "-n", "2")
    p = cli(*args)
    assert p.returncode == 1, p.stderr
    diff = p.stdout[p.stdout.index("DIFFERENCE disable-keeps-shared"):p.stdout.index("==== kernel mainline")]
    one, two = diff.split("  shortest trace 2 of 2 under mainline:\n")
    assert "  shortest trace 1 of 2 under mainline:\n  VIOLATED disable-keeps-shared: shortest trace 1 of 2" in one
    assert two.startswith("  VIOLATED disable-keeps-shared: shortest trace 2 of 2, 5 operations")
    assert one.count("why not under replace-set (holds)") == two.count("why not under replace-set (holds)") == 1
    assert "step 5 `disable lp_a` is refused under replace-set" in one
    assert "refused" not in two and "under replace-set they do not break disable-keeps-shared" in two
    own = p.stdout[p.stdout.index("==== kernel mainline"):]
    assert "shortest trace 2 of 2, 5 operations: shown above (DIFFERENCE disable-keeps-shared)" in own
    doc = json.loads(cli(*args, "-f", "json").stdout)
    validate(doc, "verify-compare.schema.json")
    (d,) = doc["comparison"]["differences"]
    (more,) = d["more_traces"]
    assert d["why_not"][0]["refused"]["step"] == 5 and more["why_not"][0]["refused"] is None
    assert more["violation"]["trace"] != d["violation"]["trace"]


def test_not_applicable_is_no_difference(write_spec):
    """A property a profile does not have is no verdict to differ from (finding2 listed five)."""
    spec = write_spec("[check]\ndepth = 3\n\n[states.s]\nid = 1\n\n[[patch]]\nname = \"a\"\nstates = { s = 1 }\n")
    p = cli("verify", str(spec), "--kernel", "mainline", "--kernel", "state-callbacks")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1] == ("no difference: no property has two different verdicts under mainline and "
                                        "state-callbacks (5 not applicable under state-callbacks)")
    assert "DIFFERENCE" not in p.stdout


def test_unknown_is_no_difference():
    """A profile whose search stopped has no verdict to differ from: 'holds' against 'unknown'
    is no difference (it listed every property when the --timeout stopped the last run);
    'violated at depth N' against a search that finished depth N without it is one."""
    from klpmodel import compare as cmp
    from klpmodel.spec import load_spec
    from klpmodel.verify import verify

    s = load_spec(ROOT / DEFAULT_ZERO)
    held = verify(dataclasses.replace(s, kernel="mainline"))      # every property holds
    stopped = dataclasses.replace(verify(dataclasses.replace(s, kernel="5.5")), unknown="timeout", depth_done=2)
    c = cmp.compare(s, [cmp.Column("mainline", held), cmp.Column("5.5", stopped)])
    assert c.differences == () and c.exit_code == 3
    assert cmp.headline(c) == ("no difference: no property has two different verdicts under mainline and 5.5 "
                               "(the search stopped under 5.5: 8 unknown)")
    assert "5.5: unknown: the search stopped after depth 2 of 5 (timeout)" in cmp.notes(c)
    # violated at depth 4 against a search that finished depth 4 without it: a difference
    rs = verify(dataclasses.replace(s, kernel="replace-set"))
    for done, differ in ((3, False), (4, True)):
        c = cmp.compare(s, [cmp.Column("mainline", dataclasses.replace(held, unknown="timeout", depth_done=done)),
                            cmp.Column("replace-set", rs)])
        assert [d.property for d in c.differences] == (["no-leak"] if differ else []), done
    assert cmp.headline(c).startswith("differences: 1 of 8 properties: no-leak (mainline: unknown; replace-set: "
                                      "violated at depth 4)")
    assert [w.kernel for w in c.differences[0].why_not] == ["mainline"]


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
    # the difference's trace once: replace-set's own review points at it
    own = md[md.index("## Under `replace-set`"):]
    assert "  The trace is shown above, in Differences, `no-leak`." in own
    assert "\n  VIOLATED no-leak" not in own and md.count("\nVIOLATED no-leak: shortest trace has 4") == 1
    one = cli("review", DEFAULT_ZERO, "--kernel", "replace-set").stdout
    assert one.startswith("# Design review: replace-set-default-zero\n")
    assert "side by side" not in one and "## Under" not in one               # one --kernel: the single review
    assert one.count("\n  VIOLATED no-leak: shortest trace has 4") == 1          # (which prints the trace)
    cannot = cli("review", "specs/selftest-state.toml", "--kernel", "mainline", "--kernel", "replace-set").stdout
    assert "- `replace-set` cannot express the spec: specs/selftest-state.toml:17: patch 'test_klp_state'" in cannot


def test_sarif_has_one_run_per_profile():
    """One valid SARIF 2.1.0 log; each profile its own run and its own automationDetails id
    (GitHub code scanning's category: it no longer merges runs of one tool and category);
    every result names its profile; a profile that cannot express the spec is a run without
    results whose notification points at the key."""
    import jsonschema
    from test_ci import _sarif_schema

    args = ("verify", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "state-callbacks", "--kernel", "replace-set",
            "--format", "sarif")
    p = cli(*args)
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.Draft4Validator(_sarif_schema()).validate(doc)
    runs = doc["runs"]
    assert [r["automationDetails"]["id"] for r in runs] == [f"klpmodel/{DEFAULT_ZERO}/{k}/" for k in
                                                           ("mainline", "state-callbacks", "replace-set")]
    mainline, cannot, rs = runs
    assert mainline["results"] == [] and mainline["properties"]["verdict"] == "holds"
    (res,) = rs["results"]
    assert res["ruleId"] == "no-leak" and res["properties"] == {"kernel": "replace-set"}
    assert res["message"]["text"].startswith("under kernel replace-set: no-leak broken after 4 operations")
    assert rs["properties"]["comparison"]["no-leak"] == "violated at depth 4"
    single = json.loads(cli("verify", DEFAULT_ZERO, "--format", "sarif").stdout)["runs"][0]["results"][0]
    assert res["partialFingerprints"] != single["partialFingerprints"]      # the profile is part of the alert
    assert res["locations"] == single["locations"] and res["codeFlows"] == single["codeFlows"]
    (note,) = cannot["invocations"][0]["toolConfigurationNotifications"]
    assert cannot["results"] == [] and note["message"]["text"].startswith("kernel state-callbacks cannot express")
    assert note["locations"][0]["physicalLocation"]["region"]["startLine"] > 1
    assert cli(*args).stdout == p.stdout                                     # byte for byte on every run


def test_review_traces_go_to_a_folder_per_profile(tmp_path):
    out = tmp_path / "t"
    p = cli("review", DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set", "--traces", str(out),
            "-o", str(tmp_path / "r.md"))
    assert p.returncode == 0, p.stderr
    assert sorted(str(f.relative_to(out)) for f in out.rglob("*.trace.json")) == [
        "replace-set/no-leak.trace.json", "replace-set/pair-a-b-no-leak.trace.json",
        "replace-set/pair-b-a-no-leak.trace.json"]
    md = (tmp_path / "r.md").read_text()
    assert f"Trace file: `{out / 'replace-set' / 'no-leak.trace.json'}`" in md
    assert f"--kernel replace-set --traces {out / 'replace-set'}`" in md
    assert cli("replay", str(out / "replace-set" / "no-leak.trace.json"), "-q").returncode == 1


def test_profile_folders_follow_no_link_and_never_overwrite_an_input(tmp_path):
    """A symbolic link at DIR/PROFILE is refused before any work (for --out and --traces);
    the spec itself where a trace file would go is left as it was."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cmd, opt in (("verify", "--out"), ("review", "--traces")):
        out = tmp_path / cmd
        out.mkdir()
        (out / "replace-set").symlink_to(elsewhere)
        p = cli(cmd, DEFAULT_ZERO, "--kernel", "mainline", "--kernel", "replace-set", opt, str(out))
        assert p.returncode == 2 and p.stdout == "", p.stderr
        assert p.stderr == (f"klpmodel: error: {opt} {out}: {out / 'replace-set'} is a symbolic link; klpmodel does "
                            f"not write through links: remove it or give another directory\n")
        assert list(elsewhere.iterdir()) == []
    inside = tmp_path / "in" / "replace-set"
    inside.mkdir(parents=True)
    spec = inside / "no-leak.trace.json"                     # the spec, where replace-set's trace would go
    spec.write_bytes((ROOT / DEFAULT_ZERO).read_bytes())
    p = cli("review", str(spec), "--kernel", "mainline", "--kernel", "replace-set", "--traces", str(tmp_path / "in"))
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert "exists and is not a klpmodel trace file" in p.stderr and "--traces" in p.stderr
    assert spec.read_bytes() == (ROOT / DEFAULT_ZERO).read_bytes()


def test_a_timeout_before_the_last_profile_shows_what_finished():
    """The --timeout stops the first run (z3, depth 30): its verdicts are unknown, the next
    profile was not checked, and both say so, in text and JSON; exit 3 (unknown)."""
    args = ("verify", "specs/selftest-state.toml", "--engine", "z3", "--depth", "30", "--timeout", "6",
            "--kernel", "mainline", "--kernel", "5.5")
    p = cli(*args)
    assert p.returncode == 3, p.stderr
    lines = p.stdout.splitlines()
    assert lines[1] == "no comparison: only mainline was checked (5.5: timeout: not checked)"
    assert lines[2].startswith("mainline: unknown: the search stopped after depth ") and lines[2].endswith("(timeout)")
    assert lines[3] == ("5.5: timeout: not checked: the --timeout expired before its run; run it alone with "
                        "--kernel 5.5, or give a longer --timeout")
    row = next(x for x in lines if x.split()[:1] == ["no-leak"])
    assert row.split() == ["no-leak", "unknown", "timeout:", "not", "checked"]
    assert "==== kernel mainline ====" in p.stdout and "==== kernel 5.5 ====" not in p.stdout
    doc = json.loads(cli(*args, "-f", "json").stdout)
    validate(doc, "verify-compare.schema.json")
    assert doc["comparison"]["not_checked"] == {"5.5": "timeout"} and set(doc["reports"]) == {"mainline"}
    assert doc["comparison"]["verdicts"]["no-leak"]["5.5"] == {"verdict": "not-checked", "reason": "timeout"}
    sarif = cli(*args, "-f", "sarif")                      # no run for 5.5 (its alerts stay); the run says so
    assert sarif.returncode == 3
    (run,) = json.loads(sarif.stdout)["runs"]
    assert run["automationDetails"]["id"] == "klpmodel/specs/selftest-state.toml/mainline/"
    assert not run["invocations"][0]["executionSuccessful"]
    assert any(n["message"]["text"].startswith("kernel 5.5: timeout: not checked")
               for n in run["invocations"][0]["toolExecutionNotifications"])


def test_a_profile_not_checked_beside_two_that_ran():
    """Two profiles finished, the third was not checked: the comparison of the two, the third
    named in the headline and in its column; exit 3 even with a violation."""
    from klpmodel import compare as cmp
    from klpmodel.spec import load_spec
    from klpmodel.verify import verify

    s = load_spec(ROOT / DEFAULT_ZERO)
    cols = [cmp.Column(k, verify(dataclasses.replace(s, kernel=k))) for k in ("mainline", "replace-set")]
    c = cmp.compare(s, [*cols, cmp.Column("5.5", stopped="timeout")])
    assert cmp.headline(c) == ("differences: 1 of 8 properties: no-leak (mainline: holds; replace-set: violated at "
                               "depth 4) (5.5: timeout: not checked)")
    assert c.exit_code == 3 and str(c.verdicts["no-leak"]["5.5"]) == "timeout: not checked"
    assert [w.kernel for w in c.differences[0].why_not] == ["mainline"]
    text = cmp.text(c, {})
    assert "5.5: timeout: not checked: the --timeout expired before its run" in text
    ctrl_c = cmp.compare(s, [*cols, cmp.Column("5.5", stopped="interrupted (Ctrl-C)")])
    assert str(ctrl_c.verdicts["no-leak"]["5.5"]) == "interrupted: not checked"
    assert ("5.5: interrupted: not checked: interrupted (Ctrl-C) stopped the runs before it; run it alone with "
            "--kernel 5.5") in cmp.notes(ctrl_c)
    validate(cmp.to_json_doc(c), "verify-compare.schema.json")


def test_a_difference_names_the_profiles_that_have_a_verdict():
    """The DIFFERENCE line, like the headline, leaves out a profile that cannot express the
    spec (its column says so)."""
    p = cli("verify", "specs/disable-keeps-shared-bad.toml", "--kernel", "mainline", "--kernel", "state-callbacks",
            "--kernel", "replace-set")
    assert p.returncode == 1, p.stderr
    assert "\nDIFFERENCE disable-keeps-shared: mainline: violated at depth 5; replace-set: holds\n" in p.stdout
    assert [w.split()[3] for w in p.stdout.splitlines() if w.startswith("  why not under")] == ["replace-set"]


def test_a_property_asked_for_that_a_profile_lacks_is_a_not_applicable_column(write_spec):
    """-p no-leak with state-callbacks (v1 has no data): that profile's column says not
    applicable and the others run (it was an error, exit 2)."""
    spec = write_spec("[check]\ndepth = 3\n\n[states.s]\nid = 1\n\n[[patch]]\nname = \"a\"\nstates = { s = 1 }\n")
    args = ("verify", str(spec), "--kernel", "mainline", "--kernel", "state-callbacks", "-p", "no-leak")
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[1] == "no comparison: only mainline was checked (state-callbacks has none of the properties asked for)"
    assert lines[2].startswith("state-callbacks: not applicable: kernel profile state-callbacks has none of the "
                               "properties asked for (no-leak): v1 has no klp_state.version")
    assert [x.split() for x in lines[4:6]] == [["property", "mainline", "state-callbacks"],
                                               ["no-leak", "holds", "not", "applicable"]]
    doc = json.loads(cli(*args, "-f", "json").stdout)
    validate(doc, "verify-compare.schema.json")
    assert doc["comparison"]["verdicts"]["no-leak"]["state-callbacks"] == {"verdict": "not-applicable"}
    assert set(doc["reports"]) == {"mainline"}
    runs = json.loads(cli(*args, "-f", "sarif").stdout)["runs"]
    assert [r["properties"]["verdict"] for r in runs] == ["holds", "not-applicable"]
    bad = cli("verify", str(spec), "--kernel", "mainline", "--kernel", "state-callbacks", "-p", "nope")
    assert bad.returncode == 2 and "unknown property 'nope'" in bad.stderr
