"""proofs/: the theorems hold, the encodings have teeth (a weakened rule or a broken recipe
is refuted), and the abstract restatements agree with kernel.py on concrete instances."""
from __future__ import annotations

import importlib.util

import pytest
import z3
from conftest import ROOT, cli
from hypothesis import given, settings
from hypothesis import strategies as st

from klpmodel import kernel
from klpmodel.engine_explicit import ExplicitEngine
from klpmodel.kernel import ENABLED, PATCHING, PHASES, UNPATCHING, Model
from klpmodel.spec import Patch, load_spec
from klpmodel.theory import sibling
from klpmodel.verify import verify

PROOFS = ROOT / "proofs"
klp = sibling(str(PROOFS / "a_version_monotone.py"), "_klp")


def theorem_module(name):
    spec = importlib.util.spec_from_file_location(name, PROOFS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_prove_theory_proves_every_theorem():
    p = cli("prove-theory", "proofs/")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("\nPROVED ") + p.stdout.startswith("PROVED ") == 6
    assert "6 of 6 theorems proved" in p.stdout
    assert "witness:" in p.stdout and "disable p1" in p.stdout           # (d)'s witness names the disable


def test_prove_theory_fails_on_a_refuted_theorem_and_rejects_bad_input(tmp_path):
    bad = tmp_path / "wrong.py"
    bad.write_text("from klpmodel.theory import Outcome, Theorem\n"
                   "THEOREM = Theorem('wrong', 'valid', 'false', lambda: Outcome('refuted', 'x = 1'))\n")
    p = cli("prove-theory", str(bad))
    assert p.returncode == 1 and "REFUTED wrong" in p.stdout and "refuted by:" in p.stdout
    (tmp_path / "empty.py").write_text("x = 1\n")
    p = cli("prove-theory", str(tmp_path / "empty.py"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "define one" in p.stderr
    p = cli("prove-theory", str(tmp_path / "nothing"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (tmp_path / "crash.py").write_text("from klpmodel.theory import Theorem\n\ndef check():\n    return 1 / 0\n\n"
                                       "THEOREM = Theorem('c', 'valid', 's', check)\n")
    p = cli("prove-theory", str(tmp_path / "crash.py"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "crash.py:4: ZeroDivisionError" in p.stderr


def test_a_has_teeth_without_the_version_check():
    mod = theorem_module("a_version_monotone")

    def no_versions(Patch, State, decl, ver, on, new, replace):
        P, S = z3.Const("P", Patch), z3.Const("S", State)
        return z3.ForAll([P, S], z3.Implies(z3.And(on(P), decl(P, S)), decl(new, S)))
    s = z3.Solver()
    s.add(mod.claim(no_versions))
    assert s.check() == z3.sat
    s = z3.Solver()
    s.add(mod.claim())
    assert s.check() == z3.unsat
    _, step = mod.sequence_obligations(no_versions)
    s = z3.Solver()
    s.add(step)
    assert s.check() == z3.sat            # the induction step fails without the version check too


def test_c_has_teeth_a_recipe_that_always_allocates_is_refuted(write_spec):
    mod = theorem_module("c_cumulative_recipe")
    r, _ = mod.horn(lambda x, y: klp.step(x, y, mutant="alloc-always"))
    assert r == z3.unsat          # some run of the per-state system breaks a property
    # and kernel.py agrees: the block allocated before `take` is leaked
    text = klp.recipe_spec([{"s": 1}, {"s": 1}]).replace('pre_patch = ["alloc s unless prev s"]', 'pre_patch = ["alloc s"]')
    assert "no-leak" in {v.property for v in verify(load_spec(write_spec(text)), engine="explicit").violations}


# ---- the compatibility rule against kernel.compatible

patch_st = st.builds(lambda states, rep: Patch("x", rep, tuple(sorted(states.items())), (), (), 1),
                     st.dictionaries(st.sampled_from("abc"), st.integers(0, 3), max_size=3), st.booleans())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(new=patch_st, olds=st.lists(patch_st, max_size=3))
def test_abstract_compatibility_rule_is_kernel_compatible(new, olds):
    Patch_, State, decl, ver = klp.sorts()
    on = z3.Function("on", Patch_, z3.BoolSort())
    ps = [z3.Const(f"p{i}", Patch_) for i in range(len(olds) + 1)]
    ss = [z3.Const(n, State) for n in "abc"]
    s = z3.Solver()
    P, S = z3.Const("P", Patch_), z3.Const("S", State)
    s.add(z3.Distinct(*ps), z3.Distinct(*ss))
    s.add(z3.ForAll([P], z3.Or(*[p == P for p in ps])), z3.ForAll([S], z3.Or(*[x == S for x in ss])))
    for p, patch in zip(ps, [new, *olds], strict=True):
        for x, name in zip(ss, "abc", strict=True):
            v = patch.version(name)
            s.add(decl(p, x) == (v is not None), ver(p, x) == (v or 0))
    for p in ps:
        s.add(on(p) == (p is not ps[0]))
    expected = all(kernel.compatible(new, old)[0] for old in olds)
    s.add(klp.compatible(Patch_, State, decl, ver, on, ps[0], new.replace) != expected)
    assert s.check() == z3.unsat


# ---- the per-state recipe system against kernel.py: a simulation check

RECIPE_SERIES = [
    [{"s": 1}, {"s": 2}],
    [{"s": 2}, {"s": 1}, {"s": 2}],
    [{"s": 1}, {"s": 1, "t": 1}],
]


def _alpha(m: Model, st: dict, s: str) -> dict:
    """kernel.py's state projected on state s, in proofs/_klp.py's variables."""
    ph = {i: st[f"phase[{p.name}]"] for i, p in enumerate(m.P)}
    listed = [i for i in ph if ph[i] in (PATCHING, ENABLED, UNPATCHING)]
    trans = [i for i in listed if ph[i] in (PATCHING, UNPATCHING)]
    enabled = [i for i in listed if ph[i] == ENABLED]
    tload = st["tload"]
    if not listed:
        mode, e, t = 0, None, None
    elif not trans:
        mode, e, t = 1, enabled[0], None
    elif not tload:
        mode, e, t = (6 if ph[trans[0]] == UNPATCHING else 7), trans[0], None
    else:
        e = enabled[0] if enabled else None
        t = trans[0]
        mode = (2 if ph[t] == PATCHING else 4) + (1 if e is not None else 0)
    vers = m.versions[s]

    def value(v):
        return -1 if v == 0 else -2 if v == 1 else vers[v - 2]
    out = {"mode": mode, "val": value(st[f"val[{s}]"]), "hi": -1 if st[f"hi[{s}]"] == 0 else vers[st[f"hi[{s}]"] - 2],
           "lk": st["leaked"], "ls": st["leak_since"], "sV": value(st[f"snap_val[{s}]"]), "sK": 0, "sC": 0}
    slots: dict[int, int] = {}
    blocks = {}
    for role, i in (("e", e), ("t", t)):
        decl = i is not None and m.P[i].version(s) is not None
        out[role + "D"] = int(decl)
        out[role + "V"] = m.P[i].version(s) if decl else 0
        ptr = st[f"ptr[{m.P[i].name}.{s}]"] if decl else 0
        if ptr:
            slots.setdefault(ptr, len(slots) + 1)
            blocks[slots[ptr]] = (st[f"live[{s}#{ptr - 1}]"], value(st[f"cont[{s}#{ptr - 1}]"]))
        out[role + "P"] = slots.get(ptr, 0)
    if e is not None and m.P[e].version(s) is not None and mode in (3, 5):
        k = st[f"snap_kind[{m.P[e].name}.{s}]"]
        out["sK"] = k
        out["sC"] = value(st[f"snap_cont[{m.P[e].name}.{s}]"]) if k == 1 else 0
    for n, (lv, cv) in ((1, ("lA", "cA")), (2, ("lB", "cB"))):
        out[lv], out[cv] = blocks.get(n, (False, -2))
    return out


def _matches(y: dict, a: dict):
    """y (abstract) is a (projected kernel state), blocks compared through the pointers."""
    plain = [y[v] == a[v] for v in ("mode", "eD", "eV", "tD", "tV", "val", "hi", "lk", "ls", "sV", "sK", "sC")]
    r = klp._Run(y)
    ptrs = []
    for role in ("e", "t"):
        p, q = y[role + "P"], a[role + "P"]
        ptrs.append((p == 0) == (q == 0))
        if q:
            live, cont = (a["lA"], a["cA"]) if q == 1 else (a["lB"], a["cB"])
            ptrs.append(r.kind(p) == (1 if live else 2))
            ptrs.append(r.content(p) == cont)
    ptrs.append((y["eP"] == y["tP"]) == (a["eP"] == a["tP"]))
    return z3.And(*plain, *ptrs)


@pytest.mark.parametrize("series, mutant", [(s, None) for s in RECIPE_SERIES] + [([{"s": 1}, {"s": 2}], "alloc-always")],
                         ids=str)
def test_per_state_system_simulates_kernel_py_on_recipe_specs(write_spec, series, mutant):
    text = klp.recipe_spec(series)
    if mutant:          # the same mutation on both sides: kernel.py must report the leaks the encoding has
        text = text.replace('pre_patch = ["alloc s unless prev s"]', 'pre_patch = ["alloc s"]')
    m = Model(load_spec(write_spec(text)))
    eng = ExplicitEngine(m, keep_graph=True)
    eng.run(1 << 30, [])
    assert eng.edges
    assert any(e[4] for e in eng.edges) == bool(mutant)
    x, y = klp.state(""), klp.state("'")
    trans, viol, _ = klp.step(x, y, mutant=mutant)
    solver = z3.Solver()
    solver.add(trans)
    checked = 0
    for a, b, op, _, props in eng.edges:
        if op.word == "rmmod":
            continue                             # changes nothing the theorem looks at
        for s in m.state_names:
            pre, post = _alpha(m, eng.values[a], s), _alpha(m, eng.values[b], s)
            fix = [x[v] == (z3.BoolVal(val) if isinstance(val, bool) else val) for v, val in pre.items()]
            # an abstract violation must be one kernel.py reports on this edge (and, with one
            # state, every kernel.py violation must be an abstract one)
            agree = [z3.Not(c) if p not in props else (c if len(m.state_names) == 1 else z3.BoolVal(True))
                     for p, c in viol.items()]
            ok = solver.check(*fix, _matches(y, post), *agree)
            assert ok == z3.sat, (str(op), PHASES, pre, post)
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("n", [2, 3, 4])
def test_verify_agrees_cumulative_recipe_series_hold(write_spec, n):
    versions = [{"s": 1 + i // 2, "t": 1} if i % 2 else {"s": 1 + i // 2} for i in range(n)]
    r = verify(load_spec(write_spec(klp.recipe_spec(versions))), engine="explicit", depth=30)
    assert r.verdict == "holds" and r.complete_at is not None


@pytest.mark.parametrize("n", [2, 3])
def test_verify_agrees_noncumulative_recipe_pair_use_after_free(write_spec, n):
    r = verify(load_spec(write_spec(klp.recipe_spec([{"s": 1}] * n, replace=False))), engine="explicit")
    assert "no-use-after-free" in {v.property for v in r.violations}
    cumulative = verify(load_spec(write_spec(klp.recipe_spec([{"s": 1}] * n), "c.toml")), engine="explicit")
    assert cumulative.verdict == "holds"




@pytest.mark.parametrize("series", [[{"s": 1}] * 2, [{"s": 1}, {"s": 2}, {"s": 2}], [{"s": 1}, {"s": 1, "t": 1}, {"t": 2}],
                                    [{"s": 1}] * 4], ids=str)
def test_own_block_rule_makes_noncumulative_series_safe_on_instances(write_spec, series):
    """(d)'s rule, checked (not proved for any number): exhaustion through kernel.py."""
    r = verify(load_spec(write_spec(klp.recipe_spec(series, replace=False, recipe=klp.OWN_BLOCK))),
               engine="explicit", depth=64)
    assert r.verdict == "holds" and r.complete_at is not None
    # and the rule is not vacuous: the shared-block recipe breaks on the same series
    shared = verify(load_spec(write_spec(klp.recipe_spec(series, replace=False), "shared.toml")), engine="explicit")
    assert shared.verdict == "violation"


# ---- the own-block system of (e) against kernel.py

def _alpha_nc(m: Model, st: dict, s: str) -> dict:
    """kernel.py's state projected on state s, in the variables of _klp.nc_state."""
    vers = m.versions[s]

    def value(v):
        return -1 if v == 0 else -2 if v == 1 else vers[v - 2]
    listed = sorted((st[f"pos[{p.name}]"], i) for i, p in enumerate(m.P)
                    if st[f"phase[{p.name}]"] in (PATCHING, ENABLED, UNPATCHING))
    trans = [i for _, i in listed if st[f"phase[{m.P[i].name}]"] in (PATCHING, UNPATCHING)]
    t = trans[0] if trans else None
    decl = [i for _, i in listed if m.P[i].version(s) is not None]
    o = decl[0] if decl else None

    def block(i):
        ptr = st[f"ptr[{m.P[i].name}.{s}]"]
        if not ptr:
            return False, -2
        return st[f"live[{s}#{ptr - 1}]"], value(st[f"cont[{s}#{ptr - 1}]"])
    others = [i for i in decl if i not in (o, t)]
    out = {"mode": 0 if t is None else (1 if st[f"phase[{m.P[t].name}]"] == PATCHING else 2),
           "n": len(others), "oE": o is not None, "okN": all(block(i) == (True, -1) for i in others),
           "val": value(st[f"val[{s}]"]), "hi": -1 if st[f"hi[{s}]"] == 0 else vers[st[f"hi[{s}]"] - 2],
           "sV": value(st[f"snap_val[{s}]"]), "lk": st["leaked"], "ls": st["leak_since"], "tload": st["tload"],
           "tD": int(t is not None and m.P[t].version(s) is not None), "tIsO": int(t is not None and t == o)}
    if o is not None:
        out["oV"] = m.P[o].version(s)
        out["oL"], out["oC"] = block(o)
    if out["tD"] and not out["tIsO"]:
        out["tL"], out["tC"] = block(t)
    return out


def _matches_nc(y: dict, a: dict):
    return z3.And(*[y[v] == (z3.BoolVal(val) if isinstance(val, bool) else val) for v, val in a.items()])


@pytest.mark.parametrize("series", [[{"s": 1}] * 3, [{"s": 1}, {"s": 2}, {"s": 2}], [{"s": 1}, {"s": 1, "t": 1}, {"t": 2}]],
                         ids=str)
def test_own_block_system_simulates_kernel_py(write_spec, series):
    m = Model(load_spec(write_spec(klp.recipe_spec(series, replace=False, recipe=klp.OWN_BLOCK))))
    eng = ExplicitEngine(m, keep_graph=True)
    eng.run(1 << 30, [])
    x, y = klp.nc_state(""), klp.nc_state("'")
    trans, viol, _ = klp.nc_step(x, y)
    solver = z3.Solver()
    solver.add(trans)
    checked, seen = 0, set()
    for a, b, op, _, props in eng.edges:
        if op.word == "rmmod":
            continue
        for s in m.state_names:
            pre, post = _alpha_nc(m, eng.values[a], s), _alpha_nc(m, eng.values[b], s)
            key = (tuple(sorted(pre.items())), tuple(sorted(post.items())), frozenset(props))
            if key in seen:
                continue                    # the same abstract transition, already checked
            seen.add(key)
            agree = [z3.Not(c) if p not in props else z3.BoolVal(True) for p, c in viol.items()]
            ok = solver.check(_matches_nc(x, pre), _matches_nc(y, post), *agree)
            assert ok == z3.sat, f"{op}: {sorted(pre.items())} -> {sorted(post.items())}"
            checked += 1
    assert checked > 30


def test_e_has_teeth_freeing_only_without_prev_is_refuted(write_spec):
    mod = theorem_module("e_noncumulative_own_block")
    assert mod.horn(mutant="free-unless-prev")[0] == z3.unsat
    # and kernel.py agrees: the newer patch's own block leaks when it is disabled
    rule = dict(klp.OWN_BLOCK, post_unpatch=["free {S} unless prev {S}"])
    r = verify(load_spec(write_spec(klp.recipe_spec([{"s": 1}] * 2, replace=False, recipe=rule))), engine="explicit")
    assert "no-leak" in {v.property for v in r.violations}


# ---- (f) the shared-state refcount

SH_SERIES = [[(True, False), (True, True), (False, True)], [(False, False), (False, True)],
             [(True, True), (True, True), (True, False)]]


def _alpha_sh(m: Model, st: dict) -> dict:
    """A kernel.py state seen by sh_step: livepatch modules loaded, the count, SV exists."""
    v = m.view(st)
    return {"n": sum(v.phase(p.name) != "unloaded" for p in m.P), "count": v.count("shared"), "ex": v.shadow("shared")}


@pytest.mark.parametrize("series", SH_SERIES, ids=str)
def test_shared_state_system_simulates_kernel_py(write_spec, series):
    """Every transition kernel.py takes on a series that follows the pattern is one of sh_step's,
    and sh_step reports every violation kernel.py reports on it."""
    m = Model(load_spec(write_spec(klp.sh_spec(series))))
    eng = ExplicitEngine(m, keep_graph=True)
    eng.run(1 << 30, [])
    x, y = klp.sh_state(""), klp.sh_state("'")
    trans, viol, _ = klp.sh_step(x, y)
    solver = z3.Solver()
    solver.add(trans)
    checked, seen = 0, set()
    for a, b, op, _, props in eng.edges:
        pre, post = _alpha_sh(m, eng.values[a]), _alpha_sh(m, eng.values[b])
        key = (tuple(sorted(pre.items())), tuple(sorted(post.items())), frozenset(props))
        if key in seen:
            continue
        seen.add(key)
        covered = [c for p, c in viol.items() if p in props]
        assert solver.check(_matches_nc(x, pre), _matches_nc(y, post), *covered) == z3.sat, \
            f"{op}: {pre} -> {post} {sorted(props)}"
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("mutant", klp.SH_MUTANTS)
def test_f_has_teeth_each_one_line_mutant_is_refuted_and_kernel_py_agrees(write_spec, mutant):
    mod = theorem_module("f_shared_state_refcount")
    run = mod.run_to_violation(mutant)
    assert run is not None
    broken = set(run[-1].removeprefix("=> ").split(", "))
    r = verify(load_spec(write_spec(klp.sh_spec([(True, True), (True, False)], mutant=mutant))), engine="explicit")
    assert broken <= {v.property for v in r.violations}, (run, r.violations)


def test_f_the_invariant_is_the_count_fact_prove_mines(write_spec):
    """prove's count facts find, on one instance, the invariant the theorem states for all."""
    from klpmodel.prove import _Inductor, candidates

    m = Model(load_spec(write_spec(klp.sh_spec(SH_SERIES[0]))))
    ind = _Inductor(m, None)
    invs = ind.houdini(candidates(m, list(ind.ts.names), ind.sample()))
    counts = [i for i in invs if i.counts]
    assert [sorted(b for b, _ in i.counts) for i in counts] == [sorted(m.v.phase[k] for k in range(m.n))]
