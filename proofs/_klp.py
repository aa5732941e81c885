"""Abstract restatements of kernel.py's rules, shared by the theorem files (not a theorem).

Each function below names the kernel.py code it restates; tests/test_theory.py checks the
restatements against kernel.py on concrete instances.
"""
from __future__ import annotations

import z3

# ------------------------------------------------------------------ klp_is_patch_compatible
# kernel.compatible(new, old) (§2.2): for every state S of an installed patch P, the new
# patch N must declare S (only if N is cumulative) and, if it declares it, with a version
# >= P's. Over uninterpreted sorts: decl(P, S), ver(P, S), on(P) (P is on klp_patches).


def sorts():
    Patch = z3.DeclareSort("Patch")
    State = z3.DeclareSort("State")
    decl = z3.Function("decl", Patch, State, z3.BoolSort())
    ver = z3.Function("ver", Patch, State, z3.IntSort())
    return Patch, State, decl, ver


def compatible_with(decl, ver, new, old, s, replace):
    """klp_is_state_compatible for one installed patch `old` and one of its states `s`."""
    if replace:
        return z3.Implies(decl(old, s), z3.And(decl(new, s), ver(new, s) >= ver(old, s)))
    return z3.Implies(z3.And(decl(old, s), decl(new, s)), ver(new, s) >= ver(old, s))


def compatible(Patch, State, decl, ver, on, new, replace):
    """klp_is_patch_compatible: every installed patch, every one of its states."""
    P, S = z3.Const("P", Patch), z3.Const("S", State)
    return z3.ForAll([P, S], z3.Implies(on(P), compatible_with(decl, ver, new, P, S, replace)))


# ------------------------------------------------------------------ the recipe, per state
#
# One arbitrary state s, seen through a series of patches that all follow the seed's
# "expected usage" recipe for s (the statements in RECIPE below). A patch that does not
# declare s runs nothing for s. The roles: E, the enabled patch (at most one is enabled at
# a quiescent point in a series of cumulative patches: completing a replace drops every
# older one); T, a patch in a transition started by `load`. Modes:
MODES = ("empty", "E", "load T", "load T over E", "reversed load T", "reversed load T over E",
         "disable E", "reversed disable E")
ORIG, ZERO = -1, -2      # a state's value / a block's content: original, zero, or the variant of version v >= 0
NOHI = -1                # hi: no variant held since the value was last original

RECIPE = {   # the spec statements of a recipe patch, for a state S it declares
    "pre_patch": ["alloc {S} unless prev {S}"],
    "pre_patch_error": ["free {S} unless prev {S}"],
    "post_patch": ["take {S} if prev {S}", "save {S} unless prev {S}", "modify {S} unless prev {S}"],
    "pre_unpatch": ["restore {S} unless prev {S}"],
    "post_unpatch": ["free {S} unless prev {S}"],
}

# The rule for non-cumulative patches sharing a state (theorems d and e): never share the
# previous patch's block; each patch allocates its own, copies the previous data into it,
# and frees its own block when it leaves.
OWN_BLOCK = {
    "pre_patch": ["alloc {S}"],
    "pre_patch_error": ["free {S}"],
    "post_patch": ["copy {S} if prev {S}", "save {S} unless prev {S}", "modify {S} unless prev {S}"],
    "pre_unpatch": ["restore {S} unless prev {S}"],
    "post_unpatch": ["free {S}"],
}

INT_VARS = ("mode", "eD", "eV", "tD", "tV", "val", "hi", "eP", "tP", "cA", "cB", "sV", "sK", "sC")
BOOL_VARS = ("lA", "lB", "lk", "ls")
# eD/tD: the role declares s (0/1); eV/tV its version; eP/tP its data: 0 NULL, 1 block A,
# 2 block B; lA/lB, cA/cB: block live, content; lk: a block of s leaked (never undone);
# ls: one leaked since the load in transition; sV, sK, sC: the abstract system just before
# that load (value of s; E's data kind 0 NULL / 1 live / 2 freed, and content).


_CONTENT = {ORIG: "original", ZERO: "zero"}
# the variables as prove-theory names them in an invariant: (name, what it is)
VARS = {
    "mode": ("mode", "where s's lifecycle is: " + ", ".join(f"{i} {m}" for i, m in enumerate(MODES))),
    "eD": ("E.declares", "E, the enabled patch, declares s"),
    "eV": ("E.version", "the version of s that E declares"),
    "eP": ("E.data", "E's state->data: 0 NULL, 1 block A, 2 block B"),
    "tD": ("T.declares", "T, the patch in transition, declares s"),
    "tV": ("T.version", "the version of s that T declares"),
    "tP": ("T.data", "T's state->data: 0 NULL, 1 block A, 2 block B"),
    "val": ("value", "the value of s: -1 original, v >= 0 the variant of version v"),
    "hi": ("newest", "the newest variant s held since it was last original (-1: none)"),
    "lA": ("A.live", "block A is allocated"),
    "lB": ("B.live", "block B is allocated"),
    "cA": ("A.content", "what block A holds: -2 zero, -1 the original, v >= 0 the variant of version v"),
    "cB": ("B.content", "what block B holds (as A.content)"),
    "sV": ("saved.value", "the value of s just before the load in transition"),
    "sK": ("saved.E.data", "E's data just before that load: 0 NULL, 1 a live block, 2 a freed one"),
    "sC": ("saved.E.content", "what E's block held just before that load"),
    "lk": ("leaked", "a block of s was leaked"),
    "ls": ("leaked.since.load", "a block of s was leaked since the load in transition"),
}
VALUES = {"mode": dict(enumerate(MODES)), "E.data": {0: "NULL", 1: "block A", 2: "block B"},
          "T.data": {0: "NULL", 1: "block A", 2: "block B"}, "A.content": _CONTENT, "B.content": _CONTENT,
          "saved.E.content": _CONTENT, "saved.E.data": {0: "NULL", 1: "live", 2: "freed"}}
FLAGS = frozenset({"eD", "tD"})


def state(tag: str) -> dict:
    st = {v: z3.Int(f"{v}{tag}") for v in INT_VARS}
    st.update({v: z3.Bool(f"{v}{tag}") for v in BOOL_VARS})
    return st


def init(x: dict):
    return z3.And(x["mode"] == 0, x["eD"] == 0, x["tD"] == 0, x["eV"] == 0, x["tV"] == 0, x["val"] == ORIG,
                  x["hi"] == NOHI, x["eP"] == 0, x["tP"] == 0, z3.Not(x["lA"]), z3.Not(x["lB"]),
                  x["cA"] == ZERO, x["cB"] == ZERO, z3.Not(x["lk"]), z3.Not(x["ls"]),
                  x["sV"] == ORIG, x["sK"] == 0, x["sC"] == 0)


class _Run:
    """Straight-line code with guards: every write is If(guard, new, old); violations
    are collected as (property, guard and condition)."""

    def __init__(self, x: dict):
        self.x = dict(x)
        self.viol: list[tuple[str, object]] = []

    def set(self, g, name, value):
        self.x[name] = z3.If(g, value, self.x[name])

    def bad(self, prop, g, cond):
        self.viol.append((prop, z3.And(g, cond)))

    def live(self, p):
        return z3.If(p == 1, self.x["lA"], self.x["lB"])

    def kind(self, p):                      # kernel.kind: 0 NULL, 1 live, 2 freed
        return z3.If(p == 0, 0, z3.If(self.live(p), 1, 2))

    def content(self, p):
        return z3.If(p == 1, self.x["cA"], self.x["cB"])

    def deref(self, g, p):                  # kernel.deref
        self.bad("no-null-deref", g, p == 0)
        self.bad("no-use-after-free", g, self.kind(p) == 2)
        return z3.And(g, p != 0)

    def set_value(self, g, value):          # kernel.set_value
        hi = self.x["hi"]
        self.bad("version-order", g, z3.And(value >= 0, value < hi))
        self.set(g, "hi", z3.If(value == ORIG, NOHI, z3.If(z3.And(value >= 0, hi < value), value, hi)))
        self.set(g, "val", value)

    def write(self, g, p, value):
        self.set(z3.And(g, p == 1), "cA", value)
        self.set(z3.And(g, p == 2), "cB", value)

    def free(self, g, p):                   # kernel.free_block (kfree(NULL) is allowed)
        self.bad("no-double-free", g, self.kind(p) == 2)
        self.set(z3.And(g, p == 1), "lA", False)
        self.set(z3.And(g, p == 2), "lB", False)

    def release(self, g, who):              # kernel.release: a live block nobody points at is leaked
        p = self.x[who + "P"]
        other = self.x[("t" if who == "e" else "e") + "P"]
        lost = z3.And(g, p != 0, other != p, self.live(p))
        self.set(g, "lk", z3.Or(self.x["lk"], lost))
        self.set(g, "ls", z3.Or(self.x["ls"], lost))
        self.set(z3.And(lost, p == 1), "lA", False)
        self.set(z3.And(lost, p == 2), "lB", False)
        self.set(g, who + "P", 0)
        return lost

    def alloc(self, g, who):                # kernel.alloc: the first slot no pointer holds
        self.release(g, who)
        other = self.x[("t" if who == "e" else "e") + "P"]
        slot = z3.If(other == 1, 2, 1)
        self.set(g, who + "P", slot)
        self.set(z3.And(g, slot == 1), "lA", True)
        self.set(z3.And(g, slot == 2), "lB", True)
        self.write(g, slot, ZERO)

    # ---- the recipe's callbacks for role `who` (prev: the condition "prev S")
    def post_patch(self, g, who, prev, prev_ptr):
        g = z3.And(g, self.x[who + "D"] == 1)
        take = z3.And(g, prev)
        self.release(take, who)
        self.set(take, who + "P", prev_ptr)
        fresh = z3.And(g, z3.Not(prev))
        own = self.x[who + "P"]
        self.write(self.deref(fresh, own), own, self.x["val"])         # save
        self.set_value(fresh, self.x[who + "V"])                       # modify

    def pre_unpatch(self, g, who, prev):
        g = z3.And(g, self.x[who + "D"] == 1, z3.Not(prev))
        own = self.x[who + "P"]
        self.set_value(self.deref(g, own), self.content(own))          # restore

    def post_unpatch(self, g, who, prev):
        self.free(z3.And(g, self.x[who + "D"] == 1, z3.Not(prev)), self.x[who + "P"])

    def snapshot(self, g):                  # kernel.snapshot: the abstract system before a load
        e = self.x["eP"]
        k = z3.If(self.x["mode"] == 1, self.kind(e), 0)
        self.set(g, "sV", self.x["val"])
        self.set(g, "sK", k)
        self.set(g, "sC", z3.If(k == 1, self.content(e), 0))
        self.set(g, "ls", False)

    def same_as_snapshot(self, with_e):
        e = self.x["eP"]
        k = z3.If(with_e, self.kind(e), 0)
        return z3.And(self.x["val"] == self.x["sV"], k == self.x["sK"],
                      z3.Or(k != 1, self.content(e) == self.x["sC"]), z3.Not(self.x["ls"]))

    def clear_snapshot(self, g):
        self.set(g, "sV", ORIG)
        self.set(g, "sK", 0)
        self.set(g, "sC", 0)
        self.set(g, "ls", False)


def step(x: dict, y: dict, tag: str = "", mutant: str | None = None):
    """One operation of the series on state s: (T(x, y), {property: violated}).

    The parameters of the step are fresh constants: the operation, the loaded patch's
    declaration and version of s (any patch at all: that is how the theorem covers every
    number of patches), and the outcome of the load's pre_patch (it may fail in s's own
    allocation, or in another state's, before or after s's)."""
    r0 = _Run(x)
    op = z3.Int(f"op{tag}")                 # 0 load, 1 complete, 2 reverse, 3 disable
    nD, nV = z3.Int(f"nD{tag}"), z3.Int(f"nV{tag}")
    reached = z3.Bool(f"reached{tag}")      # pre_patch got as far as s's statement
    allocfails = z3.Bool(f"allocfails{tag}")
    loadfails = z3.Bool(f"loadfails{tag}")
    mode = x["mode"]
    r = r0
    cases = []

    # load T (§2-3): compatible with the listed E (cumulative: declares s if E does, version >=)
    g = z3.And(op == 0, z3.Or(mode == 0, mode == 1), z3.Or(nD == 0, nD == 1), nV >= 0,
               z3.Implies(z3.And(mode == 1, x["eD"] == 1), z3.And(nD == 1, nV >= x["eV"])),
               z3.Implies(z3.And(reached, allocfails), loadfails),
               z3.Implies(z3.And(nD == 1, z3.Not(reached)), loadfails))
    cases.append(g)
    r.snapshot(g)
    r.set(g, "tD", nD)
    r.set(g, "tV", z3.If(nD == 1, nV, 0))
    prev = z3.And(mode == 1, x["eD"] == 1)
    runs = z3.And(g, nD == 1, reached, z3.Not(prev) if mutant != "alloc-always" else True)  # alloc S unless prev S
    r.alloc(z3.And(runs, z3.Not(allocfails)), "t")
    failed = z3.And(g, loadfails)
    before_leak = r.x["lk"]
    r.free(z3.And(failed, nD == 1, z3.Not(prev)), r.x["tP"])           # pre_patch_error
    lost = r.release(failed, "t")                                      # T leaves the list
    r.bad("error-cleanup", failed, z3.Or(z3.Not(r.same_as_snapshot(mode == 1)), lost,
                                         z3.And(z3.Not(before_leak), r.x["lk"])))
    r.clear_snapshot(failed)
    r.set(g, "tD", z3.If(loadfails, 0, r.x["tD"]))
    r.set(g, "tV", z3.If(loadfails, 0, r.x["tV"]))
    r.set(g, "mode", z3.If(loadfails, mode, z3.If(mode == 0, 2, 3)))

    # complete a load's patching transition (§4.2): post_patch of T, then E is replaced
    for m0 in (2, 3):
        g = z3.And(op == 1, mode == m0)
        cases.append(g)
        prev = z3.And(mode == 3, x["eD"] == 1)
        r.post_patch(g, "t", prev, x["eP"])
        if m0 == 3:
            r.release(g, "e")
        for a, b in (("D", "D"), ("V", "V"), ("P", "P")):
            r.set(g, "e" + a, r.x["t" + b])
        for v in ("tD", "tV", "tP"):
            r.set(g, v, 0)
        r.clear_snapshot(g)
        r.set(g, "mode", 1)
    # complete a reversed load (§6.2): post_unpatch of T; T leaves; revert-restores judged
    for m0 in (4, 5):
        g = z3.And(op == 1, mode == m0)
        cases.append(g)
        prev = z3.And(mode == 5, x["eD"] == 1)
        r.post_unpatch(g, "t", prev)
        r.release(g, "t")
        r.bad("revert-restores", g, z3.Not(r.same_as_snapshot(mode == 5)))
        for v in ("tD", "tV", "tP"):
            r.set(g, v, 0)
        r.clear_snapshot(g)
        r.set(g, "mode", 0 if m0 == 4 else 1)
    # disable E (§6.3): pre_unpatch, nothing is before E
    g = z3.And(op == 3, mode == 1)
    cases.append(g)
    r.pre_unpatch(g, "e", z3.BoolVal(False))
    r.set(g, "mode", 6)
    # complete a disable: post_unpatch; E leaves; disable-restores judged
    g = z3.And(op == 1, mode == 6)
    cases.append(g)
    r.post_unpatch(g, "e", z3.BoolVal(False))
    r.release(g, "e")
    r.bad("disable-restores", g, r.x["val"] != ORIG)
    for v in ("eD", "eV"):
        r.set(g, v, 0)
    r.set(g, "mode", 0)
    # complete a reversed disable: post_patch runs again
    g = z3.And(op == 1, mode == 7)
    cases.append(g)
    r.post_patch(g, "e", z3.BoolVal(False), x["eP"])
    r.set(g, "mode", 1)
    # reversals: no callbacks (§6.2)
    for a, b in ((2, 4), (4, 2), (3, 5), (5, 3), (6, 7), (7, 6)):
        g = z3.And(op == 2, mode == a)
        cases.append(g)
        r.set(g, "mode", b)
    # at a quiescent point: no-leak; E uses s
    quiet = z3.Or(r.x["mode"] == 0, r.x["mode"] == 1)
    r.bad("no-leak", z3.BoolVal(True), z3.And(quiet, r.x["lk"]))
    on = z3.And(r.x["mode"] == 1, r.x["eD"] == 1)
    r.bad("no-null-deref", on, r.x["eP"] == 0)
    r.bad("no-use-after-free", on, r.kind(r.x["eP"]) == 2)
    trans = z3.And(z3.Or(*cases), *[y[v] == r.x[v] for v in x])
    viol: dict[str, object] = {}
    for prop, c in r.viol:
        viol[prop] = z3.Or(viol.get(prop, z3.BoolVal(False)), c)
    return trans, viol, {"op": op, "nD": nD, "nV": nV, "reached": reached, "allocfails": allocfails,
                         "loadfails": loadfails}


def recipe_spec(patches, replace: bool = True, uses: bool = True, recipe: dict | None = None) -> str:
    """A spec (TOML) of recipe patches: `patches` is a list of {state: version} dicts, one per
    patch, in load-order names p1, p2, ...; every patch follows `recipe` (default RECIPE)
    for its states."""
    states = sorted({s for p in patches for s in p})
    out = ['name = "recipe series"', "", "[check]", "depth = 8", ""]
    for n, s in enumerate(states, 1):
        out += [f"[states.{s}]", f"id = {n}", ""]
    for n, p in enumerate(patches, 1):
        decl = ", ".join(f"{s} = {v}" for s, v in sorted(p.items()))
        out += ["[[patch]]", f'name = "p{n}"', f"replace = {'true' if replace else 'false'}",
                f"states = {{ {decl} }}"]
        if uses:
            out.append("uses = [" + ", ".join(f'"{s}"' for s in sorted(p)) + "]")
        out += ["", "[patch.objects.vmlinux]"]
        for cb, stmts in (recipe or RECIPE).items():
            body = [st.format(S=s) for s in sorted(p) for st in stmts]
            out.append(f"{cb} = [" + ", ".join(f'"{b}"' for b in body) + "]")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ the own-block rule, per state
#
# Non-cumulative patches following OWN_BLOCK for one arbitrary state s, any number of them
# on klp_patches at once. Blocks are never shared, so a patch's block is its own. Roles:
# O, the oldest listed patch declaring s (it has no previous state: it saved the original
# and made the change); T, the patch in transition (a new load, or a disabled listed
# patch: O itself, another declaring patch, or one that does not declare s); the n other
# declaring listed patches, summarised by their number and okN: "their blocks are live
# and hold the original" (when okN is false nothing is assumed about them: any content,
# possibly freed, which over-approximates).
NC_INT = ("mode", "n", "oV", "oC", "tD", "tIsO", "tC", "val", "hi", "sV")
NC_BOOL = ("oE", "oL", "tL", "okN", "lk", "ls", "tload")
# mode: 0 no transition, 1 T patching, 2 T unpatching


NC_MODES = ("no transition", "T patching", "T unpatching")
NC_VARS = {
    "mode": ("mode", "0 no transition, 1 T patching, 2 T unpatching"),
    "n": ("others", "how many other listed patches declare s"),
    "okN": ("others.ok", "the others' blocks are live and hold the original"),
    "oE": ("O.listed", "O, the oldest listed patch declaring s, exists"),
    "oV": ("O.version", "the version of s that O declares"),
    "oL": ("O.live", "O's block is allocated"),
    "oC": ("O.content", "what O's block holds: -2 zero, -1 the original, v >= 0 the variant of version v"),
    "tD": ("T.declares", "T, the patch in transition, declares s"),
    "tIsO": ("T.is.O", "T is O"),
    "tL": ("T.live", "T's own block is allocated"),
    "tC": ("T.content", "what T's own block holds (as O.content)"),
    "tload": ("T.loading", "T's transition is a load (not a disable)"),
    "val": ("value", "the value of s: -1 original, v >= 0 the variant of version v"),
    "hi": ("newest", "the newest variant s held since it was last original (-1: none)"),
    "sV": ("saved.value", "the value of s just before the load in transition"),
    "lk": ("leaked", "a block of s was leaked"),
    "ls": ("leaked.since.load", "a block of s was leaked since the load in transition"),
}
NC_VALUES = {"mode": dict(enumerate(NC_MODES)), "O.content": _CONTENT, "T.content": _CONTENT}
NC_FLAGS = frozenset({"tD", "tIsO"})


def nc_state(tag: str) -> dict:
    st = {v: z3.Int(f"{v}{tag}") for v in NC_INT}
    st.update({v: z3.Bool(f"{v}{tag}") for v in NC_BOOL})
    return st


def nc_init(x: dict):
    return z3.And(x["mode"] == 0, x["n"] == 0, z3.Not(x["oE"]), z3.Not(x["oL"]), x["oC"] == ZERO, x["oV"] == 0,
                  x["tD"] == 0, x["tIsO"] == 0, z3.Not(x["tL"]), x["tC"] == ZERO, x["okN"],
                  x["val"] == ORIG, x["hi"] == NOHI, x["sV"] == ORIG, z3.Not(x["lk"]), z3.Not(x["ls"]),
                  z3.Not(x["tload"]))


def nc_step(x: dict, y: dict, tag: str = "", mutant: str | None = None):
    """One operation on state s under OWN_BLOCK: (T(x, y), {property: violated}, params).

    klp_get_prev_state during a disable's pre_unpatch sees the older installed patches (the
    kernel: klp_init_transition sets the transition patch before pre_unpatch runs,
    semantics.md §6.3, §12; kernel.py's op_disable does the same). `mutant`
    (tests only): "free-unless-prev" frees the own block in post_unpatch only without a
    previous state, as the shared-block recipe does."""
    P = {k: z3.Int(f"{k}{tag}") for k in ("op", "who", "nV", "anyC", "anyV")}
    P.update({k: z3.Bool(f"{k}{tag}") for k in ("nD", "reached", "allocfails", "loadfails", "anyL")})
    r = _Run(x)
    op, mode = P["op"], x["mode"]
    cases = []
    oth_live = z3.Or(x["okN"], P["anyL"])                     # an 'other' block: live / content
    oth_cont = z3.If(x["okN"], ORIG, P["anyC"])

    def own(g, name, value):
        r.set(g, name, value)

    # load T (newest; its prev exists iff O exists)
    g = z3.And(op == 0, mode == 0, P["nV"] >= 0, z3.Implies(z3.And(P["reached"], P["allocfails"]), P["loadfails"]),
               z3.Implies(z3.And(P["nD"], z3.Not(P["reached"])), P["loadfails"]))
    cases.append(g)
    r.set(g, "sV", x["val"])
    r.set(g, "ls", False)
    r.set(g, "tload", True)
    becomes_o = z3.And(g, P["nD"], z3.Not(x["oE"]))
    newer = z3.And(g, P["nD"], x["oE"])
    allocated = z3.And(P["reached"], z3.Not(P["allocfails"]))
    r.set(becomes_o, "oE", True)
    r.set(becomes_o, "oV", P["nV"])
    r.set(becomes_o, "oL", allocated)
    r.set(becomes_o, "oC", ZERO)
    r.set(g, "tD", z3.If(P["nD"], 1, 0))
    r.set(g, "tIsO", z3.If(becomes_o, 1, 0))
    r.set(newer, "tL", allocated)
    r.set(newer, "tC", ZERO)
    failed = z3.And(g, P["loadfails"])                        # pre_patch_error: free own; T leaves
    r.set(z3.And(failed, becomes_o), "oL", False)
    r.set(z3.And(failed, becomes_o), "oE", False)
    r.set(z3.And(failed, newer), "tL", False)
    r.set(failed, "tD", 0)
    r.set(failed, "tIsO", 0)
    r.set(failed, "tload", False)
    r.set(failed, "sV", ORIG)                                 # kernel.clear_snapshot
    r.set(g, "mode", z3.If(P["loadfails"], 0, 1))

    def post_patch(g):
        """OWN_BLOCK post_patch of T: copy from prev (newest older declaring) or save+modify."""
        g = z3.And(g, x["tD"] == 1)
        isO = x["tIsO"] == 1
        prev_live = z3.If(x["n"] > 0, oth_live, x["oL"])
        prev_cont = z3.If(x["n"] > 0, oth_cont, x["oC"])
        cp = z3.And(g, z3.Not(isO))
        # a disabled 'other' patch reversed back: its prev is older, so O or an other
        r.bad("no-null-deref", cp, False)
        r.bad("no-use-after-free", cp, z3.Or(z3.Not(prev_live), z3.Not(x["tL"])))
        r.set(z3.And(cp, prev_live, x["tL"]), "tC", prev_cont)
        fresh = z3.And(g, isO)
        r.bad("no-use-after-free", fresh, z3.Not(x["oL"]))
        r.set(z3.And(fresh, x["oL"]), "oC", x["val"])
        r.set_value(fresh, x["oV"])

    def fresh_snapshot(g, mode):
        """The transition ended (mode 0) or a disable started (mode 2): no load snapshot, no leak since."""
        r.set(g, "tload", False)
        r.set(g, "sV", ORIG)
        r.set(g, "ls", False)
        r.set(g, "mode", mode)

    def leave(g):
        """T leaves klp_patches (its block must have been freed: else leaked)."""
        isO = x["tIsO"] == 1
        lostO = z3.And(g, isO, r.x["oL"])
        lostT = z3.And(g, x["tD"] == 1, z3.Not(isO), r.x["tL"])
        lost = z3.Or(lostO, lostT)
        r.set(g, "lk", z3.Or(r.x["lk"], lost))
        r.set(g, "ls", z3.Or(r.x["ls"], lost))
        promote = z3.And(g, isO, x["n"] > 0)
        r.set(promote, "n", x["n"] - 1)
        r.set(promote, "oL", oth_live)
        r.set(promote, "oC", oth_cont)
        r.set(promote, "oV", P["anyV"])
        r.set(z3.And(g, isO, x["n"] == 0), "oE", False)
        r.set(z3.And(g, isO, x["n"] == 0), "oL", False)
        r.set(g, "tD", 0)
        r.set(g, "tIsO", 0)
        r.set(g, "tL", False)

    # complete a patching transition (a load, or a reversed disable)
    g = z3.And(op == 1, mode == 1)
    cases.append(g)
    post_patch(g)
    join = z3.And(g, x["tD"] == 1, x["tIsO"] == 0)
    r.set(join, "n", x["n"] + 1)
    r.set(join, "okN", z3.And(x["okN"], r.x["tL"], r.x["tC"] == ORIG))
    r.set(g, "tD", 0)
    r.set(g, "tIsO", 0)
    r.set(g, "tL", False)
    fresh_snapshot(g, 0)
    # complete an unpatching transition (a reversed load, or a disable): post_unpatch frees own
    g = z3.And(op == 1, mode == 2)
    cases.append(g)
    isO = x["tIsO"] == 1
    fo = z3.And(g, x["tD"] == 1, isO)
    ft = z3.And(g, x["tD"] == 1, z3.Not(isO), mutant != "free-unless-prev")
    r.bad("no-double-free", fo, z3.Not(x["oL"]))
    r.bad("no-double-free", ft, z3.Not(x["tL"]))
    r.set(fo, "oL", False)
    r.set(ft, "tL", False)
    leave(g)
    r.bad("revert-restores", z3.And(g, x["tload"]), z3.Or(r.x["val"] != x["sV"], r.x["ls"]))
    r.bad("disable-restores", z3.And(g, z3.Not(x["tload"])), z3.And(z3.Not(r.x["oE"]), r.x["val"] != ORIG))
    fresh_snapshot(g, 0)
    # disable a listed patch: O (no prev: restore), another declaring one (prev: nothing), or one not declaring s
    g = z3.And(op == 3, mode == 0)
    cases.append(g)
    dO = z3.And(g, P["who"] == 0, x["oE"])
    dX = z3.And(g, P["who"] == 1, x["n"] > 0)
    dN = z3.And(g, P["who"] == 2)
    cases[-1] = z3.Or(dO, dX, dN)
    r.set(dO, "tD", 1)
    r.set(dO, "tIsO", 1)
    r.bad("no-use-after-free", dO, z3.Not(x["oL"]))
    r.set_value(z3.And(dO, x["oL"]), x["oC"])
    r.set(dX, "n", x["n"] - 1)
    r.set(dX, "tD", 1)
    r.set(dX, "tIsO", 0)
    r.set(dX, "tL", oth_live)
    r.set(dX, "tC", oth_cont)
    r.set(dN, "tD", 0)
    fresh_snapshot(g, 2)
    # reversals
    for a, b in ((1, 2), (2, 1)):
        g = z3.And(op == 2, mode == a)
        cases.append(g)
        r.set(g, "mode", b)
    quiet = r.x["mode"] == 0
    r.bad("no-leak", z3.BoolVal(True), z3.And(quiet, r.x["lk"]))
    r.bad("no-use-after-free", z3.And(quiet, r.x["oE"]), z3.Not(r.x["oL"]))
    r.bad("no-use-after-free", z3.And(quiet, r.x["n"] > 0), z3.Not(r.x["okN"]))
    trans = z3.And(z3.Or(*cases), *[y[v] == r.x[v] for v in x], x["n"] >= 0)
    viol: dict[str, object] = {}
    for prop, c in r.viol:
        viol[prop] = z3.Or(viol.get(prop, z3.BoolVal(False)), c)
    return trans, viol, P


# ------------------------------------------------------------------ (f) the shared-state refcount
#
# SUSE's shared-state pattern (specs/samples/suse-shared-state.toml): every livepatch module of
# a series keeps one reference on a shadow variable SV: its init runs `get SV` before
# klp_enable_patch, its init_error `put SV` when that failed, its exit `put SV` at rmmod. The
# variable is seen through three numbers, whatever the patches are (cumulative or not, any
# callbacks that do not touch SV, target modules): n, the livepatch modules loaded (kernel.py:
# patches whose phase is not unloaded); count, the count kept in SV; ex, SV exists.
# kernel.py's statements (Mainline.shadow_statement), restated:
#   get: SV created when missing (count 0), then count + 1 (kernel.py saturates at patches + 1,
#        which a count of loaded modules never reaches);
#   put: a put on a missing SV is shadow-use-after-free; else count - 1 (not below 0), and SV
#        is freed at 0.
# The operations: a load that succeeds (init: get; n + 1), a load that fails (init's get, then
# init_error's put: klp_enable_patch failed in pre_patch or was refused), rmmod of a loaded
# module (exit: put; n - 1), and every other operation (complete, reverse, disable, force,
# target modules), which leaves the three alone. The properties, after each operation:
#   shadow-leak: SV exists and no module that lists it is loaded (every module lists it);
#   shadow-use-after-free: the put above, or a module is loaded (its patch may be enabled: its
#   code uses SV) while SV does not exist (an over-approximation of kernel.py's "an enabled
#   patch that uses SV at a quiescent point").
SH_INT = ("n", "count")
SH_BOOL = ("ex",)
SH_OPS = ("load", "load-failed", "rmmod", "other")
SH_VARS = {"n": ("loaded", "livepatch modules of the series loaded"),
           "count": ("count", "the count kept in the shared shadow variable"),
           "ex": ("exists", "the shared shadow variable exists")}
SH_MUTANTS = ("no-exit-put", "no-init-error-put", "no-init-get", "exit-frees")


def sh_state(tag: str) -> dict:
    st = {v: z3.Int(f"{v}{tag}") for v in SH_INT}
    st.update({v: z3.Bool(f"{v}{tag}") for v in SH_BOOL})
    return st


def sh_init(x: dict):
    return z3.And(x["n"] == 0, x["count"] == 0, z3.Not(x["ex"]))


def _sh_get(ex, count):
    return z3.BoolVal(True), z3.If(ex, count, 0) + 1


def _sh_put(ex, count):
    """(ex', count', use after free)"""
    n = z3.If(count == 0, 0, count - 1)
    return z3.And(ex, n != 0), z3.If(ex, n, count), z3.Not(ex)


def _sh_free(ex, count):
    return z3.BoolVal(False), count, z3.BoolVal(False)


def sh_step(x: dict, y: dict, tag: str = "", mutant: str | None = None):
    """One operation of the series: (T(x, y), {property: violated}, params). `mutant`: one of
    SH_MUTANTS, a one-line change of the pattern (tests/test_shadows.py breaks the spec alike)."""
    op = z3.Int(f"op{tag}")
    ex, count, n = x["ex"], x["count"], x["n"]
    exit_put = _sh_free if mutant == "exit-frees" else _sh_put
    # load: init (get), klp_enable_patch succeeds
    if mutant == "no-init-get":
        l_ex, l_count = ex, count
    else:
        l_ex, l_count = _sh_get(ex, count)
    # load-failed: init's get, then init_error's put
    if mutant == "no-init-error-put":
        f_ex, f_count, f_uaf = l_ex, l_count, z3.BoolVal(False)
    else:
        f_ex, f_count, f_uaf = _sh_put(l_ex, l_count)
    # rmmod: exit's put
    if mutant == "no-exit-put":
        r_ex, r_count, r_uaf = ex, count, z3.BoolVal(False)
    else:
        r_ex, r_count, r_uaf = exit_put(ex, count)
    cases = [
        (0, z3.BoolVal(True), n + 1, l_ex, l_count, z3.BoolVal(False)),
        (1, z3.BoolVal(True), n, f_ex, f_count, f_uaf),
        (2, n > 0, n - 1, r_ex, r_count, r_uaf),
        (3, z3.BoolVal(True), n, ex, count, z3.BoolVal(False)),
    ]
    trans = z3.Or(*[z3.And(op == k, guard, y["n"] == n2, y["ex"] == e2, y["count"] == c2)
                    for k, guard, n2, e2, c2, _ in cases])
    put_uaf = z3.Or(*[z3.And(op == k, u) for k, *_, u in cases])
    viol = {"shadow-leak": z3.And(y["ex"], y["n"] == 0),
            "shadow-use-after-free": z3.Or(put_uaf, z3.And(y["n"] > 0, z3.Not(y["ex"])))}
    return trans, viol, {"op": op}


def sh_spec(patches, mutant: str | None = None) -> str:
    """A series that follows the pattern, for the concrete engines: patches = [(replace,
    fallible)], each with the init/init_error/exit of the pattern and `uses` of the variable;
    a fallible patch's pre_patch may fail. `mutant` as sh_step (the first patch only)."""
    lines = ["[shadows.shared]", "id = 0x5e5e"]
    for k, (replace, fallible) in enumerate(patches):
        init, init_error, exit_ = ["get shared"], ["put shared"], ["put shared"]
        if k == 0 and mutant == "no-init-get":
            init = []
        if k == 0 and mutant == "no-init-error-put":
            init_error = []
        if k == 0 and mutant == "no-exit-put":
            exit_ = []
        if k == 0 and mutant == "exit-frees":
            exit_ = ["shadow-free-all shared"]
        lines += ["", "[[patch]]", f'name = "lp{k}"', f"replace = {'true' if replace else 'false'}",
                  'shadows = { shared = "shared_v1" }', 'uses = ["shared"]',
                  f"init = {init!r}".replace("'", '"'), f"init_error = {init_error!r}".replace("'", '"'),
                  f"exit = {exit_!r}".replace("'", '"')]
        if fallible:
            lines += ["[patch.objects.vmlinux]", 'pre_patch = ["maybe-fail -ENOMEM"]']
    return "\n".join(lines) + "\n"


def horn_invariant(x: dict, y: dict, trans, viol: dict, params: dict, init, int_vars, timeout_ms: int,
                   legend: tuple[dict, dict, frozenset] | None = None):
    """Ask Spacer for an inductive invariant Inv over x: init => Inv, Inv & T => Inv',
    Inv & T => no violation. Returns (result, the invariant as text or None): sat = proved.
    `legend`: (names, values, flags) for the text; default: (c)'s or (e)'s by their variables."""
    sorts = [z3.IntSort() if v in int_vars else z3.BoolSort() for v in x]
    inv = z3.Function("Inv", *sorts, z3.BoolSort())
    xs, ys, ps = list(x.values()), list(y.values()), list(params.values())
    s = z3.SolverFor("HORN")
    s.set("timeout", timeout_ms)
    s.add(z3.ForAll(xs, z3.Implies(init, inv(*xs))))
    s.add(z3.ForAll(xs + ys + ps, z3.Implies(z3.And(inv(*xs), trans), inv(*ys))))
    s.add(z3.ForAll(xs + ys + ps, z3.Implies(z3.And(inv(*xs), trans, z3.Or(*viol.values())), False)))
    r = s.check()
    if r != z3.sat:
        return r, None
    legend, values, flags = legend or ((NC_VARS, NC_VALUES, NC_FLAGS) if "okN" in x else (VARS, VALUES, FLAGS))
    return r, invariant_text(z3.substitute_vars(s.model()[inv].else_value(), *x.values()), legend, values, flags)


def invariant_text(formula, legend: dict, values: dict, flags: frozenset) -> str:
    """The invariant in the variables' names, one conjunct a line, then what each name means."""
    import re

    from klpmodel.theory import invariant_lines

    names = {v: name for v, (name, _) in legend.items()}
    lines = invariant_lines(formula, names, values, frozenset(flags))
    said = re.compile("|".join(rf"(?<![\w.]){re.escape(n)}(?![\w.])" for n in names.values()))
    found = {m.group(0) for line in lines for m in said.finditer(line)}
    used = [v for v in legend if names[v] in found]
    width = max((len(names[v]) for v in used), default=0)
    return "\n".join([f"- {line}" for line in lines] + ["where:"]
                     + [f"  {names[v]:<{width}}  {legend[v][1]}" for v in used])


def conjuncts(text: str) -> int:
    """How many conjuncts invariant_text lists."""
    return sum(1 for line in text.splitlines() if line.startswith("- "))
