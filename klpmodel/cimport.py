"""`klpmodel import`: a spec written from livepatch modules' C source.

The C is read with tree-sitter's C grammar (no preprocessor, no kernel headers). Each file
is one `[[patch]]` (or, without a `struct klp_patch`, a target module's `[modules.NAME]`).
The patch comes from the `klp_patch` / `klp_object` / `klp_state` / `klp_func`
initialisers; each callback's statements come from its body, with calls to static
functions of the same file inlined and the `klp_get_prev_state()` tests turned into
`if prev S` / `unless prev S` conditions.

Every construct in a callback either becomes the statement it means or a `log "TODO ..."`
placeholder plus a warning `FILE:LINE: not understood: <C text>; write the statement by
hand`; nothing is dropped silently. What is recognised is in the tables and the
`_Fn.call_*` / `_Fn.assign` methods below; docs/import.md lists it for users.

Adding a recogniser for a call is one entry in `CALLS` (name -> method). The
shadow-variable API (`klp_shadow_alloc/get/get_or_alloc/free/free_all`) is read by
`ShadowReader`: in callbacks, in the livepatch module's init/exit, and in the patched
functions (`.new_func`), whose shadow calls become the patch's `[patch.code]`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import InternalError, UserError
from .spec import CALLBACKS, ERRNOS, NAME_RE

if TYPE_CHECKING:
    from tree_sitter import Node, Tree

PRINTK = ("pr_info", "pr_notice", "pr_warn", "pr_warning", "pr_err", "pr_crit", "pr_alert", "pr_emerg")
ALLOCATORS = ("kzalloc", "kmalloc", "kcalloc", "kmalloc_array", "kvzalloc", "kvmalloc", "kvcalloc",
              "vzalloc", "vmalloc", "kmemdup")
FREES = ("kfree", "kvfree", "kfree_sensitive", "vfree")
COMMENT_TYPES = ("comment",)
MAX_INLINE = 16                  # helper calls nested deeper than this are not inlined (recursion)
MAX_MACRO = 16                   # macro expansions nested deeper than this are not expanded
MAX_INCLUDE = 8
VERSIONS = 64                    # versions compared in conditions are below this
BANNER_FORMATS = frozenset({"%s: %s -> %s\n", "%s: vmlinux\n"})
PR_FMT = 'KBUILD_MODNAME ": " fmt'
CMP_OPS = (">=", "==", "<", ">", "<=", "!=")
NEGATED = {">=": "<", "<": ">=", "==": "!=", "!=": "==", ">": "<=", "<=": ">"}
T = TypeVar("T")


# --------------------------------------------------------------------------- parsing


def _parser():
    try:
        import tree_sitter_c
        from tree_sitter import Language, Parser
    except ImportError as e:                                    # pragma: no cover - a broken install
        raise UserError(f"klpmodel import needs the tree-sitter C parser ({e}); "
                        f"install it with: pip install tree-sitter tree-sitter-c") from None
    return Parser(Language(tree_sitter_c.language()))


def _one_line(text: str, limit: int = 72) -> str:
    """C text as one printable line: whitespace collapsed, control characters dropped, no final ';'."""
    text = re.sub(r"\s+", " ", text).strip().removesuffix(";").rstrip()
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


class Src:
    """One parsed C text: a file, or a macro's expansion (whose lines are the use's line)."""

    def __init__(self, shown: str, tree, path: Path | None = None, at: tuple[str, int] | None = None):
        self.shown = shown
        self.tree = tree
        self.path = path
        self.at = at                      # (shown, line) of the macro use this text expands

    def line(self, node) -> int:
        return self.at[1] if self.at else node.start_point[0] + 1

    def where(self, node) -> str:
        return f"{self.at[0]}:{self.at[1]}" if self.at else f"{self.shown}:{node.start_point[0] + 1}"


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _kids(node) -> list:
    return [c for c in node.named_children if c.type not in COMMENT_TYPES]


def _strip(node):
    while node is not None and node.type == "parenthesized_expression":
        kids = _kids(node)
        if len(kids) != 1:
            break
        node = kids[0]
    return node


def _declared_name(decl) -> str | None:
    while decl is not None and decl.type in ("pointer_declarator", "array_declarator", "init_declarator",
                                             "function_declarator", "parenthesized_declarator"):
        decl = decl.child_by_field_name("declarator") or (_kids(decl)[0] if _kids(decl) else None)
    return _text(decl) if decl is not None and decl.type == "identifier" else None


def _type_name(decl_node) -> str:
    t = decl_node.child_by_field_name("type")
    if t is None:
        return ""
    if t.type in ("struct_specifier", "union_specifier", "enum_specifier"):
        name = t.child_by_field_name("name")
        return f"{t.type.split('_')[0]} {_text(name)}" if name is not None else t.type
    return _text(t)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?", "e": "\x1b"}


def _unescape(seq: str) -> str:
    body = seq[1:]
    if body in _ESCAPES:
        return _ESCAPES[body]
    if re.fullmatch(r"[0-7]{1,3}", body):
        return chr(int(body, 8))
    if re.fullmatch(r"x[0-9a-fA-F]+", body):
        return chr(int(body[1:], 16) & 0xFF)
    return body


def _c_int(text: str) -> int | None:
    t = text.strip().rstrip("uUlL").replace("'", "")
    if t[:1] in "-+":                                   # the grammar keeps a literal's sign in it
        n = _c_int(t[1:])
        return None if n is None else (-n if t[0] == "-" else n)
    try:
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", t):
            return int(t, 16)
        if re.fullmatch(r"0[bB][01]+", t):
            return int(t[2:], 2)
        if re.fullmatch(r"0[0-7]*", t):
            return int(t, 8)
        if re.fullmatch(r"[1-9][0-9]*", t):
            return int(t)
    except ValueError:
        return None
    return None


# --------------------------------------------------------------------------- one input file


@dataclass
class Macro:
    src: Src
    node: Node
    params: tuple[str, ...] | None      # None: object-like
    body: str


# a top-level variable's declaration: (src, declarator, type name, initializer or None)
VarDecl = tuple[Src, "Node", str, "Node | None"]


@dataclass
class Note:
    """A warning: FILE:LINE: message."""
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class Unit:
    """One input file and the files it includes with #include "...": its top-level names."""

    def __init__(self, path: Path, parser, notes: list[Note]):
        self.path = path
        self.parser = parser
        self.notes = notes
        self.files: list[Path] = []
        self.macros: dict[str, Macro] = {}
        self.funcs: dict[str, tuple[Src, Node]] = {}
        self.vars: dict[str, list[VarDecl]] = {}                         # name -> (src, declarator, type, value)
        self.enums: dict[str, tuple[Src, Node]] = {}
        self.params: list[tuple[str, str, Src, Node]] = []              # (name, variable, src, node)
        self.module_init: tuple[str, Src, Node] | None = None
        self.module_exit: tuple[str, Src, Node] | None = None
        self.pr_fmt: str | None = None
        self.errors = False
        self._snippets: dict[str, Tree] = {}
        src = self._load(path, str(path), 0)
        self.main = src

    # ---- reading
    def _load(self, path: Path, shown: str, depth: int) -> Src:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError("no such file; give the path of a livepatch module's C source", path=shown) from None
        except IsADirectoryError:
            raise UserError("is a directory; give the path of a livepatch module's C source (.c)", path=shown) from None
        except OSError as e:
            raise UserError(f"cannot read: {e.strerror}", path=shown) from None
        if b"\0" in data:
            raise UserError("not C source (it holds NUL bytes); give a livepatch module's .c file", path=shown)
        tree = self.parser.parse(data)
        src = Src(shown, tree, path)
        self.files.append(path)
        if tree.root_node.has_error:
            self.errors = True
        self._items(src, tree.root_node, depth)
        return src

    def _items(self, src: Src, parent, depth: int) -> None:
        for n in parent.named_children:
            t = n.type
            if t in ("preproc_ifdef", "preproc_if", "preproc_else", "preproc_elif", "preproc_elifdef"):
                if t in ("preproc_ifdef", "preproc_if"):
                    head = _text(n).split("\n", 1)[0]
                    self.notes.append(Note(src.where(n), f"not understood: {_one_line(head)}; conditional "
                                           "compilation is not evaluated: every branch is read, check the spec"))
                self._items(src, n, depth)
            elif t == "preproc_include":
                self._include(src, n, depth)
            elif t == "preproc_def":
                name, value = n.child_by_field_name("name"), n.child_by_field_name("value")
                self.macros[_text(name)] = Macro(src, n, None, _text(value).strip() if value is not None else "")
            elif t == "preproc_function_def":
                name, value = n.child_by_field_name("name"), n.child_by_field_name("value")
                params = tuple(_text(p) for p in _kids(n.child_by_field_name("parameters")))
                body = _text(value).strip() if value is not None else ""
                if _text(name) == "pr_fmt":
                    self.pr_fmt = re.sub(r"\s+", " ", body)
                self.macros[_text(name)] = Macro(src, n, params, body)
            elif t == "function_definition":
                name = _declared_name(n.child_by_field_name("declarator"))
                if name:
                    self.funcs[name] = (src, n)
            elif t == "declaration":
                tname = _type_name(n)
                for d in n.children_by_field_name("declarator"):
                    name = _declared_name(d)
                    if name:
                        value = d.child_by_field_name("value") if d.type == "init_declarator" else None
                        self.vars.setdefault(name, []).append((src, d, tname, value))
                self._enum(src, n.child_by_field_name("type"))
            elif t == "enum_specifier":
                self._enum(src, n)
            elif t == "expression_statement":
                self._top_call(src, n)

    def _enum(self, src: Src, node) -> None:
        if node is None or node.type != "enum_specifier" or node.child_by_field_name("body") is None:
            return
        for e in _kids(node.child_by_field_name("body")):
            if e.type == "enumerator":
                self.enums[_text(e.child_by_field_name("name"))] = (src, e)

    def _include(self, src: Src, node, depth: int) -> None:
        p = node.child_by_field_name("path")
        if p is None or p.type != "string_literal":
            return                                   # <linux/...>: kernel headers are not read
        name = "".join(_text(c) for c in p.named_children if c.type == "string_content")
        target = (src.path.parent if src.path else Path(".")) / name
        shown = str(Path(src.shown).parent / name) if src.shown else name
        if depth >= MAX_INCLUDE or any(target.resolve() == f.resolve() for f in self.files):
            self.notes.append(Note(src.where(node), f"not understood: #include \"{_one_line(name)}\"; "
                                   "it is included recursively, and is read once"))
            return
        if not target.is_file():
            self.notes.append(Note(src.where(node), f"not understood: #include \"{_one_line(name)}\"; the file "
                                   "is not beside the source, so its definitions are not imported: give it there"))
            return
        self._load(target, shown, depth + 1)

    def _top_call(self, src: Src, node) -> None:
        call = _strip(_kids(node)[0]) if _kids(node) else None
        if call is None or call.type != "call_expression":
            return
        fn = call.child_by_field_name("function")
        args = _kids(call.child_by_field_name("arguments"))
        name = _text(fn) if fn is not None else ""
        if name in ("module_init", "module_exit") and len(args) == 1:
            setattr(self, name, (_text(args[0]), src, node))
        elif name == "module_param" and len(args) == 3:
            self.params.append((_text(args[0]), _text(args[0]), src, node))
        elif name == "module_param_named" and len(args) == 4:
            self.params.append((_text(args[0]), _text(args[1]), src, node))

    # ---- lookups
    def var(self, name: str, type_: str | None = None) -> VarDecl | None:
        """The defining declaration of a top-level variable (the one with an initializer)."""
        found = [v for v in self.vars.get(name, []) if type_ is None or v[2] == type_]
        init = [v for v in found if v[3] is not None]
        best = init or found
        return best[-1] if best else None

    def of_type(self, type_: str) -> list[tuple[str, Src, Node, Node]]:
        out = []
        for name, decls in self.vars.items():
            for src, d, t, value in decls:
                if t == type_ and value is not None:
                    out.append((name, src, d, value))
        return out

    def snippet(self, text: str, where: tuple[str, int]) -> tuple[Src, list]:
        """A macro's expansion parsed as the statements of a function body."""
        tree = self._snippets.get(text)
        if tree is None:
            tree = self.parser.parse(f"void __klpmodel_expansion(void)\n{{\n{text}\n;\n}}\n".encode())
            self._snippets[text] = tree
        body = tree.root_node.named_children[0].child_by_field_name("body") if tree.root_node.named_children else None
        if tree.root_node.has_error or body is None:
            return Src(where[0], tree, at=where), []
        return Src(where[0], tree, at=where), [s for s in _kids(body) if s.type != "expression_statement" or _kids(s)]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class V:
    """What a C expression denotes, as far as the importer cares."""
    kind: str          # own | prev | nostate | data | deref | version | obj | objmod | objname | patch
    #                    param | int | str | null | global | local | func | unknown
    name: str | None = None        # state, parameter, global, local or function name
    via: str | None = None         # data/deref: "own" (klp_get_state) or "prev" (klp_get_prev_state)
    value: Any = None              # the constant: an int (kind int) or a str (kind str); `kind` says which

    @property
    def ident(self) -> str:
        """The name of a value of a kind that has one (a state, a global, a parameter, ...)."""
        if self.name is None:
            raise InternalError(f"import: a value of kind {self.kind} without its name")
        return self.name


UNKNOWN = V("unknown")


# Conditions are sets over a small domain per key: ("prev", S) -> {None, 0..VERSIONS-1}
# (NULL, or the version of the state klp_get_prev_state returns); ("param", P) -> {0, 1}.
def _domain(key: tuple) -> frozenset:
    return frozenset({None, *range(VERSIONS)}) if key[0] == "prev" else frozenset({0, 1})


def _cmp(v, op: str, n: int) -> bool:
    return {"<": v < n, "<=": v <= n, "==": v == n, "!=": v != n, ">=": v >= n, ">": v > n}[op]


@dataclass(frozen=True)
class F:
    """A condition: a constant, or a set of allowed values of one key."""
    const: bool | None = None
    key: tuple | None = None
    allowed: frozenset = frozenset()
    hints: tuple = ()               # comparisons as the C wrote them ("prev S < 2"), tried first

    def neg(self) -> F:
        if self.key is None:
            return F(const=not self.const)
        return F(key=self.key, allowed=_domain(self.key) - self.allowed, hints=self.hints)


def _combine(a: F | None, b: F | None, op: str) -> F | None:
    if a is None or b is None:
        return None
    for x, y in ((a, b), (b, a)):
        if x.key is None:
            if op == "&&":
                return y if x.const else F(const=False)
            return F(const=True) if x.const else y
    if a.key != b.key:
        return None
    return F(key=a.key, allowed=(a.allowed & b.allowed) if op == "&&" else (a.allowed | b.allowed),
             hints=a.hints + b.hints)


class PC:
    """The path condition: key -> allowed values (a conjunction); `broken` when it is not one."""

    def __init__(self, sets: dict | None = None, broken: bool = False, hints: tuple = ()):
        self.sets = dict(sets or {})
        self.broken = broken
        self.hints = hints

    def and_(self, f: F) -> PC | None:
        """None when the conjunction is unsatisfiable (the branch is dead)."""
        if f.key is None:
            return self if f.const else None
        sets = dict(self.sets)
        sets[f.key] = sets.get(f.key, _domain(f.key)) & f.allowed
        if not sets[f.key]:
            return None
        return PC(sets, self.broken, self.hints + f.hints)

    def union(self, other: PC) -> PC:
        keys = set(self.sets) | set(other.sets)
        if self.broken or other.broken:
            return PC(broken=True)
        diff = [k for k in keys if self.sets.get(k, _domain(k)) != other.sets.get(k, _domain(k))]
        if len(diff) > 1:
            return PC(broken=True)
        sets = dict(self.sets)
        for k in diff:
            sets[k] = self.sets.get(k, _domain(k)) | other.sets.get(k, _domain(k))
        return PC(sets, hints=self.hints + other.hints)

    def condition(self) -> str | None:
        """The spec's condition text ('' for none), or None when one condition cannot say it."""
        if self.broken:
            return None
        live = {k: s for k, s in self.sets.items() if s != _domain(k)}
        if not live:
            return ""
        if len(live) > 1:
            return None
        (key, allowed), = live.items()
        kind, name = key
        if kind == "param":
            return f"if param {name}" if allowed == frozenset({1}) else f"unless param {name}"
        full = _domain(key)
        some = full - {None}
        candidates = [("if", f"prev {name}", some), ("unless", f"prev {name}", full - some)]
        for n in range(VERSIONS - 1):
            for op in CMP_OPS:
                s = frozenset(v for v in some if _cmp(v, op, n))
                candidates += [("if", f"prev {name} {op} {n}", s), ("unless", f"prev {name} {op} {n}", full - s)]
        candidates.sort(key=lambda c: c[1] not in self.hints)            # as the C wrote it, if it can
        for word, lit, s in candidates:
            if s == allowed:
                return f"{word} {lit}"
        return None


# --------------------------------------------------------------------------- output model


@dataclass
class Line:
    stmt: str                 # the statement (spec text), without its condition
    cond: str                 # '' or 'if prev S' ...
    where: str                # FILE:LINE of the C
    ctext: str                # the C, one line
    todo: bool = False

    @property
    def text(self) -> str:
        return f"{self.stmt} {self.cond}" if self.cond else self.stmt


@dataclass
class Item(Generic[T]):
    """A key's value with the C it came from."""
    value: T
    where: str
    ctext: str


@dataclass
class OutObj:
    name: str
    where: str
    ctext: str
    funcs: list[Item[str]] = field(default_factory=list)
    callbacks: dict[str, tuple[list[Line], Item[None]]] = field(default_factory=dict)
    code: list[tuple[Item[str], list[Line]]] = field(default_factory=list)     # patched function -> statements


@dataclass
class OutPatch:
    name: str
    file: str
    replace: Item[bool] | None = None
    replace_param: Item[str] | None = None
    states: list[tuple[str, Item[int]]] = field(default_factory=list)        # state name -> Item(version)
    params: list[tuple[str, Item[int | bool]]] = field(default_factory=list)  # name -> Item(default)
    objects: list[OutObj] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)             # constructs outside the callbacks not imported
    shadows: dict[str, Item[str | None]] = field(default_factory=dict)   # shadow variable -> Item(layout)
    init: list[Line] = field(default_factory=list)                # the module's init before klp_enable_patch
    exit: list[Line] = field(default_factory=list)                # the module's exit


@dataclass
class OutModule:
    name: str
    where: str
    ctext: str
    params: list[tuple[str, Item[int | bool]]] = field(default_factory=list)
    init: list[Line] = field(default_factory=list)
    exit: list[Line] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the importer


class Importer:
    def __init__(self) -> None:
        self.parser = _parser()
        self.notes: list[Note] = []
        self.state_names: dict[int, Item[str]] = {}     # klp_state.id -> Item(name)
        self.shadow_names: dict[int, Item[str]] = {}    # shadow id -> Item(name)
        self.globals: dict[str, set[str]] = {}      # C global -> the states whose value it is
        self.units: list[Unit] = []
        self.collecting = False                     # first pass: learn which global is which state

    def warn(self, where: str, message: str) -> None:
        if not self.collecting:
            self.notes.append(Note(where, message))

    # ---- constants (struct initialisers, macro values, ids, versions)
    def const(self, unit: Unit, src: Src, node, depth: int = 0) -> V:
        return _Fn(self, unit, None, "", {}, None, depth=0).ev(src, node, depth)

    # ---- the whole run
    def run(self, paths: list[Path]) -> tuple[list[OutPatch], list[OutModule]]:
        for p in paths:
            self.units.append(Unit(p, self.parser, self.notes))
        for u in self.units:
            if not self._patch_decl(u) and u.module_init is None and u.module_exit is None:
                what = "it cannot be parsed as C" if u.errors else "it defines no struct klp_patch and no module_init"
                raise UserError(f"{what}; give the C source of a livepatch module (or of a module it patches)",
                                path=str(u.path))
        if not any(self._patch_decl(u) for u in self.units):
            raise UserError("none of the files defines a struct klp_patch; give at least one livepatch module's C source")
        self._name_states()
        self.collecting = True
        notes = len(self.notes)
        self._translate()
        del self.notes[notes:]
        self.collecting = False
        return self._translate()

    def shadow_name(self, u: Unit, src: Src, idnode, sid: int) -> str:
        """The spec name of shadow id sid: its macro or enumerator lowercased (SV_LEAK: sv_leak),
        else shadow_N; two files using the same id use the same shadow variable."""
        if sid in self.shadow_names:
            return self.shadow_names[sid].value
        n = _strip(idnode)
        name = f"shadow_{sid}"
        mac = None
        if n is not None and n.type == "identifier" and (_text(n) in u.macros or _text(n) in u.enums):
            base = _text(n).lower()
            if NAME_RE.match(base) and len(base) <= 55:
                name = base
            m = u.macros.get(_text(n))
            mac = (m.src.where(m.node), _one_line(_text(m.node))) if m is not None else \
                (u.enums[_text(n)][0].where(u.enums[_text(n)][1]), _one_line(_text(u.enums[_text(n)][1])))
        taken = {it.value for it in self.state_names.values()} | {it.value for it in self.shadow_names.values()}
        if name in taken:
            name = f"{name}_{sid}" if f"{name}_{sid}" not in taken else f"shadow_{sid}"
        where, ctext = mac or (src.where(idnode), _one_line(_text(idnode)))
        self.shadow_names[sid] = Item(name, where, ctext)
        return name

    def _patch_decl(self, u: Unit):
        found = u.of_type("struct klp_patch")
        return found[0] if found else None

    def _module_name(self, u: Unit) -> str:
        stem = u.path.name[:-2] if u.path.name.endswith(".c") else u.path.stem
        name = stem.replace("-", "_")                         # KBUILD_MODNAME
        if not NAME_RE.match(name):
            fixed = re.sub(r"[^A-Za-z0-9_]", "_", name)
            fixed = fixed if NAME_RE.match(fixed) else "m_" + fixed
            self.warn(f"{u.path}", f"module name '{_one_line(name)}' (from the file name) is not a valid spec name "
                      f"(letters, digits, '_'); imported as {fixed}: rename it in the spec to the module's name")
            name = fixed
        return name

    # ---- states: ids and names, in the order the files declare them
    def _fields(self, u: Unit, src: Src, init) -> list[tuple[str, Src, Node, Node | None]]:
        """(field, src, pair node, value) of a designated initializer `{ .f = v, ... }`."""
        out: list[tuple[str, Src, Node, Node | None]] = []
        init = self._resolve_init(u, src, init)
        if init is None:
            return out
        src, init = init
        for pair in _kids(init):
            if pair.type != "initializer_pair":
                out.append(("", src, pair, pair))
                continue
            value = pair.child_by_field_name("value")
            names = []
            for des in pair.children_by_field_name("designator"):
                kids = _kids(des)
                names.append(_text(kids[0]) if des.type == "field_designator" and kids else "[" + _text(des) + "]")
            out.append((".".join(names), src, pair, value))           # .callbacks.pre_patch = f: "callbacks.pre_patch"
        return out

    def _resolve_init(self, u: Unit, src: Src, node, depth: int = 0):
        """An initializer list, through object-like macros."""
        node = _strip(node)
        if node is None:
            return None
        if node.type == "initializer_list":
            return src, node
        if node.type == "identifier" and _text(node) in u.macros and depth < MAX_MACRO:
            m = u.macros[_text(node)]
            if m.params is None:
                ssrc, stmts = u.snippet(f"static int __klpmodel_value = {m.body};", (src.shown, src.line(node)))
                if stmts and stmts[0].type == "declaration":
                    d = stmts[0].child_by_field_name("declarator")
                    if d is not None and d.type == "init_declarator":
                        return self._resolve_init(u, ssrc, d.child_by_field_name("value"), depth + 1)
        return None

    def _array(self, u: Unit, src: Src, node, type_: str):
        """The elements of a top-level array named by node (`objs`), or None."""
        node = _strip(node)
        if node is None:
            return None
        if node.type == "identifier":
            v = u.var(_text(node), type_)
            if v is None or v[3] is None:
                return None
            r = self._resolve_init(u, v[0], v[3])
            if r is None:
                return None
            return r[0], [e for e in _kids(r[1]) if not (e.type == "initializer_list" and not _kids(e))]
        return None

    def _state_name_for(self, u: Unit, src: Src, idnode, sid: int) -> str:
        n = _strip(idnode)
        if n is not None and n.type == "identifier" and (_text(n) in u.macros or _text(n) in u.enums):
            base = _text(n).lower()
            for suffix in ("_state_id", "_state", "_id"):
                if base.endswith(suffix) and len(base) > len(suffix):
                    base = base[:-len(suffix)]
                    break
            for prefix in ("klp_state_", "klp_"):
                if base.startswith(prefix) and len(base) > len(prefix):
                    base = base[len(prefix):]
            if NAME_RE.match(base):
                return base
        return f"state_{sid}"

    def _states_of(self, u: Unit, pname: str, psrc: Src, pvalue) -> list[tuple[int, Item[int], Node | None, Src]]:
        """(id, Item(version), id node, src) of the patch's klp_state array."""
        out = []
        for fname, src, pair, value in self._fields(u, psrc, pvalue):
            if fname != "states":
                continue
            arr = self._array(u, src, value, "struct klp_state")
            if arr is None:
                self.warn(src.where(pair), f"not understood: {_one_line(_text(pair))}; declare the patch's states "
                          "by hand: states = { NAME = VERSION } and [states.NAME] id = ID")
                continue
            asrc, elems = arr
            for e in elems:
                sid, version, idnode, ok = None, 0, None, True
                for f, fsrc, fpair, fvalue in self._fields(u, asrc, e):
                    v = self.const(u, fsrc, fvalue)
                    if f == "id" and v.kind == "int" and v.value > 0:
                        sid, idnode = v.value, fvalue
                    elif f == "version" and v.kind == "int" and v.value >= 0:
                        version = v.value
                    else:
                        ok = False
                        self.warn(fsrc.where(fpair), f"not understood: {_one_line(_text(fpair))}; write this "
                                  "klp_state field in the spec by hand (a state has an id > 0 and a version >= 0)")
                if sid is None:
                    if ok:
                        self.warn(asrc.where(e), f"not understood: {_one_line(_text(e))}; a klp_state needs a "
                                  "constant .id > 0: write the state by hand")
                    continue
                out.append((sid, Item(version, asrc.where(e), _one_line(_text(e))), idnode, asrc))
        return out

    def _name_states(self) -> None:
        used: dict[str, int] = {}
        for u in self.units:
            decl = self._patch_decl(u)
            if decl is None:
                continue
            _, psrc, _, pvalue = decl
            collecting, self.collecting = self.collecting, True          # warnings come in _translate
            states = self._states_of(u, "", psrc, pvalue)
            self.collecting = collecting
            for sid, item, idnode, src in states:
                if sid in self.state_names:
                    continue
                name = self._state_name_for(u, src, idnode, sid)
                if name in used:
                    name = f"{name}_{sid}"
                used[name] = sid
                n = _strip(idnode)
                mac = (u.macros.get(_text(n)) or u.enums.get(_text(n))) if n is not None and n.type == "identifier" else None
                if isinstance(mac, tuple):
                    mac = Macro(mac[0], mac[1], None, "")                 # an enumerator
                where, ctext = (mac.src.where(mac.node), _one_line(_text(mac.node))) if mac else (item.where, item.ctext)
                self.state_names[sid] = Item(name, where, ctext)

    # ---- patches and modules
    def _translate(self) -> tuple[list[OutPatch], list[OutModule]]:
        patches: list[OutPatch] = []
        modules: dict[str, OutModule] = {}
        target_units: list[tuple[Unit, str]] = []
        names: set[str] = set()
        for u in self.units:
            name = self._module_name(u)
            decl = self._patch_decl(u)
            if decl is None:
                target_units.append((u, name))
                continue
            if name in names:
                fixed = next(f"{name}_{i}" for i in range(2, 1000) if f"{name}_{i}" not in names)
                self.warn(str(u.path), f"a patch named {name} is already imported (the same module given twice?); "
                          f"this one is imported as {fixed}")
                name = fixed
            names.add(name)
            patches.append(self._patch(u, name, decl, modules))
        for u, name in target_units:
            mod = modules.get(name)
            if mod is None:
                self.warn(str(u.path), f"no livepatch given patches module {name}; it is imported as "
                          f"[modules.{name}] anyway: remove it if no patch needs it")
                mod = modules[name] = OutModule(name, str(u.path), "")
            self._target(u, mod)
        for p in patches:                       # layouts the C of one file does not say: another file's
            for sv, it in p.shadows.items():
                if it.value is not None:
                    continue
                other = next((q.shadows[sv] for q in patches if sv in q.shadows and q.shadows[sv].value), None)
                if other is not None:
                    p.shadows[sv] = Item(other.value, other.where, other.ctext)
                else:
                    layout = f"{sv}_data"[:55]
                    self.warn(it.where, f"the layout of shadow variable {sv} (the type of its data) is not "
                              f"resolvable from sizeof() or the pointer it is stored in; imported as {layout}: "
                              "write the struct's name (two patches sharing the variable agree on it)")
                    p.shadows[sv] = Item(layout, it.where, it.ctext)
        for p in patches:
            if p.name in modules:
                fixed = f"{p.name}_lp"
                self.warn(p.file, f"patch {p.name} is also the name of a target module; it is imported as {fixed}")
                p.name = fixed
        return patches, list(modules.values())

    def _patch(self, u: Unit, name: str, decl, modules: dict[str, OutModule]) -> OutPatch:
        pvar, psrc, pdecl, pvalue = decl
        out = OutPatch(name, str(u.path))
        if len(u.of_type("struct klp_patch")) > 1:
            self.warn(psrc.where(pdecl), f"the file defines more than one struct klp_patch; {pvar} is imported")
        # states
        states: dict[int, str] = {}
        for sid, item, _, _ in self._states_of(u, name, psrc, pvalue):
            sname = self.state_names[sid].value
            if sid in states:
                self.warn(item.where, f"not understood: {item.ctext}; state id {sid} is declared twice in this "
                          "patch (the kernel takes the first): remove one")
                continue
            states[sid] = sname
            out.states.append((sname, item))
        # parameters
        for pname, var, src, node in u.params:
            default = self._param_default(u, var, src, node)
            if default is None:
                continue
            if pname != var:
                self.warn(src.where(node), f"not understood: {_one_line(_text(node))}; the parameter {pname} is "
                          f"the variable {var}, which the spec cannot tell apart: check its uses")
            out.params.append((pname, Item(default, src.where(node), _one_line(_text(node)))))
        params = {var: pname for pname, var, _, _ in u.params if any(p == pname for p, _ in out.params)}
        ctx = Patchctx(u, pvar, states, params, name)
        # struct klp_patch fields
        objs_seen = False
        for f, src, pair, value in self._fields(u, psrc, pvalue):
            if f == "replace":
                v = self.const(u, src, value)
                if v.kind == "int":
                    out.replace = Item(bool(v.value), src.where(pair), _one_line(_text(pair)))
                else:
                    self.warn(src.where(pair), f"not understood: {_one_line(_text(pair))}; write replace = true "
                              "or false in the spec by hand")
            elif f == "objs":
                objs_seen = True
                arr = self._array(u, src, value, "struct klp_object")
                if arr is None:
                    self.warn(src.where(pair), f"not understood: {_one_line(_text(pair))}; write the patch's "
                              "objects by hand as [patch.objects.NAME]")
                    continue
                for e in arr[1]:
                    obj = self._object(u, arr[0], e, ctx, modules)
                    if obj is None:
                        continue
                    if any(o.name == obj.name for o in out.objects):
                        self.warn(obj.where, f"not understood: {obj.ctext}; the patch already has an object "
                                  f"{obj.name}: merge the two by hand")
                        continue
                    out.objects.append(obj)
            elif f in ("mod", "states"):
                pass
            else:
                self.warn(src.where(pair), f"not understood: {_one_line(_text(pair))}; this klp_patch field has no "
                          "key in the spec: check the spec by hand")
        if not objs_seen:
            self.warn(psrc.where(pdecl), f"not understood: struct klp_patch {pvar} has no .objs; write the "
                      "patch's objects by hand")
        # the module's init: klp_enable_patch, maybe `patch.replace = ...`
        for which in ("module_init", "module_exit"):
            self._lp_init_exit(u, which, ctx, out)
        out.shadows = ctx.shadows
        seen: set[str] = set()
        for o in out.objects:
            for fit, _ in o.code:
                if fit.value in seen:
                    self.warn(fit.where, f"not understood: {fit.ctext}; the patch's code for {fit.value} is already "
                              "imported from another object (the spec's code has one list per function): merge by hand")
                seen.add(fit.value)
        return out

    def _param_default(self, u: Unit, var: str, src: Src, node) -> int | bool | None:
        v = u.var(var)
        if v is None:
            self.warn(src.where(node), f"not understood: {_one_line(_text(node))}; the variable {var} is not "
                      "defined in the file: declare the parameter by hand in params")
            return None
        vsrc, d, tname, value = v
        if not re.fullmatch(r"(unsigned |signed )?(bool|_Bool|char|short|int|long|long long|unsigned|u8|u16|u32|"
                            r"u64|s8|s16|s32|s64|size_t)", tname):
            self.warn(src.where(node), f"not understood: {_one_line(_text(node))}; only integer and boolean "
                      "parameters are in the spec: declare this one by hand if a callback uses it")
            return None
        is_bool = tname in ("bool", "_Bool")
        if value is None:
            return False if is_bool else 0
        c = self.const(u, vsrc, value)
        if c.kind != "int":
            self.warn(vsrc.where(d), f"not understood: {_one_line(_text(d))}; give the parameter's default by hand")
            return False if is_bool else 0
        return bool(c.value) if is_bool else c.value

    def _object(self, u: Unit, src: Src, e, ctx: Patchctx, modules: dict[str, OutModule]) -> OutObj | None:
        name, name_pair, funcs, cbs = "vmlinux", None, [], []
        new_funcs: list[tuple[Item[str], str]] = []
        fields = self._fields(u, src, e)
        if e.type != "initializer_list":
            self.warn(src.where(e), f"not understood: {_one_line(_text(e))}; write this object by hand as "
                      "[patch.objects.NAME]")
            return None
        for f, fsrc, pair, value in fields:
            if f == "name":
                v = self.const(u, fsrc, value)
                name_where = fsrc.where(pair)
                if v.kind == "null":
                    name, name_pair = "vmlinux", pair
                elif v.kind == "str" and v.value == "vmlinux":
                    self.warn(fsrc.where(pair), f"not understood: {_one_line(_text(pair))}; a module object cannot be "
                              "called vmlinux (NULL is vmlinux): write the object by hand")
                    return None
                elif v.kind == "str":
                    name, name_pair = v.value, pair
                else:
                    self.warn(fsrc.where(pair), f"not understood: {_one_line(_text(pair))}; the object's name must be "
                              "NULL (vmlinux) or a string: write the object by hand")
                    return None
            elif f == "funcs":
                arr = self._array(u, fsrc, value, "struct klp_func")
                if arr is None:
                    self.warn(fsrc.where(pair), f"not understood: {_one_line(_text(pair))}; write the object's "
                              "funcs = [\"FUNCTION\", ...] by hand")
                    continue
                for fe in arr[1]:
                    old, new = None, None
                    for ff, ffsrc, fpair, fvalue in self._fields(u, arr[0], fe):
                        if ff == "new_func":
                            nv = self.const(u, ffsrc, fvalue)
                            new = nv.name if nv.kind == "func" else None
                        if ff == "old_name":
                            v = self.const(u, ffsrc, fvalue)
                            if v.kind == "str":
                                old = Item(v.value, ffsrc.where(fpair), _one_line(_text(fpair)))
                                funcs.append(old)
                            else:
                                self.warn(ffsrc.where(fpair), f"not understood: {_one_line(_text(fpair))}; add the "
                                          "function's name to the object's funcs by hand")
                        elif ff not in ("new_func", "old_sympos"):
                            self.warn(ffsrc.where(fpair), f"not understood: {_one_line(_text(fpair))}; this "
                                      "klp_func field has no key in the spec: check the spec by hand")
                    if old is not None and new is not None:
                        new_funcs.append((old, new))
            elif f.startswith("callbacks."):                       # .callbacks.pre_patch = f
                if f.split(".", 1)[1] in CALLBACKS:
                    cbs.append((f.split(".", 1)[1], fsrc, pair, value))
                else:
                    self.warn(fsrc.where(pair), f"not understood: {_one_line(_text(pair))}; a klp_callbacks "
                              "field is pre_patch, post_patch, pre_unpatch or post_unpatch")
            elif f == "callbacks":
                for cb, csrc, cpair, cvalue in self._fields(u, fsrc, value):
                    if cb in CALLBACKS:
                        cbs.append((cb, csrc, cpair, cvalue))
                    else:
                        self.warn(csrc.where(cpair), f"not understood: {_one_line(_text(cpair))}; a klp_callbacks "
                                  "field is pre_patch, post_patch, pre_unpatch or post_unpatch")
            else:
                self.warn(fsrc.where(pair), f"not understood: {_one_line(_text(pair))}; this klp_object field has "
                          "no key in the spec: check the spec by hand")
        where = name_where if name_pair is not None else src.where(e)
        ctext = _one_line(_text(name_pair)) if name_pair is not None else "(no .name: vmlinux)"
        if name != "vmlinux":
            if not NAME_RE.match(name):
                fixed = re.sub(r"[^A-Za-z0-9_]", "_", name)
                fixed = fixed if NAME_RE.match(fixed) else "m_" + fixed
                self.warn(where, f"object name {_one_line(repr(name))} is not a valid spec name (letters, digits, "
                          f"'_'); imported as {fixed}: rename it to the target module's name")
                name = fixed
            if name not in modules:
                modules[name] = OutModule(name, where, ctext)
        obj = OutObj(name, where, ctext, funcs)
        for cb, csrc, cpair, cvalue in cbs:
            item = Item(None, csrc.where(cpair), _one_line(_text(cpair)))
            target = self.const(u, csrc, cvalue)
            if target.kind == "null":
                continue                                          # .pre_patch = NULL: no callback
            fname = target.name if target.kind == "func" else None
            if fname is None or fname not in u.funcs:
                self.warn(item.where, f"not understood: {item.ctext}; the callback is not a function defined in "
                          "the file: write the statement by hand")
                obj.callbacks[cb] = ([Line(_todo(item.where, item.ctext), "", item.where, item.ctext, True)], item)
                continue
            lines = _Fn.callback(self, ctx, name, cb, fname)
            obj.callbacks[cb] = (lines, item)
        for old, new in new_funcs:                                # the patched functions' shadow calls
            if new not in u.funcs:
                continue
            if NAME_RE.fullmatch(old.value) and old.value not in ("init", "init_error", "exit", *CALLBACKS):
                lines = self._code(u, ctx, name, new)
                if lines:
                    obj.code.append((old, lines))
            elif _shadow_calls(u.funcs[new][1], helpers=self._shadow_helpers(u)):
                self.warn(old.where, f"not understood: {old.ctext}; {new} calls the shadow API, but the function's "
                          "name cannot be a key of [patch.code]: write its code by hand")
        return obj

    def _shadow_helpers(self, u: Unit) -> set[str]:
        """The functions of the file that call the shadow API, directly or through each other."""
        calls = {f: _calls(node.child_by_field_name("body")) for f, (_, node) in u.funcs.items()}
        found = {f for f, c in calls.items() if c & set(SHADOW_API)}
        grew = True
        while grew:
            more = {f for f, c in calls.items() if f not in found and c & found}
            found |= more
            grew = bool(more)
        return found

    def _code(self, u: Unit, ctx: Patchctx, obj: str, fname: str) -> list[Line]:
        """The shadow calls of patched function fname (its `.new_func`), as [patch.code] statements."""
        src, fnode = u.funcs[fname]
        body = fnode.child_by_field_name("body")
        calls = _shadow_calls(body, helpers=self._shadow_helpers(u))
        if not calls:
            return []
        fr = _Fn(self, u, ctx, fname, {}, "code", obj)
        rd = ShadowReader(fr, src, fnode, code=True)
        out = []
        for call in calls:
            where, c = src.where(call), _one_line(_text(call))
            if not _shadow_call(call):                    # a helper of the file that calls the shadow API
                self.warn(where, f"not understood: {c}; it calls the shadow API in a function of the file, which "
                          "is not read for a patched function's code: write the statements by hand")
                out.append(Line(_todo(where, c), "", where, c, True))
                continue
            stmt, why = rd.statement(call)
            cond, why2 = rd.condition(call, body) if stmt is not None else (None, "")
            if stmt is None or cond is None:
                why = why or why2
                self.warn(where, f"not understood: {c}; write the statement by hand")
                out.append(Line(_todo(where, c), "", where, c + (f"  ({why})" if why else ""), True))
            else:
                out.append(Line(stmt, cond, where, c))
        return out

    def _lp_init_exit(self, u: Unit, which: str, ctx: Patchctx, out: OutPatch) -> None:
        ref = getattr(u, which)
        if ref is None:
            if which == "module_init":
                self.warn(str(u.path), "the file has no module_init; a livepatch module calls klp_enable_patch() "
                          "from its init: check the spec")
            return
        fname, msrc, mnode = ref
        if fname not in u.funcs:
            self.warn(msrc.where(mnode), f"not understood: {_one_line(_text(mnode))}; the function is not defined "
                      "in the file")
            return
        src, fnode = u.funcs[fname]
        fr = _Fn(self, u, ctx, fname, {}, None)
        rd = ShadowReader(fr, src, fnode, code=False)
        lines = out.init if which == "module_init" else out.exit
        enabled = False                                   # init: klp_enable_patch was called
        stmts = _kids(fnode.child_by_field_name("body"))
        i = 0
        while i < len(stmts):
            st = stmts[i]
            i += 1
            idiom = None if enabled else _refcount(rd, stmts, i - 1, which == "module_init")
            if idiom is not None:
                texts, used = idiom
                c = _one_line(" ".join(_text(x) for x in stmts[i - 1:i - 1 + used]), 100)
                lines += [Line(t, cond, src.where(st), c) for t, cond in texts]
                i += used - 1
                continue
            if self._lp_init_stmt(fr, src, st, which, out):
                enabled = enabled or "klp_enable_patch" in _calls(st)
                continue
            c, where = _one_line(_text(st)), src.where(st)
            if enabled:
                self.warn(where, f"not understood: {c}; the spec's init runs before klp_enable_patch, and this "
                          "statement after it is not imported (init_error is the spec's error path): check the spec")
                out.comments.append(f"{where}: {c}  (in {fname})")
                continue
            calls = _shadow_calls(st)
            stmt, why = (rd.statement(calls[0]) if len(calls) == 1 and _simple_shadow_stmt(st) else (None, ""))
            if stmt is not None:
                lines.append(Line(stmt, "", where, c))
                continue
            self.warn(where, f"not understood: {c}; write the statement by hand")
            lines.append(Line(_todo(where, c), "", where, c + (f"  ({why})" if why else ""), True))

    def _lp_init_stmt(self, fr: _Fn, src: Src, st, which: str, out: OutPatch) -> bool:
        t = st.type
        if t == "declaration":
            return all(d.type != "init_declarator" or _calls(d.child_by_field_name("value")) <= {"klp_enable_patch"}
                       for d in st.children_by_field_name("declarator"))
        if t == "return_statement":
            kids = _kids(st)
            if not kids:
                return True
            v = _strip(kids[0])
            return _calls(v) <= {"klp_enable_patch"} and (v.type in ("call_expression", "identifier")
                                                           or fr.ev(src, v).kind == "int")
        if t == "expression_statement" and _kids(st):
            e = _strip(_kids(st)[0])
            if e.type == "call_expression" and _calls(e) == {"klp_enable_patch"}:
                return True
            if e.type == "assignment_expression" and _text(e.child_by_field_name("operator")) == "=":
                left, right = _strip(e.child_by_field_name("left")), e.child_by_field_name("right")
                if left.type == "identifier" and _calls(right) <= {"klp_enable_patch"} \
                        and _text(left) not in fr.unit.vars:
                    return True                                   # ret = klp_enable_patch(&patch);
                if left.type == "field_expression" and _text(left.child_by_field_name("field")) == "replace" \
                        and fr.ctx is not None and _text(_strip(left.child_by_field_name("argument"))) == fr.ctx.patch_var:
                    v = fr.ev(src, right)
                    item_where, ctext = src.where(st), _one_line(_text(st))
                    if v.kind == "param":
                        out.replace_param = Item(v.ident, item_where, ctext)
                        return True
                    if v.kind == "int":
                        out.replace = Item(bool(v.value), item_where, ctext)
                        return True
        if t == "if_statement":                                   # if (ret) return ret;
            cond = _strip(st.child_by_field_name("condition"))
            body = st.child_by_field_name("consequence")
            return cond is not None and cond.type == "identifier" and _text(cond) not in fr.unit.vars \
                and body is not None and body.type == "return_statement" and st.child_by_field_name("alternative") is None
        return False

    def _target(self, u: Unit, mod: OutModule) -> None:
        """A target module's file: its parameters, and its init/exit's log lines."""
        if mod.where == str(u.path):
            mod.ctext = ""
        for pname, var, src, node in u.params:
            default = self._param_default(u, var, src, node)
            if default is not None:
                mod.params.append((pname, Item(default, src.where(node), _one_line(_text(node)))))
        params = {var: pname for pname, var, _, _ in u.params if any(p == pname for p, _ in mod.params)}
        ctx = Patchctx(u, None, {}, params, mod.name)
        for which, attr in (("module_init", "init"), ("module_exit", "exit")):
            ref = getattr(u, which)
            if ref is None:
                continue
            fname, msrc, mnode = ref
            if fname not in u.funcs:
                self.warn(msrc.where(mnode), f"not understood: {_one_line(_text(mnode))}; the function is not "
                          "defined in the file: write the module's lines by hand")
                continue
            setattr(mod, attr, _Fn.callback(self, ctx, mod.name, attr, fname))


@dataclass
class Patchctx:
    unit: Unit
    patch_var: str | None              # the struct klp_patch variable (None: a target module)
    states: dict[int, str]             # klp_state.id -> state name, those this patch declares
    params: dict[str, str]             # C variable -> module parameter name
    module: str
    shadows: dict[str, Item[str | None]] = field(default_factory=dict)  # shadow variables used -> Item(layout)


def _receiver(st) -> tuple[str, Any] | None:
    """(c, the call) of `c = klp_shadow_*(...);` or `T *c = klp_shadow_*(...);`."""
    if st.type == "expression_statement" and _kids(st):
        e = _strip(_kids(st)[0])
        if e.type == "assignment_expression" and _text(e.child_by_field_name("operator")) == "=":
            left = _strip(e.child_by_field_name("left"))
            if left.type == "identifier" and _shadow_call(e.child_by_field_name("right")):
                return _text(left), _strip(e.child_by_field_name("right"))
    if st.type == "declaration":
        ds = st.children_by_field_name("declarator")
        if len(ds) == 1 and ds[0].type == "init_declarator" and _shadow_call(ds[0].child_by_field_name("value")):
            return _declared_name(ds[0]) or "", _strip(ds[0].child_by_field_name("value"))
    return None


def _is_counter(node, c: str) -> bool:
    """`*c` or `c->field` (the count kept in the shadow variable c points at)."""
    n = _strip(node)
    if n is None:
        return False
    if n.type == "pointer_expression" and _text(n.child_by_field_name("operator")) == "*":
        a = _strip(n.child_by_field_name("argument"))
        return a is not None and a.type == "identifier" and _text(a) == c
    if n.type == "field_expression" and _text(n.child_by_field_name("operator")) == "->":
        a = _strip(n.child_by_field_name("argument"))
        return a is not None and a.type == "identifier" and _text(a) == c
    return False


def _step(node, c: str, op: str) -> bool:
    """`(*c)++`, `++*c`, `*c += 1`, `c->f++` (op '+'); the same with '-'."""
    n = _strip(node)
    if n is None:
        return False
    if n.type == "update_expression":
        return _text(n.child_by_field_name("operator")) == op * 2 and _is_counter(n.child_by_field_name("argument"), c)
    if n.type == "assignment_expression" and _text(n.child_by_field_name("operator")) == op + "=":
        r = _strip(n.child_by_field_name("right"))
        return r is not None and _text(r) == "1" and _is_counter(n.child_by_field_name("left"), c)
    return False


def _expr_of(st):
    return _strip(_kids(st)[0]) if st is not None and st.type == "expression_statement" and _kids(st) else None


def _zero_test(node, c: str) -> tuple[bool, bool] | None:
    """`!X` or `X == 0`, X the counter (or its pre-decrement): (it is a test, the decrement is in it)."""
    n = _strip(node)
    if n is None:
        return None
    if n.type == "unary_expression" and _text(n.child_by_field_name("operator")) == "!":
        x = n.child_by_field_name("argument")
    elif n.type == "binary_expression" and _text(n.child_by_field_name("operator")) == "==" \
            and _text(_strip(n.child_by_field_name("right"))) == "0":
        x = n.child_by_field_name("left")
    else:
        return None
    if _is_counter(x, c):
        return True, False
    x = _strip(x)
    if x is not None and x.type == "update_expression" and _text(x).startswith("--") and _step(x, c, "-"):
        return True, True
    return None


def _refcount(rd: ShadowReader, stmts: list, i: int, init: bool) -> tuple[list[tuple[str, str]], int] | None:
    """The refcount idiom at stmts[i] of the module's init/exit: (statements, how many C statements).

    get: `c = klp_shadow_get_or_alloc(obj, ID, ...);` [init: `if (!c) return -ERRNO;`] `(*c)++;`
    put: `c = klp_shadow_get(obj, ID);` [`if (!c) return;` | `if (c) { ... }`] `--*c;`
    `if (!*c) klp_shadow_free(obj, ID, dtor);` (or `if (!--*c) klp_shadow_free(...)`, `c->f` for `*c`).
    A NULL check after get_or_alloc in init is `maybe-fail -ERRNO unless shadow SV` before it (an
    allocation can fail only when it creates the variable)."""
    r = _receiver(stmts[i])
    if r is None:
        return None
    c, call = r
    name = _shadow_call(call)
    stmt, _ = rd.statement(call) if name in ("klp_shadow_get_or_alloc", "klp_shadow_get") else (None, "")
    if stmt is None:
        return None
    sv = stmt.split()[1]
    rest = stmts[i + 1:]
    if name == "klp_shadow_get_or_alloc":
        pre: list[tuple[str, str]] = []
        k = 0
        if init and rest and rest[0].type == "if_statement":
            t = rd.shadow_test(rest[0].child_by_field_name("condition"))
            body = rest[0].child_by_field_name("consequence")
            body = _kids(body)[0] if body is not None and body.type == "compound_statement" and len(_kids(body)) == 1 else body
            if t == (True, sv) and rest[0].child_by_field_name("alternative") is None and body is not None \
                    and body.type == "return_statement" and _kids(body):
                v = rd.fr.ev(rd.src, _kids(body)[0])
                if v.kind == "int" and -4095 <= v.value < 0:
                    pre, k = [(f"maybe-fail {_errno(_kids(body)[0], v.value)}", f"unless shadow {sv}")], 1
        if stmt == f"shadow-get-or-alloc {sv}" and len(rest) > k and _step(_expr_of(rest[k]), c, "+"):
            return pre + [(f"get {sv}", "")], k + 2
        return (pre + [(stmt, "")], 2) if pre else None            # the NULL check alone
    # put
    guarded, wrapped, k, body = False, False, 0, rest
    if rest and rest[0].type == "if_statement" and rest[0].child_by_field_name("alternative") is None:
        t = rd.shadow_test(rest[0].child_by_field_name("condition"))
        cons = rest[0].child_by_field_name("consequence")
        if t == (True, sv) and cons is not None and ((cons.type == "return_statement" and not _kids(cons)) or
                                                      (cons.type == "compound_statement" and len(_kids(cons)) == 1
                                                      and _kids(cons)[0].type == "return_statement"
                                                      and not _kids(_kids(cons)[0]))):
            guarded, k, body = True, 1, rest[1:]                     # if (!c) return;
        elif t == (False, sv) and cons is not None:
            guarded, wrapped, k = True, True, 1                      # if (c) { ... }
            body = _kids(cons) if cons.type == "compound_statement" else [cons]
            if len(body) not in (1, 2):
                return None
    n = 0
    dec = False
    if body and _step(_expr_of(body[0]), c, "-"):
        dec, n = True, 1
    if len(body) <= n or body[n].type != "if_statement" or body[n].child_by_field_name("alternative") is not None:
        return None
    z = _zero_test(body[n].child_by_field_name("condition"), c)
    if z is None or dec == z[1]:
        return None
    free = body[n].child_by_field_name("consequence")
    free = _kids(free)[0] if free is not None and free.type == "compound_statement" and len(_kids(free)) == 1 else free
    e = _expr_of(free)
    if _shadow_call(e) != "klp_shadow_free" or rd.statement(e)[0] != f"shadow-free {sv}":
        return None
    if wrapped and len(body) != n + 1:
        return None
    used = 2 if wrapped else 1 + k + n + 1
    return [(f"put {sv}", f"if shadow {sv}" if guarded else "")], used


def _simple_shadow_stmt(st) -> bool:
    """`klp_shadow_*(...);`, `p = klp_shadow_*(...);` or `T *p = klp_shadow_*(...);`."""
    if st.type == "expression_statement" and _kids(st):
        e = _strip(_kids(st)[0])
        if e.type == "assignment_expression" and _text(e.child_by_field_name("operator")) == "=" \
                and _strip(e.child_by_field_name("left")).type == "identifier":
            e = e.child_by_field_name("right")
        return _shadow_call(e) is not None
    if st.type == "declaration":
        ds = st.children_by_field_name("declarator")
        return len(ds) == 1 and ds[0].type == "init_declarator" and _shadow_call(ds[0].child_by_field_name("value")) is not None
    return False


def _calls(node) -> set[str]:
    """Names of the functions called anywhere in node."""
    out: set[str] = set()
    if node is None:
        return out
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "call_expression":
            f = n.child_by_field_name("function")
            out.add(_text(f) if f is not None else "?")
        stack.extend(n.named_children)
    return out


def _todo(where: str, ctext: str) -> str:
    """A `log` placeholder for C that was not understood (no double quote, no trailing backslash)."""
    text = ctext.replace('"', "'").rstrip("\\")
    return f'log "TODO {where}: {text}"'


def _log_text(text: str) -> str | None:
    """`log "..."` for an exact log text, or None when the statement language cannot hold it."""
    if "\n" in text or "\r" in text or text.endswith("\\") or '\\"' in text:
        return None
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append(text[i:i + 2])                     # a backslash unit keeps both characters
            i += 1
        else:
            out.append(ch)
        i += 1
    return 'log "' + "".join(out) + '"'


_FORMAT = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<prec>\d+))?(?P<len>hh|h|ll|l|z|t|j|L)?"
                     r"(?P<conv>[diouxXcsp%])(?P<ext>[a-zA-Z]*)")


def _format(fmt: str, args: list[V]) -> str | None:
    """printk's formatting for constant arguments; None when an argument is not constant."""
    out, pos, i = [], 0, 0
    for m in _FORMAT.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        conv = m.group("conv")
        if conv == "%":
            out.append("%" + m.group("ext"))
            continue
        if conv == "p" or i >= len(args):
            return None
        a = args[i]
        i += 1
        spec = "%" + m.group("flags") + (m.group("width") or "") + (("." + m.group("prec")) if m.group("prec") else "")
        if conv == "s" and a.kind == "str":
            out.append((spec + "s") % a.value)
        elif conv in "diouxX" and a.kind == "int":
            out.append((spec + ("d" if conv in "iu" else conv)) % a.value)
        elif conv == "c" and a.kind == "int":
            out.append((spec + "c") % chr(a.value & 0xFF))
        else:
            return None
        out.append(m.group("ext"))
    out.append(fmt[pos:])
    return "".join(out) if i == len(args) else None


class _Fn:
    """The translation of one callback (or a target module's init/exit) for one object,
    with its helpers inlined: a frame per C function."""

    def __init__(self, imp: Importer, unit: Unit, ctx: Patchctx | None, name: str, env: dict, cb: str | None,
                 obj: str | None = None, out: list | None = None, depth: int = 0, tail: bool = True,
                 value: bool = True):
        self.imp, self.unit, self.ctx, self.name, self.env = imp, unit, ctx, name, env
        self.cb, self.obj = cb, obj
        self.out = out if out is not None else []
        self.depth = depth
        self.tail = tail            # a `return` here ends the callback
        self.value = value          # ... and its value is the callback's (pre_patch)
        self.pending_alloc: tuple | None = None                # (state, where, condition) of the alloc just emitted
        self.after_returns: PC | None = None                   # not tail: where the returns go on from

    @staticmethod
    def callback(imp: Importer, ctx: Patchctx, obj: str, cb: str, fname: str) -> list[Line]:
        src, node = ctx.unit.funcs[fname]
        module = cb in ("init", "exit")           # only log lines: a return just ends the function
        fr = _Fn(imp, ctx.unit, ctx, fname, {}, cb, obj, tail=not module, value=cb == "pre_patch")
        fr.bind(src, node, [V("obj")])
        fr.block(src, _kids(node.child_by_field_name("body")), PC(), end_is_exit=True)
        lines = fr.out
        while lines and lines[-1].stmt == "return":               # a return at the end does nothing
            lines.pop()
        return lines

    # ---- helpers
    @property
    def in_module(self) -> bool:
        return self.cb in ("init", "exit")

    def bind(self, src: Src, fnode, args: list[V]) -> None:
        decl = fnode.child_by_field_name("declarator")
        while decl is not None and decl.type != "function_declarator":
            decl = decl.child_by_field_name("declarator")
        params = decl.child_by_field_name("parameters") if decl is not None else None
        names = [_declared_name(p.child_by_field_name("declarator")) for p in _kids(params)
                 if p.type == "parameter_declaration" and p.child_by_field_name("declarator") is not None] \
            if params is not None else []
        for n, a in zip(names, args, strict=False):
            if n:
                self.env[n] = a

    def emit(self, stmt: str, pc: PC, src: Src, node, ctext: str | None = None) -> None:
        where, c = src.where(node), ctext or _one_line(_text(node))
        cond = pc.condition()
        if cond is None:
            self.unknown(src, node, pc, why="under two conditions")
            return
        if self.in_module and not stmt.startswith("log "):
            self.unknown(src, node, pc)
            return
        self.out.append(Line(stmt, cond, where, c))

    def unknown(self, src: Src, node, pc: PC, why: str = "", upto=None) -> None:
        where = src.where(node)
        c = _one_line(_text(node) if upto is None else
                      node.text.decode("utf-8", "replace") + " " + _text(upto))
        cond = pc.condition() or ""
        if self.in_module and cond and cond.split()[1] != "param":
            cond = ""
        self.imp.warn(where, f"not understood: {c}; write the statement by hand")
        self.out.append(Line(_todo(where, c), cond, where, c + (f"  ({why})" if why else ""), True))

    def state_of(self, src: Src, node) -> tuple[str | None, int | None]:
        v = self.ev(src, node)
        if v.kind != "int" or self.ctx is None:
            return None, None
        return self.ctx.states.get(v.value), v.value

    # ---- expressions
    def ev(self, src: Src, node, depth: int = 0) -> V:
        node = _strip(node)
        if node is None or depth > MAX_MACRO:
            return UNKNOWN
        t = node.type
        u = self.unit
        if t == "cast_expression":
            return self.ev(src, node.child_by_field_name("value"), depth)
        if t == "null":
            return V("null")
        if t in ("true", "false"):
            return V("int", value=int(t == "true"))
        if t == "number_literal":
            n = _c_int(_text(node))
            return V("int", value=n) if n is not None else UNKNOWN
        if t == "char_literal":
            body = "".join(_text(c) if c.type == "character" else _unescape(_text(c)) for c in node.named_children)
            return V("int", value=ord(body[0])) if len(body) == 1 else UNKNOWN
        if t in ("string_literal", "concatenated_string"):
            return self.string(src, node, depth)
        if t == "identifier":
            name = _text(node)
            if name == "__func__":
                return V("str", value=self.name)
            if name in self.env:
                return self.env[name]
            if name == "NULL":
                return V("null")
            if self.ctx is not None and name in self.ctx.params:
                return V("param", self.ctx.params[name])
            if name in u.macros and u.macros[name].params is None:
                m = u.macros[name]
                if not m.body:
                    return UNKNOWN
                msrc, stmts = u.snippet(f"({m.body});", (src.shown, src.line(node)) if not src.at else src.at)
                if len(stmts) == 1 and stmts[0].type == "expression_statement":
                    return self.ev(msrc, _kids(stmts[0])[0], depth + 1)
                return UNKNOWN
            if name in u.enums:
                return self.enum_value(name, depth)
            if name in u.funcs:
                return V("func", name)
            if name in ("true", "false"):
                return V("int", value=int(name == "true"))
            if name in ERRNOS:                                  # ENOMEM, ... (the kernel's values)
                return V("int", value=ERRNOS[name])
            return V("global", name)
        if t == "unary_expression":
            op = _text(node.child_by_field_name("operator"))
            a = self.ev(src, node.child_by_field_name("argument"), depth)
            if a.kind == "int":
                if op == "-":
                    return V("int", value=-a.value)
                if op == "+":
                    return a
                if op == "~":
                    return V("int", value=~a.value)
                if op == "!":
                    return V("int", value=int(not a.value))
            if op == "!" and a.kind == "null":
                return V("int", value=1)
            return UNKNOWN
        if t == "binary_expression":
            op = _text(node.child_by_field_name("operator"))
            a = self.ev(src, node.child_by_field_name("left"), depth)
            b = self.ev(src, node.child_by_field_name("right"), depth)
            if a.kind == b.kind == "int":
                x, y = a.value, b.value
                try:
                    r = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y,
                         "/": lambda: int(x / y), "%": lambda: x % y, "<<": lambda: x << y if 0 <= y < 64 else None,
                         ">>": lambda: x >> y if 0 <= y < 64 else None, "|": lambda: x | y, "&": lambda: x & y,
                         "^": lambda: x ^ y, "==": lambda: int(x == y), "!=": lambda: int(x != y),
                         "<": lambda: int(x < y), "<=": lambda: int(x <= y), ">": lambda: int(x > y),
                         ">=": lambda: int(x >= y), "&&": lambda: int(bool(x and y)),
                         "||": lambda: int(bool(x or y))}[op]()
                except (KeyError, ZeroDivisionError):
                    r = None
                return V("int", value=r) if r is not None else UNKNOWN
            return UNKNOWN
        if t == "pointer_expression":
            op = _text(node.child_by_field_name("operator"))
            arg = _strip(node.child_by_field_name("argument"))
            if op == "&":
                if self.ctx is not None and arg is not None and arg.type == "identifier" \
                        and _text(arg) == self.ctx.patch_var and _text(arg) not in self.env:
                    return V("patch")
                a = self.ev(src, arg, depth)
                return V("addr", a.name) if a.kind == "global" else UNKNOWN
            a = self.ev(src, arg, depth)
            if a.kind == "data":
                return V("deref", a.name, a.via)
            return UNKNOWN
        if t == "field_expression":
            a = self.ev(src, node.child_by_field_name("argument"), depth)
            f = _text(node.child_by_field_name("field"))
            arrow = _text(node.child_by_field_name("operator")) == "->"
            if not arrow:
                return UNKNOWN
            if a.kind in ("own", "prev") and f == "data":
                return V("data", a.name, a.kind)
            if a.kind == "prev" and f == "version":
                return V("version", a.name)
            if a.kind == "own" and f in ("version", "id"):
                return UNKNOWN
            if a.kind == "data":
                return V("deref", a.name, a.via)
            if a.kind == "obj" and f == "mod":
                return V("int", value=int(self.obj not in (None, "vmlinux")))
            if a.kind == "obj" and f == "name":
                return V("null") if self.obj in (None, "vmlinux") else V("str", value=self.obj)
            return UNKNOWN
        if t == "call_expression":
            return self.ev_call(src, node, depth)
        if t == "sizeof_expression":
            return UNKNOWN
        return UNKNOWN

    def enum_value(self, name: str, depth: int) -> V:
        src, e = self.unit.enums[name]
        value = e.child_by_field_name("value")
        if value is not None:
            return self.ev(src, value, depth + 1)
        prev = e.prev_named_sibling
        while prev is not None and prev.type != "enumerator":
            prev = prev.prev_named_sibling
        if prev is None:
            return V("int", value=0)
        v = self.enum_value(_text(prev.child_by_field_name("name")), depth + 1) if depth < MAX_MACRO else UNKNOWN
        return V("int", value=v.value + 1) if v.kind == "int" else UNKNOWN

    def string(self, src: Src, node, depth: int) -> V:
        parts = [node] if node.type == "string_literal" else _kids(node)
        out = []
        for p in parts:
            if p.type == "string_literal":
                for c in p.named_children:
                    if c.type == "string_content":
                        out.append(_text(c))
                    elif c.type == "escape_sequence":
                        out.append(_unescape(_text(c)))
                    else:
                        return UNKNOWN
            else:
                v = self.ev(src, p, depth + 1)
                if v.kind != "str":
                    return UNKNOWN
                out.append(v.value)
        return V("str", value="".join(out))

    def ev_call(self, src: Src, node, depth: int) -> V:
        fn = _strip(node.child_by_field_name("function"))
        args = _kids(node.child_by_field_name("arguments"))
        name = _text(fn) if fn is not None and fn.type == "identifier" else None
        u = self.unit
        if name is not None and name not in self.env and name in u.macros and u.macros[name].params is not None:
            exp = self.expand(src, node, u.macros[name], args)
            if exp is not None:
                msrc, stmts = exp
                if len(stmts) == 1 and stmts[0].type == "expression_statement" and _kids(stmts[0]):
                    return self.ev(msrc, _kids(stmts[0])[0], depth + 1)
            return UNKNOWN
        if name == "klp_get_state" and len(args) == 2 and self.ev(src, args[0], depth).kind == "patch":
            s, sid = self.state_of(src, args[1])
            if s is not None:
                return V("own", s)
            return V("nostate") if sid is not None else UNKNOWN
        if name == "klp_get_prev_state" and len(args) == 1:
            s, _ = self.state_of(src, args[0])
            return V("prev", s) if s is not None else UNKNOWN
        return UNKNOWN

    def expand(self, src: Src, node, m: Macro, args: list) -> tuple[Src, list] | None:
        """A function-like macro's body with the arguments put in, parsed as statements."""
        if m.params is None or "#" in m.body or len(args) != len(m.params) or self.depth > MAX_MACRO:
            return None                           # (object-like macros take no arguments)
        params = m.params
        body = m.body
        texts = [_text(a) for a in args]
        if params:
            body = re.sub(r"\b(" + "|".join(re.escape(p) for p in params) + r")\b",
                          lambda mm: "(" + texts[params.index(mm.group(1))] + ")", body)
        at = src.at or (src.shown, src.line(node))
        msrc, stmts = self.unit.snippet(body, at)
        return (msrc, stmts) if stmts else None

    # ---- conditions
    def cond(self, src: Src, node, depth: int = 0) -> F | None:
        node = _strip(node)
        if node is None or depth > MAX_MACRO:
            return None
        t = node.type
        if t == "unary_expression" and _text(node.child_by_field_name("operator")) == "!":
            c = self.cond(src, node.child_by_field_name("argument"), depth + 1)
            return c.neg() if c is not None else None
        if t == "binary_expression":
            op = _text(node.child_by_field_name("operator"))
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if op in ("&&", "||"):
                return _combine(self.cond(src, left, depth + 1), self.cond(src, right, depth + 1), op)
            if op in CMP_OPS:
                a, b = self.ev(src, left), self.ev(src, right)
                if b.kind == "null" or (b.kind == "int" and b.value == 0 and a.kind != "version"):
                    if op in ("==", "!="):
                        c = self.truth(a)
                        return (c.neg() if op == "==" else c) if c is not None else None
                    if a.kind == "param" and op in (">", "!="):
                        return self.truth(a)
                if a.kind == "null" and op in ("==", "!="):
                    c = self.truth(b)
                    return (c.neg() if op == "==" else c) if c is not None else None
                flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
                if b.kind == "version" and a.kind == "int":
                    a, b, op = b, a, flip[op]
                if a.kind == "version" and b.kind == "int" and 0 <= b.value < VERSIONS - 1:
                    key = ("prev", a.name)
                    return F(key=key, allowed=frozenset(v for v in _domain(key) - {None} if _cmp(v, op, b.value)),
                             hints=(f"prev {a.name} {op} {b.value}", f"prev {a.name} {NEGATED[op]} {b.value}"))
                if a.kind == b.kind == "int":
                    return F(const=_cmp(a.value, op, b.value))
                return None
            return None
        if t == "call_expression":
            fn = _strip(node.child_by_field_name("function"))
            name = _text(fn) if fn is not None else ""
            if name in self.unit.macros and self.unit.macros[name].params is not None:
                exp = self.expand(src, node, self.unit.macros[name], _kids(node.child_by_field_name("arguments")))
                if exp is not None and len(exp[1]) == 1 and exp[1][0].type == "expression_statement":
                    return self.cond(exp[0], _kids(exp[1][0])[0], depth + 1)
                return None
        if t == "identifier" and _text(node) in self.unit.macros and _text(node) not in self.env \
                and self.unit.macros[_text(node)].params is None:
            m = self.unit.macros[_text(node)]
            msrc, stmts = self.unit.snippet(f"({m.body});", src.at or (src.shown, src.line(node)))
            if len(stmts) == 1 and stmts[0].type == "expression_statement":
                return self.cond(msrc, _kids(stmts[0])[0], depth + 1)
            return None
        return self.truth(self.ev(src, node))

    def truth(self, v: V) -> F | None:
        if v.kind == "prev":
            key = ("prev", v.name)
            return F(key=key, allowed=_domain(key) - {None})
        if v.kind == "own":
            return F(const=True)
        if v.kind in ("nostate", "null"):
            return F(const=False)
        if v.kind == "param":
            return F(key=("param", v.name), allowed=frozenset({1}))
        if v.kind == "int":
            return F(const=bool(v.value))
        if v.kind == "str":
            return F(const=True)
        return None

    # ---- statements
    def block(self, src: Src, stmts: list, pc: PC, end_is_exit: bool) -> PC | None:
        """Translate statements under pc; the path condition at the block's end (None: it never gets there)."""
        i = 0
        while i < len(stmts):
            st = stmts[i]
            if st.has_error:
                # C tree-sitter could not parse (a loop macro such as list_for_each_entry(...) { ... }):
                # one placeholder for it and the block that follows it
                end = stmts[i + 1] if i + 1 < len(stmts) and stmts[i + 1].type == "compound_statement" else st
                self.unknown(src, st, pc, upto=end)
                i += 2 if end is not st else 1
                continue
            pending = self.pending_alloc
            last = i == len(stmts) - 1
            after = self.stmt(src, st, pc, end_is_exit and last)
            if pending is not None and self.pending_alloc is pending:
                self.alloc_unchecked(pending)
            i += 1
            if after is None:
                # what follows is reached only by a goto: not understood (dead code is not imported)
                for rest in stmts[i:]:
                    if rest.type == "labeled_statement":
                        self.unknown(src, rest, PC())
                return None
            pc = after
        return pc

    def alloc_unchecked(self, pending) -> None:
        self.pending_alloc = None
        if self.cb == "pre_patch":
            state, where, _ = pending
            self.imp.warn(where, f"the allocation is not checked for NULL; the spec's 'alloc {state}' makes "
                          "pre_patch fail with -ENOMEM when it fails: check the C")

    def stmt(self, src: Src, st, pc: PC, is_last: bool) -> PC | None:
        t = st.type
        if t == "compound_statement":
            return self.block(src, _kids(st), pc, is_last)
        if t == "expression_statement":
            kids = _kids(st)
            if not kids:
                return pc
            return self.expr_stmt(src, st, _strip(kids[0]), pc, is_last)
        if t == "declaration":
            return self.declaration(src, st, pc)
        if t == "if_statement":
            return self.if_stmt(src, st, pc, is_last)
        if t == "return_statement":
            return self.return_stmt(src, st, pc)
        if t == "do_statement":
            c = self.ev(src, st.child_by_field_name("condition"))
            if c.kind == "int" and c.value == 0:                       # do { ... } while (0)
                return self.stmt(src, st.child_by_field_name("body"), pc, is_last)
        self.unknown(src, st, pc)
        return pc

    def declaration(self, src: Src, st, pc: PC) -> PC:
        for d in st.children_by_field_name("declarator"):
            name = _declared_name(d)
            if name is None:
                continue
            value = d.child_by_field_name("value") if d.type == "init_declarator" else None
            if value is None:
                self.env[name] = V("local", name)
                continue
            if _shadow_call(value):
                self.call_shadow(src, st, [], pc)               # T *p = klp_shadow_get(obj, ID);
                self.env[name] = V("local", name)
                continue
            v = self.ev(src, value)
            if v.kind in ("own", "prev", "nostate", "data", "obj", "int", "str", "null", "param"):
                self.env[name] = v
            elif not _calls(value):
                self.env[name] = V("local", name)
            else:
                self.unknown(src, st, pc)
                self.env[name] = V("local", name)
        return pc

    def expr_stmt(self, src: Src, st, e, pc: PC, is_last: bool) -> PC | None:
        t = e.type
        if t == "call_expression":
            return self.call(src, st, e, pc, is_last)
        if t == "assignment_expression":
            self.assign(src, st, e, pc)
            return pc
        if t == "update_expression":
            a = self.ev(src, e.child_by_field_name("argument"))
            if a.kind == "local" or (a.kind == "global" and self.modify(src, st, a.ident, pc)):
                return pc
        if t == "identifier" and _text(e) in self.unit.macros and _text(e) not in self.env:
            m = self.unit.macros[_text(e)]
            if m.params is None and self.depth < MAX_MACRO:
                msrc, stmts = self.unit.snippet(m.body, src.at or (src.shown, src.line(st)))
                if stmts:
                    return self.macro_block(msrc, stmts, pc, is_last)
        self.unknown(src, st, pc)
        return pc

    def macro_block(self, msrc: Src, stmts: list, pc: PC, is_last: bool) -> PC | None:
        self.depth += 1
        try:
            return self.block(msrc, stmts, pc, is_last)
        finally:
            self.depth -= 1

    def call(self, src: Src, st, e, pc: PC, is_last: bool) -> PC | None:
        fn = _strip(e.child_by_field_name("function"))
        args = _kids(e.child_by_field_name("arguments"))
        name = _text(fn) if fn is not None and fn.type == "identifier" else None
        u = self.unit
        if name is None or name in self.env:
            self.unknown(src, st, pc)
            return pc
        if name in u.macros and u.macros[name].params is not None:
            exp = self.expand(src, e, u.macros[name], args)
            if exp is None:
                self.unknown(src, st, pc)
                return pc
            return self.macro_block(exp[0], exp[1], pc, is_last)
        handler = CALLS.get(name)
        if handler is not None:
            handler(self, src, st, args, pc)
            return pc
        if name in u.funcs:
            if self.is_banner(name):
                self.banner(src, st, args, pc)
                return pc
            return self.inline(src, st, name, args, pc, tail=is_last and self.tail, value=False)
        self.unknown(src, st, pc)
        return pc

    def is_banner(self, name: str) -> bool:
        """The test modules' callback_info(): pr_info of "%s: %s -> %s" / "%s: vmlinux" only."""
        src, node = self.unit.funcs[name]
        formats = set()
        body = node.child_by_field_name("body")
        stack = [body] if body is not None else []
        while stack:
            n = stack.pop()
            if n.type == "call_expression":
                f = _text(n.child_by_field_name("function"))
                args = _kids(n.child_by_field_name("arguments"))
                if f not in PRINTK or not args:
                    return False
                v = self.ev(src, args[0])
                if v.kind != "str":
                    return False
                formats.add(v.value)
            stack.extend(n.named_children)
        return formats == BANNER_FORMATS

    def banner(self, src: Src, st, args: list, pc: PC) -> None:
        v = self.ev(src, args[0]) if args else UNKNOWN
        o = self.ev(src, args[1]) if len(args) > 1 else UNKNOWN
        if self.cb in CALLBACKS and v.kind == "str" and v.value == f"{self.cb}_callback" and o.kind == "obj":
            self.emit("banner", pc, src, st)
        else:
            self.unknown(src, st, pc)

    def inline(self, src: Src, st, name: str, args: list, pc: PC, tail: bool, value: bool) -> PC | None:
        if self.depth >= MAX_INLINE:
            self.unknown(src, st, pc)
            return pc
        hsrc, hnode = self.unit.funcs[name]
        fr = _Fn(self.imp, self.unit, self.ctx, name, {}, self.cb, self.obj, self.out, self.depth + 1,
                 tail=tail, value=value and self.value)
        fr.bind(hsrc, hnode, [self.ev(src, a) for a in args])
        end = fr.block(hsrc, _kids(hnode.child_by_field_name("body")), pc, end_is_exit=tail)
        if fr.pending_alloc is not None:
            fr.alloc_unchecked(fr.pending_alloc)
        if tail:
            return None if end is None else pc
        if end is None:
            return fr.after_returns
        return end if fr.after_returns is None else end.union(fr.after_returns)

    # ---- the recognised calls (CALLS)
    def call_log(self, src: Src, st, args: list, pc: PC) -> None:
        if not args:
            self.unknown(src, st, pc)
            return
        fmt = self.ev(src, args[0])
        vals = [self.ev(src, a) for a in args[1:]]
        text = _format(fmt.value, vals) if fmt.kind == "str" else None
        if text is None:
            self.unknown(src, st, pc)
            return
        if text.endswith("\n"):
            text = text[:-1]
        stmt = _log_text(text)
        if stmt is None:
            self.unknown(src, st, pc)
            return
        if self.ctx is not None and self.unit.pr_fmt != PR_FMT and not self.imp.collecting:
            self.imp.warn(src.where(st), f"the file's pr_fmt is not {PR_FMT} (it is {self.unit.pr_fmt!r}); "
                          f"the spec's log lines carry the '{self.ctx.module}: ' prefix, the module's do not: "
                          "check the spec's log lines")
            self.unit.pr_fmt = PR_FMT                                   # once per file
        self.emit(stmt, pc, src, st)

    def call_free(self, src: Src, st, args: list, pc: PC) -> None:
        v = self.ev(src, args[0]) if len(args) == 1 else UNKNOWN
        if v.kind == "data" and v.via == "own":
            self.emit(f"free {v.name}", pc, src, st)
        elif v.kind == "data" and v.via == "prev":
            self.emit(f"free-prev {v.name}", pc, src, st)
        else:
            self.unknown(src, st, pc)

    def call_shadow(self, src: Src, st, args: list, pc: PC) -> None:
        """klp_shadow_*(...) as a statement, or assigned to a local: the shadow statement it means."""
        calls = _shadow_calls(st)
        fnode = st
        while fnode is not None and fnode.type != "function_definition":
            fnode = fnode.parent
        if len(calls) != 1 or fnode is None:
            self.unknown(src, st, pc)
            return
        stmt, why = ShadowReader(self, src, fnode, code=False).statement(calls[0])
        if stmt is None:
            self.unknown(src, st, pc, why=why)
            return
        self.emit(stmt, pc, src, st)

    def call_memcpy(self, src: Src, st, args: list, pc: PC) -> None:
        if len(args) == 3:
            d, s = self.ev(src, args[0]), self.ev(src, args[1])
            if d.kind == "data" and d.via == "own" and s.kind == "data" and s.via == "prev" and d.name == s.name:
                self.emit(f"copy {d.name}", pc, src, st)
                return
            if d.kind == "data" and d.via == "own" and s.kind == "addr":
                self.save(src, st, d.ident, s.ident, pc)
                return
            if d.kind == "addr" and s.kind == "data" and s.via == "own":
                self.restore(src, st, s.ident, d.ident, pc)
                return
        self.unknown(src, st, pc)

    # ---- assignments
    def assign(self, src: Src, st, e, pc: PC) -> None:
        op = _text(e.child_by_field_name("operator"))
        left = _strip(e.child_by_field_name("left"))
        right = e.child_by_field_name("right")
        if op == "=" and left is not None and left.type == "identifier" and _shadow_call(right) \
                and _text(left) not in self.unit.vars:
            self.call_shadow(src, st, [], pc)                   # p = klp_shadow_get(obj, ID);
            self.env[_text(left)] = V("local", _text(left))
            return
        if left is not None and left.type == "identifier" and _text(left) in self.env:
            name = _text(left)
            v = self.ev(src, right)
            if op == "=" and v.kind in ("own", "prev", "nostate", "data", "int", "str", "null"):
                self.env[name] = v
                return
            if not _calls(right) and self.env[name].kind == "local":
                return                                          # a local variable's arithmetic
            self.unknown(src, st, pc)
            return
        lv = self.ev(src, left)
        if lv.kind == "data" and lv.via == "own" and op == "=":
            r = _strip(right)
            if r is not None and r.type == "call_expression" and _text(r.child_by_field_name("function")) in ALLOCATORS:
                self.emit(f"alloc {lv.name}", pc, src, st)
                self.pending_alloc = (lv.name, src.where(st), pc.condition())
                return
            rv = self.ev(src, right)
            if rv.kind == "data" and rv.via == "prev" and rv.name == lv.name:
                self.emit(f"take {lv.name}", pc, src, st)
                return
        elif lv.kind == "deref" and lv.via == "own" and op == "=":
            rv = self.ev(src, right)
            if rv.kind == "global":
                self.save(src, st, lv.ident, rv.ident, pc)
                return
            if rv.kind == "deref" and rv.via == "prev" and rv.name == lv.name:
                self.emit(f"copy {lv.name}", pc, src, st)
                return
        elif lv.kind == "global":
            rv = self.ev(src, right)
            if rv.kind == "deref" and rv.via == "own" and op == "=":
                self.restore(src, st, rv.ident, lv.ident, pc)
                return
            # any other value that reads no state data and calls nothing: this patch's variant
            if rv.kind not in ("deref", "data") and not _calls(right) and self.modify(src, st, lv.ident, pc):
                return
        self.unknown(src, st, pc)

    def save(self, src: Src, st, state: str, glob: str, pc: PC) -> None:
        self.imp.globals.setdefault(glob, set()).add(state)
        self.emit(f"save {state}", pc, src, st)

    def restore(self, src: Src, st, state: str, glob: str, pc: PC) -> None:
        self.imp.globals.setdefault(glob, set()).add(state)
        self.emit(f"restore {state}", pc, src, st)

    def modify(self, src: Src, st, glob: str, pc: PC) -> bool:
        states = self.imp.globals.get(glob, set()) & set(self.ctx.states.values() if self.ctx else ())
        if len(states) != 1:
            return False
        self.emit(f"modify {next(iter(states))}", pc, src, st)
        return True

    # ---- if / return
    def if_stmt(self, src: Src, st, pc: PC, is_last: bool) -> PC | None:
        cnode = st.child_by_field_name("condition")
        then = st.child_by_field_name("consequence")
        alt = st.child_by_field_name("alternative")
        if alt is not None and alt.type == "else_clause":
            kids = _kids(alt)
            alt = kids[0] if kids else None
        if self.idiom(src, st, cnode, then, alt, pc):
            return pc
        c = self.cond(src, cnode)
        if c is None:
            self.unknown(src, st, pc)
            return pc
        branches = []
        for f, body in ((c, then), (c.neg(), alt)):
            bpc = pc.and_(f)
            if bpc is None:
                continue                                         # a dead branch: nothing to import
            if body is None:
                branches.append(bpc)
                continue
            end = self.stmt(src, body, bpc, is_last)
            if end is not None:
                branches.append(end)
        if not branches:
            return None
        if self.tail:
            return pc                                            # the emitted returns cut the other paths
        out = branches[0]
        for b in branches[1:]:
            out = out.union(b)
        return out

    def idiom(self, src: Src, st, cnode, then, alt, pc: PC) -> bool:
        """`if (!s->data) return -ENOMEM;` after an alloc; `if (s->data) kfree(s->data);`."""
        c = _strip(cnode)
        negated = c is not None and c.type == "unary_expression" and _text(c.child_by_field_name("operator")) == "!"
        inner = _strip(c.child_by_field_name("argument")) if negated else c
        if c is not None and c.type == "binary_expression" and _text(c.child_by_field_name("operator")) in ("==", "!=") \
                and self.ev(src, c.child_by_field_name("right")).kind == "null":
            inner = _strip(c.child_by_field_name("left"))
            negated = _text(c.child_by_field_name("operator")) == "=="
        v = self.ev(src, inner)
        if v.kind != "data" or v.via != "own" or alt is not None:
            return False
        body = _kids(then) if then.type == "compound_statement" else [then]
        if negated and self.pending_alloc is not None and self.pending_alloc[0] == v.name and len(body) == 1 \
                and body[0].type == "return_statement" and self.pending_alloc[2] == pc.condition():
            rv = _kids(body[0])
            r = self.ev(src, rv[0]) if rv else V("int", value=0)
            if self.cb == "pre_patch" and self.tail and self.value:
                ok = r.kind == "int" and r.value == -ERRNOS["ENOMEM"]
            else:
                ok = self.cb != "pre_patch" and self.tail
            self.pending_alloc = None                            # checked, if maybe not as the spec's alloc
            return ok                                            # ... means it
        if not negated and len(body) == 1 and body[0].type == "expression_statement":
            e = _strip(_kids(body[0])[0]) if _kids(body[0]) else None
            if e is not None and e.type == "call_expression" and _text(e.child_by_field_name("function")) in FREES:
                args = _kids(e.child_by_field_name("arguments"))
                if len(args) == 1 and self.ev(src, args[0]) == v:
                    self.emit(f"free {v.name}", pc, src, st)   # kfree(NULL) does nothing, as free of NULL
                    return True
        return False

    def return_stmt(self, src: Src, st, pc: PC) -> PC | None:
        kids = _kids(st)
        e = _strip(kids[0]) if kids else None
        if e is not None and e.type == "call_expression":
            fn = _strip(e.child_by_field_name("function"))
            name = _text(fn) if fn is not None and fn.type == "identifier" else None
            if name in self.unit.funcs and name not in self.env and not self.is_banner(name):
                end = self.inline(src, st, name, _kids(e.child_by_field_name("arguments")), pc, tail=self.tail,
                                  value=self.value)
                if not self.tail and end is not None:
                    self.ended(end)
                return None
        v = self.ev(src, e) if e is not None else V("int", value=0)
        ok = v.kind == "int" and v.value == 0
        side_effects = e is not None and bool(_calls(e))
        if self.in_module or not self.tail:                 # the return ends this C function only
            if side_effects or (self.in_module and not ok):
                self.unknown(src, st, pc)
            self.ended(pc)
            return None
        if ok or not self.value:                            # success, or a value the caller drops
            if side_effects:
                self.unknown(src, st, pc)
            else:
                self.emit("return", pc, src, st)
            return None
        if v.kind == "int" and v.value < 0:
            self.emit(f"fail {_errno(e, v.value)}", pc, src, st)
        elif v.kind == "param":
            self.emit(f"fail {v.name}", pc, src, st)        # goes on when the parameter is 0:
            self.emit("return", pc, src, st)                # ... but the C returns 0 there
        else:
            self.unknown(src, st, pc)
        return None

    def ended(self, pc: PC) -> None:
        """A return in a helper whose returns do not end the callback: the rest runs when it is not taken."""
        if not self.tail:
            self.after_returns = pc if self.after_returns is None else self.after_returns.union(pc)
        return None


def _errno(node, value: int) -> str:
    n = _strip(node)
    if n is not None and n.type == "unary_expression" and _text(n.child_by_field_name("operator")) == "-":
        arg = _strip(n.child_by_field_name("argument"))
        if arg is not None and arg.type == "identifier" and ERRNOS.get(_text(arg)) == -value:
            return f"-{_text(arg)}"
    names = [k for k, v in ERRNOS.items() if v == -value]
    return f"-{names[0]}" if names else str(value)


# --------------------------------------------------------------------------- shadow variables

SHADOW_API = ("klp_shadow_alloc", "klp_shadow_get_or_alloc", "klp_shadow_get", "klp_shadow_free",
              "klp_shadow_free_all")
SHADOW_ARGS = {"klp_shadow_alloc": 6, "klp_shadow_get_or_alloc": 6, "klp_shadow_get": 2, "klp_shadow_free": 3,
               "klp_shadow_free_all": 2}
SHADOW_STMT = {"klp_shadow_alloc": "shadow-alloc", "klp_shadow_get_or_alloc": "shadow-get-or-alloc",
               "klp_shadow_get": "shadow-get", "klp_shadow_free": "shadow-free",
               "klp_shadow_free_all": "shadow-free-all"}


def _shadow_call(node) -> str | None:
    """The shadow API's name when node (parentheses and casts stripped) is a call of it."""
    node = _strip(node)
    while node is not None and node.type == "cast_expression":
        node = _strip(node.child_by_field_name("value"))
    if node is None or node.type != "call_expression":
        return None
    fn = _strip(node.child_by_field_name("function"))
    name = _text(fn) if fn is not None and fn.type == "identifier" else None
    return name if name in SHADOW_API else None


def _shadow_calls(node, helpers: frozenset[str] | set[str] = frozenset()) -> list:
    """Every call of the shadow API in node (and of the functions named in helpers), in source order."""
    out = []
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if n.type == "call_expression" and (_shadow_call(n) or _text(n.child_by_field_name("function")) in helpers):
            out.append(n)
        stack.extend(reversed(n.named_children))
    return out


def _decl_type(type_node, declarator) -> tuple[str, int]:
    """(base type, pointer depth) of a declaration: `int **p` is ('int', 2), `struct dummy *d` ('dummy', 1)."""
    base = ""
    if type_node is not None:
        if type_node.type in ("struct_specifier", "union_specifier", "enum_specifier"):
            n = type_node.child_by_field_name("name")
            base = _text(n) if n is not None else ""
        else:
            base = _text(type_node)
    depth = 0
    d = declarator
    while d is not None and d.type in ("pointer_declarator", "abstract_pointer_declarator", "init_declarator",
                                       "array_declarator", "parenthesized_declarator"):
        if d.type in ("pointer_declarator", "abstract_pointer_declarator"):
            depth += 1
        d = d.child_by_field_name("declarator") if d.child_by_field_name("declarator") is not None else \
            next((k for k in _kids(d) if "declarator" in k.type), None)
    return re.sub(r"\s+", " ", base).strip(), depth


def _layout_name(base: str, depth: int) -> str | None:
    """A spec layout name for a C type: `int` -> int, `int *` -> int_ptr, `struct dummy` -> dummy."""
    if not base or base == "void":
        return None
    name = re.sub(r"[^A-Za-z0-9_]+", "_", base.removeprefix("const ").strip()).strip("_") + "_ptr" * depth
    return name if NAME_RE.fullmatch(name) and len(name) <= 55 else None


def _local_types(fnode) -> dict[str, tuple[str, int]]:
    """The declared types of a function's parameters and local variables."""
    out: dict[str, tuple[str, int]] = {}
    stack = [fnode]
    while stack:
        n = stack.pop()
        if n.type in ("declaration", "parameter_declaration"):
            t = n.child_by_field_name("type")
            for d in n.children_by_field_name("declarator"):
                name = _declared_name(d)
                if name:
                    out.setdefault(name, _decl_type(t, d))
        stack.extend(n.named_children)
    return out


def _assigned_from(fnode) -> dict[str, list]:
    """Local name -> the values assigned to it (`x = v;` and `T x = v;`) anywhere in the function."""
    out: dict[str, list] = {}
    stack = [fnode]
    while stack:
        n = stack.pop()
        if n.type == "init_declarator":
            name = _declared_name(n)
            if name and n.child_by_field_name("value") is not None:
                out.setdefault(name, []).append(n.child_by_field_name("value"))
        elif n.type == "assignment_expression" and _text(n.child_by_field_name("operator")) == "=":
            left = _strip(n.child_by_field_name("left"))
            if left is not None and left.type == "identifier":
                out.setdefault(_text(left), []).append(n.child_by_field_name("right"))
        stack.extend(n.named_children)
    return out


def _returns_can_fail(fr: _Fn, src: Src, fnode, data_nonnull: bool) -> bool:
    """Whether a constructor can return non-zero: a `return X` with X not 0, unless it is under
    `if (!ctor_data)` (its third parameter) and the call passes a non-NULL ctor_data (`&x`)."""
    decl = fnode.child_by_field_name("declarator")
    while decl is not None and decl.type != "function_declarator":
        decl = decl.child_by_field_name("declarator")
    params = [_declared_name(p.child_by_field_name("declarator")) for p in _kids(decl.child_by_field_name("parameters"))
              if p.type == "parameter_declaration"] if decl is not None else []
    ctor_data = params[2] if len(params) > 2 else None
    stack = [fnode.child_by_field_name("body")]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if n.type == "return_statement":
            kids = _kids(n)
            v = fr.ev(src, kids[0]) if kids else V("int", value=0)
            if v.kind == "int" and v.value == 0:
                continue
            if data_nonnull and ctor_data is not None and n.parent is not None:
                st = n.parent if n.parent.type == "if_statement" else \
                    (n.parent.parent if n.parent.type == "compound_statement" and n.parent.parent is not None
                     and n.parent.parent.type == "if_statement" else None)
                c = _strip(st.child_by_field_name("condition")) if st is not None else None
                if c is not None and c.type == "unary_expression" and _text(c.child_by_field_name("operator")) == "!" \
                        and _text(_strip(c.child_by_field_name("argument"))) == ctor_data:
                    continue                          # `if (!ctor_data) return -EINVAL;` with &x given
            return True
        stack.extend(n.named_children)
    return False


class ShadowReader:
    """The shadow-variable calls of one C function (a patched function, the module's init or exit, a callback)."""

    def __init__(self, fr: _Fn, src: Src, fnode, code: bool):
        self.fr, self.src, self.fnode, self.code = fr, src, fnode, code
        self.types = _local_types(fnode)
        self.values = _assigned_from(fnode)

    def sv_of(self, node) -> str | None:
        """The shadow variable a local holding klp_shadow_get/_alloc's result points at."""
        n = _strip(node)
        name = _shadow_call(n) if n is not None else None
        if name in ("klp_shadow_get", "klp_shadow_get_or_alloc", "klp_shadow_alloc"):
            sv = self.declare(_strip(n), name)[0]
            if sv is not None and self.fr.ctx is not None:
                self.fr.ctx.shadows.setdefault(sv, Item(None, self.src.where(n), _one_line(_text(n))))
            return sv
        if n is not None and n.type == "identifier":
            svs = {self.declare(_strip(v), _shadow_call(v))[0] for v in self.values.get(_text(n), [])
                   if _shadow_call(v) in ("klp_shadow_get", "klp_shadow_get_or_alloc", "klp_shadow_alloc")}
            one = svs.pop() if len(svs) == 1 else None
            if one is not None:
                sv = one
                if self.fr.ctx is not None:
                    self.fr.ctx.shadows.setdefault(sv, Item(None, self.src.where(n), _one_line(_text(n))))
                return sv
        return None

    def shadow_test(self, cnode) -> tuple[bool, str] | None:
        """`x`, `!x`, `x != NULL`, `x == NULL`, `klp_shadow_get(o, ID)`: (negated, SV)."""
        c = _strip(cnode)
        neg = False
        while c is not None and c.type == "unary_expression" and _text(c.child_by_field_name("operator")) == "!":
            neg, c = not neg, _strip(c.child_by_field_name("argument"))
        if c is not None and c.type == "binary_expression" and _text(c.child_by_field_name("operator")) in ("==", "!=") \
                and self.fr.ev(self.src, c.child_by_field_name("right")).kind == "null":
            neg = neg != (_text(c.child_by_field_name("operator")) == "==")
            c = _strip(c.child_by_field_name("left"))
        sv = self.sv_of(c)
        return (neg, sv) if sv is not None else None

    def condition(self, call, top) -> tuple[str | None, str]:
        """The spec condition the call runs under ('' for none), or (None, why)."""
        conds: list[str] = []
        child, n = call, call.parent
        while n is not None and n != top:
            if n.type == "if_statement" and child != n.child_by_field_name("condition"):
                t = self.shadow_test(n.child_by_field_name("condition"))
                if t is None:
                    return None, f"under a condition the spec cannot say: {_one_line(_text(n.child_by_field_name('condition')))}"
                in_else = child.type == "else_clause" or child == n.child_by_field_name("alternative")
                conds.append(f"{'unless' if t[0] != in_else else 'if'} shadow {t[1]}")
            elif n.type in ("for_statement", "while_statement", "do_statement", "switch_statement",
                            "conditional_expression") or \
                    (n.type == "binary_expression" and _text(n.child_by_field_name("operator")) in ("&&", "||")):
                return None, "in a loop, a switch or a conditional expression"
            child, n = n, n.parent
        if len(set(conds)) > 1:
            return None, "under two conditions"
        return (conds[0] if conds else ""), ""

    def declare(self, call, name: str | None) -> tuple[str | None, str | None]:
        """(the shadow variable's spec name, the layout or None) of a call; registers the id."""
        args = _kids(call.child_by_field_name("arguments"))
        if name is None or len(args) != SHADOW_ARGS[name]:
            return None, None
        idnode = args[1] if name != "klp_shadow_free_all" else args[0]
        v = self.fr.ev(self.src, idnode)
        if v.kind != "int" or not 0 <= v.value < 2 ** 64:
            return None, None
        sv = self.fr.imp.shadow_name(self.fr.unit, self.src, idnode, v.value)
        layout = None
        if name in ("klp_shadow_alloc", "klp_shadow_get_or_alloc"):
            layout = self.sizeof_layout(args[2])
        if layout is None and call.parent is not None:          # the pointer it is stored in: `int **p = ...`
            p = call.parent
            while p is not None and p.type in ("parenthesized_expression", "cast_expression"):
                p = p.parent
            target = None
            if p is not None and p.type == "assignment_expression":
                left = _strip(p.child_by_field_name("left"))
                target = _text(left) if left is not None and left.type == "identifier" else None
            elif p is not None and p.type == "init_declarator":
                target = _declared_name(p)
            if target in self.types and self.types[target][1] >= 1:
                base, depth = self.types[target]
                layout = _layout_name(base, depth - 1)
        return sv, layout

    def sizeof_layout(self, node) -> str | None:
        n = _strip(node)
        if n is None or n.type != "sizeof_expression":
            return None
        t = n.child_by_field_name("type")
        if t is not None:
            return _layout_name(*_decl_type(t.child_by_field_name("type"), t.child_by_field_name("declarator")))
        e = _strip(n.child_by_field_name("value"))
        deref = 0
        while e is not None and e.type == "pointer_expression" and _text(e.child_by_field_name("operator")) == "*":
            deref, e = deref + 1, _strip(e.child_by_field_name("argument"))
        if e is not None and e.type == "identifier" and _text(e) in self.types:
            base, depth = self.types[_text(e)]
            if depth >= deref:
                return _layout_name(base, depth - deref)
        return None

    def statement(self, call) -> tuple[str | None, str]:
        """The spec statement a shadow call means (without condition), or (None, why)."""
        name = _shadow_call(call)
        args = _kids(call.child_by_field_name("arguments"))
        if name is None:
            return None, ""
        if len(args) != SHADOW_ARGS[name]:
            return None, f"{name} takes {SHADOW_ARGS[name]} arguments"
        sv, layout = self.declare(call, name)
        if sv is None:
            return None, "the shadow id is not a constant of the file"
        ctx = self.fr.ctx
        if ctx is not None:
            old = ctx.shadows.get(sv)
            if old is None or (old.value is None and layout is not None):
                ctx.shadows[sv] = Item(layout, self.src.where(call), _one_line(_text(call)))
            elif layout is not None and old.value != layout:
                self.fr.imp.warn(self.src.where(call), f"the data of shadow variable {sv} is {layout} here and "
                                 f"{old.value} at {old.where}; the spec keeps {old.value}: check which the C means")
        stmt = f"{SHADOW_STMT[name]} {sv}"
        if name == "klp_shadow_alloc" and self.code:
            obj = _strip(args[0])
            if obj is not None and obj.type == "identifier" and any(
                    (_strip(v) is not None and _strip(v).type == "call_expression"
                     and _text(_strip(v).child_by_field_name("function")) in ALLOCATORS)
                    for v in self.values.get(_text(obj), [])):
                stmt += " on new"                          # on the object the function just allocated
        if name in ("klp_shadow_alloc", "klp_shadow_get_or_alloc"):
            ctor = self.fr.ev(self.src, args[4])
            if ctor.kind == "func":
                data = _strip(args[5])
                nonnull = data is not None and data.type == "pointer_expression" \
                    and _text(data.child_by_field_name("operator")) == "&"
                csrc, cnode = self.fr.unit.funcs[ctor.ident]
                if _returns_can_fail(self.fr, csrc, cnode, nonnull):
                    if name == "klp_shadow_alloc":
                        return None, f"the constructor {ctor.ident} can fail, which the spec's shadow-alloc cannot say"
                    stmt += " with ctor-fail"
            elif ctor.kind != "null":
                return None, "the constructor is not a function of the file"
        return stmt, ""


# The calls the importer recognises, by name: each method emits the statement(s) it means.
CALLS = {**{n: _Fn.call_log for n in PRINTK},
         **{n: _Fn.call_free for n in FREES},
         **{n: _Fn.call_shadow for n in SHADOW_API},
         "memcpy": _Fn.call_memcpy}


# --------------------------------------------------------------------------- the spec text

COMMENT_COLUMN = 48


def _toml_str(s: str, literal: bool = False) -> str:
    """A TOML string holding exactly s: a literal string when asked and possible, else a basic one."""
    if literal and "'" not in s and all(ch.isprintable() for ch in s):
        return f"'{s}'"
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _comment(text: str) -> str:
    return "# " + "".join(ch for ch in text if ch.isprintable())


def _line(code: str, comment: str | None) -> str:
    if not comment:
        return code
    return f"{code.ljust(COMMENT_COLUMN - 1)} {_comment(comment)}" if len(code) < COMMENT_COLUMN - 1 \
        else f"{code}  {_comment(comment)}"


def _stmts(key: str, lines: list[Line], head: Item[None] | None) -> list[str]:
    out = [_line(f"{key} = [", f"{head.where}: {head.ctext}" if head else None)]
    for ln in lines:
        out.append(_line("    " + _toml_str(ln.text, literal='"' in ln.text) + ",", f"{ln.where}: {ln.ctext}"))
    out.append("]")
    return out


def _value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def render(files: list[str], states: dict[int, Item[str]], patches: list[OutPatch], modules: list[OutModule],
           shadows: dict[int, Item[str]] | None = None) -> str:
    out = [_comment(f"Written by klpmodel import from {' '.join(files)}"),
           _comment("(one [[patch]] per livepatch file, in the order given). Each value's comment names the C"),
           _comment("line it comes from; a 'log \"TODO ...\"' statement is C that was not understood: write it"),
           _comment("by hand (docs/import.md). Then: klpmodel verify SPEC."),
           "name = " + _toml_str("imported from " + ", ".join(Path(f).name for f in files)),
           ""]
    used = {i for p in patches for s, _ in p.states for i, it in states.items() if it.value == s}
    for sid, item in sorted(states.items(), key=lambda kv: kv[0]):
        if sid not in used:
            continue
        out += [f"[states.{item.value}]", _line(f"id = {sid}", f"{item.where}: {item.ctext}"), ""]
    used_sv = {sv for p in patches for sv in p.shadows}
    for sid, item in sorted((shadows or {}).items(), key=lambda kv: kv[0]):
        if item.value in used_sv:
            out += [f"[shadows.{item.value}]", _line(f"id = {sid}", f"{item.where}: {item.ctext}"), ""]
    for m in modules:
        out.append(_line(f"[modules.{m.name}]", f"{m.where}: {m.ctext}" if m.ctext else m.where))
        for key, lines in (("init", m.init), ("exit", m.exit)):
            if lines:
                out += _stmts(key, lines, None)
        for c in m.comments:
            out.append(_comment(f"not imported: {c}"))
        if m.params:
            out += ["", f"[modules.{m.name}.params]"]
            out += [_line(f"{n} = {_value(it.value)}", f"{it.where}: {it.ctext}") for n, it in m.params]
        out.append("")
    for p in patches:
        out += ["[[patch]]", _line(f"name = {_toml_str(p.name)}", f"{p.file} (the module's name)")]
        if p.replace is not None:
            out.append(_line(f"replace = {_value(p.replace.value)}", f"{p.replace.where}: {p.replace.ctext}"))
        if p.replace_param is not None:
            out.append(_line(f"replace_param = {_toml_str(p.replace_param.value)}",
                             f"{p.replace_param.where}: {p.replace_param.ctext}"))
        for key, lines in (("init", p.init), ("exit", p.exit)):
            if lines:
                out += _stmts(key, lines, None)
        for c in p.comments:
            out.append(_comment(f"not imported: {c}"))
        for key, entries in (("params", p.params), ("states", p.states)):
            if entries:
                out += ["", f"[patch.{key}]"]
                out += [_line(f"{n} = {_value(it.value)}", f"{it.where}: {it.ctext}") for n, it in entries]
        if p.shadows:
            out += ["", "[patch.shadows]"]
            out += [_line(f"{sv} = {_toml_str(it.value or sv)}", f"{it.where}: {it.ctext}")
                    for sv, it in p.shadows.items()]
        code = [(f, lines) for o in p.objects for f, lines in o.code]
        if code:
            out += ["", "[patch.code]"]
            seen: set[str] = set()
            for f, lines in code:
                if f.value in seen:                       # the same function patched in two objects
                    out.append(_comment(f"not imported: {f.where}: {f.ctext}: code = {f.value} is imported once"))
                    continue
                seen.add(f.value)
                out += _stmts(f.value, lines, Item(None, f.where, f.ctext))
        for o in p.objects:
            out += ["", _line(f"[patch.objects.{o.name}]", f"{o.where}: {o.ctext}")]
            if o.funcs:
                out.append("funcs = [")
                out += [_line("    " + _toml_str(f.value) + ",", f"{f.where}: {f.ctext}") for f in o.funcs]
                out.append("]")
            for cb in CALLBACKS:
                if cb in o.callbacks:
                    lines, head = o.callbacks[cb]
                    out += _stmts(cb, lines, head)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- entry points


def import_files(paths: list[Path]) -> tuple[str, list[str], list[Path]]:
    """(the spec's TOML text, the warnings, every file read). Raises UserError for a file it
    cannot read or parse."""
    imp = Importer()
    patches, modules = imp.run(list(paths))
    owners: list[OutPatch | OutModule] = [*patches, *modules]
    for owner in owners:                           # params: valid names only (C identifiers may not be)
        for name, it in owner.params:
            if not NAME_RE.match(name):
                imp.warn(it.where, f"not understood: {it.ctext}; the parameter name is not a valid spec name "
                         "(letters, digits, '_'): declare it by hand")
        owner.params[:] = [(n, it) for n, it in owner.params if NAME_RE.match(n)]
    text = render([str(p) for p in paths], imp.state_names, patches, modules, imp.shadow_names)
    _self_check(text)
    seen, notes = set(), []
    for n in imp.notes:
        s = str(n)
        if s not in seen:
            seen.add(s)
            notes.append(s)
    files = [f for u in imp.units for f in u.files]
    return text, notes, files


def _self_check(text: str) -> None:
    """The spec written must load: anything else is a bug of the importer."""
    import tomllib

    from .spec import _Loader

    try:
        _Loader("<imported spec>", text).load(tomllib.loads(text))
    except (UserError, tomllib.TOMLDecodeError) as e:
        raise InternalError(f"the imported spec does not load ({e}):\n{text}") from None


def write_spec(path: Path, text: str, inputs: list[Path]) -> None:
    """Write the spec to path: never over an input, never through a symbolic link."""
    import errno

    if path.is_symlink():
        raise UserError(f"-o {path} is a symbolic link; klpmodel import does not write through links: "
                        "give the path of a regular file")
    for i in inputs:
        try:
            same = path.exists() and os.path.samefile(path, i)
        except OSError:
            same = False
        if same or path.resolve() == i.resolve():
            raise UserError(f"-o {path} is one of the C files read; write the spec to another file, e.g. -o spec.toml")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"-o {path} is a symbolic link; klpmodel import does not write through links: "
                            "give the path of a regular file") from None
        raise UserError(f"-o {path}: cannot write: {e.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
