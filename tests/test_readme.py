"""The README's two set-up commands stay true, CI runs the README's test command, and the
README's example outputs are what klpmodel prints."""
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


def _examples(text: str) -> list[tuple[str, list[str]]]:
    """(command, shown lines) of each output block that starts with `$ klpmodel ...`."""
    blocks, cur = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if cur is None:
                cur = []
            else:
                blocks.append(cur)
                cur = None
        elif cur is not None:
            cur.append(line)
    return [(b[0][2:], b[1:]) for b in blocks if b and b[0].startswith("$ klpmodel ")]


def test_readme_example_outputs_are_what_klpmodel_prints():
    """Every shown line (those with '...' are elisions) is a line of the real output."""
    import shlex

    from conftest import cli

    examples = _examples((ROOT / "README.md").read_text())
    assert len(examples) >= 2
    for command, shown in examples:
        real = [line.rstrip() for line in cli(*shlex.split(command)[1:]).stdout.splitlines()]
        for line in shown:
            if "..." not in line and line.strip():
                assert line.rstrip() in real, (command, line)
