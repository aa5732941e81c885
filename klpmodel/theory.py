"""`klpmodel prove-theory DIR`: run the theorem files of proofs/.

A theorem file is a Python module with a module-level `THEOREM = Theorem(...)`: its name,
the statement in plain words, the formal statement, and `check()`, which builds the Z3
encoding and returns an `Outcome`. Two kinds:

* `kind = "valid"`: the claim holds for every model of the encoding; `check` shows that
  its negation is unsatisfiable ("proved"), or returns the model that refutes it
  ("refuted", with the model as the witness text);
* `kind = "witness"`: the claim is that something exists; `check` returns a model Z3
  produced ("proved", the model is the witness), or "refuted" when none exists.

The runner itself knows nothing about livepatch.
"""
from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class Outcome:
    verdict: str                 # proved | refuted | unknown
    witness: str = ""            # the model (witness theorems, or what refutes a valid one)
    detail: str = ""             # e.g. the inductive invariant found


@dataclass(frozen=True)
class Theorem:
    name: str
    kind: str                    # valid | witness
    statement: str
    formal: str
    check: Callable[[], Outcome]


@dataclass(frozen=True)
class Checked:
    path: str
    theorem: Theorem
    outcome: Outcome
    seconds: float


def load(path: Path) -> Theorem:
    spec = importlib.util.spec_from_file_location(f"klpmodel_theorem_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UserError("cannot load this file as Python; a theorem file is a .py module", path=str(path))
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except SyntaxError as e:
        raise UserError(f"{e.msg}; fix the Python syntax", path=str(path), line=e.lineno) from None
    except Exception as e:          # a theorem file is user input: one line, not a traceback
        raise _file_error(path, e, "loading it") from None
    th = getattr(mod, "THEOREM", None)
    if not isinstance(th, Theorem):
        raise UserError("no THEOREM = klpmodel.theory.Theorem(...) at module level; define one", path=str(path))
    if th.kind not in ("valid", "witness"):
        raise UserError(f"THEOREM.kind is '{th.kind}'; use 'valid' or 'witness'", path=str(path))
    return th


def _file_error(path: Path, e: Exception, doing: str) -> UserError:
    import traceback

    line = next((f.lineno for f in reversed(traceback.extract_tb(e.__traceback__))
                 if Path(f.filename).resolve() == path.resolve()), None)
    return UserError(f"{type(e).__name__} while {doing}: {e}; fix the theorem file", path=str(path), line=line)


def files(where: Path) -> list[Path]:
    if where.is_file():
        return [where]
    if not where.is_dir():
        raise UserError("no such file or directory; give proofs/ or one theorem file", path=str(where))
    out = sorted(p for p in where.glob("*.py") if not p.name.startswith("_"))
    if not out:
        raise UserError("no theorem files (*.py) here; give proofs/", path=str(where))
    return out


def run(where: Path) -> list[Checked]:
    out = []
    for path in files(where):
        th = load(path)
        start = time.perf_counter()
        try:
            outcome = th.check()
        except Exception as e:
            raise _file_error(path, e, "checking the theorem") from None
        if not isinstance(outcome, Outcome) or outcome.verdict not in ("proved", "refuted", "unknown"):
            raise UserError("check() must return Outcome('proved' | 'refuted' | 'unknown', ...)", path=str(path))
        out.append(Checked(str(path), th, outcome, time.perf_counter() - start))
    return out


def text(results: list[Checked], stats: bool = False) -> str:
    lines = []
    for r in results:
        th, o = r.theorem, r.outcome
        lines.append(f"{o.verdict.upper()} {th.name} ({r.path})" + (f" [{r.seconds:.2f} s]" if stats else ""))
        lines += [f"  {x}" for x in th.statement.strip().splitlines()]
        if o.witness:
            lines.append("  witness:" if (th.kind == "witness" and o.verdict == "proved") else "  refuted by:")
            lines += [f"    {x}" for x in o.witness.strip().splitlines()]
        if o.detail:
            lines += [f"  {x}" for x in o.detail.strip().splitlines()]
        lines.append("")
    ok = sum(1 for r in results if r.outcome.verdict == "proved")
    lines.append(f"{ok} of {len(results)} theorems proved")
    return "\n".join(lines) + "\n"


def sibling(path: str, name: str):
    """Import the helper module `name`.py next to a theorem file (proofs/_klp.py)."""
    import sys

    full = Path(path).with_name(name + ".py")
    key = f"klpmodel_theory_{name}_{abs(hash(str(full.resolve())))}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, full)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod
