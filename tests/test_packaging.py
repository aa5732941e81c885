"""A klpmodel that stands alone (issue 11, item 9): the shipped data is found without a
checkout, `klpmodel examples` lists and copies it without overwriting anything, and trace
files find their spec from any working directory."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SPECS, cli


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """klpmodel ARGS from another working directory (not the checkout)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "klpmodel", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


# ------------------------------------------------------------------ examples

def test_examples_lists_specs_scenarios_and_theorems():
    p = cli("examples")
    assert p.returncode == 0, p.stderr
    for spec in SPECS.glob("*.toml"):
        assert f"specs/{spec.name}" in p.stdout
    assert "specs/no-leak-bad.toml" in p.stdout and "no-leak breaks in 4 operations" in p.stdout
    assert "specs/selftest-state.toml" in p.stdout and "(holds)" in p.stdout
    n = len([f for f in (SPECS / "selftests").glob("*/**/*.toml")])
    assert f"{n} scenarios" in p.stdout
    for proof in (ROOT / "proofs").glob("[!_]*.py"):
        assert f"proofs/{proof.name}" in p.stdout
    assert "klpmodel examples --copy DIR" in p.stdout


def test_examples_copy_writes_specs_and_proofs_and_never_overwrites(tmp_path):
    dest = tmp_path / "ex"
    p = cli("examples", "--copy", str(dest))
    assert p.returncode == 0, p.stderr
    for rel in ["specs/selftest-state.toml", "specs/README.md", "specs/selftests/test-state.toml",
                "specs/selftests/test-state/taking-over.toml", "proofs/_klp.py", "proofs/a_version_monotone.py"]:
        assert (dest / rel).read_bytes() == (ROOT / rel).read_bytes()
    assert not list(dest.rglob("__pycache__"))
    again = cli("examples", "--copy", str(dest))                      # same content: nothing to do
    assert again.returncode == 0 and "copied 0 files" in again.stdout
    mine = dest / "specs" / "no-leak-bad.toml"
    mine.write_text("# my edit\n")
    (dest / "specs" / "no-leak-good.toml").unlink()
    clash = cli("examples", "--copy", str(dest))
    assert clash.returncode == 2 and "never overwrites" in clash.stderr and "nothing was written" in clash.stderr
    assert mine.read_text() == "# my edit\n" and not (dest / "specs" / "no-leak-good.toml").exists()
    os.symlink(tmp_path / "elsewhere", dest / "specs" / "no-leak-good.toml")    # a planted link: refused too
    mine.unlink()
    assert cli("examples", "--copy", str(dest)).returncode == 2
    assert not (tmp_path / "elsewhere").exists()


def test_copied_examples_run_the_readme_commands(tmp_path):
    assert cli("examples", "--copy", str(tmp_path)).returncode == 0
    p = run(tmp_path, "verify", "specs/no-leak-bad.toml")
    assert p.returncode == 1 and "VIOLATED no-leak" in p.stdout


# ------------------------------------------------------------------ defaults: the shipped data

def test_conformance_and_prove_theory_default_to_the_shipped_data(tmp_path):
    p = run(tmp_path, "conformance")                                   # tmp_path has no specs/selftests
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1].endswith(" passed, 0 failed")
    t = run(tmp_path, "prove-theory", "--help")                    # (the wheel test runs it: tests/smoke.py)
    words = " ".join(w for w in t.stdout.split() if w.strip("│╭╮╰╯─"))
    assert t.returncode == 0 and "default: the theorems shipped with klpmodel" in words


def test_data_dir_prefers_the_wheel_copy(tmp_path, monkeypatch):
    from klpmodel import examples

    assert examples.data_dir("specs") == ROOT / "specs"               # a checkout: where the files are
    pkg = tmp_path / "klpmodel"
    (pkg / "_data" / "specs").mkdir(parents=True)
    monkeypatch.setattr(examples, "_PKG", pkg)
    assert examples.data_dir("specs") == pkg / "_data" / "specs"       # an installed wheel


# ------------------------------------------------------------------ traces find their spec

def test_traces_find_their_spec_from_any_directory_and_after_a_move(tmp_path):
    proj = tmp_path / "proj"
    (proj / "specs").mkdir(parents=True)
    shutil.copy(SPECS / "no-leak-bad.toml", proj / "specs")
    p = run(proj, "verify", "specs/no-leak-bad.toml", "--out", "traces")
    assert p.returncode == 1, p.stderr
    doc = json.loads((proj / "traces" / "no-leak.trace.json").read_text())
    assert doc["spec"]["path"] == "specs/no-leak-bad.toml"
    assert doc["spec"]["relative"] == "../specs/no-leak-bad.toml"
    assert doc["spec"]["absolute"] == str(proj / "specs" / "no-leak-bad.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd, trace in [(elsewhere, proj / "traces" / "no-leak.trace.json"),          # absolute trace path
                       (proj / "traces", Path("no-leak.trace.json")),                # from the trace's folder
                       (tmp_path, Path("proj/traces/no-leak.trace.json"))]:          # a relative one
        e = run(cwd, "explain", str(trace))
        assert e.returncode == 0 and "no-leak" in e.stdout, (cwd, e.stderr)
        r = run(cwd, "replay", str(trace), "--quiet")
        assert r.returncode == 1 and r.stdout.startswith("result: still violated"), (cwd, r.stdout, r.stderr)
    moved = tmp_path / "moved"
    proj.rename(moved)                                                 # the absolute path is gone now
    r = run(elsewhere, "replay", str(moved / "traces" / "no-leak.trace.json"), "--quiet")
    assert r.returncode == 1, r.stderr


# ------------------------------------------------------------------ user pages stand alone

def test_user_documentation_never_points_at_the_developers_shared_folder():
    """A user has no ../shared: README, docs/ (kernel-notes.md, for developers, may name the
    source of a finding) and the shipped READMEs say what users need themselves."""
    pages = [ROOT / "README.md", ROOT / "specs" / "README.md", ROOT / "proofs" / "README.md",
             *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "docs" / "schemas").glob("*.json"))]
    for page in pages:
        if page.name == "kernel-notes.md":
            continue
        text = page.read_text()
        for ref in ("../shared", "shared/kernel", "shared/design", "semantics.md", "bin/acceptance"):
            assert ref not in text, f"{page.relative_to(ROOT)} points at {ref}"


def test_design_md_lists_every_module_of_the_package():
    """docs/design.md's file table describes the code as it is (issue 12): it names every
    module of klpmodel/, and none that is gone."""
    import re

    table = (ROOT / "docs" / "design.md").read_text().split("\n## Files\n", 1)[1].split("\n## ", 1)[0]
    named = {name for row in table.splitlines() if row.startswith("| `")
             for name in re.findall(r"`([\w.]+\.py)`", row.split(" | ")[0])}
    assert named == {p.name for p in (ROOT / "klpmodel").glob("*.py")}


# ------------------------------------------------------------------ dependency floors (item 8)

def test_every_dependency_has_a_floor_that_ci_installs():
    """.ci/run installs exactly these pins on Python 3.11 and smoke-tests every command with
    them; the floors stay above the releases known to break klpmodel."""
    import tomllib

    p = subprocess.run([sys.executable, str(ROOT / ".ci" / "floors.py")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    pins = dict(line.split("==") for line in p.stdout.split())
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert len(pins) == len(deps)

    def v(s):
        return tuple(int(x) for x in s.split(".")[:3])

    assert v(pins["typer"]) >= (0, 15, 4)        # 0.12.0-0.15.3 with click 8.2+: crash, or exit 0 on a violation
    assert v(pins["networkx"]) >= (2, 4)         # 2.3: the lifecycle lookup fails
    assert v(pins["rich"]) >= (12, 6)            # 12.5 and older: FORCE_COLOR gives no colour
    run = (ROOT / ".ci" / "run").read_text()
    assert ".ci/floors.py" in run and "smoke floors" in run and "smoke newest" in run and "tests/smoke.py" in run
    assert "SKIPPED:" in run                     # a missing interpreter is said, never silent


def test_requires_python_stays_3_11():
    import tomllib

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.11"
