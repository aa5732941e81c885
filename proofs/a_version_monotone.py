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


def check() -> Outcome:
    s = z3.Solver()
    s.add(claim())
    r = s.check()
    if r == z3.unsat:
        return Outcome("proved", detail="Z3: the negation is unsatisfiable (the step lemma holds for every "
                                        "interpretation of patches, states, declarations and versions)")
    if r == z3.sat:
        return Outcome("refuted", witness=str(s.model()))
    return Outcome("unknown", detail=s.reason_unknown())


THEOREM = Theorem(
    name="version-monotone-under-atomic-replace",
    kind="valid",
    statement="""
For any number of patches and states: if a cumulative patch N passes klp_is_patch_compatible
and its replace completes, then for every state S and every patch P that was on klp_patches
and declared S, N declares S with a version >= P's. Hence along any sequence of successful
atomic replaces (each step's list is dominated by the next; domination is transitive), the
highest declared version of every state on the list never decreases.""",
    formal="""
forall decl: Patch x State -> Bool, ver: Patch x State -> Int, on: Patch -> Bool, N: Patch.
  compatible(N, on, replace=true)
  ==> forall P, S. on(P) & decl(P,S) ==> exists Q. Q = N & decl(Q,S) & ver(Q,S) >= ver(P,S)
where compatible(N, on, true) = forall P, S. on(P) & decl(P,S) ==> decl(N,S) & ver(N,S) >= ver(P,S)""",
    check=check,
)
