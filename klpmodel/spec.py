"""The spec front end: TOML -> validated, frozen `Spec` with source lines.

The language is the contract in ../shared/design/spec-format.md (documented for users in
docs/spec-format.md). Every mistake raises `UserError` whose text is
`FILE:LINE: what is wrong; what to write instead`.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

CALLBACKS = ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch")
OBJECT_KEYS = CALLBACKS + ("pre_patch_error",)
OPERATIONS = ("load", "complete", "reverse", "disable", "rmmod", "modload", "modunload", "force")
DEFAULT_OPERATIONS = tuple(op for op in OPERATIONS if op != "force")
FAULTS = ("patching",)      # optional environmental faults (klp_patch_object fails, semantics §16)
STATE_ACTIONS = ("alloc", "free", "save", "restore", "modify", "reset", "take", "copy", "free-prev")
ERRNOS = {"EPERM": 1, "ENOENT": 2, "EIO": 5, "ENXIO": 6, "E2BIG": 7, "EAGAIN": 11, "ENOMEM": 12,
          "EFAULT": 14, "EBUSY": 16, "EEXIST": 17, "ENODEV": 19, "EINVAL": 22, "ENOSPC": 28,
          "ENOSYS": 38, "ENOTSUPP": 524}
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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


@dataclass(frozen=True)
class Stmt:
    action: str              # alloc, free, ..., fail, maybe-fail, return, log
    arg: str | None          # state name (state actions), log text
    errno: int | None        # fail / maybe-fail: negative errno
    cond: Cond | None
    text: str                # as written
    line: int                # line in the spec file


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


@dataclass(frozen=True)
class Module:
    name: str
    loaded: bool
    init: tuple[Stmt, ...]
    exit: tuple[Stmt, ...]
    line: int
    params: tuple[tuple[str, int], ...] = ()     # (klpmodel) module parameters and their defaults
    sleeps: tuple[str, str] | None = None        # (klpmodel) (function, param): a task sleeps in it while param


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

    def patch(self, name: str) -> Patch:
        return next(p for p in self.patches if p.name == name)


# --------------------------------------------------------------------------- locating lines

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_key(k: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", k))


class Locator:
    """Maps TOML key paths to source lines (tomllib keeps no positions).

    Paths use the same shape as the parsed data: ("patch", 1, "objects", "vmlinux",
    "post_patch", 2) is the third statement of the second [[patch]]'s vmlinux post_patch.
    """

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        arrays: dict[tuple, int] = {}
        table: tuple = ()
        src = text.splitlines()
        i = 0
        while i < len(src):
            raw = src[i]
            m = _HEADER.match(raw)
            if m and not _KEY.match(raw):
                parts = _split_key(m.group(2))
                if m.group(1) == "[[":
                    base = self._resolve(parts[:-1], arrays)
                    arr = base + (parts[-1],)
                    arrays[arr] = arrays.get(arr, -1) + 1
                    table = arr + (arrays[arr],)
                    self.lines.setdefault(arr, i + 1)
                else:
                    table = self._resolve(parts, arrays)
                self.lines.setdefault(table, i + 1)
                i += 1
                continue
            k = _KEY.match(raw)
            if k:
                path = table + _split_key(k.group(1))
                self.lines.setdefault(path, i + 1)
                i = self._scan_value(src, i, k.end(), path)
                continue
            i += 1

    @staticmethod
    def _resolve(parts: tuple, arrays: dict) -> tuple:
        out: tuple = ()
        for p in parts:
            out = out + (p,)
            if out in arrays:
                out = out + (arrays[out],)
        return out

    def _scan_value(self, src: list[str], i: int, col: int, path: tuple) -> int:
        """Record the line of each element of an array / inline table; return the next line."""
        depth, index, stack = 0, [0], []
        line = src[i]
        j = col
        while True:
            while j < len(line):
                c = line[j]
                if c in "\"'":
                    q3 = line[j:j + 3] if line[j:j + 3] in ('"""', "'''") else None
                    if depth and stack and stack[-1] == "[":
                        self.lines.setdefault(path + (index[-1],), i + 1)
                    if q3:
                        end = line.find(q3, j + 3)
                        while end < 0 and i + 1 < len(src):
                            i += 1
                            line, j = src[i], 0
                            end = line.find(q3)
                        j = (end + 3) if end >= 0 else len(line)
                        continue
                    j += 1
                    while j < len(line) and line[j] != c:
                        j += 2 if (c == '"' and line[j] == "\\") else 1
                    j += 1
                    continue
                if c == "#":
                    break
                if c in "[{":
                    if depth and stack[-1] == "[":
                        self.lines.setdefault(path + (index[-1],), i + 1)
                    depth += 1
                    stack.append(c)
                    index.append(0)
                elif c in "]}":
                    depth -= 1
                    stack.pop()
                    index.pop()
                    if depth == 0:
                        return i + 1
                elif c == "," and depth and stack[-1] == "[":
                    index[-1] += 1
                elif depth and stack[-1] == "{":
                    k = _KEY.match(line[j:])
                    if k and (j == 0 or line[j - 1] in "{, \t"):
                        self.lines.setdefault(path + _split_key(k.group(1)), i + 1)
                        j += k.end()
                        continue
                elif depth == 0 and not c.isspace():
                    # a scalar value on this line
                    pass
                j += 1
            if depth == 0 or i + 1 >= len(src):
                return i + 1
            i += 1
            line, j = src[i], 0

    def line(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


# --------------------------------------------------------------------------- loading


class _Loader:
    def __init__(self, path: str, text: str):
        self.path = path
        self.loc = Locator(text)

    def err(self, where: tuple, message: str):
        raise UserError(message, path=self.path, line=self.loc.line(where) or 1)

    def table(self, where: tuple, value, what: str) -> dict:
        if not isinstance(value, dict):
            self.err(where, f"{what} must be a table; write it as [{'.'.join(map(str, where))}]")
        return value

    def keys(self, where: tuple, value: dict, allowed: tuple[str, ...], what: str):
        for k in value:
            if k not in allowed:
                close = [a for a in allowed if a.replace("_", "-") == k.replace("_", "-") or a.startswith(k[:3])]
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.err(where + (k,), f"unknown key '{k}' in {what}; {hint}allowed keys: {', '.join(allowed)}")

    def name(self, where: tuple, value, what: str) -> str:
        if not isinstance(value, str) or not NAME_RE.match(value):
            self.err(where, f"{what} {value!r} is not a valid name; use letters, digits and '_' (e.g. \"lp_v1\")")
        return value

    def boolean(self, where: tuple, value, what: str) -> bool:
        if not isinstance(value, bool):
            self.err(where, f"{what} must be true or false, not {value!r}")
        return value

    # ---- top level
    def load(self, data: dict) -> Spec:
        self.keys((), data, ("name", "kernel", "check", "states", "modules", "patch"), "the top level")
        name = data.get("name", Path(self.path).stem)
        if not isinstance(name, str):
            self.err(("name",), f"name must be a string, not {name!r}; write name = \"my series\"")
        kernel = data.get("kernel", "mainline")
        from .kernel import PROFILES  # (the profiles are rules: they live with kernel.py)
        if kernel not in PROFILES:
            self.err(("kernel",), f"unknown kernel profile {kernel!r}; known profiles: {', '.join(PROFILES)} "
                                  f"('klpmodel profiles' says what each is)")
        depth, operations, faults = self.check(data.get("check", {}))
        states = self.states(data.get("states", {}))
        modules = self.modules(data.get("modules", {}))
        patches = self.patches(data.get("patch", []), {s.name for s in states}, {m.name for m in modules})
        return Spec(self.path, name, kernel, depth, operations, states, modules, patches, faults=faults)

    def check(self, value) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
        where = ("check",)
        value = self.table(where, value, "[check]")
        self.keys(where, value, ("depth", "operations", "faults"), "[check]")
        depth = value.get("depth", DEFAULT_DEPTH)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            self.err(where + ("depth",), f"depth must be a positive integer, not {depth!r}; e.g. depth = 8")
        ops = value.get("operations", list(DEFAULT_OPERATIONS))
        if not isinstance(ops, list):
            self.err(where + ("operations",), f"operations must be a list of operation words, e.g. {list(DEFAULT_OPERATIONS)}")
        for i, op in enumerate(ops):
            if op not in OPERATIONS:
                self.err(where + ("operations", i), f"unknown operation {op!r}; known operations: {', '.join(OPERATIONS)}")
        if len(set(ops)) != len(ops):
            self.err(where + ("operations",), "operations lists an operation twice; name each once")
        faults = value.get("faults", [])
        if not isinstance(faults, list):
            self.err(where + ("faults",), f"faults must be a list of fault names, e.g. faults = [\"patching\"]; known faults: {', '.join(FAULTS)}")
        for i, f in enumerate(faults):
            if f not in FAULTS:
                self.err(where + ("faults", i), f"unknown fault {f!r}; known faults: {', '.join(FAULTS)}")
        return depth, tuple(op for op in OPERATIONS if op in ops), tuple(f for f in FAULTS if f in faults)

    def states(self, value) -> tuple[StateDecl, ...]:
        value = self.table(("states",), value, "[states]")
        out, ids = [], {}
        for name, body in value.items():
            where = ("states", name)
            self.name(where, name, "state name")
            body = self.table(where, body, f"[states.{name}]")
            self.keys(where, body, ("id",), f"[states.{name}]")
            if "id" not in body:
                self.err(where, f"state '{name}' has no id; add id = N (a non-zero integer, the klp_state.id)")
            sid = body["id"]
            if isinstance(sid, bool) or not isinstance(sid, int) or sid <= 0:
                self.err(where + ("id",), f"state id must be a positive integer (klp_state.id is a non-zero unsigned long), not {sid!r}")
            if sid in ids:
                self.err(where + ("id",), f"state id {sid} is already used by state '{ids[sid]}'; give each state its own id")
            ids[sid] = name
            out.append(StateDecl(name, sid, self.loc.line(where) or 1))
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
            self.keys(where, body, ("loaded", "init", "exit", "params", "sleeps"), f"[modules.{name}]")
            loaded = self.boolean(where + ("loaded",), body.get("loaded", False), "loaded")
            params = self.params(where + ("params",), body.get("params", {}))
            names = tuple(n for n, _ in params)
            init = self.stmts(where + ("init",), body.get("init", []), "module init", None, (), only_log=True, params=names)
            exit_ = self.stmts(where + ("exit",), body.get("exit", []), "module exit", None, (), only_log=True, params=names)
            sleeps = None
            if "sleeps" in body:
                sl = self.table(where + ("sleeps",), body["sleeps"], "sleeps")
                self.keys(where + ("sleeps",), sl, ("function", "while"), "sleeps")
                if not isinstance(sl.get("function"), str) or sl.get("while") not in names:
                    self.err(where + ("sleeps",), "sleeps needs function = \"FUNC\" and while = \"PARAM\" "
                             "(a boolean parameter of this module), e.g. sleeps = { function = \"busymod_work_func\", "
                             "while = \"block_transition\" }")
                sleeps = (sl["function"], sl["while"])
            out.append(Module(name, loaded, init, exit_, self.loc.line(where) or 1, params, sleeps))
        return tuple(out)

    def patches(self, value, state_names: set, module_names: set) -> tuple[Patch, ...]:
        if not isinstance(value, list):
            self.err(("patch",), "patch must be an array of tables; write each livepatch as [[patch]]")
        if not value:
            self.err((), "the spec declares no livepatch; add a [[patch]] table with at least a name")
        out, seen = [], {}
        for i, body in enumerate(value):
            where = ("patch", i)
            body = self.table(where, body, "[[patch]]")
            self.keys(where, body, ("name", "replace", "states", "uses", "objects", "params", "replace_param"), "[[patch]]")
            if "name" not in body:
                self.err(where, "[[patch]] has no name; add name = \"...\" (the livepatch module name)")
            name = self.name(where + ("name",), body["name"], "patch name")
            if name in seen:
                self.err(where + ("name",), f"patch name '{name}' is already used on line {seen[name]}; give each [[patch]] its own name")
            if name in module_names or name == "vmlinux":
                self.err(where + ("name",), f"patch name '{name}' is also a target module name; use a different name")
            seen[name] = self.loc.line(where + ("name",))
            replace = self.boolean(where + ("replace",), body.get("replace", False), "replace")
            params = self.params(where + ("params",), body.get("params", {}))
            pnames = tuple(n for n, _ in params)
            replace_param = body.get("replace_param")
            if replace_param is not None and replace_param not in pnames:
                self.err(where + ("replace_param",), f"replace_param names '{replace_param}', which is not in this "
                         f"patch's params; declare it, e.g. params = {{ {replace_param} = 0 }}")
            states = self.table(where + ("states",), body.get("states", {}), "states")
            decl = []
            for s, v in states.items():
                if s not in state_names:
                    known = ", ".join(sorted(state_names)) or "(none declared)"
                    self.err(where + ("states", s), f"unknown state '{s}'; declare it as [states.{s}] with an id, or use one of: {known}")
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    self.err(where + ("states", s), f"bad version {v!r} for state '{s}'; klp_state.version is an integer >= 0, e.g. {s} = 1")
                decl.append((s, v))
            declared = {s for s, _ in decl}
            uses = body.get("uses", [])
            if not isinstance(uses, list):
                self.err(where + ("uses",), "uses must be a list of state names, e.g. uses = [\"loglevel\"]")
            for j, s in enumerate(uses):
                if s not in declared:
                    self.err(where + ("uses", j), f"uses names '{s}', which patch '{name}' does not declare; add it to states or remove it from uses")
            objs_v = self.table(where + ("objects",), body.get("objects", {}), "objects")
            objs = []
            for oname, obody in objs_v.items():
                ow = where + ("objects", oname)
                if oname != "vmlinux" and oname not in module_names:
                    self.err(ow, f"unknown object '{oname}'; an object is vmlinux or a module declared as [modules.{oname}]")
                obody = self.table(ow, obody, f"[patch.objects.{oname}]")
                self.keys(ow, obody, (*OBJECT_KEYS, "funcs"), f"[patch.objects.{oname}]")
                cbs = tuple((cb, self.stmts(ow + (cb,), obody[cb], cb, name, tuple(declared), params=pnames))
                            for cb in OBJECT_KEYS if cb in obody)
                funcs = obody.get("funcs", [])
                if not isinstance(funcs, list) or not all(isinstance(f, str) for f in funcs):
                    self.err(ow + ("funcs",), "funcs must be a list of function names, e.g. funcs = [\"busymod_work_func\"]")
                objs.append(Obj(oname, cbs, self.loc.line(ow) or 1, tuple(funcs)))
            if not objs:
                objs.append(Obj("vmlinux", (), self.loc.line(where) or 1))
            out.append(Patch(name, replace, tuple(decl), tuple(uses), tuple(objs), self.loc.line(where) or 1,
                             params, replace_param))
        return tuple(out)

    def params(self, where: tuple, value) -> tuple[tuple[str, int], ...]:
        value = self.table(where, value, "params")
        out = []
        for k, v in value.items():
            self.name(where + (k,), k, "parameter name")
            if not isinstance(v, (bool, int)):
                self.err(where + (k,), f"parameter '{k}' must default to an integer or a boolean, not {v!r}")
            out.append((k, int(v)))
        return tuple(out)

    # ---- statements
    def stmts(self, where: tuple, value, callback: str, patch: str | None, declared: tuple,
              only_log: bool = False, params: tuple = ()) -> tuple[Stmt, ...]:
        if not isinstance(value, list):
            self.err(where, f"{callback} must be a list of statement strings, e.g. {callback} = [\"alloc loglevel\"]")
        return tuple(self.stmt(where + (i,), s, callback, patch, declared, only_log, params) for i, s in enumerate(value))

    def stmt(self, where: tuple, text, callback: str, patch: str | None, declared: tuple, only_log: bool,
             params: tuple = ()) -> Stmt:
        line = self.loc.line(where) or 1
        if not isinstance(text, str):
            self.err(where, f"a statement must be a string, not {text!r}; e.g. \"free loglevel\"")

        def bad(msg: str):
            raise UserError(msg, path=self.path, line=line)

        src = text.strip()
        cond_text = ""
        arg = None
        errno = None
        m = re.match(r'^log\s+"((?:[^"\\]|\\.)*)"\s*(.*)$', src)
        if m:
            action, arg, cond_text = "log", m.group(1).replace('\\"', '"'), m.group(2)
        else:
            words = src.split()
            if not words:
                bad(f"empty statement in {callback}; remove it or write an action such as \"free STATE\"")
            action = words[0]
            rest = words[1:]
            for kw in ("if", "unless"):
                if kw in rest:
                    k = rest.index(kw)
                    cond_text = " ".join(rest[k:])
                    rest = rest[:k]
                    break
            if action == "log":
                bad(f"malformed statement '{text}': log takes a double-quoted text; write 'log \"TEXT\"'")
            if action in STATE_ACTIONS:
                if len(rest) != 1:
                    bad(f"malformed statement '{text}': {action} takes one state name; write \"{action} STATE\"")
                arg = rest[0]
            elif action in ("fail", "maybe-fail"):
                if len(rest) > 1:
                    bad(f"malformed statement '{text}': {action} takes at most one errno; write \"{action} -ENODEV\"")
                errno = -ERRNOS["EINVAL"]
                if rest:
                    e = rest[0]
                    if e.startswith("-") and e[1:] in ERRNOS:
                        errno = -ERRNOS[e[1:]]
                    elif re.fullmatch(r"-[1-9][0-9]*", e):
                        errno = int(e)
                    elif action == "fail" and e in params:   # return the parameter's value (0: go on)
                        errno, arg = None, e
                    else:
                        hint = " or one of the patch's params" if action == "fail" else ""
                        bad(f"bad errno '{e}' in '{text}'; write a negative errno such as -EINVAL, -ENODEV, -ENOMEM or -19{hint}")
            elif action in ("return", "banner"):
                if rest:
                    bad(f"malformed statement '{text}': {action} takes no argument; write \"{action}\"")
            else:
                known = ", ".join(STATE_ACTIONS + ("fail", "maybe-fail", "return", "log", "banner"))
                bad(f"unknown action '{action}' in '{text}'; known actions: {known}")
        if only_log and action != "log":
            bad(f"'{action}' is not allowed in {callback}; a target module's init and exit take only 'log \"TEXT\"' statements")
        if action in ("fail", "maybe-fail") and callback != "pre_patch":
            fix = "only pre_patch can stop loading (move it to pre_patch)" if callback != "pre_patch_error" \
                else "pre_patch_error runs after the failure; remove it"
            bad(f"'{action}' is not allowed in {callback}; {fix}")
        if arg is not None and action not in ("log", "fail") and arg not in declared:
            bad(f"'{text}' names state '{arg}', which patch '{patch}' does not declare; add {arg} = VERSION to the patch's states")
        cond = None
        pm = re.fullmatch(r"(if|unless)\s+param\s+(\S+)", cond_text.strip()) if cond_text else None
        if pm:
            if pm.group(2) not in params:
                bad(f"'param {pm.group(2)}' in '{text}' names no parameter of this module; declare it in params")
            cond = Cond(pm.group(1) == "unless", pm.group(2), param=True)
        elif cond_text:
            cm = re.fullmatch(r"(if|unless)\s+prev\s+(\S+)(?:\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]+))?", cond_text.strip())
            if not cm:
                bad(f"malformed condition '{cond_text}' in '{text}'; write 'if prev STATE' or 'unless prev STATE >= 2'")
            if cm.group(2) not in declared:
                bad(f"'prev {cm.group(2)}' in '{text}' names a state that patch '{patch}' does not declare; klp_get_prev_state needs an id the patch declares")
            cond = Cond(cm.group(1) == "unless", cm.group(2), cm.group(3), int(cm.group(4)) if cm.group(4) else None)
        return Stmt(action, arg, errno, cond, text, line)


_TOML_HINTS = (
    ("Cannot overwrite a value", "a key is given twice in one table; keep one of them"),
    ("Cannot declare", "a table header is written twice; merge the two tables"),
    ("Invalid value", "a value is missing or malformed after '='"),
    ("Unclosed array", "an array is missing its closing ']'"),
    ("Illegal character", "a string is not closed or holds a raw control character"),
)


def load_spec(path: str | Path) -> Spec:
    """Read, parse and validate a spec file. Raises UserError on any mistake."""
    import hashlib

    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UserError("no such file; give the path of a spec .toml file", path=str(path)) from None
    except IsADirectoryError:
        raise UserError("is a directory; give the path of a spec .toml file", path=str(path)) from None
    except OSError as e:
        raise UserError(f"cannot read: {e.strerror}", path=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text; a spec is a TOML file", path=str(path), line=1) from None
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
                        path=str(path), line=line) from None
    spec = _Loader(str(path), text).load(data)
    return _with_digest(spec, hashlib.sha256(raw).hexdigest())


def _with_digest(spec: Spec, digest: str) -> Spec:
    from dataclasses import replace
    return replace(spec, digest=digest)
