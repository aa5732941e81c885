"""A plain breadth-first search over the concrete interpreter: the test oracle that the Z3
engine's verdicts and shortest depths are compared with."""
from __future__ import annotations

from klpmodel import interp
from klpmodel.kernel import Model


def shortest_violations(model: Model, depth: int) -> dict[str, int]:
    start = interp.initial(model)
    seen = {interp.key(start)}
    frontier = [start]
    first: dict[str, int] = {}
    for d in range(1, depth + 1):
        nxt = []
        for state in frontier:
            for op in model.ops:
                if interp.refusal(model, state, op) is not None:
                    continue
                for out in interp.outcomes(model, state, op):
                    for prop, _ in out.violations:
                        first.setdefault(prop, d)
                    k = interp.key(out.state)
                    if k not in seen:
                        seen.add(k)
                        nxt.append(out.state)
        frontier = nxt
    return first
