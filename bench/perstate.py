#!/usr/bin/env python3
"""Per-state cost of the explicit search against a plain-Python breadth-first search of
the same semantics (issue 13, item 2), in one process each:

    PYTHONPATH=. python bench/perstate.py SPEC DEPTH klpmodel     # ExplicitEngine, no reduction
    PYTHONPATH=. python bench/perstate.py SPEC DEPTH reference    # tests/reference, plain BFS

Both search every operation sequence up to DEPTH breadth-first, every outcome of every
fallible point, and keep the states they have seen: klpmodel's explicit engine without its
reductions (no symmetry, no rmmod folding: the memo and the tuple states stay, they are
the implementation under test), and a BFS over tests/reference, the independent reading of
the kernel functions (kernel structs as Python objects, cloned per operation, a state
identified by `Reference.freeze`). Prints one JSON line: states, seconds (search only,
after imports and spec loading), microseconds per state.

The reference is not a tuned search: it is the plain-Python reading of the same rules,
which is what the issue's "3.4x a plain-Python BFS" was measured against.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def klpmodel_bfs(spec, depth: int) -> int:
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.kernel import Model

    m = Model(spec)
    eng = ExplicitEngine(m, symmetry=False, max_states=None)
    eng.run(depth, [p.name for p in m.properties])     # (with no property it would stop at once)
    return eng.states


def reference_bfs(spec, depth: int) -> int:
    from reference.driver import Reference

    from klpmodel.kernel import Model

    ref = Reference(spec, faults=bool(spec.faults))
    ops = [(op.word, op.arg, op.params) for op in Model(spec).ops]
    start = ref.initial()
    seen = {ref.freeze(start)}
    level = [start]
    for _ in range(depth):
        nxt = []
        for k in level:
            for op in ops:
                if ref.refusal(k, op) is not None:
                    continue
                for r in ref.outcomes(k, op):
                    key = ref.freeze(r.kernel)
                    if key not in seen:
                        seen.add(key)
                        nxt.append(r.kernel)
        if not nxt:
            break
        level = nxt
    return len(seen)


def main(argv: list[str]) -> int:
    from klpmodel.spec import load_spec

    path, depth, which = argv[0], int(argv[1]), argv[2]
    spec = load_spec(path)
    t = time.process_time()
    states = (klpmodel_bfs if which == "klpmodel" else reference_bfs)(spec, depth)
    secs = time.process_time() - t
    print(json.dumps({"which": which, "states": states, "seconds": round(secs, 3),
                      "us_per_state": round(1e6 * secs / max(states, 1), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
