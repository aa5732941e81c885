"""Differential testing: random valid specs, both engines, identical verdicts and identical
shortest depths for every property. A seeded subset runs in CI; set KLP_DIFF_EXAMPLES to
run more and KLP_DIFF_SEED to draw another sequence (e.g. KLP_DIFF_EXAMPLES=1000
KLP_DIFF_SEED=1). A disagreement found here becomes a named spec in
tests/regressions/ (checked by test_regressions below)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import expectations
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from klpmodel.spec import load_spec
from klpmodel.verify import verify

EXAMPLES = int(os.environ.get("KLP_DIFF_EXAMPLES", "20"))
SEED = os.environ.get("KLP_DIFF_SEED")       # unset: hypothesis' derandomized fixed sequence
REGRESSIONS = Path(__file__).parent / "regressions"


@st.composite
def specs(draw, min_shadows: int = 0) -> str:
    n_states = draw(st.integers(1, 3))
    n_mods = draw(st.integers(0, 2))
    n_patches = draw(st.integers(2, 5))
    states = [f"s{i}" for i in range(n_states)]
    mods = [f"m{i}" for i in range(n_mods)]
    check = f"[check]\ndepth = {draw(st.integers(3, 5))}\n"
    if draw(st.integers(0, 2)) == 0:       # the optional patching fault (semantics §16)
        check += 'faults = ["patching"]\n'
    if draw(st.integers(0, 2)) == 0:       # force, with its 5.18 marking and stuck transitions
        check += 'operations = ["load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force"]\n'
    out = [check]
    out += [f"[states.{s}]\nid = {i + 1}\n" for i, s in enumerate(states)]
    sleepy = {m for m in mods if draw(st.integers(0, 3)) == 0}     # a task sleeps in m's function
    shadows = [f"sv{i}" for i in range(draw(st.integers(min_shadows, 2)) if min_shadows or draw(st.integers(0, 2)) == 0
                                       else 0)]
    # (issue 14) variables on named objects: o0 of vmlinux, o1 of the first module (if any)
    named = {sv: ["o0", "o1"] for sv in shadows if draw(st.booleans())}
    if named:
        out.append(f'[objects]\no0 = "vmlinux"\no1 = "{mods[0] if mods else "vmlinux"}"\n')
    for m in mods:
        text = f"[modules.{m}]\nloaded = {'true' if draw(st.booleans()) else 'false'}\n" \
            + ('params = { block = 1 }\nsleeps = { function = "work", while = "block" }\n' if m in sleepy else "")
        theirs = draw(st.lists(st.sampled_from(shadows), unique=True, max_size=1)) if shadows else []
        if theirs:                          # a target module's own init/exit calling the shadow API
            text += f"shadows = {{ {theirs[0]} = \"l0\" }}\n"
            for f in ("init", "init_error", "exit"):
                stmts = draw(st.lists(shadow_statement(theirs, "module " + f, named), max_size=2))
                if stmts:
                    text += f"{f} = [{', '.join(repr(x) for x in stmts)}]\n"
        out.append(text)
    for i, sv in enumerate(shadows):        # (issue 14) shadow variables, one maybe on a module's objects
        parent = f'parent = "{mods[0]}"\n' if mods and draw(st.booleans()) else ""
        out.append(f"[shadows.{sv}]\nid = {i + 1}\n{parent}")
    blocks = []
    for k in range(n_patches):
        start = len(out)
        decl = draw(st.lists(st.sampled_from(states), unique=True, max_size=n_states))
        versions = {s: draw(st.integers(0, 3)) for s in decl}
        out.append(f'[[patch]]\nname = "p{k}"\nreplace = {"true" if draw(st.booleans()) else "false"}\n'
                   f"states = {{ {', '.join(f'{s} = {v}' for s, v in versions.items())} }}\n")
        mine = draw(st.lists(st.sampled_from(shadows), unique=True)) if shadows else []
        uses = [draw(st.sampled_from(decl))] if decl and draw(st.booleans()) else []
        if mine:
            layouts = ", ".join(f'{sv} = "l{draw(st.integers(0, 1))}"' for sv in mine)
            out.append(f"shadows = {{ {layouts} }}\n")
            uses += [sv for sv in mine if draw(st.integers(0, 2)) == 0]
            for f in ("init", "init_error", "exit"):
                stmts = draw(st.lists(shadow_statement(mine, f, named), max_size=2))
                if stmts:
                    out.append(f"{f} = [{', '.join(repr(x) for x in stmts)}]\n")
        if uses:
            out.append(f"uses = [{', '.join(repr(u) for u in uses)}]\n")
        code = bool(mine) and draw(st.booleans())
        if code:
            out.append(f"[patch.code]\nwork = [{', '.join(repr(x) for x in draw(st.lists(shadow_statement(mine, 'code', named), min_size=1, max_size=2)))}]\n")
        objs = ["vmlinux"] + draw(st.lists(st.sampled_from(mods), unique=True)) if mods else ["vmlinux"]
        for obj in objs:
            out.append(f"[patch.objects.{obj}]\n")
            if (obj in sleepy or (code and obj == "vmlinux")) and draw(st.booleans()):
                out.append('funcs = ["work"]\n')      # (issue 14) code's work on this object's func_stack
            for cb in ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch", "pre_patch_error"):
                stmts = draw(st.lists(st.one_of(statement(decl, cb), shadow_statement(mine, cb, named)) if mine
                                      else statement(decl, cb), max_size=3))
                if stmts:
                    out.append(f"{cb} = [{', '.join(repr(x) for x in stmts)}]\n")
        out.append("")
        blocks.append("\n".join(out[start:]))
    if draw(st.booleans()):            # an interchangeable twin: exercises the symmetry reduction
        k = draw(st.integers(0, n_patches - 1))
        out.append(blocks[k].replace(f'name = "p{k}"', 'name = "twin"', 1))
    return "\n".join(out)


@st.composite
def replace_set_specs(draw) -> str:
    """The same specs under kernel "replace-set" (proposals.md §B.6): each patch's replace
    key becomes a replace_set from 0 to 2, so that sets replace within themselves, and patches
    of different sets sharing a state or a function ("work") refuse each other."""
    import re
    text = draw(specs())
    return 'kernel = "replace-set"\n' + re.sub(r"replace = (true|false)",
                                                lambda _: f"replace_set = {draw(st.integers(0, 2))}", text)


@seed(int(SEED or 0))
@settings(max_examples=max(1, EXAMPLES // 2), derandomize=SEED is None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(replace_set_specs())
def test_engines_agree_on_random_replace_set_specs(tmp_path_factory, text):
    """The replace-set profile's overrides (kernel.ReplaceSet) run symbolically too."""
    path = tmp_path_factory.mktemp("diff") / "spec.toml"
    path.write_text(text)
    agree(path)


def statement(decl: list[str], cb: str):
    actions = ["return"]
    if cb == "pre_patch":
        actions += ["fail -ENODEV", "maybe-fail"]
    for s in decl:
        actions += [f"{a} {s}" for a in ("alloc", "free", "save", "restore", "modify", "reset", "take", "copy", "free-prev")]
    guards = [""] + [f" {w} prev {s}{tail}" for s in decl for w in ("if", "unless") for tail in ("", " >= 2")]
    return st.builds(lambda a, g: a + g, st.sampled_from(actions), st.sampled_from(guards))


def shadow_statement(mine: list[str], where: str, named: dict | None = None):
    """A shadow statement for patch code or a target module's function ("module init", ...);
    `named`: the variables on named objects and their objects (issue 14)."""
    named = named or {}

    def on(sv: str) -> list[str]:
        return [f" on {o}" for o in named[sv]] if sv in named else [""]
    target = where.startswith("module ")
    actions = [f"{a} {sv}{o}" for sv in mine for a in ("shadow-alloc", "shadow-get-or-alloc", "shadow-get", "shadow-free",
                                                      "get", "put") for o in on(sv)]
    actions += [f"shadow-free-all {sv}" for sv in mine]
    if not target:
        actions += [f"shadow-get-or-alloc {sv}{o} with ctor-fail" for sv in mine for o in on(sv)]
    if where == "code":
        actions += [f"shadow-alloc {sv} on new" for sv in mine if sv not in named]
    if where == "init":
        actions += ["maybe-fail -ENOMEM"]
    if where == "module init":              # a NULL result fails the module's init
        actions += [f"{a} {sv}{o} or fail -ENOMEM" for sv in mine for a in ("shadow-alloc", "shadow-get")
                    for o in on(sv)]
    guards = [""] + [f" {w} shadow {sv}{o}" for sv in mine for w in ("if", "unless") for o in on(sv)] \
        + [f" if count {sv}{o} == 1" for sv in mine for o in on(sv)]
    return st.builds(lambda a, g: a + g, st.sampled_from(actions), st.sampled_from(guards))


def agree(path: Path) -> None:
    """Z3, the explicit search, and the explicit search without the symmetry reduction."""
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.kernel import Model

    spec = load_spec(path)
    names = [p.name for p in Model(spec).properties]
    z3 = verify(spec, engine="z3")
    explicit = verify(spec, engine="explicit")
    assert z3.verdict == explicit.verdict, path.read_text()
    depths = {v.property: v.depth for v in explicit.violations}
    assert {v.property: v.depth for v in z3.violations} == depths, path.read_text()
    plain = ExplicitEngine(Model(spec), symmetry=False).run(spec.depth, names)
    assert {p: d for p, (d, _) in plain.found.items()} == depths, path.read_text()


@seed(int(SEED or 0))
@settings(max_examples=EXAMPLES, derandomize=SEED is None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_engines_agree_on_random_specs(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("diff") / "spec.toml"
    path.write_text(text)
    agree(path)


@seed(int(SEED or 0))
@settings(max_examples=EXAMPLES, derandomize=SEED is None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs(min_shadows=1))
def test_engines_agree_on_random_specs_with_shadow_variables(tmp_path_factory, text):
    """(issue 14) Shadow variables, init/init_error/exit, code and `call`: the same three searches."""
    path = tmp_path_factory.mktemp("diffsh") / "spec.toml"
    path.write_text(text)
    agree(path)


def folded_agrees(path: Path) -> None:
    """Folding `rmmod` into the next `load` keeps every reachable violation: to exhaustion
    the folded search breaks exactly the properties the plain one breaks, each folded
    trace (its `rmmod`s put back) replays and breaks its property, and no folded depth is
    longer than the plain one."""
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.kernel import Model
    from klpmodel.properties import NAMES
    from klpmodel.verify import replay

    m = Model(load_spec(path))
    plain, folded = ExplicitEngine(m, max_states=200_000), ExplicitEngine(m, max_states=200_000, fold_rmmod=True)
    a, b = plain.run(1000, list(NAMES)), folded.run(1000, list(NAMES))
    if a.unknown or b.unknown:
        return
    for r in (a, b):            # exhausted, or stopped early because every property broke
        assert r.complete_at is not None or set(r.found) == set(NAMES)
    assert set(a.found) == set(b.found), path.read_text()
    assert folded.states <= plain.states
    for prop, (depth, raw) in b.found.items():
        assert depth <= a.found[prop][0]
        replay(m, raw.ops, raw.choices, None, prop)             # raises unless it breaks prop at its end


@seed(int(SEED or 0))
@settings(max_examples=EXAMPLES, derandomize=SEED is None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_folding_rmmod_keeps_every_violation(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fold") / "spec.toml"
    path.write_text(text)
    folded_agrees(path)


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*.toml")), ids=lambda p: p.name)
def test_regressions(path):
    """Both engines agree, and give the verdicts the spec's `# expect:` lines state."""
    agree(path)
    spec = load_spec(path)
    for engine in ("explicit", "z3"):
        for exp in expectations(path):
            if exp[0] == "holds":
                assert verify(spec, engine=engine).verdict == "holds", (engine, path.name)
            else:
                prop, depth = exp[1], int(exp[2])
                r = verify(spec, engine=engine, properties=[prop])
                assert [(v.property, v.depth) for v in r.violations] == [(prop, depth)], (engine, path.name)


@pytest.mark.parametrize("path", sorted((REGRESSIONS / "scenarios").glob("*.toml")), ids=lambda p: p.name)
def test_regression_scenarios(path):
    """Kernel logs pinned for the fidelity fixes that change no verdict (tests/regressions/scenarios)."""
    from klpmodel.conformance import run_scenario

    ok, _, diff = run_scenario(path)
    assert ok, "\n".join(diff)


PER_OBJECT = sorted(Path(__file__).parent.parent.glob("specs/shadow-object-*.toml")) + \
    [Path(__file__).parent.parent / "specs" / "selftests" / "test-shadow-vars.toml"]


@pytest.mark.parametrize("path", PER_OBJECT, ids=lambda p: p.name)
def test_engines_agree_on_the_per_object_specs(path):
    """(issue 14) Named parent objects, and a spec of a target module only (test-shadow-vars)."""
    agree(path)
