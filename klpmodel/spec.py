"""The spec front end: TOML -> validated, frozen `Spec` with source lines.

The language is the contract in ../shared/design/spec-format.md (documented for users in
docs/spec-format.md). Every mistake raises `UserError` whose text is
`FILE:LINE: what is wrong; what to write instead`.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, NoReturn

from .errors import UserError

CALLBACKS = ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch")
OBJECT_KEYS = CALLBACKS + ("pre_patch_error",)
OPERATIONS = ("load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force", "call")
DEFAULT_OPERATIONS = tuple(op for op in OPERATIONS if op != "force")
FAULTS = ("patching",)      # optional environmental faults (klp_patch_object fails, semantics §16)
# (kernel "state-callbacks") the keys of [states.S]: struct klp_state_callbacks (§A.3) and the flags
STATE_CALLBACKS = CALLBACKS + ("shadow_dtor",)
STATE_FLAGS = ("block_disable", "is_shadow")
STATE_ACTIONS = ("alloc", "free", "save", "restore", "modify", "reset", "take", "copy", "free-prev")
# (klpmodel) shadow variables (semantics §14): klp_shadow_alloc, _get_or_alloc, _get, _free, _free_all,
# and a reference count kept in the variable (get: get_or_alloc and count + 1; put: count - 1, freed at 0)
SHADOW_ACTIONS = ("shadow-alloc", "shadow-get-or-alloc", "shadow-get", "shadow-free", "shadow-free-all", "get", "put")
# (klpmodel) the livepatch module's own init (before klp_enable_patch), its error path when
# klp_enable_patch fails, and its exit (at rmmod)
MODULE_FUNCS = ("init", "init_error", "exit", "code")     # code: the patch's new functions, run by `call`
INIT_EXIT = MODULE_FUNCS[:3]
STATE_PARAMS = ("no_states_param", "block_disable_param")   # (kernel "state-callbacks") set at init from a parameter
CALLERS = ("code", "module code", "sleeps wake")           # where `call FUNC` may stand
MODULE_ACTIONS = ("log", "fail", "maybe-fail", "return", "modify", "reset") + SHADOW_ACTIONS
ERRNOS = {"EPERM": 1, "ENOENT": 2, "EIO": 5, "ENXIO": 6, "E2BIG": 7, "EAGAIN": 11, "ENOMEM": 12,
          "EFAULT": 14, "EBUSY": 16, "EEXIST": 17, "ENODEV": 19, "EINVAL": 22, "ENOSPC": 28,
          "ENOSYS": 38, "ENOTSUPP": 524}
NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")  # \A...\Z: "^...$" let a name end in a newline
DEFAULT_DEPTH = 8


@dataclass(frozen=True)
class Cond:
    """`if|unless prev STATE [cmp N]`: klp_get_prev_state(id) is not NULL [and version cmp N];
    or (klpmodel) `if|unless param NAME`: the module parameter NAME is not 0/false."""
    negate: bool
    state: str                       # the state, or the parameter's name when `param`
    cmp: str | None = None
    value: int | None = None
    param: bool = False
    shadow: str | None = None        # (klpmodel) "exists": `if shadow SV`; "count": `if count SV cmp N`
    obj: str | None = None           # (klpmodel) `if shadow SV on OBJ`: the named parent object


@dataclass(frozen=True)
class Stmt:
    action: str              # alloc, free, ..., fail, maybe-fail, return, log
    arg: str | None          # state name (state actions), log text
    errno: int | None        # fail / maybe-fail: negative errno
    cond: Cond | None
    text: str                # as written
    line: int                # line in the spec file
    fresh: bool = False      # (klpmodel) `shadow-alloc SV on new`: on an object the code just created
    value: str | None = None  # (klpmodel) `call FUNC "TEXT"`: the text argument (the C function's context string)
    obj: str | None = None   # (klpmodel) `... SV on OBJ`: the named parent object ([objects]); None: the abstract one
    dtor: bool = False       # (klpmodel) `shadow-free[-all] SV ... with dtor`: a destructor is passed
    expect: str | None = None    # (klpmodel, conformance aid) `expect null|data`: the test module's check line
    or_fail: int | None = None   # (klpmodel) `or fail -ERRNO`: a NULL result makes the function return ERRNO


@dataclass(frozen=True)
class Obj:
    name: str                                    # "vmlinux" or a [modules] name
    callbacks: tuple[tuple[str, tuple[Stmt, ...]], ...]
    line: int
    funcs: tuple[str, ...] = ()                  # (klpmodel) functions this object patches

    def cb(self, name: str) -> tuple[Stmt, ...]:
        for key, stmts in self.callbacks:
            if key == name:
                return stmts
        return ()


@dataclass(frozen=True)
class Patch:
    name: str
    replace: bool
    states: tuple[tuple[str, int], ...]          # state name -> klp_state.version, in file order
    uses: tuple[str, ...]
    objects: tuple[Obj, ...]
    line: int
    params: tuple[tuple[str, int], ...] = ()     # (klpmodel) module parameters and their defaults
    replace_param: str | None = None             # (klpmodel) klp_patch.replace is this parameter at load
    shadows: tuple[tuple[str, str], ...] = ()    # (klpmodel) the shadow variables it uses, with their layouts
    shadow_uses: tuple[str, ...] = ()            # (klpmodel) shadow variables its code needs while enabled
    init: tuple[Stmt, ...] = ()                  # (klpmodel) the module's init, before klp_enable_patch
    init_error: tuple[Stmt, ...] = ()            # (klpmodel) init's error path when klp_enable_patch fails
    exit: tuple[Stmt, ...] = ()                  # (klpmodel) the module's exit, at rmmod
    code: tuple[tuple[str, tuple[Stmt, ...]], ...] = ()   # (klpmodel) FUNC -> what one call of its new version does
    replace_set: int = 0                         # (kernel "replace-set") klp_patch.replace_set
    written: tuple[tuple[str, int], ...] = ()    # the profile-dependent keys written (replace, replace_set), with their lines
    no_states_param: str | None = None           # (kernel "state-callbacks") set at init: patch.states = NULL
    block_disable_param: tuple[tuple[str, str], ...] = ()   # (kernel "state-callbacks") state -> parameter read at init

    def module_func(self, name: str) -> tuple[Stmt, ...]:
        """The statements of the module's own init, init_error or exit, or of its new function `name`."""
        fixed = {"init": self.init, "init_error": self.init_error, "exit": self.exit}
        return fixed[name] if name in fixed else dict(self.code).get(name, ())

    def module_funcs(self) -> tuple[str, ...]:
        """init, init_error, exit and the new functions of `code`, in that order."""
        return INIT_EXIT + tuple(f for f, _ in self.code)

    def version(self, state: str) -> int | None:
        for s, v in self.states:
            if s == state:
                return v
        return None


@dataclass(frozen=True)
class StateDecl:
    name: str
    id: int
    line: int
    # (kernel "state-callbacks", proposals.md §A.3) the per-state callbacks, block_disable, is_shadow
    callbacks: tuple[tuple[str, tuple[Stmt, ...]], ...] = ()
    block_disable: bool = False
    is_shadow: bool = False
    written: tuple[tuple[str, int], ...] = ()    # the profile-dependent keys written, with their lines

    def cb(self, name: str) -> tuple[Stmt, ...]:
        return dict(self.callbacks).get(name, ())


@dataclass(frozen=True)
class ShadowDecl:
    """(klpmodel) A shadow variable id (semantics §14): `parent` is the target module whose
    objects it is attached to (None: objects of vmlinux, which never go away)."""
    name: str
    id: int
    parent: str | None
    line: int


@dataclass(frozen=True)
class Module:
    name: str
    loaded: bool
    init: tuple[Stmt, ...]
    exit: tuple[Stmt, ...]
    line: int
    params: tuple[tuple[str, int], ...] = ()     # (klpmodel) module parameters and their defaults
    sleeps: tuple[str, str] | None = None        # (klpmodel) (function, param): a task sleeps in it while param
    code: tuple[tuple[str, tuple[Stmt, ...]], ...] = ()   # (klpmodel) FUNC -> the log lines of one call of the original
    wake: tuple[Stmt, ...] = ()                  # (klpmodel) sleeps.wake: what the sleeping task does when woken
    shadows: tuple[tuple[str, str], ...] = ()    # (klpmodel) the shadow variables its init/exit use, with their layouts
    init_error: tuple[Stmt, ...] = ()            # (klpmodel) what its init does after a statement failed (goto out)
    echoes: bool = False                         # (klpmodel, conformance aid) echoes_shadow_calls: its shadow API
                                                 # calls print as test_klp_shadow_vars.c's wrappers print them

    def func(self, name: str) -> tuple[Stmt, ...]:
        """The statements of its init, init_error or exit."""
        return {"init": self.init, "init_error": self.init_error, "exit": self.exit}[name]


@dataclass(frozen=True)
class Spec:
    path: str
    name: str
    kernel: str
    depth: int
    operations: tuple[str, ...]
    states: tuple[StateDecl, ...]
    modules: tuple[Module, ...]
    patches: tuple[Patch, ...]
    digest: str = field(default="")
    faults: tuple[str, ...] = ()     # (klpmodel) optional faults explored: "patching"
    file_kernel: str | None = None   # the file's `kernel` when --kernel chose another profile
    shadows: tuple[ShadowDecl, ...] = ()   # (klpmodel) [shadows.NAME]
    also_check: tuple[str, ...] = ()       # (klpmodel) [check] properties: opt-in properties checked by default
    objects: tuple[tuple[str, str], ...] = ()   # (klpmodel) [objects]: named parent objects of shadow variables -> owner

    @property
    def uses_shadows(self) -> bool:
        """(klpmodel) The spec declares shadow variables or a livepatch module's init/exit:
        the shadow properties are then checked by default."""
        return bool(self.shadows) or any(p.init or p.init_error or p.exit or p.code for p in self.patches)

    def owner(self, obj: str) -> str:
        """(klpmodel) The owner of named object `obj`: "vmlinux" or a target module."""
        return dict(self.objects)[obj]

    def patch(self, name: str) -> Patch:
        return next(p for p in self.patches if p.name == name)


# --------------------------------------------------------------------------- locating lines

# Limits on a spec, checked before tomllib sees it (docs/spec-format.md, "Limits"): tomllib
# is recursive (deep nesting ends in a RecursionError) and quadratic in the parts of a
# dotted key, and Python refuses integers of more than 4,300 digits. A real spec is a few
# kilobytes, nests three deep and has keys of four parts.
MAX_SPEC_BYTES = 1 << 20
MAX_NESTING = 32            # arrays and inline tables inside one another
MAX_KEY_PARTS = 16          # parts of one dotted key or table header
MAX_KEY_CHARS = 256         # characters of one key (all its parts)
MAX_SCALAR_CHARS = 64       # characters of one number, boolean or date
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR = _BARE | frozenset("+.:")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


def _unescape(raw: str) -> str:
    """The value of a basic-string key (escapes as TOML writes them)."""
    def one(m: re.Match) -> str:
        e = m.group(1)
        if e[0] in "uU":
            try:
                return chr(int(e[1:], 16))
            except (ValueError, OverflowError):
                return ""
        return _ESCAPES.get(e, e)
    return re.sub(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", one, raw)


class Locator:
    """Maps TOML key paths to source lines (tomllib keeps no positions), and refuses a text
    past the limits above before tomllib parses it.

    Paths use the same shape as the parsed data: ("patch", 1, "objects", "vmlinux",
    "post_patch", 2) is the third statement of the second [[patch]]'s vmlinux post_patch;
    keys inside inline tables and the parts of dotted keys have their own lines. One pass
    over the text, linear in its length; lines count "\\n" only, as TOML (and tomllib) do.
    On text that is not TOML it records what it can and goes on at the next line: tomllib
    reports the syntax error afterwards.
    """

    def __init__(self, text: str, path: str = "<spec>"):
        self.lines: dict[tuple, int] = {}
        self.src = text
        self.n = len(text)
        self.path = path
        self.i = 0
        self.ln = 1
        self.arrays: dict[tuple, int] = {}
        self._document()

    def line(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    # ---- limits
    def _limit(self, message: str) -> NoReturn:
        raise UserError(message, path=self.path, line=self.ln)

    # ---- characters
    def _ws(self) -> None:
        src, n, i = self.src, self.n, self.i
        while i < n and src[i] in " \t\r":
            i += 1
        self.i = i

    def _comment(self) -> None:
        if self.i < self.n and self.src[self.i] == "#":
            j = self.src.find("\n", self.i)
            self.i = self.n if j < 0 else j

    def _blank(self) -> None:
        """Spaces, comments and newlines (between the elements of an array)."""
        while True:
            self._ws()
            self._comment()
            if self.i < self.n and self.src[self.i] == "\n":
                self.i += 1
                self.ln += 1
            else:
                return

    def _to_eol(self) -> None:
        j = self.src.find("\n", self.i)
        self.i = self.n if j < 0 else j

    def _record(self, path: tuple, line: int, base: int = 0) -> None:
        """The line of path and of each prefix longer than `base` parts (dotted keys)."""
        for k in range(max(base, 1), len(path) + 1):
            self.lines.setdefault(path[:k], line)

    # ---- keys and strings
    def _key(self) -> tuple | None:
        """A (dotted) key at the cursor, or None when there is none."""
        src, n = self.src, self.n
        parts: list[str] = []
        start = self.i
        while True:
            self._ws()
            c = src[self.i] if self.i < n else "\0"
            if c in "\"'":
                s = self._string(key=True)
                if s is None:
                    return None
                parts.append(s)
            else:
                j = self.i
                while j < n and src[j] in _BARE:
                    j += 1
                    if j - start > MAX_KEY_CHARS:
                        break
                if j == self.i:
                    return None
                parts.append(src[self.i:j])
                self.i = j
            if self.i - start > MAX_KEY_CHARS:
                self._limit(f"a key of more than {MAX_KEY_CHARS} characters; write a shorter key "
                            f"(spec keys are names such as patch, objects, vmlinux, pre_patch)")
            if len(parts) > MAX_KEY_PARTS:
                self._limit(f"a dotted key or table header of more than {MAX_KEY_PARTS} parts; write at most "
                            f"{MAX_KEY_PARTS} (a spec needs at most four, e.g. [patch.objects.vmlinux])")
            self._ws()
            if self.i < n and src[self.i] == ".":
                self.i += 1
                continue
            return tuple(parts)

    def _string(self, key: bool = False) -> str | None:
        """Skip the string at the cursor; return its value for a key (None: not closed)."""
        src, n, i = self.src, self.n, self.i
        q = src[i]
        if not key and src.startswith(q * 3, i):         # multi-line
            j = i + 3
            while j < n:
                c = src[j]
                if c == "\\" and q == '"':
                    if j + 1 < n and src[j + 1] == "\n":
                        self.ln += 1
                    j += 2
                    continue
                if c == q and src.startswith(q * 3, j):
                    j += 3
                    k = 0
                    while k < 2 and j < n and src[j] == q:   # up to two quotes end the content
                        j += 1
                        k += 1
                    self.i = j
                    return None
                if c == "\n":
                    self.ln += 1
                j += 1
            self.i = n
            return None
        j = i + 1
        while j < n:
            c = src[j]
            if c == "\\" and q == '"':
                j += 2
                continue
            if c == q:
                self.i = j + 1
                raw = src[i + 1:j]
                return _unescape(raw) if q == '"' else raw
            if c == "\n":
                break
            j += 1
        self.i = j
        return None

    def _scalar(self) -> bool:
        """Skip a number, boolean or date at the cursor; False when there is none."""
        src, n, i = self.src, self.n, self.i
        j = i
        while j < n:
            c = src[j]
            if c in _SCALAR:
                j += 1
            elif c == " " and j - i == 10 and j + 1 < n and src[j + 1].isdigit() and src[i + 4:i + 5] == "-":
                j += 1                                   # 1979-05-27 07:32:00: a date, a space, a time
            else:
                break
            if j - i > MAX_SCALAR_CHARS:
                self._limit(f"a number or other bare value of more than {MAX_SCALAR_CHARS} characters; klpmodel's "
                            f"integers fit 64 bits: write one of at most 20 digits")
        self.i = j
        return j > i

    # ---- the document
    def _document(self) -> None:
        src, n = self.src, self.n
        table: tuple = ()
        while self.i < n:
            self._ws()
            self._comment()
            if self.i >= n:
                break
            c = src[self.i]
            if c == "\n":
                self.i += 1
                self.ln += 1
                continue
            line = self.ln
            if c == "[":
                many = src.startswith("[[", self.i)
                self.i += 2 if many else 1
                parts = self._key()
                if parts is not None and src.startswith("]]" if many else "]", self.i):
                    self.i += 2 if many else 1
                    if many:
                        arr = self._resolve(parts[:-1]) + (parts[-1],)
                        self.arrays[arr] = self.arrays.get(arr, -1) + 1
                        table = arr + (self.arrays[arr],)
                    else:
                        table = self._resolve(parts)
                    self._record(table, line)
                self._rest()
                continue
            parts = self._key()
            if parts is None or not src.startswith("=", self.i):
                self._to_eol()
                continue
            self.i += 1
            path = table + parts
            self._record(path, line, len(table) + 1)
            self._value(path)
            self._rest()

    def _rest(self) -> None:
        """The end of a line: spaces and a comment; anything else is skipped (tomllib says why)."""
        self._ws()
        self._comment()
        if self.i < self.n and self.src[self.i] != "\n":
            self._to_eol()

    def _resolve(self, parts: tuple) -> tuple:
        out: tuple = ()
        for p in parts:
            out = out + (p,)
            if out in self.arrays:
                out = out + (self.arrays[out],)
        return out

    def _value(self, path: tuple) -> None:
        """The value of `path` at the cursor, with the lines of every array element and
        inline-table key inside it. Iterative (an explicit stack): no recursion limit."""
        src, n = self.src, self.n
        stack: list[list] = []          # ["a", path, index] or ["t", path]
        cur = path
        while True:
            # one value at `cur`
            self._ws()
            c = src[self.i] if self.i < n else "\0"
            if c in "[{":
                if len(stack) >= MAX_NESTING:
                    self._limit(f"arrays and inline tables nested more than {MAX_NESTING} deep; write a flatter "
                                f"value (a spec nests at most three deep, e.g. objects = {{ vmlinux = {{ pre_patch = [...] }} }})")
                self.i += 1
                if c == "[":
                    stack.append(["a", cur, 0])
                    self._blank()
                    if self.i < n and src[self.i] == "]":
                        self.i += 1
                        stack.pop()
                    else:
                        cur = cur + (0,)
                        self._record(cur, self.ln, len(cur))
                        continue
                else:
                    stack.append(["t", cur])
                    self._ws()
                    if self.i < n and src[self.i] == "}":
                        self.i += 1
                        stack.pop()
                    else:
                        key = self._inline_key(stack[-1][1])
                        if key is None:
                            return
                        cur = key
                        continue
            elif c in "\"'":
                self._string()
            elif not self._scalar():
                return
            # after a value: the separators and closing brackets that follow it
            while True:
                if not stack:
                    return
                top = stack[-1]
                if top[0] == "a":
                    self._blank()
                    c = src[self.i] if self.i < n else "\0"
                    if c == ",":
                        self.i += 1
                        self._blank()
                        if self.i < n and src[self.i] == "]":
                            self.i += 1
                            stack.pop()
                            continue
                        top[2] += 1
                        cur = top[1] + (top[2],)
                        self._record(cur, self.ln, len(cur))
                        break
                    if c == "]":
                        self.i += 1
                        stack.pop()
                        continue
                    return
                self._ws()
                c = src[self.i] if self.i < n else "\0"
                if c == ",":
                    self.i += 1
                    key = self._inline_key(top[1])
                    if key is None:
                        return
                    cur = key
                    break
                if c == "}":
                    self.i += 1
                    stack.pop()
                    continue
                return

    def _inline_key(self, base: tuple) -> tuple | None:
        """`key =` inside an inline table: the value's path (None: not TOML here)."""
        line = self.ln
        parts = self._key()
        if parts is None or not self.src.startswith("=", self.i):
            return None
        self.i += 1
        path = base + parts
        self._record(path, line, len(base) + 1)
        return path


# --------------------------------------------------------------------------- loading


# Ranges of the spec's numbers: the C types they stand for (klpmodel's encodings size
# themselves from the values, within these ranges).
MAX_ID = (1 << 64) - 1             # klp_state.id: unsigned long
MAX_VERSION = (1 << 32) - 1        # klp_state.version: unsigned int
PARAM_MIN, PARAM_MAX = -(1 << 63), (1 << 64) - 1     # a module parameter: at most a long / unsigned long
MAX_ERRNO = 4095                   # include/linux/err.h
MAX_DEPTH = 1_000_000
MAX_NAME = 55                      # MODULE_NAME_LEN - 1 on 64-bit: the longest module name


def _show(value, limit: int = 60) -> str:
    """A value of the user's as messages quote it: repr, cut to `limit` characters."""
    r = repr(value)
    return r if len(r) <= limit else r[:limit - 5] + "...'" if r[:1] in "'\"" else r[:limit - 3] + "..."


_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")


def _plain(text: str) -> bool:
    """Text that stays one line wherever it goes (a statement, a kernel log line, a shell
    string): no line break of any kind (those str.splitlines() splits at) and no NUL. Other
    control characters may stand in a log text (a module may print them); messages escape
    them (errors.printable)."""
    return _BREAKS.isdisjoint(text)


def _header(where: tuple) -> str:
    return ".".join(str(p) for p in where if isinstance(p, str))


class _Loader:
    def __init__(self, path: str, text: str, loc: Locator | None = None):
        self.path = path
        self.loc = loc or Locator(text, path)

    def err(self, where: tuple, message: str) -> NoReturn:
        raise UserError(message, path=self.path, line=self.loc.line(where) or 1)

    def table(self, where: tuple, value, what: str) -> dict:
        if not isinstance(value, dict):
            self.err(where, f"{what} must be a table, not {_show(value)}; write it as a table, e.g. [{_header(where)}]")
        return value

    def keys(self, where: tuple, value: dict, allowed: tuple[str, ...], what: str):
        import difflib

        for k in value:
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.err(where + (k,), f"unknown key {_show(k)} in {what}; {hint}allowed keys: {', '.join(allowed)}")

    def name(self, where: tuple, value, what: str) -> str:
        if not isinstance(value, str) or not NAME_RE.fullmatch(value) or len(value) > MAX_NAME:
            long = isinstance(value, str) and NAME_RE.fullmatch(value) is not None
            self.err(where, f"{what} {_show(value)} is not a valid name{' (too long)' if long else ''}; use at most "
                            f"{MAX_NAME} letters, digits and '_', starting with a letter or '_', as the kernel "
                            f"takes for a module name (e.g. \"lp_v1\")")
        return value

    def boolean(self, where: tuple, value, what: str) -> bool:
        if not isinstance(value, bool):
            self.err(where, f"{what} must be true or false, not {_show(value)}; write {what} = true or {what} = false")
        return value

    def text(self, where: tuple, value: str, what: str) -> str:
        if not _plain(value):
            self.err(where, f"{what} {_show(value)} holds a line break or a NUL character; write it on one line")
        return value

    def integer(self, where: tuple, value, what: str, lo: int, hi: int, example: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.err(where, f"{what} must be an integer from {lo} to {hi}, not {_show(value)}; e.g. {example}")
        return value

    # ---- top level
    def load(self, data: dict) -> Spec:
        self.keys((), data, ("name", "kernel", "check", "states", "modules", "shadows", "objects", "patch"),
                  "the top level")
        name = data.get("name", Path(self.path).stem)
        if not isinstance(name, str):
            self.err(("name",), f"name must be a string, not {_show(name)}; write name = \"my series\"")
        if "name" in data:
            self.text(("name",), name, "name")
        kernel = data.get("kernel", "mainline")
        from .kernel import PROFILES  # (the profiles are rules: they live with kernel.py)
        if not isinstance(kernel, str) or kernel not in PROFILES:
            self.err(("kernel",), f"unknown kernel profile {_show(kernel)}; write one of: {', '.join(PROFILES)} "
                                  f"('klpmodel profiles' says what each is), or leave it out for mainline")
        depth, operations, faults, also = self.check(data.get("check", {}))
        states = self.states(data.get("states", {}))
        module_names = self.module_names(data.get("modules", {}))
        shadows = self.shadows(data.get("shadows", {}), set(module_names), {s.name for s in states})
        self.shadow_names = {sv.name for sv in shadows}
        self.objects = self.named_objects(data.get("objects", {}), module_names)
        modules = self.modules(data.get("modules", {}))
        patches = self.patches(data.get("patch", []), {s.name for s in states}, {m.name for m in modules},
                               bool(modules))
        states = self.state_callbacks(data.get("states", {}), states, tuple(sv.name for sv in shadows),
                                      tuple(dict.fromkeys(n for p in patches for n, _ in p.params)))
        self.calls(modules, patches)
        spec = Spec(self.path, name, kernel, depth, operations, states, modules, patches, faults=faults, shadows=shadows,
                    also_check=also, objects=tuple(self.objects.items()))
        self.check_objects(spec)
        return spec

    def module_names(self, value) -> tuple[str, ...]:
        """The [modules] names (checked by `modules`), for what is read before them."""
        return tuple(value) if isinstance(value, dict) else ()

    def named_objects(self, value, module_names: tuple[str, ...]) -> dict[str, str]:
        """(klpmodel) `[objects]`: OBJECT = "vmlinux" | "MODULE", the named parent objects of
        shadow variables and who owns them (an object of a module dies when the module unloads)."""
        value = self.table(("objects",), value, "[objects]")
        out: dict[str, str] = {}
        for name, owner in value.items():
            where = ("objects", name)
            self.name(where, name, "object name")
            if name == "new":
                self.err(where, "'new' is not an object name ('on new' means an object the patch's code just "
                                "created); pick another name")
            if not isinstance(owner, str) or (owner != "vmlinux" and owner not in module_names):
                known = ", ".join(("vmlinux",) + tuple(sorted(module_names)))
                self.err(where, f"object '{name}' must name its owner, \"vmlinux\" or a [modules] name ({known}), "
                                f"not {_show(owner)}; e.g. {name} = \"vmlinux\"")
            out[name] = owner
        return out

    def check_objects(self, spec: Spec) -> None:
        """(klpmodel) One shadow variable lives either on the abstract parent object (its
        statements name no object) or on named objects (every statement says `on OBJ`), not both."""
        first: dict[str, dict[bool, Stmt]] = {}
        lists = [st for p in spec.patches for o in p.objects for _, sts in o.callbacks for st in sts]
        lists += [st for p in spec.patches for f in p.module_funcs() for st in p.module_func(f)]
        lists += [st for mod in spec.modules for f in INIT_EXIT for st in mod.func(f)]
        lists += [st for d in spec.states for _, sts in d.callbacks for st in sts]
        for st in lists:
            for sv, obj in ((st.arg, st.obj) if st.action in SHADOW_ACTIONS and st.action != "shadow-free-all"
                            and not st.fresh else (None, None),
                            (st.cond.state, st.cond.obj) if st.cond is not None and st.cond.shadow is not None
                            else (None, None)):
                if sv is None:
                    continue
                seen = first.setdefault(sv, {})
                seen.setdefault(obj is not None, st)
                if len(seen) == 2:
                    other = seen[obj is None]
                    raise UserError(f"shadow variable '{sv}' is used on named objects and on the abstract parent object "
                                    f"(line {other.line}: {_show(other.text)}); write 'on OBJ' in every statement of "
                                    f"{sv}, or in none", path=self.path, line=st.line)

    def calls(self, modules: tuple[Module, ...], patches: tuple[Patch, ...]) -> None:
        """`call FUNC` names a function some target module's or patch's `code` gives, and no
        function calls itself, directly or through others (the model runs calls inline)."""
        bodies: dict[str, list[tuple[Stmt, ...]]] = {}
        for mod in modules:
            for f, sts in mod.code:
                bodies.setdefault(f, []).append(sts)
        for p in patches:
            for f, sts in p.code:
                bodies.setdefault(f, []).append(sts)
        callers = [sts for mod in modules for sts in (mod.wake, *(b for _, b in mod.code))]
        callers += [b for p in patches for _, b in p.code]
        for sts in callers:
            for st in sts:
                if st.action == "call" and st.arg not in bodies:
                    known = ", ".join(sorted(bodies)) or "(none)"
                    raise UserError(f"{_show(st.text)} calls {st.arg}, which no target module's or patch's code "
                                    f"gives; add {st.arg} = [...] to a [modules.M] code or a [patch.code] "
                                    f"(functions with code: {known})", path=self.path, line=st.line)

        def visit(f: str, path: tuple[str, ...]) -> None:
            for sts in bodies.get(f, ()):
                for st in sts:
                    if st.action != "call":
                        continue
                    if st.arg in path + (f,):
                        raise UserError(f"{_show(st.text)}: {' -> '.join(path + (f, st.arg or ''))} calls itself; "
                                        f"the model runs a call inline, so a function may not call itself "
                                        f"(directly or through others)", path=self.path, line=st.line)
                    visit(st.arg or "", path + (f,))
        for f in bodies:
            visit(f, ())

    def shadows(self, value, module_names: set, state_names: set) -> tuple[ShadowDecl, ...]:
        value = self.table(("shadows",), value, "[shadows]")
        out: list[ShadowDecl] = []
        ids: dict[int, str] = {}
        for name, body in value.items():
            where = ("shadows", name)
            self.name(where, name, "shadow variable name")
            if name in state_names:
                self.err(where, f"'{name}' is also a state name; give the shadow variable its own name")
            body = self.table(where, body, f"[shadows.{name}]")
            self.keys(where, body, ("id", "parent"), f"[shadows.{name}]")
            if "id" not in body:
                self.err(where, f"shadow variable '{name}' has no id; add id = N (the unsigned long id of "
                                f"klp_shadow_alloc)")
            sid = self.integer(where + ("id",), body["id"], "shadow id", 0, MAX_ID, "id = 1")
            if sid in ids:
                self.err(where + ("id",), f"shadow id {sid} is already used by shadow variable '{ids[sid]}'; give "
                                          f"each its own id")
            ids[sid] = name
            parent = body.get("parent")
            if parent is not None and (not isinstance(parent, str) or parent not in module_names):
                known = ", ".join(sorted(module_names)) or "(none declared)"
                self.err(where + ("parent",), f"parent {_show(parent)} is not a target module; write the name of a "
                                              f"[modules] table ({known}), or leave parent out for vmlinux objects")
            out.append(ShadowDecl(name, sid, parent, self.loc.line(where) or 1))
        return tuple(out)

    def check(self, value) -> tuple[int, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        where = ("check",)
        value = self.table(where, value, "[check]")
        self.keys(where, value, ("depth", "operations", "faults", "properties"), "[check]")
        depth = self.integer(where + ("depth",), value.get("depth", DEFAULT_DEPTH), "depth", 1, MAX_DEPTH, "depth = 8")
        ops = value.get("operations", list(DEFAULT_OPERATIONS))
        if not isinstance(ops, list):
            self.err(where + ("operations",), f"operations must be a list of operation words; write e.g. "
                                              f"operations = {list(DEFAULT_OPERATIONS)}")
        for i, op in enumerate(ops):
            if op not in OPERATIONS:
                self.err(where + ("operations", i), f"unknown operation {_show(op)}; write one of: {', '.join(OPERATIONS)}")
        if len(set(ops)) != len(ops):
            self.err(where + ("operations",), "operations lists an operation twice; name each once")
        faults = value.get("faults", [])
        if not isinstance(faults, list):
            self.err(where + ("faults",), f"faults must be a list of fault names; write e.g. faults = [\"patching\"] "
                                          f"(known faults: {', '.join(FAULTS)})")
        for i, f in enumerate(faults):
            if f not in FAULTS:
                self.err(where + ("faults", i), f"unknown fault {_show(f)}; write one of: {', '.join(FAULTS)}")
        from .properties import SHADOW
        opt_in = tuple(p.name for p in SHADOW)
        also = value.get("properties", [])
        if not isinstance(also, list):
            self.err(where + ("properties",), f"properties must be a list of property names; write e.g. properties = "
                                              f"[\"disable-keeps-shared\"] (opt-in properties: {', '.join(opt_in)})")
        for i, name in enumerate(also):
            if name not in opt_in:
                self.err(where + ("properties", i), f"{_show(name)} is not an opt-in property; write one of: "
                                                    f"{', '.join(opt_in)} (the others are always checked)")
        return (depth, tuple(op for op in OPERATIONS if op in ops), tuple(f for f in FAULTS if f in faults),
                tuple(p for p in opt_in if p in also))

    def states(self, value) -> tuple[StateDecl, ...]:
        value = self.table(("states",), value, "[states]")
        out: list[StateDecl] = []
        ids: dict[int, str] = {}
        for name, body in value.items():
            where = ("states", name)
            self.name(where, name, "state name")
            body = self.table(where, body, f"[states.{name}]")
            self.keys(where, body, ("id", *STATE_CALLBACKS, *STATE_FLAGS), f"[states.{name}]")
            if "id" not in body:
                self.err(where, f"state '{name}' has no id; add id = N (a non-zero integer, the klp_state.id)")
            sid = body["id"]
            if isinstance(sid, bool) or not isinstance(sid, int) or not 0 < sid <= MAX_ID:
                self.err(where + ("id",), f"state id must be an integer from 1 to {MAX_ID} (klp_state.id is a non-zero "
                                          f"unsigned long), not {_show(sid)}; e.g. id = 1")
            if sid in ids:
                self.err(where + ("id",), f"state id {sid} is already used by state '{ids[sid]}'; give each state its own id")
            ids[sid] = name
            out.append(StateDecl(name, sid, self.loc.line(where) or 1))
        return tuple(out)

    def state_callbacks(self, value: dict, states: tuple[StateDecl, ...], shadows: tuple,
                        params: tuple) -> tuple[StateDecl, ...]:
        """(kernel "state-callbacks") The per-state callbacks and flags of each [states.S];
        their statements may name the state itself, any shadow variable and any patch's
        parameter (read in the module of the patch that runs the callback)."""
        out = []
        for d in states:
            where = ("states", d.name)
            body = value[d.name]
            cbs = tuple((cb, self.stmts(where + (cb,), body[cb], cb, None, (d.name,), params=params, shadows=shadows))
                        for cb in STATE_CALLBACKS if cb in body)
            for n, st in enumerate(dict(cbs).get("shadow_dtor", ())):
                if st.action in SHADOW_ACTIONS and st.action != "shadow-get":
                    self.err(where + ("shadow_dtor", n),
                             f"{st.action} in shadow_dtor: the dtor runs under klp_shadow_lock (klp_shadow_free_all "
                             f"holds the spinlock while it calls it, kernel/livepatch/shadow.c), and {st.action} takes "
                             f"that lock again: a deadlock; only shadow-get and log are possible there")
            flags = []
            for f in STATE_FLAGS:
                v = body.get(f, False)
                if not isinstance(v, bool):
                    self.err(where + (f,), f"{f} must be true or false, not {_show(v)}; e.g. {f} = true")
                flags.append(v)
            written = tuple((k, self.loc.line(where + (k,)) or 1) for k in (*STATE_CALLBACKS, *STATE_FLAGS) if k in body)
            out.append(replace(d, callbacks=cbs, written=written, block_disable=flags[0], is_shadow=flags[1]))
        return tuple(out)

    def modules(self, value) -> tuple[Module, ...]:
        value = self.table(("modules",), value, "[modules]")
        out = []
        for name, body in value.items():
            where = ("modules", name)
            self.name(where, name, "module name")
            if name == "vmlinux":
                self.err(where, "'vmlinux' is not a module (the kernel refuses a module of that name); pick another name")
            body = self.table(where, body, f"[modules.{name}]")
            self.keys(where, body, ("loaded", "init", "init_error", "exit", "params", "sleeps", "code", "shadows",
                                    "echoes_shadow_calls"), f"[modules.{name}]")
            loaded = self.boolean(where + ("loaded",), body.get("loaded", False), "loaded")
            params = self.params(where + ("params",), body.get("params", {}))
            names = tuple(n for n, _ in params)
            svs = self.patch_shadows(where + ("shadows",), body.get("shadows", {}))
            echoes = self.boolean(where + ("echoes_shadow_calls",), body.get("echoes_shadow_calls", False),
                                  "echoes_shadow_calls")
            self.echoes = echoes
            sv_names = tuple(sv for sv, _ in svs)
            init, init_error, exit_ = (self.stmts(where + (f,), body.get(f, []), f"module {f}", name, (), only_log=True,
                                                  params=names, shadows=sv_names)
                                       for f in ("init", "init_error", "exit"))
            self.echoes = False
            sleeps: tuple[str, str] | None = None
            wake: tuple[Stmt, ...] = ()
            if "sleeps" in body:
                sl = self.table(where + ("sleeps",), body["sleeps"], "sleeps")
                self.keys(where + ("sleeps",), sl, ("function", "while", "wake"), "sleeps")
                if not isinstance(sl.get("function"), str) or sl.get("while") not in names:
                    self.err(where + ("sleeps",), "sleeps needs function = \"FUNC\" and while = \"PARAM\" "
                             "(a boolean parameter of this module); write e.g. sleeps = { function = \"busymod_work_func\", "
                             "while = \"block_transition\" }")
                self.text(where + ("sleeps", "function"), sl["function"], "function")
                sleeps = (sl["function"], sl["while"])
                wake = self.stmts(where + ("sleeps", "wake"), sl.get("wake", []), "sleeps wake", None, (),
                                  only_log=True, params=names)
            code_v = self.table(where + ("code",), body.get("code", {}), "code")
            code = tuple((func, self.stmts(where + ("code", func), stmts, "module code", None, (), only_log=True,
                                           params=names))
                         for func, stmts in code_v.items())
            out.append(Module(name, loaded, init, exit_, self.loc.line(where) or 1, params, sleeps, code, wake,
                              shadows=svs, init_error=init_error, echoes=echoes))
        return tuple(out)

    def patches(self, value, state_names: set, module_names: set, has_modules: bool = False) -> tuple[Patch, ...]:
        if not isinstance(value, list):
            self.err(("patch",), "patch must be an array of tables; write each livepatch as [[patch]]")
        if not value and not has_modules:          # (a spec of target modules only: their init/exit,
            self.err((), "the spec declares no livepatch; add a [[patch]] table with at least a name")   # test-shadow-vars)
        out: list[Patch] = []
        seen: dict[str, int | None] = {}
        for i, body in enumerate(value):
            where = ("patch", i)
            body = self.table(where, body, "[[patch]]")
            self.keys(where, body, ("name", "replace", "states", "uses", "objects", "params", "replace_param",
                                    "replace_set", "shadows", *MODULE_FUNCS, *STATE_PARAMS), "[[patch]]")
            if "name" not in body:
                self.err(where, "[[patch]] has no name; add name = \"...\" (the livepatch module name)")
            name = self.name(where + ("name",), body["name"], "patch name")
            if name in seen:
                self.err(where + ("name",), f"patch name '{name}' is already used on line {seen[name]}; give each [[patch]] its own name")
            if name in module_names or name == "vmlinux":
                self.err(where + ("name",), f"patch name '{name}' is also a target module name; use a different name")
            seen[name] = self.loc.line(where + ("name",))
            replace = self.boolean(where + ("replace",), body.get("replace", False), "replace")
            replace_set = self.integer(where + ("replace_set",), body.get("replace_set", 0), "replace_set", 0, MAX_VERSION,
                                       "replace_set = 1 (klp_patch.replace_set is an unsigned int)")
            written = tuple((k, self.loc.line(where + (k,)) or 1) for k in ("replace", "replace_set", *STATE_PARAMS)
                            if k in body)
            params = self.params(where + ("params",), body.get("params", {}))
            pnames = tuple(n for n, _ in params)
            replace_param = body.get("replace_param")
            if replace_param is not None and (not isinstance(replace_param, str) or replace_param not in pnames):
                shown = replace_param if isinstance(replace_param, str) and NAME_RE.fullmatch(replace_param) else "replace"
                self.err(where + ("replace_param",), f"replace_param names {_show(replace_param)}, which is not in this "
                         f"patch's params; declare it, e.g. params = {{ {shown} = 0 }}")
            states = self.table(where + ("states",), body.get("states", {}), "states")
            decl = []
            for s, v in states.items():
                if s not in state_names:
                    known = ", ".join(sorted(state_names)) or "(none declared)"
                    self.err(where + ("states", s), f"unknown state {_show(s)}; declare it as [states.{s}] with an id, "
                                                    f"or use one of: {known}")
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_VERSION:
                    self.err(where + ("states", s), f"bad version {_show(v)} for state '{s}'; klp_state.version is an "
                                                    f"integer from 0 to {MAX_VERSION} (an unsigned int), e.g. {s} = 1")
                decl.append((s, v))
            declared = {s for s, _ in decl}
            no_states_param, block_disable_param = self.state_params(where, body, pnames, declared)
            svs = self.patch_shadows(where + ("shadows",), body.get("shadows", {}))
            sv_names = tuple(sv for sv, _ in svs)
            uses = body.get("uses", [])
            if not isinstance(uses, list):
                self.err(where + ("uses",), "uses must be a list of state names; write e.g. uses = [\"loglevel\"]")
            for j, s in enumerate(uses):
                if not isinstance(s, str) or (s not in declared and s not in sv_names):
                    also = " (or of a shadow variable in its shadows)" if self.shadow_names else ""
                    self.err(where + ("uses", j), f"uses names {_show(s)}, which patch '{name}' does not declare; write "
                                                  f"the name of a state in its states{also}, or remove it from uses")
            objs_v = self.table(where + ("objects",), body.get("objects", {}), "objects")
            objs = []
            for oname, obody in objs_v.items():
                ow = where + ("objects", oname)
                if oname != "vmlinux" and oname not in module_names:
                    self.err(ow, f"unknown object {_show(oname)}; an object is vmlinux or a module declared as "
                                 f"[modules.{oname}]: write vmlinux or declare the module")
                obody = self.table(ow, obody, f"[patch.objects.{oname}]")
                self.keys(ow, obody, (*OBJECT_KEYS, "funcs"), f"[patch.objects.{oname}]")
                cbs = tuple((cb, self.stmts(ow + (cb,), obody[cb], cb, name, tuple(declared), params=pnames,
                                            shadows=sv_names))
                            for cb in OBJECT_KEYS if cb in obody)
                funcs = obody.get("funcs", [])
                if not isinstance(funcs, list) or not all(isinstance(f, str) for f in funcs):
                    self.err(ow + ("funcs",), "funcs must be a list of function names; write e.g. funcs = [\"busymod_work_func\"]")
                for j, f in enumerate(funcs):
                    self.text(ow + ("funcs", j), f, "function name")
                objs.append(Obj(oname, cbs, self.loc.line(ow) or 1, tuple(funcs)))
            if not objs:
                objs.append(Obj("vmlinux", (), self.loc.line(where) or 1))
            funcs_of = {f: self.stmts(where + (f,), body.get(f, []), f, name, tuple(declared), params=pnames,
                                      shadows=sv_names) for f in INIT_EXIT}
            code_v = self.table(where + ("code",), body.get("code", {}), "code")
            code = []
            for func, stmts in code_v.items():
                if not NAME_RE.fullmatch(func) or func in INIT_EXIT or func in OBJECT_KEYS:
                    self.err(where + ("code", func), f"{_show(func)} is not a function name for code; write the C "
                                                     f"name of a function the patch replaces, e.g. dummy_alloc")
                code.append((func, self.stmts(where + ("code", func), stmts, "code", name, tuple(declared),
                                              params=pnames, shadows=sv_names)))
            out.append(Patch(name, replace, tuple(decl), tuple(s for s in uses if s in declared), tuple(objs),
                             self.loc.line(where) or 1, params, replace_param, shadows=svs,
                             shadow_uses=tuple(s for s in uses if s not in declared), init=funcs_of["init"],
                             init_error=funcs_of["init_error"], exit=funcs_of["exit"], code=tuple(code),
                             replace_set=replace_set, written=written, no_states_param=no_states_param,
                             block_disable_param=block_disable_param))
        return tuple(out)

    def state_params(self, where: tuple, body: dict, pnames: tuple,
                     declared: set) -> tuple[str | None, tuple[tuple[str, str], ...]]:
        """(kernel "state-callbacks") What the module's init sets in its klp_state array from a
        parameter (the per-state callbacks series' test_klp_state.c): `no_states_param =
        "P"` (P set: patch.states = NULL) and `block_disable_param = { S = "P" }` (the state's
        block_disable is P)."""
        nsp = body.get("no_states_param")
        if nsp is not None and (not isinstance(nsp, str) or nsp not in pnames):
            self.err(where + ("no_states_param",), f"no_states_param names {_show(nsp)}, which is not in this patch's "
                     f"params; declare it, e.g. params = {{ no_state = false }}")
        if nsp is not None and not declared:
            self.err(where + ("no_states_param",), "no_states_param drops the patch's states at init, but it declares "
                     "none; give it states = { S = 1 } or remove no_states_param")
        bdp = self.table(where + ("block_disable_param",), body.get("block_disable_param", {}), "block_disable_param")
        for st, prm in bdp.items():
            if st not in declared:
                self.err(where + ("block_disable_param", st), f"block_disable_param names state {_show(st)}, which this "
                         f"patch does not declare; add it to its states or remove it here")
            if not isinstance(prm, str) or prm not in pnames:
                self.err(where + ("block_disable_param", st), f"block_disable_param sets state '{st}' from {_show(prm)}, "
                         f"which is not in this patch's params; declare it, e.g. params = {{ state_block_disable = false }}")
        return nsp, tuple(bdp.items())

    def patch_shadows(self, where: tuple, value) -> tuple[tuple[str, str], ...]:
        """`shadows = { SV = "LAYOUT" }`: the shadow variables the patch uses, each with the
        layout of its data (a name: two patches agree on it when they write the same name)."""
        value = self.table(where, value, "shadows")
        out = []
        for sv, layout in value.items():
            if sv not in self.shadow_names:
                known = ", ".join(sorted(self.shadow_names)) or "(none declared)"
                self.err(where + (sv,), f"unknown shadow variable {_show(sv)}; declare it as [shadows.{sv}] with an "
                                        f"id, or use one of: {known}")
            if not isinstance(layout, str) or not NAME_RE.fullmatch(layout) or len(layout) > MAX_NAME:
                self.err(where + (sv,), f"the layout of shadow variable '{sv}' must be a name (the struct its data "
                                        f"holds), not {_show(layout)}; e.g. {sv} = \"counter\"")
            out.append((sv, layout))
        return tuple(out)

    def params(self, where: tuple, value) -> tuple[tuple[str, int], ...]:
        value = self.table(where, value, "params")
        out = []
        for k, v in value.items():
            self.name(where + (k,), k, "parameter name")
            if not isinstance(v, (bool, int)) or not PARAM_MIN <= v <= PARAM_MAX:
                self.err(where + (k,), f"parameter '{k}' must default to a boolean or an integer from {PARAM_MIN} to "
                                       f"{PARAM_MAX} (a long or unsigned long), not {_show(v)}; e.g. {k} = 0")
            out.append((k, int(v)))
        return tuple(out)

    # ---- statements
    def stmts(self, where: tuple, value, callback: str, patch: str | None, declared: tuple,
              only_log: bool = False, params: tuple = (), shadows: tuple = ()) -> tuple[Stmt, ...]:
        if not isinstance(value, list):
            self.err(where, f"{callback} must be a list of statement strings; write e.g. {callback} = [\"alloc loglevel\"]")
        return tuple(self.stmt(where + (i,), s, callback, patch, declared, only_log, params, shadows)
                     for i, s in enumerate(value))

    def stmt(self, where: tuple, text, callback: str, patch: str | None, declared: tuple, only_log: bool,
             params: tuple = (), shadows: tuple = ()) -> Stmt:
        if not isinstance(text, str):
            self.err(where, f"a statement must be a string, not {_show(text)}; write e.g. \"free loglevel\"")
        return _StmtReader(self.path, self.loc.line(where) or 1, text, callback, patch, declared, params,
                           shadows, getattr(self, "objects", {}), getattr(self, "echoes", False)).read(only_log)


class _Words(NamedTuple):
    """A statement's action and what it takes, before its condition is read."""
    action: str
    arg: str | None          # the state (state actions), the text (log), the parameter (fail PARAM)
    errno: int | None        # fail / maybe-fail with an errno
    cond: str                # the condition as written ("" when there is none)
    value: str | None = None  # call FUNC "TEXT": the text


TARGET_FUNCS = ("module init", "module init_error", "module exit")   # (issue 14) a target module's own functions


class _StmtReader:
    """One statement string of a callback (or of a module's init/exit) read into a `Stmt`:
    its words, where it may stand, its condition. Every mistake is a UserError on its line."""

    def __init__(self, path: str, line: int, text: str, callback: str, patch: str | None, declared: tuple,
                 params: tuple, shadows: tuple = (), objects: dict | None = None, echoes: bool = False):
        self.path, self.line, self.text, self.shown = path, line, text, _show(text)
        self.callback, self.patch, self.declared, self.params = callback, patch, declared, params
        self.shadows, self.objects, self.echoes = shadows, objects or {}, echoes
        self.target = callback in TARGET_FUNCS          # a target module's init, init_error or exit
        self.owner = f"module '{patch}'" if self.target else f"patch '{patch}'"
        self.options: dict = {}

    def bad(self, message: str) -> NoReturn:
        raise UserError(message, path=self.path, line=self.line)

    def read(self, only_log: bool) -> Stmt:
        if not _plain(self.text):
            self.bad(f"statement {self.shown} holds a line break or a NUL character; write it on one line, "
                     f"e.g. 'log \"fixing console_loglevel\"'")
        words = self.words()
        self.placed(words, only_log)
        o = self.options
        return Stmt(words.action, words.arg, words.errno, self.condition(words.cond), self.text, self.line,
                    o.get("fresh", False), words.value, obj=o.get("obj"), dtor=o.get("dtor", False),
                    expect=o.get("expect"), or_fail=o.get("or_fail"))

    def words(self) -> _Words:
        """The action and its argument; the condition's words are kept for `condition`."""
        src, shown = self.text.strip(), self.shown
        m = re.fullmatch(r'log\s+"((?:[^"\\]|\\.)*)"\s*(.*)', src)
        if m:
            return _Words("log", m.group(1).replace('\\"', '"'), None, m.group(2))
        m = re.fullmatch(r'call\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+"((?:[^"\\]|\\.)*)")?(?:\s+((?:if|unless)\s.*))?', src)
        if m:
            return _Words("call", m.group(1), None, m.group(3) or "",
                          m.group(2).replace('\\"', '"') if m.group(2) is not None else None)
        if src.split()[:1] == ["call"]:
            self.bad(f"malformed statement {shown}: write 'call FUNCTION' or 'call FUNCTION \"TEXT\"' (TEXT: the "
                     f"function's string argument, which its log lines print where they write {{arg}})")
        words = src.split()
        if not words:
            self.bad(f"empty statement in {self.callback}; remove it or write an action such as \"free STATE\"")
        action, rest, cond = words[0], words[1:], ""
        for kw in ("if", "unless"):
            if kw in rest:
                k = rest.index(kw)
                cond = " ".join(rest[k:])
                rest = rest[:k]
                break
        if action == "log":
            self.bad(f"malformed statement {shown}: log takes a double-quoted text; write 'log \"TEXT\"'")
        if action in STATE_ACTIONS:
            if len(rest) != 1:
                self.bad(f"malformed statement {shown}: {action} takes one state name; write \"{action} STATE\"")
            return _Words(action, rest[0], None, cond)
        if action in ("fail", "maybe-fail"):
            return self.failure(action, rest, cond)
        if action in SHADOW_ACTIONS:
            return self.shadow(action, rest, cond)
        if action in ("return", "banner"):
            if rest:
                self.bad(f"malformed statement {shown}: {action} takes no argument; write \"{action}\"")
            return _Words(action, None, None, cond)
        known = ", ".join(STATE_ACTIONS + ("fail", "maybe-fail", "return", "log", "banner", "call") + SHADOW_ACTIONS)
        self.bad(f"unknown action {_show(action)} in {shown}; write one of: {known}")

    def shadow(self, action: str, rest: list[str], cond: str) -> _Words:
        """`ACTION SV [on OBJ|new] [with ctor-fail [-ERRNO]] [with dtor] [or fail -ERRNO] [expect null|data]`:
        on named object OBJ ([objects]; none: the abstract parent object), on a new object (a
        patch's code), the constructor may fail (ERRNO, default -EINVAL: the call returns
        NULL), a destructor is passed (free, free-all), a NULL result makes the function
        return ERRNO (a target module's init: goto out), the test module's check line."""
        usage = {"shadow-alloc": "shadow-alloc SV [on OBJ]", "shadow-get": "shadow-get SV [on OBJ]",
                 "shadow-get-or-alloc": "shadow-get-or-alloc SV [on OBJ] [with ctor-fail [-ERRNO]]",
                 "shadow-free": "shadow-free SV [on OBJ] [with dtor]", "shadow-free-all": "shadow-free-all SV [with dtor]",
                 "get": "get SV [on OBJ]", "put": "put SV [on OBJ]"}[action]
        if self.target and action in ("shadow-alloc", "shadow-get", "shadow-get-or-alloc"):
            usage += " [or fail -ERRNO]" + (" [expect null|data]" if self.echoes else "")
        if not rest:
            self.bad(f"malformed statement {self.shown}: {action} takes one shadow variable; write \"{usage}\"")
        errno, o, words = None, self.options, rest[1:]
        while words:
            head = words[:2]
            if head == ["on", "new"] and action == "shadow-alloc" and "obj" not in o and "fresh" not in o:
                if self.callback != "code":
                    self.bad(f"'on new' in {self.shown}: only a patch's code creates objects; write it in [patch.code]")
                o["fresh"], words = True, words[2:]
            elif head[:1] == ["on"] and len(head) == 2 and action != "shadow-free-all" and "obj" not in o \
                    and "fresh" not in o:
                if head[1] not in self.objects:
                    known = ", ".join(sorted(self.objects)) or "(none declared)"
                    self.bad(f"{self.shown} names object {_show(head[1])}, which [objects] does not declare; add "
                             f"{head[1] if NAME_RE.fullmatch(head[1]) else 'OBJ'} = \"vmlinux\" (or its module) to "
                             f"[objects] (declared: {known})")
                o["obj"], words = head[1], words[2:]
            elif head == ["with", "ctor-fail"] and action == "shadow-get-or-alloc" and errno is None:
                if self.target:
                    self.bad(f"'with ctor-fail' in {self.shown}: a target module's {self.callback[7:]} takes no "
                             f"explored choice; write it in a livepatch's callback, init or code")
                errno, words = -ERRNOS["EINVAL"], words[2:]
                if words[:1] and words[0].startswith("-"):
                    errno, words = self.failure("fail", words[:1], "").errno or errno, words[1:]
            elif head == ["with", "dtor"] and action in ("shadow-free", "shadow-free-all") and "dtor" not in o:
                o["dtor"], words = True, words[2:]
            elif head == ["or", "fail"] and self.target and len(words) >= 3 and "or_fail" not in o \
                    and action in ("shadow-alloc", "shadow-get", "shadow-get-or-alloc") and self.callback != "module exit":
                o["or_fail"], words = self.failure("fail", words[2:3], "").errno, words[3:]
            elif head[:1] == ["expect"] and len(head) == 2 and head[1] in ("null", "data") and self.echoes \
                    and self.target and "expect" not in o and action in ("shadow-alloc", "shadow-get", "shadow-get-or-alloc"):
                o["expect"], words = head[1], words[2:]
            else:
                self.bad(f"malformed statement {self.shown}: {_show(' '.join(words))} is not an option of {action}; "
                         f"write \"{usage}\"" +
                         ("" if self.echoes or words[:1] != ["expect"] else
                          "; 'expect' is the check line of a module with echoes_shadow_calls = true"))
        if rest[0] not in self.shadows:
            self.bad(f"{self.shown} names shadow variable {_show(rest[0])}, which {self.owner} does not list "
                     f"in its shadows; add {rest[0] if NAME_RE.fullmatch(rest[0]) else 'SV'} = \"LAYOUT\" to the "
                     f"{'module' if self.target else 'patch'}'s shadows")
        return _Words(action, rest[0], errno, cond)

    def failure(self, action: str, rest: list[str], cond: str) -> _Words:
        """`fail`/`maybe-fail` [ERRNO]: -EINVAL by default; `fail PARAM` returns the parameter's value."""
        if len(rest) > 1:
            self.bad(f"malformed statement {self.shown}: {action} takes at most one errno; write \"{action} -ENODEV\"")
        if not rest:
            return _Words(action, None, -ERRNOS["EINVAL"], cond)
        e = rest[0]
        if e.startswith("-") and e[1:] in ERRNOS:
            return _Words(action, None, -ERRNOS[e[1:]], cond)
        if re.fullmatch(r"-[1-9][0-9]{0,3}", e) and int(e) >= -MAX_ERRNO:
            return _Words(action, None, int(e), cond)
        if action == "fail" and e in self.params:          # return the parameter's value (0: go on)
            return _Words(action, e, None, cond)
        hint = " or one of the patch's params" if action == "fail" else ""
        self.bad(f"bad errno {_show(e)} in {self.shown}; write a negative errno such as -EINVAL, -ENODEV, -ENOMEM "
                 f"or a number from -1 to -{MAX_ERRNO}{hint}")

    def placed(self, words: _Words, only_log: bool) -> None:
        """The action may stand in this callback, and a state it names is the patch's."""
        action, arg, callback = words.action, words.arg, self.callback
        if action == "call":                # a function's code calls another one (issue 15)
            if callback not in CALLERS:
                self.bad(f"'call' is not allowed in {callback}; only a function's code calls functions: a target "
                         f"module's code, its sleeps.wake, or a patch's [patch.code]")
            return
        if only_log and action != "log" and not (self.target and callback in TARGET_FUNCS and action in SHADOW_ACTIONS):
            if callback in CALLERS:
                self.bad(f"'{action}' is not allowed in {callback}; a target module's code and sleeps.wake take only "
                         f"'log \"TEXT\"' and 'call FUNCTION' statements")
            self.bad(f"'{action}' is not allowed in {callback}; a target module's init and exit take only 'log \"TEXT\"' "
                     f"statements and the shadow variable actions ({', '.join(SHADOW_ACTIONS)})")
        if callback in MODULE_FUNCS and action not in MODULE_ACTIONS:
            self.bad(f"'{action}' is not allowed in the livepatch module's {callback}; it takes log, fail (init), "
                     f"return, modify, reset and the shadow variable actions ({', '.join(SHADOW_ACTIONS)})")
        if action in SHADOW_ACTIONS:
            return
        if action in ("fail", "maybe-fail") and callback == "init":
            return
        if action in ("fail", "maybe-fail") and callback != "pre_patch":
            fix = "only pre_patch can stop loading (move it to pre_patch)" if callback != "pre_patch_error" \
                else "pre_patch_error runs after the failure; remove it"
            if callback in MODULE_FUNCS:
                fix = "only the module's init (or pre_patch) can stop loading (move it to init)"
            self.bad(f"'{action}' is not allowed in {callback}; {fix}")
        if arg is not None and action not in ("log", "fail") and arg not in self.declared:
            self.bad(f"{self.shown} names state {_show(arg)}, which patch '{self.patch}' does not declare; add {arg} = "
                     f"VERSION to the patch's states")

    def condition(self, cond_text: str) -> Cond | None:
        """`if|unless param NAME`, `if|unless prev STATE [CMP N]`, or none."""
        if not cond_text:
            return None
        shown = self.shown
        sm = re.fullmatch(r"(if|unless)\s+(shadow|count)\s+(\S+)(?:\s+on\s+(\S+))?"
                          r"(?:\s*(<=|>=|==|!=|<|>)\s*([0-9]{1,20}))?", cond_text.strip())
        if sm:
            kind, sv, obj = sm.group(2), sm.group(3), sm.group(4)
            if sv not in self.shadows:
                self.bad(f"'{kind} {sv}' in {shown} names a shadow variable that {self.owner} does not list "
                         f"in its shadows; add {sv if NAME_RE.fullmatch(sv) else 'SV'} = \"LAYOUT\" to its shadows")
            if (kind == "count") != (sm.group(5) is not None):
                self.bad(f"malformed condition {_show(cond_text)} in {shown}; write 'if shadow SV [on OBJ]' or "
                         f"'if count SV [on OBJ] == 1'")
            if obj is not None and obj not in self.objects:
                self.bad(f"'{kind} {sv} on {obj}' in {shown} names an object that [objects] does not declare; add "
                         f"{obj if NAME_RE.fullmatch(obj) else 'OBJ'} = \"vmlinux\" (or its module) to [objects]")
            return Cond(sm.group(1) == "unless", sv, sm.group(5), int(sm.group(6)) if sm.group(6) else None,
                        shadow="exists" if kind == "shadow" else "count", obj=obj)
        pm = re.fullmatch(r"(if|unless)\s+param\s+(\S+)", cond_text.strip())
        if pm:
            if pm.group(2) not in self.params:
                self.bad(f"'param {pm.group(2)}' in {shown} names no parameter of this module; declare it in params, "
                         f"e.g. params = {{ {pm.group(2) if NAME_RE.fullmatch(pm.group(2)) else 'p'} = 0 }}")
            return Cond(pm.group(1) == "unless", pm.group(2), param=True)
        cm = re.fullmatch(r"(if|unless)\s+prev\s+(\S+)(?:\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]{1,20}))?", cond_text.strip())
        if not cm:
            self.bad(f"malformed condition {_show(cond_text)} in {shown}; write 'if prev STATE' or 'unless prev STATE >= 2'")
        if self.callback in MODULE_FUNCS:
            self.bad(f"'prev' in {shown}: klp_get_prev_state is for callbacks (it reads the transition patch); "
                     f"the livepatch module's {self.callback} cannot ask it")
        if cm.group(2) not in self.declared:
            self.bad(f"'prev {cm.group(2)}' in {shown} names a state that patch '{self.patch}' does not declare; "
                     f"klp_get_prev_state needs an id the patch declares: add {cm.group(2)} = VERSION to its states")
        return Cond(cm.group(1) == "unless", cm.group(2), cm.group(3), int(cm.group(4)) if cm.group(4) else None)


_TOML_HINTS = (
    ("Cannot overwrite a value", "a key is given twice in one table; keep one of them"),
    ("Cannot declare", "a table header is written twice; merge the two tables"),
    ("Invalid value", "a value is missing or malformed after '='"),
    ("Unclosed array", "an array is missing its closing ']'"),
    ("Illegal character", "a string is not closed or holds a raw control character"),
)
SPEC_INSTEAD = "give the path of a spec .toml file"


def load_spec(path: str | Path, expect_sha256: str | None = None, changed: str = "") -> Spec:
    """Read, parse and validate a spec file. Raises UserError on any mistake.

    `expect_sha256`: the file must have this digest (a spec recorded in a trace): when it
    differs, UserError(`changed`) is raised before anything of the file is parsed or shown."""
    import hashlib

    from .files import read_regular

    raw = read_regular(path, "spec", MAX_SPEC_BYTES, SPEC_INSTEAD)
    digest = hashlib.sha256(raw).hexdigest()
    if expect_sha256 is not None and digest != expect_sha256:
        raise UserError(changed, path=str(path))
    return parse_spec(str(path), raw, digest)


def parse_spec(where: str, raw: bytes, digest: str = "") -> Spec:
    """A spec from its bytes (`where` names it in messages)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError("not UTF-8 text; a spec is a TOML file in UTF-8 (re-save it as UTF-8)", path=where,
                        line=raw[:e.start].count(b"\n") + 1) from None
    loc = Locator(text, where)                   # also refuses what tomllib cannot take in bounded time
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(m.group(1)) if m else 1
        what = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        for raw_msg, plain in _TOML_HINTS:
            if what.startswith(raw_msg):
                what = f"{what} ({plain})"
                break
        if "end of document" in msg:
            line = max(1, text.count("\n"))
        raise UserError(f"TOML syntax error: {what}; fix the TOML syntax (see docs/spec-format.md)",
                        path=where, line=line) from None
    except RecursionError:
        raise UserError(f"values nested too deeply for the TOML parser; write a flatter value (at most "
                        f"{MAX_NESTING} levels)", path=where, line=1) from None
    except ValueError as e:                      # e.g. an integer of more than 4,300 digits
        raise UserError(f"TOML value out of range ({e}); write numbers of at most 20 digits", path=where,
                        line=1) from None
    spec = _Loader(where, text, loc).load(data)
    return _with_digest(spec, digest)


def _with_digest(spec: Spec, digest: str) -> Spec:
    from dataclasses import replace
    return replace(spec, digest=digest)
