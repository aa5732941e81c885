#!/usr/bin/env python3
"""SPIN on the stress family (bench/spin/gen.py), timed the way the issue quotes SPIN:
wall time of `spin -a` + `gcc` + `./pan`, exhaustive (no bitstate), one row per P and
reduction setting. Prints a Markdown table; `--klp` adds klpmodel's unreduced and reduced
state counts (the unreduced search is slow: P=6 takes minutes, P=7 is out of reach).

    python bench/spin/bench_spin.py --stress 4-7 --runs 3
    python bench/spin/bench_spin.py --stress 3-5 --klp

Compiler flags: gcc 12.2 -O2 miscompiles pan.c for these models (its SLP vectorizer turns
the sum of four byte comparisons `NLISTED` into 255 when it should be 1: P=4 then
"finds" 24,684 states instead of 3,984; bench/spin/slp-bug.c reproduces it without SPIN).
We compile with -O2 -fno-tree-slp-vectorize, and check small P against -O0.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from gen import generate  # noqa: E402

from bench import parse_range  # noqa: E402

CFLAGS = ["-O2", "-fno-tree-slp-vectorize"]
MODES = {"noreduce": ["-DSAFETY", "-DNOREDUCE"], "por": ["-DSAFETY"],
         "noreduce+collapse": ["-DSAFETY", "-DNOREDUCE", "-DCOLLAPSE"]}


# per P: pan's -m (DFS stack depth; SPIN allocates it up front) and -w (hash table 2^w
# slots), sized for the space: oversized they cost seconds of start-up on small P
SIZES = {2: (1_000, 14), 3: (1_000, 14), 4: (10_000, 16), 5: (100_000, 18), 6: (1_000_000, 22),
         7: (30_000_000, 26), 8: (100_000_000, 28), 9: (100_000_000, 29)}


def spin_run(P: int, mode: str, workdir: Path, memlim: int = 16000, cflags: list[str] | None = None) -> dict:
    """Generate, compile and run pan for one P; returns states, time (s), memory (MB), errors."""
    d = workdir / f"p{P}-{mode}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "stress.pml").write_text(generate(P))
    t0 = time.perf_counter()
    subprocess.run(["spin", "-a", "stress.pml"], cwd=d, check=True, capture_output=True)
    t1 = time.perf_counter()
    subprocess.run(["gcc", *(cflags or CFLAGS), *MODES[mode], f"-DMEMLIM={memlim}", "-o", "pan", "pan.c"],
                   cwd=d, check=True, capture_output=True)
    t2 = time.perf_counter()
    depth, w = SIZES[P]
    p = subprocess.run(["./pan", f"-m{depth}", f"-w{w}"], cwd=d, capture_output=True, text=True)
    t3 = time.perf_counter()
    out = p.stdout
    (d / "pan.out").write_text(out)

    def grab(pat: str, conv=float):
        m = re.search(pat, out)
        return conv(m.group(1)) if m else None
    return {"states": grab(r"(\d+) states, stored", int), "transitions": grab(r"([\d.e+]+) transitions", lambda x: int(float(x))),
            "errors": grab(r"errors: (\d+)", int), "depth": grab(r"depth reached (\d+)", int),
            "vector": grab(r"State-vector (\d+) byte", int), "memory": grab(r"([\d.]+)\s+total actual memory usage"),
            "pan_time": grab(r"elapsed time ([\d.e+]+) seconds"), "spin_a": t1 - t0, "gcc": t2 - t1, "pan": t3 - t2,
            "total": t3 - t0, "out": out, "complete": "Full statespace search" in out and "max search depth too small" not in out
            and "out of memory" not in out}


def klp_counts(P: int) -> tuple[int, int, float, float]:
    """klpmodel's unreduced and reduced state counts for stress(P) (in-process search)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from bench import stress
    from klpmodel.engine_explicit import ExplicitEngine
    from klpmodel.kernel import Model
    from klpmodel.properties import NAMES
    from klpmodel.spec import load_spec
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "stress.toml"
        f.write_text(stress(P))
        m = Model(load_spec(f))
    out = []
    for sym in (False, True):
        e = ExplicitEngine(m, symmetry=sym)
        t = time.perf_counter()
        e.run(1 << 30, list(NAMES))
        out.append((e.states, time.perf_counter() - t))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stress", default="4-7")
    ap.add_argument("--runs", type=int, default=3, help="runs per row (median of the total time)")
    ap.add_argument("--modes", default="noreduce,por", help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--klp", action="store_true", help="also klpmodel's unreduced/reduced counts (slow for P>=6)")
    ap.add_argument("--memlim", type=int, default=16000, help="pan -DMEMLIM (MB)")
    ap.add_argument("--keep", default=None, help="work directory to keep (default: a temporary one)")
    a = ap.parse_args(argv)
    if shutil.which("spin") is None:
        print("spin is not installed", file=sys.stderr)
        return 2
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {os.cpu_count()} cpus; "
          f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"# gcc {' '.join(CFLAGS)} -DMEMLIM={a.memlim}; pan -m/-w per P: {SIZES}; median of {a.runs} runs")
    head = "| P | mode | SPIN states | transitions | vector B | spin -a s | gcc s | pan s | total s | memory MB | complete |"
    if a.klp:
        head += " klp unreduced | klp reduced | klp unreduced s | klp reduced s |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="spin-stress-"))
    try:
        for P in parse_range(a.stress):
            klp = klp_counts(P) if a.klp else None
            for mode in a.modes.split(","):
                runs = [spin_run(P, mode, work, memlim=a.memlim) for _ in range(a.runs)]
                r = runs[-1]
                med = {k: statistics.median(x[k] for x in runs) for k in ("spin_a", "gcc", "pan", "total")}
                row = (f"| {P} | {mode} | {r['states']} | {r['transitions']} | {r['vector']} | {med['spin_a']:.2f} | "
                       f"{med['gcc']:.2f} | {med['pan']:.2f} | {med['total']:.2f} | {r['memory']} | "
                       f"{'yes' if r['complete'] and r['errors'] == 0 else 'NO: ' + str(r['errors']) + ' errors'} |")
                if klp:
                    row += f" {klp[0]} | {klp[1]} | {klp[2]:.2f} | {klp[3]:.2f} |"
                print(row, flush=True)
                if not r["complete"] or r["errors"]:
                    print(r["out"], file=sys.stderr)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"# uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
