"""(f) SUSE's shared-state pattern: a count kept in a shadow variable, taken by each livepatch
module's init and put back by its exit (and by init_error when klp_enable_patch fails), keeps
the variable alive exactly while some module of the series is loaded.

Livepatch modules that all follow the pattern (specs/samples/suse-shared-state.toml):
  init:       get SV          (klp_shadow_get_or_alloc, count + 1), before klp_enable_patch
  init_error: put SV          (count - 1, freed at 0), when klp_enable_patch failed
  exit:       put SV          at rmmod
never break shadow-leak or shadow-use-after-free (and, with `get`, which never allocates an
existing variable, never shadow-duplicate), for any number of modules, loaded in any order
and any number of times, cumulative or not, with any callbacks that do not touch SV, and any
sequence of load, complete, reverse, disable, force, rmmod and target-module events.

The abstraction (proofs/_klp.py sh_step), argued against kernel.py: the pattern's statements
are the only ones that touch SV, and they run only in a load (init, init_error) and an rmmod
(exit); every other operation leaves SV and its count alone and does not load or remove a
livepatch module. So the number of loaded modules n, the count and "SV exists" are a closed
system whatever the patches do: a load adds a module and one reference, a failed load takes
its reference back, an rmmod removes both. The properties are read on these three numbers
(shadow-leak: SV exists, n = 0, since every module lists SV; shadow-use-after-free: a put on a
missing SV, or n > 0 without SV, which covers "an enabled patch uses SV"). n is an unbounded
integer: any number of modules. tests/test_theory.py checks the abstraction against kernel.py:
every transition the explicit engine takes on pattern specs of 2-3 patches (cumulative, not,
failing pre_patch), projected on (n, count, SV exists), is a transition of sh_step that
reports every violation kernel.py reports; and sh_step's one-line mutants are refuted, as
kernel.py's are on the same mutants (tests/test_shadows.py mutates the sample alike).

The invariant, given and checked by Z3 (Spacer times out on this system), is the count fact
`klpmodel prove` mines for one spec (docs/proofs.md): count = n, and SV exists exactly when
n > 0.
"""
from __future__ import annotations

import z3

from klpmodel.theory import Outcome, Theorem, sibling

klp = sibling(__file__, "_klp")


def invariant(x: dict):
    """The inductive invariant: the count is the number of modules loaded, and the variable
    exists exactly while one is (the count fact `klpmodel prove` mines, docs/proofs.md)."""
    return z3.And(x["n"] >= 0, x["count"] == x["n"], x["ex"] == (x["n"] > 0))


INVARIANT_TEXT = "- loaded >= 0\n- count = loaded\n- exists = (loaded > 0)"


def obligations(mutant: str | None = None) -> dict[str, z3.BoolRef]:
    """The three proof obligations of the invariant, each valid iff its negation is unsat:
    initiation, consecution, and safety (no violation from a state that satisfies it)."""
    x, y = klp.sh_state(""), klp.sh_state("'")
    trans, viol, _ = klp.sh_step(x, y, mutant=mutant)
    return {"initiation": z3.Implies(klp.sh_init(x), invariant(x)),
            "consecution": z3.Implies(z3.And(invariant(x), trans), invariant(y)),
            "safety": z3.Implies(z3.And(invariant(x), trans), z3.Not(z3.Or(*viol.values())))}


def run_to_violation(mutant: str | None = None, depth: int = 4) -> list[str] | None:
    """The shortest run of sh_step from the initial state that breaks a property (bounded
    model checking up to `depth` operations): the operations and what broke, or None."""
    xs = [klp.sh_state(f"#{k}") for k in range(depth + 1)]
    s = z3.Solver()
    s.add(klp.sh_init(xs[0]))
    ops, broke = [], []
    for k in range(depth):
        trans, viol, params = klp.sh_step(xs[k], xs[k + 1], tag=f"#{k}", mutant=mutant)
        s.add(trans)
        ops.append(params["op"])
        broke.append(viol)
        bad = z3.Or(*viol.values())
        if s.check(bad) == z3.sat:
            m = s.model()
            names = [klp.SH_OPS[m.eval(o).as_long()] for o in ops]
            what = [p for p, t in viol.items() if z3.is_true(m.eval(t))]
            return names + [f"=> {', '.join(what)}"]
    return None


def check() -> Outcome:
    failed = []
    for name, claim in obligations().items():
        s = z3.Solver()
        s.add(z3.Not(claim))
        r = s.check()
        if r == z3.unknown:
            return Outcome("unknown", detail=f"Z3 unknown on {name}")
        if r == z3.sat:
            failed.append(name)
    if failed:
        run = run_to_violation()
        if run is not None:
            return Outcome("refuted", witness="; ".join(run))
        return Outcome("unknown", detail=f"the invariant is not inductive ({', '.join(failed)}) and no short run breaks it")
    return Outcome("proved", detail="inductive invariant (initiation, consecution and safety checked by Z3):\n"
                                    + INVARIANT_TEXT + "\nwhere:\n"
                                    + "\n".join(f"  {n:<7}  {what}" for n, what in klp.SH_VARS.values()))


# Formally:
#   For the system sh_step of proofs/_klp.py (n modules loaded, the count, SV exists; n, count
#   in Int), with Inv = (n >= 0 & count = n & ex = (n > 0)):
#   init => Inv;  Inv & T => Inv';  Inv & T => !shadow-leak & !shadow-use-after-free
#   (Spacer, which (c) and (e) ask for their invariants, times out on this system; the
#   invariant is the count fact prove's miner finds, so it is given and checked)
THEOREM = Theorem(
    name="shared-state-refcount-is-safe",
    kind="valid",
    statement="""
Livepatch modules that share a shadow variable through a count kept in it -- each module's
init takes a reference (get, before klp_enable_patch), its init_error gives it back when
klp_enable_patch fails, its exit gives it back at rmmod, and the last reference frees the
variable -- never leak it and never use it after it was freed: the count equals the number
of the series' modules loaded, and the variable exists exactly while one is. For any number
of modules, cumulative or not, loaded, failing and removed in any order, and any sequence of
the other operations (SUSE's shared-state pattern).""",
    check=check,
)
