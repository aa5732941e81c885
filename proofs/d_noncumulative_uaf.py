"""(d) The recipe is NOT enough for non-cumulative patches.

Two non-cumulative patches p1, p2 declaring the same state, both following the recipe:
p1 allocates (no previous state); p2 finds p1's state with klp_get_prev_state and takes
over p1's block. p1 is not replaced, so it stays on klp_patches. Disabling p1 first: its
post_unpatch sees no previous state (nothing is before p1) and frees the block that p2 still
points to and uses: a use after free.

The witness is a model of the Z3 transition relation that kernel.py itself builds
(engine_z3 on the spec proofs/_klp.py recipe_spec generates), replayed by the interpreter.
No extra recipe rule expressible with klp_get_prev_state was found that makes
non-cumulative patches safe (it only sees older patches, so p1 cannot tell that a newer
patch took its block over); see docs/proofs.md.
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
    return Outcome("proved", witness="\n".join(lines) + f"\n=> no-use-after-free broken at step {depth} "
                                                        "(Z3 model of kernel.py's transition relation, replayed)")


THEOREM = Theorem(
    name="noncumulative-recipe-use-after-free",
    kind="witness",
    statement="""
Two non-cumulative (replace = false) patches that share a state and both follow the recipe
reach a use after free: load and complete both, then disable the older one; its
post_unpatch frees the block the newer one took over and still uses.""",
    formal="""
exists a run of kernel.py's transition system for recipe_spec([{s: 1}, {s: 1}], replace=false)
that breaks no-use-after-free (BMC to depth 8, the model replayed by the interpreter)""",
    check=check,
)
