"""Outputs that scale with the series (issue 13, item 6): refused loads summarised by rule,
the review's caps and what they leave out, --max-counterexamples' cap."""
from __future__ import annotations

import json
import re
import sys

import pytest
from conftest import ROOT, cli

from klpmodel import report
from klpmodel.kernel import Model
from klpmodel.spec import load_spec
from klpmodel.words import pairs_text, rectangles, runs

sys.path.insert(0, str(ROOT / "bench"))
import bench  # bench/bench.py: the generated series


def series(write_spec, releases: int, *, bump: bool = True, states: int = 2, modules: int = 1, name: str = "s.toml"):
    """bench.cumulative: state s_k's version goes up every 4*k releases. Without `bump` every
    release declares version 1 of every state (the same series, no version bump)."""
    text = bench.cumulative(releases, states=states, modules=modules)
    if not bump:
        import re
        text = re.sub(r"(s\d+) = \d+", r"\1 = 1", text)
    return write_spec(text, name)


# ---------------------------------------------------------------- words


def test_runs_and_rectangles():
    order = [f"r{i:02d}" for i in range(1, 11)]
    assert runs(["r01", "r02", "r03", "r04", "r07", "r09", "r10"], order) == "r01..r04, r07, r09, r10"
    assert runs(["r02", "r01"], order, lambda n: f"`{n}`") == "`r01`, `r02`"
    pairs = [(a, b) for a in order[:4] for b in order[4:]] + [("r09", "r01")]
    assert rectangles(pairs, order) == [(order[:4], order[4:]), (["r09"], ["r01"])]
    assert pairs_text(pairs, order) == "r01..r04 -> r05..r10; r09 -> r01"
    # every pair is in exactly one product
    got = {(a, b) for a_s, b_s in rectangles(pairs, order) for a in a_s for b in b_s}
    assert got == set(pairs)


# ---------------------------------------------------------------- refused loads, by rule


def test_refused_loads_are_summarised_by_rule_across_a_version_bump(write_spec):
    path = series(write_spec, 16)
    m = Model(load_spec(path))
    refused = m.refused_loads()
    assert len(refused) == 4 * 12 + 4 * 8 + 4 * 4            # every downgrade across a bump of s1
    lines = report.refused_rules(m)
    assert lines == ["r01..r04 declare s1 version 1 < 2, 3 or 4 of whichever of r05..r16 is installed (48 loads)",
                     "r05..r08 declare s1 version 2 < 3 or 4 of whichever of r09..r16 is installed (32 loads)",
                     "r09..r12 declare s1 version 3 < 4 of whichever of r13..r16 is installed (16 loads)"]
    p = cli("verify", str(path), "--depth", "2")
    assert p.returncode == 0, p.stderr
    assert [ln for ln in p.stdout.splitlines() if ln.startswith("  - ")] == [f"  - {ln}" for ln in lines]
    assert "(a..b: every patch from a to b in spec order)" in p.stdout
    # JSON keeps the exact list, one sentence per pair, and adds the summary
    doc = json.loads(cli("verify", str(path), "--depth", "2", "--format", "json").stdout)
    assert doc["refused_loads"] == [str(x) for x in refused]
    assert "r01 declares s1 version 1 < 2 of installed r05" in doc["refused_loads"]
    assert doc["refused_summary"] == lines


def test_no_version_bump_no_refusal_line(write_spec):
    path = series(write_spec, 8, bump=False)
    assert Model(load_spec(path)).refused_loads() == []
    out = cli("verify", str(path), "--depth", "2").stdout
    assert "refuses these loads" not in out and "declare" not in out
    assert json.loads(cli("verify", str(path), "--depth", "2", "-f", "json").stdout)["refused_summary"] == []


def test_a_single_refused_pair_keeps_the_kernels_sentence_and_other_rules_group_apart(write_spec):
    st = "[states.s]\nid = 1\n[states.t]\nid = 2\n"
    two = st + "".join(f'\n[[patch]]\nname = "{n}"\nreplace = true\nstates = {{ {d} }}\n'
                       for n, d in (("a", "s = 1"), ("b", "s = 2"), ("c", "s = 2, t = 1"), ("d", "s = 2, t = 1")))
    m = Model(load_spec(write_spec(two)))
    assert report.refused_rules(m) == [
        "a declares s version 1 < 2 of whichever of b..d is installed (3 loads)",
        "cumulative b does not declare state t of whichever of c, d is installed (2 loads)"]
    # a over c fails on s first (the kernel checks the installed patch's states in order)
    assert {(x.new, x.old, x.rule) for x in m.refused_loads()} == {
        ("a", "b", "version"), ("a", "c", "version"), ("a", "d", "version"), ("b", "c", "undeclared"),
        ("b", "d", "undeclared")}
    one = Model(load_spec(write_spec(st + two.split(st)[1].split('\n[[patch]]\nname = "c"')[0], "one.toml")))
    assert report.refused_rules(one) == ["a declares s version 1 < 2 of installed b"]


@pytest.mark.parametrize("bump", [True, False])
def test_refusal_carries_its_rule(write_spec, bump):
    from klpmodel import interp
    from klpmodel.kernel import Op
    m = Model(load_spec(series(write_spec, 5, bump=bump, states=1, modules=0)))
    st = interp.initial(m)
    for op in (Op("load", "r05"), Op("complete")):
        st = interp.apply(m, st, op).state
    why = interp.refusal(m, st, Op("load", "r01"))
    if bump:
        assert why is not None and why.cause is not None
        assert (why.cause.rule, why.cause.state, why.cause.version, why.cause.installed) == ("version", "s1", 1, 2)
    else:
        assert why is None


# ---------------------------------------------------------------- --max-counterexamples


def test_max_counterexamples_says_when_it_left_traces_out(write_spec):
    # three patches whose load can fail in pre_patch after an allocation: error-cleanup has
    # exactly three shortest traces (one operation each; no two patches are interchangeable)
    text = "".join(f"[states.{s}]\nid = {k}\n" for k, s in enumerate("stu", 1))
    text += "".join(f'\n[[patch]]\nname = "{n}"\nstates = {{ {s} = 1 }}\n[patch.objects.vmlinux]\n'
                    f'pre_patch = ["alloc {s}", "maybe-fail"]\n' for n, s in zip("abc", "stu", strict=True))
    path = str(write_spec(text))
    from klpmodel.verify import verify
    assert len(verify(load_spec(path), properties=["error-cleanup"], max_counterexamples=50)
               .traces("error-cleanup")) == 3
    note = "more shortest traces of error-cleanup exist than the 2 shown: not shown (--max-counterexamples 3"
    two = cli("verify", path, "-p", "error-cleanup", "-n", "2")
    assert two.returncode == 1 and note in two.stdout
    assert "shortest trace 2 of 2" in two.stdout and "shortest trace 3" not in two.stdout
    three = cli("verify", path, "-p", "error-cleanup", "-n", "3")
    assert "shortest trace 3 of 3" in three.stdout and "more shortest traces" not in three.stdout
    doc = json.loads(cli("verify", path, "-p", "error-cleanup", "-n", "2", "-f", "json").stdout)
    (v,) = doc["violations"]
    assert len(v["more"]) == 1 and v["more_not_shown"] is True
    (w,) = json.loads(cli("verify", path, "-p", "error-cleanup", "-n", "3", "-f", "json").stdout)["violations"]
    assert len(w["more"]) == 2 and "more_not_shown" not in w
    from test_ci import validate
    validate(doc, "verify-report.schema.json")


def test_max_counterexamples_has_a_maximum():
    ok = cli("verify", "specs/no-leak-bad.toml", "-n", "100", "-q")
    assert ok.returncode == 1, ok.stderr
    bad = cli("verify", "specs/no-leak-bad.toml", "-n", "101")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "klpmodel: error: --max-counterexamples must be at most 100, not 101"


# ---------------------------------------------------------------- the review's caps

LINE_CAP = 600          # issue 13: a 16-release review stays under ~600 lines


def test_a_16_release_review_stays_under_the_cap_and_says_what_it_left_out(write_spec):
    """16 releases (2 states, 1 target module; depth 3 to keep the test quick: the sections'
    length does not grow with the depth). Before issue 13 this review had over 11,000 lines."""
    from klpmodel import review as rv
    path = series(write_spec, 16)
    p = cli("review", str(path), "--depth", "3")
    assert p.returncode == 0, p.stderr
    md = p.stdout
    assert len(md.splitlines()) < LINE_CAP
    # what is unsafe comes first: the verdicts right after the summary
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[:3] == ["## Summary", "## Property verdicts", "## The patches"]
    # refused loads: one line per rule, not one per pair
    flat_md = " ".join(md.split())
    assert ("`r01`..`r04` declare s1 version 1 < 2, 3 or 4 of whichever of `r05`..`r16` is installed "
            "(48 loads).") in flat_md
    assert "The kernel refuses 96 loads (the `refused` cells)" in flat_md
    assert "### `r01` installed" not in md                      # no section per pair
    # the path groups: 12, of which MAX_PATH_GROUPS step by step, and the rest said
    spec = load_spec(path)
    review = rv.review(spec, depth=3)
    groups = rv.move_groups(review)
    assert len(review.moves) == 192 and len(groups) == 12
    left = len(groups) - rv.MAX_PATH_GROUPS
    assert f"{left} more groups not shown step by step" in flat_md
    assert f"`klpmodel review {path} --depth 3 --all` shows every one." in flat_md
    assert f"Not shown in full (each section says what it left out): {left} of 12 path groups" in flat_md
    shown = [ln for ln in md.splitlines() if ln.startswith("### ") and " -> " in ln]
    assert len(shown) == rv.MAX_PATH_GROUPS
    # one of each kind first: the downgrades the version check misses, and an upgrade
    assert any("downgrade" in ln for ln in shown) and any("upgrade" in ln for ln in shown)
    # --all shows every group, and says nothing was left out
    full = cli("review", str(path), "--depth", "3", "--all").stdout
    assert len([ln for ln in full.splitlines() if ln.startswith("### ") and " -> " in ln]) == 12
    assert "not shown" not in full and "Not shown in full" not in full


def test_the_groups_of_paths_read_the_same_names_aside(write_spec):
    """Every move of a group renders the same text once its two names are taken out; moves
    with other versions are in other groups."""
    from klpmodel import review as rv
    review = rv.review(load_spec(series(write_spec, 12, modules=0)), depth=2)
    groups = rv.move_groups(review)
    for g in groups:
        texts = {rv._anonymous(rv._move_body(review, mv), mv.old, mv.new) for mv in g.moves}
        assert len(texts) == 1
        assert len({mv.versions for mv in g.moves}) == 1
    assert sum(len(g.moves) for g in groups) == len(review.moves)
    assert len({g.first.versions for g in groups}) == len(groups)


def test_no_version_bump_no_refused_pairs_and_no_paths(write_spec):
    md = cli("review", str(series(write_spec, 9, bump=False, modules=0)), "--depth", "2").stdout
    assert "### Refused pairs" not in md and " version 1 < " not in md and "refused by the kernel, " in md
    assert "Pairs (P installed, Q loaded): 0 refused by the kernel" in md
    assert "No two patches declare the same state with different versions." in md
    assert "not shown" not in md


LEAKY = ('\n[[patch]]\nname = "{n}"\nreplace = true\nstates = {{ s = 1 }}\n[patch.objects.vmlinux]\n'
         'pre_patch = ["alloc s"]\npost_patch = ["save s", "modify s"]\npre_unpatch = ["restore s"]\n'
         'post_unpatch = ["free s"]\n')


@pytest.mark.parametrize("patches", [2, 3, 4])
def test_unsafe_pairs_are_capped_and_the_rest_named(write_spec, patches):
    """Each patch leaks the block of the one it replaces: every pair is unsafe (no-leak).
    2 patches: 2 unsafe pairs (under the cap: all shown), 3: 6, 4: 12; the review shows
    MAX_UNSAFE_PAIRS of them and names the others."""
    from klpmodel import review as rv
    path = write_spec("[states.s]\nid = 1\n" + "".join(LEAKY.format(n=f"p{k}") for k in range(1, patches + 1)))
    md = cli("review", str(path), "--depth", "4").stdout
    n = patches * (patches - 1)
    assert f"0 allowed and safe, {n} allowed and unsafe" in md
    sections = [ln for ln in md.splitlines() if ln.startswith("#### ")]
    assert len(sections) == min(n, rv.MAX_UNSAFE_PAIRS)
    left = n - rv.MAX_UNSAFE_PAIRS
    flat_md = " ".join(md.split())
    if left > 0:
        assert re.search(f"{left} more unsafe pairs? not shown: .*\\(breaking [a-z, -]*no-leak\\)", flat_md)
        assert f"Not shown in full (each section says what it left out): {left} of {n} unsafe pairs" in flat_md
    else:
        assert "not shown" not in flat_md
    full = cli("review", str(path), "--depth", "4", "--all").stdout
    assert len([ln for ln in full.splitlines() if ln.startswith("#### ")]) == n
    # the summary names every unsafe pair, shown or not
    names = [f"p{k}" for k in range(1, patches + 1)]
    every = [(a, b) for a in names for b in names if a != b]
    assert "allowed and unsafe: " + pairs_text(every, names, lambda x: f"`{x}`") + "." in flat_md


def test_traces_are_written_for_the_pairs_shown(write_spec, tmp_path):
    from klpmodel import review as rv
    path = write_spec("[states.s]\nid = 1\n" + "".join(LEAKY.format(n=f"p{k}") for k in range(1, 4)))
    d = tmp_path / "t"
    p = cli("review", str(path), "--depth", "4", "--traces", str(d))
    assert p.returncode == 0, p.stderr
    pairs = {m.group(0) for x in d.iterdir() if (m := re.match(r"pair-p\d-p\d", x.name))}
    assert len(pairs) == rv.MAX_UNSAFE_PAIRS
    for name in pairs:
        assert f"{d / name}-no-leak.trace.json`" in p.stdout


def test_long_lists_are_capped_with_a_count(write_spec):
    """Depth 1: most statements of 16 releases never run (nothing completes; 3 states: 15
    statements of each release). The summary's line numbers and the Statements list stop at
    MAX_ITEMS and count the rest; --all lists them all."""
    from klpmodel import review as rv

    def never_ran(text: str) -> list[str]:
        return [ln for ln in text.split("\nNever ran:\n")[1].split("\n\n#")[0].split("\nCondition")[0]
                .splitlines() if ln.startswith("- ")]

    path = series(write_spec, 16, states=3)
    raw = cli("review", str(path), "--depth", "1").stdout
    md = " ".join(raw.split())
    never = re.search(r"\(never: \S+ lines ([\d, ]+) and (\d+) more\)", md)
    assert never and len(never.group(1).split(", ")) == rv.MAX_ITEMS
    more = re.search(r"(\d+) more statements not shown; `klpmodel review \S+ --depth 1 --all` shows every one", md)
    assert more and len(never_ran(raw)) == rv.MAX_ITEMS
    full = cli("review", str(path), "--depth", "1", "--all").stdout
    assert "more statements not shown" not in full and "more)" not in full
    assert len(never_ran(full)) == rv.MAX_ITEMS + int(more.group(1))
