"""The README's two set-up commands stay true, and CI runs the README's test command."""
from __future__ import annotations

import re

from conftest import ROOT


def _commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_install_verify_and_install_test():
    verify, test = _commands()[:2]
    assert "pip install" in verify and "klpmodel verify specs/" in verify
    assert "pip install" in test and "pytest" in test
    spec = verify.split("klpmodel verify ")[1].split()[0]
    assert (ROOT / spec).exists()


def test_ci_runs_the_readme_test_command():
    test = _commands()[1]
    assert test in (ROOT / ".ci" / "run").read_text()
