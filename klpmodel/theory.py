"""`klpmodel prove-theory DIR`: run the theorem files of proofs/.

A theorem file is a Python module with a module-level `THEOREM = Theorem(...)`: its name,
the statement in plain words, and `check()`, which builds the Z3 encoding and returns an
`Outcome` (the shipped theorems state the claim formally in a comment above it). Two kinds:

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
from types import ModuleType

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
    lines.append(f"{ok} of {len(results)} theorem{'s' if len(results) != 1 else ''} proved")
    return "\n".join(lines) + "\n"


def sibling(path: str, name: str) -> ModuleType:
    """Import the helper module `name`.py next to a theorem file (proofs/_klp.py)."""
    import sys

    full = Path(path).with_name(name + ".py")
    key = f"klpmodel_theory_{name}_{abs(hash(str(full.resolve())))}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, full)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load {full} as Python; the helper {name}.py must sit next to the theorem file", path=path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------ invariants in words

def invariant_lines(formula, names: dict[str, str], values: dict[str, dict[int, str]] | None = None,
                    flags: frozenset[str] = frozenset()) -> list[str]:
    """An invariant Z3 found (a conjunction of clauses over integer and boolean variables)
    as one line per conjunct, in the theorem's own variable names: `never: A and B` for a
    clause of negations, `if A then B` for one with a single positive literal, bounds on
    one variable merged (`mode in 4..5`), and `values` naming the values of a variable
    (`mode = load T over E`), `flags` the 0/1 variables (`v >= 1` reads `v`). What it cannot
    read is printed as Z3 prints it, renamed."""
    import z3

    named = _Named(values or {}, frozenset(names.get(f, f) for f in flags))
    conjuncts = _flatten(formula, z3.is_and)
    return [_clause(c, names, named) for c in conjuncts]


@dataclass(frozen=True)
class _Named:
    """How the invariant's variables read: the names of their values, and which are flags."""
    values: dict[str, dict[int, str]]
    flags: frozenset[str]


def _flatten(e, test) -> list:
    return [x for c in e.children() for x in _flatten(c, test)] if test(e) else [e]


def _linear(e, names) -> tuple[dict[str, int], int] | None:
    """e as ({variable: coefficient}, constant), or None if it is not linear."""
    import z3

    if z3.is_int_value(e):
        return {}, e.as_long()
    if z3.is_const(e) and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
        return {names.get(str(e), str(e)): 1}, 0
    if z3.is_add(e):
        terms: dict[str, int] = {}
        k = 0
        for c in e.children():
            sub = _linear(c, names)
            if sub is None:
                return None
            for v, a in sub[0].items():
                terms[v] = terms.get(v, 0) + a
            k += sub[1]
        return {v: a for v, a in terms.items() if a}, k
    if z3.is_mul(e) and len(e.children()) == 2:
        a, b = e.children()
        la, lb = _linear(a, names), _linear(b, names)
        if la is not None and lb is not None:
            if not la[0]:
                return {v: la[1] * x for v, x in lb[0].items()}, la[1] * lb[1]
            if not lb[0]:
                return {v: lb[1] * x for v, x in la[0].items()}, lb[1] * la[1]
    if z3.is_app_of(e, z3.Z3_OP_UMINUS):
        sub = _linear(e.children()[0], names)
        return None if sub is None else ({v: -a for v, a in sub[0].items()}, -sub[1])
    return None


def _atom(e, names) -> tuple[dict[str, int], str, int] | None:
    """A comparison as (terms, op, bound) meaning sum(terms) op bound, op in >=, <=, =."""
    import z3

    for test, op in ((z3.is_ge, ">="), (z3.is_le, "<="), (z3.is_gt, ">"), (z3.is_lt, "<"), (z3.is_eq, "=")):
        if test(e) and len(e.children()) == 2 and e.children()[0].sort() == z3.IntSort():
            lhs, rhs = (_linear(c, names) for c in e.children())
            if lhs is None or rhs is None:
                return None
            terms = dict(lhs[0])
            for v, a in rhs[0].items():
                terms[v] = terms.get(v, 0) - a
            terms = {v: a for v, a in terms.items() if a}
            bound = rhs[1] - lhs[1]
            if op == ">":
                op, bound = ">=", bound + 1
            elif op == "<":
                op, bound = "<=", bound - 1
            return terms, op, bound
    return None


def _negate(atom):
    terms, op, bound = atom
    if op == ">=":
        return terms, "<=", bound - 1
    if op == "<=":
        return terms, ">=", bound + 1
    return terms, "!=", bound


def _literal(e, names) -> tuple[str, object]:
    """('atom', (terms, op, bound)) for an integer comparison (negations folded in),
    ('bool', (name, value)) for a boolean variable, ('raw', text) otherwise."""
    import z3

    neg = False
    while z3.is_not(e):
        neg, e = not neg, e.children()[0]
    a = _atom(e, names)
    if a is not None:
        return "atom", _negate(a) if neg else a
    if z3.is_const(e) and e.sort() == z3.BoolSort() and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
        return "bool", (names.get(str(e), str(e)), not neg)
    text = _renamed(str(e), names)
    return "raw", f"not ({text})" if neg else text


def _renamed(text: str, names) -> str:
    import re

    return re.sub(r"\b[A-Za-z_][A-Za-z0-9_']*\b", lambda m: names.get(m.group(0), m.group(0)), text)


def _atom_text(atom, named: _Named) -> str:
    terms, op, bound = atom
    if len(terms) == 1:
        (v, a), = terms.items()
        if a < 0:
            a, bound, op = -a, -bound, {">=": "<=", "<=": ">=", "=": "=", "!=": "!="}[op]
        values = named.values
        if a == 1 and v in named.flags:
            yes = (op == ">=" and bound == 1) or (op == "=" and bound == 1) or (op == "!=" and bound == 0)
            no = (op == "<=" and bound == 0) or (op == "=" and bound == 0) or (op == "!=" and bound == 1)
            if yes or no:
                return v if yes else f"not {v}"
        if a == 1:
            if op in ("=", "!=") and bound in values.get(v, {}):
                return f"{v} {'is' if op == '=' else 'is not'} {values[v][bound]}"
            return f"{v} {op} {bound}"
        return f"{a}*{v} {op} {bound}"
    if len(terms) == 2 and sorted(terms.values()) == [-1, 1]:
        x = next(v for v, a in terms.items() if a == 1)
        y = next(v for v, a in terms.items() if a == -1)
        if op == "<=":                                   # x - y <= b  is  y - x >= -b
            x, y, op, bound = y, x, ">=", -bound
        if op == ">=":
            if bound in (0, 1):
                return f"{x} {'>=' if bound == 0 else '>'} {y}"
            return f"{x} >= {y} {'+' if bound > 0 else '-'} {abs(bound)}"
        return f"{x} {'=' if op == '=' else '!='} {y}" + (f" {'+' if bound > 0 else '-'} {abs(bound)}" if bound else "")
    lhs = " + ".join(f"{a}*{v}" if a != 1 else v for v, a in terms.items()).replace("+ -", "- ")
    return f"{lhs} {op} {bound}"


def _conjunction(lits, named: _Named) -> str:
    """Literals that hold together, bounds on one variable merged: `mode in 4..5`."""
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    out: list[str] = []
    order: list[str] = []
    for kind, x in lits:
        if kind == "atom" and len(x[0]) == 1 and next(iter(x[0].values())) == 1 and x[1] in (">=", "<=") \
                and next(iter(x[0])) not in named.flags:
            v = next(iter(x[0]))
            (lo if x[1] == ">=" else hi)[v] = max(lo.get(v, x[2]), x[2]) if x[1] == ">=" else min(hi.get(v, x[2]), x[2])
            if v not in order:
                order.append(v)
                out.append(v)                    # placeholder, filled below
        elif kind == "atom":
            out.append(_atom_text(x, named))
        elif kind == "bool":
            out.append(x[0] if x[1] else f"not {x[0]}")
        else:
            out.append(str(x))
    for v in order:
        a, b = lo.get(v), hi.get(v)
        if a is not None and b is not None:
            names = named.values.get(v, {})
            if a == b:
                text = f"{v} is {names[a]}" if a in names else f"{v} = {a}"
            elif all(i in names for i in range(a, b + 1)):
                text = f"{v} in {{" + ", ".join(names[i] for i in range(a, b + 1)) + "}"
            elif a > b:
                text = f"{v} in {a}..{b} (empty)"
            else:
                text = f"{v} in {a}..{b}"
        else:
            text = f"{v} >= {a}" if a is not None else f"{v} <= {b}"
        out[out.index(v)] = text
    return " and ".join(out)


def _clause(e, names, named: _Named) -> str:
    import z3

    lits = [_literal(x, names) for x in _flatten(e, z3.is_or)]
    if len(lits) == 1:
        return _conjunction(lits, named)
    negated = [x for x in _flatten(e, z3.is_or) if z3.is_not(x)]
    if len(negated) == len(lits):                      # not (A and B and ...)
        return "never: " + _conjunction([_literal(x.children()[0], names) for x in negated], named)
    if len(lits) - len(negated) == 1:                  # A and B => C
        pos = next(_literal(x, names) for x in _flatten(e, z3.is_or) if not z3.is_not(x))
        return (f"if {_conjunction([_literal(x.children()[0], names) for x in negated], named)} "
                f"then {_conjunction([pos], named)}")
    return " or ".join(_conjunction([lit], named) for lit in lits)
