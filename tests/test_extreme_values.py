"""Issue 11, item 1: the Z3 encoding holds every value the spec can give (module parameters,
versions, ids, errnos), so both engines (and prove's two methods) agree on specs with extreme
values; values past the C types they stand for are refused with FILE:LINE."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klpmodel.errors import UserError
from klpmodel.prove import prove
from klpmodel.spec import load_spec, parse_spec
from klpmodel.verify import verify

EXAMPLES = int(os.environ.get("KLP_EXTREME_EXAMPLES", "20"))
INTS = [0, 1, -1, 127, 128, 255, 256, 257, 65535, 65536, 2**31 - 1, -2**31, 2**32, 2**63 - 1, -2**63, 2**64 - 1]
VERSIONS = [0, 1, 2**31, 2**32 - 1]
IDS = [1, 2**32, 2**63, 2**64 - 1]

P256 = """
[states.s]
id = 1

[[patch]]
name = "a"
states = { s = 1 }
params = { p = %s }

[patch.objects.vmlinux]
pre_patch = ["alloc s"]
post_patch = ["free s if param p"]
"""


def _spec(text: str):
    return parse_spec("extreme.toml", text.encode())


def _depths(r) -> dict[str, int]:
    return {v.property: v.depth for v in r.violations}


@pytest.mark.parametrize("value", [256, 512, 2**32, 2**63 - 1, -2**63, 2**64 - 1, -256])
def test_a_parameter_past_8_bits_is_not_zero_for_z3(value):
    """`params = { p = 256 }` with `free s if param p`: the free runs, for Z3 as for the
    interpreter (Z3 used to hold parameters in 8 bits: 256 became 0 and 'holds')."""
    spec = _spec(P256 % value)
    z3, explicit = verify(spec, engine="z3"), verify(spec, engine="explicit")
    assert z3.verdict == explicit.verdict == "violation"
    assert _depths(z3) == _depths(explicit)
    assert "no-double-free" in _depths(z3)          # the free in post_patch, then again after a reload
    r = prove(spec, method="both")                  # used to end in an internal error
    assert {p.property for p in r.proofs if p.verdict == "violated"} == set(_depths(explicit))


def test_a_parameter_of_zero_stays_zero():
    spec = _spec(P256 % 0)
    assert _depths(verify(spec, engine="z3")) == _depths(verify(spec, engine="explicit"))
    assert "no-double-free" not in _depths(verify(spec, engine="z3"))


@pytest.mark.parametrize("snippet, message", [
    ("[states.s]\nid = 18446744073709551616\n", "state id must be an integer from 1 to 18446744073709551615"),
    ('[states.s]\nid = 1\n[[patch]]\nname = "a"\nstates = { s = 4294967296 }\n', "integer from 0 to 4294967295"),
    ('[[patch]]\nname = "a"\nparams = { p = 18446744073709551616 }\n', "parameter 'p' must default to a boolean or an integer"),
    ('[[patch]]\nname = "a"\nparams = { p = -9223372036854775809 }\n', "parameter 'p' must default to a boolean or an integer"),
    ('[[patch]]\nname = "a"\n[patch.objects.vmlinux]\npre_patch = ["fail -4096"]\n', "bad errno '-4096'"),
    ('[[patch]]\nname = "a"\n[patch.objects.vmlinux]\npre_patch = ["fail -99999999999999999999999"]\n', "bad errno"),
])
def test_values_past_their_c_type_are_refused_with_file_and_line(tmp_path, snippet, message):
    path = tmp_path / "s.toml"
    path.write_text(snippet)
    with pytest.raises(UserError) as e:
        load_spec(path)
    assert message in str(e.value) and str(e.value).startswith(f"{path}:")
    assert "; " in str(e.value).split(": ", 1)[1]                   # and says what to write instead


@st.composite
def extreme_specs(draw) -> str:
    n_states = draw(st.integers(1, 2))
    n_patches = draw(st.integers(1, 3))
    states = [f"s{i}" for i in range(n_states)]
    out = ["[check]\ndepth = 4\n"]
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, min_size=n_states, max_size=n_states))
    out += [f"[states.{s}]\nid = {i}\n" for s, i in zip(states, ids, strict=True)]
    has_mod = draw(st.booleans())
    if has_mod:
        out.append(f"[modules.m]\nloaded = {str(draw(st.booleans())).lower()}\n"
                   f"params = {{ q = {draw(st.sampled_from(INTS))} }}\n"
                   'init = [\'log "up" if param q\']\n')
    for k in range(n_patches):
        decl = draw(st.lists(st.sampled_from(states), unique=True, min_size=1, max_size=n_states))
        versions = {s: draw(st.sampled_from(VERSIONS)) for s in decl}
        p = draw(st.one_of(st.sampled_from(INTS), st.booleans()))
        out.append(f'[[patch]]\nname = "p{k}"\nreplace = {str(draw(st.booleans())).lower()}\n'
                   f"states = {{ {', '.join(f'{s} = {v}' for s, v in versions.items())} }}\n"
                   f"params = {{ p = {str(p).lower()} }}\n")
        if draw(st.booleans()):
            out.append('replace_param = "p"\n')
        for obj in ["vmlinux"] + (["m"] if has_mod and draw(st.booleans()) else []):
            out.append(f"[patch.objects.{obj}]\n")
            # one statement that reads the parameter where it shows (alloc, then free if param p)
            keyed = draw(st.sampled_from(["post_patch", "pre_unpatch", "post_unpatch"]))
            for cb in ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch"):
                stmts = draw(st.lists(statement(decl, cb), max_size=2))
                if cb == "pre_patch":
                    stmts = [f"alloc {decl[0]}"] + stmts
                if cb == keyed:
                    stmts.append(draw(st.sampled_from([f"free {decl[0]} if param p", f"modify {decl[0]} unless param p",
                                                       f"free-prev {decl[0]} if param p"])))
                if stmts:
                    out.append(f"{cb} = [{', '.join(repr(x) for x in stmts)}]\n")
    return "\n".join(out)


def statement(decl: list[str], cb: str):
    actions = ["return"] + [f"{a} {s}" for s in decl for a in ("alloc", "free", "modify", "restore", "take", "free-prev")]
    if cb == "pre_patch":
        actions += ["fail p", "fail -4095", "maybe-fail -1"]
    guards = ["", " if param p", " unless param p"]
    guards += [f" {w} prev {s} {c} {v}" for s in decl for w in ("if", "unless")
               for c, v in ((">=", 2**32 - 1), ("==", 0), ("<", 2**31), ("!=", 2**32 - 1))]
    return st.builds(lambda a, g: a + g, st.sampled_from(actions), st.sampled_from(guards))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(extreme_specs())
def test_engines_agree_on_specs_with_extreme_values(text):
    spec = _spec(text)
    z3, explicit = verify(spec, engine="z3"), verify(spec, engine="explicit")
    assert (z3.verdict, _depths(z3)) == (explicit.verdict, _depths(explicit)), text


@settings(max_examples=max(3, EXAMPLES // 4), derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(extreme_specs())
def test_prove_both_methods_agree_on_specs_with_extreme_values(text):
    """--method both cross-checks exhaustion and k-induction (a disagreement is an
    InternalError) and the violations it finds are verify's."""
    spec = _spec(text)
    r = prove(spec, method="both", max_k=4)
    violated = {p.property for p in r.proofs if p.verdict == "violated"}
    assert violated <= set(_depths(verify(spec, engine="explicit", depth=64))), text
