"""User-facing errors: one line, exit code 2, never a traceback."""
from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """User text as it may be echoed on one line of a terminal: control characters, line and
    paragraph separators (U+2028, U+2029, U+0085) and invisible format characters (bidi
    overrides) are written as escapes; everything else is kept."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or unicodedata.category(ch) == "Zs":     # spaces print as themselves
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
    return "".join(out)


class UserError(Exception):
    """A mistake of the user (bad spec, bad flag). Printed as one line; exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return printable(where + self.message)


class InternalError(Exception):
    """A bug in klpmodel itself (e.g. the solver's trace does not replay). Loud, exit code 3."""


class Stopped(BaseException):
    """The run was stopped before it finished: `--timeout` ran out, or Ctrl-C. A BaseException
    (like KeyboardInterrupt) so that no `except Exception` swallows it; the engines catch it
    and return what they found so far."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
