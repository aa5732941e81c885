"""(a) Under the compatibility rule, successful atomic replaces never lower a declared version.

kernel.py: `compatible()` (klp_is_patch_compatible, §2.2) decides whether a load may
proceed; a cumulative patch whose transition completes leaves only itself on klp_patches
(`complete` -> `leave_list`). The encoding quantifies over an uninterpreted sort of patches
and one of states, so it covers every number of both and every version numbers.
"""
from __future__ import annotations

import z3

from klpmodel.theory import Outcome, Theorem, sibling

klp = sibling(__file__, "_klp")


def claim(rule=None):
    """The negation of the step lemma, to be shown unsatisfiable. `rule` replaces the
    compatibility rule (tests use it to show the encoding has teeth)."""
    Patch, State, decl, ver = klp.sorts()
    on = z3.Function("on", Patch, z3.BoolSort())          # klp_patches before the load
    new = z3.Const("N", Patch)
    ok = (rule or klp.compatible)(Patch, State, decl, ver, on, new, True)
    after = lambda p: p == new                             # noqa: E731  replace completed: only N is listed
    P, Q, S = z3.Const("P", Patch), z3.Const("Q", Patch), z3.Const("S", State)
    dominated = z3.ForAll([P, S], z3.Implies(z3.And(on(P), decl(P, S)),
                                             z3.Exists([Q], z3.And(after(Q), decl(Q, S), ver(Q, S) >= ver(P, S)))))
    return z3.And(ok, z3.Not(dominated))


def sequence_obligations(rule=None):
    """The claim for sequences, by induction over time t (Int): klp_patches at time t is
    on(t, P), the patch loaded at t is new(t), and every step is a successful atomic
    replace. dom(t1, t): every (patch, state) declared on the list at t1 is matched at t by
    a listed patch declaring the state with a version >= . Returns the negations of the
    base case dom(t1, t1) and of the step dom(t1, t) & replace(t) => dom(t1, t + 1)."""
    Patch, State, decl, ver = klp.sorts()
    on = z3.Function("on_t", z3.IntSort(), Patch, z3.BoolSort())
    new = z3.Function("new", z3.IntSort(), Patch)
    t1, t = z3.Ints("t1 t")
    P, Q, S = z3.Const("P", Patch), z3.Const("Q", Patch), z3.Const("S", State)

    def dom(a, b):
        return z3.ForAll([P, S], z3.Implies(z3.And(on(a, P), decl(P, S)),
                                            z3.Exists([Q], z3.And(on(b, Q), decl(Q, S), ver(Q, S) >= ver(P, S)))))
    at = lambda p: on(t, p)                                # noqa: E731
    replace = z3.And((rule or klp.compatible)(Patch, State, decl, ver, at, new(t), True),
                     z3.ForAll([P], on(t + 1, P) == (new(t) == P)))
    base = z3.Not(dom(t1, t1))
    step = z3.And(t >= t1, dom(t1, t), replace, z3.Not(dom(t1, t + 1)))
    return base, step


def check() -> Outcome:
    s = z3.Solver()
    s.add(claim())
    r = s.check()
    if r == z3.sat:
        return Outcome("refuted", witness=str(s.model()))
    if r == z3.unknown:
        return Outcome("unknown", detail=s.reason_unknown())
    for name, ob in zip(("base case", "induction step"), sequence_obligations(), strict=True):
        s = z3.Solver()
        s.add(ob)
        r = s.check()
        if r == z3.sat:
            return Outcome("refuted", witness=f"{name}: {s.model()}")
        if r == z3.unknown:
            return Outcome("unknown", detail=f"{name}: {s.reason_unknown()}")
    return Outcome("proved", detail="Z3: the negations are unsatisfiable: the step lemma, and the base case and "
                                    "induction step over time for any sequence of atomic replaces (every "
                                    "interpretation of patches, states, declarations and versions)")


# Formally:
#   forall decl: Patch x State -> Bool, ver: Patch x State -> Int, on: Patch -> Bool, N: Patch.
#     compatible(N, on, replace=true)
#     ==> forall P, S. on(P) & decl(P,S) ==> exists Q. Q = N & decl(Q,S) & ver(Q,S) >= ver(P,S)
#   where compatible(N, on, true) = forall P, S. on(P) & decl(P,S) ==> decl(N,S) & ver(N,S) >= ver(P,S)
#   and for sequences (on: Int x Patch -> Bool, new: Int -> Patch), by induction over t >= t1:
#     dom(t1, t1);   dom(t1, t) & compatible(new(t), on(t, .), true) & (on(t+1, P) <=> P = new(t)) ==> dom(t1, t+1)
#   where dom(a, b) = forall P, S. on(a,P) & decl(P,S) ==> exists Q. on(b,Q) & decl(Q,S) & ver(Q,S) >= ver(P,S)
THEOREM = Theorem(
    name="version-monotone-under-atomic-replace",
    kind="valid",
    statement="""
For any number of patches and states: if a cumulative patch N passes klp_is_patch_compatible
and its replace completes, then for every state S and every patch P that was on klp_patches
and declared S, N declares S with a version >= P's. Hence along any sequence of successful
atomic replaces (proved by induction over time: the base case and the step, each in Z3), the
highest declared version of every state on the list never decreases.""",
    check=check,
)
