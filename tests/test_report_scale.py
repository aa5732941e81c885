"""Outputs that scale with the series (issue 13, item 6): refused loads summarised by rule,
the review's caps and what they leave out, --max-counterexamples' cap."""
from __future__ import annotations

import json
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
    assert pairs_text(pairs, order) == "r01..r04 -> r05..r10, r09 -> r01"
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
