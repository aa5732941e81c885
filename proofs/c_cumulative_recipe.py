"""(c) Cumulative patches that follow the seed's recipe satisfy every built-in property,
for any number of patches and states.

The recipe (system-state.rst, "Expected usage"; proofs/_klp.py RECIPE), per declared state S:
  pre_patch:       alloc S unless prev S          (allocate only without a previous state)
  pre_patch_error: free S unless prev S           (release what was allocated when pre_patch fails)
  post_patch:      take S if prev S; save S unless prev S; modify S unless prev S
  pre_unpatch:     restore S unless prev S
  post_unpatch:    free S unless prev S
and the patch's code uses S whenever it is enabled.

Why one state at a time is enough (the abstraction, argued against kernel.py):
* Every recipe statement for S reads and writes only S's value, the patch's own data
  pointer for S, the block it points to, and klp_get_prev_state(S). Every property is
  judged per state (version-order, disable-restores, the use/free/NULL checks) or is a
  conjunction over states (error-cleanup and revert-restores compare the abstract system,
  which is the tuple of the states' parts; no-leak is "some block of some state leaked").
  So a run breaks a property iff its projection on some state S does.
* States interact only through pre_patch failing: an allocation of another state that
  fails stops the callback before S's statement or after it. The projection makes that a
  free choice at every load (`reached`, `loadfails`), which over-approximates.
* In a series of cumulative patches at most two patches are on klp_patches: completing a
  replace drops every older patch (kernel.complete), and a load is refused while a
  transition is in progress. The roles E (enabled) and T (loading) and the eight modes
  cover every list shape; klp_get_prev_state(S) during T's transition is E iff E declares
  S, and is NULL while E is being disabled (nothing is before E).
* Any number of patches: every load draws a fresh patch (does it declare S, with which
  version), constrained only by the compatibility rule. Versions are unbounded integers.
* Target modules and `force` are outside this theorem (vmlinux objects only; the default
  operations load, complete, reverse, disable, rmmod; rmmod changes nothing here).
tests/test_theory.py checks the projection against kernel.py: every transition the
explicit engine takes on recipe specs maps to a transition of this encoding.

The proof: Z3's Horn solver (Spacer) finds an inductive invariant Inv over the per-state
summary with init => Inv, Inv & T => Inv', and Inv & T => no property violated.
"""
from __future__ import annotations

import z3

from klpmodel.theory import Outcome, Theorem, sibling

klp = sibling(__file__, "_klp")


def horn(step=None, timeout_ms: int = 300_000):
    """(result, invariant or None). `step` replaces the per-state rules (tests: mutants)."""
    x, y = klp.state(""), klp.state("'")
    trans, viol, params = (step or klp.step)(x, y)
    return klp.horn_invariant(x, y, trans, viol, params, klp.init(x), klp.INT_VARS, timeout_ms)


def check() -> Outcome:
    r, text = horn()
    if r == z3.sat:
        return Outcome("proved", detail="inductive invariant found by Spacer (over the per-state summary, "
                                        f"{klp.conjuncts(text)} conjuncts):\n" + text)
    if r == z3.unsat:
        return Outcome("refuted", witness="a run of the per-state system breaks a property (Horn query unsat)")
    return Outcome("unknown", detail="Horn solver: unknown (timeout?)")


# Formally:
#   For the per-state transition system T(x, params, x') of proofs/_klp.py (modes, roles E/T,
#   declared?, versions in Int, data pointers, two block slots, value, hi, snapshot, leak flags):
#     exists Inv. init(x) => Inv(x);  Inv(x) & T(x,p,x') => Inv(x');  Inv(x) & T(x,p,x') => !bad(x,p)
THEOREM = Theorem(
    name="cumulative-recipe-satisfies-every-property",
    kind="valid",
    statement="""
A series of cumulative (replace = true) patches, each following system-state.rst's expected
usage for every state it declares (allocate in pre_patch only without a previous state and
release it when pre_patch fails; take over in post_patch when there is a previous state,
save and modify otherwise; restore in pre_unpatch and free in post_unpatch only without a
previous state; its code uses the states while enabled), satisfies version-order,
revert-restores, disable-restores, error-cleanup, no-use-after-free, no-double-free,
no-null-deref and no-leak, for any number of patches, states and versions, and any
sequence of load, complete, reverse, disable and rmmod (vmlinux objects, no force).""",
    check=check,
)
