"""`klpmodel conformance`: every kernel selftest scenario, simulated and compared line for
line with the log the kernel's script expects (../shared/kernel/selftests.md)."""
from __future__ import annotations

import difflib
import tomllib
from pathlib import Path

from .errors import UserError
from .kernel import Model
from .klog import ERAS
from .simulate import parse_run, run
from .spec import load_spec


def load_scenario(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"cannot read scenario: {e}", path=str(path)) from None
    for key in ("spec", "name", "run", "expected"):
        if key not in data:
            raise UserError(f"scenario has no '{key}'; a scenario has spec, name, run and expected", path=str(path))
    return data


def run_scenario(path: Path, kernel: str | None = None) -> tuple[bool, str, list[str]]:
    """(passed, name, report lines: why the script stopped early, if it did, then the unified
    diff). A failed check (`sysfs`, `sysfs-rights`, `runs`) makes the scenario fail, as the
    kernel script dies there and never reaches check_result."""
    sc = load_scenario(path)
    model = Model(load_spec(path.parent / sc["spec"]), profile=kernel)
    era = sc.get("era", "insmod")
    if era not in ERAS:
        raise UserError(f"unknown era '{era}'; use one of: {', '.join(ERAS)}", path=str(path))
    out = run(model, parse_run(sc["run"], model, str(path)), era=era)
    expected = sc["expected"].strip("\n").splitlines()
    if out.log == expected and out.died is None:
        return True, sc["name"], []
    diff = list(difflib.unified_diff(expected, out.log, "expected (kernel selftest)", "simulated (klpmodel)", lineterm=""))
    return False, sc["name"], ([f"the script dies at {out.died}"] if out.died else []) + diff


def run_all(folder: Path, echo, kernel: str | None = None) -> int:
    files = sorted(folder.glob("**/*.toml"))
    scenarios = [f for f in files if f.parent != folder]           # modules' specs sit at the top
    if not scenarios:
        raise UserError(f"no scenario files under {folder}; give the folder that holds the selftest scenarios "
                        f"(specs/selftests)")
    passed = failed = 0
    for path in scenarios:
        ok, name, diff = run_scenario(path, kernel)
        rel = path.relative_to(folder)
        if ok:
            passed += 1
            echo(f"PASS {rel.parent}/{name}")
        else:
            failed += 1
            echo(f"FAIL {rel.parent}/{name}")
            for line in diff:
                echo(f"    {line}")
    echo(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
