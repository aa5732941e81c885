"""Start-up (issue 13): `klpmodel verify` imports only what its run needs. No timing here
(speed is never asserted in the tests: bench/bench.py --startup measures it); these pin the
structure that makes it fast, and that the shortcuts taken for it change nothing."""
from __future__ import annotations

import importlib.util
import json
import os
import pty
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path

import pytest
from conftest import ROOT

HEAVY = ("networkx", "pydantic", "z3", "rich", "tree_sitter")

# runs a command in-process and writes which of HEAVY it imported to a file, at the exit (cli.run ends with os._exit)
PROBE = """
import json, os, sys
real_exit = os._exit
def exit_(code):
    with open(%r, "w") as f:
        json.dump([m for m in %r if m in sys.modules], f)
    real_exit(code)
os._exit = exit_
sys.argv = ["klpmodel", *%r]
from klpmodel.cli import run
run()
"""


def loaded(*args: str, stderr=subprocess.PIPE) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), TERM="xterm")
    with tempfile.TemporaryDirectory() as tmp:
        where = os.path.join(tmp, "modules.json")
        p = subprocess.run([sys.executable, "-c", PROBE % (where, HEAVY, list(args))], stdout=subprocess.PIPE,
                           stderr=stderr, text=True, cwd=ROOT, env=env, timeout=300)
        with open(where) as f:
            return p, json.load(f)


@contextmanager
def terminal():
    """A pty to give a command as its stderr, read (and dropped) as the command writes it."""
    master, slave = pty.openpty()

    def drain():
        with suppress(OSError):
            while os.read(master, 4096):
                pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield slave
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)


def test_verify_imports_no_networkx_pydantic_or_z3():
    """The explicit search reads the lifecycle compiled (kernel._compiled), not the networkx
    graph; typer's pydantic coercion is left for values that need it (cli._Coercion); Z3 is
    imported only by its engine."""
    p, mods = loaded("verify", "specs/selftest-state.toml")
    assert p.returncode == 0 and "verdict: holds" in p.stdout, p.stderr
    assert set(mods).isdisjoint({"networkx", "pydantic", "z3", "tree_sitter"}), mods
    p, mods = loaded("verify", "specs/no-leak-bad.toml", "--format", "json", "--engine", "explicit")
    assert p.returncode == 1 and json.loads(p.stdout)["verdict"] == "violation"
    assert set(mods).isdisjoint({"networkx", "pydantic", "z3", "tree_sitter"}), mods


def test_a_quick_run_at_a_terminal_imports_no_rich_for_its_progress_display():
    """The progress display (stderr a terminal) needs rich only once the work has taken its
    delay (1 s); a run done sooner never imports it. Its report, on a pipe, needs no colour."""
    if "rich" in loaded("--version")[1]:
        pytest.skip("this typer imports rich itself, whatever the command")
    with terminal() as tty:
        p, mods = loaded("verify", "specs/selftest-state.toml", stderr=tty)
    assert p.returncode == 0 and "verdict: holds" in p.stdout
    assert "rich" not in mods


def test_the_probe_sees_what_a_command_imports(monkeypatch):
    """The same probe sees networkx where the lifecycle graph is drawn, Z3 where its engine
    runs, and pydantic where typer's coercion words a refused value."""
    assert "networkx" in loaded("graph", "--lifecycle")[1]
    assert "z3" in loaded("verify", "specs/selftest-state.toml", "--engine", "z3", "--depth", "2")[1]
    p, mods = loaded("verify", "specs/selftest-state.toml", "--depth", "abc")
    assert p.returncode == 2 and "'abc' is not a whole number" in p.stderr
    assert ("pydantic" in mods) == (importlib.util.find_spec("typer._coercion") is not None)   # typer 0.29+
    monkeypatch.setenv("KLPMODEL_PROGRESS_DELAY", "0")     # stderr a terminal: the display shows at once
    with terminal() as tty:
        p, mods = loaded("verify", "specs/selftest-state.toml", "--engine", "z3", stderr=tty)
    assert p.returncode == 0 and "rich" in mods


def _commands():
    import typer

    from klpmodel import cli

    group = typer.main.get_command(cli.app)
    yield group
    yield from group.commands.values()


SAMPLES = {     # the values typer hands a parameter's coercion: given on the command line (str), or defaults
    int: [None, 0, 8, "8", "0", "007", "-3", "12345678901234567890123", "1_0", " 4", "+3", "3.0", "1.5", "abc", "", "١٢"],
    float: [None, 2.5, "60", "1.5", "-1", "0", "1e3", "nan", "inf", ".5", "5.", "1_0", " 2", "abc", ""],
    str: [None, "5.5", "", "x y", "ünï"],
    bool: [None, True, False],
    Path: [None, "specs/selftest-state.toml", "specs", "", "-", "/nonexistent/x", "a\x00b", Path("specs")],
}
TYPICAL = {int: ["8", "007", "-3", 8], float: ["60", "1.5", "-1"], str: ["5.5", ""], bool: [True, False],
           Path: ["specs/selftest-state.toml", "", "/nonexistent/x"]}


def _outcome(coercion, value, param, ctx):
    try:
        out = coercion.coerce(value, param, ctx)
    except Exception as e:
        return ("error", type(e).__name__, e.format_message() if hasattr(e, "format_message") else str(e))
    return ("value", type(out), repr(out), [type(x) for x in out] if isinstance(out, (list, tuple)) else None)


def test_the_cli_coerces_every_value_as_typer_does():
    """cli._Coercion takes typer's place for values that need no validation: on every
    parameter of every command, and the values a user or a default gives it, it gives what
    typer's own (pydantic) coercion gives (the same value and type, or the same error), and
    the usual values never reach typer's."""
    coercion = pytest.importorskip("typer._coercion")       # typer 0.29+: coercion through pydantic
    from typer._param_types import coerce_cli_choice, coerce_cli_path

    from klpmodel.cli import _OTHER, _Coercion

    checked = set()
    for cmd in _commands():
        ctx = cmd.context_class(cmd, info_name=cmd.name)
        for p in cmd.params:
            ann = p.type_descriptor.annotation
            item = ann.__args__[0] if getattr(ann, "__origin__", None) is list else ann
            if isinstance(item, type) and issubclass(item, Enum):
                values = [None, *item, *(m.value for m in item), *(m.value.upper() for m in item), "nope", ""]
                typical = [*item, *(m.value for m in item)]
            else:
                values, typical = SAMPLES[item], TYPICAL[item]
            if item is not ann:                             # a list option: what click collects
                values = [None, (), *[(v,) for v in values if v is not None], tuple(v for v in typical)]
                typical = [(), tuple(typical)]
            ours = _Coercion(p, coerce_cli_choice, coerce_cli_path)
            theirs = coercion.build_runtime_param(p.type_descriptor)
            for v in values:
                assert _outcome(ours, v, p, ctx) == _outcome(theirs, v, p, ctx), (cmd.name, p.name, v)
            for v in typical:
                assert ours.simple(v, ctx) is not _OTHER, (cmd.name, p.name, v)
            checked.add(ann)
    assert {int, float, str, bool, Path, list[str], list[Path]} <= checked
    assert sum(isinstance(a, type) and issubclass(a, Enum) for a in checked) >= 5
