#!/usr/bin/env python3
"""A smoke test of every klpmodel command, as a user runs them after `pip install`: in an
empty directory, with no checkout in sight, the data coming from `klpmodel examples --copy`.

    python tests/smoke.py VENV/bin/klpmodel [WORKDIR]

It checks each command's exit code and a line of its output (a dependency that swallows
the exit code, or crashes on a command, fails here), then runs every `klpmodel` command
shown in the README. Only the standard library: it runs beside any installed klpmodel
(.ci/run: the floor versions of the dependencies on the oldest Python, and the newest
Python; tests/test_wheel.py: the wheel built from this checkout). Prints one line per check
and 'N passed, N failed'; exit 0 when all passed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands(text: str) -> list[str]:
    """The klpmodel commands the README shows: lines of ```sh blocks and `$ ` lines of output
    blocks that start with klpmodel (or a venv's bin/klpmodel)."""
    out = []
    for lang, block in re.findall(r"```([a-z]*)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if lang != "sh" and not line.startswith("$ "):
                continue                                  # output, not a command
            line = re.sub(r"^(\S*/)?bin/klpmodel ", "klpmodel ", line.removeprefix("$ "))
            line = line.split(" #")[0].strip()
            if line.startswith("klpmodel ") and "..." not in line:
                out.append(line)
    return list(dict.fromkeys(out))


DEMO_C = """\
#include <linux/livepatch.h>
#define DEMO_STATE 1
static struct klp_patch patch;
static int pre_patch_cb(struct klp_object *obj)
{
\tstruct klp_state *state = klp_get_state(&patch, DEMO_STATE);

\tstate->data = kzalloc(sizeof(int), GFP_KERNEL);
\tif (!state->data)
\t\treturn -ENOMEM;
\treturn 0;
}
static void post_unpatch_cb(struct klp_object *obj)
{
\tstruct klp_state *state = klp_get_state(&patch, DEMO_STATE);

\tkfree(state->data);
}
static struct klp_object objs[] = {
\t{ .name = NULL, .callbacks = { .pre_patch = pre_patch_cb, .post_unpatch = post_unpatch_cb, }, }, { }
};
static struct klp_state states[] = { { .id = DEMO_STATE, .version = 1 }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs, .states = states, };
static int lp_init(void)
{
\treturn klp_enable_patch(&patch);
}
module_init(lp_init);
"""


class Smoke:
    def __init__(self, exe: str, work: Path):
        self.exe, self.work = exe, work
        self.passed = self.failed = 0
        bin_dir = str(Path(exe).parent)
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FORCE_COLOR")}
        self.env.update(PATH=bin_dir + os.pathsep + self.env.get("PATH", ""), NO_COLOR="1", COLUMNS="100")

    def run(self, args: list[str] | str, code: int | tuple[int, ...], *expect: str, stderr: str = "",
            timeout: float = 600, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess | None:
        shell = isinstance(args, str)
        cmd = args if shell else [self.exe, *args]
        name = (args if shell else "klpmodel " + " ".join(args)) + "".join(f" ({k}={v})" for k, v in (env or {}).items() if v)
        try:
            p = subprocess.run(cmd, shell=shell, cwd=cwd or self.work, env={**self.env, **(env or {})}, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return self._report(name, f"no answer within {timeout:.0f} s")
        codes = code if isinstance(code, tuple) else (code,)
        why = None
        if p.returncode not in codes:
            why = f"exit {p.returncode}, expected {' or '.join(map(str, codes))}"
        elif "Traceback" in p.stderr or "Traceback" in p.stdout:
            why = "printed a traceback"
        else:
            missing = [e for e in expect if e not in p.stdout] + ([stderr] if stderr and stderr not in p.stderr else [])
            if missing:
                why = f"output lacks {missing[0]!r}"
        self._report(name, why, p)
        return p if why is None else None

    def check(self, name: str, ok: bool, why: str) -> None:
        self._report(name, None if ok else why)

    def _report(self, name: str, why: str | None, p: subprocess.CompletedProcess | None = None):
        if why is None:
            self.passed += 1
            print(f"ok    {name}", flush=True)
            return None
        self.failed += 1
        print(f"FAIL  {name}: {why}", flush=True)
        if p is not None:
            for stream, text in (("stdout", p.stdout), ("stderr", p.stderr)):
                tail = text.strip().splitlines()[-15:]
                if tail:
                    print(f"      {stream}:\n" + "\n".join(f"        {x}" for x in tail), flush=True)
        return None


def smoke(s: Smoke) -> None:
    s.run(["--version"], 0, "klpmodel ")
    s.run(["--help"], 0, "verify", "prove-theory", "examples")
    s.run(["examples"], 0, "specs/selftest-state.toml", "proofs/a_version_monotone.py")
    s.run(["examples", "--copy", "."], 0, "copied")
    s.run(["examples", "--copy", "."], 0, "copied 0 files")

    # verify: holds 0, violation 1 (a CLI library that loses the exit code reads "holds" here), usage 2
    s.run(["verify", "specs/selftest-state.toml"], 0, "verdict: holds")
    s.run(["verify", "specs/no-leak-bad.toml"], 1, "VIOLATED no-leak")
    s.run(["verify", "specs/no-leak-bad.toml"], 1, "VIOLATED", "\x1b[", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    p = s.run(["verify", "specs/no-leak-bad.toml", "--format", "json"], 1)
    if p is not None:
        try:
            doc = json.loads(p.stdout)
            s.check("verify --format json parses", doc.get("verdict") == "violation", f"verdict {doc.get('verdict')!r}")
        except ValueError as e:
            s.check("verify --format json parses", False, str(e))
    s.run(["verify", "specs/selftest-state.toml", "--format", "xml"], 2, stderr="klpmodel: error:")
    s.run(["verify", "specs/no-such.toml"], 2, stderr="klpmodel: error:")
    s.run(["check", "specs/selftest-state.toml"], 0, ": ok (")
    s.run(["simulate", "specs/selftest-state.toml", "--run", "load test_klp_state; complete"], 0, "test_klp_state")

    # the counterexample loop
    s.run(["verify", "specs/no-use-after-free-bad.toml", "--out", "traces"], 1, "trace file: traces/")
    trace = "traces/no-use-after-free.trace.json"
    s.run(["explain", trace], 0, "no-use-after-free")
    s.run(["replay", trace], 1, "result: still violated")
    s.run(["kselftest", trace, "-o", "test-uaf.sh"], 0)
    s.check("kselftest wrote its script", (s.work / "test-uaf.sh").is_file(), "no test-uaf.sh")
    s.run(["review", "specs/no-leak-bad.toml", "--depth", "4", "-o", "review.md"], 0)
    s.check("review wrote its file", (s.work / "review.md").is_file(), "no review.md")

    (s.work / "lp_demo.c").write_text(DEMO_C)
    s.run(["import", "lp_demo.c", "-o", "demo.toml"], 0)
    s.run(["verify", "demo.toml"], 0, "verdict: holds")

    s.run(["graph", "--lifecycle"], 0, "digraph")
    s.run(["graph", "specs/no-leak-bad.toml", "--states", "--depth", "3", "--format", "mermaid"], 0, "flowchart LR")
    s.run(["conformance"], 0, " passed, 0 failed")
    s.run(["prove", "specs/no-leak-good.toml"], 0, "verdict: proved")
    s.run(["prove", "specs/no-leak-bad.toml", "--format", "json"], 1, '"verdict": "violation"')
    s.run(["prove-theory"], 0, "theorems proved")

    # every klpmodel command the README shows, in a fresh copy of the examples
    if README.is_file():
        if s.run(["examples", "--copy", "readme"], 0, "copied") is not None:
            for cmd in readme_commands(README.read_text()):
                s.run(cmd, (0, 1), timeout=900, cwd=s.work / "readme")
    else:
        s.check("README commands", False, f"no {README}")


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    exe = os.path.abspath(sys.argv[1])
    if len(sys.argv) == 3:
        work = Path(sys.argv[2])
        work.mkdir(parents=True, exist_ok=True)
        s = Smoke(exe, work.resolve())
        smoke(s)
    else:
        with tempfile.TemporaryDirectory(prefix="klpmodel-smoke-") as d:
            s = Smoke(exe, Path(d))
            smoke(s)
    print(f"smoke: {s.passed} passed, {s.failed} failed")
    return 0 if s.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
