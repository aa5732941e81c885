#!/usr/bin/env python3
"""Time `klpmodel verify` as a user runs it: the whole process (Python start-up included),
several runs, the median. On the shipped specs and on generated cumulative series of
growing size.

    python bench/bench.py                      # shipped specs + the default growing series
    python bench/bench.py --grid --patches 2-4 --states 1-2 --modules 0-1 --depths 6,8
    python bench/bench.py --runs 5 --timeout 120 --only-generated
    python bench/bench.py --cumulative 4-16         # the cumulative family: verify, z3, prove, per state
    python bench/bench.py --startup --runs 20       # start-up: verify of the selftest series

Prints a Markdown table (the form docs/performance.md quotes). Needs `klpmodel` importable
by the current Python (pip install . or PYTHONPATH=.).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# patches, states, modules, depth: a series of growing size
DEFAULT_SERIES = [(2, 1, 0, 6), (3, 1, 0, 8), (3, 2, 1, 8), (4, 2, 1, 8), (4, 2, 2, 10),
                  (5, 3, 2, 10), (6, 3, 2, 12)]


def recipe(names: list[str], mods: list[str], forget_take: str | None = None) -> list[str]:
    """A release's vmlinux callbacks by the seed's recipe for each state (allocate unless a
    previous release provides the data, take it over, modify only when nothing was taken
    over, restore and free only on a real disable; `forget_take`: that state's take-over is
    missing), then an object per target module whose callbacks log."""
    pre, post, pre_un, post_un = [], [], [], []
    for s in names:
        pre += [f"alloc {s} unless prev {s}"]
        post += ([] if s == forget_take else [f"take {s} if prev {s}"]) + \
            [f"save {s} unless prev {s}", f"modify {s} unless prev {s}"]
        pre_un += [f"restore {s} unless prev {s}"]
        post_un += [f"free {s} unless prev {s}"]
    out = [f"{key} = {json.dumps(stmts)}" for key, stmts in
           (("pre_patch", pre), ("pre_patch_error", post_un), ("post_patch", post),
            ("pre_unpatch", pre_un), ("post_unpatch", post_un))]
    out.append("")
    for m in mods:
        out += [f"[patch.objects.{m}]", "pre_patch = ['log \"pre_patch\"']",
                "post_unpatch = ['log \"post_unpatch\"']", ""]
    return out


def generated(patches: int, states: int, modules: int) -> str:
    """A correct cumulative series: every patch replaces the others, declares every state
    (versions 1,1,2,2,3,...: equal neighbours allow the selftests' downgrade-by-reload),
    takes over the previous patch's data like test_klp_state2, frees what it allocated when
    a later allocation fails, and patches every module."""
    out = [f'name = "generated {patches} patches, {states} states, {modules} modules"', ""]
    names = [f"s{k}" for k in range(1, states + 1)]
    mods = [f"m{k}" for k in range(1, modules + 1)]
    for k, s in enumerate(names, 1):
        out += [f"[states.{s}]", f"id = {k}", ""]
    for k, m in enumerate(mods):
        out += [f"[modules.{m}]", f"loaded = {'true' if k % 2 == 0 else 'false'}", ""]
    for i in range(1, patches + 1):
        version = (i + 1) // 2
        decl = ", ".join(f"{s} = {version}" for s in names)
        out += ["[[patch]]", f'name = "lp{i}"', "replace = true", f"states = {{ {decl} }}", "",
                "[patch.objects.vmlinux]"]
        out += recipe(names, mods)
    return "\n".join(out)


def cumulative(releases: int, states: int = 2, modules: int = 2, bug: int | None = None) -> str:
    """A vendor's series of cumulative releases (issue 13): one replace patch per release,
    every release declares every state with the seed's recipe (allocate unless a previous
    release provides the data, take it over in post_patch, modify only when nothing was
    taken over, restore and free only on a real disable); state s_k's version goes up every
    4*k releases, so some downgrades are refused and others allowed; every release patches
    vmlinux and each target module, whose callbacks log.

    Depth 12: any two releases i, j are reached in any order and every way the kernel lets
    one follow the other (upgrade, downgrade or skip by atomic replace: 4 operations; by
    disable, complete, rmmod and load: 7), with a target module loading or unloading on
    the way (2 more); the folded search is exhausted before that (diameter 8 for 16
    releases), so the verdict holds for sequences of any length.

    `bug`: release number `bug` forgets to take over s1's data from the release before it
    (a one-line mistake: its post_patch lacks `take s1 if prev s1`)."""
    out = [f'name = "cumulative, {releases} releases, {states} states, {modules} modules"', "",
           "[check]", "depth = 12", ""]
    names = [f"s{k}" for k in range(1, states + 1)]
    mods = [f"m{k}" for k in range(1, modules + 1)]
    for k, s in enumerate(names, 1):
        out += [f"[states.{s}]", f"id = {k}", ""]
    for k, m in enumerate(mods):
        out += [f"[modules.{m}]", f"loaded = {'true' if k % 2 == 0 else 'false'}", ""]
    for i in range(1, releases + 1):
        decl = ", ".join(f"{s} = {1 + (i - 1) // (4 * k)}" for k, s in enumerate(names, 1))
        out += ["[[patch]]", f'name = "r{i:02d}"', "replace = true", f"states = {{ {decl} }}", "",
                "[patch.objects.vmlinux]"]
        out += recipe(names, mods, forget_take="s1" if i == bug else None)
    return "\n".join(out)


def stress(patches: int) -> str:
    """The scale family: P mutually compatible non-cumulative patches (any subset can be
    installed, in any order), each declaring one of two states; checked to exhaustion."""
    out = ['name = "stress"', "", "[check]", "depth = 1000", "", "[states.a]", "id = 1", "", "[states.b]", "id = 2", ""]
    for i in range(patches):
        s = "ab"[i % 2]
        out += ["[[patch]]", f'name = "lp{i}"', f"states = {{ {s} = 1 }}", "", "[patch.objects.vmlinux]",
                f'pre_patch = ["alloc {s}"]', f'post_unpatch = ["free {s}"]', ""]
    return "\n".join(out)


def time_verify(spec: Path, depth: int | None, runs: int, timeout: float, engine: str = "auto") -> tuple[float, str, int]:
    cmd = [sys.executable, "-m", "klpmodel", "verify", str(spec), "--format", "json", "--timeout", str(timeout),
           "--engine", engine]
    if depth is not None:
        cmd += ["--depth", str(depth)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times, verdict, rss = [], "?", 0
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        try:
            res = json.loads(p.stdout)
            verdict = res["verdict"]
            if verdict == "unknown":
                verdict += f" (depths 1..{res['unknown']['depth_done']} done)"
            elif res.get("complete"):
                verdict += " (complete)"
            verdict += f", {res['engine']}" + (f" {res['states']} states" if res.get("states") is not None else "")
        except (json.JSONDecodeError, KeyError):
            verdict = f"error (exit {p.returncode})"
        try:
            rss = max(rss, int(p.stderr.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            pass
        if verdict.startswith("unknown"):
            break
    return statistics.median(times), verdict, rss // 1024


def time_cmd(cmd: list[str], runs: int) -> tuple[float, dict | None, int, int]:
    """Median wall seconds of a klpmodel command with --format json, its last JSON
    report, the peak RSS (MiB) and its exit code."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times, doc, rss, rc = [], None, 0, 0
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "klpmodel", *cmd],
                           capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        rc = p.returncode
        try:
            doc = json.loads(p.stdout)
        except json.JSONDecodeError:
            doc = None
        try:
            rss = max(rss, int(p.stderr.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            pass
    return statistics.median(times), doc, rss // 1024, rc


def per_state(spec: Path, depth: int, which: str) -> dict:
    """bench/perstate.py in its own process: states and microseconds per state."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "perstate.py"), str(spec), str(depth), which],
                       capture_output=True, text=True, env=env)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {"states": None, "us_per_state": None}


def cumulative_table(sizes: list[int], runs: int, timeout: float, z3_depth: int, ps_depth: int,
                     states: int, modules: int, bug: int | None = None) -> None:
    """The cumulative family side by side: verify (default engine), verify --engine z3 at
    a fixed depth, prove (default method), and the per-state cost of klpmodel's explicit
    search without reductions against the plain-Python reference BFS (bench/perstate.py)."""
    print(f"cumulative family: {states} states, vmlinux + {modules} target modules"
          + (f", release {bug} forgets to take over s1" if bug else "") + f"; runs per cell: {runs} "
          f"(median of whole-process wall time); python {sys.version.split()[0]}; {os.cpu_count()} cpus",
          flush=True)
    print(f"| releases | verify s | states (folded) | verdict | max RSS MiB | z3 --depth {z3_depth} s | prove s "
          f"| prove | per state at depth {ps_depth}: klpmodel us / reference us (states) |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            spec = Path(tmp) / f"cumulative-{n}.toml"
            spec.write_text(cumulative(n, states, modules, bug))
            t, doc, rss, _ = time_cmd(["verify", str(spec), "--format", "json", "--timeout", str(timeout)], runs)
            verdict = "error" if doc is None else doc["verdict"] + (" (complete)" if doc.get("complete") else "")
            nstates = "?" if doc is None else doc.get("states")
            tz, dz, _, _ = time_cmd(["verify", str(spec), "--format", "json", "--engine", "z3", "--depth",
                                     str(z3_depth), "--timeout", str(timeout)], 1)
            z3 = f"{tz:.2f}" if dz is not None and dz["verdict"] != "unknown" else f"unknown after {tz:.0f}"
            tp, dp, rssp, _ = time_cmd(["prove", str(spec), "--format", "json", "--timeout", str(timeout)], runs)
            proved = "error" if dp is None else dp["verdict"]
            a, b = per_state(spec, ps_depth, "klpmodel"), per_state(spec, ps_depth, "reference")
            ratio = (f"{a['us_per_state']} / {b['us_per_state']} ({a['states']}"
                     + ("" if a["states"] == b["states"] else f" vs {b['states']}") + ")")
            print(f"| {n} | {t:.2f} | {nstates} | {verdict} | {max(rss, rssp)} | {z3} | {tp:.2f} | {proved} "
                  f"| {ratio} |", flush=True)


HEAVY = ("networkx", "z3", "pydantic", "rich", "tree_sitter")     # packages whose import start-up can do without


def startup(runs: int, spec: Path = ROOT / "specs" / "selftest-state.toml") -> None:
    """Start-up dominates `verify` of the selftest series (the search takes 0.01-0.02 s): the
    median wall and CPU (user+sys) time of RUNS runs of the command as a user types it, and
    which heavy modules its process imported (-X importtime)."""
    cmd = [sys.executable, "-m", "klpmodel", "verify", str(spec)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONDONTWRITEBYTECODE", None)     # an installed klpmodel has its bytecode compiled: so here,
    subprocess.run(cmd, capture_output=True, env=env)       # after this first run (not counted)
    walls, cpus = [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - t)
        cpus.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}")
    p = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env)
    top = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    heavy = [m for m in HEAVY if m in top]
    print(f"verify {spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec}: {runs} runs, "
          f"median wall {statistics.median(walls):.3f} s (min {min(walls):.3f}), "
          f"median user+sys {statistics.median(cpus):.3f} s; python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.2f}; imports {', '.join(heavy) or 'none'} of {', '.join(HEAVY)}")


def parse_range(text: str) -> list[int]:
    if "," in text:
        return [int(x) for x in text.split(",")]
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per row (median reported)")
    ap.add_argument("--timeout", type=float, default=120, help="--timeout given to verify (s)")
    ap.add_argument("--grid", action="store_true", help="the full grid of --patches x --states x --modules x --depths")
    ap.add_argument("--patches", default="2-6")
    ap.add_argument("--states", default="1-3")
    ap.add_argument("--modules", default="0-2")
    ap.add_argument("--depths", default="6,8,10,12")
    ap.add_argument("--only-generated", action="store_true")
    ap.add_argument("--only-shipped", action="store_true")
    ap.add_argument("--engine", default="auto", choices=["auto", "explicit", "z3"])
    ap.add_argument("--stress", default=None, help="the scale family for these P (e.g. 4-9), checked to exhaustion")
    ap.add_argument("--cumulative", default=None,
                    help="the cumulative family for these release counts (e.g. 16, 4-16, 4,8,16): verify, "
                         "z3, prove and the per-state cost against the reference, side by side")
    ap.add_argument("--cumulative-states", type=int, default=2)
    ap.add_argument("--cumulative-modules", type=int, default=2)
    ap.add_argument("--cumulative-bug", type=int, default=None, metavar="K",
                    help="release K forgets to take over s1's data (a series with violations)")
    ap.add_argument("--z3-depth", type=int, default=6, help="--depth of the z3 column of --cumulative")
    ap.add_argument("--per-state-depth", type=int, default=6, help="depth of the per-state column of --cumulative")
    ap.add_argument("--print-spec", type=int, default=None, metavar="N",
                    help="print the cumulative spec of N releases (with --cumulative-states/-modules) and exit")
    ap.add_argument("--startup", action="store_true",
                    help="only start-up: median wall and user+sys of --runs runs of verify specs/selftest-state.toml")
    a = ap.parse_args(argv)

    if a.startup:
        startup(a.runs)
        return 0
    if a.print_spec is not None:
        print(cumulative(a.print_spec, a.cumulative_states, a.cumulative_modules, a.cumulative_bug))
        return 0
    if a.cumulative:
        cumulative_table(parse_range(a.cumulative), a.runs, a.timeout, a.z3_depth, a.per_state_depth,
                         a.cumulative_states, a.cumulative_modules, a.cumulative_bug)
        return 0

    rows = []
    if a.stress:
        print("| stress | patches | median s | max RSS MiB | verdict |")
        print("|---|---|---|---|---|", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for p in parse_range(a.stress):
                spec = Path(tmp) / f"stress-{p}.toml"
                spec.write_text(stress(p))
                t, v, rss = time_verify(spec, None, a.runs, a.timeout, a.engine)
                print(f"| stress P={p} | {p} | {t:.2f} | {rss} | {v} |", flush=True)
        return 0
    print(f"runs per row: {a.runs}, median of whole-process wall time; python {sys.version.split()[0]}; "
          f"{os.cpu_count()} cpus", flush=True)
    print("| spec | patches | states | modules | depth | median s | max RSS MiB | verdict |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    if not a.only_generated:
        for spec in sorted((ROOT / "specs").glob("*.toml")):
            from klpmodel.spec import load_spec
            s = load_spec(spec)
            t, v, rss = time_verify(spec, None, a.runs, a.timeout, a.engine)
            row = (f"specs/{spec.name}", len(s.patches), len(s.states), len(s.modules), s.depth, t, rss, v)
            rows.append(row)
            print("| %s | %d | %d | %d | %d | %.2f | %d | %s |" % row, flush=True)
    if not a.only_shipped:
        if a.grid:
            series = [(p, s, m, d) for p in parse_range(a.patches) for s in parse_range(a.states)
                      for m in parse_range(a.modules) for d in parse_range(a.depths)]
        else:
            series = DEFAULT_SERIES
        with tempfile.TemporaryDirectory() as tmp:
            for p, s, m, d in series:
                spec = Path(tmp) / f"gen-p{p}-s{s}-m{m}.toml"
                spec.write_text(generated(p, s, m))
                t, v, rss = time_verify(spec, d, a.runs, a.timeout, a.engine)
                row = (f"generated p{p} s{s} m{m}", p, s, m, d, t, rss, v)
                rows.append(row)
                print("| %s | %d | %d | %d | %d | %.2f | %d | %s |" % row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
