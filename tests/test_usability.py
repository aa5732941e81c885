"""Small things a user hit (issue 11, item 11): help in the user's words and `-h`, plain
usage errors, `graph SPEC`, DOT labels with real line breaks, plurals, prove's timeout with
the default method, and prove-theory's invariants in named variables."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, cli

from klpmodel.properties import NAMES

COMMANDS = ["verify", "simulate", "conformance", "graph", "explain", "replay", "kselftest", "check", "prove",
            "prove-theory", "examples", "review"]


def wide(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "klpmodel", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


# ------------------------------------------------------------------ help

@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)], ids=lambda c: c[0] if c else "klpmodel")
def test_help_shows_what_to_write_not_python_types_and_h_works(command):
    long, short = wide(*command, "--help"), wide(*command, "-h")
    assert long.returncode == 0 and short.returncode == 0, short.stderr
    assert long.stdout == short.stdout and "Usage:" in long.stdout
    for python_type in ("<bool>", "<list[str]>", "<int>", "<float>", "<str>", "<path>", "<list"):
        assert python_type not in long.stdout, python_type


def test_property_help_lists_the_property_names():
    for command, names in (("verify", [*NAMES, "recoverable"]), ("prove", NAMES)):
        text = " ".join(w for w in wide(command, "--help").stdout.split() if w.strip("│╭╮╰╯─"))
        for name in names:
            assert name in text, (command, name)


def test_option_values_are_named():
    text = wide("verify", "--help").stdout
    for line, value in (("--depth", "N"), ("--timeout", "SECONDS"), ("--property", "PROPERTY")):
        assert re.search(rf"{line}\s.*\b{value}\b", text), line


# ------------------------------------------------------------------ usage errors

@pytest.mark.parametrize("args, message", [
    (["--depth", "abc"], "Invalid value for '--depth' / '-d': 'abc' is not a whole number"),
    (["--depth", "1.5"], "Invalid value for '--depth' / '-d': '1.5' is not a whole number"),
    (["--timeout", "soon"], "Invalid value for '--timeout': 'soon' is not a number"),
    (["--format", "xml"], "Invalid value for '--format' / '-f': 'xml' is not one of 'text', 'json', 'sarif'"),
    (["--engine", "fast"], "Invalid value for '--engine' / '-e': 'fast' is not one of 'auto', 'explicit', 'z3'"),
])
def test_usage_errors_are_plain_one_line(args, message):
    p = cli("verify", "specs/no-leak-good.toml", *args)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == f"klpmodel: error: {message}; see 'klpmodel verify --help'\n"
    for pydantic in ("Value error", "Input should be", "pydantic", "validation error"):
        assert pydantic not in p.stderr


# ------------------------------------------------------------------ graph

def test_graph_spec_without_mode_draws_its_states():
    assert cli("graph", "specs/no-leak-bad.toml", "--depth", "3").stdout == \
        cli("graph", "specs/no-leak-bad.toml", "--states", "--depth", "3").stdout
    p = cli("graph", "--lifecycle", "specs/no-leak-bad.toml")
    assert p.returncode == 2 and "needs no spec" in p.stderr
    p = cli("graph")
    assert p.returncode == 2 and "klpmodel graph SPEC" in p.stderr and "--lifecycle" in p.stderr


def _dot_labels(text: str) -> list[str]:
    """The labels of a DOT file, unescaped as Graphviz reads them (\\n is a line break)."""
    out = []
    for raw in re.findall(r'label="((?:[^"\\]|\\.)*)"', text):
        out.append(re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), raw))
    return out


def test_dot_labels_break_lines_instead_of_showing_backslash_n(write_spec):
    from klpmodel.graph import quote

    p = cli("graph", "specs/no-leak-bad.toml", "--states", "--depth", "3")
    assert p.returncode == 0
    assert "\\\\n" not in p.stdout                                  # the bug: a literal \n drawn in the box
    labels = _dot_labels(p.stdout)
    assert "lp_v1: patching\nloglevel=original" in labels         # two lines in the box
    assert quote('a "b"\\c\nd\x07') == '"a \\"b\\"\\\\c\\nd"'        # quotes, backslashes, breaks; no control chars
    odd = write_spec('name = "say \\"hi\\" \\\\ back"\n[states.s]\nid = 1\n[[patch]]\nname = "p"\nstates = { s = 1 }\n')
    p = cli("graph", str(odd), "--depth", "1")
    assert p.stdout.startswith('digraph "say \\"hi\\" \\\\ back" {')
    m = cli("graph", "specs/no-leak-bad.toml", "--states", "--depth", "3", "--format", "mermaid").stdout
    assert "lp_v1: patching<br/>loglevel=original" in m and "\\n" not in m


# ------------------------------------------------------------------ plurals

def test_counts_agree_with_their_nouns(write_spec):
    p = cli("verify", "specs/no-leak-good.toml", "--depth", "1")
    assert "no sequence of up to 1 operation breaks" in p.stdout
    assert "up to 1 operations" not in p.stdout
    one = write_spec('[states.s]\nid = 1\n[modules.m]\n[[patch]]\nname = "p"\nstates = { s = 1 }\n')
    c = cli("check", str(one))
    assert c.returncode == 0, c.stderr
    assert c.stdout.endswith("ok (1 patch, 1 state, 1 target module)\n")
    assert cli("check", "specs/selftest-state.toml").stdout.endswith("ok (3 patches, 1 state, 0 target modules)\n")


def test_plural_helper():
    from klpmodel.words import plural

    assert [plural(n, "operation") for n in (0, 1, 2)] == ["0 operations", "1 operation", "2 operations"]
    assert plural(2, "property") == "2 properties" and plural(1, "patch") == "1 patch"
    assert plural(3, "target module") == "3 target modules" and plural(2, "reachable state") == "2 reachable states"


# ------------------------------------------------------------------ prove

def test_prove_timeout_reaches_the_default_method(write_spec):
    """--timeout with the default method (auto) stops both routes: the verdict is unknown, no
    property is proved or violated past the deadline. (The spec: 12 compatible patches over two
    states, about 256k reachable states: neither route can finish in the 1 s given, which
    itself is past start-up on a busy machine.)"""
    text = '[states.a]\nid = 1\n[states.b]\nid = 2\n' + "".join(
        f'[[patch]]\nname = "lp{i}"\nstates = {{ {"ab"[i % 2]} = 1 }}\n[patch.objects.vmlinux]\n'
        f'pre_patch = ["alloc {"ab"[i % 2]}"]\npost_unpatch = ["free {"ab"[i % 2]}"]\n' for i in range(12))
    p = cli("prove", str(write_spec(text)), "--timeout", "1", "--format", "json")
    assert p.returncode == 3, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["method"] == "auto" and r["verdict"] == "unknown"
    assert all(e["verdict"] == "unknown" and "timeout" in e["note"] for e in r["properties"])


def test_prove_text_gives_one_invariant_count():
    p = cli("prove", "specs/version-order-good.toml", "--method", "induction", "--max-k", "6")
    assert p.returncode == 0, p.stdout
    head = p.stdout.splitlines()[2]
    assert re.search(r"; \d+ auxiliary invariants proved, of \d+ candidate facts read off \d+ reachable states", head)
    assert "proved inductive (Houdini)" not in head and "more proved" not in head
    assert not re.search(r"with \d+ auxiliary invariant", p.stdout)


# ------------------------------------------------------------------ prove-theory

def test_invariant_lines_name_variables_and_read_plainly():
    import z3

    from klpmodel.theory import invariant_lines

    mode, ed, val, sv, lk = z3.Ints("mode eD val sV") + [z3.Bool("lk")]
    inv = z3.And(z3.Or(z3.Not(mode >= 4), z3.Not(mode <= 5), z3.Not(ed <= 0)), z3.Not(lk),
                 z3.Or(z3.Not(val + -1 * sv >= 1), z3.Not(mode == 2)), z3.Or(z3.Not(ed >= 1), lk))
    names = {"mode": "mode", "eD": "E.declares", "val": "value", "sV": "saved.value", "lk": "leaked"}
    lines = invariant_lines(inv, names, {"mode": {2: "load T", 4: "reversed load T", 5: "reversed load T over E"}},
                            frozenset({"eD"}))
    assert lines == ["never: mode in {reversed load T, reversed load T over E} and not E.declares",
                     "not leaked",
                     "never: value > saved.value and mode is load T",
                     "if E.declares then leaked"]


def test_invariant_lines_leave_the_callers_values_alone():
    """A flag used to be marked inside the caller's dict of value names (proofs/_klp.py's
    module-level VALUES): a later call with other flags saw it."""
    import z3

    from klpmodel.theory import invariant_lines

    mode = z3.Int("mode")
    values = {"mode": {0: "idle", 1: "busy"}}
    assert invariant_lines(mode >= 1, {"mode": "mode"}, values, frozenset({"mode"})) == ["mode"]
    assert values == {"mode": {0: "idle", 1: "busy"}}
    assert invariant_lines(mode >= 1, {"mode": "mode"}, values) == ["mode >= 1"]


def test_prove_theory_prints_invariants_in_named_variables():
    for f in ("c_cumulative_recipe.py", "e_noncumulative_own_block.py"):        # the two with invariants
        o = cli("prove-theory", f"proofs/{f}")
        assert o.returncode == 0, o.stdout + o.stderr
        for raw in ("Not(", "And(", "Or(", "Var(", "+ -1*", "[else ->"):
            assert raw not in o.stdout, raw
        assert re.search(r"inductive invariant found by Spacer .*\d+ conjuncts\):\n", o.stdout)
        assert "\n  where:\n" in o.stdout and "    leaked " in o.stdout
        # every name the invariant uses is explained under where:
        body = o.stdout.split("conjuncts):\n")[1].split("\n  where:\n")
        legend = {line.split()[0] for line in body[1].splitlines() if line.startswith("    ")}
        used = set(re.findall(r"\b[A-Za-z][A-Za-z]*(?:\.[A-Za-z]+)+\b", body[0]))
        assert used <= legend, used - legend
