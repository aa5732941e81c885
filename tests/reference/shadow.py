"""Shadow variables (kernel/livepatch/shadow.c, semantics §14) and the livepatch module's own
functions, as docs/spec-format.md ("Shadow variables and the livepatch module's init/exit")
and docs/properties.md ("Shadow variables and shared state") describe them (issue 14).

The kernel keeps one hash of (object, id) pairs. The documented abstraction has one parent
object per id, so the hash is `k.shadows`: id -> the variable on that object
({"count", "layout"}), and `k.stale`: the ids whose entries on freed objects may still be
in the hash. Nothing here links a variable to a patch: the kernel does not either.
"""
from __future__ import annotations

WARN_DUP = "Duplicate shadow variable <$OBJ, {id:x}>"
CTOR_FAILED = "livepatch: Failed to construct shadow variable <$OBJ, {id:x}> ({ret})"


def sv_id(k, name: str) -> int:
    return next(s.id for s in k.spec.shadows if s.name == name)


def layout(patch_spec, name: str) -> str:
    return dict(patch_spec.shadows)[name]


def count_top(k) -> int:
    """The documented saturation of a count: one more than the number of patches."""
    return len(k.spec.patches) + 1


def _touch(k, patch_spec, name: str, why: str) -> None:
    """shadow-layout: the caller's layout against the one of the variable's creator."""
    var = k.shadows.get(sv_id(k, name))
    if var is not None and var["layout"] != layout(patch_spec, name):
        k.mon.violate("shadow-layout", f"{patch_spec.name} {why} {name} of layout {var['layout']}")


def klp_shadow_get(k, name: str):
    return k.shadows.get(sv_id(k, name))


def klp_shadow_alloc(k, patch_spec, name: str, fresh: bool = False):
    """On the parent object; `fresh`: on an object the code has just created, which has no
    variable unless it reuses the address of a freed object whose entry stayed."""
    i = sv_id(k, name)
    if (i in k.stale) if fresh else (i in k.shadows):
        k.pr(WARN_DUP.format(id=i))
        k.mon.violate("shadow-duplicate", f"klp_shadow_alloc({name}) of an existing pair")
        if fresh and i not in k.shadows:         # the new object got the freed one's address:
            k.shadows[i] = {"count": 0, "layout": layout(patch_spec, name)}   # it carries that entry
        return None
    if i not in k.shadows:
        k.shadows[i] = {"count": 0, "layout": layout(patch_spec, name)}
    return k.shadows[i]


def klp_shadow_get_or_alloc(k, patch_spec, name: str, ctor_fails: bool, ret: int):
    i = sv_id(k, name)
    if i in k.shadows:
        return k.shadows[i]
    if ctor_fails:                                   # the buffer is freed again, NULL
        k.pr(CTOR_FAILED.format(id=i, ret=ret))
        return None
    k.shadows[i] = {"count": 0, "layout": layout(patch_spec, name)}
    return k.shadows[i]


def klp_shadow_free(k, name: str) -> None:
    k.shadows.pop(sv_id(k, name), None)


def klp_shadow_free_all(k, name: str) -> None:
    i = sv_id(k, name)
    k.shadows.pop(i, None)
    k.stale.discard(i)                               # also the entries of freed objects


def klp_shadow_free_all_id(k, i: int, dtor=None) -> None:
    """shadow.c klp_shadow_free_all(id, dtor), as v1 02/19 calls it for an is_shadow state:
    under klp_shadow_lock every <obj, id> entry is taken off the hash (klp_shadow_free_struct:
    hash_del_rcu, then dtor(obj, data)), so the dtor runs once per variable and no longer
    finds it. Here: the variable of that id, if any (the dtor once); the stale entries go too,
    without a dtor call (the abstraction only says they may be there)."""
    var = k.shadows.pop(i, None)
    k.stale.discard(i)
    if var is not None and dtor is not None:
        dtor()


def statement(k, patch_spec, where: str, index: int, st) -> int | None:
    """One shadow statement of `patch_spec` run in `where` (a callback, init/init_error/exit,
    or a function of its code). Returns an error to return from the callback, or None."""
    name, a = st.arg, st.action
    if a != "shadow-free-all":
        _touch(k, patch_spec, name, "touches")
    if a == "shadow-alloc":
        klp_shadow_alloc(k, patch_spec, name, fresh=st.fresh)
    elif a == "shadow-get":
        if klp_shadow_get(k, name) is None and name in patch_spec.shadow_uses:
            k.mon.violate("shadow-use-after-free", f"klp_shadow_get({name}) is NULL in {patch_spec.name}")
    elif a == "shadow-free":
        klp_shadow_free(k, name)
    elif a == "shadow-free-all":
        klp_shadow_free_all(k, name)
    elif a in ("shadow-get-or-alloc", "get"):
        fails = False
        if st.errno is not None and klp_shadow_get(k, name) is None:     # the ctor runs
            fails = k.choose((patch_spec.name, where[0], where[1], index))
        var = klp_shadow_get_or_alloc(k, patch_spec, name, fails, st.errno)
        if var is None:
            return st.errno if where[1] in ("pre_patch", "init") else None
        if a == "get":
            var["count"] = min(var["count"] + 1, count_top(k))
    elif a == "put":
        var = klp_shadow_get(k, name)
        if var is None:
            k.mon.violate("shadow-use-after-free", f"put of a missing {name}")
            return None
        var["count"] = max(var["count"] - 1, 0)
        if var["count"] == 0:
            klp_shadow_free(k, name)
    else:
        raise AssertionError(a)
    return None


def module_going(k, module: str) -> None:
    """A target module's objects are freed: the variables attached to them stay in the hash
    (shadow-orphan); the documented model then forgets them."""
    for s in k.spec.shadows:
        if s.parent == module and s.id in k.shadows:
            k.mon.violate("shadow-orphan", f"{module} unloaded with {s.name} on its objects")
            del k.shadows[s.id]


def operation_done(k) -> None:
    """After every operation: a variable no loaded livepatch module lists can be freed by
    nothing (shadow-leak), and its objects may die with it in the hash (stale)."""
    for s in k.spec.shadows:
        if s.id not in k.shadows:
            continue
        owners = [p.name for p in k.spec.patches if s.name in dict(p.shadows)]
        if not any(k.modules[n].loaded for n in owners):
            k.mon.violate("shadow-leak", f"{s.name} left with no module to free it")
            if any(st.fresh and st.arg == s.name for p in k.spec.patches for _, stmts in p.code for st in stmts):
                k.stale.add(s.id)
