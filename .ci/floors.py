"""For .ci/run's floor-version smoke test. Prints the pip requirements that install
klpmodel's dependencies at the oldest versions pyproject.toml allows: `name==floor` for
each `name>=floor`. With --transitive, the same for click, bounded from below by the
installed (floor) typer when that typer depends on click (typer 0.26+ carries its own).
With --versions, the versions installed."""
from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

TRANSITIVE = ("click",)          # the list: typer, click, rich, networkx, z3-solver
TESTED = ("typer", "click", "rich", "networkx", "z3-solver")


def floors(requirements: list[str], only: tuple[str, ...] | None = None) -> list[str]:
    out = []
    for req in requirements:
        req = req.split(";")[0].split("#")[0].strip()          # (no environment markers used)
        m = re.match(r"([A-Za-z0-9_.-]+)\s*(?:\[[^]]*\])?\s*\(?(.*?)\)?$", req)
        name, specs = (m.group(1), m.group(2)) if m else (req, "")
        if only is not None and name.lower() not in only:
            continue
        low = re.search(r">=\s*([0-9][^,\s)]*)", specs)
        if low is None:
            sys.exit(f"floors: no '>=' floor in the requirement {req!r}; every dependency needs one")
        out.append(f"{name}=={low.group(1)}")
    return out


def main() -> None:
    if sys.argv[1:] == ["--versions"]:
        found = []
        for name in TESTED:
            try:
                found.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                pass
        print("versions:", ", ".join(found))
    elif sys.argv[1:] == ["--transitive"]:
        reqs = [r for d in metadata.distributions() for r in (d.requires or ())
                if d.metadata["Name"].lower() in ("typer",) and "extra ==" not in r]
        print("\n".join(floors(reqs, TRANSITIVE)))
    else:
        pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
        print("\n".join(floors(pyproject["project"]["dependencies"])))


if __name__ == "__main__":
    main()
