"""Issue 11, item 6: bounded time on any input. --timeout stops every stage (loading the
spec, building the Z3 template, prove's candidate mining) and Ctrl-C stops the same way,
with the partial result and exit 3; the explicit engine has a state budget and says which
limit stopped it. No assertion here is about time: the subprocess timeouts only keep a
hanging run from hanging the suite."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SPECS, cli

from klpmodel.deadline import INTERRUPTED, Deadline, watch
from klpmodel.errors import Stopped
from klpmodel.spec import parse_spec
from klpmodel.verify import verify


def _many_patches(n: int, callbacks: bool = True) -> str:
    out = ["[states.a]\nid = 1\n", "[states.b]\nid = 2\n", "[modules.m]\n"]
    for k in range(n):
        out.append(f'[[patch]]\nname = "p{k}"\nreplace = {"true" if k % 2 else "false"}\n'
                   f"states = {{ a = {k}, b = {k // 2} }}\n")
        if callbacks:
            out.append('[patch.objects.vmlinux]\npre_patch = ["alloc a unless prev a", "maybe-fail"]\n'
                       'post_patch = ["take a if prev a", "modify a", "save b unless prev b"]\n'
                       'pre_unpatch = ["restore a unless prev a"]\n'
                       'post_unpatch = ["free a unless prev a", "free-prev b if prev b >= 3"]\n'
                       '[patch.objects.m]\npre_patch = ["alloc b"]\npost_unpatch = ["free b"]\n')
    return "\n".join(out)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """51 patches: the Z3 template alone took more than 300 s."""
    path = tmp_path_factory.mktemp("big") / "p51.toml"
    path.write_text(_many_patches(51))
    return path


@pytest.mark.parametrize("args", [
    ["verify", "--engine", "z3"],                  # stops while building the Z3 template
    ["verify", "--engine", "explicit"],
    ["verify"],
    ["prove", "--method", "induction"],            # the template, the sample, the candidate mining
    ["prove"],
])
def test_timeout_stops_every_engine_with_exit_3(big, args):
    p = cli(*args[:1], str(big), *args[1:], "--timeout", "3", "--format", "json", timeout=120)
    assert p.returncode in (1, 3), p.stderr                 # 1 only when a violation was found in time
    r = json.loads(p.stdout)
    if args[0] == "verify":
        assert r["verdict"] == "unknown" and r["unknown"]["reason"] == "timeout"
    else:
        assert any("timeout" in x.get("note", "") for x in r["properties"]), r
    assert "Traceback" not in p.stderr


def test_timeout_covers_loading_the_spec(tmp_path):
    path = tmp_path / "p3000.toml"
    path.write_text(_many_patches(3000, callbacks=False))         # the model compares every pair of patches
    p = cli("verify", str(path), "--timeout", "1", timeout=120)
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr == "klpmodel: unknown: timeout while loading the spec; nothing was checked\n"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeout_must_be_a_positive_number(value):
    p = cli("verify", "specs/selftest-state.toml", "--timeout", value)
    assert p.returncode == 2 and "--timeout must be a positive number of seconds" in p.stderr


def test_the_explicit_engine_has_a_state_budget_and_says_so():
    p = cli("verify", "specs/selftest-state.toml", "--engine", "explicit", "--max-states", "10", "--format", "json")
    assert p.returncode == 3
    r = json.loads(p.stdout)
    assert r["unknown"]["reason"] == ("state budget: more than 10 states (raise it with --max-states N, "
                                      "or use --engine z3)")
    p = cli("verify", "specs/selftest-state.toml", "--max-states", "10", "--format", "json")      # auto: goes on with Z3
    assert p.returncode == 0 and json.loads(p.stdout)["engine"] == "z3"
    p = cli("verify", "specs/selftest-state.toml", "--max-states", "0")
    assert p.returncode == 2 and "--max-states must be at least 1" in p.stderr


def test_in_process_budget_and_deadline():
    spec = parse_spec("s.toml", (SPECS / "selftest-state.toml").read_bytes())
    r = verify(spec, engine="explicit", max_states=10)
    assert r.verdict == "unknown" and r.unknown.startswith("state budget: more than 10 states")
    d = Deadline(1e-9)
    r = verify(spec, engine="explicit", timeout=d)
    assert r.verdict == "unknown" and r.unknown == "timeout" and r.depth_done == 0


def test_the_backstop_stops_code_that_does_not_poll():
    """watch() raises Stopped in a loop that never looks at the deadline."""
    d = Deadline(0.2)
    with pytest.raises(Stopped) as e, watch(d):
        while True:
            sum(range(1000))
    assert e.value.reason == "timeout"


def test_the_backstop_leaves_a_search_that_noticed_the_deadline_alone():
    d = Deadline(0.05)
    with watch(d):
        while not d.expired():
            pass
        time.sleep(0.3)              # reporting: the backstop's moment passes without raising
    assert d.noticed


@pytest.mark.parametrize("args", [
    ["verify", "--engine", "explicit"],
    ["verify", "--engine", "z3"],
    ["prove", "--method", "induction"],
])
def test_ctrl_c_prints_the_partial_result_and_exits_3(big, args):
    p = subprocess.Popen([sys.executable, "-m", "klpmodel", args[0], str(big), *args[1:], "-q"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 3, out + err
    assert "Traceback" not in err
    assert f"({INTERRUPTED})" in out or "unknown" in out or err == f"klpmodel: stopped: {INTERRUPTED}\n", out + err


@pytest.mark.parametrize("command", ["review", "graph"])
def test_ctrl_c_in_other_commands_is_exit_3_without_traceback(big, command):
    """Commands without a partial result to print stop with one line and exit 3 (never 1,
    which means a violation; never a traceback)."""
    args = ["review", str(big)] if command == "review" else ["graph", str(big), "--states"]
    p = subprocess.Popen([sys.executable, "-m", "klpmodel", *args], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3 and err == f"klpmodel: stopped: {INTERRUPTED}\n", err
