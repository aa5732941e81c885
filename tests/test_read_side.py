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


ONE_MORE = """
[states.s]
id = 1
[[patch]]
name = "p"
states = { s = 1 }
[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_patch = ["modify s"]
pre_unpatch = ["reset s"]
post_unpatch = ["free s"]
"""


def test_a_new_property_is_one_record_and_one_judging_site(tmp_path, monkeypatch):
    """A property added by a record (properties.Property) and one `c.violate` site appears
    in verify, prove, review (its coverage and vacuity) and explain with no other edit."""
    from klpmodel import kernel, review
    from klpmodel.explain import explain
    from klpmodel.properties import PROPERTIES as BUILT_IN
    from klpmodel.properties import Property
    from klpmodel.prove import prove
    from klpmodel.spec import load_spec
    from klpmodel.traces import load_trace, spec_for, write_all
    from klpmodel.verify import verify

    record = Property("never-modified-twice", "(a test: a state is changed at most once per load)",
                      "a patch's post_patch changes a state that is not original",
                      judged_at="a write of a state's value", fix_in=("post_patch",))

    class OneMore(kernel.Mainline):
        name = "one-more"
        PROPERTIES = BUILT_IN + (record,)

        def set_value(self, s, value, where):          # the one judging site
            c = self.c
            c.violate(record.name, c.and_(c.ne(c.get(self.v.val[s]), kernel.ORIGINAL), c.ne(value, kernel.ORIGINAL)),
                      where)
            super().set_value(s, value, where)

    monkeypatch.setitem(kernel.PROFILES, "one-more", OneMore)
    path = tmp_path / "s.toml"
    path.write_text('kernel = "one-more"\n' + ONE_MORE)
    spec = load_spec(path)
    holds = verify(spec)
    assert record.name in holds.properties and holds.verdict == "holds"          # judged, never broken
    path.write_text('kernel = "one-more"\n' + ONE_MORE.replace('post_patch = ["modify s"]',
                                                                'post_patch = ["modify s", "modify s"]'))
    spec = load_spec(path)
    r = verify(spec, engine="explicit")
    assert [v.property for v in r.violations] == [record.name]
    assert verify(spec, engine="z3").violations[0].property == record.name
    assert {p.property: p.verdict for p in prove(spec, method="exhaustion").proofs}[record.name] == "violated"
    md = review.markdown(review.review(spec))
    assert f"| {record.name} | a write of a state's value |" in md           # the coverage table
    written = write_all(r, tmp_path / "traces")
    t = load_trace(written[0][1])
    text = explain(kernel.Model(spec_for(t, None)), t)
    assert "(a test: a state is changed at most once per load)" in text
    assert "the seed's expected usage of post_patch()" in text
