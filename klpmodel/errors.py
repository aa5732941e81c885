"""User-facing errors: one line, exit code 2, never a traceback."""
from __future__ import annotations


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
        return where + self.message


class InternalError(Exception):
    """A bug in klpmodel itself (e.g. the solver's trace does not replay). Loud, exit code 3."""
