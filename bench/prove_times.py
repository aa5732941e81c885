#!/usr/bin/env python3
"""Time `klpmodel prove` per route on every shipped spec (in-process, one run each):
k-induction alone (--method induction, --max-k 12) and exhaustion alone.

    PYTHONPATH=. python bench/prove_times.py > table.md

Prints the Markdown table docs/proofs.md quotes.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from klpmodel.prove import prove  # noqa: E402
from klpmodel.spec import load_spec  # noqa: E402


def main() -> None:
    specs = sorted((ROOT / "specs").glob("*.toml")) + sorted((ROOT / "specs" / "selftests").glob("*.toml")) \
        + sorted((ROOT.parent / "shared" / "specs").glob("*.toml"))
    print("| spec | k-induction | k (proved) | violated (depth) | s | exhaustion | s |")
    print("|---|---|---|---|---|---|---|")
    for path in specs:
        spec = load_spec(path)
        t = time.perf_counter()
        r = prove(spec, method="induction")
        ti = time.perf_counter() - t
        t = time.perf_counter()
        e = prove(spec, method="exhaustion")
        te = time.perf_counter() - t
        ks = sorted({pp.k for pp in r.proofs if pp.verdict == "proved"})
        nots = [pp.property for pp in r.proofs if pp.verdict == "not proved"]
        viol = [f"{pp.property} {pp.violation.depth}" for pp in r.proofs if pp.verdict == "violated"]
        name = path.relative_to(ROOT) if ROOT in path.parents else Path("..") / path.relative_to(ROOT.parent)
        print(f"| `{name}` | {r.verdict} | {', '.join(map(str, ks))}"
              + (f" (not proved: {', '.join(nots)})" if nots else "")
              + f" | {'; '.join(viol) or '-'} | {ti:.1f} | {e.verdict}, {e.states} states | {te:.2f} |", flush=True)


if __name__ == "__main__":
    main()
