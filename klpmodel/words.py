"""Numbers with nouns in the reports ("1 operation", "2 operations"), and lists of patch
names in few words ("r01..r04")."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

_IRREGULAR = {"property": "properties", "patch": "patches", "this": "these"}


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`n noun`, the noun in the plural unless n is 1 (or -1)."""
    if abs(n) == 1:
        return f"{n} {noun}"
    if many is None:
        head, _, last = noun.rpartition(" ")
        many = (head + " " if head else "") + _IRREGULAR.get(last, last + "s")
    return f"{n} {many}"


def runs(names: Iterable[str], order: Sequence[str], code: Callable[[str], str] = str) -> str:
    """Names in `order` (the spec's), three or more neighbours as a range: "r01..r04, r07".
    `code` marks each name up (Markdown backticks)."""
    index = {n: k for k, n in enumerate(order)}
    ks = sorted({index[n] for n in names})
    out: list[str] = []
    start = 0
    for k in range(1, len(ks) + 1):
        if k == len(ks) or ks[k] != ks[k - 1] + 1:
            run = ks[start:k]
            if len(run) >= 3:
                out.append(f"{code(order[run[0]])}..{code(order[run[-1]])}")
            else:
                out += [code(order[j]) for j in run]
            start = k
    return ", ".join(out)


def rectangles(pairs: Iterable[tuple[str, str]], order: Sequence[str]) -> list[tuple[list[str], list[str]]]:
    """Ordered pairs (a, b) as a few products A x B: the a's with the same set of b's go
    together. In spec order of their first a; every pair is in exactly one product."""
    index = {n: k for k, n in enumerate(order)}
    by_a: dict[str, set[str]] = {}
    for a, b in pairs:
        by_a.setdefault(a, set()).add(b)
    groups: dict[frozenset[str], list[str]] = {}
    for a in sorted(by_a, key=index.__getitem__):
        groups.setdefault(frozenset(by_a[a]), []).append(a)
    return [(a_s, sorted(b_s, key=index.__getitem__)) for b_s, a_s in groups.items()]


def pairs_text(pairs: Iterable[tuple[str, str]], order: Sequence[str], code: Callable[[str], str] = str) -> str:
    """Ordered pairs in few words: "r05..r08 -> r01..r04; r09 -> r01, r02"."""
    return "; ".join(f"{runs(a, order, code)} -> {runs(b, order, code)}" for a, b in rectangles(pairs, order))
