"""(d) The recipe is NOT enough for non-cumulative patches.

Two non-cumulative patches p1, p2 declaring the same state, both following the recipe:
p1 allocates (no previous state); p2 finds p1's state with klp_get_prev_state and takes
over p1's block. p1 is not replaced, so it stays on klp_patches. Disabling p1 first: its
post_unpatch sees no previous state (nothing is before p1) and frees the block that p2 still
points to and uses: a use after free.

The witness is a model of the Z3 transition relation that kernel.py itself builds
(engine_z3 on the spec proofs/_klp.py recipe_spec generates), replayed by the interpreter.
The rule that avoids it (klp_get_prev_state only sees OLDER patches, so p1 cannot tell that
a newer patch took its block over; so do not share blocks): each non-cumulative patch
allocates its own block, copies the previous patch's data instead of taking its pointer,
and frees its own block when it leaves (_klp.OWN_BLOCK). Theorem (e) proves it for any
number of patches; this file also checks it on two instances through kernel.py
(exhaustion of every reachable state).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from klpmodel.theory import Outcome, Theorem, sibling

klp = sibling(__file__, "_klp")


def check() -> Outcome:
    from klpmodel.engine_z3 import Z3Engine
    from klpmodel.kernel import Model
    from klpmodel.spec import load_spec
    from klpmodel.verify import replay

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "noncumulative-recipe.toml"
        path.write_text(klp.recipe_spec([{"s": 1}, {"s": 1}], replace=False))
        model = Model(load_spec(path))
    res = Z3Engine(model).run(8, ["no-use-after-free"])
    if "no-use-after-free" not in res.found:
        return Outcome("refuted", detail="no use after free within 8 operations")
    depth, raw = res.found["no-use-after-free"]
    steps = replay(model, raw.ops, raw.choices, raw.states, "no-use-after-free")
    lines = [f"{n}. {s.op}" for n, s in enumerate(steps, 1)]
    checked = []
    for series in ([{"s": 1}, {"s": 1}], [{"s": 1}, {"s": 2}, {"s": 2}]):
        checked.append(f"{len(series)} patches, versions {[p['s'] for p in series]}: {_verify_own_block(series)}")
    return Outcome("proved", witness="\n".join(lines) + f"\n=> no-use-after-free broken at step {depth} "
                                                        "(Z3 model of kernel.py's transition relation, replayed)",
                   detail="The own-block rule (alloc own, copy instead of take, free own; _klp.OWN_BLOCK; "
                          "theorem e) on instances, by exhaustion through kernel.py:\n"
                          + "\n".join(checked))


def _verify_own_block(series) -> str:
    from klpmodel.spec import load_spec
    from klpmodel.verify import verify

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "own-block.toml"
        path.write_text(klp.recipe_spec(series, replace=False, recipe=klp.OWN_BLOCK))
        r = verify(load_spec(path), engine="explicit", depth=64)
    if r.verdict == "holds" and r.complete_at is not None:
        return f"every property holds ({r.states} reachable states, all explored)"
    return f"{r.verdict}: " + ", ".join(v.property for v in r.violations)


# Formally:
#   exists a run of kernel.py's transition system for recipe_spec([{s: 1}, {s: 1}], replace=false)
#   that breaks no-use-after-free (BMC to depth 8, the model replayed by the interpreter)
THEOREM = Theorem(
    name="noncumulative-recipe-use-after-free",
    kind="witness",
    statement="""
Two non-cumulative (replace = false) patches that share a state and both follow the recipe
reach a use after free: load and complete both, then disable the older one; its
post_unpatch frees the block the newer one took over and still uses.""",
    check=check,
)
