"""klpmodel against an independent reference of the kernel (tests/reference/, issue 10 item 7).

The reference is written from ../shared/kernel/semantics.md and the kernel C, not from
klpmodel/kernel.py. For random specs, every operation sequence up to the spec's depth is
run through both (breadth-first, memoized on the pair of states), and for every operation
from every reachable pair of states the test compares: whether the operation is possible
(and the class of the refusal), the set of outcome labels (which fallible points failed),
and per outcome the log lines, the abstract state and the violated properties.

A seeded subset runs in CI; KLP_REF_EXAMPLES=5000 runs more, KLP_REF_SEED=N another
sequence (unset: Hypothesis' derandomized fixed sequence). Each disagreement found is an
entry of DISAGREEMENTS.md with its smallest spec and operations, decided by the kernel
source; the ones still open in kernel.py are the xfail(strict=True) cases at the end.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from reference import callbacks
from reference.driver import Reference
from reference.klp import clone

from klpmodel import interp, klog
from klpmodel.kernel import Model, Op
from klpmodel.spec import load_spec

EXAMPLES = int(os.environ.get("KLP_REF_EXAMPLES", "60"))
SEED = os.environ.get("KLP_REF_SEED")
ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).parent / "reference" / "cases"


# --------------------------------------------------------------------------- klpmodel's side


def spec_has_faults() -> bool:
    """Whether the spec language has `[check] faults = ["patching"]` yet."""
    import tempfile

    from klpmodel.errors import UserError
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write('[check]\nfaults = ["patching"]\n[[patch]]\nname = "p"\n')
    try:
        load_spec(f.name)
        return True
    except UserError:
        return False
    finally:
        os.unlink(f.name)


def spec_faults(spec) -> bool:
    return "patching" in getattr(spec, "faults", ())


class KlpSide:
    """klpmodel's answers through its public interpreter API (interp, klog)."""

    def __init__(self, spec):
        self.spec = spec
        self.m = Model(spec)
        self.names = list(self.m.vars)

    def initial(self) -> dict:
        return interp.initial(self.m)

    def key(self, state: dict) -> tuple:
        return tuple(state[v] for v in self.names)

    def refusal(self, state: dict, op: Op) -> str | None:
        why = interp.refusal(self.m, state, op)
        return None if why is None else refusal_class(why)

    def outcomes(self, state: dict, op: Op):
        for o in interp.outcomes(self.m, state, op):
            yield (frozenset(self.position(k) for k in o.failed_choices), o.state,
                   klog.event_lines(op, o.events), frozenset(name for name, _ in o.violations))

    def position(self, key: tuple) -> tuple:
        """A choice key in the position form (patch, object, callback, index). klpmodel's
        keys were (patch, object, callback, line, text) before issue 10 (the index is then
        the first statement of that callback with that line and text); since, a
        kernel.Choice that carries the index."""
        if hasattr(key, "index"):             # kernel.Choice (issue 10): (patch, obj, callback, index, line, text)
            return (key.patch, key.obj, key.callback, key.index)
        if len(key) == 4:
            return tuple(key)
        patch, obj, cb, line, text = key
        stmts = next(o for o in self.spec.patch(patch).objects if o.name == obj).cb(cb)
        return (patch, obj, cb, next(i for i, s in enumerate(stmts) if s.line == line and s.text == text))

    def abstract(self, s: dict) -> dict:
        """klpmodel's state in the reference's terms, read through kernel.View."""
        spec, view = self.spec, self.m.view(s)
        on = [p.name for p in spec.patches if view.listed(p.name)]
        canon: dict = {}
        data, pue = {}, {}
        for name in sorted(on):                   # blocks numbered in the order of the names
            p = spec.patch(name)
            for state, _v in p.states:
                b = view.data(name, state)
                if b is None:
                    data[(name, state)] = None
                    continue
                n = canon.setdefault((state, b.slot), len(canon))
                data[(name, state)] = (n, b.live, view.describe(state, b.content) if b.live else None)
            for o in p.objects if spec.kernel != "state-callbacks" else ():   # (D31: no such flag after 19/19)
                pue[(name, o.name)] = view.post_unpatch_enabled(name, o.name)
        return {
            "list": tuple(view.order()),
            "phase": {p.name: view.phase(p.name) for p in spec.patches},
            "forced": {p.name: view.forced(p.name) for p in spec.patches},
            "modules": {mod.name: view.module_loaded(mod.name) for mod in spec.modules},
            "data": data,
            "values": {st_.name: view.describe(st_.name) for st_ in spec.states},
            "pue": pue,
            "shadows": {(sv, obj): (view.count(sv, obj), view.layout(sv, obj) or self.only_layout(sv))
                        for sv, obj, _, _ in self.m.shadow_pair_list() if view.shadow(sv, obj)},
            "stale": sorted(sv.name for sv in spec.shadows if view.stale(sv.name)),
        }

    def only_layout(self, name: str) -> str:
        """The layout of a shadow variable the spec gives one layout (View.layout: None)."""
        (layout,) = {dict(p.shadows)[name] for p in (*self.spec.patches, *self.spec.modules) if name in dict(p.shadows)}
        return layout


def refusal_class(why: str) -> str:
    """klpmodel's refusal sentence, as the reference's class of the kernel's answer."""
    w = why.lower()
    for needle, cls in (("func_stack", "stacked"), ("not on klp_patches", "not listed"), ("not compatible", "incompatible"), ("-ebusy", "EBUSY"), ("already loaded", "EEXIST"),
                        ("block_disable", "disable blocked"),
                        ("in use", "in use"), ("already forced", "already forced"), ("not loaded", "ENOENT"), ("that is `reverse`", "reverse"),
                        ("-einval", "EINVAL"), ("no transition is in progress", "idle"),
                        ("sleep", "blocked"), ("cannot complete", "blocked"), ("block", "blocked")):
        if needle in w:
            return cls
    raise AssertionError(f"unclassified klpmodel refusal: {why!r}")


# --------------------------------------------------------------------------- the comparison


@dataclass
class Disagreement:
    path: list            # the operations (with the failed points) that lead to the state
    op: tuple
    what: str
    klpmodel: object
    reference: object
    failed: frozenset = frozenset()    # the outcome's failed points, when it is about one outcome

    def __str__(self) -> str:
        steps = "; ".join(_op_text(o) + (f" fail={sorted(lab)}" if lab else "") for o, lab in self.path)
        return (f"after [{steps}]\n  operation: {_op_text(self.op)}\n  differs in: {self.what}\n"
                f"  klpmodel:  {self.klpmodel}\n  reference: {self.reference}")


@dataclass
class Stats:
    pairs: int = 0          # distinct (klpmodel state, reference state) pairs reached
    compared: int = 0       # (pair, operation) comparisons
    disagreements: list = field(default_factory=list)
    known: dict = field(default_factory=dict)     # open DISAGREEMENTS.md entry -> times met


def _op_text(op) -> str:
    word, arg = op[0], op[1]
    return word if arg is None else f"{word} {arg}"


def param_ops(spec) -> list[Op]:
    """Writes of the livepatch modules' parameters (issue 10: `replace` is read once)."""
    ops = []
    for p in spec.patches:
        for name, default in p.params:
            for value in sorted({default, 1 if name == p.replace_param else -19, 0}):
                ops.append(Op("param", f"{p.name} {name} {value}"))
    return ops


def _diff(a: dict, b: dict) -> str:
    keys = [k for k in a if a[k] != b.get(k)] + [k for k in b if k not in a]
    return ", ".join(f"{k}: {a.get(k)} != {b.get(k)}" for k in keys)


def compare(spec, depth: int | None = None, stop_at_first: bool = True, budget: int = 50_000,
            known=lambda d: None) -> Stats:
    """Breadth-first over every operation sequence up to the depth; the first disagreement
    at the smallest depth (or all of them). A disagreement that `known` names (an open
    entry of DISAGREEMENTS.md) is counted in `stats.known` and the search does not go on
    past that operation."""
    klp_side = KlpSide(spec)
    ref = Reference(spec, faults=spec_faults(spec))
    ops = list(klp_side.m.ops) + param_ops(spec)
    stats = Stats()
    start = (klp_side.initial(), ref.initial(), [])
    seen = {(klp_side.key(start[0]), ref.freeze(start[1]))}
    stats.pairs = 1
    level = [start]
    for _d in range(depth or spec.depth):
        nxt = []
        for s, k, path in level:
            for op in ops:
                rop = (op.word, op.arg, op.params)
                stats.compared += 1
                problem = _compare_op(klp_side, ref, s, k, op, rop, path, nxt, seen, stats)
                if problem is not None:
                    name = known(problem)
                    if name:
                        stats.known[name] = stats.known.get(name, 0) + 1
                        continue
                    stats.disagreements.append(problem)
                    if stop_at_first:
                        return stats
        level = nxt
        if not level or stats.pairs > budget:
            break
    return stats


def _compare_op(klp_side, ref, s, k, op, rop, path, nxt, seen, stats):
    why = klp_side.refusal(s, op)
    rwhy = ref.refusal(k, rop)
    if (why is None) != (rwhy is None) or (why is not None and why != rwhy[0]):
        return Disagreement(path, rop, "possible / refusal class", why or "possible", rwhy[0] if rwhy else "possible")
    if why is not None:
        return None
    mine = {o[0]: o for o in klp_side.outcomes(s, op)}
    theirs = {r.failed: r for r in ref.outcomes(k, rop)}
    if set(mine) != set(theirs):
        return Disagreement(path, rop, "outcome labels (failed fallible points)",
                            sorted(map(sorted, mine)), sorted(map(sorted, theirs)))
    for label, (_, s2, lines, viol) in mine.items():
        r = theirs[label]
        step = path + [(rop, label)]
        if lines != r.log:
            return Disagreement(path, rop, f"log lines{_fail_text(label)}", lines, r.log, label)
        a, b = normalize(klp_side.abstract(s2), ref.abstract(r.kernel))
        if a != b:
            return Disagreement(path, rop, f"abstract state{_fail_text(label)}: {_diff(a, b)}", a, b, label)
        if viol != r.violations:
            return Disagreement(path, rop, f"violations{_fail_text(label)}", sorted(viol), sorted(r.violations), label)
        key = (klp_side.key(s2), ref.freeze(r.kernel))
        if key not in seen:
            seen.add(key)
            stats.pairs += 1
            nxt.append((s2, r.kernel, step))
    return None


def normalize(a: dict, b: dict) -> tuple[dict, dict]:
    """Compare only what klpmodel keeps: the list order where it tracks positions, the
    post_unpatch_enabled flags it has a variable for."""
    b = dict(b)
    if a["list"][:1] == ("unordered",):
        b["list"] = ("unordered", *sorted(b["list"]))
    b["pue"] = {k: v for k, v in b["pue"].items() if k in a["pue"]}
    return a, b


def _fail_text(label) -> str:
    return f" (failing {sorted(label)})" if label else ""


# --------------------------------------------------------------------------- open disagreements

def _open(spec):
    """The open entries of DISAGREEMENTS.md (kernel.py bugs awaiting a fix on main), as
    predicates over a disagreement: met in a random spec, they are counted, not failed.
    D1-D9, D11 and D13 had predicates here until main fixed them (see the history of this
    file for their shape). None is open."""
    checks: dict = {}        # "Dn title" -> predicate(Disagreement) -> bool, using `spec`

    def known(d):
        return next((name for name, check in checks.items() if check(d)), None)
    return known


# --------------------------------------------------------------------------- random specs

FAULTS = spec_has_faults()


def _check_lines(draw, deep: bool, extra_ops: list[str]) -> list[str]:
    """The [check] lines of a random spec: a depth (6-7 for a deep one), sometimes an explicit
    operation list with `extra_ops`, sometimes the patching fault."""
    ops = ["load", "complete", "reverse", "disable", "rmmod", "modload", "modunload"]
    check = [f"depth = {draw(st.integers(6, 7) if deep else st.integers(3, 5))}"]
    if draw(st.booleans()):
        check.append(f"operations = {ops + extra_ops!r}".replace("'", '"'))
    if FAULTS and draw(st.integers(0, 3)) == 0:
        check.append('faults = ["patching"]')
    return check


@st.composite
def specs(draw) -> str:
    """Random valid specs covering what issue 10 found: target modules coming and going
    mid-transition, reversed disables of replace patches, force with sleeping tasks,
    identical statements on one line, take/copy/free-prev in module callbacks, patching
    faults (once the spec language has them), `replace` from a module parameter."""
    deep = draw(st.integers(0, 3)) == 0          # a quarter: two patches, depth 6-7 (reversed disables of replace patches)
    n_states = draw(st.integers(1, 2))
    n_mods = draw(st.integers(0, 1 if deep else 2))
    n_patches = 2 if deep else draw(st.integers(2, 4))
    states = [f"s{i}" for i in range(n_states)]
    mods = [f"m{i}" for i in range(n_mods)]
    check = _check_lines(draw, deep, ["force", "call"])
    out = ["[check]\n" + "\n".join(check) + "\n"]
    out += [f"[states.{s}]\nid = {i + 1}\n" for i, s in enumerate(states)]
    sleeping = set()
    shadows = [f"sv{i}" for i in range(draw(st.integers(1, 2)))] if draw(st.integers(0, 2)) == 0 else []
    # (issue 14) some variables on named objects: o0 of vmlinux, o1 of the first module
    named = {sv: ["o0", "o1"] for sv in shadows if draw(st.booleans())}
    if named:
        out.append(f'[objects]\no0 = "vmlinux"\no1 = "{mods[0] if mods else "vmlinux"}"\n')
    for m in mods:
        lines = [f"[modules.{m}]", f"loaded = {_b(draw(st.booleans()))}"]
        if draw(st.booleans()):
            sleeping.add(m)
            lines.append(f"params = {{ busy = {_b(draw(st.booleans()))} }}")
            lines.append(f'sleeps = {{ function = "{m}_fn", while = "busy" }}')
        theirs = draw(st.lists(st.sampled_from(shadows), unique=True, max_size=1)) if shadows else []
        if theirs:                               # (issue 14) its init/exit call the shadow API
            lines.append(f'shadows = {{ {theirs[0]} = "l0" }}')
            for f in ("init", "init_error", "exit"):
                stmts = [f'log "{m} {f}"'] * draw(st.integers(0, 1)) + \
                    draw(st.lists(shadow_statement(theirs, [], "module " + f, named), max_size=2))
                if stmts:
                    lines.append(f"{f} = [{', '.join(_toml_str(x) for x in stmts)}]")
        elif draw(st.booleans()):
            lines.append(f"init = ['log \"{m} init\"']")
            lines.append(f"exit = ['log \"{m} exit\"']")
        out.append("\n".join(lines) + "\n")
    for i, sv in enumerate(shadows):             # (issue 14) shadow variables
        parent = f'\nparent = "{mods[0]}"' if mods and draw(st.booleans()) else ""
        out.append(f"[shadows.{sv}]\nid = {i + 1}{parent}\n")
    for k in range(n_patches):
        decl = draw(st.lists(st.sampled_from(states), unique=True, max_size=n_states))
        versions = {s: draw(st.integers(0, 3)) for s in decl}
        lines = ["[[patch]]", f'name = "p{k}"']
        mine = draw(st.lists(st.sampled_from(shadows), unique=True)) if shadows else []
        params = []
        how = draw(st.sampled_from(["plain", "replace", "param"]))
        if how == "replace":
            lines.append("replace = true")
        elif how == "param":
            params.append(f"replace = {draw(st.integers(0, 1))}")
            lines.append('replace_param = "replace"')
        if draw(st.integers(0, 3)) == 0:
            params.append("ret = 0")
        if params:
            lines.append(f"params = {{ {', '.join(params)} }}")
        lines.append(f"states = {{ {', '.join(f'{s} = {v}' for s, v in versions.items())} }}")
        uses = [draw(st.sampled_from(decl))] if decl and draw(st.booleans()) else []
        uses += [sv for sv in mine if draw(st.integers(0, 2)) == 0]
        if uses:
            lines.append(f"uses = [{', '.join(_toml_str(u) for u in uses)}]")
        if mine:
            lines.append("shadows = { " + ", ".join(f'{sv} = "l{draw(st.integers(0, 1))}"' for sv in mine) + " }")
            for f in ("init", "init_error", "exit"):
                stmts = draw(st.lists(shadow_statement(mine, decl, f, named), max_size=2))
                if stmts:
                    lines.append(f"{f} = [{', '.join(_toml_str(x) for x in stmts)}]")
        code = draw(st.lists(shadow_statement(mine, decl, "code", named), min_size=1, max_size=2)) \
            if mine and draw(st.booleans()) else []
        objs = draw(st.lists(st.sampled_from(mods), unique=True)) if mods else []
        if not objs or draw(st.integers(0, 3)):
            objs = ["vmlinux"] + objs
        has_ret = any(x.startswith("ret") for x in params)
        if code:
            lines.append("[patch.code]")
            lines.append(f"work = [{', '.join(_toml_str(x) for x in code)}]")
        home = draw(st.sampled_from([None, *objs])) if code else None   # the object whose `work` the code is
        for obj in objs:
            lines.append(f"[patch.objects.{obj}]")
            funcs = [f"{obj}_fn"] if obj in sleeping and draw(st.booleans()) else []
            if obj == home:                      # (issue 14) on that object's func_stack
                funcs.append("work")
            if funcs:
                lines.append(f"funcs = [{', '.join(_toml_str(f) for f in funcs)}]")
            recipe = RECIPES[draw(st.integers(0, len(RECIPES) - 1))] if decl and draw(st.integers(0, 2)) == 0 else {}
            target = draw(st.sampled_from(decl)) if decl else None
            for cb in ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch", "pre_patch_error"):
                # system-state.rst's callbacks for one state, sometimes; else random statements
                each = st.one_of(statement(decl, cb, has_ret), shadow_statement(mine, decl, cb, named)) if mine \
                    else statement(decl, cb, has_ret)
                stmts = ([x.format(s=target) for x in recipe[cb]] if cb in recipe
                         else draw(st.lists(each, max_size=2 if deep else 3)))
                if stmts and draw(st.integers(0, 4)) == 0:
                    stmts.append(stmts[draw(st.integers(0, len(stmts) - 1))])   # identical, same line
                if stmts:
                    lines.append(f"{cb} = [{', '.join(_toml_str(x) for x in stmts)}]")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# system-state.rst's expected usage for one state (test_klp_state.c, test_klp_state2.c), and
# the versions of it that break one property each
RECIPES = [
    {"pre_patch": ["alloc {s}"], "post_patch": ["save {s}", "modify {s}"],
     "pre_unpatch": ["restore {s}"], "post_unpatch": ["free {s}"]},
    {"pre_patch": ["alloc {s} unless prev {s}"],
     "post_patch": ["take {s} if prev {s}", "save {s} unless prev {s}", "modify {s} unless prev {s}"],
     "pre_unpatch": ["restore {s} unless prev {s}"], "post_unpatch": ["free {s} unless prev {s}"]},
    {"pre_patch": ["alloc {s}", "maybe-fail"], "post_patch": ["copy {s} if prev {s}", "save {s} unless prev {s}",
                                                              "modify {s}", "free-prev {s} if prev {s}"],
     "pre_unpatch": ["restore {s}"], "post_unpatch": ["free {s}"], "pre_patch_error": ["free {s}"]},
    {"pre_patch": ["modify {s}"], "post_unpatch": ["reset {s}"]},
    {"post_patch": ["save {s}", "modify {s}"], "pre_unpatch": ["restore {s}"]},
]


def _b(x: bool) -> str:
    return "true" if x else "false"


def _toml_str(s: str) -> str:
    return f"'{s}'" if '"' in s else f'"{s}"'


def statement(decl: list[str], cb: str, has_ret: bool):
    actions = ["return", 'log "hello"']
    if cb != "pre_patch_error":
        actions.append("banner")
    if cb == "pre_patch":
        actions += ["fail -ENODEV", "maybe-fail", "maybe-fail -ENODEV", "maybe-fail"]
        if has_ret:
            actions.append("fail ret")
    for s in decl:
        actions += [f"{a} {s}" for a in ("alloc", "free", "save", "restore", "modify", "reset", "take", "copy", "free-prev")]
    guards = [""] * 3 + [f" {w} prev {s}{tail}" for s in decl for w in ("if", "unless") for tail in ("", " >= 2")]
    if has_ret:
        guards += [" if param ret", " unless param ret"]
    return st.builds(lambda a, g: a + g, st.sampled_from(actions), st.sampled_from(guards))


def shadow_statement(mine: list[str], decl: list[str], where: str, named: dict | None = None):
    """(issue 14) The shadow actions and conditions; in init/exit also the states' writes.
    `named`: the variables on named objects ([objects]) and their objects; `where` "module
    init" (init_error, exit): a target module's function."""
    named = named or {}

    def on(sv: str) -> list[str]:
        return [f" on {o}" for o in named[sv]] if sv in named else [""]
    target = where.startswith("module ")
    actions = [f"{a} {sv}{o}" for sv in mine for a in ("shadow-alloc", "shadow-get-or-alloc", "shadow-get",
                                                      "shadow-free", "get", "put") for o in on(sv)]
    actions += [f"shadow-free-all {sv}" for sv in mine]
    if not target:
        actions += [f"shadow-get-or-alloc {sv}{o} with ctor-fail -ENOMEM" for sv in mine for o in on(sv)]
    if where == "code":
        actions += [f"shadow-alloc {sv} on new" for sv in mine if sv not in named]
    if where == "init":
        actions.append("maybe-fail -ENOMEM")
    if where == "module init":                   # its `if (!sv) goto out`
        actions += [f"{a} {sv}{o} or fail -ENOMEM" for sv in mine for a in ("shadow-alloc", "shadow-get-or-alloc")
                    for o in on(sv)]
    if where in ("init", "init_error", "exit", "code"):
        actions += [f"{a} {s}" for s in decl for a in ("modify", "reset")] + ['log "hello"']
    guards = [""] * 2 + [f" {w} shadow {sv}{o}" for sv in mine for w in ("if", "unless") for o in on(sv)] + \
        [f" if count {sv}{o} == 1" for sv in mine for o in on(sv)]
    return st.builds(lambda a, g: a + g, st.sampled_from(actions), st.sampled_from(guards))


def _spec_from(tmp_path_factory, text: str):
    path = tmp_path_factory.mktemp("ref") / "spec.toml"
    path.write_text(text)
    return load_spec(path)


RUN: dict = {"specs": 0, "pairs": 0, "compared": 0, "seconds": 0.0}
STATS_FILE = os.environ.get("KLP_REF_STATS")     # where to write the running totals (JSON)


def _compare_random(tmp_path_factory, text: str) -> None:
    """Compare one random spec; count the run (KLP_REF_STATS writes the counts as JSON)."""
    spec = _spec_from(tmp_path_factory, text)
    t = time.perf_counter()
    stats = compare(spec, known=_open(spec))
    RUN["specs"] += 1
    RUN["pairs"] += stats.pairs
    RUN["compared"] += stats.compared
    RUN["seconds"] += time.perf_counter() - t
    for name in stats.known:
        RUN[name] = RUN.get(name, 0) + 1
    if STATS_FILE:
        import json
        Path(STATS_FILE).write_text(json.dumps(dict(RUN, seed=SEED), indent=1))
    assert not stats.disagreements, f"{text}\n{stats.disagreements[0]}"


@seed(int(SEED or 0))
@settings(max_examples=EXAMPLES, derandomize=SEED is None, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(specs())
def test_reference_agrees_on_random_specs(tmp_path_factory, text):
    _compare_random(tmp_path_factory, text)


@st.composite
def replace_set_specs(draw) -> str:
    """The same specs under kernel "replace-set" (the replace_set series v2): `replace = true`
    becomes a replace_set from 0 to 2, a plain patch gets one too, and a `replace` parameter
    gives the set (0 or 1) at insmod; half the vmlinux objects patch f0 or f1."""
    import re
    blocks = draw(specs()).split("[[patch]]\n")
    out = ['kernel = "replace-set"\n' + blocks[0]]
    for b in blocks[1:]:
        n = draw(st.integers(0, 2))
        if re.search(r"^replace = true$", b, re.M):
            b = re.sub(r"^replace = true$", f"replace_set = {n}", b, flags=re.M)
        elif "replace_param" not in b:
            b = b.replace("\n", f"\nreplace_set = {n}\n", 1)
        if draw(st.booleans()):               # a vmlinux function: sets that share it refuse each other
            f = f'"f{draw(st.integers(0, 1))}"'
            if "[patch.objects.vmlinux]\nfuncs = [" in b:     # code's work is there already
                b = b.replace("[patch.objects.vmlinux]\nfuncs = [", f"[patch.objects.vmlinux]\nfuncs = [{f}, ", 1)
            else:
                b = b.replace("[patch.objects.vmlinux]\n", f"[patch.objects.vmlinux]\nfuncs = [{f}]\n")
        out.append(b)
    return "[[patch]]\n".join(out)


@seed(int(SEED or 0))
@settings(max_examples=max(1, EXAMPLES // 3), derandomize=SEED is None, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(replace_set_specs())
def test_reference_agrees_on_random_replace_set_specs(tmp_path_factory, text):
    """The reference's reading of the replace_set series v2 (its patch 2/4's hunks, in
    reference/klp.py) against kernel.ReplaceSet."""
    _compare_random(tmp_path_factory, text)


@st.composite
def state_callback_specs(draw) -> str:
    """Random specs under kernel "state-callbacks" (Petr Mladek's per-state callbacks v1): the
    callbacks belong to the states (`[states.S]` pre_patch/post_patch/pre_unpatch/post_unpatch,
    the shadow_dtor of an is_shadow state), block_disable on some; no per-object callbacks, no
    version (every patch carries S as S = 1) and no data. Shadow variables share ids with
    the states (is_shadow ties them) or not; 2-4 patches, `replace` fixed or from a
    parameter, some of them sharing a state (the in-other-patches rule), target modules and
    sleeping tasks, force and the patching fault as in `specs()`."""
    deep = draw(st.integers(0, 3)) == 0
    n_states = draw(st.integers(1, 3 if not deep else 2))
    n_mods = draw(st.integers(0, 1 if deep else 2))
    n_patches = 2 if deep else draw(st.integers(2, 4))
    states = [f"s{i}" for i in range(n_states)]
    mods = [f"m{i}" for i in range(n_mods)]
    check = _check_lines(draw, deep, ["force"])
    out = ['kernel = "state-callbacks"\n[check]\n' + "\n".join(check) + "\n"]
    # shadow variables: sv{i} has id i + 1, the id of state s{i} when there is one
    shadows = [f"sv{i}" for i in range(draw(st.integers(0, 2)))]
    has_ret = draw(st.booleans())                # every patch then has the parameter `ret`
    named: dict[str, set] = {}                   # the shadow variables each state's callbacks name
    for i, s in enumerate(states):
        lines = [f"[states.{s}]", f"id = {i + 1}"]
        if draw(st.booleans()):
            lines.append("is_shadow = true")
        if draw(st.integers(0, 4)) == 0:
            lines.append("block_disable = true")
        for cb in ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch", "shadow_dtor"):
            stmts = draw(st.lists(state_statement(s, shadows, cb, has_ret), max_size=2 if deep else 3))
            if stmts and draw(st.integers(0, 4)) == 0:
                stmts.append(stmts[draw(st.integers(0, len(stmts) - 1))])   # identical, same line
            if stmts:
                lines.append(f"{cb} = [{', '.join(_toml_str(x) for x in stmts)}]")
            named.setdefault(s, set()).update(sv for x in stmts for sv in shadows if sv in x.split())
        out.append("\n".join(lines) + "\n")
    sleeping = set()
    for m in mods:
        lines = [f"[modules.{m}]", f"loaded = {_b(draw(st.booleans()))}"]
        if draw(st.booleans()):
            sleeping.add(m)
            lines.append(f"params = {{ busy = {_b(draw(st.booleans()))} }}")
            lines.append(f'sleeps = {{ function = "{m}_fn", while = "busy" }}')
        out.append("\n".join(lines) + "\n")
    for i, sv in enumerate(shadows):
        parent = f'\nparent = "{mods[0]}"' if mods and draw(st.integers(0, 3)) == 0 else ""
        out.append(f"[shadows.{sv}]\nid = {i + 1}{parent}\n")
    for k in range(n_patches):
        decl = draw(st.lists(st.sampled_from(states), unique=True, max_size=n_states))
        lines = ["[[patch]]", f'name = "p{k}"']
        params = ["ret = 0"] if has_ret else []
        how = draw(st.sampled_from(["plain", "replace", "param"]))
        if how == "replace":
            lines.append("replace = true")
        elif how == "param":
            params.append(f"replace = {draw(st.integers(0, 1))}")
            lines.append('replace_param = "replace"')
        if params:
            lines.append(f"params = {{ {', '.join(params)} }}")
        lines.append(f"states = {{ {', '.join(f'{s} = 1' for s in decl)} }}")
        mine = draw(st.lists(st.sampled_from(shadows), unique=True)) if shadows else []
        # the shadow variables its states' callbacks name, as its `params` must hold theirs
        # (docs/spec-format.md says it of parameters; a layout is per patch)
        mine += [sv for sv in shadows if sv not in mine and any(sv in named[s] for s in decl)]
        uses = [sv for sv in mine if draw(st.integers(0, 2)) == 0]
        if uses:
            lines.append(f"uses = [{', '.join(_toml_str(u) for u in uses)}]")
        if mine:
            lines.append("shadows = { " + ", ".join(f'{sv} = "l{draw(st.integers(0, 1))}"' for sv in mine) + " }")
            for f in ("init", "init_error", "exit"):
                stmts = draw(st.lists(shadow_statement(mine, decl, f), max_size=2))
                if stmts:
                    lines.append(f"{f} = [{', '.join(_toml_str(x) for x in stmts)}]")
        code = draw(st.lists(shadow_statement(mine, decl, "code"), min_size=1, max_size=2)) if mine and draw(st.booleans()) else []
        if code:
            lines.append("[patch.code]")
            lines.append(f"work = [{', '.join(_toml_str(x) for x in code)}]")
        objs = draw(st.lists(st.sampled_from(mods), unique=True)) if mods else []
        if not objs or draw(st.integers(0, 3)):
            objs = ["vmlinux"] + objs
        for obj in objs:
            lines.append(f"[patch.objects.{obj}]")
            if obj in sleeping and draw(st.booleans()):
                lines.append(f'funcs = ["{obj}_fn"]')
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def state_statement(s: str, shadows: list[str], cb: str, has_ret: bool):
    """A statement of state s's callback: banner, log, return, modify/reset of s, the shadow
    actions (not in shadow_dtor: it runs under klp_shadow_lock, where klp_shadow_alloc and
    _free would deadlock; it may read one); pre_patch may fail. Guards: `if|unless prev s`,
    `if|unless shadow SV`, `if|unless param ret`."""
    actions = ["return", 'log "hello"', "banner", f"modify {s}", f"reset {s}"]
    if cb == "pre_patch":
        actions += ["fail -ENODEV", "maybe-fail", "maybe-fail -ENODEV"]
        if has_ret:
            actions.append("fail ret")
    for sv in shadows:
        if cb == "shadow_dtor":
            actions.append(f"shadow-get {sv}")
        else:
            actions += [f"{a} {sv}" for a in ("shadow-alloc", "shadow-get-or-alloc", "shadow-get", "shadow-free",
                                              "shadow-free-all", "get", "put")]
            actions.append(f"shadow-get-or-alloc {sv} with ctor-fail -ENOMEM")
    guards = [""] * 3 + [f" {w} prev {s}" for w in ("if", "unless")]
    guards += [f" {w} shadow {sv}" for sv in shadows for w in ("if", "unless")]
    if has_ret:
        guards += [" if param ret", " unless param ret"]
    return st.builds(lambda a, g: a + g, st.sampled_from(actions), st.sampled_from(guards))


@seed(int(SEED or 0))
@settings(max_examples=max(1, EXAMPLES // 2), derandomize=SEED is None, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(state_callback_specs())
def test_reference_agrees_on_random_state_callback_specs(tmp_path_factory, text):
    """The reference's reading of the per-state callbacks series v1 (state.c of 01/02/04, the
    core.c and transition.c hunks, 19/19; reference/klp.py) against kernel.StateCallbacks."""
    _compare_random(tmp_path_factory, text)


SHIPPED = (sorted((ROOT / "specs").glob("*.toml")) + sorted((ROOT / "specs" / "selftests").glob("*.toml"))
           + sorted((ROOT / "specs" / "samples").glob("*.toml"))
           + sorted((ROOT / "specs" / "selftests-replace-set").glob("*.toml"))
           + sorted((ROOT / "specs" / "selftests-state-callbacks").glob("*.toml"))
           + sorted((ROOT / "specs" / "proposals").glob("*.toml")))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_reference_agrees_on_shipped_specs(path):
    """The shipped specs, every sequence up to depth 6 (param writes included)."""
    spec = load_spec(path)
    stats = compare(spec, depth=min(spec.depth, 6), known=_open(spec))
    assert not stats.disagreements, str(stats.disagreements[0])


# --------------------------------------------------------------------------- the reference alone, against the selftests


SCRIPT_ONLY = ("sysctl", "pending")   # script words about ftrace_enabled and test-syscall's pids


def test_reference_reproduces_the_selftest_logs():
    """The reference, run through the scenarios of specs/selftests/ (the kernel selftests'
    expected logs), prints exactly the expected log: it is checked against the kernel
    itself, not only against klpmodel. Scenarios using script words outside the livepatch
    lifecycle (ftrace_enabled, test-syscall's pid count) are left to klpmodel's conformance."""
    import tomllib
    failed, ran = [], 0
    for path in sorted((ROOT / "specs" / "selftests").glob("*/*.toml")) + \
            sorted((ROOT / "specs" / "selftests-replace-set").glob("*/*.toml")) + \
            sorted((ROOT / "specs" / "selftests-state-callbacks").glob("*/*.toml")):
        scenario = tomllib.loads(path.read_text())
        if any(line.split()[:1] and line.split()[0] in SCRIPT_ONLY for line in scenario["run"].splitlines()):
            continue
        spec = load_spec(path.parent / scenario["spec"])
        ran += 1
        log = scenario_log(spec, scenario["run"], scenario.get("era", "insmod"))
        if log != scenario["expected"].strip().splitlines():
            failed.append(path.name)
    assert ran >= 55 and not failed, failed


def _runs(k, function: str) -> str:
    """Whose version of FUNCTION runs: the newest patch on klp_patches with a patched object
    that patches it (ftrace's func_stack), else the original."""
    return next((p.name for p in reversed(k.klp_patches)
                 for o in p.static_objs if o.patched and function in o.spec.funcs), "original")


def _gone(k) -> set[str]:
    """The attributes klp_patch_attrs[] lacks: replace_set before the replace_set series; with
    it (v2 2/4, 3/4), replace and stack_order."""
    return {"replace", "stack_order"} if k.sets else {"replace_set"}


def _sysfs(k, path: str) -> str | None:
    name, _, attr = path.partition("/")
    p = k.modules[name].patch
    if p is None or p not in k.klp_patches:
        return None
    if attr == "enabled":
        return str(int(p.enabled))
    if attr == "transition":
        return str(int(p is k.klp_transition_patch))
    if attr in _gone(k):
        return None
    if attr == "replace":
        return str(int(p.replace))
    if attr == "replace_set":                # v2 2/4: sysfs_emit(buf, "%u\n", patch->replace_set)
        return str(p.replace_set)
    if attr == "stack_order":
        return str(k.klp_patches.index(p) + 1)
    obj, _, leaf = attr.partition("/")
    return next((str(int(o.patched)) for o in p.obj_list if o.label == obj and leaf == "patched"), None)


def _fail_keys(spec, op_word: str, arg: str, fails: list[str]) -> set:
    """fail=[PATCH/]OBJECT[:patching|:CALLBACK[N]] as fallible-point keys."""
    keys = set()
    for f in fails:
        who, _, site = f.partition(":")
        patch, _, obj = who.rpartition("/")
        patch = patch or (arg if op_word == "load" else None)
        if site == "patching":
            keys.add((patch, obj, "patching", 0))
        else:
            cb, _, n = site.partition("[")
            keys.add((patch, obj, cb, int(n.rstrip("]"))))
    return keys


def scenario_log(spec, run: str, era: str = "insmod") -> list[str]:
    """A scenario's run through the reference, with the selftest script's command lines."""
    faults = "fail=" in run and ":patching" in run
    ref = Reference(spec, faults=faults)
    k = ref.initial()
    log: list[str] = []
    for raw in run.splitlines():
        words = raw.split("#")[0].split()
        if not words:
            continue
        word, arg = words[0], words[1] if len(words) > 1 else None
        if word == "probe":                  # the newest installed patch that patches the function runs
            if _runs(k, arg) != "original":
                log.append(f"{_runs(k, arg)}: this has been live patched")
            continue
        if word in ("runs", "ok"):
            if word == "ok" and _runs(k, arg) == words[2]:
                log.append("livepatch: ok")
            if word == "runs" and _runs(k, arg) != words[2]:
                log.append("ERROR: livepatch kselftest(s) failed")
                break
            continue
        if word == "read-param":            # cat /sys/module/MOD/PARAM: its show function FUNC runs once
            mod, _, param = arg.partition("/")
            log.append(f"% cat /sys/module/{mod}/parameters/{param}")
            if not k.modules[mod].loaded:
                break
            shown = clone(k)                 # a new task (cat) runs the version klp_ftrace_handler picks
            callbacks.run_code(shown, words[2], "")
            log += shown.log[len(k.log):]
            continue
        if word == "sysfs-rights":          # the modes of the attributes (core.c: __ATTR_RW/_RO/_WO)
            name, _, attr = arg.partition("/")
            p = k.modules[name].patch
            objs = {o.label for o in p.obj_list} if p is not None and p in k.klp_patches else None
            mode = None if objs is None or attr in _gone(k) else ("drwxr-xr-x" if attr == "" or attr in objs else
                                              {"enabled": "-rw-r--r--", "force": "--w-------"}.get(attr, "-r--r--r--"))
            if mode != words[2]:
                log.append(f"ERROR: Unexpected access rights of /sys/kernel/livepatch/{arg}: {words[2]} vs. {mode}")
                break
            continue
        if word == "sysfs-gone":             # loop_until 'test ! -f ...': the patch's directory is gone
            if _sysfs(k, arg) is not None:
                log.append(f"ERROR: /sys/kernel/livepatch/{arg} still exists")
                break
            continue
        if word == "sysfs":
            if _sysfs(k, arg) != words[2]:
                log.append(f"ERROR: Unexpected value in /sys/kernel/livepatch/{arg}: {words[2]} vs. {_sysfs(k, arg)}")
                break
            continue
        fail = _fail_keys(spec, word, arg, [w[5:] for w in words[2:] if w.startswith("fail=")])
        args = [w for w in words[2:] if not w.startswith("fail=")]
        if word == "param":
            name, _, value = args[0].partition("=")
            log.append(f"% echo {value} > /sys/module/{arg}/parameters/{name}")
            op = ("param", f"{arg} {name} {_value(value)}")
        else:
            tp = k.klp_transition_patch
            if word in ("load", "modload"):
                log.append(" ".join([f"% modprobe {arg}" if era == "modprobe" else f"% insmod test_modules/{arg}.ko",
                                     *args]))
            elif word in ("rmmod", "modunload"):
                log.append(f"% rmmod {arg}")
            elif word == "disable":
                log.append(f"% echo 0 > /sys/kernel/livepatch/{arg}/enabled")
            elif word == "reverse" and tp:
                log.append(f"% echo {0 if tp.enabled else 1} > /sys/kernel/livepatch/{tp.name}/enabled")
            elif word == "force" and tp:
                log.append(f"% echo 1 > /sys/kernel/livepatch/{tp.name}/force")
            op = (word, arg, tuple((a.partition("=")[0], _value(a.partition("=")[2])) for a in args))
        r = ref.apply(k, op, lambda key, fail=fail: key in fail)
        log += r.log
        if r.refused and word in ("rmmod", "modunload"):
            log.append(f"rmmod: ERROR: Module {arg} is {'in use' if r.refused == 'in use' else 'not currently loaded'}")
        if not r.refused:
            k = r.kernel
    return log


def _value(text: str) -> int:
    low = text.lower()
    if low in ("y", "yes", "true", "n", "no", "false"):
        return int(low in ("y", "yes", "true"))
    return int(text)


# --------------------------------------------------------------------------- the open disagreements, one case each


class _Unseen(set):
    """No memo: every outcome is kept, also two that end in the same state."""

    def __contains__(self, key) -> bool:
        return False


def replay(spec, ops: list[str]) -> Disagreement | None:
    """Both sides along one operation sequence; `fail=PATCH/OBJECT/CALLBACK/INDEX` after an
    operation picks the outcome where that point fails (none fails otherwise). The first
    disagreement."""
    klp_side, ref = KlpSide(spec), Reference(spec, faults=spec_faults(spec))
    s, k, path = klp_side.initial(), ref.initial(), []
    for text in ops:
        words = text.split()
        fails = frozenset(tuple(int(x) if x.isdigit() else x for x in w[5:].split("/")) for w in words if w.startswith("fail="))
        words = [w for w in words if not w.startswith("fail=")]
        op = Op(words[0], " ".join(words[1:]) or None)
        nxt: list = []
        problem = _compare_op(klp_side, ref, s, k, op, (op.word, op.arg, op.params), path, nxt, _Unseen(), Stats())
        if problem is not None:
            return problem
        if klp_side.refusal(s, op) is not None:
            continue
        s, k, path = next((s2, k2, p2) for s2, k2, p2 in nxt if p2[-1][1] == fails)
    return None


def _cases():
    for path in sorted(CASES.glob("*.toml")):
        ops = next(line.split(":", 1)[1] for line in path.read_text().splitlines() if line.startswith("# ops:"))
        yield pytest.param(path, [o.strip() for o in ops.split(";")], id=path.stem)


OPEN: dict[str, str] = {   # DISAGREEMENTS.md entries that kernel.py on main still has (case id -> entry)
}


@pytest.mark.parametrize(("path", "ops"), [
    pytest.param(*c.values, marks=pytest.mark.xfail(strict=True, reason=f"DISAGREEMENTS.md {OPEN[c.id]}"), id=c.id)
    if c.id in OPEN else c for c in _cases()])
def test_disagreement_cases(path, ops):
    """Each entry of DISAGREEMENTS.md, replayed: klpmodel and the reference agree once
    kernel.py is fixed (an open entry is xfail(strict=True): its fix makes it XPASS, and
    the entry then leaves OPEN and the random test's known list)."""
    problem = replay(load_spec(path), ops)
    assert problem is None, str(problem)


# --------------------------------------------------------------------------- the patching fault, on the reference alone
# (klpmodel's spec language gets `faults = ["patching"]` with issue 10; until then these pin
# the reference to semantics.md §3.1, §9.1 and test-kprobe.sh)

FAULT_SPEC = """
[modules.m]
loaded = true
[[patch]]
name = "a"
[patch.objects.vmlinux]
pre_patch = ["banner"]
post_unpatch = ["banner"]
[patch.objects.m]
pre_patch = ["banner"]
post_patch = ["banner"]
pre_unpatch = ["banner"]
post_unpatch = ["banner"]
[[patch]]
name = "b"
[patch.objects.m]
pre_patch = ["banner"]
post_unpatch = ["banner"]
[[patch]]
name = "r"
replace = true
"""


def _run_faulty(tmp_path, ops, fail):
    path = tmp_path / "fault.toml"
    path.write_text(FAULT_SPEC)
    ref = Reference(load_spec(path), faults=True)
    k = ref.initial()
    for op in ops[:-1]:
        k = ref.apply(k, op, lambda key: False).kernel
    return ref.apply(k, ops[-1], lambda key: key in fail)


def test_reference_patching_fault_in_enable(tmp_path):
    """§3.1: the object's pre_patch ran, so its post_unpatch runs on the error path
    (test-kprobe.sh: -EBUSY, "Device or resource busy")."""
    r = _run_faulty(tmp_path, [("load", "a")], {("a", "m", "patching", 0)})
    assert r.log == [
        "livepatch: enabling patch 'a'", "livepatch: 'a': initializing patching transition",
        "a: pre_patch_callback: vmlinux", "a: pre_patch_callback: m -> [MODULE_STATE_LIVE] Normal state",
        "livepatch: failed to patch object 'm'", "livepatch: failed to enable patch 'a'",
        "livepatch: 'a': canceling patching transition, going to unpatch",
        "livepatch: 'a': completing unpatching transition",
        "a: post_unpatch_callback: vmlinux", "a: post_unpatch_callback: m -> [MODULE_STATE_LIVE] Normal state",
        "livepatch: 'a': unpatching complete",
        "insmod: ERROR: could not insert module test_modules/a.ko: Device or resource busy"]
    assert r.kernel.klp_patches == []


def test_reference_patching_fault_at_module_coming(tmp_path):
    """§9.1: post_unpatch of the failing object, then the refusal and the rollback of the
    patches before it only."""
    ops = [("modunload", "m"), ("load", "a"), ("complete", None), ("load", "b"), ("complete", None), ("modload", "m")]
    r = _run_faulty(tmp_path, ops, {("b", "m", "patching", 0)})
    coming = "-> [MODULE_STATE_COMING] Full formed, running module_init"
    assert r.log == [
        "livepatch: applying patch 'a' to loading module 'm'", f"a: pre_patch_callback: m {coming}",
        f"a: post_patch_callback: m {coming}",
        "livepatch: applying patch 'b' to loading module 'm'", f"b: pre_patch_callback: m {coming}",
        "livepatch: failed to apply patch 'b' to module 'm' (-16)", f"b: post_unpatch_callback: m {coming}",
        "livepatch: patch 'b' failed for module 'm', refusing to load module 'm'",
        f"a: pre_unpatch_callback: m {coming}", "livepatch: reverting patch 'a' on unloading module 'm'",
        f"a: post_unpatch_callback: m {coming}",
        "insmod: ERROR: could not insert module test_modules/m.ko: Device or resource busy"]
    assert not r.kernel.modules["m"].loaded


def test_reference_nop_object_fault(tmp_path):
    """A replace patch's dynamic object is applied at module coming like any object, and
    can fail like any object (klp_add_nops, klp_module_coming)."""
    ops = [("modunload", "m"), ("load", "b"), ("complete", None), ("load", "r"), ("modload", "m")]
    r = _run_faulty(tmp_path, ops, {("r", "m", "patching", 0)})
    coming = "-> [MODULE_STATE_COMING] Full formed, running module_init"
    assert r.log == [
        "livepatch: applying patch 'b' to loading module 'm'", f"b: pre_patch_callback: m {coming}",
        "livepatch: applying patch 'r' to loading module 'm'",
        "livepatch: failed to apply patch 'r' to module 'm' (-16)",
        "livepatch: patch 'r' failed for module 'm', refusing to load module 'm'",
        "livepatch: reverting patch 'b' on unloading module 'm'", f"b: post_unpatch_callback: m {coming}",
        "insmod: ERROR: could not insert module test_modules/m.ko: Device or resource busy"]
    ref = Reference(r.kernel.spec, faults=True)
    k = ref.initial()
    for op in ops[:-1]:
        k = ref.apply(k, op, lambda key: False).kernel
    assert {o.failed for o in ref.outcomes(k, ops[-1])} == {
        frozenset(), frozenset({("b", "m", "patching", 0)}), frozenset({("r", "m", "patching", 0)})}


# --------------------------------------------------------------------------- the per-state callbacks v1, on the reference alone
# (proposals.md §A.5.4 state.c, §A.4.8's table: pinned to the code, not to klpmodel)

STATECB_SPEC = """
kernel = "state-callbacks"
[states.x]
id = 1
is_shadow = true
pre_patch = ["banner", "shadow-alloc sv"]
post_patch = ["banner"]
pre_unpatch = ["banner"]
post_unpatch = ["banner"]
shadow_dtor = ['log "dtor" unless shadow sv']
[states.y]
id = 2
pre_patch = ["banner"]
post_patch = ["banner"]
pre_unpatch = ["banner"]
post_unpatch = ["banner"]
[shadows.sv]
id = 1
[[patch]]
name = "a"
states = { x = 1 }
shadows = { sv = "l" }
[[patch]]
name = "b"
states = { x = 1 }
shadows = { sv = "l" }
[[patch]]
name = "n"
replace = true
states = { y = 1 }
"""


def _statecb(tmp_path, ops):
    path = tmp_path / "statecb.toml"
    path.write_text(STATECB_SPEC)
    ref = Reference(load_spec(path))
    k, logs = ref.initial(), []
    for op in ops:
        r = ref.apply(k, op, lambda key: False)
        assert r.refused is None, (op, r.refused)
        k, logs = r.kernel, logs + [r.log]
    return k, logs


def test_reference_statecb_obsolete_state_of_a_replaced_patch(tmp_path):
    """§A.4.8 row 3: the replaced patch's pre_unpatch after the new patch's pre_patch; its
    post_unpatch and the shadow free (old dtor, variable off the hash) before the new
    patch's post_patch."""
    k, logs = _statecb(tmp_path, [("load", "a"), ("complete", None), ("load", "n"), ("complete", None)])
    assert logs[2][2:5] == ["n: pre_patch_callback: state 2", "a: pre_unpatch_callback: state 1",
                            "livepatch: 'n': starting patching transition"]
    assert logs[3][1:4] == ["a: post_unpatch_callback: state 1", "a: dtor", "n: post_patch_callback: state 2"]
    assert [p.name for p in k.klp_patches] == ["n"] and k.shadows == {}


def test_reference_statecb_reversed_replace_reenables_the_obsolete_state(tmp_path):
    """v1 "Revert pre_unpatch() callbacks": a reversed replace runs the replaced patch's
    post_patch again (the flag set), then its own post_unpatch; no pre_unpatch of its own."""
    k, logs = _statecb(tmp_path, [("load", "a"), ("complete", None), ("load", "n"), ("reverse", None),
                                  ("complete", None)])
    assert logs[4] == ["livepatch: 'n': completing unpatching transition", "a: post_patch_callback: state 1",
                       "n: post_unpatch_callback: state 2", "livepatch: 'n': unpatching complete"]
    assert not k.pre_unpatch_replaced_called and [p.name for p in k.klp_patches] == ["a"]


def test_reference_statecb_two_replaced_patches_sharing_a_state_leak_it(tmp_path):
    """§A.4.8 row 4 (Sashiko finding 1): a and b both carry x, n does not: each sees the
    other, so neither pre_unpatch nor post_unpatch runs and sv outlives both."""
    k, logs = _statecb(tmp_path, [("load", "a"), ("complete", None), ("load", "b"), ("complete", None),
                                  ("load", "n"), ("complete", None)])
    assert not any("state 1" in line for line in logs[4] + logs[5])
    assert [p.name for p in k.klp_patches] == ["n"] and (None, 1) in k.shadows
