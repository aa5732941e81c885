"""Numbers with nouns in the reports: "1 operation", "2 operations"."""
from __future__ import annotations

_IRREGULAR = {"property": "properties", "patch": "patches", "this": "these"}


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`n noun`, the noun in the plural unless n is 1 (or -1)."""
    if abs(n) == 1:
        return f"{n} {noun}"
    if many is None:
        head, _, last = noun.rpartition(" ")
        many = (head + " " if head else "") + _IRREGULAR.get(last, last + "s")
    return f"{n} {many}"
