"""Shadow variables (kernel/livepatch/shadow.c, semantics §14) and the livepatch module's own
functions, as docs/spec-format.md ("Shadow variables and the livepatch module's init/exit",
"Named parent objects") and docs/properties.md ("Shadow variables and shared state") describe
them (issue 14).

The kernel keeps one hash of (object, id) pairs: `k.shadows`, (object, id) -> the variable
({"count", "layout", "data"}), where the object is a named object of the spec's [objects]
or None, the documented abstract parent object of a variable whose statements name none;
`k.stale`: the ids whose entries on freed (abstract) objects may still be in the hash.
Nothing here links a variable to a patch: the kernel does not either.

A target module's own init/init_error/exit may call the API too (test_klp_shadow_vars.c):
`echo` below prints its calls as that module's wrapper functions do, with its ptr_id()
numbering (lib/livepatch/test_klp_shadow_vars.c), and `or fail` / `expect` are its
`if (!sv) goto out` and its "got expected" checks.
"""
from __future__ import annotations

WARN_DUP = "Duplicate shadow variable <$OBJ, {id:x}>"
CTOR_FAILED = "livepatch: Failed to construct shadow variable <$OBJ, {id:x}> ({ret})"


def sv_id(k, name: str) -> int:
    return next(s.id for s in k.spec.shadows if s.name == name)


def layout(owner_spec, name: str) -> str:
    return dict(owner_spec.shadows)[name]


def count_top(k) -> int:
    """The documented saturation of a count: one more than the number of patches (and of
    the target modules whose functions take a reference)."""
    takers = sum(any(st.action == "get" for st in (*m.init, *m.init_error, *m.exit)) for m in k.spec.modules)
    return len(k.spec.patches) + 1 + takers


def _new(k, owner_spec, name: str) -> dict:
    """A new variable: kzalloc'ed data (a new pointer, k.data_seq numbers them)."""
    k.data_seq += 1
    return {"count": 0, "layout": layout(owner_spec, name), "data": k.data_seq}


def _touch(k, owner_spec, name: str, obj, why: str) -> None:
    """shadow-layout: the caller's layout against the one of the variable's creator."""
    var = k.shadows.get((obj, sv_id(k, name)))
    if var is not None and var["layout"] != layout(owner_spec, name):
        k.mon.violate("shadow-layout", f"{owner_spec.name} {why} {name} of layout {var['layout']}")


def klp_shadow_get(k, name: str, obj=None):
    return k.shadows.get((obj, sv_id(k, name)))


def klp_shadow_alloc(k, owner_spec, name: str, obj=None, fresh: bool = False, ctor=None):
    """<obj, id>; `fresh`: on an object the code has just created, which has no variable
    unless it reuses the address of a freed object whose entry stayed. `ctor(var)` runs
    under the lock for a new variable (it cannot fail here)."""
    i = sv_id(k, name)
    if (i in k.stale) if fresh else ((obj, i) in k.shadows):
        k.pr(WARN_DUP.format(id=i))
        k.mon.violate("shadow-duplicate", f"klp_shadow_alloc({name}) of an existing pair")
        if fresh and (obj, i) not in k.shadows:      # the new object got the freed one's address:
            k.shadows[(obj, i)] = _new(k, owner_spec, name)      # it carries that entry
        return None
    if (obj, i) not in k.shadows:
        var = _new(k, owner_spec, name)
        if ctor is not None:
            ctor(var)
        k.shadows[(obj, i)] = var
    return k.shadows[(obj, i)]


def klp_shadow_get_or_alloc(k, owner_spec, name: str, ctor_fails: bool, ret: int, obj=None, ctor=None):
    i = sv_id(k, name)
    if (obj, i) in k.shadows:
        return k.shadows[(obj, i)]
    if ctor_fails:                                   # the buffer is freed again, NULL
        k.pr(CTOR_FAILED.format(id=i, ret=ret))
        return None
    var = _new(k, owner_spec, name)
    if ctor is not None:
        ctor(var)
    k.shadows[(obj, i)] = var
    return var


def klp_shadow_free(k, name: str, obj=None, dtor=None) -> None:
    var = k.shadows.pop((obj, sv_id(k, name)), None)
    if var is not None and dtor is not None:
        dtor(obj, var)


def klp_shadow_free_all(k, name: str, dtor=None) -> None:
    i = sv_id(k, name)
    for key in [key for key in k.shadows if key[1] == i]:     # every object with this id
        var = k.shadows.pop(key)
        if dtor is not None:
            dtor(key[0], var)
    k.stale.discard(i)                               # also the entries of freed objects


def klp_shadow_free_all_id(k, i: int, dtor=None) -> None:
    """shadow.c klp_shadow_free_all(id, dtor), as v1 02/19 calls it for an is_shadow state:
    under klp_shadow_lock every <obj, id> entry is taken off the hash (klp_shadow_free_struct:
    hash_del_rcu, then dtor(obj, data)), so the dtor runs once per variable and no longer
    finds it. Here: the variables of that id, on every object (the dtor once per variable);
    the stale entries go too, without a dtor call (the abstraction only says they may be there)."""
    for key in [key for key in k.shadows if key[1] == i]:
        k.shadows.pop(key)
        if dtor is not None:
            dtor()
    k.stale.discard(i)


def on_named_objects(spec, name: str) -> bool:
    """Its statements name objects (`on OBJ`): `uses` is then judged at each get only."""
    return bool(spec.objects) and any(st.obj is not None for st in all_statements(spec) if st.arg == name)


def all_statements(spec):
    for p in spec.patches:
        for o in p.objects:
            for _, stmts in o.callbacks:
                yield from stmts
        for f in p.module_funcs():
            yield from p.module_func(f)
    for m in spec.modules:
        yield from (*m.init, *m.init_error, *m.exit)


class Echo:
    """test_klp_shadow_vars.c's wrapper functions around one run of the module's init (or
    exit): they print every call with ptr_id() numbers (PTR0 is NULL, the others numbered at
    their first print), pass shadow_ctor with the object's own field as ctor_data, and keep
    the data each pair first returned (sv1[i], sv2[i]) for their checks."""

    def __init__(self, k, module_spec):
        self.k, self.m = k, module_spec.name
        self.ids: dict = {None: 0}              # ptr_id(NULL) first
        self.first: dict = {}

    def ptr(self, p) -> int:
        return self.ids.setdefault(p, len(self.ids))

    def pr(self, text: str) -> None:
        self.k.pr(f"{self.m}: {text}")

    def data(self, var):
        return None if var is None else ("data", var["data"])

    def ctor(self, name: str, obj):
        field = ("field", name, obj)

        def shadow_ctor(var):                   # *sv = *var; pr_info("%s: PTR%d -> PTR%d")
            var["field"] = field
            self.pr(f"shadow_ctor: PTR{self.ptr(self.data(var))} -> PTR{self.ptr(field)}")
        return shadow_ctor

    def dtor(self, obj, var) -> None:           # shadow_dtor(obj, shadow_data)
        o = self.ptr(("obj", obj))
        self.pr(f"shadow_dtor(obj=PTR{o}, shadow_data=PTR{self.ptr(self.data(var))})")


def statement(k, patch_spec, where: str, index: int, st, echo: Echo | None = None) -> int | None:
    """One shadow statement of `patch_spec` (a patch, or a target module: `where` is then
    ("module NAME", FUNC)) run in `where` (a callback, init/init_error/exit, or a function of
    its code). Returns an error to return from the function, or None."""
    name, a, obj = st.arg, st.action, st.obj
    sid = sv_id(k, name) if name else 0
    if a != "shadow-free-all":
        _touch(k, patch_spec, name, obj, "touches")
    if a in ("shadow-alloc", "shadow-get", "shadow-get-or-alloc") and echo is not None:
        field = ("field", name, obj)
        if a != "shadow-get":
            echo.ptr(field)                      # ptr_id(pnfields[i]) before the call
        ctor = echo.ctor(name, obj) if a != "shadow-get" else None
        if a == "shadow-get":
            var = klp_shadow_get(k, name, obj)
            o = echo.ptr(("obj", obj))
            echo.pr(f"klp_shadow_get(obj=PTR{o}, id=0x{sid:x}) = PTR{echo.ptr(echo.data(var))}")
        else:
            var = (klp_shadow_alloc(k, patch_spec, name, obj, ctor=ctor) if a == "shadow-alloc" else
                   klp_shadow_get_or_alloc(k, patch_spec, name, False, 0, obj, ctor=ctor))
            o, c, f = echo.ptr(("obj", obj)), echo.ptr("shadow_ctor"), echo.ptr(field)
            echo.pr(f"klp_{a.replace('-', '_')}(obj=PTR{o}, id=0x{sid:x}, size=8, gfp_flags=GFP_KERNEL), ctor=PTR{c}, "
                    f"ctor_data=PTR{f} = PTR{echo.ptr(echo.data(var))}")
        if var is not None:
            echo.first.setdefault((obj, sid), var["data"])
        if var is None and st.or_fail is not None:          # if (!sv) { ret = ...; goto out; }
            return st.or_fail
        if st.expect == "null" and var is None:
            echo.pr("  got expected NULL result")
        elif st.expect == "data" and var is not None and echo.first[(obj, sid)] == var["data"] \
                and var.get("field") == field:
            echo.pr(f"  got expected PTR{echo.ptr(echo.data(var))} -> PTR{echo.ptr(field)} result")
        return None
    if a in ("shadow-free", "shadow-free-all") and echo is not None:
        dtor = echo.dtor if st.dtor else None
        if a == "shadow-free":
            klp_shadow_free(k, name, obj, dtor)
            echo.pr(f"klp_shadow_free(obj=PTR{echo.ptr(('obj', obj))}, id=0x{sid:x}, "
                    f"dtor=PTR{echo.ptr('shadow_dtor' if st.dtor else None)})")
        else:
            klp_shadow_free_all(k, name, dtor)
            echo.pr(f"klp_shadow_free_all(id=0x{sid:x}, dtor=PTR{echo.ptr('shadow_dtor' if st.dtor else None)})")
        return None
    if a == "shadow-alloc":
        var = klp_shadow_alloc(k, patch_spec, name, obj, fresh=st.fresh)
    elif a == "shadow-get":
        var = klp_shadow_get(k, name, obj)
        if var is None and name in getattr(patch_spec, "shadow_uses", ()):
            k.mon.violate("shadow-use-after-free", f"klp_shadow_get({name}) is NULL in {patch_spec.name}")
    elif a == "shadow-free":
        klp_shadow_free(k, name, obj)
    elif a == "shadow-free-all":
        klp_shadow_free_all(k, name)
    elif a in ("shadow-get-or-alloc", "get"):
        fails = False
        if st.errno is not None and klp_shadow_get(k, name, obj) is None:     # the ctor runs
            fails = k.choose((patch_spec.name, where[0], where[1], index))
        var = klp_shadow_get_or_alloc(k, patch_spec, name, fails, st.errno, obj)
        if var is None:
            return st.errno if where[1] in ("pre_patch", "init") else None
        if a == "get":
            var["count"] = min(var["count"] + 1, count_top(k))
    elif a == "put":
        var = klp_shadow_get(k, name, obj)
        if var is None:
            k.mon.violate("shadow-use-after-free", f"put of a missing {name}")
            return None
        var["count"] = max(var["count"] - 1, 0)
        if var["count"] == 0:
            klp_shadow_free(k, name, obj)
    else:
        raise AssertionError(a)
    if a in ("shadow-alloc", "shadow-get", "shadow-get-or-alloc") and st.or_fail is not None and var is None:
        return st.or_fail
    return None


def module_going(k, module: str) -> None:
    """A target module's objects are freed (its abstract parent objects, the named objects
    it owns): the variables attached to them stay in the hash (shadow-orphan); the model
    then forgets them."""
    owners = dict(k.spec.objects)
    for s in k.spec.shadows:
        for obj, i in [key for key in k.shadows if key[1] == s.id]:
            if (s.parent if obj is None else owners[obj]) == module:
                k.mon.violate("shadow-orphan", f"{module} unloaded with {s.name} on its objects")
                del k.shadows[(obj, i)]


def operation_done(k) -> None:
    """After every operation: a variable no loaded livepatch module (nor target module) lists
    can be freed by nothing (shadow-leak), and its objects may die with it in the hash (stale)."""
    for s in k.spec.shadows:
        pairs = [key for key in k.shadows if key[1] == s.id]
        if not pairs:
            continue
        owners = [p.name for p in k.spec.patches if s.name in dict(p.shadows)]
        owners += [m.name for m in k.spec.modules if s.name in dict(m.shadows)]
        if not any(k.modules[n].loaded for n in owners):
            k.mon.violate("shadow-leak", f"{s.name} left with no module to free it")
            if (None, s.id) in k.shadows and any(st.fresh and st.arg == s.name for p in k.spec.patches
                                                 for _, stmts in p.code for st in stmts):
                k.stale.add(s.id)
