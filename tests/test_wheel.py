"""The wheel stands alone (issue 11, item 9): it carries every example spec, selftest
scenario, theorem and JSON Schema of the checkout, and installed in a new venv, run in an
empty directory, its conformance, prove-theory and examples work with no checkout around.
(.ci/run installs the wheel with real dependencies, oldest and newest, and runs
tests/smoke.py: every command and the README's commands.)"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT


def _tracked(folder: str, suffixes: tuple[str, ...]) -> set[str]:
    p = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("not a git checkout")
    return {f for f in p.stdout.split() if f.endswith(suffixes)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (whl,) = out.glob("klpmodel-*.whl")
    return whl


def test_the_wheel_carries_the_shipped_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, where, suffixes in (("specs", "specs", (".toml", ".md")), ("proofs", "proofs", (".py", ".md")),
                                    ("docs/schemas", "schemas", (".json",))):
        for f in _tracked(folder, suffixes):
            assert f"klpmodel/_data/{where}/{f[len(folder) + 1:]}" in names, f
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "specs/", "proofs/", "docs/"))]   # nothing at top level


def test_the_installed_wheel_runs_from_an_empty_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)                   # this pip installs into it (--python)
    py = env_dir / "bin" / "python"
    p = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    # the dependencies: this interpreter's (a .pth adds its site-packages; its klpmodel is not seen)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FORCE_COLOR")}
    exe = str(env_dir / "bin" / "klpmodel")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], capture_output=True, text=True, cwd=empty, env=env, timeout=300)

    where = subprocess.run([str(py), "-c", "import klpmodel; print(klpmodel.__file__)"], capture_output=True,
                           text=True, cwd=empty, env=env).stdout.strip()
    assert where.startswith(site), where                                       # the wheel's copy, not the checkout
    c = run("conformance")
    assert c.returncode == 0 and c.stdout.splitlines()[-1].endswith(" passed, 0 failed"), c.stdout + c.stderr
    t = run("prove-theory", str(Path(site, "klpmodel", "_data", "proofs", "b_downgrade_gap.py")))
    assert t.returncode == 0 and "PROVED non-atomic-downgrade-accepted" in t.stdout, t.stdout + t.stderr
    e = run("examples")
    assert e.returncode == 0 and str(Path(site, "klpmodel", "_data", "schemas")) in e.stdout
    assert run("examples", "--copy", ".").returncode == 0
    v = run("verify", "specs/no-leak-bad.toml")
    assert v.returncode == 1 and "VIOLATED no-leak" in v.stdout
    assert sorted(p.name for p in empty.iterdir()) == ["proofs", "specs"]
