"""(b) The non-atomic downgrade is always accepted: the gap reviewers must know about.

kernel.py: `compatible()` only looks at the patches on klp_patches; a disabled patch leaves
the list when its unpatching transition completes (`move` -> `leave_list`). So after
`disable` + `complete` of every installed patch, any patch at all passes the rule,
including an older cumulative patch with lower versions.
"""
from __future__ import annotations

import z3

from klpmodel.theory import Outcome, Theorem, sibling

klp = sibling(__file__, "_klp")


def check() -> Outcome:
    Patch, State, decl, ver = klp.sorts()
    on = z3.Function("on", Patch, z3.BoolSort())
    empty = lambda p: z3.BoolVal(False)                    # noqa: E731  klp_patches after the disable completed
    old = z3.Const("old", Patch)
    # 1. valid part: against the emptied list every patch is compatible, cumulative or not
    s = z3.Solver()
    s.add(z3.Or(z3.Not(klp.compatible(Patch, State, decl, ver, empty, old, True)),
                z3.Not(klp.compatible(Patch, State, decl, ver, empty, old, False))))
    if s.check() != z3.unsat:
        return Outcome("refuted", witness="some patch is refused by an empty klp_patches: " + str(s.model()))
    # 2. witness: the older patch is refused while the newer is installed, accepted after its disable
    new, st = z3.Const("new", Patch), z3.Const("s", State)
    P = z3.Const("P", Patch)
    s = z3.Solver()
    s.add(z3.ForAll([P], on(P) == (new == P)))
    s.add(decl(new, st), decl(old, st), ver(old, st) < ver(new, st), ver(old, st) >= 0)
    s.add(z3.Not(klp.compatible(Patch, State, decl, ver, on, old, True)))
    s.add(klp.compatible(Patch, State, decl, ver, empty, old, True))
    if s.check() != z3.sat:
        return Outcome("refuted", detail="no downgrade witness exists")
    m = s.model()
    vn, vo = m.eval(ver(new, st)).as_long(), m.eval(ver(old, st)).as_long()
    return Outcome("proved", witness=(
        f"klp_patches = [new] with new declaring s version {vn}; old (cumulative) declares s version {vo} < {vn}.\n"
        f"load old while new is installed: refused (-EINVAL, not compatible).\n"
        f"disable new; complete (new leaves klp_patches); load old: accepted, s's declared version on the list "
        f"goes {vn} -> {vo}."),
        detail="Z3: also, against an empty klp_patches every patch (cumulative or not) is compatible (negation unsat).")


# Formally:
#   (valid) forall decl, ver, O. compatible(O, on = {}, replace) for replace in {true, false}
#   (witness) exists decl, ver, N, O, s. decl(N,s) & decl(O,s) & ver(O,s) < ver(N,s)
#     & not compatible(O, on = {N}, true) & compatible(O, on = {}, true)
THEOREM = Theorem(
    name="non-atomic-downgrade-accepted",
    kind="witness",
    statement="""
The compatibility rule does not stop a downgrade done in two steps: disable the newer
cumulative patch (it leaves klp_patches when the transition completes), then load an older
one. The rule is checked against an empty list, so it accepts ANY patch; the version of a
state on the list goes down although a direct replace with the older patch is refused.""",
    check=check,
)
