"""Shared helpers for the klpmodel tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SHARED = ROOT.parent / "shared"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m klpmodel ARGS` as a user would (a new process, output captured)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "klpmodel", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def expectations(path: Path) -> list[list[str]]:
    """The `# expect:` header lines of a spec (the format ../shared/bin/acceptance reads)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            if line.strip():
                break
            continue
        body = line.lstrip("#").strip()
        if body.startswith("expect:"):
            out.append(body[len("expect:"):].split())
    return out


@pytest.fixture
def write_spec(tmp_path):
    def write(text: str, name: str = "spec.toml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return write
