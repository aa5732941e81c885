"""SPIN as an independent check of the explicit engine: the Promela model of the stress
family (bench/spin/gen.py) has klpmodel's state variables, so its reachable state count
must equal the unreduced search's. Skipped when spin or gcc is missing."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from klpmodel.engine_explicit import ExplicitEngine
from klpmodel.kernel import Model
from klpmodel.properties import NAMES
from klpmodel.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "spin"))
from gen import generate  # noqa: E402

from bench import stress  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("spin") is None or shutil.which("gcc") is None,
                                reason="spin and gcc are needed")


@pytest.mark.parametrize("P", [3, 4])
def test_spin_counts_the_same_states_as_the_unreduced_search(P, tmp_path):
    spec = tmp_path / "stress.toml"
    spec.write_text(stress(P))
    eng = ExplicitEngine(Model(load_spec(spec)), symmetry=False)
    eng.run(1000, list(NAMES))

    (tmp_path / "stress.pml").write_text(generate(P))
    subprocess.run(["spin", "-a", "stress.pml"], cwd=tmp_path, check=True, capture_output=True)
    # -O1: gcc 12's -O2 SLP vectorizer miscompiles pan.c here (bench/spin/slp-bug.c)
    subprocess.run(["gcc", "-O1", "-DSAFETY", "-DNOREDUCE", "-o", "pan", "pan.c"], cwd=tmp_path,
                   check=True, capture_output=True)
    out = subprocess.run(["./pan", "-m100000", "-w16"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "errors: 0" in out, out                       # no assert failed (no property violated)
    assert int(re.search(r"(\d+) states, stored", out).group(1)) == eng.states
