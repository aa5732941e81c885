"""The typed read side of the rules (issue 12): consumers read states through kernel.View
and Model.say, events as events.py's dataclasses, refusals as events.Refusal; only
kernel.py builds or parses the name of a state variable."""
from __future__ import annotations

import re

from conftest import ROOT

from klpmodel.kernel import Model

# a state variable's name: kind[...] (phase[p], ptr[p.s], live[s#0], ...) or a monitor flag
_KINDS = r"(phase|pos|forced|replace|pue|ptr|snap_kind|snap_cont|mod|val|hi|snap_val|live|cont|param)"
VARIABLE = re.compile(r"""(?:f?["'])""" + _KINDS + r"""\[|\[\s*["'](leaked|tload|exempt|leak_since|switched|nops)["']\s*\]""")


def test_no_module_outside_kernel_py_builds_or_parses_a_variable_name():
    offenders = []
    for path in sorted((ROOT / "klpmodel").glob("*.py")):
        if path.name == "kernel.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if VARIABLE.search(line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []


def test_the_pattern_sees_what_it_looks_for():
    for line in ('x = state[f"phase[{p.name}]"]', "st['leaked']", 'name.startswith("ptr[")', "f'val[{s}]'"):
        assert VARIABLE.search(line), line
    for line in ('parts.append("leaked")', 'kind = "phase"', "value[0]"):
        assert not VARIABLE.search(line), line


def test_every_variable_has_words(tmp_path):
    """Model.say speaks every variable of a spec with a bit of everything."""
    spec = tmp_path / "s.toml"
    spec.write_text("""
[states.s]
id = 1
[modules.m]
params = { x = 1 }
[[patch]]
name = "p"
replace_param = "r"
params = { r = 0 }
states = { s = 1 }
[patch.objects.m]
""")
    from klpmodel.spec import load_spec
    m = Model(load_spec(spec))
    for var, value in m.init.items():
        text = m.say(var, value)
        assert text and "a value no reachable state has" not in text, var
