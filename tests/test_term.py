"""Terminal output: colour only for a person, plain bytes for pipes, a transient progress display, --quiet."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

from conftest import ROOT, cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_piped_output_is_plain_and_colour_is_only_decoration():
    plain = cli("verify", "specs/no-leak-bad.toml")
    assert "\x1b" not in plain.stdout and plain.stderr == ""
    env = dict(os.environ, FORCE_COLOR="1", PYTHONPATH=str(ROOT))
    env.pop("NO_COLOR", None)
    coloured = subprocess.run([sys.executable, "-m", "klpmodel", "verify", "specs/no-leak-bad.toml"], cwd=ROOT,
                              capture_output=True, text=True, env=env)
    assert "\x1b[1;31mverdict: violation" in coloured.stdout              # the verdict in bold red
    assert ANSI.sub("", coloured.stdout) == plain.stdout                  # same text underneath
    env["NO_COLOR"] = "1"
    no = subprocess.run([sys.executable, "-m", "klpmodel", "verify", "specs/no-leak-bad.toml"], cwd=ROOT,
                        capture_output=True, text=True, env=env)
    assert no.stdout == plain.stdout


def test_quiet_prints_the_verdict_line_only():
    p = cli("verify", "specs/no-leak-bad.toml", "--quiet")
    assert p.returncode == 1
    assert p.stdout == "verdict: violation: 1 of 8 properties broken, shortest traces: no-leak (4 operations)\n"
    p = cli("verify", "specs/selftest-state.toml", "-q")
    assert p.returncode == 0 and p.stdout.count("\n") == 1 and p.stdout.startswith("verdict: holds")


def test_progress_shows_on_a_terminal_and_disappears():
    """With stderr a terminal (a pty) a status line appears (delay set to 0 here) and is
    cleared at the end; stdout (a pipe) carries the report unchanged."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), KLPMODEL_PROGRESS_DELAY="0", TERM="xterm")
    p = subprocess.Popen([sys.executable, "-m", "klpmodel", "verify", "specs/selftest-state.toml", "--engine", "z3"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, env=env, text=True)
    out, _ = p.communicate(timeout=120)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    assert p.returncode == 0
    assert out == cli("verify", "specs/selftest-state.toml", "--engine", "z3").stdout
    text = err.decode(errors="replace")
    assert "verifying specs/selftest-state.toml up to depth 8" in text
    assert "z3: depth " in text                                          # the depth reached
    assert "\x1b[2K" in text or "\x1b[1A" in text                      # the status line is erased when done


def test_prove_quiet_prints_the_verdict_line_only():
    p = cli("prove", "specs/no-leak-bad.toml", "--quiet")
    assert p.returncode == 1 and p.stdout == "verdict: violation: 7 proved, 1 violated\n"
