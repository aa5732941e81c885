"""The pre-commit hook (.pre-commit-hooks.yaml): `klpmodel verify` on every spec pre-commit
passes, one after the other (verify takes one spec). Options before the first spec are
verify's (the hook's `args:`, e.g. `[--depth, "6"]`). Prints each spec's verdict line, and
the full report of those that do not hold; exits with the worst exit code of verify (0 all
hold, 1 a violation, 2 a bad spec or usage, 3 unknown)."""
from __future__ import annotations

import os
import subprocess
import sys


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(verify's options, the spec files): the files start at the first existing .toml file."""
    for i, a in enumerate(argv):
        if a.endswith(".toml") and os.path.isfile(a) and not (i and argv[i - 1] in ("--depth", "-d", "--timeout")):
            return argv[:i], argv[i:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    opts, specs = split(sys.argv[1:] if argv is None else argv)
    worst = 0
    for spec in specs:
        p = subprocess.run([sys.executable, "-m", "klpmodel", "verify", *opts, spec], capture_output=True, text=True)
        if p.returncode == 0:
            lines = p.stdout.splitlines()
            print(f"{spec}: {lines[1] if len(lines) > 1 else 'holds'}")
        else:
            sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        worst = max(worst, p.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())
