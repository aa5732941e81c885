"""(e) The rule that makes non-cumulative patches safe: never share a block.

Non-cumulative patches that share a state and follow _klp.OWN_BLOCK for it:
  pre_patch:       alloc S                         (always their own block)
  pre_patch_error: free S
  post_patch:      copy S if prev S; save S unless prev S; modify S unless prev S
  pre_unpatch:     restore S unless prev S
  post_unpatch:    free S                          (always their own block)
satisfy every built-in property, for any number of patches on klp_patches at once, any
versions and any sequence of load, complete, reverse, disable, rmmod (vmlinux objects).

The abstraction (proofs/_klp.py nc_step), argued against kernel.py:
* One state at a time, as in (c): the statements for S touch only S's value, the patch's
  own pointer and block for S, and klp_get_prev_state(S); properties are per state or
  conjunctions over states; other states' failing allocations are a free choice at load.
* Blocks are never shared (nothing takes a pointer), so every block belongs to one
  listed patch and only its owner writes or frees it; `copy` only reads the previous
  patch's block.
* Roles: O, the oldest listed patch declaring S (it has no previous state: it alone saves
  and modifies); T, the patch in transition; the n other declaring listed patches are
  summarised by their number and one flag "all their blocks are live and hold the
  original" (when the flag is false nothing is assumed about them, which
  over-approximates). When O leaves, one of them becomes O with any version.
* Each load draws a fresh patch (declares S or not, any version), so any number of patches
  is covered; versions are unbounded integers.
tests/test_theory.py checks the abstraction against kernel.py: every transition the
explicit engine takes on OWN_BLOCK specs (2-3 patches, one and two states), projected on
each state, is a transition of nc_step with the same violations.

Inside a disable's pre_unpatch, klp_get_prev_state sees the older installed patches (the
transition patch is set before pre_unpatch runs, semantics.md §6.3; see docs/proofs.md for
how kernel.py got this wrong at first and was fixed).
"""
from __future__ import annotations

import z3

from klpmodel.theory import Outcome, Theorem, sibling

klp = sibling(__file__, "_klp")


def horn(mutant: str | None = None, timeout_ms: int = 300_000):
    x, y = klp.nc_state(""), klp.nc_state("'")
    trans, viol, params = klp.nc_step(x, y, mutant=mutant)
    return klp.horn_invariant(x, y, trans, viol, params, klp.nc_init(x), klp.NC_INT, timeout_ms)


def check() -> Outcome:
    r, text = horn()
    if r == z3.unsat:
        return Outcome("refuted", witness="a run of the per-state system breaks a property")
    if r != z3.sat:
        return Outcome("unknown", detail="Horn solver unknown (timeout?)")
    return Outcome("proved", detail=f"inductive invariant found by Spacer ({klp.conjuncts(text)} conjuncts):\n{text}")


# Formally:
#   For the per-state transition system nc_step of proofs/_klp.py (O, T, n others with one
#   summary flag, values, versions in Int): exists Inv. init => Inv;  Inv & T => Inv';  Inv & T => !bad
THEOREM = Theorem(
    name="noncumulative-own-block-rule-is-safe",
    kind="valid",
    statement="""
Non-cumulative (replace = false) patches that share a state are safe if none shares a
block: each allocates its own in pre_patch (and frees it when pre_patch fails), copies the
previous patch's data in post_patch instead of taking its pointer (saves and modifies
only without a previous state), restores in pre_unpatch only without a previous state, and
frees its own block in post_unpatch. Then every built-in property holds, for any number of
such patches installed at once, any versions, and any sequence of load, complete,
reverse, disable and rmmod (vmlinux objects, no force).""",
    check=check,
)
