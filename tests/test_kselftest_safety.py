"""Issue 11, item 2: a `klpmodel kselftest` script runs nothing but what it means to run,
whatever the spec, the trace and their paths hold, and it unloads only what it loaded."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SPECS, cli

from klpmodel.errors import UserError
from klpmodel.spec import load_spec

HOSTILE_NAME = "x\"; touch PWNED1; echo \"$(touch PWNED2)`touch PWNED3`'; touch PWNED4 #"
HOSTILE_LOG = "$(touch PWNED5) `touch PWNED6` \\\" ; touch PWNED7 ' \\\\ !"

# functions.sh of the selftests, reduced to recording stubs: what ran, in order
STUB = r"""
CALLS=${CALLS:?}
rec() { printf '%s\n' "$*" >> "$CALLS"; }
setup_config() { rec setup_config; trap cleanup EXIT INT TERM HUP; }
cleanup() { rec cleanup; }
start_test() { rec "start_test $1"; }
check_result() { rec "check_result $1"; }
log() { rec "log $*"; }
die() { rec "die $*"; exit 1; }
loop_until() { rec "loop_until $*"; return 0; }
for f in load_mod load_lp load_lp_nowait load_failing_mod unload_mod unload_lp disable_lp; do
	eval "$f() { rec $f \"\$@\"; }"
done
"""

SPEC = """
name = {name}

[states.feature]
id = 1

[modules.{target}]
loaded = {loaded}

[[patch]]
name = "test_klp_eager"
states = {{ feature = 1 }}

[patch.objects.vmlinux]
pre_patch = ['alloc feature', {log}]
post_patch = ["save feature"]
pre_unpatch = ["free feature"]
post_unpatch = ["restore feature"]

[patch.objects.{target}]
pre_patch = ['log "target coming"']
"""


def _trace(tmp_path: Path, spec: Path, prop: str, name: str = "t.trace.json") -> Path:
    out = tmp_path / "out"
    p = cli("verify", str(spec), "--out", str(out), "-p", prop)
    assert p.returncode == 1, p.stdout + p.stderr
    trace = tmp_path / name
    shutil.copy(out / f"{prop}.trace.json", trace)
    return trace


def _run(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the script with the stubs beside it, in an empty directory."""
    box = tmp_path / "box"
    box.mkdir(exist_ok=True)
    (box / "functions.sh").write_text(STUB)
    script = box / "test-klpmodel.sh"
    script.write_text(text)
    calls = box / "calls"
    calls.write_text("")
    r = subprocess.run(["bash", str(script)], cwd=box, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, CALLS=str(calls)))
    return r, calls.read_text().splitlines()


def _hostile(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "d$(touch PWNED8);`touch PWNED9`"
    folder.mkdir()
    spec = folder / "s$(touch PWNED10).toml"
    spec.write_text(SPEC.format(name=json.dumps(HOSTILE_NAME), target="test_klp_mod", loaded="false",
                                log=json.dumps(f'log "{HOSTILE_LOG}"')))
    return spec, _trace(tmp_path, spec, "no-use-after-free", "t\n$(touch PWNED11)\n`touch PWNED12`.trace.json")


def test_hostile_names_and_paths_run_nothing(tmp_path):
    _, trace = _hostile(tmp_path)
    p = cli("kselftest", str(trace))
    assert p.returncode == 0, p.stderr
    text = p.stdout
    assert subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True).returncode == 0
    r, calls = _run(tmp_path, text)
    assert r.returncode == 0, r.stderr
    assert not list(tmp_path.rglob("PWNED*")), "an injected command ran"
    assert f"start_test klpmodel: no-use-after-free counterexample ({HOSTILE_NAME})" in calls
    log = HOSTILE_LOG.replace('\\"', '"')                 # a log statement unescapes \" only
    assert f"\ntest_klp_eager: {log}\n" in "\n".join(calls)                  # the log line, literally
    assert calls[-1] == "cleanup"                                            # setup_config's clean-up still runs


def test_hostile_comments_stay_comments(tmp_path):
    _, trace = _hostile(tmp_path)
    text = cli("kselftest", str(trace)).stdout
    header = text.split("\n\n", 1)[0].splitlines()
    assert all(line.startswith("#") for line in header)
    assert any("\\n$(touch PWNED11)\\n" in line for line in header)          # the newline shown as \n


@pytest.mark.parametrize("name, why", [
    ("a" * 56, "too long"),               # MODULE_NAME_LEN - 1 is 55
    ("lp-v1", "not a valid name"),
    ("lp\n", "not a valid name"),         # '^...$' used to let a trailing newline through
    ("lp;id", "not a valid name"),
    ("1lp", "not a valid name"),
])
def test_names_the_kernel_refuses_are_refused(tmp_path, name, why):
    path = tmp_path / "s.toml"
    path.write_text(f"[[patch]]\nname = {json.dumps(name)}\n")
    with pytest.raises(UserError) as e:
        load_spec(path)
    assert why in str(e.value) and str(e.value).startswith(f"{path}:2: ")
    path.write_text(f"[modules.{json.dumps(name)}]\n[[patch]]\nname = \"a\"\n")
    with pytest.raises(UserError):
        load_spec(path)


def test_a_target_module_the_script_did_not_load_is_never_unloaded(tmp_path):
    """A spec whose target module is loaded at the start (ext4): the trace unloads it. The
    script may unload only a module it loaded itself: it loads it in its set-up and refuses
    to run (skip, exit 4) when it is loaded already, so `rmmod ext4` can never happen."""
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(name='"ext4 series"', target="ext4", loaded="true", log='"return"')
                    .replace("[patch.objects.ext4]\npre_patch = ['log \"target coming\"']",
                             "[patch.objects.ext4]\npost_unpatch = [\"free feature\"]"))
    out = tmp_path / "out"
    p = cli("verify", str(spec), "--out", str(out), "--depth", "6")
    assert p.returncode == 1, p.stdout + p.stderr
    scripts = []
    for trace in sorted(out.glob("*.trace.json")):
        doc = json.loads(trace.read_text())
        text = cli("kselftest", str(trace)).stdout
        scripts.append(text)
        lines = text.splitlines()
        if any(s["operation"] in ("modunload ext4", "modload ext4") for s in doc["steps"]):
            skip = lines.index('[[ -e /sys/module/$MOD_TARGET ]] && klpmodel_skip "$MOD_TARGET is loaded already: '
                               'the test loads and unloads it itself and never unloads a module it did not load"')
            setup = next(n for n, x in enumerate(lines) if x.startswith("load_mod $MOD_TARGET"))
            assert skip < setup < next(n for n, x in enumerate(lines) if x.startswith("start_test "))
        else:
            assert "$MOD_TARGET" not in text and "rmmod ext4" not in text
        _loads_before_unloads(lines)
    assert any("unload_mod $MOD_TARGET" in t for t in scripts), "no trace unloads the module: the test tests nothing"


def _owned_later(lines: list[str]) -> set[str]:
    """Variables of the modules the script's commands load (the trap is defined before them)."""
    return {line.split()[1].lstrip("$") for line in lines
            if line.split()[:1] and line.split()[0] in ("load_mod", "load_lp", "load_lp_nowait", "load_failing_mod")}


def _loads_before_unloads(lines: list[str]) -> None:
    """Every module the script unloads (unload_*, and the trap's rmmod list) it loaded first."""
    loaded = set()
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] in ("load_mod", "load_lp", "load_lp_nowait"):
            loaded.add(words[1])
        elif words[0] in ("unload_mod", "unload_lp"):
            assert words[1] in loaded, f"{line}: the script did not load it"
        elif line == next(x for x in reversed(lines) if x.startswith("\tfor m in ")):     # the trap's rmmod list
            assert set(re.findall(r"\$(\w+)", line)) <= {w.lstrip("$") for w in loaded} | _owned_later(lines)
        assert words[0] != "rmmod", line


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*-bad.toml")), ids=lambda p: p.name)
def test_every_shipped_counterexample_unloads_only_what_it_loaded(tmp_path, spec):
    out = tmp_path / "out"
    assert cli("verify", str(spec), "--out", str(out)).returncode == 1
    for trace in sorted(out.glob("*.trace.json")):
        p = cli("kselftest", str(trace))
        if p.returncode == 2 and "no longer runs" in p.stderr:
            continue
        assert p.returncode == 0, p.stderr
        _loads_before_unloads(p.stdout.splitlines())
        assert subprocess.run(["bash", "-n"], input=p.stdout, text=True).returncode == 0


def test_the_trap_cleans_up_when_the_test_fails(tmp_path):
    """However the script ends (here check_result fails: die), the trap disables and unloads
    what it loaded and then runs setup_config's clean-up."""
    _, trace = _hostile(tmp_path)
    text = cli("kselftest", str(trace)).stdout
    assert "trap klpmodel_cleanup EXIT" in text
    failing = text.replace('check_result "', 'die "check_result failed"; check_result "', 1)
    r, calls = _run(tmp_path, failing)
    assert r.returncode == 1
    after = calls[calls.index("die check_result failed"):]
    assert after[-1] == "cleanup"
    assert any(c.startswith("loop_until") and "/sys/kernel/livepatch/test_klp_eager/" in c for c in after)
