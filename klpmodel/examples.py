"""The files klpmodel ships besides its code: the example specs, the kernel selftest
scenarios (`conformance`), the theorems (`prove-theory`) and the JSON Schemas of the reports.

In a checkout they are read where they are (specs/, proofs/, docs/schemas/); a wheel
carries copies under klpmodel/_data/ (pyproject.toml maps the directories there), so an
installed klpmodel needs no checkout. `klpmodel examples` lists them and copies them out.
"""
from __future__ import annotations

import filecmp
import tomllib
from pathlib import Path

from .errors import InternalError, UserError

_PKG = Path(__file__).resolve().parent
_CHECKOUT = {"specs": "specs", "proofs": "proofs", "schemas": "docs/schemas"}
COPIED = ("specs", "proofs")          # what --copy writes, under these names


def data_dir(kind: str) -> Path:
    """Where the shipped `kind` (specs, proofs or schemas) is: the wheel's copy, else the
    checkout this klpmodel runs from."""
    shipped = _PKG / "_data" / kind
    if shipped.is_dir():
        return shipped
    here = _PKG.parent / _CHECKOUT[kind]
    if here.is_dir() and (_PKG.parent / "pyproject.toml").is_file():
        return here
    raise InternalError(f"this installation of klpmodel has no {kind} (looked in {shipped} and {here}); "
                        f"reinstall klpmodel from its wheel")


def selftests_dir() -> Path:
    return data_dir("specs") / "selftests"


def _files(root: Path) -> list[Path]:
    """The shipped files under root, relative to it (no caches, no hidden files)."""
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
                  and p.suffix in (".toml", ".md", ".py", ".json"))


def _header(path: Path) -> tuple[str, str]:
    """(expected verdict from the `# expect:` lines, the spec's name)."""
    text = path.read_text()
    expect = []
    for line in text.splitlines():
        if not line.startswith("#"):
            if line.strip():
                break
            continue
        body = line.lstrip("#").strip()
        if body.startswith("expect:"):
            words = body[len("expect:"):].split()
            if words[:1] == ["violation"] and len(words) == 3:
                expect.append(f"{words[1]} breaks in {words[2]} operation{'s' if words[2] != '1' else ''}")
            else:
                expect.append(" ".join(words))
    try:
        name = str(tomllib.loads(text).get("name", ""))
    except tomllib.TOMLDecodeError:
        name = ""
    return ", ".join(expect) or "no expected verdict", name


def listing() -> str:
    specs, proofs, schemas = data_dir("specs"), data_dir("proofs"), data_dir("schemas")
    out = ["Example specs (klpmodel verify specs/FILE), with what verify finds at the spec's depth:"]
    rows = [(f"specs/{p.name}", *_header(p)) for p in sorted(specs.glob("*.toml"))]
    w = max((len(r[0]) for r in rows), default=0)
    out += [f"  {f:<{w}}  {n} ({e})" for f, e, n in rows]
    samples = [(f"specs/samples/{p.name}", *_header(p)) for p in sorted((specs / "samples").glob("*.toml"))]
    if samples:                         # (issue 14) kernel and kpatch shadow-variable samples
        w = max(len(r[0]) for r in samples)
        out += ["", "Shadow-variable samples (samples/livepatch, kpatch):"]
        out += [f"  {f:<{w}}  {n} ({e})" for f, e, n in samples]
    selftests = specs / "selftests"
    modules = sorted(selftests.glob("*.toml"))
    scenarios = [p for p in selftests.glob("*/**/*.toml")]
    out += ["", f"Kernel selftest scenarios (klpmodel conformance): specs/selftests/, {len(scenarios)} scenario"
                f"{'s' if len(scenarios) != 1 else ''} of {len(modules)} test module spec{'s' if len(modules) != 1 else ''}"]
    out += [f"  specs/selftests/{p.name}" for p in modules]
    proposal = specs / "selftests-replace-set"
    if proposal.is_dir():                       # (kernel replace-set: the series' updated selftests)
        n = len(list(proposal.glob("*/**/*.toml")))
        out += [f"  specs/selftests-replace-set/: {n} scenario{'s' if n != 1 else ''} the replace_set series v2 "
                f"updates, under kernel replace-set (klpmodel conformance specs/selftests-replace-set)"]
    proposal = specs / "selftests-state-callbacks"
    if proposal.is_dir():                       # (kernel state-callbacks: the series' selftests)
        n = len(list(proposal.glob("*/**/*.toml")))
        out += [f"  specs/selftests-state-callbacks/: {n} scenario{'s' if n != 1 else ''} of the per-state callbacks "
                f"series v1, under kernel state-callbacks (klpmodel conformance specs/selftests-state-callbacks)"]
    theorems = [p for p in sorted(proofs.glob("*.py")) if not p.name.startswith("_")]
    out += ["", "Theorems about the kernel's rules (klpmodel prove-theory proofs/):"]
    out += [f"  proofs/{p.name}" for p in theorems]
    out += ["", f"JSON Schemas of the reports and trace files (not copied): {schemas}"]
    out += [f"  {p.name}" for p in sorted(schemas.glob("*.json"))]
    out += ["", "Copy the specs and theorems into a directory (existing files are never overwritten):",
            "  klpmodel examples --copy DIR"]
    return "\n".join(out) + "\n"


def copy(dest: Path) -> list[Path]:
    """Copy specs/ and proofs/ into dest. A file already there with the same content is left
    alone; if any differs, nothing is written. Returns the files written."""
    if dest.exists() and not dest.is_dir():
        raise UserError(f"--copy {dest}: exists and is not a directory; give a directory")
    todo, clash = [], []
    for kind in COPIED:
        root = data_dir(kind)
        for rel in _files(root):
            src, dst = root / rel, dest / kind / rel
            if dst.is_symlink() or (dst.exists() and not (dst.is_file() and filecmp.cmp(src, dst, shallow=False))):
                clash.append(dst)
            elif not dst.exists():
                todo.append((src, dst))
    if clash:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        one = len(clash) == 1
        raise UserError(f"--copy {dest}: {clash[0]}{more} already exist{'s' if one else ''} with other content; "
                        f"klpmodel never overwrites a file: move {'it' if one else 'them'} away or give another "
                        f"directory (nothing was written)")
    try:
        for src, dst in todo:
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(dst, "xb") as f:          # O_EXCL: never through a link, never over a file
                f.write(src.read_bytes())
    except OSError as e:
        raise UserError(f"--copy {dest}: cannot write: {e.strerror}; give a writable directory") from None
    return [dst for _, dst in todo]
