"""The mainline (Linux 5.5+) livepatch rules: the ONE place every engine gets them from.

Section numbers (§) refer to ../shared/kernel/semantics.md.

* `lifecycle()` is the kernel's per-patch state machine as a networkx graph: one node
  per phase, one edge per kernel action, labelled with the callbacks it runs. `step`
  reads its phase changes and callback lists from that graph, compiled once into plain
  Python data (`_compiled`: a run imports no networkx; a test checks the two agree).
* `Model` compiles a spec into the state variables of the transition system and the
  static facts (compatibility, versions, slots).
* `step(model, ctx, op)` is one operation, written once over the value interface of
  backend.py: concrete (interpreter, `simulate`, replay) and symbolic (Z3) runs share it.
  It also judges the built-in properties (properties.md) where they are decided.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import Any, ClassVar, NamedTuple

from . import events as E
from . import properties
from .backend import Backend, Val
from .errors import UserError
from .events import ENABLED, IN_TRANSITION, LISTED, OFFLIST, PATCHING, PHASES, UNLOADED, UNPATCHING, Edge, Incompatible, Refusal, Where
from .properties import Property
from .spec import INIT_EXIT, MODULE_FUNCS, SHADOW_ACTIONS, Cond, Module, Obj, Patch, Spec, StateDecl, Stmt

EdgeInfo = tuple[int, int, tuple[str, ...]]          # (source phase, target phase, callbacks)
EdgeTable = tuple[tuple[Any, ...], ...]              # (source, target, event, callbacks, note[, attributes])
# the abstract system: each state's value; each (patch, state)'s data as (kind, content)
Abstract = tuple[dict[str, Val], dict[tuple[int, str], tuple[Val, Val]]]

# ------------------------------------------------------------------ the lifecycle graph

# the phases of a patch (the lifecycle's nodes) live with the events that name them

# value encoding of a system state / block content (properties.md "precise readings")
ORIGINAL, ZERO = 0, 1        # variants are 2 + rank of the version among the state's versions
NO_VARIANT = 0               # `hi`: no variant held since the value was last original

# (source, target, event, callbacks, note[, attributes]). Callbacks run on the patch's loaded objects
# (or, for module events, on the object of that module) in list order, with two rules of
# §8 applied by `_run_callback`: `pre_patch` sets the hidden post_unpatch_enabled flag to
# (ret == 0) and a failing `pre_patch` stops the edge; `post_unpatch` runs only when that
# flag is set, and clears it.
_EDGES = (
    (UNLOADED, PATCHING, "load", ("pre_patch",),
     "klp_enable_patch §2-3: compatible and not busy; appended to klp_patches; pre_patch per loaded object, interleaved with patching"),
    (UNLOADED, UNLOADED, "load-failed", ("post_unpatch",),
     "§3.1: a pre_patch failed; klp_cancel_transition runs post_unpatch where the flag is set; the module load fails"),
    (PATCHING, ENABLED, "complete", ("post_patch",),
     "§4.2: post_patch for loaded objects; a replace patch then drops the patches before it on klp_patches. "
     "Not while a task sleeps in a function being patched (§11, the busy test module), unless force switched it"),
    (UNPATCHING, OFFLIST, "complete", ("post_unpatch",),
     "§4.2: post_unpatch for loaded objects with the flag; the patch leaves klp_patches"),
    (PATCHING, UNPATCHING, "reverse", (), "§6.2: no callbacks at reversal (also `echo 0 > enabled`, §6.1)"),
    (UNPATCHING, PATCHING, "reverse", (), "§6.2: no callbacks at reversal"),
    (ENABLED, UNPATCHING, "disable", ("pre_unpatch",), "§6.3: pre_unpatch for patched objects"),
    (ENABLED, OFFLIST, "replaced", (), "§7: a cumulative patch completed; no callback of the replaced patch runs"),
    (OFFLIST, UNLOADED, "rmmod", (), "§10: only when not forced"),
    # force: every task switched (§6.4); `marks`: is the patch in this phase marked forced
    # ("if-replacing": when the transition patch is a replace patch that is patching)
    (PATCHING, PATCHING, "force", (), "§6.4 (5.18+): the patch being patched is not marked forced", (("marks", "no"),)),
    (UNPATCHING, UNPATCHING, "force", (), "§6.4 (5.18+): the transition patch is marked forced", (("marks", "yes"),)),
    (ENABLED, ENABLED, "force", (), "§6.4 (5.18+): marked forced when a replace patch is patching",
     (("marks", "if-replacing"),)),
    (ENABLED, ENABLED, "modload", ("pre_patch", "post_patch"), "§9.1: not the transition patch"),
    (PATCHING, PATCHING, "modload", ("pre_patch",), "§9.1: post_patch deferred to completion"),
    (UNPATCHING, UNPATCHING, "modload", ("pre_patch",), "§9.1: post_patch deferred to completion"),
    (ENABLED, ENABLED, "modunload", ("pre_unpatch", "post_unpatch"), "§9.2 (also the rollback of a refused module, §9.1)"),
    (PATCHING, PATCHING, "modunload", ("post_unpatch",), "§9.2: pre_unpatch skipped for the transition patch"),
    (UNPATCHING, UNPATCHING, "modunload", ("post_unpatch",), "§9.2: pre_unpatch skipped for the transition patch"),
)


@cache
def _graph(title: str, table: EdgeTable) -> Any:
    """A lifecycle edge table as a networkx MultiDiGraph (nodes: phases; edges: actions)."""
    import networkx as nx

    g = nx.MultiDiGraph(name=title)
    for i, name in enumerate(PHASES):
        g.add_node(i, name=name, listed=i in LISTED, transition=i in IN_TRANSITION)
    for src, dst, event, cbs, note, *attrs in table:
        g.add_edge(src, dst, key=event, event=event, callbacks=cbs, note=note, **dict(attrs[0] if attrs else ()))
    return g


class Compiled(NamedTuple):
    """What the rules read of a lifecycle graph, as plain Python data: each event's edges
    (source, target, callbacks) in the order the graph lists them, and each edge's attributes
    as the graph holds them, by (source, target, event)."""
    by_event: dict[str, tuple[EdgeInfo, ...]]
    data: dict[tuple[int, int, str], dict[str, Any]]


@cache
def _compiled(table: EdgeTable) -> Compiled:
    """The lifecycle `_graph` builds from `table`, compiled once for the rules, without
    networkx (whose import is a third of `klpmodel verify`'s start-up). It lays the edges out
    as a networkx MultiDiGraph stores them (source node in node order, then target in the
    order the source first got an edge to it, then key in insertion order, a repeated key
    updating the edge's attributes), so it lists them as the graph does; tests/test_lifecycle.py
    checks that the two agree for every profile."""
    adj: dict[int, dict[int, dict[str, dict[str, Any]]]] = {i: {} for i in range(len(PHASES))}
    for src, dst, event, cbs, note, *extra in table:
        adj.setdefault(src, {}); adj.setdefault(dst, {})
        edge = adj[src].setdefault(dst, {}).setdefault(event, {})
        edge.update(event=event, callbacks=cbs, note=note, **dict(extra[0] if extra else ()))
    by_event: dict[str, list[EdgeInfo]] = {}
    data: dict[tuple[int, int, str], dict[str, Any]] = {}
    for src, targets in adj.items():
        for dst, keyed in targets.items():
            for key, attrs in keyed.items():
                by_event.setdefault(attrs["event"], []).append((src, dst, attrs["callbacks"]))
                data[src, dst, key] = attrs
    return Compiled({k: tuple(v) for k, v in by_event.items()}, data)


def lifecycle(profile: str = "mainline") -> Any:
    """The per-patch lifecycle of a kernel profile, as the networkx graph its rules read
    (compiled: `Mainline.edges`, `Mainline.edge`)."""
    return PROFILES[profile].lifecycle()


def edges(event: str, profile: str = "mainline") -> tuple[EdgeInfo, ...]:
    return PROFILES[profile].edges(event)


_CMP = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">=": operator.ge, ">": operator.gt}

# ------------------------------------------------------------------ the compiled model

@dataclass(frozen=True)
class Op:
    word: str
    arg: str | None = None
    params: tuple[tuple[str, int], ...] | None = None   # module parameters given at insmod (simulate)

    def __str__(self) -> str:
        return f"{self.word} {self.arg}" if self.arg else self.word

    @property
    def target(self) -> str:
        """The patch or module the operation names (load, disable, rmmod, modload, ...)."""
        if self.arg is None:
            raise ValueError(f"'{self.word}' names no patch or module")
        return self.arg


class Choice(NamedTuple):
    """One fallible site of an operation, identified by its position: statement `index`
    (from 0) of `callback` of patch `patch`'s object `obj`, or, with callback "patching",
    klp_patch_object() of that object (the optional patching fault, §16). Two identical
    statements on one spec line are two choices. `line` and `text` only describe the
    site (the first four fields determine them)."""
    patch: str
    obj: str
    callback: str
    index: int      # type: ignore[assignment]   # (the field shadows tuple.index, which nothing here uses)
    line: int
    text: str


PATCHING_SITE = "patching"      # Choice.callback of the patching fault
MODULE_OBJ = "module"           # Where.obj / Choice.obj of the livepatch module's init, init_error, exit

# /sys/kernel/livepatch/<patch>/...: the attributes and their modes (§6.1, §6.4, §6.5; the
# patch's and its objects' kobject directories are 0755), and the release that added each
# attribute the model reads (mainline is the newest: all exist)
SYSFS_MODES = {"": "drwxr-xr-x", "enabled": "-rw-r--r--", "force": "--w-------",
               "transition": "-r--r--r--", "replace": "-r--r--r--", "stack_order": "-r--r--r--",
               "replace_set": "-r--r--r--"}     # (replace_set: the replace-set profile only, §B.6)
OBJECT_SYSFS_MODES = {"": "drwxr-xr-x", "patched": "-r--r--r--"}
SYSFS_SINCE = {"patched": "6.1", "replace": "6.11", "stack_order": "6.14"}


def compatible(new: Patch, old: Patch) -> tuple[bool, Incompatible | None]:
    """klp_is_patch_compatible for one installed patch (§2.2, kernel/livepatch/state.c): the
    first of old's states that refuses new, as an Incompatible (None: compatible)."""
    for state, old_version in old.states:
        version = new.version(state)
        if version is None:
            if new.replace:           # a cumulative patch must handle every installed state
                return False, Incompatible(f"cumulative {new.name} does not declare state {state} of installed "
                                           f"{old.name}", new.name, old.name, "undeclared", state, None, old_version)
            continue                  # non-cumulative patches may leave states alone
        if version < old_version:     # versions never go down
            return False, Incompatible(f"{new.name} declares {state} version {version} < {old_version} of installed "
                                       f"{old.name}", new.name, old.name, "version", state, version, old_version)
    return True, None


def compatible_in_sets(new: Patch, old: Patch, same: bool) -> tuple[bool, Incompatible | None]:
    """klp_is_patch_compatible of the replace_set series v2 (proposals.md §B.5.2, §B.6) for one
    installed patch: within one replace_set (`same`), new must declare every state of old, with
    the same or a higher version; across sets, new must declare none of old's state ids and
    patch none of old's functions (an object of the same name listing the same function in
    `funcs`). The states are checked first, then the functions, as the C code does."""
    for state, old_version in old.states:
        version = new.version(state)
        if same and version is None:
            return False, Incompatible(f"{new.name} does not declare state {state} of installed {old.name}, of the "
                                       f"same replace_set", new.name, old.name, "undeclared-in-set", state, None,
                                       old_version)
        if same and version is not None and version < old_version:
            return False, Incompatible(f"{new.name} declares {state} version {version} < {old_version} of installed "
                                       f"{old.name}", new.name, old.name, "version", state, version, old_version)
        if not same and version is not None:
            return False, Incompatible(f"{new.name} declares state {state}, also declared by installed {old.name}, "
                                       f"of another replace_set", new.name, old.name, "shared-state", state, version,
                                       old_version)
    if not same:
        for o in new.objects:
            for oo in old.objects:
                if o.name == oo.name:
                    for f in o.funcs:
                        if f in oo.funcs:
                            return False, Incompatible(f"{new.name} patches {f}, also patched by installed "
                                                       f"{old.name}, of another replace_set", new.name, old.name,
                                                       "shared-function", f, None, 0)
    return True, None


def static_set(p: Patch) -> int:
    """klp_patch.replace_set as the spec gives it (kernel replace-set): `replace_set`, or the
    default of the `replace_param` parameter as an unsigned int."""
    return p.replace_set if p.replace_param is None else dict(p.params)[p.replace_param] & 0xFFFFFFFF


def pair(sv: str, obj: str | None) -> str:
    """(issue 14) The key of a shadow pair: SV on the abstract parent object, SV@OBJ on a named one."""
    return sv if obj is None else f"{sv}@{obj}"


class VarNames:
    """The names of the state variables (Model._vars), formatted once: the rules look them
    up on every step. Indexed like the rules index: patch number, state name, slot."""

    def __init__(self, m: Model):
        P = m.P
        self.phase = tuple(f"phase[{p.name}]" for p in P)
        self.pos = tuple(f"pos[{p.name}]" for p in P)
        self.list_vars = tuple(name for i in range(m.n) for name in (self.phase[i], self.pos[i]))
        self.forced = tuple(f"forced[{p.name}]" for p in P)
        self.repl = tuple(f"replace[{p.name}]" for p in P)
        self.pue = tuple(tuple(f"pue[{p.name}.{o.name}]" for o in p.objects) for p in P)
        self.ptr = tuple({s: f"ptr[{p.name}.{s}]" for s, _ in p.states} for p in P)
        self.snap_kind = tuple({s: f"snap_kind[{p.name}.{s}]" for s, _ in p.states} for p in P)
        self.snap_cont = tuple({s: f"snap_cont[{p.name}.{s}]" for s, _ in p.states} for p in P)
        self.mod = {name: f"mod[{name}]" for name in m.module_names}
        # (issue 15) a module whose task sleeps in a function: which version of it (0: the
        # original, k + 1: patch k's), the one a new task ran when it went to sleep
        self.sleep = {mod.name: f"sleep[{mod.name}]" for mod in m.spec.modules if mod.sleeps is not None}
        self.val = {s: f"val[{s}]" for s in m.state_names}
        self.hi = {s: f"hi[{s}]" for s in m.state_names}
        self.snap_val = {s: f"snap_val[{s}]" for s in m.state_names}
        self.live = {s: tuple(f"live[{s}#{j}]" for j in range(m.slots[s])) for s in m.state_names}
        self.cont = {s: tuple(f"cont[{s}#{j}]" for j in range(m.slots[s])) for s in m.state_names}
        # (issue 14) shadow variables, per pair (SV on the abstract parent object: key SV; on a
        # named object OBJ: key SV@OBJ): present; the count kept in the variable, for the pairs
        # some `get`/`put` touches; the layout its creator gave it
        self.shadow = {key: f"shadow[{key}]" for sv in m.spec.shadows for key in m.pairs[sv.name]}
        self.count = {key: f"count[{key}]" for key in m.counted}
        self.layout = {key: f"layout[{key}]" for sv in m.layouts for key in m.pairs[sv]}
        self.stale = {name: f"stale[{name}]" for name in m.fresh}
        # (kernel "state-callbacks", §A.4.1) per patch and state: callbacks.pre_patch_succeeded
        on = m.profile.STATE_CALLBACKS
        self.pps = tuple({s: f"pps[{p.name}.{s}]" for s, _ in p.states} if on else {} for p in P)
        # (issue 15) what the module's init set from a parameter: patch.states = NULL; a state's block_disable
        self.nostate = {i: f"nostate[{p.name}]" for i, p in enumerate(P) if on and p.no_states_param}
        self.bd = tuple({s: f"bd[{p.name}.{s}]" for s, _ in p.block_disable_param} if on else {} for p in P)


def param_top(value: int) -> int:
    """The largest value of a module parameter's variable: Z3 holds the parameter in two's
    complement, in at least 8 bits and enough for `value` and its sign, so that the
    encoding is 0 exactly when the value is (the rules only test a parameter against 0)."""
    return (1 << max(8, abs(value).bit_length() + 1)) - 1


class Model:
    """A spec compiled for the rules of a kernel profile: variables, initial state,
    operations, static facts.

    `faults`: the optional faults explored (default: the spec's [check] faults).
    `profile`: the kernel profile's name (default: the spec's `kernel`)."""

    def __init__(self, spec: Spec, faults: tuple[str, ...] | None = None, profile: str | None = None):
        self.spec = spec
        self.faults = spec.faults if faults is None else tuple(faults)
        self.profile: type[Mainline] = PROFILES[profile or spec.kernel]
        self.profile.refuse(spec)               # (also under --kernel: a key this profile cannot express)
        self.P = spec.patches
        self.n = len(self.P)
        self.index = {p.name: i for i, p in enumerate(self.P)}
        self.state_names = tuple(s.name for s in spec.states)
        self.module_names = tuple(m.name for m in spec.modules)
        # value encoding per state: ORIGINAL, ZERO, then each declared version in order
        self.versions = {s: sorted({v for p in self.P for (t, v) in p.states if t == s}) for s in self.state_names}
        # block slots per state: one per patch declaring it (a listed patch holds <= 1 pointer)
        self.decl = {s: tuple(i for i, p in enumerate(self.P) if p.version(s) is not None) for s in self.state_names}
        self.slots = {s: len(self.decl[s]) for s in self.state_names}
        # compatibility of i with j installed, for i loaded with replace = False / True (the
        # profile's flag: replace-set's is "i and j are in the same replace_set")
        self.compat = {(i, j, r): self.profile.compatible_in(spec, self.P[i], self.P[j], r)
                       for i in range(self.n) for j in range(self.n) if i != j for r in (False, True)}
        # shadow variables with a reference count (some `get` or `put`); the count saturates at
        # count_top (one more than the patches: each module's init takes at most one reference)
        self.shadow_ids = {sv.name: sv.id for sv in spec.shadows}
        # the parent objects of each shadow variable: the abstract one (None; its statements name
        # no object) or the named objects ([objects], in that order) its statements name
        named = set()
        for st in self.shadow_statements():
            if st.action in SHADOW_ACTIONS and st.obj is not None:
                named.add((st.arg, st.obj))
            if st.cond is not None and st.cond.shadow is not None and st.cond.obj is not None:
                named.add((st.cond.state, st.cond.obj))
        self.shadow_objs: dict[str, tuple[str | None, ...]] = {
            sv.name: tuple(o for o, _ in spec.objects if (sv.name, o) in named) or (None,) for sv in spec.shadows}
        self.pairs = {sv: tuple(pair(sv, o) for o in objs) for sv, objs in self.shadow_objs.items()}
        counted = {pair(st.arg or "", st.obj) for st in self.shadow_statements() if st.action in ("get", "put")}
        self.counted = tuple(key for sv in spec.shadows for key in self.pairs[sv.name] if key in counted)
        self.count_top = self.n + 1 + sum(any(st.action == "get" for f in INIT_EXIT for st in mod.func(f))
                                          for mod in spec.modules)     # (and each target module's that takes one)
        # the layouts of each shadow variable, for those patches give two or more (spec order)
        shadows_of = [p.shadows for p in self.P] + [mod.shadows for mod in spec.modules]
        layouts = {sv.name: list(dict.fromkeys(lay for of in shadows_of for n, lay in of if n == sv.name))
                   for sv in spec.shadows}
        self.layouts = {name: tuple(ls) for name, ls in layouts.items() if len(ls) > 1}
        # shadow variables some code allocates on new objects (`on new`): the model then tracks
        # whether entries of freed objects may remain (a new object may reuse their address)
        self.fresh = tuple(dict.fromkeys(st.arg or "" for _, _, st in self.statements() if st.fresh))
        self.ops = self._ops()
        self.v = VarNames(self)
        self.vars, self.init = self._vars()
        self.bits = {v: max(1, top.bit_length()) for v, (kind, top) in self.vars.items() if kind == "i"}
        # the module parameters: two's complement in their bits (param_top); the rest unsigned
        self.signed = frozenset(v for v in self.vars if v.startswith("param["))

    def shadow_statements(self) -> Iterator[Stmt]:
        """(issue 14) Every statement that may name a shadow variable: the patches' (callbacks,
        module functions, state callbacks) and the target modules' init, init_error and exit."""
        yield from (st for _, _, st in self.statements())
        for mod in self.spec.modules:
            for f in INIT_EXIT:
                yield from mod.func(f)

    def shadow_pair_list(self) -> list[tuple[str, str | None, str, str]]:
        """(issue 14) Every shadow pair, spec order: (variable, object or None for the abstract
        parent object, its words "SV" or "SV on OBJ", its key)."""
        return [(sv.name, obj, self.pair_words(pair(sv.name, obj)), pair(sv.name, obj))
                for sv in self.spec.shadows for obj in self.shadow_objs[sv.name]]

    def echoes(self, module: str) -> bool:
        """(issue 14) Target `module` echoes its shadow API calls (echoes_shadow_calls)."""
        return any(mod.echoes for mod in self.spec.modules if mod.name == module)

    def pair_words(self, key: str) -> str:
        """A shadow pair's key in words: "SV" (the abstract parent object) or "SV on OBJ"."""
        sv, _, obj = key.partition("@")
        return f"{sv} on {obj}" if obj else sv

    def statements(self) -> Iterator[tuple[int, str, Stmt]]:
        """Every statement of the spec's patches: (patch, callback or module function, statement)."""
        for i, p in enumerate(self.P):
            for o in p.objects:
                for cb, stmts in o.callbacks:
                    yield from ((i, cb, st) for st in stmts)
            for f in p.module_funcs():
                yield from ((i, f, st) for st in p.module_func(f))
            for d in self.spec.states:               # (state-callbacks) the per-state callbacks it runs
                if p.version(d.name) is not None:
                    for cb, stmts in d.callbacks:
                        yield from ((i, cb, st) for st in stmts)

    def choice_at(self, patch: str, obj: str, callback: str, index: int) -> Choice | None:
        """The fallible site at this position in the spec (None: there is none). The
        livepatch module's init/exit statements are sites of object MODULE_OBJ."""
        try:
            p = self.spec.patch(patch)
        except StopIteration:
            return None
        if obj.startswith(E.STATE_OBJ):           # (state-callbacks) "state ID"
            d = next((d for d in self.spec.states if f"{E.STATE_OBJ}{d.id}" == obj), None)
            stmts = d.cb(callback) if d is not None else ()
            if not 0 <= index < len(stmts):
                return None
            return Choice(patch, obj, callback, index, stmts[index].line, stmts[index].text)
        if obj == MODULE_OBJ:
            stmts = p.module_func(callback)
            if not 0 <= index < len(stmts):
                return None
            return Choice(patch, obj, callback, index, stmts[index].line, stmts[index].text)
        o = next((o for o in p.objects if o.name == obj), None)
        if callback == PATCHING_SITE:
            return Choice(patch, obj, callback, 0, o.line if o else p.line,
                          "klp_patch_object" + ("" if o else " (nop object)"))
        stmts = o.cb(callback) if o else ()
        if not 0 <= index < len(stmts):
            return None
        return Choice(patch, obj, callback, index, stmts[index].line, stmts[index].text)

    def sites(self, patch: str, obj: str, callback: str) -> list[Choice]:
        """Every statement of a callback as a site (fallible or not), in order."""
        out: list[Choice] = []
        while (c := self.choice_at(patch, obj, callback, len(out))) is not None:
            out.append(c)
        return out

    def patch_vars(self, i: int) -> list[tuple[str, str | None]]:
        """Patch i's own variables, in an order aligned across interchangeable patches (the
        symmetry reduction moves them together): (name, the state whose block slot it
        points to, for a data pointer; else None)."""
        v, p = self.v, self.P[i]
        out: list[tuple[str, str | None]] = [(v.phase[i], None), (v.pos[i], None), (v.forced[i], None)]
        out += [(v.repl[i], None)] if v.repl[i] in self.vars else []
        out += [(flag, None) for flag in v.pue[i]]
        for s in sorted(dict(p.states)):
            out += [(v.ptr[i][s], s), (v.snap_kind[i][s], None), (v.snap_cont[i][s], None)]
            out += [(v.pps[i][s], None)] if s in v.pps[i] else []
        out += [(f"param[{p.name}.{n}]", None) for n, _ in p.params]
        return out

    def slot_vars(self, s: str) -> list[tuple[str, str]]:
        """The block slots of state s: (its live flag, its content), slot 1 first."""
        return list(zip(self.v.live[s], self.v.cont[s], strict=True))

    def pointer_vars(self, s: str) -> list[str]:
        """The data pointer of every patch that declares s, in spec order."""
        return [self.v.ptr[i][s] for i in self.decl[s]]

    # ---- a variable in the user's words (prove's counterexamples to induction are arbitrary
    # states: any value of a variable may show up, so out-of-range values are said as such)
    def _meanings(self) -> dict[str, tuple[str, ...]]:
        v, out = self.v, dict[str, tuple[str, ...]]()
        for i, p in enumerate(self.P):
            out[v.phase[i]], out[v.pos[i]], out[v.forced[i]] = ("phase", p.name), ("pos", p.name), ("forced", p.name)
            out[v.repl[i]] = ("replace", p.name)
            for o, flag in zip(p.objects, v.pue[i], strict=True):
                out[flag] = ("pue", p.name, o.name)
            for st, _ in p.states:
                out[v.ptr[i][st]] = ("ptr", p.name, st)
                out[v.snap_kind[i][st]] = ("snap_kind", p.name, st)
                out[v.snap_cont[i][st]] = ("snap_cont", p.name, st)
                if st in v.pps[i]:
                    out[v.pps[i][st]] = ("pps", p.name, st)
                if st in v.bd[i]:
                    out[v.bd[i][st]] = ("bd", p.name, st)
            if i in v.nostate:
                out[v.nostate[i]] = ("nostate", p.name)
            for n, _ in p.params:
                out[f"param[{p.name}.{n}]"] = ("param", f"{p.name}.{n}")
        for mod in self.spec.modules:
            out[v.mod[mod.name]] = ("mod", mod.name)
            if mod.name in v.sleep:
                out[v.sleep[mod.name]] = ("sleep", mod.name)
            for n, _ in mod.params:
                out[f"param[{mod.name}.{n}]"] = ("param", f"{mod.name}.{n}")
        for sv, name in v.shadow.items():
            out[name] = ("shadow", sv)
        for sv, name in v.count.items():
            out[name] = ("count", sv)
        for sv, name in v.layout.items():
            out[name] = ("layout", sv)
        for sv, name in v.stale.items():
            out[name] = ("stale", sv)
        for st in self.state_names:
            out[v.val[st]], out[v.hi[st]], out[v.snap_val[st]] = ("val", st), ("hi", st), ("snap_val", st)
            for j in range(self.slots[st]):
                out[v.live[st][j]], out[v.cont[st][j]] = ("live", st, str(j + 1)), ("cont", st, str(j + 1))
        return out

    _FLAGS: ClassVar[dict[str, tuple[str, str]]] = {"leaked": ("no block has leaked", "a live block became unreachable (leaked)"),
              "tload": ("no load-started transition is being watched", "the transition in progress was started by load"),
              "exempt": ("no target module came or went during it", "a target module came or went during the transition"),
              "leak_since": ("no block leaked since that load", "a block leaked since that load"),
              "switched": ("no force switched the tasks of the transition in progress",
                           "force switched every task of the transition in progress"),
              "replaced_called": ("the replaced patches' pre_unpatch were not called",
                                  "the replaced patches' state pre_unpatch were called (klp_states_pre_unpatch_replaced)"),
              "nops": ("the transition patch has no nop objects",
                       "the transition patch (a replace patch) still has its nop objects")}

    def say(self, var: str, value: Val) -> str:
        """One variable's value in the words of the spec (patch phases, state values, blocks)."""
        v = int(value)
        if var in self._FLAGS:
            return self._FLAGS[var][int(bool(v))]
        kind, *parts = self._meanings()[var]
        bad = f"{var} = {v} (a value no reachable state has)"
        if kind == "phase":
            return f"{parts[0]} is {PHASES[v]}" if v < len(PHASES) else bad
        if kind == "pos":
            return f"{parts[0]} has klp_patches position {v}"
        if kind == "forced":
            return f"{parts[0]} is {'forced' if v else 'not forced'}"
        if kind == "replace":
            if self.profile.SETS:
                return f"{parts[0]} was loaded with replace_set = {v}"
            return f"{parts[0]} was loaded with replace = {'true' if v else 'false'}"
        if kind == "nostate":
            return f"{parts[0]} was loaded {'without' if v else 'with'} its states (patch.states is {'NULL' if v else 'set'})"
        if kind == "bd":
            return f"{parts[0]} was loaded with block_disable {'set' if v else 'clear'} for state {parts[1]}"
        if kind == "pps":
            return f"{parts[0]}'s pre_patch_succeeded flag for state {parts[1]} is {'set' if v else 'clear'}"
        if kind == "pue":
            return f"{parts[0]}'s post_unpatch_enabled flag for {parts[1]} is {'set' if v else 'clear'}"
        if kind == "ptr":
            return f"{parts[0]}'s {parts[1]} data is NULL" if v == 0 else f"{parts[0]}'s {parts[1]} data points to block {parts[1]}#{v}"
        if kind == "snap_kind":
            return f"before the load in transition, {parts[0]}.{parts[1]}'s data was " + \
                (("NULL", "live", "freed")[v] if v < 3 else str(v))
        if kind == "live":
            return f"block {parts[0]}#{parts[1]} is {'live' if v else 'not live'}"
        if kind == "mod":
            return f"module {parts[0]} is {'loaded' if v else 'not loaded'}"
        if kind == "param":
            return f"parameter {parts[0]} is {v}"
        if kind == "sleep":
            func = next(mod.sleeps[0] for mod in self.spec.modules if mod.name == parts[0] and mod.sleeps)
            if v > self.n:
                return bad
            return f"a task of {parts[0]} that sleeps is in " + \
                ("the original " + func if v == 0 else f"{self.P[v - 1].name}'s version of {func}")
        if kind == "shadow":
            return f"shadow variable {self.pair_words(parts[0])} {'exists' if v else 'does not exist'}"
        if kind == "count":
            return f"the count kept in shadow variable {self.pair_words(parts[0])} is {v}"
        if kind == "stale":
            return f"entries of shadow variable {parts[0]} on freed objects {'may remain' if v else 'do not remain'}"
        if kind == "layout":
            lays = self.layouts[parts[0].partition("@")[0]]
            return f"shadow variable {self.pair_words(parts[0])} was created with layout {lays[v]}" \
                if v < len(lays) else bad
        st = parts[-1] if kind in ("snap_cont",) else parts[0]
        if v >= 2 + len(self.versions[st]):
            return bad
        what = self.describe_value(st, v)
        if kind == "val":
            return f"{st} is {what}"
        if kind == "hi":
            return f"{st} held no variant since it was last original" if v == 0 else \
                f"the newest variant {st} held since it was last original is {what}"
        if kind == "snap_val":
            return f"before the load in transition, {st} was {what}"
        if kind == "cont":
            return f"block {st}#{parts[1]} holds {what}"
        return f"before the load in transition, {parts[0]}.{parts[1]}'s data held {what}"

    def state_lines(self, st: dict[str, Val]) -> list[str]:
        """The meaningful part of a state in the user's words: phases, values, the listed
        patches' data, blocks, the monitors' flags."""
        v, out = self.v, []
        for i, p in enumerate(self.P):
            ph = int(st[v.phase[i]])
            line = self.say(v.phase[i], ph)
            if ph in LISTED:
                line += f" (position {int(st[v.pos[i]])} on klp_patches)"
            if st[v.forced[i]]:
                line += ", forced"
            out.append(line)
            if ph in LISTED:
                out += ["  " + self.say(v.ptr[i][s], st[v.ptr[i][s]]) for s, _ in p.states]
        out += [self.say(v.mod[name], st[v.mod[name]]) for name in self.module_names]
        out += [self.say(name, st[name]) for name in v.shadow.values()]
        out += [self.say(name, st[name]) for sv, name in v.count.items() if st[v.shadow[sv]]]
        for s in self.state_names:
            out.append(self.say(v.val[s], st[v.val[s]]))
            if int(st[v.hi[s]]) != 0:                  # what version-order compares a new value with
                out.append("  " + self.say(v.hi[s], st[v.hi[s]]))
            if st["tload"]:                            # what revert-restores compares with
                out.append("  " + self.say(v.snap_val[s], st[v.snap_val[s]]))
            for j in range(self.slots[s]):
                if st[v.live[s][j]]:
                    out.append(f"block {s}#{j + 1} is live and holds "
                               + self.say(v.cont[s][j], st[v.cont[s][j]]).split(" holds ", 1)[-1])
        out += [self._FLAGS[flag][1] for flag in ("leaked", "tload") if st[flag]]
        return out

    @property
    def properties(self) -> tuple[Property, ...]:
        """The properties checked by default (the profile's): the shadow ones too when the
        spec declares shadow variables or a livepatch module's init/exit."""
        return self.profile.PROPERTIES + tuple(p for p in self.profile.SHADOW
                                               if self.spec.uses_shadows or p.name in self.spec.also_check)

    @property
    def all_properties(self) -> tuple[Property, ...]:
        """Every property there is to ask for: the default ones, then the opt-in ones."""
        return self.profile.PROPERTIES + self.profile.SHADOW + self.profile.EXTRA

    @property
    def not_applicable(self) -> tuple[str, ...]:
        """The properties of mainline this profile has not (its kernel lacks what they judge:
        `NOT_APPLICABLE` says why); a verdict of their own, shown as such."""
        mine = {p.name for p in self.all_properties}
        return tuple(p.name for p in Mainline.PROPERTIES + Mainline.SHADOW + Mainline.EXTRA if p.name not in mine)

    def prop(self, name: str) -> Property:
        return next(p for p in self.all_properties if p.name == name)

    def view(self, state: dict[str, Val]) -> View:
        """The read side of a state (a dict of the variables)."""
        return View(self, state)

    def variant(self, s: str, version: int) -> int:
        return 2 + self.versions[s].index(version)

    def describe_value(self, s: str, v: int) -> str:
        if v == ORIGINAL:
            return "original"
        if v == ZERO:
            return "zero"
        return f"v{self.versions[s][v - 2]}"

    def _ops(self) -> tuple[Op, ...]:
        allowed = self.spec.operations
        ops: list[Op] = []
        for word in allowed:
            if word in ("load", "disable", "rmmod"):
                ops += [Op(word, p.name) for p in self.P]
            elif word == "call":                 # (issue 14) only the new functions the spec gives code for
                ops += [Op(word, f"{p.name}.{f}") for p in self.P for f, _ in p.code]
            elif word in ("modload", "modunload"):
                ops += [Op(word, m) for m in self.module_names]
            else:
                ops.append(Op(word))
        return tuple(ops)

    def _vars(self) -> tuple[dict[str, tuple[str, int]], dict[str, Val]]:
        """name -> (kind, largest value); kind 'b' bool, 'i' small unsigned int."""
        v: dict[str, tuple[str, int]] = {}
        init: dict[str, Val] = {}
        nvals = {s: 2 + len(self.versions[s]) for s in self.state_names}

        def add(name: str, kind: str, top: int, start: Val) -> None:
            v[name] = (kind, top)
            init[name] = start

        n = self.v
        for i, p in enumerate(self.P):
            add(n.phase[i], "i", len(PHASES) - 1, UNLOADED)
            add(n.pos[i], "i", max(self.n - 1, 1), 0)
            add(n.forced[i], "b", 1, False)
            if p.replace_param is not None:
                if self.profile.SETS:           # klp_patch.replace_set, an unsigned int (§B.6)
                    add(n.repl[i], "i", (1 << 32) - 1, static_set(p))
                else:
                    add(n.repl[i], "b", 1, False)
            for flag in n.pue[i]:
                add(flag, "b", 1, False)
            for s, _ in p.states:
                add(n.ptr[i][s], "i", self.slots[s], 0)
                add(n.snap_kind[i][s], "i", 2, 0)
                add(n.snap_cont[i][s], "i", nvals[s] - 1, 0)
        for p in self.P:
            for name, default in p.params:
                add(f"param[{p.name}.{name}]", "i", param_top(default), default)
        for m in self.spec.modules:
            add(n.mod[m.name], "b", 1, m.loaded)
            for name, default in m.params:
                add(f"param[{m.name}.{name}]", "i", param_top(default), default)
            if m.name in n.sleep:                # the version of its `sleeps` function it sleeps in
                add(n.sleep[m.name], "i", max(self.n, 1), 0)
        for s in self.state_names:
            add(n.val[s], "i", nvals[s] - 1, ORIGINAL)
            add(n.hi[s], "i", nvals[s] - 1, NO_VARIANT)
            add(n.snap_val[s], "i", nvals[s] - 1, ORIGINAL)
            for j in range(self.slots[s]):
                add(n.live[s][j], "b", 1, False)
                add(n.cont[s][j], "i", nvals[s] - 1, ZERO)
        for name in n.shadow.values():           # (issue 14) the shadow variable exists (§14)
            add(name, "b", 1, False)
        for name in n.count.values():            # the count kept in it
            add(name, "i", self.count_top, 0)
        for key, name in n.layout.items():       # the layout its creator gave it
            add(name, "i", len(self.layouts[key.partition("@")[0]]) - 1, 0)
        for name in n.stale.values():            # entries of freed objects may remain in the hash
            add(name, "b", 1, False)
        for flags in n.pps:                      # (state-callbacks) pre_patch_succeeded (§A.4.1)
            for name in flags.values():
                add(name, "b", 1, False)
        for name in n.nostate.values():          # (state-callbacks) the instance has no states array
            add(name, "b", 1, False)
        for flags in n.bd:                       # (state-callbacks) block_disable set at init
            for name in flags.values():
                add(name, "b", 1, False)
        if self.profile.STATE_CALLBACKS:         # klp_states_pre_unpatch_replaced_called (§A.4.1)
            add("replaced_called", "b", 1, False)
        add("switched", "b", 1, False)           # force switched every task of the transition (§6.4)
        add("nops", "b", 1, False)               # the transition patch still has its nop objects (§7)
        add("leaked", "b", 1, False)             # some live block became unreachable (never undone)
        add("tload", "b", 1, False)              # the transition in progress was started by `load`
        add("exempt", "b", 1, False)             # a module event happened during it
        add("leak_since", "b", 1, False)         # a block leaked since that load
        return v, init

    def interchangeable(self) -> list[list[int]]:
        """Groups of patches (spec order) that differ only in their names.

        The rules never look at a name: klp_patches is ordered by load time, not by the
        spec, and every rule reads replace, the declared states and versions, `uses` and
        the objects' statements. Renaming patches within a group maps every run to a run
        with the same violations at the same steps."""
        def shape(p: Patch) -> tuple[Any, ...]:
            objs: tuple[Any, ...] = tuple((o.name, tuple((cb, tuple((st.action, st.arg if st.action != "log" else None,
                                                                    st.errno, st.cond, st.obj) for st in stmts))
                                                    for cb, stmts in o.callbacks)) for o in p.objects)
            objs += tuple(o.funcs for o in p.objects)
            funcs = tuple(tuple((st.action, st.arg if st.action != "log" else None, st.errno, st.cond, st.obj)
                                for st in p.module_func(f)) for f in MODULE_FUNCS[:3]) + \
                tuple((f, tuple((st.action, st.arg if st.action != "log" else None, st.errno, st.cond, st.obj)
                                for st in stmts))
                      for f, stmts in p.code)
            return (p.replace, p.replace_set, tuple(sorted(p.states)), tuple(sorted(p.uses)), objs, p.params, p.replace_param,
                    tuple(sorted(p.shadows)), tuple(sorted(p.shadow_uses)), funcs,
                    p.no_states_param, tuple(sorted(p.block_disable_param)),
                    # sleep[M] names the patch whose version a task sleeps in: renaming such a
                    # patch would need its value renamed too, so it has no twin
                    p.name if any(mod.sleeps and any(mod.sleeps[0] in o.funcs for o in p.objects)
                                  for mod in self.spec.modules) else None)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, p in enumerate(self.P):
            groups.setdefault(shape(p), []).append(i)
        return [g for g in groups.values() if len(g) > 1]

    def rmmod_folds(self) -> tuple[tuple[str, str], ...]:
        """The livepatch modules whose `rmmod` may be folded into their next `load`
        (docs/design.md, "Reductions"), as (phase variable, forced variable) pairs: a
        module whose patch is off klp_patches and not forced is taken as removed.

        Folding applies the `rmmod` at once; sound while `rmmod` does nothing but unload:
        it runs no callback and no module code (op_rmmod only moves the phase, so the
        folded state is exactly the state after it), it judges nothing new
        (watch_after has no rmmod case; no-leak, judged on every quiescent state, was
        judged on the operation into the state before it), it is never refused once the patch is off the
        list and not forced (§10), and it commutes with every operation in between: no
        rule reads an off-list patch's phase except the refusals of its own `load` (which
        no trace takes in between: insmod would fail) and `rmmod`. A rule that gives
        `rmmod` an effect (module exit code) must leave the patch out of this list.

        (Issue 14: in a spec with shadow variables or a module's init/exit, `rmmod` runs the
        module's exit and shadow-leak reads which modules are loaded: no fold there.)"""
        if self.spec.uses_shadows:
            return ()
        return tuple((self.v.phase[i], self.v.forced[i]) for i in range(self.n))

    def refused_loads(self) -> list[Incompatible]:
        """What the compatibility rule refuses, each pair's sentence with what it compared
        (for reports), in spec order: loaded patch, then installed."""
        return [why for (i, j, r), (ok, why) in sorted(self.compat.items(), key=lambda kv: kv[0])
                if not ok and why is not None and r == self.profile.static_flag(self.P[i], self.P[j])]


# ------------------------------------------------------------------ the read side

@dataclass(frozen=True)
class Block:
    """A block of state data (`kzalloc`'d `state->data`): block `state`#`slot`."""
    state: str
    slot: int            # 1-based: the report's "block S#slot"
    live: bool           # allocated and not freed
    content: int         # what it holds: a value code (Model.describe_value)


class View:
    """A state read in the kernel's words: what every consumer outside kernel.py asks of a
    state (reports, traces, review, simulate, prove). Built on the state dict the
    interpreter keeps; no consumer builds or parses a variable name."""

    __slots__ = ("m", "st")

    def __init__(self, m: Model, st: dict[str, Val]):
        self.m, self.st = m, st

    # the patches
    def phase(self, patch: str) -> str:
        """unloaded, patching, enabled, unpatching or off-list (PHASES)."""
        return PHASES[self.st[self.m.v.phase[self.m.index[patch]]]]

    def listed(self, patch: str) -> bool:
        """On klp_patches (enabled or in transition)."""
        return self.st[self.m.v.phase[self.m.index[patch]]] in LISTED

    def loaded(self, patch: str) -> bool:
        """The livepatch module is loaded (on the list, or off it and not yet removed)."""
        return bool(self.st[self.m.v.phase[self.m.index[patch]]] != UNLOADED)

    def transition_patch(self) -> str | None:
        """klp_transition_patch (§1)."""
        return next((p.name for i, p in enumerate(self.m.P) if self.st[self.m.v.phase[i]] in IN_TRANSITION), None)

    def order(self) -> list[str]:
        """klp_patches, oldest first."""
        listed = [(self.st[self.m.v.pos[i]], p.name) for i, p in enumerate(self.m.P) if self.st[self.m.v.phase[i]] in LISTED]
        return [name for _, name in sorted(listed)]

    def forced(self, patch: str) -> bool:
        return bool(self.st[self.m.v.forced[self.m.index[patch]]])

    def post_unpatch_enabled(self, patch: str, obj: str) -> bool:
        i = self.m.index[patch]
        return bool(self.st[self.m.v.pue[i][[o.name for o in self.m.P[i].objects].index(obj)]])

    # the data
    def pointer(self, patch: str, state: str) -> int:
        """The patch's `state->data` as a block slot (0: NULL)."""
        return int(self.st[self.m.v.ptr[self.m.index[patch]][state]])

    def data(self, patch: str, state: str) -> Block | None:
        """The block the patch's `state->data` points to (None: NULL)."""
        ptr = self.pointer(patch, state)
        return self.block(state, ptr) if 0 < ptr <= self.m.slots[state] else None

    def block(self, state: str, slot: int) -> Block:
        v = self.m.v
        return Block(state, slot, bool(self.st[v.live[state][slot - 1]]), self.st[v.cont[state][slot - 1]])

    def blocks(self, state: str) -> list[Block]:
        """Every block slot of the state (live, freed, or never used)."""
        return [self.block(state, j) for j in range(1, self.m.slots[state] + 1)]

    # the system
    def value(self, state: str) -> int:
        return int(self.st[self.m.v.val[state]])

    def describe(self, state: str, value: int | None = None) -> str:
        """A value code in words: original, zero, vN (default: the state's value)."""
        return self.m.describe_value(state, self.value(state) if value is None else value)

    def module_loaded(self, module: str) -> bool:
        return bool(self.st[self.m.v.mod[module]])

    def param(self, owner: str, name: str) -> int:
        return int(self.st[f"param[{owner}.{name}]"])

    def shadow(self, name: str, obj: str | None = None) -> bool:
        """(issue 14) Shadow variable `name` exists on named object `obj` (None: on the abstract
        parent object)."""
        return bool(self.st[self.m.v.shadow[pair(name, obj)]])

    def shadow_pairs(self, name: str) -> tuple[str | None, ...]:
        """The parent objects shadow variable `name` lives on: (None,) for the abstract one, or
        the named objects its statements name."""
        return self.m.shadow_objs[name]

    def layout(self, name: str, obj: str | None = None) -> str | None:
        """The layout shadow variable `name` was created with (None: it does not exist, or
        the spec gives it one layout only)."""
        var = self.m.v.layout.get(pair(name, obj))
        return self.m.layouts[name][int(self.st[var])] if var is not None and self.shadow(name, obj) else None

    def stale(self, name: str) -> bool:
        """Entries of `name` on freed objects may remain (for variables with `on new`)."""
        var = self.m.v.stale.get(name)
        return bool(self.st[var]) if var is not None else False

    def count(self, name: str, obj: str | None = None) -> int:
        """The count kept in shadow variable `name` on `obj` (0 when it has none)."""
        var = self.m.v.count.get(pair(name, obj))
        return int(self.st[var]) if var is not None else 0

    def leaked(self) -> bool:
        """Some live block became unreachable (no-leak's monitor; never undone)."""
        return bool(self.st["leaked"])

    def clean(self) -> bool:
        """No patch on klp_patches and every system state original (recoverable's target)."""
        return not any(self.st[v] in LISTED for v in self.m.v.phase) and \
            all(self.st[self.m.v.val[s]] == ORIGINAL for s in self.m.state_names)


# ------------------------------------------------------------------ one operation



def choice_of(w: Where) -> Choice:
    """The choice of the fallible statement at `w`."""
    return Choice(w.patch, w.obj, w.callback, w.index, w.stmt.line, w.stmt.text)


def refuse_state_params(profile: str, spec: Spec) -> None:
    """no_states_param and block_disable_param are keys of kernel "state-callbacks" (its
    klp_state has block_disable; elsewhere the states are fixed): FILE:LINE elsewhere."""
    for p in spec.patches:
        for key, line in p.written:
            if key in ("no_states_param", "block_disable_param"):
                raise UserError(f"patch '{p.name}': {key} is a key of kernel = \"state-callbacks\" (Petr Mladek's "
                                f"per-state callbacks, v1, not merged), not of kernel profile '{profile}'; remove it, "
                                f"or write kernel = \"state-callbacks\" (or give --kernel state-callbacks)",
                                path=spec.path, line=line)


class Mainline:
    """The rules of the `mainline` profile (Linux 5.18 through 7.1), `step` split into
    helpers; `c` is a backend (Concrete or Symbolic) holding the state.

    A kernel profile is a subclass: it overrides the operations (or their parts) that
    differ and its lifecycle edge table, and inherits the rest; the property monitors
    (`watch_before`/`watch_after`) stay out of the operations, so an override does not
    repeat them."""

    name = "mainline"
    summary = "Linux 5.18 to 7.1 (the default): force marks only the patches it makes unsafe to remove"
    EDGES: EdgeTable = _EDGES
    # the properties this profile judges (each at its c.violate sites) and the opt-in ones
    PROPERTIES: tuple[Property, ...] = properties.PROPERTIES
    SHADOW: tuple[Property, ...] = properties.SHADOW
    EXTRA: tuple[Property, ...] = properties.EXTRA
    SYSFS = (frozenset(SYSFS_MODES) - {"replace_set"}) | {"patched"}   # the attributes of /sys/kernel/livepatch/<patch>/ (7.1)
    SETS = False            # klp_patch has replace_set (an unsigned int), not replace (a bool)
    STATE_CALLBACKS = False  # per-state callbacks, block_disable, is_shadow (proposals.md §A.3)
    NOT_APPLICABLE = ""     # why some of mainline's properties are not this profile's (Model.not_applicable)

    @classmethod
    def refuse(cls, spec: Spec) -> None:
        """A UserError at the first key of the spec this profile gives no meaning (the
        file's line): `replace_set` exists only under the replace-set profile."""
        for p in spec.patches:
            for key, line in p.written:
                if key == "replace_set":
                    raise UserError(f"patch '{p.name}': replace_set is a key of kernel = \"replace-set\" (the "
                                    f"replace_set series, not merged), not of kernel profile '{cls.name}', where "
                                    f"klp_patch has the bool replace; remove it, or write kernel = \"replace-set\" "
                                    f"(or give --kernel replace-set)",
                                    path=spec.path, line=line)
        cls.refuse_state_keys(spec)

    @classmethod
    def refuse_state_keys(cls, spec: Spec) -> None:
        """The per-state callbacks and flags of [states.S], and the patch keys that build a
        klp_state array at init, exist only under state-callbacks."""
        refuse_state_params(cls.name, spec)
        for d in spec.states:
            for key, line in d.written:
                raise UserError(f"state '{d.name}': {key} is a key of kernel = \"state-callbacks\" (Petr Mladek's "
                                f"per-state callbacks, v1, not merged), not of kernel profile '{cls.name}', where "
                                f"callbacks are per object; remove it, or write kernel = \"state-callbacks\" "
                                f"(or give --kernel state-callbacks)", path=spec.path, line=line)

    @staticmethod
    def compatible(new: Patch, old: Patch, flag: bool) -> tuple[bool, Incompatible | None]:
        """klp_is_patch_compatible of `new`, loaded with replace = `flag`, against installed `old`."""
        return compatible(replace(new, replace=flag), old)

    @classmethod
    def compatible_in(cls, spec: Spec, new: Patch, old: Patch, flag: bool) -> tuple[bool, Incompatible | None]:
        """`compatible` where the rule needs the spec's [states] table (state-callbacks)."""
        return cls.compatible(new, old, flag)

    @staticmethod
    def static_flag(new: Patch, old: Patch) -> bool:
        """The flag of `compatible` for the spec's own values (no module parameter given)."""
        return new.replace

    @classmethod
    def lifecycle(cls) -> Any:
        return _graph(f"klp per-patch lifecycle ({cls.name})", cls.EDGES)

    @classmethod
    def edges(cls, event: str) -> tuple[EdgeInfo, ...]:
        """The lifecycle's edges of one kernel action: (source, target, callbacks)."""
        return _compiled(cls.EDGES).by_event[event]

    @classmethod
    def edge(cls, src: int, dst: int, event: str) -> dict[str, Any]:
        """One lifecycle edge's attributes (`lifecycle().edges[src, dst, event]`)."""
        return _compiled(cls.EDGES).data[src, dst, event]

    def __init__(self, m: Model, c: Backend, frozen: bool = False):
        self.m, self.c, self.v = m, c, m.v
        self.frozen = frozen            # the state will not change: memoized values stay valid
        self._memo: dict[object, tuple[Any, Any]] = {}
        self.recompute = not frozen and not c.symbolic      # memo() would only call fn()
        self.task: str | None = None    # the task running code (`call`): None a new one, else a sleeping module's
        self.arg = ""                   # the text argument of the function running (`call FUNC "TEXT"`)

    def memo(self, key: object, fn: Callable[[], Any]) -> Any:
        """Reuse a value derived from the list (phases and positions): in a frozen state
        (concrete, nothing changes), once per key; symbolically, while those variables are the
        very same terms. A concrete run that changes the state recomputes (cheaper than
        comparing). Speed only."""
        if self.frozen:
            if key not in self._memo:
                self._memo[key] = (None, fn())
            return self._memo[key][1]
        if not self.c.symbolic:
            return fn()
        deps = tuple(self.c.get(v) for v in self.v.list_vars)
        hit = self._memo.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], deps, strict=True)):
            return hit[1]
        out = fn()
        self._memo[key] = (deps, out)
        return out

    # ---- reading the state
    def phase(self, i: int) -> Val:
        return self.c.get(self.v.phase[i])

    def is_phase(self, i: int, phases: tuple[int, ...]) -> Val:
        ph = self.phase(i)
        if not self.c.symbolic:
            return ph in phases
        return self.c.or_(*(self.c.eq(ph, x) for x in phases))

    def listed(self, i: int) -> Val:
        if self.recompute:
            return self.is_phase(i, LISTED)
        return self.memo(("listed", i), lambda: self.is_phase(i, LISTED))

    def pos(self, i: int) -> Val:
        return self.c.get(self.v.pos[i])

    def transition(self) -> Val:
        if self.recompute:
            return self._transition()
        return self.memo("transition", self._transition)

    def _transition(self) -> Val:
        return self.c.or_(*(self.is_phase(i, IN_TRANSITION) for i in range(self.m.n)))

    def trans_pos(self) -> Val:
        c, t = self.c, 0
        for i in range(self.m.n):
            t = c.ite(self.is_phase(i, IN_TRANSITION), self.pos(i), t)
        return t

    def loaded(self, obj: str) -> Val:
        return True if obj == "vmlinux" else self.c.get(self.v.mod[obj])

    def ptr(self, i: int, s: str) -> Val:
        return self.c.get(self.v.ptr[i][s])

    def prev(self, s: str) -> list[tuple[int, Val]]:
        out: list[tuple[int, Val]] = self.memo(("prev", s), lambda: self._prev(s))
        return out

    def _prev(self, s: str) -> list[tuple[int, Val]]:
        """klp_get_prev_state(id) (§12): for each patch declaring s, 'it is the one'.

        NULL outside a transition; else the newest listed patch before the transition
        patch that declares the id."""
        return self._prev_formula(s) if self.c.symbolic else self._prev_walk(s)

    def _prev_formula(self, s: str) -> list[tuple[int, Val]]:
        """The same as a formula over the list (the symbolic path; the tests check the two
        agree on every reachable state)."""
        c, m = self.c, self.m
        busy, tpos = self.transition(), self.trans_pos()
        out = []
        for q in m.decl[s]:
            before = c.and_(busy, self.listed(q), c.lt(self.pos(q), tpos))
            newer = [c.and_(self.listed(r), c.lt(self.pos(q), self.pos(r)), c.lt(self.pos(r), tpos))
                     for r in m.decl[s] if r != q]
            out.append((q, c.and_(before, c.not_(c.or_(*newer)))))
        return out

    def _prev_walk(self, s: str) -> list[tuple[int, Val]]:
        """The same on plain values, as state.c does it: walk klp_patches from the oldest,
        stop at the transition patch, keep the last patch that declares the id. (It reads
        the phases of all patches and the positions of the listed ones that declare the id:
        fewer variables than the formula, so the search memo hits more often.)

        It is the formula on every state, not only on reachable ones (prove replays its
        counterexamples to induction, which are arbitrary states, on plain values): the
        transition patch's position is the last one's in patch order, as trans_pos takes
        it, and patches that share the newest position are all "the one"."""
        c, m, v = self.c, self.m, self.v
        tpos = None
        for i in range(m.n):
            if c.get(v.phase[i]) in IN_TRANSITION:
                tpos = c.get(v.pos[i])
        if tpos is None:
            return [(q, False) for q in m.decl[s]]
        before = {q: pq for q in m.decl[s] if c.get(v.phase[q]) in LISTED and (pq := c.get(v.pos[q])) < tpos}
        newest = max(before.values(), default=None)
        return [(q, q in before and before[q] == newest) for q in m.decl[s]]

    def prev_info(self, st: Stmt) -> tuple[str, str | None] | None:
        """(state, patch or None): what klp_get_prev_state returned for the statement (concrete)."""
        s = st.cond.state if st.cond and not st.cond.param and st.cond.shadow is None else (
            st.arg if st.action in ("take", "copy", "free-prev") else None)
        if s is None:
            return None
        hit = [self.m.P[q].name for q, is_prev in self.prev(s) if is_prev]
        return (s, hit[0] if hit else None)

    def cond(self, cond: Cond | None, owner: str | None = None) -> Val:
        if cond is None:
            return True
        c = self.c
        if cond.param:
            holds = c.ne(c.get(f"param[{owner}.{cond.state}]"), 0)
            return c.not_(holds) if cond.negate else holds
        if cond.shadow is not None:
            holds = self.count_cmp(cond) if cond.shadow == "count" else c.get(self.v.shadow[pair(cond.state, cond.obj)])
            return c.not_(holds) if cond.negate else holds
        hits = []
        for q, is_prev in self.prev(cond.state):
            v = self.m.P[q].version(cond.state)
            if cond.cmp is None or _CMP[cond.cmp](v or 0, cond.value or 0):   # versions are static
                hits.append(is_prev)
        holds = c.or_(*hits)
        return c.not_(holds) if cond.negate else holds

    def count_cmp(self, cond: Cond) -> Val:
        """`count SV cmp N`: the count kept in the variable (0 when it does not exist)."""
        c = self.c
        key = pair(cond.state, cond.obj)
        have = c.get(self.v.count[key]) if key in self.v.count else 0
        n = cond.value or 0
        return {"<": lambda: c.lt(have, n), "<=": lambda: c.le(have, n), "==": lambda: c.eq(have, n),
                "!=": lambda: c.ne(have, n), ">=": lambda: c.le(n, have), ">": lambda: c.lt(n, have)}[cond.cmp or "=="]()

    # ---- blocks
    def slot_is(self, p: Val, j: int) -> Val:
        """Pointer p points at block slot j (0 is NULL)."""
        return self.c.eq(p, j + 1)

    def kind(self, p: Val, s: str) -> Val:
        """0 NULL, 1 live, 2 freed."""
        c, k = self.c, 0
        if not c.symbolic:                  # the same, reading only the slot p points at
            slots = self.v.live[s]          # (a pointer past the slots, only in states prove
            return 0 if not 0 < p <= len(slots) else (1 if c.get(slots[p - 1]) else 2)   # invents: NULL)
        for j, live in enumerate(self.v.live[s]):
            k = c.ite(self.slot_is(p, j), c.ite(c.get(live), 1, 2), k)
        return k

    def content(self, p: Val, s: str) -> Val:
        c, v = self.c, ZERO
        if not c.symbolic:                  # the same, reading only the slot p points at
            return v if not 0 < p <= len(self.v.cont[s]) else c.get(self.v.cont[s][p - 1])
        for j, cont in enumerate(self.v.cont[s]):
            v = c.ite(self.slot_is(p, j), c.get(cont), v)
        return v

    def referenced(self, s: str, j: int) -> Val:
        """Some patch's pointer for s points at slot j (patches off the list hold none)."""
        return self.c.or_(*(self.slot_is(self.ptr(q, s), j) for q in self.m.decl[s]))

    def release(self, pairs: list[tuple[int, str]]) -> None:
        """Drop the data pointers [(patch, state)]; a live block nobody points at any more
        is leaked (nothing can reach it again: only listed patches' pointers are read)."""
        c = self.c
        old = {(i, s): self.ptr(i, s) for i, s in pairs}
        for i, s in pairs:
            c.set(self.v.ptr[i][s], 0)
        for s in dict.fromkeys(s for _, s in pairs):
            for j, (live, cont) in enumerate(zip(self.v.live[s], self.v.cont[s], strict=True)):
                dropped = c.or_(*(self.slot_is(old[(i, t)], j) for i, t in pairs if t == s))
                if dropped is False:        # (a constant: no pointer to this slot was dropped)
                    continue
                if c.recording:             # coverage only: a live block lost a pointer (no-leak judges it)
                    c.judged("no-leak", c.and_(dropped, c.get(live)))
                for _ in c.when(c.and_(dropped, c.not_(self.referenced(s, j)))):
                    self.leaks.append(c.and_(c.pc, c.get(live)) if c.symbolic else c.get(live))
                    if c.recording and c.get(live):
                        c.event(E.Leaked(s, j + 1))
                    c.set(live, False)     # the slot is garbage: canonical contents
                    c.set(cont, ZERO)

    def leaked_now(self) -> Val:
        """Some block leaked during this operation (so far)."""
        return self.c.or_(*self.leaks)

    def alloc(self, i: int, s: str) -> None:
        c = self.c
        self.release([(i, s)])
        taken = False
        for j in range(self.m.slots[s]):
            if taken is True:               # (a constant: an earlier slot was free)
                break
            free = c.not_(self.referenced(s, j))
            for _ in c.when(c.and_(free, c.not_(taken))):
                c.set(self.v.ptr[i][s], j + 1)
                c.set(self.v.live[s][j], True)
                c.set(self.v.cont[s][j], ZERO)
            taken = c.or_(taken, free)

    def deref(self, p: Val, s: str, where: Where) -> Val:
        """Checks for reading/writing through p; returns 'p is not NULL'."""
        c = self.c
        c.violate("no-null-deref", c.eq(p, 0), where)
        c.violate("no-use-after-free", c.eq(self.kind(p, s), 2), where)
        return c.ne(p, 0)

    def write_block(self, p: Val, s: str, value: Val) -> None:
        c = self.c
        for j, cont in enumerate(self.v.cont[s]):
            for _ in c.when(self.slot_is(p, j)):
                c.set(cont, value)

    def free_block(self, p: Val, s: str, where: Where) -> None:
        c = self.c
        c.violate("no-double-free", c.eq(self.kind(p, s), 2), where)
        for j, live in enumerate(self.v.live[s]):
            for _ in c.when(self.slot_is(p, j)):
                c.set(live, False)

    def set_value(self, s: str, value: Val, where: Where) -> None:
        """The system value of s changes; version-order is judged at every write."""
        c = self.c
        hi = c.get(self.v.hi[s])
        is_variant = c.le(2, value)
        c.violate("version-order", c.and_(is_variant, c.lt(value, hi)), where)
        c.set(self.v.hi[s], c.ite(c.eq(value, ORIGINAL), NO_VARIANT,
                                c.ite(c.and_(is_variant, c.lt(hi, value)), value, hi)))
        c.set(self.v.val[s], value)

    # ---- statements and callbacks
    def statement(self, i: int, st: Stmt, where: Where, in_pre_patch: bool, fallible: bool) -> Val:
        """Run one statement (its condition already holds). Returns 'the callback fails here'."""
        c, m = self.c, self.m
        p = m.P[i]
        s = st.arg or ""             # the state, for state actions (spec.py checks it names one)
        a = st.action
        key = choice_of(where)
        if a == "alloc":
            fails = c.choice(key) if (in_pre_patch and fallible) else False
            for _ in c.when(fails):
                self.release([(i, s)])           # data = kzalloc() == NULL
                c.event(E.AllocFailed(where))
            for _ in c.when(c.not_(fails)):
                self.alloc(i, s)
            return fails
        if a in ("fail", "maybe-fail"):
            if a == "fail" and st.arg is not None:    # return the module parameter's value
                value = c.get(f"param[{p.name}.{st.arg}]")
                fails = c.ne(value, 0)
                for _ in c.when(fails):
                    c.event(E.Failed(where, value))
                return fails
            fails = True if a == "fail" else (c.choice(key) if fallible else False)
            for _ in c.when(fails):
                c.event(E.Failed(where, st.errno or -22))
            return fails
        if a == "log":
            text = st.arg or ""
            in_code = where.obj == MODULE_OBJ and where.callback not in ("init", "init_error", "exit")
            c.event(E.Log(where, text.replace("{arg}", self.arg) if in_code else text))   # (a function's {arg})
            return False
        if a == "call":                              # (issue 15) the version this task runs
            self.run_code(st.arg or "", self.task, st.value or "")
            return False
        if a == "banner":
            c.event(E.Banner(where))
            return False
        if a == "return":
            return False
        if a in SHADOW_ACTIONS:
            return self.shadow_statement(i, st, where, fallible)
        own = self.ptr(i, s)
        if a == "free":
            self.free_block(own, s, where)
        elif a == "save":
            for _ in c.when(self.deref(own, s, where)):
                self.write_block(own, s, c.get(self.v.val[s]))
        elif a == "restore":
            for _ in c.when(self.deref(own, s, where)):
                self.keeps_shared(i, s, self.content(own, s), where)
                self.set_value(s, self.content(own, s), where)
        elif a == "modify":
            self.set_value(s, m.variant(s, p.version(s) or 0), where)
        elif a == "reset":
            self.keeps_shared(i, s, ORIGINAL, where)
            self.set_value(s, ORIGINAL, where)
        else:   # take, copy, free-prev: through klp_get_prev_state(id)
            prev = self.prev(s)
            exists = c.or_(*(x for _, x in prev))
            c.violate("no-null-deref", c.not_(exists), where)
            pp = 0
            for q, is_prev in prev:
                pp = c.ite(is_prev, self.ptr(q, s), pp)
            for _ in c.when(exists):
                if a == "take":             # state->data = prev_state->data: a no-op when prev is
                    for _ in c.when(c.ne(pp, own)):     # the caller's own state (§17 item 14)
                        self.release([(i, s)])
                        c.set(self.v.ptr[i][s], pp)
                elif a == "copy":
                    ok_src = self.deref(pp, s, where)
                    ok_dst = self.deref(own, s, where)
                    for _ in c.when(c.and_(ok_src, ok_dst)):
                        self.write_block(own, s, self.content(pp, s))
                elif a == "free-prev":
                    self.free_block(pp, s, where)
        return False

    # ---- shadow variables (§14): per pair, SV on the abstract parent object or on a named object
    def shadow_statement(self, i: int | str, st: Stmt, where: Where, fallible: bool) -> Val:
        """klp_shadow_* on one pair: SV on the abstract parent object (docs/properties.md) or on
        the named object OBJ (`on OBJ`). `i`: the patch (index) or the target module (name) whose
        code runs it. Returns 'the function fails here': a constructor that fails in pre_patch
        or init, or (`or fail -ERRNO`, a target module's init) a NULL result."""
        c, m = self.c, self.m
        sv, a = st.arg or "", st.action
        if a == "shadow-free-all":                   # every pair of the id (free_all passes no object;
            dtors = []                               # only it reaches freed objects' entries)
            for key, obj in zip(m.pairs[sv], m.shadow_objs[sv], strict=True):
                if st.dtor and not c.symbolic and c.get(self.v.shadow[key]):
                    dtors.append(obj)                # the destructor once per pair it frees
                self.drop_shadow(key, every=True)
            self.echo(i, E.ShadowCall(str(i), "free_all", sv, m.shadow_ids[sv], None, dtor=st.dtor, dtors=tuple(dtors)))
            return False
        key = pair(sv, st.obj)
        var = self.v.shadow[key]
        have = c.get(var)
        self.judge_layout(i, sv, key, have, where)
        if a == "shadow-alloc":                      # a second alloc of the pair: WARN, NULL; on a new
            dup = c.get(self.v.stale[sv]) if st.fresh else have   # object only when it reuses the address
            c.violate("shadow-duplicate", dup, where)             # of a freed one whose entry stayed
            for _ in c.when(dup):
                c.event(E.ShadowDuplicate(where, sv, m.shadow_ids[sv]))
            for _ in c.when(c.not_(have)):
                if key in self.v.layout:
                    c.set(self.v.layout[key], self.layout_of(i, sv))
            c.set(var, True)
            return self.returned(i, st, where, key, c.not_(dup), c.not_(have))
        if a == "shadow-get":                        # NULL: a use of a missing variable when needed
            if isinstance(i, int) and sv in m.P[i].shadow_uses:
                c.violate("shadow-use-after-free", c.not_(have), where)
            return self.returned(i, st, where, key, have, False)
        if a == "shadow-free":                       # the destructor runs when the pair exists
            self.drop_shadow(key, every=False)
            dtor = st.dtor and not c.symbolic and bool(have)
            self.echo(i, E.ShadowCall(str(i), "free", sv, m.shadow_ids[sv], st.obj, dtor=st.dtor,
                                      dtors=(st.obj,) if dtor else ()))
            return False
        if a == "put":                               # klp_shadow_get, count - 1, freed at 0
            c.violate("shadow-use-after-free", c.not_(have), where)
            for _ in c.when(have):
                n = c.ite(c.eq(c.get(self.v.count[key]), 0), 0, c.sub(c.get(self.v.count[key]), 1))
                c.set(self.v.count[key], n)
                for _ in c.when(c.eq(n, 0)):         # the last reference: the variable is freed
                    self.drop_shadow(key, every=False)
            return False
        fails: Val = False                           # shadow-get-or-alloc, get: created when missing
        if st.errno is not None:                     # `with ctor-fail`: the constructor (run only
            for _ in c.when(c.not_(have)):           # when the variable is created) may fail
                fails = c.and_(c.not_(have), c.choice(choice_of(where)))
            for _ in c.when(fails):
                c.event(E.ShadowCtorFailed(where, sv, m.shadow_ids[sv], st.errno,
                                           where.callback in ("pre_patch", "init") and fallible))
        for _ in c.when(c.not_(fails)):
            c.set(var, True)
            if key in self.v.layout:                 # created here: this patch's layout
                c.set(self.v.layout[key], c.ite(have, c.get(self.v.layout[key]), self.layout_of(i, sv)))
            if key in self.v.count:
                n = c.ite(have, c.get(self.v.count[key]), 0)
                if a == "get":                       # saturates at count_top (docs/properties.md)
                    n = c.ite(c.lt(n, m.count_top), c.add(n, 1), n)
                c.set(self.v.count[key], n)
        failed = c.and_(fails, where.callback in ("pre_patch", "init") and fallible)
        if a == "get":
            return failed
        return c.or_(failed, self.returned(i, st, where, key, c.not_(fails), c.and_(c.not_(have), c.not_(fails))))

    def returned(self, i: int | str, st: Stmt, where: Where, key: str, got: Val, created: Val) -> Val:
        """What the caller does with the data pointer klp_shadow_alloc/_get_or_alloc/_get
        returned (`got`: not NULL; `created`: the constructor ran): an echoing test module
        prints the call; `or fail -ERRNO` fails on NULL (returns 'fails here'); `expect` prints
        the test module's check when the result is what it expects. (The data the module
        compares with is the one it first got for the pair in this run of the function, as
        test_klp_shadow_vars.c compares with sv1[i]: kept in `self.first`, concrete runs only:
        it decides lines, not states.)"""
        c = self.c
        func = {"shadow-alloc": "alloc", "shadow-get": "get", "shadow-get-or-alloc": "get_or_alloc"}[st.action]
        sv = st.arg or ""
        if not c.symbolic and isinstance(i, str):
            if created:
                self.gen[key] = self.gen.get(key, 0) + 1
            if got and key not in self.first:
                self.first[key] = self.gen.get(key, 0)
        self.echo(i, E.ShadowCall(str(i), func, sv, self.m.shadow_ids[sv], st.obj,
                                  got=bool(got) if not c.symbolic else False, created=bool(created) if not c.symbolic else False))
        fails: Val = False
        if st.or_fail is not None:
            fails = c.not_(got)
            for _ in c.when(fails):
                c.event(E.Failed(where, st.or_fail))
        if st.expect == "null":
            for _ in c.when(c.not_(got)):
                c.event(E.Expected(str(i), None, None))
        elif st.expect == "data" and not c.symbolic and got and self.first.get(key) == self.gen.get(key, 0):
            c.event(E.Expected(str(i), sv, st.obj))
        return fails

    def echo(self, i: int | str, ev: E.Event) -> None:
        """An echoing test module's line for one shadow API call (a conformance aid: the
        module's wrapper functions, not the kernel, print it)."""
        if isinstance(i, str) and not self.c.symbolic and self.m.echoes(i):
            self.c.event(ev)

    def layout_of(self, i: int | str, sv: str) -> int:
        owner = self.m.P[i] if isinstance(i, int) else next(mod for mod in self.m.spec.modules if mod.name == i)
        return self.m.layouts[sv].index(dict(owner.shadows)[sv])

    def judge_layout(self, i: int | str, sv: str, key: str, have: Val, where: Any) -> None:
        """shadow-layout: patch (or target module) i touches sv's pair `key`, which exists
        with another's layout."""
        if key in self.v.layout:
            c = self.c
            c.violate("shadow-layout", c.ne(c.get(self.v.layout[key]), self.layout_of(i, sv)), where, reached=have)

    def drop_shadow(self, key: str, every: bool = True) -> None:
        """Pair `key` is freed (for the abstract parent object, key is the variable's name)."""
        c = self.c
        c.set(self.v.shadow[key], False)
        if key in self.v.count:
            c.set(self.v.count[key], 0)
        if key in self.v.layout:                     # (canonical when it does not exist)
            c.set(self.v.layout[key], 0)
        if key in self.v.stale and every:
            c.set(self.v.stale[key], False)

    def keeps_shared(self, i: int, s: str, value: Val, where: Where) -> None:
        """disable-keeps-shared: patch i, being disabled (its pre_unpatch, post_unpatch while
        its disable transition is in progress) or removed (its exit), writes original into
        state s, which was not original, while another patch on klp_patches declares s."""
        c, m = self.c, self.m
        if where.callback not in ("pre_unpatch", "post_unpatch", "exit") or not any(q != i for q in m.decl[s]):
            return
        judged = True if where.callback == "exit" else c.and_(c.eq(self.phase(i), UNPATCHING), c.not_(c.get("tload")))
        shared = c.or_(*(self.listed(q) for q in m.decl[s] if q != i))
        c.violate("disable-keeps-shared", c.and_(c.eq(value, ORIGINAL), c.ne(c.get(self.v.val[s]), ORIGINAL)),
                  where, reached=c.and_(judged, shared))

    def module_func(self, i: int, func: str) -> Val:
        """The livepatch module's own init, init_error or exit (§10: exit runs at rmmod), or
        its new function `func` (`call`); returns 'it failed' (init only)."""
        p = self.m.P[i]
        stmts = p.module_func(func)
        if not stmts:
            return False
        if func in MODULE_FUNCS:
            self.c.event(E.ModuleFunc(p.name, func))
        return self.body(i, Obj(MODULE_OBJ, (), p.line), func, stmts, func == "init")

    def judge_shadows(self) -> None:
        """shadow-leak after every operation; shadow-use-after-free of `uses` at quiescent points."""
        c, m = self.c, self.m
        quiet = None
        for sv in m.spec.shadows:
            owners = [i for i, p in enumerate(m.P) if any(name == sv.name for name, _ in p.shadows)]
            kept = c.or_(*(c.ne(self.phase(i), UNLOADED) for i in owners),     # (a loaded target module
                         *(c.get(self.v.mod[mod.name]) for mod in m.spec.modules      # that lists it may too)
                           if any(name == sv.name for name, _ in mod.shadows)))
            for key in m.pairs[sv.name]:             # per pair: one left that nothing can free
                left = c.and_(c.get(self.v.shadow[key]), c.not_(kept))
                c.violate("shadow-leak", left, E.ShadowLeft(m.pair_words(key)))
                if key in self.v.stale:              # nothing frees them now: their objects die
                    c.set(self.v.stale[key], c.or_(c.get(self.v.stale[key]), left))   # with them in the hash
            for i in owners:                         # (on named objects: judged at each get, which
                if sv.name in m.P[i].shadow_uses and m.shadow_objs[sv.name] == (None,):     # names the pair)
                    quiet = c.not_(self.transition()) if quiet is None else quiet
                    on = c.and_(quiet, c.eq(self.phase(i), ENABLED))
                    have = c.get(self.v.shadow[sv.name])
                    c.violate("shadow-use-after-free", c.not_(have), E.ShadowUses(m.P[i].name, sv.name), reached=on)
                    for _ in c.when(on):
                        self.judge_layout(i, sv.name, sv.name, have, E.ShadowUses(m.P[i].name, sv.name))

    def body(self, i: int, obj: Obj, cb: str, stmts: tuple[Stmt, ...], fallible: bool) -> Val:
        """Run a statement list; returns 'it failed' (pre_patch only)."""
        c = self.c
        running, failed = True, False
        for n, st in enumerate(stmts):
            where = Where(self.m.P[i].name, obj.name, cb, st, n)
            g = c.and_(running, self.cond(st.cond, self.m.P[i].name))
            if c.recording and running:
                c.event(E.Ran(where, bool(g), self.prev_info(st)))
            f = False
            for _ in c.when(g):
                f = self.statement(i, st, where, cb in ("pre_patch", "init"), fallible)
            fail_here = c.and_(g, f)
            stop = c.or_(fail_here, g if st.action == "return" else False)
            failed = c.or_(failed, fail_here)
            running = c.and_(running, c.not_(stop))
        return failed

    def callback(self, i: int, oi: int, cb: str) -> Val:
        """One callback of patch i's object oi, with the §8 flag rules. Returns 'ok'."""
        c, p = self.c, self.m.P[i]
        obj = p.objects[oi]
        flag = self.v.pue[i][oi]
        if cb == "post_unpatch":
            for _ in c.when(c.get(flag)):
                c.event(E.Callback(p.name, obj.name, cb))
                self.body(i, obj, cb, obj.cb(cb), False)
            c.set(flag, False)
            return True
        c.event(E.Callback(p.name, obj.name, cb))
        failed = self.body(i, obj, cb, obj.cb(cb), True)
        if cb == "pre_patch":
            for _ in c.when(failed):             # the error label runs before pre_patch returns
                self.body(i, obj, "pre_patch_error", obj.cb("pre_patch_error"), False)
                c.event(E.PrePatchFailed(p.name, obj.name))
            c.set(flag, c.not_(failed))
        return c.not_(failed)

    def run_edge(self, i: int, oi: int, cbs: tuple[str, ...], module: str | None = None) -> Val:
        """The callbacks of one lifecycle edge on one object. After a successful pre_patch
        the object is patched (klp_patch_object, which may fail: §16); a failing pre_patch
        or patching stops the edge. `module`: the edge is klp_module_coming for it."""
        ok = True
        for cb in cbs:
            r = True
            for _ in self.c.when(ok):
                r = self.callback(i, oi, cb)
                if cb == "pre_patch":
                    r = self.c.and_(r, self.patch_object(i, oi, r, module))
            ok = self.c.and_(ok, r) if cb == "pre_patch" else ok
        return ok

    def patch_object(self, i: int, oi: int | None, reached: Val, module: str | None = None,
                     nop: str | None = None) -> Val:
        """klp_patch_object() of patch i's object oi (or of its nop object for `nop`), run
        when `reached`; returns 'it did not fail'. Fails only as the optional patching fault
        (§16: ftrace refuses the handler, e.g. a kprobe with a post handler). In
        __klp_enable_patch the §3.1 error path follows; in klp_module_coming (`module`) the
        object's post_unpatch runs here and the module is refused (§9.1)."""
        c, p = self.c, self.m.P[i]
        if PATCHING_SITE not in self.m.faults:
            return True
        obj = p.objects[oi] if oi is not None else None
        name = obj.name if obj is not None else (nop or "")
        fails = False
        for _ in c.when(reached):
            fails = c.choice(self.m.choice_at(p.name, name, PATCHING_SITE, 0))
            for _ in c.when(fails):
                func = self.first_func(i, name) if c.recording else None
                c.event(E.PatchFailed(p.name, name, func, module))
                if module is not None and oi is not None:   # klp_module_coming runs it here
                    self.callback(i, oi, "post_unpatch")
        return c.not_(c.and_(reached, fails))

    # ---- the list
    def first_func(self, i: int, name: str) -> str | None:
        """Concrete only, for the log: the first function on patch i's object `name`'s
        func_list (the one the patching fault fails): its own functions, then, for a
        replace patch that still has them (the transition patch, until its transition first
        completes), the nop functions klp_add_nops appended for the listed patches'
        functions it lacks (oldest patch first)."""
        p = self.m.P[i]
        own = [f for o in p.objects if o.name == name for f in o.funcs]
        if own or not (self.replace_of(i) and self.c.get("nops") and self.is_phase(i, IN_TRANSITION)):
            return own[0] if own else None
        older = sorted((q for q in range(self.m.n) if q != i and self.listed(q) and self.replaces(i, q)), key=self.pos)
        return next((f for q in older for o in self.m.P[q].objects if o.name == name for f in o.funcs), None)

    def move(self, i: int, src: int, dst: int) -> None:
        """Phase change of patch i along a lifecycle edge (src is static: the edge's source).
        Leaving klp_patches closes the gap in the list and releases the data pointers."""
        c = self.c
        if src in LISTED and dst not in LISTED:
            at = self.pos(i)                # (the loop changes only the others' positions)
            for q in range(self.m.n):
                if q != i:
                    for _ in c.when(c.and_(self.listed(q), c.lt(at, self.pos(q)))):
                        c.set(self.v.pos[q], c.add(self.pos(q), -1))
            self.leave_list([i])
        c.set(self.v.phase[i], dst)

    def leave_list(self, which: list[int]) -> None:
        c = self.c
        for i in which:
            c.set(self.v.pos[i], 0)
            for flag in self.v.pue[i]:
                c.set(flag, False)
        self.release([(i, s) for i in which for s, _ in self.m.P[i].states])

    # ---- abstract system (properties.md): values, installed patches' data, live blocks
    #
    # The number of live blocks is compared as "no block leaked in between". That is exact
    # here: during a judged interval (one failing load; a load-started transition without
    # module events) only the transition patch's callbacks run, and they write only its
    # own pointers, so the installed patches keep their pointers; with equal kinds and
    # contents, the live count can then differ only by blocks that became unreachable.
    def abstract(self) -> Abstract:
        c, m = self.c, self.m
        vals = {s: c.get(self.v.val[s]) for s in m.state_names}
        data = {}
        for i, p in enumerate(m.P):
            for s, _ in p.states:
                ptr = self.ptr(i, s)
                data[(i, s)] = (self.kind(ptr, s), self.content(ptr, s))
        return vals, data

    def same_abstract(self, a: Abstract, b: Abstract, leaked: Val) -> Val:
        c = self.c
        (va, da), (vb, db) = a, b
        eqs = [c.eq(va[s], vb[s]) for s in va]
        for k in da:
            (ka, ca), (kb, cb_) = da[k], db[k]
            eqs.append(c.eq(ka, kb))
            eqs.append(c.or_(c.ne(ka, 1), c.eq(ca, cb_)))
        return c.and_(c.not_(leaked), *eqs)

    def snapshot(self, now: Abstract) -> None:
        """Remember `now` (the abstract system, just taken) for revert-restores."""
        c, m = self.c, self.m
        vals, data = now
        for s in m.state_names:
            c.set(self.v.snap_val[s], vals[s])
        for (i, s), (k, v) in data.items():
            c.set(self.v.snap_kind[i][s], k)
            c.set(self.v.snap_cont[i][s], c.ite(c.eq(k, 1), v, 0))
        c.set("leak_since", False)

    def snapshotted(self) -> Abstract:
        c, m = self.c, self.m
        vals = {s: c.get(self.v.snap_val[s]) for s in m.state_names}
        data = {(i, s): (c.get(self.v.snap_kind[i][s]), c.get(self.v.snap_cont[i][s]))
                for i, p in enumerate(m.P) for s, _ in p.states}
        return vals, data

    def clear_snapshot(self) -> None:
        c, m = self.c, self.m
        for s in m.state_names:
            c.set(self.v.snap_val[s], ORIGINAL)
        for i, p in enumerate(m.P):
            for s, _ in p.states:
                c.set(self.v.snap_kind[i][s], 0)
                c.set(self.v.snap_cont[i][s], 0)
        c.set("leak_since", False)
        c.set("tload", False)
        c.set("exempt", False)

    # ---- operations
    def checks(self, op: Op) -> list[tuple[Refusal, Val]]:
        """The kernel's checks for `op`, in the kernel's order: [(refusal, passes)].

        A refused operation changes nothing; `verify` leaves it out of the search."""
        c, m = self.c, self.m
        EINVAL, EBUSY, EEXIST, ENOENT, ESRCH = -22, -16, -17, -2, -3
        if op.word == "load":                                   # §2.1: module loader, then 6, then 10
            i = self._index(op.target)
            out = [(Refusal(f"module {op.target} is already loaded (insmod: File exists)", EEXIST),
                    c.eq(self.phase(i), UNLOADED))]
            out += self.compat_checks(i, op)
            out.append((Refusal("-EBUSY: another transition is in progress", EBUSY), c.not_(self.transition())))
            return out
        if op.word == "reverse":
            return [(Refusal("no transition is in progress", EINVAL), self.transition())]
        if op.word == "complete":                               # §4.1, §11: a task asleep in a to-be-patched function
            return [(Refusal("no transition is in progress", EINVAL), self.transition()),
                    *[(Refusal(f"the transition cannot complete: a task of {mod} sleeps in {func}", EBUSY), c.not_(stuck))
                      for mod, func, stuck in self.stuck()]]
        if op.word == "param":
            owner = op.target.split(" ")[0]
            loaded = c.get(f"mod[{owner}]") if owner in m.module_names else c.ne(self.phase(self._index(owner)), UNLOADED)
            return [(Refusal(f"module {owner} is not loaded (no /sys/module/{owner})", ENOENT), loaded)]
        if op.word == "disable":                                # §6.1, §6.3
            ph = self.phase(self._index(op.target))               # (during its own patching
            return [(Refusal(f"-EINVAL: {op.target} is not enabled", EINVAL), c.or_(c.eq(ph, PATCHING), c.eq(ph, ENABLED))),
                    (Refusal("-EBUSY: another transition is in progress", EBUSY),     # transition: a reversal)
                     c.or_(c.eq(ph, PATCHING), c.not_(self.transition())))]
        if op.word == "rmmod":                                  # §10
            i = self._index(op.target)
            return [(Refusal(f"module {op.target} is not loaded", ENOENT), c.ne(self.phase(i), UNLOADED)),
                    (Refusal(f"module {op.target} is in use: its patch is on klp_patches", EBUSY), c.not_(self.listed(i))),
                    (Refusal(f"module {op.target} is in use for ever: its patch was forced", EBUSY),
                     c.not_(c.get(self.v.forced[i])))]
        if op.word == "modload":
            return [(Refusal(f"module {op.target} is already loaded", EEXIST), c.not_(c.get(self.v.mod[op.target])))]
        if op.word == "modunload":
            return [(Refusal(f"module {op.target} is not loaded", ENOENT), c.get(self.v.mod[op.target]))]
        if op.word == "force":                                  # §6.4: also a repeated force
            return [(Refusal("-EINVAL: no transition is in progress", EINVAL), self.transition())]
        if op.word == "call":                                   # (issue 14) its new code runs only
            patch, _, func = op.target.partition(".")           # while it is on klp_patches and the
            i = self._index(patch)                              # ftrace handler picks it for some task
            homes = self.homes(i, func)
            return [(Refusal(f"{patch}'s {func} does not run: the patch is not on klp_patches", EINVAL), self.listed(i)),
                    (Refusal(f"{patch}'s {func} does not run: its object is not loaded", ENOENT),
                     c.or_(*(self.loaded(o) for o in homes))),
                    (Refusal(f"{patch}'s {func} does not run: another version is the one on its func_stack "
                             f"for every task", ESRCH), self.runs(i, func))]
        raise ValueError(op)

    def homes(self, i: int, func: str) -> list[str]:
        """The objects of patch i whose `funcs` list `func` (a function is its object and its
        name: klp_find_ops matches old_func); every object of the patch when none lists it."""
        p = self.m.P[i]
        return [o.name for o in p.objects if func in o.funcs] or [o.name for o in p.objects]

    def runs(self, i: int, func: str) -> Val:
        """(issue 14) Patch i's new version of `func` is the one klp_ftrace_handler picks for
        some task (`handler`): a task at the transition's target patch state, or, unless force
        switched every task (§6.4), one still at the initial state. A function no object of the
        patch lists is the patch's alone (no other entry on its stack): it runs for some task
        unless every task is on the unpatched side of the patch's own unpatching transition.
        Read together with the checks before it (listed, an object loaded)."""
        c, m = self.c, self.m
        if not any(func in o.funcs for o in m.P[i].objects):
            return c.not_(c.and_(c.get("switched"), c.eq(self.phase(i), UNPATCHING)))
        out = []
        for home in self.homes(i, func):
            picks = {k: v for k, v in self.handler(home, func, True)}
            unswitched = {k: v for k, v in self.handler(home, func, False)}
            out.append(c.or_(picks.get(i, False), c.and_(c.not_(c.get("switched")), unswitched.get(i, False))))
        return c.or_(*out)

    def handler(self, obj: str, func: str, at_target: Val) -> list[tuple[int | None, Val]]:
        """klp_ftrace_handler (patch.c) for function `func` of object `obj`, called by a task at
        the transition's target patch state (`at_target`) or at the initial one: [(k, the task
        runs patch k's new func), ..., (None, the original code)]. The func_stack holds the
        entries of `stack_entries`, newest first (klp_patch_func pushes at the head: list
        order); the top entry runs unless it is the transition patch's (its funcs have
        `transition` set, §3 step 2) and the task is at KLP_UNPATCHED (the initial state of a
        patching transition, the target of an unpatching one): then the entry below it runs, the
        original when none; a nop entry runs the original (§7)."""
        c, m = self.c, self.m
        entries = dict(self.stack_entries(obj, func, None))
        own = {q for q in entries if any(o.name == obj and func in o.funcs for o in m.P[q].objects)}
        picked: dict[int, Val] = {q: False for q in entries}
        for t, top in self.tops(list(entries), entries):
            unpatched = c.ite(c.eq(self.phase(t), PATCHING), c.not_(at_target), at_target)
            skip = c.and_(self.is_phase(t, IN_TRANSITION), unpatched)
            picked[t] = c.or_(picked[t], c.and_(top, c.not_(skip)))
            rest = [q for q in entries if q != t]
            for b, below in self.tops(rest, {q: entries[q] for q in rest}):
                picked[b] = c.or_(picked[b], c.and_(top, skip, below))
        runs = [(q, picked[q]) for q in entries if q in own]
        return [*runs, (None, c.not_(c.or_(*(v for _, v in runs))))]

    def stack_entries(self, obj: str, func: str, mine: int | None) -> list[tuple[int, Val]]:
        """(q, 'q has an entry') for every patch q but `mine` that can have an entry on the
        func_stack of function `func` of object `obj`: its own func (q listed, the object
        loaded: patched, §3 step 3, §9.1, unpatched at §4.2, §9.2), or the nop func that
        klp_add_nops gave it (§7: q, a replace patch in its first transition, lacks the
        function and some listed patch it replaces has it; dropped at completion, §4.2 step 2)."""
        c, m = self.c, self.m
        out = []
        for q, p in enumerate(m.P):
            if q == mine:
                continue
            if any(o.name == obj and func in o.funcs for o in p.objects):
                out.append((q, c.and_(self.listed(q), self.loaded(obj))))
            elif self.may_replace(q):
                has = [r for r, pr in enumerate(m.P) if r != q and any(o.name == obj and func in o.funcs for o in pr.objects)]
                if has:
                    out.append((q, c.and_(c.get("nops"), self.is_phase(q, IN_TRANSITION), self.loaded(obj),
                                          c.or_(*(c.and_(self.listed(r), self.replaces(q, r)) for r in has)))))
        return out

    def compat_checks(self, i: int, op: Op) -> list[tuple[Refusal, Val]]:
        """klp_is_patch_compatible (§2.2) for loading patch i: [(refusal, passes)], one per
        installed patch it would refuse, in spec order."""
        c, m = self.c, self.m
        r = self.load_replace(i, op)
        out = []
        for j in range(m.n):
            ok, why = m.compat[(i, j, r)] if j != i else (True, None)
            if not ok:
                out.append((self.incompatible(op, why), c.not_(self.listed(j))))
        return out

    @staticmethod
    def incompatible(op: Op, why: Incompatible | None) -> Refusal:
        return Refusal(f"-EINVAL: not compatible with the already installed livepatches ({why})", -22,
                       f"livepatch: Livepatch patch ({op.target}) is not compatible with the "
                       f"already installed livepatches.", why)

    def stuck(self) -> list[tuple[str, str, Val]]:
        """(module, function, condition): a task sleeps in function while a transition that
        needs it to leave the version it is in is in progress (klp_check_stack, §11, and
        proposals.md §A.6.1.5): a patching transition of a patch that patches the function,
        when the task is in the version below the patch (the one the patch replaces), or an
        unpatching transition, when the task is in the patch's own version."""
        out = []
        for mod in self.m.spec.modules:
            if mod.sleeps is None:
                continue
            func = mod.sleeps[0]
            blocked = [self.blocks(mod, k) for k, p in enumerate(self.m.P) if self.patches_func(k, mod.name, func)]
            if blocked:
                out.append((mod.name, func, self.c.and_(self.asleep(mod), self.c.or_(*blocked))))
        return out

    # ---- tasks and the version of a function they run (issue 15: the sleeping task of a
    # module with `sleeps`, and a new task such as the scripts' `cat`)
    def patches_func(self, k: int, obj: str, func: str) -> bool:
        """Patch k's object `obj` lists `func` (a function is its object and its name)."""
        return any(o.name == obj and func in o.funcs for o in self.m.P[k].objects)

    def asleep(self, mod: Module) -> Val:
        """A task of `mod` sleeps in its `sleeps` function (the module is loaded, the parameter
        set) and force did not switch it."""
        c = self.c
        _, param = mod.sleeps or ("", "")
        return c.and_(c.get(self.v.mod[mod.name]), c.ne(c.get(f"param[{mod.name}.{param}]"), 0), c.not_(c.get("switched")))

    def initial_version(self, mod: Module) -> Val:
        """The version of `mod`'s sleeps function a task at the initial patch state runs (j + 1
        for patch j, 0 for the original): during a patching transition, the one the transition
        patch replaces (§3 step 2)."""
        c = self.c
        out: Val = 0
        for j, runs in self.handler(mod.name, (mod.sleeps or ("", ""))[0], False):
            if j is not None:
                out = c.ite(runs, j + 1, out)
        return out

    def blocks(self, mod: Module, k: int) -> Val:
        """The sleeping task of `mod` (if asleep) holds patch k's transition: the version of the
        function it sleeps in is the one the transition takes it from."""
        c = self.c
        v = c.get(self.v.sleep[mod.name])
        return c.or_(c.and_(c.eq(self.phase(k), PATCHING), c.eq(v, self.initial_version(mod))),
                     c.and_(c.eq(self.phase(k), UNPATCHING), c.eq(v, k + 1)))

    def tops(self, cand: list[int], counts: dict[int, Val]) -> list[tuple[int, Val]]:
        """(j, j is the newest of `cand` on klp_patches among those that count)."""
        c = self.c
        return [(j, c.and_(counts[j], c.not_(c.or_(*(c.and_(counts[q], c.lt(self.pos(j), self.pos(q)))
                                                       for q in cand if q != j)))))
                for j in cand]

    def at_target(self, task: str | None) -> Val:
        """`task` is at the transition's target patch state: a new task (None) is (it inherits
        the state of the script's shell, which has switched); the sleeping task of module `task`
        is not while it holds the transition (`stuck`)."""
        if task is None:
            return True
        return self.c.not_(self.c.or_(*(held for mod, _, held in self.stuck() if mod == task)))

    def func_home(self, func: str) -> str:
        """The object function `func` (a name) belongs to: the target module whose `code` has
        it, else the first object some patch lists it in, else vmlinux."""
        m = self.m
        return next((mod.name for mod in m.spec.modules if func in dict(mod.code)),
                    next((o.name for p in m.P for o in p.objects if func in o.funcs), "vmlinux"))

    def version(self, func: str, task: str | None) -> list[tuple[int | None, Val]]:
        """(patch k or None for the original, `task` runs that version of `func`): what
        klp_ftrace_handler picks for the task's patch state (`handler`)."""
        return self.handler(self.func_home(func), func, self.at_target(task))

    def run_code(self, func: str, task: str | None, arg: str) -> None:
        """`call FUNC "ARG"`: `task` runs its version of `func`: a patch's `code`, or the
        target module's own `code` (nothing when that version has none)."""
        c, m = self.c, self.m
        saved = self.task, self.arg
        self.task, self.arg = task, arg
        for k, runs in self.version(func, task):
            if k is not None and not m.P[k].module_func(func):
                continue
            for _ in c.when(runs):
                if k is not None:
                    self.module_func(k, func)
                    continue
                for mod in m.spec.modules:
                    if func in dict(mod.code):
                        self.run_module_code(mod, dict(mod.code)[func], task, arg)
        self.task, self.arg = saved

    def run_module_code(self, mod: Module, stmts: tuple[Stmt, ...], task: str | None, arg: str) -> None:
        """A target module's statements (its code, its sleeps.wake): log lines with the text
        argument in place of {arg}, and calls."""
        c = self.c
        for st in stmts:
            for _ in c.when(self.cond(st.cond, mod.name)):
                if st.action == "call":
                    self.run_code(st.arg or "", task, st.value or "")
                else:
                    c.event(E.ModLog(mod.name, (st.arg or "").replace("{arg}", arg)))

    def fall_asleep(self, mod: Module) -> None:
        """The parameter of `sleeps` became set: a new task calls the function (its code runs,
        in the version a new task runs) and sleeps in that version."""
        c = self.c
        func = (mod.sleeps or ("", ""))[0]
        where: Val = 0
        for k, runs in self.version(func, None):
            if k is not None:
                where = c.ite(runs, k + 1, where)
        c.set(self.v.sleep[mod.name], where)
        self.run_code(func, None, "")

    def load_replace(self, i: int, op: Op) -> bool:
        """klp_patch.replace of the instance `op` loads (a module parameter may set it)."""
        p = self.m.P[i]
        if p.replace_param is None:
            return p.replace
        given = dict(op.params or ())
        return bool(given.get(p.replace_param, dict(p.params)[p.replace_param]))

    def load_nops(self, i: int, op: Op) -> bool:
        """klp_init_patch calls klp_add_nops for the instance `op` loads (§7): a replace patch."""
        return self.load_replace(i, op)

    def replace_value(self, i: int, op: Op) -> Val:
        """The value of the replace[P] variable for the instance `op` loads."""
        return self.load_replace(i, op)

    def replaces(self, i: int, q: int) -> Val:
        """Patch i, a replace patch, replaces listed patch q (and gets nops for its objects)
        when q is older: every patch (§7; replace-set: only those of its set)."""
        return True

    def may_replace(self, i: int) -> bool:
        """Static: patch i may be loaded as a replace patch (so may have nop objects)."""
        p = self.m.P[i]
        return p.replace or p.replace_param is not None

    def replace_of(self, i: int) -> Val:
        """klp_patch.replace of the loaded instance of patch i (read once, at its init)."""
        p = self.m.P[i]
        if p.replace_param is None:
            return p.replace
        return self.c.get(self.v.repl[i])

    def set_params(self, owner: str, defaults: tuple[tuple[str, int], ...],
                   given: tuple[tuple[str, int], ...]) -> None:
        """insmod OWNER name=value...: every parameter takes the given value or its default
        (a module loaded again is a new instance: load_module() parses only the insmod line)."""
        values = dict(given)
        for name, default in defaults:
            self.c.set(f"param[{owner}.{name}]", values.get(name, default))

    def effective(self, func: str) -> str | None:
        """Concrete only: whose version of `func` a new task runs (the scripts' `cat`, `grep`):
        the newest patch on klp_patches that patches it (the ftrace func_stack top, §3), the
        transition patch only while patching (a new task inherits the target state from the
        script's shell, which has switched); None: the original (a cumulative patch's nops
        leave no older patch listed once complete; during its transition they are not
        modelled)."""
        return next((self.m.P[k].name for k, runs in self.version(func, None) if k is not None and runs), None)

    # ---- what the selftest scripts read (simulate): concrete only, nothing here changes a rule
    def sysfs_read(self, patch: str, rel: str) -> str | None:
        """What `cat /sys/kernel/livepatch/PATCH/REL` prints (§5, §6.5), or None when the file does
        not exist. The directory exists while the patch is on klp_patches: it is created by
        klp_init_patch and removed by the free that follows leaving the list (§4.1, §10; the
        model does that free at once, as the scripts wait for it).
        enabled: patch->enabled, the requested direction (§5); transition: patch ==
        klp_transition_patch; replace: patch->replace (6.11+); stack_order: the 1-based
        position on klp_patches (stack_order_show walks the list, 6.14+); OBJ/patched:
        obj->patched, set by klp_patch_object and cleared by klp_unpatch_object, so 1 exactly
        while the object is loaded (a listed patch's loaded objects are patched, §3, §9)."""
        i = self._index(patch)
        if not self.listed(i) or rel.rpartition("/")[2] not in self.SYSFS:
            return None
        ph = self.phase(i)
        if rel == "enabled":
            return "1" if ph in (PATCHING, ENABLED) else "0"
        if rel == "transition":
            return "1" if ph in IN_TRANSITION else "0"
        if rel == "replace":
            return "1" if self.replace_of(i) else "0"
        if rel == "stack_order":
            return str(self.pos(i) + 1)
        obj, _, leaf = rel.partition("/")
        if leaf == "patched" and any(o.name == obj for o in self.m.P[i].objects):
            return "1" if self.loaded(obj) else "0"
        return None

    def sysfs_mode(self, patch: str, rel: str) -> str | None:
        """`stat --format %A` of /sys/kernel/livepatch/PATCH/REL (the documented modes: enabled
        0644 §6.1, force 0200 §6.4, transition, replace, stack_order and OBJ/patched 0444 §6.5;
        kobject directories 0755), or None when it does not exist (see sysfs_read)."""
        i = self._index(patch)
        if not self.listed(i) or (rel and rel.rpartition("/")[2] not in self.SYSFS and rel not in self.m.module_names
                                  and rel != "vmlinux"):
            return None
        obj, _, leaf = rel.partition("/")
        if obj in SYSFS_MODES and not leaf:
            return SYSFS_MODES[obj]
        if any(o.name == obj for o in self.m.P[i].objects) and leaf in OBJECT_SYSFS_MODES:
            return OBJECT_SYSFS_MODES[leaf]
        return None

    def ftrace_ops_registered(self) -> bool:
        """Some livepatch function has its ftrace handler registered: a patch on klp_patches has
        a loaded object with functions (klp_patch_func registers the handler with
        FTRACE_OPS_FL_PERMANENT, and ftrace_enable_sysctl refuses kernel.ftrace_enabled=0 with
        -EBUSY while such ops are registered; a replace patch's nop functions sit on functions
        that the listed patches it replaces already hold). Only `funcs` listed in the spec count."""
        return any(self.listed(i) and self.loaded(o.name) and o.funcs
                   for i, p in enumerate(self.m.P) for o in p.objects)

    def function_loaded(self, func: str) -> bool:
        """The code of `func` is in memory: it is in vmlinux, or in the target module of the
        objects that list it in `funcs`, and that module is loaded."""
        homes = {o.name for p in self.m.P for o in p.objects if func in o.funcs}
        return all(self.loaded(name) for name in homes)

    def enabled(self, op: Op) -> Val:
        """Is `op` possible here? (every check passes)"""
        return self.c.and_(*(ok for _, ok in self.checks(op)))

    def refusal(self, op: Op) -> Refusal | None:
        """Concrete only: why the kernel refuses `op` here (the first failing check), or None."""
        return next((why for why, ok in self.checks(op) if not ok), None)

    def _index(self, name: str) -> int:
        return self.m.index[name]

    def run(self, op: Op) -> None:
        c = self.c
        self.leaks: list[Val] = []
        self.first: dict[str, int] = {}     # (issue 14) a target module function's data per pair (target_func)
        self.gen: dict[str, int] = {}
        seen = self.watch_before(op)
        getattr(self, "op_" + op.word.replace("-", "_"))(op)
        self.watch_after(op, seen)
        if self.leaks:
            c.set("leaked", c.or_(c.get("leaked"), *self.leaks))
            c.set("leak_since", c.and_(c.get("tload"), c.or_(c.get("leak_since"), *self.leaks)))
        self.judge_quiescent()
        self.judge_shadows()

    def nop_names(self, i: int) -> list[str]:
        """The objects patch i can get as dynamic nop objects: those of other patches that
        it does not have itself (klp_add_nops, §7), in spec order."""
        own = {o.name for o in self.m.P[i].objects}
        return list(dict.fromkeys(o.name for q, p in enumerate(self.m.P) if q != i
                                  for o in p.objects if o.name not in own))

    def nop_exists(self, i: int, name: str) -> Val:
        """Replace patch i, while it is loading or in its first transition, has a nop object
        for `name`: some other listed patch (all of them older) has an object `name`."""
        c = self.c
        return c.or_(*(c.and_(self.listed(q), self.replaces(i, q)) for q, p in enumerate(self.m.P)
                       if q != i and any(o.name == name for o in p.objects)))

    def op_load(self, op: Op) -> None:
        """insmod: the module's init runs (issue 14: its own statements, then klp_enable_patch;
        a failing init refuses the module before any livepatch line)."""
        c, m = self.c, self.m
        i = self._index(op.target)
        p = m.P[i]
        if not p.init and not p.init_error:
            self.enable_patch(op)
            return
        self.set_params(p.name, p.params, op.params or ())   # init sees insmod's values
        failed = self.module_func(i, "init")
        for _ in c.when(failed):
            c.event(E.InitFailed(p.name))
        for _ in c.when(c.not_(failed)):
            self.enable_patch(op)
            for _ in c.when(c.eq(self.phase(i), UNLOADED)):   # klp_enable_patch failed: init's error
                self.module_func(i, "init_error")             # path, then init returns the error
                if p.init_error:
                    c.event(E.InitFailed(p.name, enable=True))

    def enable_patch(self, op: Op) -> None:
        """klp_enable_patch (§2-3) called from the module's init."""
        c, m = self.c, self.m
        i = self._index(op.target)
        p = m.P[i]
        c.set(self.v.pos[i], c.count(self.listed(j) for j in range(m.n)))   # appended to the tail
        c.set(self.v.forced[i], False)
        for flag in self.v.pue[i]:
            c.set(flag, False)
        self.set_params(p.name, p.params, op.params or ())   # a new instance: insmod's values or defaults
        replace = self.load_nops(i, op)
        if p.replace_param is not None:              # klp_patch.replace is read once, at init
            c.set(self.v.repl[i], self.replace_value(i, op))
        c.set("nops", replace)                       # klp_add_nops at init (§7)
        c.set("switched", False)                     # klp_init_transition: every task to switch
        (_, entered, cbs), = self.edges("load")
        c.set(self.v.phase[i], entered)
        c.event(E.LoadStart(p.name, Edge(UNLOADED, entered, "load")))
        failed = self.states_pre_patch(i)
        for oi, o in enumerate(p.objects):           # interleaved per object, stop at failure (§3)
            go = c.and_(self.loaded(o.name), c.not_(failed))
            ok = True
            for _ in c.when(go):
                ok = self.run_edge(i, oi, cbs)
            failed = c.or_(failed, c.and_(go, c.not_(ok)))
        if replace:                                  # then the dynamic nop objects, which have no
            for name in self.nop_names(i):           # callbacks but are patched too (§3 step 3, §7)
                go = c.and_(self.nop_exists(i, name), self.loaded(name), c.not_(failed))
                failed = c.or_(failed, c.not_(self.patch_object(i, None, go, nop=name)))
        for _ in c.when(failed):                     # §3.1: cancel, going to unpatch
            (from_, back, cancel), = self.edges("load-failed")
            c.event(E.LoadCancel(p.name, Edge(from_, back, "load-failed")))
            self.states_unpatched(i, (from_, back, "load-failed"))
            for oi, o in enumerate(p.objects):
                for _ in c.when(self.loaded(o.name)):
                    self.run_edge(i, oi, cancel)
            c.event(E.LoadCancelled(p.name, insmod=not p.init_error))   # (else after init_error)
            self.move(i, entered, back)
            c.set("nops", False)
        for _ in c.when(c.not_(failed)):
            c.event(E.LoadStarted(p.name))

    # ---- the per-state callbacks (kernel "state-callbacks"): none in mainline
    def states_pre_patch(self, i: int) -> Val:
        """klp_enable_patch, before the objects: returns 'it failed'."""
        return False

    def states_patched(self, i: int, edge: tuple[int, int, str]) -> None:
        """klp_complete_transition to PATCHED (the lifecycle `edge`), before the objects' callbacks."""

    def states_unpatched(self, i: int, edge: tuple[int, int, str]) -> None:
        """klp_complete_transition to UNPATCHED (the lifecycle `edge`: a completion or the cancel
        path, `load-failed`), before the objects' callbacks."""

    def states_pre_unpatch(self, i: int) -> None:
        """__klp_disable_patch, before the objects' callbacks."""

    def op_complete(self, op: Op) -> None:
        c = self.c
        phases = [self.phase(i) for i in range(self.m.n)]
        c.cases([(c.eq(phases[i], src), partial(self.complete, i, src, dst, cbs))
                 for src, dst, cbs in self.edges("complete") for i in range(self.m.n)])

    def complete(self, i: int, src: int, dst: int, cbs: tuple[str, ...]) -> None:
        """klp_complete_transition for transition patch i (§4.2)."""
        c, m = self.c, self.m
        p = m.P[i]
        c.event(E.Complete(p.name, Edge(src, dst, "complete")))
        if dst in LISTED:
            self.states_patched(i, (src, dst, "complete"))
        else:
            self.states_unpatched(i, (src, dst, "complete"))
        for oi, o in enumerate(p.objects):
            for _ in c.when(self.loaded(o.name)):
                self.run_edge(i, oi, cbs)
        c.event(E.Completed(p.name, dst))
        c.set("nops", False)                         # the nop objects are freed (§4.2 step 2)
        c.set("switched", False)
        if dst in LISTED:
            for _ in c.when(self.replace_of(i)):     # §4.1/§7: drop the replaced patches now
                self.drop_replaced(i)
        self.move(i, src, dst)

    def drop_replaced(self, i: int) -> None:
        """klp_unpatch_replaced_patches and klp_free_replaced_patches_async for replace patch
        i, which completed patching: only the patches BEFORE i on klp_patches (the walk stops
        at the transition patch; newer ones stay, §17 item 13)."""
        c, m = self.c, self.m
        (r_src, r_dst, _), = self.edges("replaced")
        at = self.pos(i)
        for q in range(m.n):
            if q == i:
                continue
            listed, pq = self.listed(q), self.pos(q)       # (a listed patch other than
            for _ in c.when(c.and_(c.eq(self.phase(q), r_src), c.lt(pq, at))):   # i is enabled)
                c.event(E.Replaced(m.P[q].name, Edge(r_src, r_dst, "replaced")))
                c.set(self.v.phase[q], r_dst)
                self.leave_list([q])
            for _ in c.when(c.and_(listed, c.lt(at, pq))):
                c.set(self.v.pos[q], c.sub(pq, at))
        c.set(self.v.pos[i], 0)

    # ---- the property monitors' bookkeeping, kept out of the operations: what a profile
    # overrides is kernel behaviour only. Before an operation a monitor notes what it needs;
    # after it, it judges from the operation and the phases it changed.
    def watch_before(self, op: Op) -> Any:
        if op.word == "load":
            return self.abstract()                  # the abstract system just before the load
        if op.word in ("complete", "disable"):
            return [self.phase(i) for i in range(self.m.n)]
        if op.word in ("modload", "modunload"):
            return self.transition()
        return None

    def watch_after(self, op: Op, seen: Any) -> None:
        c, m = self.c, self.m
        if op.word == "load":                       # error-cleanup judges a failed load; a started
            i = self._index(op.target)                 # transition is watched for revert-restores
            failed = c.eq(self.phase(i), UNLOADED)
            for _ in c.when(failed):
                self.clear_snapshot()
                c.violate("error-cleanup", c.not_(self.same_abstract(seen, self.abstract(), self.leaked_now())),
                          E.FailedLoad(m.P[i].name))
            for _ in c.when(c.not_(failed)):
                self.snapshot(seen)
                c.set("tload", True)
                c.set("exempt", False)
        elif op.word == "complete":                 # a transition ended: judged if unpatched
            unpatched = c.or_(*(c.eq(ph, UNPATCHING) for ph in seen))
            for _ in c.when(unpatched):
                self.judge_unpatched()
            self.clear_snapshot()
        elif op.word == "disable":                  # a disable (not a reversal) starts a transition
            for _ in c.when(c.eq(seen[self._index(op.target)], ENABLED)):
                self.clear_snapshot()               # tload = False: started by disable
        elif op.word in ("modload", "modunload"):   # a module event exempts the transition
            c.set("exempt", c.or_(c.get("exempt"), seen))

    def judge_unpatched(self) -> None:
        """A transition completed unpatched: revert-restores or disable-restores."""
        c, m = self.c, self.m
        reverted = c.and_(c.get("tload"), c.not_(c.get("exempt")))
        for _ in c.when(reverted):
            c.violate("revert-restores",
                      c.not_(self.same_abstract(self.snapshotted(), self.abstract(),
                                                c.or_(c.get("leak_since"), self.leaked_now()))),
                      E.RevertedLoad())
        for _ in c.when(c.not_(c.get("tload"))):
            for s in m.state_names:
                undeclared = c.not_(c.or_(*(self.listed(q) for q in m.decl[s])))
                c.violate("disable-restores", c.ne(c.get(self.v.val[s]), ORIGINAL), E.StateLeft(s), reached=undeclared)

    def op_reverse(self, op: Op) -> None:
        c = self.c
        phases = [self.phase(i) for i in range(self.m.n)]
        c.cases([(c.eq(phases[i], src), partial(self.reverse, i, src, dst))
                 for src, dst, _ in self.edges("reverse") for i in range(self.m.n)])

    def reverse(self, i: int, src: int, dst: int) -> None:
        """klp_reverse_transition (§6.2): no callbacks; klp_start_transition marks the tasks
        pending again, so a task that force switched can hold the transition again."""
        self.c.event(E.Reverse(self.m.P[i].name, Edge(src, dst, "reverse")))
        self.c.set("switched", False)
        self.move(i, src, dst)

    def op_disable(self, op: Op) -> None:
        """echo 0 > enabled (§6.1): during P's own patching transition a reversal, else
        __klp_disable_patch (§6.3)."""
        c = self.c
        i = self._index(op.target)
        ph = self.phase(i)
        (r_src, r_dst, _), = (e for e in self.edges("reverse") if e[0] == PATCHING)
        c.cases([(c.eq(ph, r_src), lambda: self.reverse(i, r_src, r_dst)),
                 (c.ne(ph, r_src), lambda: self.disable(i))])

    def disable(self, i: int) -> None:
        c = self.c
        name = self.m.P[i].name
        (src, dst, cbs), = self.edges("disable")
        c.event(E.DisableStart(name, Edge(src, dst, "disable")))
        # klp_init_transition makes p the transition patch before pre_unpatch runs (§6.3), so
        # klp_get_prev_state there sees the older listed patches (§12: a non-cumulative patch)
        self.move(i, src, dst)
        c.set("switched", False)
        self.states_pre_unpatch(i)
        for oi, o in enumerate(self.m.P[i].objects):
            for _ in c.when(self.loaded(o.name)):
                self.run_edge(i, oi, cbs)
        c.event(E.DisableStarted(name))

    def op_rmmod(self, op: Op) -> None:
        (src, dst, _), = self.edges("rmmod")
        self.c.event(E.Rmmod(op.target, Edge(src, dst, "rmmod")))
        self.module_func(self._index(op.target), "exit")      # the module's exit (§10)
        self.move(self._index(op.target), src, dst)

    def op_force(self, op: Op) -> None:
        """klp_force_transition (§6.4): every task is switched now, so the next completion
        attempt succeeds even while a task sleeps in a patched function (§11); which
        patches it marks forced is the kernel version's rule (`force_marks`)."""
        c, m = self.c, self.m
        c.set("switched", True)
        took, marked = [], []
        for src, dst, _ in self.edges("force"):
            marks = self.edge(src, dst, "force")["marks"]
            for i in range(m.n):
                if c.recording and self.phase(i) == src:
                    took.append((m.P[i].name, Edge(src, dst, "force")))
                for _ in c.when(c.and_(c.eq(self.phase(i), src), self.force_marks(i, marks))):
                    c.set(self.v.forced[i], True)
                    marked.append(m.P[i].name)
        c.event(E.Force(tuple(took), tuple(marked)))

    def force_marks(self, i: int, marks: str) -> Val:
        """Does force mark patch i, by its force edge's `marks`? Since 5.18 (commit
        2957308343fa): unpatching, only the transition patch; patching with replace, every
        other listed patch (the ones it replaces); patching without replace, none."""
        c, m = self.c, self.m
        if marks != "if-replacing":
            return marks == "yes"
        return c.or_(*(c.and_(c.eq(self.phase(q), PATCHING), self.replace_of(q)) for q in range(m.n) if q != i))

    def _module_objects(self, name: str) -> list[tuple[int, int | None]]:
        """(patch, object index) of every object for module `name`; (patch, None) for the
        nop object a replace patch may have for it (klp_module_coming/going walk dynamic
        objects too)."""
        static: list[tuple[int, int | None]] = [(i, oi) for i, p in enumerate(self.m.P)
                                                for oi, o in enumerate(p.objects) if o.name == name]
        nops: list[tuple[int, int | None]] = [(i, None) for i in range(self.m.n)
                                              if self.may_replace(i) and name in self.nop_names(i)]
        return static + nops

    def _in_list_order(self, targets: list[tuple[int, int | None]], name: str) -> Iterator[tuple[int, int | None, Val]]:
        """(i, oi, guard) for listed patches with an object for the module, oldest first.
        (Module events never move a patch on the list, so a concrete run sorts once.)"""
        c = self.c
        if not c.symbolic:
            for i, oi in sorted((t for t in targets if self.listed(t[0])), key=lambda t: self.pos(t[0])):
                yield i, oi, (True if oi is not None else
                              c.and_(c.get("nops"), self.is_phase(i, IN_TRANSITION), self.nop_exists(i, name)))
            return
        for k in range(self.m.n):
            for i, oi in targets:
                g = c.and_(self.listed(i), c.eq(self.pos(i), k))
                if oi is None:                      # the nop object exists (see nop_exists)
                    g = c.and_(g, c.get("nops"), self.is_phase(i, IN_TRANSITION), self.nop_exists(i, name))
                yield i, oi, g

    def op_modload(self, op: Op) -> None:
        c = self.c
        c.set(self.v.mod[op.target], True)
        module = next(mod for mod in self.m.spec.modules if mod.name == op.target)
        self.set_params(op.target, module.params, op.params or ())
        c.event(E.ModLoad(op.target))
        targets = self._module_objects(op.target)
        failed, fail_pos = False, 0
        for i, oi, g in self._in_list_order(targets, op.target):      # §9.1
            go = c.and_(g, c.not_(failed))
            ok = True
            for _ in c.when(go):
                for src, dst, cbs in self.edges("modload"):
                    r = True
                    for _ in c.when(c.eq(self.phase(i), src)):
                        c.event(E.Applying(self.m.P[i].name, op.target, Edge(src, dst, "modload")))
                        r = (self.patch_object(i, None, True, module=op.target, nop=op.target) if oi is None
                             else self.run_edge(i, oi, cbs, module=op.target))      # (a nop object: no callbacks)
                    ok = c.and_(ok, c.or_(c.ne(self.phase(i), src), r))
            bad = c.and_(go, c.not_(ok))
            for _ in c.when(bad):
                c.event(E.Refused(self.m.P[i].name, op.target))
            fail_pos = c.ite(bad, self.pos(i), fail_pos)
            failed = c.or_(failed, bad)
        for _ in c.when(failed):                              # refuse the module, roll back earlier patches
            self._unapply(targets, lambda i: c.lt(self.pos(i), fail_pos), op.target)
            c.set(self.v.mod[op.target], False)
            c.event(E.ModLoadFailed(op.target))
        for _ in c.when(c.not_(failed)):                      # then the module's own init runs
            if module.sleeps is not None:                     # (its parameters' setters first: the
                param = f"param[{module.name}.{module.sleeps[1]}]"   # task goes to sleep)
                for _ in c.when(c.ne(c.get(param), 0)):
                    self.fall_asleep(module)
            bad = self.target_func(module, "init")
            for _ in c.when(bad):                             # init failed (do_init_module): its error
                self.target_func(module, "init_error")        # path, then MODULE_STATE_GOING and
                c.event(E.ModGoing(op.target))
                self._unapply(targets, lambda i: True, op.target)     # klp_module_going; the module
                c.set(self.v.mod[op.target], False)           # and its objects are gone
                self.objects_die(op.target)
                if module.name in self.v.sleep:               # (the task of its init is gone too)
                    c.set(self.v.sleep[module.name], 0)
                c.event(E.ModInitFailed(op.target))

    def op_modunload(self, op: Op) -> None:
        c = self.c
        c.event(E.ModUnload(op.target))
        module = next(mod for mod in self.m.spec.modules if mod.name == op.target)
        self.target_func(module, "exit")                      # exit runs before klp_module_going
        if module.name in self.v.sleep:                       # (its exit makes the task leave)
            c.set(self.v.sleep[module.name], 0)
        self._unapply(self._module_objects(op.target), lambda i: True, op.target)
        c.set(self.v.mod[op.target], False)
        self.objects_die(op.target)

    def objects_die(self, module: str) -> None:
        """Target `module` is gone: its objects are freed, the shadow hash keeps their pairs
        (§14): the abstract parent object of the variables whose parent is the module, and the
        named objects it owns ([objects])."""
        c, m = self.c, self.m
        for sv in m.spec.shadows:
            for key, obj in zip(m.pairs[sv.name], m.shadow_objs[sv.name], strict=True):
                if (sv.parent if obj is None else m.spec.owner(obj)) != module:
                    continue
                var, words = self.v.shadow[key], m.pair_words(key)
                c.violate("shadow-orphan", c.get(var), E.Orphaned(module, words))
                for _ in c.when(c.get(var)):
                    c.event(E.ShadowOrphaned(module, words))
                self.drop_shadow(key, every=False)            # (the next objects are new ones; the
                                                              # entries of freed objects stay: D17)

    def target_func(self, module: Module, func: str) -> Val:
        """A target module's own init, init_error or exit: its log lines and (issue 14) shadow
        API calls, in order; returns 'it failed' (a NULL result of a call with `or fail`)."""
        c = self.c
        self.first, self.gen = {}, {}                         # the data the function got, per pair
        running, failed = True, False
        for n, st in enumerate(module.func(func)):
            g = c.and_(running, self.cond(st.cond, module.name))
            where = Where(module.name, MODULE_OBJ, func, st, n)
            if c.recording and running and st.action != "log":      # (explain's culprit, coverage)
                c.event(E.Ran(where, bool(g), None))
            f = False
            for _ in c.when(g):
                if st.action == "log":
                    c.event(E.ModLog(module.name, st.arg or ""))
                else:
                    f = self.shadow_statement(module.name, st, where, False)
            fail_here = c.and_(g, f)
            failed = c.or_(failed, fail_here)
            running = c.and_(running, c.not_(fail_here))
        return failed

    def op_call(self, op: Op) -> None:
        """(issue 14) A task calls one of the patch's new functions once: when the ftrace
        handler picks the patch's version for some task (`runs`, checked before)."""
        patch, _, func = op.target.partition(".")
        self.c.event(E.Call(patch, func))
        self.module_func(self._index(patch), func)

    def op_param(self, op: Op) -> None:
        """echo VALUE > /sys/module/OWNER/parameters/NAME. The parameter of a module's `sleeps`
        (issue 15): cleared, the sleeping task wakes, runs `wake` in the version of the code it
        runs (while still in the function: it may hold a transition), and leaves; set, a task
        calls the function and sleeps in it."""
        c = self.c
        owner, name, value = op.target.split(" ")
        var = f"param[{owner}.{name}]"
        mod = next((x for x in self.m.spec.modules if x.name == owner and x.sleeps and x.sleeps[1] == name), None)
        if mod is None:
            c.set(var, int(value))
            return
        was = c.ne(c.get(var), 0)
        if int(value) == 0:                          # (the task's version: runs_patched; force
            for _ in c.when(was):                    # switched it, so it is at the target then)
                self.run_module_code(mod, mod.wake, mod.name, "")
            c.set(self.v.sleep[mod.name], 0)
        c.set(var, int(value))
        if int(value) != 0:
            for _ in c.when(c.not_(was)):
                self.fall_asleep(mod)

    def _unapply(self, targets: list[tuple[int, int | None]], which: Callable[[int], Val], module: str) -> None:
        c = self.c
        for i, oi, g in self._in_list_order(targets, module):     # §9.2
            for _ in c.when(c.and_(g, which(i))):
                for src, dst, cbs in self.edges("modunload"):
                    for _ in c.when(c.eq(self.phase(i), src)):
                        reverting = E.Reverting(self.m.P[i].name, module, Edge(src, dst, "modunload"))
                        if oi is None:                  # a nop object: no callbacks
                            c.event(reverting)
                            continue
                        for cb in cbs:                  # the log line comes between the two
                            if cb == "post_unpatch":
                                c.event(reverting)
                            self.callback(i, oi, cb)

    def judge_quiescent(self) -> None:
        """no-leak, and `uses` of enabled patches, at quiescent points (properties.md)."""
        c, m = self.c, self.m
        quiet = c.not_(self.transition())
        c.violate("no-leak", quiet, E.Quiescent(), reached=c.get("leaked"))
        for i, p in enumerate(m.P):
            for s in p.uses:
                on = c.and_(quiet, c.eq(self.phase(i), ENABLED))
                k = self.kind(self.ptr(i, s), s)
                c.violate("no-null-deref", c.eq(k, 0), E.Uses(p.name, s), reached=on)
                c.violate("no-use-after-free", c.eq(k, 2), E.Uses(p.name, s), reached=on)


def enabled(model: Model, ctx: Backend, op: Op) -> Val:
    return model.profile(model, ctx).enabled(op)


def refusal(model: Model, ctx: Backend, op: Op) -> Refusal | None:
    return model.profile(model, ctx).refusal(op)


def possible(model: Model, ctx: Backend, ops: Iterable[Op]) -> list[Op]:
    """Concrete only: the operations of `ops` the kernel does not refuse here."""
    rules = model.profile(model, ctx, frozen=True)
    return [op for op in ops if rules.refusal(op) is None]


def effective(model: Model, ctx: Backend, func: str) -> str | None:
    return model.profile(model, ctx).effective(func)


def run_code(model: Model, ctx: Backend, func: str) -> None:
    """A new task runs its version of `func` (issue 15: the original's `code` of a target
    module, as `read-param` reads it); its events go to ctx."""
    model.profile(model, ctx).run_code(func, None, "")


def sysfs_read(model: Model, ctx: Backend, patch: str, rel: str) -> str | None:
    return model.profile(model, ctx).sysfs_read(patch, rel)


def sysfs_mode(model: Model, ctx: Backend, patch: str, rel: str) -> str | None:
    return model.profile(model, ctx).sysfs_mode(patch, rel)


def ftrace_ops_registered(model: Model, ctx: Backend) -> bool:
    return model.profile(model, ctx).ftrace_ops_registered()


def function_loaded(model: Model, ctx: Backend, func: str) -> bool:
    return model.profile(model, ctx).function_loaded(func)


def step(model: Model, ctx: Backend, op: Op) -> None:
    """Apply `op` (assumed enabled) to the state held by `ctx`, judging properties."""
    model.profile(model, ctx).run(op)


class Linux55(Mainline):
    """Linux 5.5 to 5.17: the same rules, but force marks every patch on klp_patches (§6.4:
    the rule before commit 2957308343fa), so their modules can never be removed."""

    name = "5.5"
    summary = "Linux 5.5 to 5.17: force marks every patch on klp_patches (their modules stay pinned)"
    EDGES = tuple((e[0], e[1], e[2], e[3], "§6.4 (5.5-5.17): every listed patch is marked forced", (("marks", "yes"),))
                  if e[2] == "force" else e for e in _EDGES)
    SYSFS = frozenset({"", "enabled", "force", "transition"})   # patched (6.1), replace (6.11), stack_order (6.14): later


class ReplaceSet(Mainline):
    """The replace_set series, v2 (Yafang Shao, 29 May 2026, not merged; proposals.md §B.5, its
    semantics §B.6): klp_patch.replace (a bool) becomes replace_set (an unsigned int, 0 unless
    set), and every patch atomically replaces the installed patches of its own set: klp_add_nops,
    klp_unpatch_replaced_patches, klp_free_replaced_patches_async and the forced marking of
    klp_force_transition are filtered by set (§B.5.2 hunks). Patches of different sets may not
    declare the same state id or patch the same function (compatible_in_sets). sysfs shows
    `replace_set` instead of `replace`, and `stack_order` is gone (§B.5.3). The callbacks, states
    and klp_get_prev_state are mainline's (§B.6: not set-filtered in v2)."""

    name = "replace-set"
    summary = "the replace_set series v2 (May 2026, not merged): each patch replaces only the patches of its replace_set"
    EDGES = tuple(
        (e[0], e[1], e[2], e[3], "§4.2, §B.6: post_patch for loaded objects; then the patches before it of its "
         "replace_set leave klp_patches (other sets stay)") if (e[2], e[0]) == ("complete", PATCHING) else
        (e[0], e[1], e[2], e[3], "§B.6: a patch of its replace_set completed; no callback of the replaced patch runs")
        if e[2] == "replaced" else
        (e[0], e[1], e[2], e[3], "§B.6 (v2 2/4): marked forced when a patch of its replace_set is patching",
         (("marks", "if-same-set"),)) if (e[2], e[0]) == ("force", ENABLED) else e
        for e in _EDGES)
    SYSFS = frozenset({"", "enabled", "force", "transition", "replace_set", "patched"})   # no replace, no stack_order
    SETS = True

    @classmethod
    def refuse(cls, spec: Spec) -> None:
        for p in spec.patches:
            for key, line in p.written:
                if key == "replace":
                    raise UserError(f"patch '{p.name}': kernel profile 'replace-set' has no replace (v2 turned the bool "
                                    f"klp_patch.replace into replace_set: every patch replaces the installed patches "
                                    f"of its own set); write replace_set = N instead (default 0, one set for all)",
                                    path=spec.path, line=line)
                if key == "replace_set" and p.replace_param is not None:
                    raise UserError(f"patch '{p.name}': replace_set is given twice, by replace_set and by "
                                    f"replace_param = \"{p.replace_param}\"; keep one", path=spec.path, line=line)
        cls.refuse_state_keys(spec)        # (v2 has no per-state callbacks)

    @staticmethod
    def compatible(new: Patch, old: Patch, flag: bool) -> tuple[bool, Incompatible | None]:
        """`flag`: new and old are in the same replace_set."""
        return compatible_in_sets(new, old, flag)

    @staticmethod
    def static_flag(new: Patch, old: Patch) -> bool:
        return static_set(new) == static_set(old)

    def load_set(self, i: int, op: Op) -> int:
        """klp_patch.replace_set of the instance `op` loads: the spec's, or the module
        parameter's value as an unsigned int (the selftest modules' `replace_set=N`)."""
        p = self.m.P[i]
        given = dict(op.params or ())
        if p.replace_param is None or p.replace_param not in given:
            return static_set(p)
        return given[p.replace_param] & 0xFFFFFFFF

    def set_of(self, i: int) -> Val:
        """klp_patch.replace_set of the loaded instance of patch i."""
        p = self.m.P[i]
        return p.replace_set if p.replace_param is None else self.c.get(self.v.repl[i])

    def replace_value(self, i: int, op: Op) -> Val:
        return self.load_set(i, op)

    def load_nops(self, i: int, op: Op) -> bool:
        return True                 # klp_init_patch always calls klp_add_nops (v2 2/4)

    def replace_of(self, i: int) -> Val:
        return True                 # every patch replaces (within its set)

    def may_replace(self, i: int) -> bool:
        return True

    def replaces(self, i: int, q: int) -> Val:
        return self.c.eq(self.set_of(i), self.set_of(q))

    def compat_checks(self, i: int, op: Op) -> list[tuple[Refusal, Val]]:
        """The compatibility rule against each installed patch, by whether it is in the set
        of the instance loaded (a module parameter may choose the set at insmod)."""
        c, m = self.c, self.m
        mine = self.load_set(i, op)
        out = []
        for j in range(m.n):
            if j == i:
                continue
            same = c.eq(mine, self.set_of(j))
            for flag, when in ((True, same), (False, c.not_(same))):
                ok, why = m.compat[(i, j, flag)]
                if not ok and when is not False:
                    out.append((self.incompatible(op, why), c.not_(c.and_(self.listed(j), when))))
        return out

    def drop_replaced(self, i: int) -> None:
        """The replaced patches are those before i on klp_patches in i's set (v2 2/4: the
        walks of klp_unpatch_replaced_patches and klp_free_replaced_patches_async skip the
        other sets); the patches left keep their order, their positions closing the gaps."""
        c, m = self.c, self.m
        (r_src, r_dst, _), = self.edges("replaced")
        at = self.pos(i)
        others = [q for q in range(m.n) if q != i]
        pos = {q: self.pos(q) for q in others}
        listed = {q: self.listed(q) for q in others}
        gone = {q: c.and_(c.eq(self.phase(q), r_src), c.lt(pos[q], at), self.replaces(i, q)) for q in others}
        for q in others:
            for _ in c.when(gone[q]):
                c.event(E.Replaced(m.P[q].name, Edge(r_src, r_dst, "replaced")))
                c.set(self.v.phase[q], r_dst)
                self.leave_list([q])
            shift = c.count(c.and_(gone[r], c.lt(pos[r], pos[q])) for r in others if r != q)
            for _ in c.when(c.and_(listed[q], c.not_(gone[q]))):
                c.set(self.v.pos[q], c.sub(pos[q], shift))
        c.set(self.v.pos[i], c.sub(at, c.count(gone[q] for q in others)))

    def force_marks(self, i: int, marks: str) -> Val:
        """v2 2/4: patching, every other patch of the transition patch's set is marked."""
        if marks != "if-same-set":
            return super().force_marks(i, marks)
        c = self.c
        return c.or_(*(c.and_(c.eq(self.phase(q), PATCHING), self.replaces(q, i)) for q in range(self.m.n) if q != i))

    def sysfs_read(self, patch: str, rel: str) -> str | None:
        """replace_set: `%u` of klp_patch.replace_set (§B.6); no replace, no stack_order."""
        i = self._index(patch)
        if rel == "replace_set":
            return str(self.set_of(i)) if self.listed(i) else None
        return super().sysfs_read(patch, rel)


_NO_VERSION_NO_DATA = ("version-order", "no-use-after-free", "no-double-free", "no-null-deref", "no-leak")


# What the per-state callbacks series v1 runs on each lifecycle edge (proposals.md §A.4): the
# `states` attribute lists the state callbacks (the patch's own, or "replaced ...": those of the
# patches a cumulative patch replaces), which StateCallbacks' hooks read; `refused` names the
# rule that refuses the edge's action. The object `callbacks` stay mainline's: under this
# profile they only patch the objects and print the module lines (19/19: no per-object callbacks).
_SC_STATES: dict[tuple[int, int, str], tuple[tuple[str, ...], str]] = {
    (UNLOADED, PATCHING, "load"): (("pre_patch", "replaced pre_unpatch"),
        "§A.4.2: compatible (block_disable, §A.4.2 step 2); pre_patch of the states no other listed patch has, "
        "then for a cumulative patch the replaced patches' pre_unpatch of the states it drops; then the objects"),
    (UNLOADED, UNLOADED, "load-failed"): (("replaced post_patch", "post_unpatch", "shadow_dtor"),
        "§A.4.2 step 5, §A.4.3: klp_cancel_transition: the replaced patches' post_patch again (if their "
        "pre_unpatch ran), post_unpatch of the states whose pre_patch succeeded, the is_shadow states' shadow_dtor"),
    (PATCHING, ENABLED, "complete"): (("replaced post_unpatch", "replaced shadow_dtor", "post_patch"),
        "§A.4.3 PATCHED: the replaced patches' post_unpatch and shadow_dtor of the states it drops, then "
        "post_patch of the states no other listed patch has. Not while a task sleeps in a function being "
        "patched (§11), unless force switched it"),
    (UNPATCHING, OFFLIST, "complete"): (("replaced post_patch", "post_unpatch", "shadow_dtor"),
        "§A.4.3 UNPATCHED: the replaced patches' post_patch again (a reversed cumulative load), post_unpatch "
        "of the states no other listed patch has, then klp_shadow_free_all with the is_shadow state's shadow_dtor"),
    (PATCHING, UNPATCHING, "reverse"): ((),
        "§A.4.5: no callbacks at reversal; echo 0 > enabled is refused while the patch has a block_disable state (§A.4.4)"),
    (UNPATCHING, PATCHING, "reverse"): ((), "§A.4.5: no callbacks at reversal"),
    (ENABLED, UNPATCHING, "disable"): (("pre_unpatch",),
        "§A.4.4: refused while the patch has a block_disable state; pre_unpatch of the states no other listed patch has"),
    (ENABLED, OFFLIST, "replaced"): ((),
        "§A.4.8: a cumulative patch completed; its pre_unpatch and post_unpatch of the dropped states ran on the "
        "cumulative patch's load and completion edges"),
}
_SC_REFUSED = {(PATCHING, UNPATCHING, "reverse"), (ENABLED, UNPATCHING, "disable")}   # by block_disable (§A.4.4)


def _state_callback_edge(e: tuple[Any, ...]) -> tuple[Any, ...]:
    src, dst, event, cbs, note, *rest = e
    attrs = tuple(rest[0]) if rest else ()
    states, note = _SC_STATES.get((src, dst, event), ((), note if event == "force" else
                                                      f"§A.4.7: no state callback at module events; {note}"))
    attrs += (("states", states),) + ((("refused", "block_disable"),) if (src, dst, event) in _SC_REFUSED else ())
    return (src, dst, event, cbs, note, attrs)


_STATE_CALLBACK_EDGES = tuple(_state_callback_edge(e) for e in _EDGES)


class StateCallbacks(Mainline):
    """Petr Mladek's "Better integrate callbacks and shadow variables with the states API", v1
    (15 Jan 2025, not merged; proposals.md Part A, semantics §A.4): the callbacks belong to a
    state (`[states.S]` pre_patch, post_patch, pre_unpatch, post_unpatch, shadow_dtor) and run
    only when the state is introduced or removed, i.e. when no other patch on klp_patches
    declares its id (`in_other`, §A.4.1); a cumulative patch runs the replaced patches'
    pre_unpatch/post_unpatch of the states it drops (§A.4.8) and, when its transition is
    reversed or cancelled, their post_patch again (§A.4.3); `block_disable` refuses a disable
    and a reversal of the patching transition (§A.4.4) and makes a cumulative patch that
    drops the state incompatible (§A.4.2); an `is_shadow` state frees the shadow variables of
    its id with its shadow_dtor after its post_unpatch (§A.4.3). No version (compatibility is
    block_disable only), no data (04/19, 05/19), no per-object callbacks (19/19)."""

    name = "state-callbacks"
    summary = ("per-state callbacks, block_disable and is_shadow (Petr Mladek's v1, Jan 2025, not merged): "
               "no version, no data, no per-object callbacks")
    STATE_CALLBACKS = True
    EDGES = _STATE_CALLBACK_EDGES
    NOT_APPLICABLE = ("v1 has no klp_state.version (04/19) and no klp_state.data (05/19): nothing to order, "
                      "no data blocks to free, dereference or leak")
    # version-order and the data properties are not applicable: v1 has no version, no data
    PROPERTIES = tuple(p for p in properties.PROPERTIES if p.name not in _NO_VERSION_NO_DATA)
    EXTRA = tuple(p for p in properties.EXTRA if p.name not in _NO_VERSION_NO_DATA)
    DATA_ACTIONS = ("alloc", "free", "save", "restore", "take", "copy", "free-prev")

    @classmethod
    def refuse(cls, spec: Spec) -> None:
        """What v1 removed: per-object callbacks (19/19), klp_state.data (05/19: the data
        statements), klp_state.version (04/19: `prev S cmp N`; two versions of one state)."""
        where = f"kernel profile '{cls.name}' (v1 of the per-state callbacks series)"
        for p in spec.patches:
            for key, line in p.written:
                if key == "replace_set":
                    raise UserError(f"patch '{p.name}': replace_set is a key of kernel = \"replace-set\", not of "
                                    f"{where}; remove it", path=spec.path, line=line)
            for o in p.objects:
                for cb, stmts in o.callbacks:
                    line = stmts[0].line if stmts else o.line
                    raise UserError(f"patch '{p.name}': {where} has no per-object callbacks (19/19 removes "
                                    f"them); move the {cb} statements of object '{o.name}' to [states.S] {cb}",
                                    path=spec.path, line=line)
        for s in spec.states:
            versions = {v for p in spec.patches for t, v in p.states if t == s.name}
            if len(versions) > 1:
                p = next(p for p in spec.patches if p.version(s.name) == max(versions))
                raise UserError(f"patch '{p.name}': state '{s.name}' has versions {sorted(versions)} in this spec; "
                                f"{where} has no klp_state.version (04/19 removed it; block_disable decides "
                                f"compatibility): give the state one version in every patch, e.g. {s.name} = 1",
                                path=spec.path, line=p.line)
        for d in spec.states:                    # a parameter a state callback reads: in every patch running it
            for _, sts in d.callbacks:
                for st in sts:
                    name = st.arg if st.action == "fail" and st.errno is None else \
                        (st.cond.state if st.cond is not None and st.cond.param else None)
                    for p in spec.patches:
                        if name is not None and p.version(d.name) is not None and name not in dict(p.params):
                            raise UserError(f"'{st.text}' of state '{d.name}' reads parameter '{name}', which patch "
                                            f"'{p.name}' (it declares the state) does not have; add it to its params",
                                            path=spec.path, line=st.line)
        for d in spec.states:                    # a shadow variable a state callback names: listed (with
            for _, sts in d.callbacks:           # its layout) by every patch running it (else the model
                for st in sts:                   # has no layout to give it)
                    sv = st.cond.state if st.cond is not None and st.cond.shadow is not None else None
                    for name in {st.arg if st.action.startswith("shadow-") or st.action in ("get", "put") else None, sv}:
                        for p in spec.patches:
                            if name is not None and p.version(d.name) is not None and name not in dict(p.shadows):
                                raise UserError(f"'{st.text}' of state '{d.name}' names shadow variable '{name}', "
                                                f"which patch '{p.name}' (it declares the state) does not list; add "
                                                f"it to its shadows with its layout", path=spec.path, line=st.line)
        every = [st for p in spec.patches for f in p.module_funcs() for st in p.module_func(f)]
        every += [st for d in spec.states for _, sts in d.callbacks for st in sts]
        for st in every:
            if st.action in cls.DATA_ACTIONS:
                raise UserError(f"'{st.text}': {where} has no klp_state.data (05/19 removed it; shadow variables "
                                f"keep a state's data): use shadow-alloc/shadow-get and an is_shadow state",
                                path=spec.path, line=st.line)
            if st.cond is not None and st.cond.cmp is not None and not st.cond.param and st.cond.shadow is None:
                raise UserError(f"'{st.text}': {where} has no klp_state.version to compare (04/19 removed it); "
                                f"write 'if prev {st.cond.state}'", path=spec.path, line=st.line)

    @classmethod
    def compatible_in(cls, spec: Spec, new: Patch, old: Patch, flag: bool) -> tuple[bool, Incompatible | None]:
        """§A.4.2 step 2 (v1 04/19): a non-replace patch is always compatible; a replace patch
        is not when installed `old` has a block_disable state that `new` lacks (no versions)."""
        if not flag:
            return True, None
        for d in spec.states:
            if d.block_disable and old.version(d.name) is not None and new.version(d.name) is None:
                return False, Incompatible(f"cumulative {new.name} does not declare state {d.name} of installed "
                                           f"{old.name}, which has block_disable", new.name, old.name,
                                           "undeclared-block-disable", d.name, None, old.version(d.name) or 0)
        return True, None

    # ---- what the module's init set in the klp_state array from a parameter (issue 15)
    def declares(self, i: int, s: str) -> Val:
        """Patch i's loaded instance has state s: declared, and not dropped by no_states_param."""
        if self.m.P[i].version(s) is None:
            return False
        name = self.v.nostate.get(i)
        return True if name is None else self.c.not_(self.c.get(name))

    def bd_of(self, i: int, d: StateDecl) -> Val:
        """block_disable of state d in patch i's loaded instance (its block_disable_param, else the spec's)."""
        name = self.v.bd[i].get(d.name)
        return d.block_disable if name is None else self.c.get(name)

    def block_disable(self, i: int) -> Val:
        c = self.c
        return c.or_(*(c.and_(self.bd_of(i, d), self.declares(i, d.name)) for d in self.states_of(i)))

    def init_states(self, i: int) -> None:
        """The module's init builds its klp_state array from its parameters (test_klp_state.c:
        states[0].block_disable = state_block_disable; patch.states = NULL if no_state)."""
        c, p, v = self.c, self.m.P[i], self.v
        if i in v.nostate:
            c.set(v.nostate[i], c.ne(c.get(f"param[{p.name}.{p.no_states_param}]"), 0))
        for s, prm in p.block_disable_param:
            c.set(v.bd[i][s], c.ne(c.get(f"param[{p.name}.{prm}]"), 0))

    def compat_checks(self, i: int, op: Op) -> list[tuple[Refusal, Val]]:
        """§A.4.2 step 2 with the installed patches' instances: a replace patch is refused when
        an installed patch has a block_disable state (its instance's) that the new instance
        lacks (not declared, or dropped by its no_states_param given at insmod)."""
        c, m = self.c, self.m
        if not any(q.no_states_param or q.block_disable_param for q in m.P):
            return super().compat_checks(i, op)
        p = m.P[i]
        if not self.load_replace(i, op):
            return []
        given = dict(p.params) | dict(op.params or ())
        dropped = p.no_states_param is not None and given[p.no_states_param] != 0
        out = []
        for j in range(m.n):
            for d in self.states_of(j) if j != i else ():
                if p.version(d.name) is not None and not dropped:
                    continue
                refused = c.and_(self.listed(j), self.bd_of(j, d), self.declares(j, d.name))
                if refused is False:
                    continue
                why = Incompatible(f"cumulative {p.name} does not declare state {d.name} of installed "
                                   f"{m.P[j].name}, which has block_disable", p.name, m.P[j].name,
                                   "undeclared-block-disable", d.name, None, m.P[j].version(d.name) or 0)
                out.append((self.incompatible(op, why), c.not_(refused)))
        return out

    def checks(self, op: Op) -> list[tuple[Refusal, Val]]:
        """§A.4.4 (v1 04/19): enabled_store refuses writing 0 while patch->enabled (patching or
        enabled) when one of its states has block_disable, before the reversal branch: a
        disable, and so a reversal of its patching transition, is -EINVAL."""
        out = super().checks(op)
        c = self.c
        def refused(event: str) -> list[int]:        # the phases whose `event` edge block_disable refuses
            return [src for src, dst, _ in self.edges(event) if self.edge(src, dst, event).get("refused") == "block_disable"]
        # echo 0 > enabled: a disable, or during the patch's own patching transition a reversal
        if op.word == "disable" and self.block_disable(self._index(op.target)) is not False:
            bd = self.block_disable(self._index(op.target))
            why = Refusal(f"-EINVAL: {op.target} has a block_disable state", -22,
                          f"livepatch: The livepatch '{op.target}' does not support disable")
            ph = self.phase(self._index(op.target))
            out.insert(1, (why, c.not_(c.and_(bd, c.or_(*(c.eq(ph, r) for r in refused("disable") + refused("reverse")))))))
        if op.word == "reverse":
            for i in range(self.m.n):
                bd = self.block_disable(i)
                if bd is not False:
                    why = Refusal(f"-EINVAL: {self.m.P[i].name} has a block_disable state", -22,
                                  f"livepatch: The livepatch '{self.m.P[i].name}' does not support disable")
                    out.append((why, c.not_(c.and_(bd, c.or_(*(c.eq(self.phase(i), r) for r in refused("reverse")))))))
        return out

    def callback(self, i: int, oi: int, cb: str) -> Val:
        """19/19: no per-object callbacks (the spec has none): only mainline's §8 flag
        bookkeeping, and no callback event for a report to show."""
        c, flag = self.c, self.v.pue[i][oi]
        c.set(flag, cb == "pre_patch" or (cb != "post_unpatch" and c.get(flag)))
        return True

    # ---- the per-state callbacks
    def in_other(self, i: int, s: str) -> Val:
        """is_state_in_other_patches() (§A.4.1): another patch on klp_patches declares s's id."""
        return self.c.or_(*(self.c.and_(self.listed(q), self.declares(q, s)) for q in self.m.decl[s] if q != i))

    def introduces(self, i: int, s: str) -> Val:
        """Patch i's instance has state s and no other listed patch has it: its callbacks run."""
        return self.c.and_(self.declares(i, s), self.c.not_(self.in_other(i, s)))

    def states_of(self, i: int) -> list[StateDecl]:
        """Patch i's struct klp_state array, in its order (the patch's `states`, file order):
        klp_for_each_state walks patch->states (D30)."""
        decl = {d.name: d for d in self.m.spec.states}
        return [decl[name] for name, _ in self.m.P[i].states]

    def state_cb(self, i: int, d: StateDecl, cb: str) -> Val:
        """One state callback of patch i; returns 'it failed' (pre_patch only)."""
        c = self.c
        obj = Obj(f"{E.STATE_OBJ}{d.id}", (), d.line)
        c.event(E.StateCallback(self.m.P[i].name, d.name, cb, obj.name))
        return self.body(i, obj, cb, d.cb(cb), cb == "pre_patch")

    def states_run(self, edge: tuple[int, int, str]) -> tuple[str, ...]:
        """The per-state callbacks the lifecycle edge runs (its `states`, in order)."""
        return tuple(self.edge(*edge)["states"])

    def states_pre_patch(self, i: int) -> Val:
        """§A.4.2 step 4.iv: klp_states_pre_patch (array order; stop at the first failure; the
        flag set also for states another patch has); 4.v: for a replace patch,
        klp_states_pre_unpatch_replaced (every other listed patch, list order). What runs is
        the load edge's `states`."""
        c, v = self.c, self.v
        run_cbs = self.states_run((UNLOADED, PATCHING, "load"))
        self.init_states(i)                          # (the module's init built its klp_state array)
        for s in v.pps[i]:
            c.set(v.pps[i][s], False)                # a new instance of the module's klp_state array
        failed: Val = False
        for d in self.states_of(i) if "pre_patch" in run_cbs else ():
            f: Val = False
            run = c.and_(c.not_(failed), self.introduces(i, d.name))
            for _ in c.when(run):
                f = self.state_cb(i, d, "pre_patch")
            f = c.and_(run, f)                       # (symbolically the body ran on every path)
            for _ in c.when(c.and_(c.not_(failed), c.not_(f), self.declares(i, d.name))):
                c.set(v.pps[i][d.name], True)
            failed = c.or_(failed, f)
        if "replaced pre_unpatch" in run_cbs:
            for _ in c.when(c.and_(c.not_(failed), self.replace_of(i))):
                self.replaced_walk(i, "pre_unpatch")
                c.set("replaced_called", True)
        return failed

    def replaced_walk(self, i: int, cb: str, dtor: bool = True) -> None:
        """klp_states_{pre_unpatch,post_unpatch,post_patch}(old) for every other listed patch,
        in klp_patches order (§A.4.2 4.v, §A.4.3)."""
        c, m = self.c, self.m
        others = [q for q in range(m.n) if q != i]
        for k in range(m.n):                         # positions 0..n-1: list order
            for q in others:
                for _ in c.when(c.and_(self.listed(q), c.eq(self.pos(q), k))):
                    if cb == "post_unpatch":
                        self.states_post_unpatch(q, dtor)
                    else:
                        for d in self.states_of(q):
                            for _ in c.when(self.introduces(q, d.name)):
                                self.state_cb(q, d, cb)

    def states_post_unpatch(self, i: int, dtor: bool = True) -> None:
        """klp_states_post_unpatch (§A.4.3 UNPATCHED 3): post_unpatch of each state not in
        another patch whose pre_patch succeeded, then for an is_shadow state
        klp_shadow_free_all(id, shadow_dtor) (`dtor`: the edge lists shadow_dtor), then the
        flag cleared."""
        c, m, v = self.c, self.m, self.v
        for d in self.states_of(i):
            flag = v.pps[i][d.name]
            for _ in c.when(c.and_(self.introduces(i, d.name), c.get(flag))):
                self.state_cb(i, d, "post_unpatch")
                if d.is_shadow and dtor:
                    c.event(E.ShadowFreeAll(m.P[i].name, d.name))
                    for sv in m.spec.shadows:
                        if sv.id != d.id:
                            continue
                        for key in m.pairs[sv.name]:     # (issue 14: every pair of the id)
                            had = c.get(v.shadow[key])
                            self.drop_shadow(key)        # klp_shadow_free_struct: hash_del_rcu, then
                            for _ in c.when(had):        # dtor(obj, data): once per variable, off the hash (D32)
                                self.state_cb(i, d, "shadow_dtor") if d.cb("shadow_dtor") else None
                c.set(flag, False)

    def states_patched(self, i: int, edge: tuple[int, int, str]) -> None:
        """§A.4.3 PATCHED: for a replace patch klp_states_post_unpatch_replaced (the flag reset),
        then klp_states_post_patch of the new patch (states not in another patch), as the
        completion edge's `states` list them."""
        c, run_cbs = self.c, self.states_run(edge)
        if "replaced post_unpatch" in run_cbs:
            for _ in c.when(self.replace_of(i)):
                self.replaced_walk(i, "post_unpatch", "replaced shadow_dtor" in run_cbs)
                c.set("replaced_called", False)
        for d in self.states_of(i) if "post_patch" in run_cbs else ():
            for _ in c.when(self.introduces(i, d.name)):
                self.state_cb(i, d, "post_patch")

    def states_unpatched(self, i: int, edge: tuple[int, int, str]) -> None:
        """§A.4.3 UNPATCHED (disable, reversal, cancel): klp_states_post_patch_replaced (only
        with the flag set: the replaced patches' obsolete states get post_patch again), then
        klp_states_post_unpatch of the patch, as the edge's `states` list them."""
        c, run_cbs = self.c, self.states_run(edge)
        if "replaced post_patch" in run_cbs:
            for _ in c.when(c.and_(self.replace_of(i), c.get("replaced_called"))):
                self.replaced_walk(i, "post_patch")
                c.set("replaced_called", False)
        if "post_unpatch" in run_cbs:
            self.states_post_unpatch(i, "shadow_dtor" in run_cbs)

    def states_pre_unpatch(self, i: int) -> None:
        """§A.4.4 step 4: klp_states_pre_unpatch (states not in another patch), if the disable
        edge lists it."""
        c = self.c
        for d in self.states_of(i) if "pre_unpatch" in self.states_run((ENABLED, UNPATCHING, "disable")) else ():
            for _ in c.when(self.introduces(i, d.name)):
                self.state_cb(i, d, "pre_unpatch")


PROFILES: dict[str, type[Mainline]] = {p.name: p for p in (Mainline, Linux55, StateCallbacks, ReplaceSet)}
