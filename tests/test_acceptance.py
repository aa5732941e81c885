"""../shared/bin/acceptance: the acceptance specs with their expected verdicts."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, SHARED

ACCEPTANCE = SHARED / "bin" / "acceptance"


@pytest.mark.skipif(not ACCEPTANCE.exists(), reason="../shared is not beside this checkout (no acceptance specs)")
def test_shared_acceptance_specs():
    env = dict(os.environ, KLPMODEL=f"{sys.executable} -m klpmodel",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, str(ACCEPTANCE)], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=1200)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")


def test_project_specs_through_the_acceptance_runner():
    """Our own specs carry the same headers; run them through the same runner when it exists."""
    if not ACCEPTANCE.exists():
        pytest.skip("../shared is not beside this checkout")
    env = dict(os.environ, KLPMODEL=f"{sys.executable} -m klpmodel",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.toml"))
    p = subprocess.run([sys.executable, str(ACCEPTANCE), *specs], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=1200)
    assert p.returncode == 0, p.stdout
