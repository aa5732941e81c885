"""Operations on the reference kernel, as the differential test drives them.

An operation is a pair (word, arg) with the words of docs/spec-format.md ("load", "complete",
"reverse", "disable", "rmmod", "modload", "modunload", "force"), plus ("param",
"OWNER NAME VALUE") for a module parameter write. `outcomes` runs one from a state for
every assignment of the fallible points it reaches (the spec's `alloc`/`maybe-fail` in
pre_patch, the optional `patching` fault); an outcome is labelled by the set of keys that
failed: (patch, object, callback, index) with index the statement's position in the
callback, or (patch, object, "patching", 0).

The log of an operation is what the selftest scripts capture besides their own `% ...`
command line: the kernel's lines, the modules' lines, and the loader's error line of a
failed insmod (insmod era, 6.8+).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import callbacks, klp, shadow
from .monitors import Monitors

# what insmod prints for an errno (kmod's mod_strerror: -EINVAL is its special case; the
# rest is strerror)
_INSMOD = {-22: "Invalid parameters"}


def insmod_error(name: str, errno: int) -> str:
    text = _INSMOD.get(errno) or os.strerror(-errno)
    return f"insmod: ERROR: could not insert module test_modules/{name}.ko: {text}"


@dataclass
class Result:
    kernel: klp.Kernel | None          # None when refused
    refused: str | None                # the refusal's class
    log: list[str]
    violations: frozenset[str]
    failed: frozenset[tuple]           # the label: the fallible points that failed


class Reference:
    def __init__(self, spec, faults: bool = False):
        self.spec = spec
        self.faults = faults


    def initial(self) -> klp.Kernel:
        return klp.new_kernel(self.spec, self.faults, Monitors(self.spec))

    # ---- running operations
    def apply(self, k: klp.Kernel, op: tuple, choose) -> Result:
        k = klp.clone(k)
        k.log, k.refused, k.mon.found = [], None, set()
        consulted: dict = {}

        def oracle(key):
            if key in consulted:
                raise AssertionError(f"fallible point {key} reached twice in one operation")
            consulted[key] = bool(choose(key))
            return consulted[key]

        k.choose = oracle
        _operation(k, op)
        k.choose = None
        failed = frozenset(key for key, v in consulted.items() if v)
        if k.refused is not None:
            return Result(None, k.refused, k.log, frozenset(), failed)
        k.mon.operation_done(k)
        shadow.operation_done(k)
        return Result(k, None, k.log, frozenset(k.mon.found), failed)

    def refusal(self, k: klp.Kernel, op: tuple) -> tuple[str, list[str]] | None:
        r = self.apply(k, op, lambda key: False)
        return None if r.refused is None else (r.refused, r.log)

    def outcomes(self, k: klp.Kernel, op: tuple) -> list[Result]:
        """Every outcome: a depth-first walk over the fallible points in the order the run
        reaches them (as klpmodel's interp.outcomes walks its choices)."""
        out, todo = [], [{}]
        while todo:
            fixed = todo.pop()
            seen: dict = {}

            def choose(key, fixed=fixed, seen=seen):
                seen[key] = fixed.get(key, False)
                return seen[key]

            r = self.apply(k, op, choose)
            out.append(r)
            keys = list(seen)
            for n, key in enumerate(keys):
                if key not in fixed:
                    alt = {kk: seen[kk] for kk in keys[:n]}
                    alt[key] = True
                    todo.append(alt)
        return out

    # ---- what the differential test compares
    def abstract(self, k: klp.Kernel) -> dict:
        """List order, phases, forced flags, target modules, the data of installed patches
        (blocks numbered in order of first appearance, patches taken by name), values,
        post_unpatch_enabled of the installed patches' static objects."""
        canon: dict[int, int] = {}
        data = {}
        pue = {}
        for p in sorted(k.klp_patches, key=lambda p: p.name):
            for st in p.states:
                if st.data is None:
                    data[(p.name, st.name)] = None
                else:
                    n = canon.setdefault(st.data, len(canon))
                    live, content = k.blocks[st.data]
                    data[(p.name, st.name)] = (n, live, content if live else None)
            for obj in p.static_objs if not k.state_callbacks else ():   # v1 19/19: no struct klp_callbacks
                pue[(p.name, obj.label)] = obj.post_unpatch_enabled
        return {
            "list": tuple(p.name for p in k.klp_patches),
            "phase": {p.name: phase(k, p.name) for p in self.spec.patches},
            "forced": {p.name: bool(k.modules[p.name].patch and k.modules[p.name].patch.forced)
                       for p in self.spec.patches},
            "modules": {m.name: k.modules[m.name].loaded for m in self.spec.modules},
            "data": data,
            "values": dict(k.values),
            "pue": pue,
            "shadows": {(s.name, obj): (v["count"], v["layout"]) for (obj, i), v in k.shadows.items()
                        for s in self.spec.shadows if s.id == i},
            "stale": sorted(s.name for s in self.spec.shadows if s.id in k.stale),
        }

    def freeze(self, k: klp.Kernel) -> tuple:
        """The whole state, hashable, blocks renumbered in order of first appearance from
        the installed patches (the only pointers ever read again)."""
        canon: dict[int, int] = {}
        listed = []
        for p in k.klp_patches:
            listed.append(tuple(None if st.data is None else canon.setdefault(st.data, len(canon)) for st in p.states))
        blocks = [None] * len(canon)
        for raw, n in canon.items():
            blocks[n] = tuple(k.blocks[raw])
        unreachable = sum(1 for n, (live, _) in enumerate(k.blocks) if live and n not in canon)
        mods = []
        for name, mod in sorted(k.modules.items()):
            p = mod.patch
            pf = None if p is None else (p.enabled, p.forced, p.replace, tuple(
                (o.label, o.dynamic, o.mod, o.patched, o.post_unpatch_enabled, tuple(o.func_list)) for o in p.obj_list),
                tuple(st.pre_patch_succeeded for st in p.states))
            mods.append((name, mod.loaded, mod.klp_alive, mod.refcnt, mod.state,
                         tuple(sorted(mod.params.items())), pf,
                         None if mod.sleeping_in is None else mod.sleeping_in.name))
        return (tuple(p.name for p in k.klp_patches), tuple(listed), tuple(blocks), unreachable,
                None if k.klp_transition_patch is None else k.klp_transition_patch.name,
                k.klp_target_state, k.tasks_switched, tuple(mods),
                tuple(sorted(k.values.items())), k.mon.freeze(),
                tuple(sorted((obj or "", i, v["count"], v["layout"]) for (obj, i), v in k.shadows.items())),
                tuple(sorted(k.stale)), k.pre_unpatch_replaced_called)


def phase(k: klp.Kernel, name: str) -> str:
    mod = k.modules[name]
    if not mod.loaded:
        return "unloaded"
    p = mod.patch
    if p not in k.klp_patches:
        return "off-list"
    if p is k.klp_transition_patch:
        return "patching" if k.klp_target_state == klp.KLP_TRANSITION_PATCHED else "unpatching"
    return "enabled"


def _listed(k: klp.Kernel, name: str) -> klp.KlpPatch | None:
    """The patch behind /sys/kernel/livepatch/NAME: there from klp_init_patch() until the
    patch is freed (which the model does at once when it leaves klp_patches)."""
    p = k.modules[name].patch
    return p if p is not None and p in k.klp_patches else None


def _operation(k: klp.Kernel, op: tuple) -> None:
    word, arg, *params = op
    params = params[0] if params else None
    if word == "load":
        k.mon.load_begins(k)
        ret = klp.load_livepatch(k, arg, params)
        if k.refused is None and ret:
            k.pr(insmod_error(arg, ret))
            k.mon.load_failed(k)
        elif k.refused == "incompatible":
            k.pr(insmod_error(arg, ret))
    elif word == "complete":                       # klp_transition_work_fn()
        if k.klp_transition_patch is None:
            k.refuse("idle", 0)
        elif klp.klp_task_blocks(k):
            k.refuse("blocked", 0)
        else:
            klp.klp_try_complete_transition(k)
    elif word == "reverse":                        # the opposite value to the transition patch's `enabled`
        tp = k.klp_transition_patch
        if tp is None:
            k.refuse("idle", 0)
        else:
            klp.enabled_store(k, tp, not tp.enabled)
    elif word == "disable":
        p = _listed(k, arg)
        if p is None:                              # no sysfs directory (any more): classed -EINVAL
            k.refuse("EINVAL", klp.EINVAL)
        else:
            klp.enabled_store(k, p, False)
    elif word == "force":
        tp = k.klp_transition_patch
        if tp is None:
            k.refuse("EINVAL", klp.EINVAL)
        else:
            klp.force_store(k, tp, True)
    elif word == "rmmod":
        klp.unload_livepatch(k, arg)
    elif word == "modload":
        if not k.modules[arg].loaded:
            k.mon.module_event(k)
        ret = klp.load_target(k, arg, params)
        if k.refused is None and ret:
            k.pr(insmod_error(arg, ret))
    elif word == "modunload":
        if k.modules[arg].loaded:
            k.mon.module_event(k)
        klp.unload_target(k, arg)
    elif word == "param":
        owner, name, value = arg.split(" ")
        klp.param_store(k, owner, name, int(value))
    elif word == "call":                           # (issue 14) a task runs PATCH's new FUNC once
        name, func = arg.split(".")
        spec_patch = k.spec.patch(name)
        homes = [o.name for o in spec_patch.objects if func in o.funcs] or [o.name for o in spec_patch.objects]
        if _listed(k, name) is None:               # every task runs the old code again
            k.refuse("not listed", klp.EINVAL)
        elif not any(h == "vmlinux" or k.modules[h].loaded for h in homes):
            k.refuse("ENOENT", -2)
        elif not klp.klp_version_may_run(k, _listed(k, name), func):   # klp_ftrace_handler picks
            k.refuse("stacked", -3)                                     # another entry for every task
        else:
            callbacks.module_func(k, spec_patch, func)
    else:
        raise AssertionError(f"unknown operation {op}")
