"""`klpmodel review`: every verdict the review states, on specs that flip it."""
from __future__ import annotations

import re

import pytest
from conftest import SPECS, cli

from klpmodel import review as rv
from klpmodel.engine_explicit import ExplicitEngine
from klpmodel.kernel import Model, Op
from klpmodel.properties import NAMES
from klpmodel.simulate import format_run, parse_run
from klpmodel.spec import load_spec

STATE = "[states.s]\nid = 1\n"


def patch(name: str, version: int | None = 1, replace: bool = True, **cbs) -> str:
    out = f'\n[[patch]]\nname = "{name}"\nreplace = {str(replace).lower()}\n'
    if version is not None:
        out += f"states = {{ s = {version} }}\n"
    if cbs:
        out += "[patch.objects.vmlinux]\n"
        for cb, stmts in cbs.items():
            out += f"{cb} = [{', '.join(repr(s) if chr(34) in s else chr(34) + s + chr(34) for s in stmts)}]\n"
    return out


# a well-behaved cumulative patch (the test_klp_state2 pattern)
GOOD = dict(pre_patch=["alloc s unless prev s"],
            post_patch=["take s if prev s", "return if prev s", "save s", "modify s"],
            pre_unpatch=["return if prev s", "restore s"],
            post_unpatch=["return if prev s", "free s"])


def flat(text: str) -> str:
    """Markdown with its line wrapping undone."""
    return " ".join(text.split())


def pairs(path, depth=None):
    spec = load_spec(path)
    alone: dict = {}
    d = spec.depth if depth is None else depth
    return {(p.name, q.name): rv.pair_verdict(spec, p.name, q.name, d, alone)
            for p in spec.patches for q in spec.patches if p is not q}


# ---------------------------------------------------------------- the sections


def test_selftest_review_has_every_section_and_is_deterministic():
    a = cli("review", "specs/selftest-state.toml")
    assert a.returncode == 0, a.stderr
    for heading in ("# Design review: kernel selftest console_loglevel series", "## Summary", "## The patches",
                    "## Compatibility matrix", "## Upgrade and downgrade paths", "## Property verdicts",
                    "## Coverage", "### Callbacks", "### Statements", "### Kernel actions",
                    "### What each property judges", "## The kernel lifecycle of one patch", "```mermaid",
                    "## Notes on the method"):
        assert f"\n{heading}\n" in "\n" + a.stdout, heading
    assert not re.search(r"<[A-Za-z/!]", a.stdout)                     # no HTML
    b = cli("review", "specs/selftest-state.toml")
    assert a.stdout == b.stdout
    assert "Time (s):" not in a.stdout
    assert "Time (s):" in cli("review", "specs/selftest-state.toml", "--stats").stdout


def test_patches_section_lists_states_versions_replace_and_callbacks():
    out = cli("review", "specs/selftest-state.toml").stdout
    assert "| 2 | `test_klp_state2` | 31 | yes | console_loglevel v2 | vmlinux |" in out
    assert "vmlinux: pre_patch (4, line 37), post_patch (6, line 41)" in out


# ---------------------------------------------------------------- the matrix


def test_refused_pair_is_a_downgrade_with_the_kernels_reason():
    got = pairs(SPECS / "selftest-state.toml")
    x = got[("test_klp_state2", "test_klp_state")]
    assert x.verdict == "refused"
    assert x.why == ("-EINVAL: not compatible with the already installed livepatches (test_klp_state declares "
                     "console_loglevel version 1 < 2 of installed test_klp_state2)")
    assert got[("test_klp_state", "test_klp_state2")].verdict == "safe"     # the upgrade is allowed


def test_refusal_flips_with_the_version(write_spec):
    down = pairs(write_spec(STATE + patch("a", 2, **GOOD) + patch("b", 1, **GOOD)))
    assert down[("a", "b")].verdict == "refused" and "version 1 < 2" in down[("a", "b")].why
    same = pairs(write_spec(STATE + patch("a", 2, **GOOD) + patch("b", 2, **GOOD)))
    assert same[("a", "b")].verdict == "safe"
    # a cumulative patch that does not declare an installed state is refused too
    missing = pairs(write_spec(STATE + patch("a", 1, **GOOD) + patch("b", None)))
    assert missing[("a", "b")].verdict == "refused" and "does not declare state s" in missing[("a", "b")].why
    stacked = pairs(write_spec(STATE + patch("a", 1, **GOOD) + patch("b", None, replace=False)))
    assert stacked[("a", "b")].verdict == "safe"


def test_unsafe_pair_from_a_bad_spec_flips_with_the_fix():
    bad = pairs(SPECS / "no-leak-bad.toml")[("lp_v1", "lp_v2")]
    assert bad.verdict == "unsafe"
    (v,) = bad.violations
    assert (v.property, v.depth) == ("no-leak", 4)
    assert [str(s.op) for s in v.trace] == ["load lp_v1", "complete", "load lp_v2", "complete"]
    good = pairs(SPECS / "no-leak-good.toml")[("lp_v1", "lp_v2")]
    assert good.verdict == "safe" and good.violations == ()


def test_unsafe_trace_replays_with_simulate_including_a_failing_choice(write_spec):
    # b's pre_patch allocates and may then fail without cleaning up
    b = ('\n[[patch]]\nname = "b"\nreplace = true\nstates = { s = 1 }\n[patch.objects.vmlinux]\n'
         'pre_patch = ["alloc s",\n             "maybe-fail -ENODEV"]\npost_unpatch = ["free s"]\n')
    path = write_spec(STATE + patch("a", 1, **GOOD) + b)
    x = pairs(path)[("a", "b")]
    assert x.verdict == "unsafe"
    v = next(v for v in x.violations if v.property == "error-cleanup")
    run = format_run((s.op, s.failed) for s in v.trace)
    maybe = load_spec(path).patch("b").objects[0].cb("pre_patch")[1]
    assert (maybe.text, run) == ("maybe-fail -ENODEV", "load a; complete; load b fail=b/vmlinux:pre_patch[1]")
    p = cli("simulate", str(path), "--run", run)
    assert p.returncode == 0 and "# violation: error-cleanup" in p.stdout
    md = cli("review", str(path)).stdout
    assert f'klpmodel simulate {path} --run "{run}"' in md
    # two fallible statements on one line: fail= names the second by its position
    one_line = write_spec(STATE + patch("a", 1, **GOOD) + b.replace(",\n             ", ", "), "one.toml")
    md = cli("review", str(one_line)).stdout
    assert 'load b fail=b/vmlinux:pre_patch[1]"' in md


def test_a_property_broken_without_q_is_not_counted_against_the_pair(write_spec):
    # a never restores on disable: disable-restores breaks with a alone
    lazy = dict(GOOD, pre_unpatch=[])
    x = pairs(write_spec(STATE + patch("a", 1, **lazy) + patch("b", None, replace=False)))[("a", "b")]
    assert x.verdict == "safe" and x.inherited == ("disable-restores",)
    y = pairs(write_spec(STATE + patch("a", 1, **GOOD) + patch("b", None, replace=False)))[("a", "b")]
    assert y.verdict == "safe" and y.inherited == ()


def test_a_patch_that_cannot_be_installed(write_spec):
    x = pairs(write_spec(patch("a", None, pre_patch=["fail"]) + patch("b", None)))
    assert x[("a", "b")].verdict == "not-installed" and "`load a` leaves it unloaded" in x[("a", "b")].why
    assert x[("b", "a")].verdict == "safe"
    y = pairs(write_spec(patch("a", None, pre_patch=["maybe-fail"]) + patch("b", None)))
    assert y[("a", "b")].verdict == "safe"


def test_matrix_cells_and_counts_in_the_markdown():
    out = cli("review", "specs/no-leak-bad.toml").stdout
    assert "| 1 `lp_v1` | - | UNSAFE |" in out and "| 2 `lp_v2` | refused | - |" in out
    assert "2 ordered pairs: 1 refused by the kernel, 0 allowed and safe, 1 allowed and unsafe." in out
    assert "livepatch: Livepatch patch (lp_v1) is not compatible with the already installed livepatches." in out
    one = cli("review", "specs/disable-restores-bad.toml").stdout
    assert "The series has one patch: there is no pair to load." in one


def test_traces_writes_a_trace_file_per_violation_shown_and_explain_reads_it(tmp_path):
    d = tmp_path / "t"
    p = cli("review", "specs/no-leak-bad.toml", "--traces", str(d))
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in d.iterdir()) == ["no-leak.itf.json", "no-leak.trace.json",
                                                   "pair-lp_v1-lp_v2-no-leak.itf.json",
                                                   "pair-lp_v1-lp_v2-no-leak.trace.json"]
    assert f"Trace file: `{d / 'pair-lp_v1-lp_v2-no-leak.trace.json'}`" in p.stdout
    assert f"Trace file: `{d / 'no-leak.trace.json'}`" in p.stdout
    e = cli("explain", str(d / "pair-lp_v1-lp_v2-no-leak.trace.json"))
    assert e.returncode == 0 and "violated: no-leak after step 4" in e.stdout
    assert "Trace file:" not in cli("review", "specs/no-leak-bad.toml").stdout      # only when asked


# ---------------------------------------------------------------- the engine options the matrix uses


def test_search_from_a_start_with_twin_patches_names_the_real_run(write_spec):
    """Interchangeable patches: the symmetry reduction may rename the start state; the
    trace must still start with the operation that was fixed, in real names."""
    leaky = dict(pre_patch=["alloc s"], post_patch=["save s", "modify s"], pre_unpatch=["restore s"],
                 post_unpatch=["free s"])
    spec = load_spec(write_spec(STATE + patch("a", 1, **leaky) + patch("b", 1, **leaky)))
    m = Model(spec)
    assert m.interchangeable() == [[0, 1]]
    start = rv._installed(m, "a")
    assert not isinstance(start, rv.NotInstalled)
    for symmetry in (True, False):
        eng = ExplicitEngine(m, symmetry=symmetry)
        res = eng.run(4, list(NAMES), start=start, first=[Op("load", "b")])
        _, raw = res.found["no-leak"]
        assert [str(o) for o in raw.ops] == ["load b", "complete"]


def test_format_run_is_the_inverse_of_parse_run():
    m = Model(load_spec(SPECS / "selftest-state.toml"))
    text = "load test_klp_state fail=test_klp_state/vmlinux:pre_patch[0]; complete; disable test_klp_state; reverse"
    ops = parse_run(text, m, "--run")
    assert format_run((r.op, tuple(m.choice_at("test_klp_state", "vmlinux", "pre_patch", 0)
                                   for _ in r.fails)) for r in ops) == text


# ---------------------------------------------------------------- upgrade and downgrade paths


def test_downgrade_refused_atomically_goes_through_a_disable():
    out = cli("review", "specs/selftest-state.toml").stdout
    assert ("The kernel refuses `load test_klp_state` over `test_klp_state2` but accepts\n  it after the disable: "
            "the version check does not see this downgrade.") in out
    assert "installed: none (klp_patches is empty);\n  console_loglevel is original" in out \
        or "installed: none (klp_patches is empty); console_loglevel is\n  original" in out
    assert "console_loglevel is v1 after the atomic path,\n  v2 after the non-atomic one." in out


def test_paths_show_what_the_window_exposes(write_spec):
    path = write_spec(STATE + patch("a", 1, **GOOD) + patch("b", 2, **GOOD))
    spec = load_spec(path)
    (up, down) = rv.moves(spec, Model(spec))
    assert (up.old, up.new, up.direction) == ("a", "b", "upgrade")
    assert (down.direction, down.atomic.refused[0]) == ("downgrade", Op("load", "a"))
    assert down.split.refused is None
    assert up.window["val[s]"] == 0 and not any(up.window[f"phase[{n}]"] in (1, 2, 3) for n in "ab")
    # a patch that does not restore on disable leaves its variant exposed in the window
    lazy = dict(GOOD, pre_unpatch=[])
    lazy_path = write_spec(STATE + patch("a", 1, **lazy) + patch("b", 2, **GOOD), "lazy.toml")
    spec = load_spec(lazy_path)
    up = rv.moves(spec, Model(spec))[0]
    md = flat(cli("review", str(lazy_path)).stdout)
    assert "Still changed in the window: s is v1." in md
    assert "Every system state is back to original in the window." in flat(cli("review", str(path)).stdout)
    assert up.window["val[s]"] != 0
    assert any(p == "disable-restores" for st in up.split.steps for p, _ in st.violations)
    assert not any(st.violations for st in up.atomic.steps)


def test_no_paths_without_version_changes(write_spec):
    spec = load_spec(write_spec(STATE + patch("a", 1, **GOOD) + patch("b", 1, **GOOD)))
    assert rv.moves(spec, Model(spec)) == []


# ---------------------------------------------------------------- coverage and vacuity

REACH = {   # property: (a spec that reaches what it judges, one that does not)
    "version-order": (patch("a", post_patch=["modify s"]), patch("a")),
    "revert-restores": (patch("a"), '[check]\noperations = ["load", "complete", "rmmod"]\n' + patch("a")),
    "disable-restores": (patch("a"), '[check]\noperations = ["load", "complete", "reverse", "rmmod"]\n' + patch("a")),
    "error-cleanup": (patch("a", pre_patch=["maybe-fail"]), patch("a", pre_patch=["log \"hi\""])),
    "no-use-after-free": (patch("a", pre_patch=["alloc s"], post_patch=["save s"], post_unpatch=["free s"]),
                          patch("a", pre_patch=["alloc s"], post_unpatch=["free s"])),
    "no-double-free": (patch("a", pre_patch=["alloc s"], post_unpatch=["free s"]), patch("a", pre_patch=["alloc s"])),
    "no-null-deref": (patch("a", post_patch=["modify s", "take s if prev s"]) + patch("b", 2, post_patch=["take s"]),
                      patch("a", post_patch=["modify s"])),
    "no-leak": (patch("a", pre_patch=["alloc s"]), patch("a", pre_patch=["return", "alloc s"])),
}


@pytest.mark.parametrize("prop", NAMES)
def test_what_a_property_judges_is_reached_or_not(prop, write_spec):
    yes, no = REACH[prop]
    reached = rv.coverage(Model(load_spec(write_spec(STATE + yes, "yes.toml"))), 6)
    missed = rv.coverage(Model(load_spec(write_spec(STATE + no, "no.toml"))), 6)
    assert reached.judged[prop] > 0 and missed.judged[prop] == 0


def test_vacuity_flag_flips(write_spec):
    vac = cli("review", str(write_spec(STATE + patch("a", pre_patch=["log \"hi\""]), "vac.toml"))).stdout
    assert "| error-cleanup | holds (vacuous) | - | never |" in vac
    assert "error-cleanup" in flat(vac).split("vacuous properties: ")[1].split(".")[0]
    ok = cli("review", str(write_spec(STATE + patch("a", pre_patch=["maybe-fail"]), "ok.toml"))).stdout
    assert "| error-cleanup | holds | - |" in ok
    assert "error-cleanup" not in flat(ok).split("vacuous properties: ")[1].split(".")[0]
    # violated is never vacuous
    bad = cli("review", "specs/error-cleanup-bad.toml").stdout
    assert "| error-cleanup | VIOLATED | 1 operation |" in bad
    assert "No property holds vacuously." in cli("review", "specs/selftest-state.toml").stdout


def test_statement_coverage_names_lines_and_reasons(write_spec):
    out = cli("review", "specs/selftest-state.toml").stdout
    assert "41 of 45 statements ran." in out
    assert "- specs/selftest-state.toml:48: `return if prev console_loglevel`\n  (test_klp_state2 vmlinux " \
           "pre_unpatch): its condition never held" in out
    path = write_spec(STATE + patch("a", pre_patch=["alloc s", "maybe-fail"], pre_patch_error=["free s"],
                                    post_patch=["return", "modify s"], post_unpatch=["free s"]))
    cov = rv.coverage(Model(load_spec(path)), 6)
    assert cov.callbacks[("a", "vmlinux", "pre_patch_error")] > 0
    md = flat(cli("review", str(path)).stdout)
    assert "`modify s` (a vmlinux post_patch): an earlier statement always ended the callback" in md
    quiet = write_spec(STATE + patch("a", pre_patch=['log "no allocation, cannot fail"'], pre_patch_error=["free s"]),
                       "quiet.toml")
    assert "`free s` (a vmlinux pre_patch_error): pre_patch never failed" in flat(cli("review", str(quiet)).stdout)


def test_coverage_says_when_it_saw_every_reachable_state():
    bounded = flat(cli("review", "specs/selftest-state.toml", "--depth", "5").stdout)
    assert "within the depth: what never ran here may run in a longer sequence" in bounded
    assert "Coverage (depth 5): 41 of 45 statements ran (never: specs/selftest-state.toml lines 47, 48, 72, 73)" \
        in bounded
    assert "Properties: all 8 hold for every sequence of up to 5 operations." in bounded
    # at depth 8 the verdicts' search (rmmod folded: docs/design.md, Reductions) is exhausted,
    # and so is the coverage's
    full = flat(cli("review", "specs/selftest-state.toml").stdout)
    assert "every reachable state: what never ran here cannot run in any sequence" in full
    assert "to exhaustion (30 states, each rmmod folded into the next load and run too" in full
    assert "Coverage (every reachable state): 41 of 45" in full
    assert ("Properties: all 8 hold for sequences of any length (the 18 reachable states were exhausted, "
            "each rmmod folded into the next load).") in full


def test_a_complete_z3_verdict_is_worded_without_a_state_count(write_spec):
    """Z3 knows no reachable state count: its completeness (every longer sequence revisits a
    state) used to crash the review (plural(None)) and read "the None reachable states"."""
    p = cli("review", str(write_spec('[[patch]]\nname = "a"\n')), "--engine", "z3", "--depth", "8")
    assert p.returncode == 0, p.stderr
    md = flat(p.stdout)
    assert "None" not in md
    assert ("complete: every sequence of more than 5 operations revisits a state before its last step" in md)
    assert ("Properties: all 8 hold for sequences of any length (every sequence of more than 5 operations "
            "revisits a state)." in md)


def test_kernel_action_coverage():
    out = cli("review", "specs/selftest-state.toml").stdout
    assert "| force | patching -> patching | never (`force` is not in [check] operations) |" in out
    assert "| replaced | enabled -> off-list | all |" in out
    mod = cli("review", "specs/module-state.toml").stdout
    assert "| force | patching -> patching | all |" in mod
    assert "| replaced | enabled -> off-list | lp_mod1 |" in mod     # lp_mod1 cannot load over lp_mod2


# ---------------------------------------------------------------- the command line


def test_output_file_is_written_and_the_spec_is_never_overwritten(tmp_path):
    out = tmp_path / "review.md"
    out.write_text("old")
    p = cli("review", "specs/no-leak-good.toml", "-o", str(out))
    assert p.returncode == 0 and p.stdout == ""
    assert out.read_text().startswith("# Design review: ")
    before = (SPECS / "no-leak-good.toml").read_text()
    p = cli("review", "specs/no-leak-good.toml", "-o", "specs/../specs/no-leak-good.toml")
    assert p.returncode == 2
    assert p.stderr.splitlines() == ["klpmodel: error: specs/../specs/no-leak-good.toml: -o names a file that is an "
                                     "input of this command (specs/no-leak-good.toml); write the output to another file"]
    assert (SPECS / "no-leak-good.toml").read_text() == before


def test_errors_are_one_line_exit_2(write_spec, tmp_path):
    bad = write_spec('[[patch]]\nname = "a"\nreplace = "yes"\n')
    for args, msg in [((str(bad),), f"klpmodel: error: {bad}:3: replace must be true or false, not 'yes'"),
                      (("specs/selftest-state.toml", "--depth", "0"), "klpmodel: error: --depth must be at least 1, not 0"),
                      (("specs/selftest-state.toml", "-o", str(tmp_path / "no" / "r.md")),
                       f"klpmodel: error: {tmp_path / 'no' / 'r.md'}: cannot write: No such file or directory"),
                      (("nope.toml",), "klpmodel: error: nope.toml: no such file")]:
        p = cli("review", *args)
        assert p.returncode == 2, args
        assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith(msg), p.stderr
        assert "Traceback" not in p.stderr


def test_the_committed_example_is_what_the_command_writes():
    """docs/examples/review-selftest-state.md is generated; regenerate it with the command
    it names when the review or the rules change."""
    from conftest import ROOT

    example = (ROOT / "docs" / "examples" / "review-selftest-state.md").read_text()
    assert "Generated by `klpmodel review specs/selftest-state.toml --depth 12`." in example
    assert cli("review", "specs/selftest-state.toml", "--depth", "12").stdout == example
