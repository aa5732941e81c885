"""Hashes of the Z3 transition formulas of the shipped specs, to compare two checkouts.

    PYTHONPATH=<checkout> python bench/formula_hashes.py [--dump DIR] [SPEC ...]

For each spec (default: <checkout>/specs/*.toml, where <checkout> is the klpmodel that is
imported) it builds the Z3 transition template once, as the Z3 engine does (one step from
the state variables to the next-state variables `v'`, over the operation selector `op`
and the choice constants), and prints the sha256 (first 16 hex digits) of the
`.sexpr()` of: the transition term T, the initial state (the state variables' initial
values), and each property's violation term; plus the number of state variables, of
model variables, of operations and of choices. Works on checkouts before issue 12
(engine_z3.Z3Engine builds the template) and after (ts.TransitionSystem). `--dump DIR`
also writes each term's s-expression to DIR/<spec>.<term>.smt2, for diffing or for
checking the equivalence of two checkouts' terms with Z3.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import klpmodel
from klpmodel.kernel import Model
from klpmodel.spec import load_spec


def template(model):
    """(T, initial state, {property: violation term}, state variable names, choices)."""
    try:
        from klpmodel.ts import TransitionSystem
    except ImportError:                                  # before issue 12
        from klpmodel.engine_z3 import Z3Engine
        e = Z3Engine(model)
        return e.trans, e._step_consts(0), e.viol, list(e.names), e.choice_consts
    ts = TransitionSystem(model)
    return ts.trans, ts.initial(), ts.violation, list(ts.names), ts.choices


def h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*")
    ap.add_argument("--dump", type=Path)
    a = ap.parse_args()
    root = Path(klpmodel.__file__).resolve().parent.parent
    specs = [Path(p) for p in a.specs] or sorted((root / "specs").glob("*.toml"))
    print(f"# klpmodel from {root}", file=sys.stderr)
    for path in specs:
        model = Model(load_spec(path))
        trans, init, viol, names, choices = template(model)
        init_s = "\n".join(f"{v} = {init[v].sexpr()}" for v in names)
        terms = {"T": trans.sexpr(), "init": init_s} | {p: viol[p].sexpr() for p in sorted(viol)}
        print(f"{path.stem}: vars={len(names)}/{len(model.vars)} ops={len(model.ops)} choices={len(choices)}")
        for name, s in terms.items():
            print(f"  {name:<22} {h(s)}")
            if a.dump:
                a.dump.mkdir(parents=True, exist_ok=True)
                (a.dump / f"{path.stem}.{name}.smt2").write_text(s + "\n")


if __name__ == "__main__":
    main()
