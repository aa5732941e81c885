"""The kernel's livepatch core, mainline (Linux 5.18 .. 7.1), as plain Python.

One function per kernel function, with the kernel's name and in the kernel's order of
steps; the C function each one follows is named in its docstring (core.c, transition.c,
state.c, patch.c, core.h of torvalds/linux, and semantics.md's section). Globals of the
kernel (`klp_patches`, `klp_transition_patch`, `klp_target_state`) are fields of a
`Kernel`, passed first as `k`. The module loader and sysfs are reduced to what the
livepatch core sees of them (`load_livepatch`, `enabled_store`, ...).

What the model abstracts, and how:
- tasks: one flag, `k.tasks_switched` -- klp_force_transition() switched every task since
  the last klp_init_transition()/klp_start_transition(). Otherwise a task of a target
  module that `sleeps` in a function is in the version of it that was on top of the
  function's func_stack for a switched task when it went to sleep (`Module.sleeping_in`),
  and klp_check_stack() finds that version on its stack when the transition needs it to
  leave it: the previous function of the transition patch's (patching), or the transition
  patch's own (unpatching) (docs/spec-format.md, `sleeps`; proposals.md §A.6.1.5). Every
  other task switches at the next attempt.
- the first completion attempt inside klp_enable_patch/__klp_disable_patch is taken as
  unsuccessful: completing right there is the same as the `complete` step following at
  once, which the search explores anyway.
- which version of a function a task runs (klp_ftrace_handler): every function is its object
  and its name (klp_find_ops matches old_func); `k.klp_ops` holds each registered function's
  func_stack, pushed and popped where klp_patch_func/klp_unpatch_func do; a function of a
  patch's `code` that no object lists in `funcs` is on no ftrace stack here and is taken as
  that patch's alone (`klp_version_may_run`).
- freeing is synchronous: klp_free_patch_finish() runs right after klp_free_patch_start()
  (the model's `rmmod` is possible as soon as the patch is off the list and not forced).
- patching an object (klp_patch_object) can fail when the spec enables the `patching`
  fault; it then fails as the kprobe selftest shows (-EBUSY from ftrace registration).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import callbacks, shadow

EINVAL, EBUSY, ENOMEM, EEXIST = -22, -16, -12, -17

# klp_target_state (transition.c; KLP_TRANSITION_* since 6.10)
KLP_TRANSITION_IDLE, KLP_TRANSITION_UNPATCHED, KLP_TRANSITION_PATCHED = -1, 0, 1

# the module states callback_info() prints (test_klp_callbacks_demo.c)
MODULE_STATE_LIVE, MODULE_STATE_COMING, MODULE_STATE_GOING = "LIVE", "COMING", "GOING"


# --------------------------------------------------------------------------- structs
# include/linux/livepatch.h, reduced to the fields the lifecycle reads or writes


@dataclass
class KlpState:                   # struct klp_state
    id: int
    version: int
    name: str                     # the spec's name for the id
    data: int | None = None       # void *data: a block number, or None for NULL
    # kernel "state-callbacks" (v1 01/19): state->callbacks.pre_patch_succeeded, in the
    # livepatch module's static klp_state array (a new insmod starts from false)
    pre_patch_succeeded: bool = False
    block_disable: bool = False   # state->block_disable (04/19; test_klp_state.c sets it at init)


@dataclass
class KlpObject:                  # struct klp_object
    name: str | None              # NULL for vmlinux
    spec: object | None           # the spec's Obj (the callbacks, funcs); None for a dynamic nop object
    dynamic: bool = False
    mod: bool = False             # obj->mod != NULL
    patched: bool = False
    post_unpatch_enabled: bool = False   # obj->callbacks.post_unpatch_enabled
    funcs: list[str] = field(default_factory=list)   # the static funcs of obj->func_list ...
    nops: list[str] = field(default_factory=list)    # ... and the nop funcs after them
    owner: str = ""               # the patch whose obj_list holds it (func->... in the kernel)

    @property
    def func_list(self) -> list[str]:
        return self.funcs + self.nops

    @property
    def label(self) -> str:       # what the kernel prints for the object
        return self.name or "vmlinux"


@dataclass
class KlpPatch:                   # struct klp_patch
    name: str                     # patch->mod->name
    spec: object                  # the spec's Patch
    replace: bool
    states: list[KlpState]
    static_objs: list[KlpObject] = field(default_factory=list)   # objs[] of the module
    obj_list: list[KlpObject] = field(default_factory=list)      # patch->obj_list
    enabled: bool = False
    forced: bool = False
    replace_set: int = 0          # kernel "replace-set" (the replace_set series v2): replaces `replace`


@dataclass
class Module:                     # struct module, target and livepatch modules alike
    name: str
    livepatch: bool
    params: dict = field(default_factory=dict)
    loaded: bool = False
    state: str = MODULE_STATE_LIVE
    klp_alive: bool = False
    refcnt: int = 0               # try_module_get() held by the livepatch core
    patch: KlpPatch | None = None  # the livepatch module's static struct klp_patch
    sleeping_in: KlpPatch | None = None   # a `sleeps` task: whose new_func it sleeps in (None: the original)


@dataclass
class Kernel:
    spec: object
    faults: bool = False                               # the optional `patching` fault
    klp_patches: list[KlpPatch] = field(default_factory=list)
    klp_transition_patch: KlpPatch | None = None
    klp_target_state: int = KLP_TRANSITION_IDLE
    tasks_switched: bool = False
    klp_ops: dict[tuple[str, str], list[tuple[str, bool]]] = field(default_factory=dict)  # patch.c's klp_ops:
    #   (object, function) -> its ops->func_stack, newest first: (owner patch, func->nop)
    func_transition: set[str] = field(default_factory=set)   # patches whose funcs have func->transition
    modules: dict[str, Module] = field(default_factory=dict)
    blocks: list[list] = field(default_factory=list)   # kzalloc'ed blocks: [live, content]
    values: dict[str, str] = field(default_factory=dict)   # the system value of each state
    shadows: dict[tuple, dict] = field(default_factory=dict)  # (issue 14) shadow.py: (object, id) -> the variable
    data_seq: int = 0                                      # shadow data buffers allocated (their pointers)
    stale: set[int] = field(default_factory=set)           # ids with entries on freed objects
    log: list[str] = field(default_factory=list)
    # kernel "state-callbacks": state.c's static bool klp_states_pre_unpatch_replaced_called
    pre_unpatch_replaced_called: bool = False
    # the run of one operation
    choose: object = None          # the oracle of the fallible points: key -> failed?
    refused: str | None = None     # set where the kernel refuses without changing anything
    mon: object = None             # monitors.Monitors

    @property
    def sets(self) -> bool:
        """The kernel runs the replace_set series v2 (29 May 2026, not merged): the hunks of
        its patch 2/4, kept beside the mainline code they change."""
        return self.spec.kernel == "replace-set"

    @property
    def state_callbacks(self) -> bool:
        """The kernel runs Petr Mladek's per-state callbacks series v1 (Jan 2025, not merged;
        proposals.md §A.5): the state.c functions of 01/02/04 below (each beside the mainline
        code it changes), block_disable in enabled_store() and the compatibility check (04),
        no version and no data (04, 05), and no per-object callbacks (19/19)."""
        return self.spec.kernel == "state-callbacks"

    def pr(self, line: str) -> None:
        self.log.append(line)

    def refuse(self, why: str, ret: int) -> int:
        self.refused = why
        return ret


def clone(k: Kernel) -> Kernel:
    """A copy of the whole kernel for running one operation on it (what copy.deepcopy
    would make, without copying the spec, and many times faster)."""
    objs: dict[int, KlpObject] = {}

    def obj(o: KlpObject) -> KlpObject:
        if id(o) not in objs:
            objs[id(o)] = KlpObject(o.name, o.spec, o.dynamic, o.mod, o.patched, o.post_unpatch_enabled,
                                    list(o.funcs), list(o.nops), o.owner)
        return objs[id(o)]

    patches: dict[int, KlpPatch] = {}

    def patch(p: KlpPatch | None) -> KlpPatch | None:
        if p is None:
            return None
        if id(p) not in patches:
            patches[id(p)] = KlpPatch(p.name, p.spec, p.replace,
                                      [KlpState(s.id, s.version, s.name, s.data, s.pre_patch_succeeded, s.block_disable) for s in p.states],
                                      [obj(o) for o in p.static_objs], [obj(o) for o in p.obj_list], p.enabled, p.forced,
                                      p.replace_set)
        return patches[id(p)]

    n = Kernel(k.spec, k.faults)
    n.klp_patches = [patch(p) for p in k.klp_patches]
    n.klp_transition_patch = patch(k.klp_transition_patch)
    n.klp_target_state = k.klp_target_state
    n.tasks_switched = k.tasks_switched
    n.klp_ops = {key: list(stack) for key, stack in k.klp_ops.items()}
    n.func_transition = set(k.func_transition)
    n.modules = {name: Module(m.name, m.livepatch, dict(m.params), m.loaded, m.state, m.klp_alive, m.refcnt, patch(m.patch),
                              patch(m.sleeping_in))
                 for name, m in k.modules.items()}
    n.blocks = [list(b) for b in k.blocks]
    n.values = dict(k.values)
    n.shadows = {i: dict(v) for i, v in k.shadows.items()}
    n.data_seq = k.data_seq
    n.stale = set(k.stale)
    n.log = list(k.log)
    n.pre_unpatch_replaced_called = k.pre_unpatch_replaced_called
    n.mon = k.mon.clone()
    return n


def new_kernel(spec, faults: bool = False, monitors=None) -> Kernel:
    k = Kernel(spec, faults, mon=monitors)
    for m in spec.modules:
        mod = Module(m.name, False, dict(m.params))
        k.modules[m.name] = mod
        if m.loaded:                              # loaded before any patch: nothing to patch yet
            mod.loaded = mod.klp_alive = True
    for p in spec.patches:
        k.modules[p.name] = Module(p.name, True, dict(p.params))
    k.values = {s.name: "original" for s in spec.states}
    return k


def klp_patch_struct(k: Kernel, p) -> KlpPatch:
    """The livepatch module's static `struct klp_patch`, as its module_init sees it: the
    objects in array order, the states with data NULL, and `replace` as the module's code
    sets it -- from the module parameter when the spec says `replace_param` (read here,
    once, before klp_enable_patch: a later write of the parameter changes nothing)."""
    params = k.modules[p.name].params
    replace = bool(params[p.replace_param]) if p.replace_param else p.replace
    ids = {s.name: s.id for s in k.spec.states}
    states = [KlpState(ids[s], v, s) for s, v in p.states]
    if k.state_callbacks:                    # v1 04/19: the array's block_disable; test_klp_state.c's init:
        decls = {d.name: d for d in k.spec.states}    # `states[0].block_disable = state_block_disable;`
        from_param = dict(p.block_disable_param)      # `if (no_state) patch.states = NULL;`
        for state in states:
            state.block_disable = bool(params[from_param[state.name]]) if state.name in from_param \
                else decls[state.name].block_disable
        if p.no_states_param is not None and params[p.no_states_param]:
            states = []
    objs = [KlpObject(None if o.name == "vmlinux" else o.name, o, funcs=list(o.funcs), owner=p.name) for o in p.objects]
    if k.sets:                               # v2: `patch.replace_set = replace_set;` (an int parameter)
        replace_set = (params[p.replace_param] if p.replace_param else p.replace_set) % (1 << 32)
        return KlpPatch(p.name, p, False, states, objs, replace_set=replace_set)
    return KlpPatch(p.name, p, replace, states, objs)


# --------------------------------------------------------------------------- core.h


def klp_is_module(obj: KlpObject) -> bool:
    return obj.name is not None


def klp_is_object_loaded(obj: KlpObject) -> bool:
    return not obj.name or obj.mod


def klp_pre_patch_callback(k: Kernel, patch: KlpPatch, obj: KlpObject) -> int:
    """core.h: ret = pre_patch(obj) if there is one; post_unpatch_enabled = !ret.

    Under "state-callbacks" v1 19/19 deletes struct klp_callbacks, these four helpers and
    every call of them (__klp_enable_patch, __klp_disable_patch, klp_complete_transition,
    klp_module_coming, klp_cleanup_module_patches_limited): they do nothing there, and the
    `pre-patch callback failed` line cannot be printed (ret is always 0)."""
    if k.state_callbacks:
        return 0
    ret = 0
    if obj.spec is not None and _has(obj, "pre_patch"):
        ret = callbacks.pre_patch(k, patch, obj)
    obj.post_unpatch_enabled = not ret
    return ret


def klp_post_patch_callback(k: Kernel, patch: KlpPatch, obj: KlpObject) -> None:
    if k.state_callbacks:                    # v1 19/19
        return
    if obj.spec is not None and _has(obj, "post_patch"):
        callbacks.run(k, patch, obj, "post_patch")


def klp_pre_unpatch_callback(k: Kernel, patch: KlpPatch, obj: KlpObject) -> None:
    if k.state_callbacks:                    # v1 19/19
        return
    if obj.spec is not None and _has(obj, "pre_unpatch"):
        callbacks.run(k, patch, obj, "pre_unpatch")


def klp_post_unpatch_callback(k: Kernel, patch: KlpPatch, obj: KlpObject) -> None:
    """core.h: only with post_unpatch_enabled set; the flag is cleared either way."""
    if k.state_callbacks:                    # v1 19/19
        return
    if obj.post_unpatch_enabled and obj.spec is not None and _has(obj, "post_unpatch"):
        callbacks.run(k, patch, obj, "post_unpatch")
    obj.post_unpatch_enabled = False


def _has(obj: KlpObject, cb: str) -> bool:
    return any(name == cb for name, _ in obj.spec.callbacks)


# --------------------------------------------------------------------------- state.c


def klp_get_state(patch: KlpPatch, id: int) -> KlpState | None:
    for state in patch.states:              # klp_for_each_state: the first match
        if state.id == id:
            return state
    return None


def klp_get_prev_state(k: Kernel, id: int) -> KlpState | None:
    """state.c: WARN and NULL outside a transition; else the last state with this id of
    the patches on klp_patches before the transition patch (the walk stops there)."""
    if k.klp_transition_patch is None:
        return None
    last_state = None
    for patch in k.klp_patches:
        if patch is k.klp_transition_patch:
            break
        state = klp_get_state(patch, id)
        if state:
            last_state = state
    return last_state


def klp_is_state_compatible(patch: KlpPatch, old_state: KlpState) -> bool:
    state = klp_get_state(patch, old_state.id)
    if state is None:                        # a cumulative patch must handle every state
        return not patch.replace
    return state.version >= old_state.version


def klp_is_state_compatible_v2(patch: KlpPatch, old_patch: KlpPatch, old_state: KlpState) -> bool:
    """replace_set v2 2/4: the same set must keep every state (version not lower); another
    set must not use the id."""
    state = klp_get_state(patch, old_state.id)
    if patch.replace_set == old_patch.replace_set:
        if not state:
            return False
        return state.version >= old_state.version
    return not state


def klp_find_func(obj: KlpObject, old_func: str) -> bool:
    return old_func in obj.func_list         # (by name: specs have no old_sympos)


def klp_is_patch_compatible(k: Kernel, patch: KlpPatch) -> bool:
    if k.sets:
        return klp_is_patch_compatible_v2(k, patch)
    if k.state_callbacks:
        return klp_is_patch_compatible_cb(k, patch)
    for old_patch in k.klp_patches:
        for old_state in old_patch.states:
            if not klp_is_state_compatible(patch, old_state):
                return False
    return True


def klp_is_patch_compatible_v2(k: Kernel, patch: KlpPatch) -> bool:
    for old_patch in k.klp_patches:
        for old_state in old_patch.states:
            if not klp_is_state_compatible_v2(patch, old_patch, old_state):
                return False
        if old_patch.replace_set == patch.replace_set:
            continue
        for obj in patch.static_objs:                    # klp_for_each_object_static(patch, obj)
            for old_obj in old_patch.obj_list:           # klp_for_each_object(old_patch, old_obj)
                if (obj.name is None) != (old_obj.name is None):
                    continue
                if obj.name and obj.name != old_obj.name:
                    continue
                for func in obj.funcs:                   # klp_for_each_func_static(obj, func)
                    if klp_find_func(old_obj, func):
                        return False
    return True


# --------------------------------------------------------------------------- state.c of the per-state callbacks v1
# proposals.md §A.5.4: state.c @663800cf (01/19, 02/19 and 04/19 applied), read line by line.
# klp_get_state() and klp_get_prev_state() are mainline's (above).


def state_decl(k: Kernel, state: KlpState):
    """The spec's [states.S] of a struct klp_state: its callbacks, block_disable, is_shadow
    (one declaration per id: every patch carrying S has the same struct contents)."""
    return next(d for d in k.spec.states if d.id == state.id)


def klp_is_state_compatible_cb(k: Kernel, patch: KlpPatch, old_state: KlpState) -> bool:
    """04/19: `if (!state && old_state->block_disable) return false; return true;` (no
    version any more)."""
    state = klp_get_state(patch, old_state.id)
    if not state and old_state.block_disable:  # noqa: SIM103 (the C's shape)
        return False
    return True


def klp_is_patch_compatible_cb(k: Kernel, patch: KlpPatch) -> bool:
    """04/19: `if (!patch->replace) return true;` then every state of every listed patch."""
    if not patch.replace:
        return True
    for old_patch in k.klp_patches:
        for old_state in old_patch.states:
            if not klp_is_state_compatible_cb(k, patch, old_state):
                return False
    return True


def klp_patch_disable_blocked(k: Kernel, patch: KlpPatch) -> bool:
    return any(state.block_disable for state in patch.states)


def is_state_in_other_patches(k: Kernel, patch: KlpPatch, state: KlpState) -> bool:
    """Some patch on klp_patches other than `patch` has a state of this id (enabled or not,
    in transition or not: the walk looks at the list only)."""
    for p in k.klp_patches:
        if p is patch:
            continue
        for s in p.states:
            if s.id == state.id:
                return True
    return False


def klp_states_pre_patch(k: Kernel, patch: KlpPatch) -> int:
    """01/19. The flag is set also for a state skipped because another patch has it; a
    failing pre_patch returns at once, its own flag and the later ones unset."""
    for state in patch.states:
        if not is_state_in_other_patches(k, patch, state) and state_decl(k, state).cb("pre_patch"):
            err = callbacks.state_pre_patch(k, patch, state)
            if err:
                return err
        state.pre_patch_succeeded = True
    return 0


def klp_states_post_patch(k: Kernel, patch: KlpPatch) -> None:
    for state in patch.states:
        if is_state_in_other_patches(k, patch, state):
            continue
        if state_decl(k, state).cb("post_patch"):
            callbacks.state_run(k, patch, state, "post_patch")


def klp_states_pre_unpatch(k: Kernel, patch: KlpPatch) -> None:
    for state in patch.states:
        if is_state_in_other_patches(k, patch, state):
            continue
        if state_decl(k, state).cb("pre_unpatch"):
            callbacks.state_run(k, patch, state, "pre_unpatch")


def klp_states_post_unpatch(k: Kernel, patch: KlpPatch) -> None:
    """01/19 and 02/19: post_unpatch, then (is_shadow) klp_shadow_free_all(id, shadow_dtor),
    then the flag cleared -- only for a state whose pre_patch succeeded."""
    for state in patch.states:
        if is_state_in_other_patches(k, patch, state):
            continue
        if not state.pre_patch_succeeded:    # "a transition is canceled after a preparation step failed"
            continue
        decl = state_decl(k, state)
        if decl.cb("post_unpatch"):
            callbacks.state_run(k, patch, state, "post_unpatch")
        if decl.is_shadow:
            shadow.klp_shadow_free_all_id(k, state.id, lambda st=state: callbacks.state_run(k, patch, st, "shadow_dtor"))
        state.pre_patch_succeeded = False


def klp_states_pre_unpatch_replaced(k: Kernel, patch: KlpPatch) -> None:
    """WARN_ON(klp_states_pre_unpatch_replaced_called) (the model has no WARN line: the flag
    is always clear here, see klp_states_post_*_replaced); every other listed patch's
    pre_unpatch, oldest first; the flag set."""
    for old_patch in list(k.klp_patches):
        if old_patch is not patch:
            klp_states_pre_unpatch(k, old_patch)
    k.pre_unpatch_replaced_called = True


def klp_states_post_unpatch_replaced(k: Kernel, patch: KlpPatch) -> None:
    for old_patch in list(k.klp_patches):
        if old_patch is not patch:
            klp_states_post_unpatch(k, old_patch)
    k.pre_unpatch_replaced_called = False


def klp_states_post_patch_replaced(k: Kernel, patch: KlpPatch) -> None:
    """Only when the pre_unpatch of the replaced patches ran (the flag): their post_patch
    again, oldest first; the flag cleared."""
    if not k.pre_unpatch_replaced_called:
        return
    for old_patch in list(k.klp_patches):
        if old_patch is not patch:
            klp_states_post_patch(k, old_patch)
    k.pre_unpatch_replaced_called = False


# --------------------------------------------------------------------------- patch.c


def klp_patch_object(k: Kernel, patch: KlpPatch, obj: KlpObject) -> int:
    """patch.c: register every function with ftrace. The optional `patching` fault is the
    failure of that registration (another IPMODIFY user, test-kprobe.sh: -EBUSY), taken to
    hit the object's first function (klp_patch_func's pr_err names it); the object is
    then unpatched again and stays `patched == false`."""
    if obj.patched:                          # WARN_ON
        return EINVAL
    if k.faults and k.choose((patch.name, obj.label, "patching", 0)):
        if obj.func_list:                    # klp_patch_func() of the first function
            k.pr(f"livepatch: failed to register ftrace handler for function '{obj.func_list[0]}' ({EBUSY})")
        klp_unpatch_object(k, obj)
        return EBUSY
    for func in obj.func_list:               # klp_patch_func: list_add_rcu at the head
        k.klp_ops.setdefault((obj.label, func), []).insert(0, (obj.owner, func in obj.nops))
    obj.patched = True
    return 0


def __klp_unpatch_object(k: Kernel, obj: KlpObject, nops_only: bool) -> None:
    for func in obj.func_list:               # klp_for_each_func(obj, func)
        nop = func in obj.nops
        if nops_only and not nop:
            continue
        stack = k.klp_ops.get((obj.label, func), [])
        if (obj.owner, nop) in stack:        # func->patched: klp_unpatch_func, list_del_rcu
            stack.remove((obj.owner, nop))
            if not stack:                    # the last one: ftrace handler unregistered, ops freed
                del k.klp_ops[(obj.label, func)]
    if obj.dynamic or not nops_only:
        obj.patched = False


def klp_unpatch_object(k: Kernel, obj: KlpObject) -> None:
    __klp_unpatch_object(k, obj, False)


def klp_unpatch_objects(k: Kernel, patch: KlpPatch) -> None:
    for obj in patch.obj_list:
        if obj.patched:
            __klp_unpatch_object(k, obj, False)


def klp_unpatch_objects_dynamic(k: Kernel, patch: KlpPatch) -> None:
    for obj in patch.obj_list:
        if obj.patched:
            __klp_unpatch_object(k, obj, True)


def klp_ftrace_handler(k: Kernel, obj: str, func: str, patch_state: int) -> str | None:
    """patch.c: the patch whose new_func a task in `patch_state` runs when it calls function
    `func` of object `obj`; None: the original code (no ops, a nop, or nothing below)."""
    stack = k.klp_ops.get((obj, func))
    if not stack:                            # no ftrace handler on the function
        return None
    at = 0                                   # list_first_or_null_rcu(&ops->func_stack)
    if stack[0][0] in k.func_transition and patch_state == KLP_TRANSITION_UNPATCHED:   # func->transition
        at = 1                               # the previously patched version, else the original
        if at == len(stack):
            return None
    owner, nop = stack[at]
    return None if nop else owner


def klp_task_states(k: Kernel) -> list[int]:
    """The patch_state a task can have now: klp_init_transition gives every task the initial
    state, tasks switch to the target one by one, klp_force_transition switches them all."""
    if k.klp_transition_patch is None:
        return [KLP_TRANSITION_IDLE]
    initial = KLP_TRANSITION_PATCHED if k.klp_target_state == KLP_TRANSITION_UNPATCHED else KLP_TRANSITION_UNPATCHED
    return [k.klp_target_state] if k.tasks_switched else [initial, k.klp_target_state]


def klp_version_may_run(k: Kernel, patch: KlpPatch, func: str) -> bool:
    """(the `call` operation) Some task can run patch's new version of `func`: the handler
    picks it for one of the task states. A function no object of the patch lists in `funcs`
    has no ops here; it is taken as the patch's alone (its own stack of one entry)."""
    homes = [obj for obj in patch.obj_list if obj.patched and func in obj.funcs]
    if not any(func in obj.funcs for obj in patch.obj_list):
        alone = Kernel(k.spec, klp_ops={("", func): [(patch.name, False)]}, func_transition=k.func_transition)
        return any(klp_ftrace_handler(alone, "", func, st) == patch.name for st in klp_task_states(k))
    return any(klp_ftrace_handler(k, obj.label, func, st) == patch.name for obj in homes for st in klp_task_states(k))


# --------------------------------------------------------------------------- core.c: objects and nops


def klp_find_object(patch: KlpPatch, old_obj: KlpObject) -> KlpObject | None:
    for obj in patch.obj_list:
        if klp_is_module(old_obj):
            if klp_is_module(obj) and old_obj.name == obj.name:
                return obj
        elif not klp_is_module(obj):
            return obj
    return None


def klp_alloc_object_dynamic(name: str | None, patch: KlpPatch) -> KlpObject:
    obj = KlpObject(name, None, dynamic=True, owner=patch.name)
    patch.obj_list.append(obj)              # klp_init_object_early: list_add_tail
    return obj


def klp_add_object_nops(patch: KlpPatch, old_obj: KlpObject) -> None:
    obj = klp_find_object(patch, old_obj)
    if obj is None:
        obj = klp_alloc_object_dynamic(old_obj.name, patch)
    for old_func in old_obj.func_list:       # klp_find_func(), else klp_alloc_func_nop(): list_add_tail
        if old_func not in obj.func_list:
            obj.nops.append(old_func)


def klp_add_nops(k: Kernel, patch: KlpPatch) -> None:
    """core.c: for every object of every patch on klp_patches (a patch in transition
    included, its own dynamic objects too), an object of the same name; a dynamic one,
    appended after the static objects, when the new patch has none."""
    for old_patch in k.klp_patches:
        for old_obj in old_patch.obj_list:
            if k.sets and patch.replace_set != old_patch.replace_set:
                continue
            klp_add_object_nops(patch, old_obj)


def klp_find_object_module(k: Kernel, obj: KlpObject) -> None:
    if not klp_is_module(obj):
        return
    mod = k.modules[obj.name]
    if mod.loaded and mod.klp_alive:
        obj.mod = True


def klp_init_object(k: Kernel, patch: KlpPatch, obj: KlpObject) -> int:
    obj.patched = False
    obj.mod = False
    klp_find_object_module(k, obj)
    # klp_init_object_loaded(): relocations and symbols, which cannot fail in the model
    return 0


def klp_init_patch_early(patch: KlpPatch) -> None:
    patch.obj_list = list(patch.static_objs)
    patch.enabled = False
    patch.forced = False


def klp_init_patch(k: Kernel, patch: KlpPatch) -> int:
    if k.sets or patch.replace:              # v2: klp_add_nops() always
        klp_add_nops(k, patch)
    for obj in patch.obj_list:
        klp_init_object(k, patch, obj)
    k.klp_patches.append(patch)              # list_add_tail(&patch->list, &klp_patches)
    return 0


def klp_free_object_loaded(obj: KlpObject) -> None:
    obj.mod = False


def klp_free_objects(patch: KlpPatch) -> None:
    patch.obj_list = []


def klp_free_objects_dynamic(patch: KlpPatch) -> None:
    """__klp_free_objects(patch, nops_only): the nop funcs of every object, the dynamic objects."""
    for obj in patch.obj_list:
        obj.nops = []
    patch.obj_list = [obj for obj in patch.obj_list if not obj.dynamic]


def klp_free_patch_start(k: Kernel, patch: KlpPatch) -> None:
    if patch in k.klp_patches:
        k.klp_patches.remove(patch)
    klp_free_objects(patch)


def klp_free_patch_finish(k: Kernel, patch: KlpPatch) -> None:
    """The sysfs directory goes; the module reference is put back unless forced."""
    if not patch.forced:
        k.modules[patch.name].refcnt -= 1


def klp_free_patch_async(k: Kernel, patch: KlpPatch) -> None:
    klp_free_patch_start(k, patch)
    klp_free_patch_finish(k, patch)          # klp_free_patch_work_fn, run at once


def klp_free_replaced_patches_async(k: Kernel, new_patch: KlpPatch) -> None:
    for old_patch in list(k.klp_patches):    # klp_for_each_patch_safe
        if old_patch is new_patch:
            return
        if k.sets and old_patch.replace_set != new_patch.replace_set:
            continue
        klp_free_patch_async(k, old_patch)


def klp_unpatch_replaced_patches(k: Kernel, new_patch: KlpPatch) -> None:
    for old_patch in k.klp_patches:
        if old_patch is new_patch:
            return
        if k.sets and old_patch.replace_set != new_patch.replace_set:
            continue
        old_patch.enabled = False
        klp_unpatch_objects(k, old_patch)


def klp_discard_nops(k: Kernel, new_patch: KlpPatch) -> None:
    klp_unpatch_objects_dynamic(k, k.klp_transition_patch)
    klp_free_objects_dynamic(k.klp_transition_patch)


# --------------------------------------------------------------------------- transition.c


def klp_init_transition(k: Kernel, patch: KlpPatch, state: int) -> None:
    k.klp_transition_patch = patch
    k.klp_target_state = state
    k.pr(f"livepatch: '{patch.name}': initializing {'patching' if state == KLP_TRANSITION_PATCHED else 'unpatching'} transition")
    k.tasks_switched = False                 # every task gets the initial state
    k.func_transition.add(patch.name)        # every func of every object: func->transition = true


def klp_start_transition(k: Kernel) -> None:
    patch = k.klp_transition_patch
    k.pr(f"livepatch: '{patch.name}': starting "
         f"{'patching' if k.klp_target_state == KLP_TRANSITION_PATCHED else 'unpatching'} transition")
    k.tasks_switched = False                 # TIF_PATCH_PENDING for every task not in the target state


def _patches(patch: KlpPatch, module: str, function: str) -> bool:
    return any(obj.name == module and obj.patched and obj.spec is not None and function in obj.spec.funcs
               for obj in patch.obj_list)


def klp_func_stack_top(k: Kernel, module: str, function: str, skip: KlpPatch | None = None) -> KlpPatch | None:
    """The newest patch on klp_patches whose patched object for `module` has `function` (the
    ftrace func_stack top, what klp_ftrace_handler calls for a task in the patched state),
    leaving out `skip`; None: the original function."""
    top = None
    for patch in k.klp_patches:
        if patch is not skip and _patches(patch, module, function):
            top = patch
    return top


def switched_task_func(k: Kernel, module: str, function: str) -> KlpPatch | None:
    """The version a switched (or new) task runs: during an unpatching transition the
    transition patch's function is not used any more (klp_ftrace_handler: patch_state)."""
    skip = k.klp_transition_patch if k.klp_target_state == KLP_TRANSITION_UNPATCHED else None
    return klp_func_stack_top(k, module, function, skip)


def klp_task_blocks(k: Kernel) -> str | None:
    """Why some task cannot switch (klp_try_switch_task/klp_check_stack): a target
    module's task sleeping in a function, in the version the transition would take it out of:
    the transition patch's previous function (patching) or its own (unpatching), when the
    transition patch's loaded object for that module patches it. None: all switch."""
    for m in k.spec.modules:
        if klp_task_held(k, m):
            return f"a task of {m.name} is sleeping on function {m.sleeps[0]}"
    return None


def klp_task_held(k: Kernel, m) -> bool:
    """The sleeping task of target module `m` (its spec) cannot switch: klp_check_stack finds
    the version the transition must take it out of on its stack."""
    if k.tasks_switched or k.klp_target_state == KLP_TRANSITION_IDLE:
        return False
    patch = k.klp_transition_patch
    mod = k.modules[m.name]
    if m.sleeps is None or not mod.loaded:
        return False
    function, param = m.sleeps
    if not mod.params.get(param) or not _patches(patch, m.name, function):
        return False
    # patching: the previous func on the func_stack; unpatching: func->new_func
    old = klp_func_stack_top(k, m.name, function, skip=patch) if k.klp_target_state == KLP_TRANSITION_PATCHED \
        else patch
    return mod.sleeping_in is old


def task_state(k: Kernel, m=None) -> int:
    """The patch_state of a task: a new one (m None) or one already switched is at the target
    state; the sleeping task of module `m` that holds the transition is at the initial one."""
    if m is not None and klp_task_held(k, m):
        return KLP_TRANSITION_PATCHED if k.klp_target_state == KLP_TRANSITION_UNPATCHED else KLP_TRANSITION_UNPATCHED
    return k.klp_target_state


def klp_try_complete_transition(k: Kernel, first_attempt: bool = False) -> bool:
    """transition.c. Returns whether the transition completed."""
    if first_attempt or klp_task_blocks(k):
        return False                         # schedule_delayed_work(&klp_transition_work)
    patch = k.klp_transition_patch
    target = k.klp_target_state
    klp_complete_transition(k)
    if not patch.enabled:
        klp_free_patch_async(k, patch)
    elif k.sets or patch.replace:           # v2: else klp_free_replaced_patches_async()
        klp_free_replaced_patches_async(k, patch)
    k.mon.transition_completed(k, patch, target)
    return True


def klp_complete_transition(k: Kernel) -> None:
    patch = k.klp_transition_patch
    patching = k.klp_target_state == KLP_TRANSITION_PATCHED
    k.pr(f"livepatch: '{patch.name}': completing {'patching' if patching else 'unpatching'} transition")
    if (k.sets or patch.replace) and patching:
        klp_unpatch_replaced_patches(k, patch)
        klp_discard_nops(k, patch)
        if k.state_callbacks:                # v1 01/19
            klp_states_post_unpatch_replaced(k, patch)
    if k.klp_target_state == KLP_TRANSITION_UNPATCHED:
        klp_unpatch_objects(k, patch)
    k.func_transition.discard(patch.name)    # func->transition = false; every task's
    #                                          patch_state = KLP_TRANSITION_IDLE
    if k.state_callbacks:                    # v1 01/19 (transition.c @6c06f3dd)
        if k.klp_target_state == KLP_TRANSITION_PATCHED:
            klp_states_post_patch(k, patch)
        elif k.klp_target_state == KLP_TRANSITION_UNPATCHED:
            if patch.replace:                # re-enable the states the cancelled/reverted patch would replace
                klp_states_post_patch_replaced(k, patch)
            klp_states_post_unpatch(k, patch)
    for obj in list(patch.obj_list):
        if not klp_is_object_loaded(obj):
            continue
        if k.klp_target_state == KLP_TRANSITION_PATCHED:
            klp_post_patch_callback(k, patch, obj)
        elif k.klp_target_state == KLP_TRANSITION_UNPATCHED:
            klp_post_unpatch_callback(k, patch, obj)
    k.pr(f"livepatch: '{patch.name}': {'patching' if patching else 'unpatching'} complete")
    k.klp_target_state = KLP_TRANSITION_IDLE
    k.klp_transition_patch = None


def klp_cancel_transition(k: Kernel) -> None:
    if k.klp_target_state != KLP_TRANSITION_PATCHED:   # WARN_ON_ONCE
        return
    k.pr(f"livepatch: '{k.klp_transition_patch.name}': canceling patching transition, going to unpatch")
    k.klp_target_state = KLP_TRANSITION_UNPATCHED
    klp_complete_transition(k)


def klp_reverse_transition(k: Kernel) -> None:
    patch = k.klp_transition_patch
    k.pr(f"livepatch: '{patch.name}': reversing transition from "
         f"{'patching to unpatching' if k.klp_target_state == KLP_TRANSITION_PATCHED else 'unpatching to patching'}")
    # clear TIF_PATCH_PENDING everywhere, klp_synchronize_transition()
    patch.enabled = not patch.enabled
    k.klp_target_state = KLP_TRANSITION_PATCHED if k.klp_target_state == KLP_TRANSITION_UNPATCHED else KLP_TRANSITION_UNPATCHED
    klp_start_transition(k)


def klp_force_transition(k: Kernel) -> None:
    """5.18+ (commit 2957308343fa): forced marks only the patches being removed."""
    k.pr("livepatch: forcing remaining tasks to the patched state")
    k.tasks_switched = True                  # klp_update_patch_state() of every task
    if k.klp_target_state == KLP_TRANSITION_UNPATCHED:
        k.klp_transition_patch.forced = True
    elif k.sets:                             # v2: the other patches of the same set
        for patch in k.klp_patches:
            if patch is not k.klp_transition_patch and patch.replace_set == k.klp_transition_patch.replace_set:
                patch.forced = True
    elif k.klp_transition_patch.replace:
        for patch in k.klp_patches:
            if patch is not k.klp_transition_patch:
                patch.forced = True


# --------------------------------------------------------------------------- core.c: enable, disable, sysfs


def __klp_disable_patch(k: Kernel, patch: KlpPatch) -> int:
    if not patch.enabled:                    # WARN_ON
        return EINVAL
    if k.klp_transition_patch is not None:
        return k.refuse("EBUSY", EBUSY)
    klp_init_transition(k, patch, KLP_TRANSITION_UNPATCHED)
    if k.state_callbacks:                    # v1 01/19
        klp_states_pre_unpatch(k, patch)
    for obj in list(patch.obj_list):
        if obj.patched:
            klp_pre_unpatch_callback(k, patch, obj)
    klp_start_transition(k)
    patch.enabled = False
    k.mon.transition_started(k, "disable")
    klp_try_complete_transition(k, first_attempt=True)
    return 0


def __klp_enable_patch(k: Kernel, patch: KlpPatch) -> int:
    if k.klp_transition_patch is not None:
        return k.refuse("EBUSY", EBUSY)
    if patch.enabled:                        # WARN_ON
        return EINVAL
    k.pr(f"livepatch: enabling patch '{patch.name}'")
    klp_init_transition(k, patch, KLP_TRANSITION_PATCHED)
    ret = 0
    if k.state_callbacks:                    # v1 01/19
        ret = klp_states_pre_patch(k, patch)
        if not ret and patch.replace:
            klp_states_pre_unpatch_replaced(k, patch)
    for obj in (list(patch.obj_list) if not ret else []):
        if not klp_is_object_loaded(obj):
            continue
        ret = klp_pre_patch_callback(k, patch, obj)
        if ret:
            k.pr(f"livepatch: pre-patch callback failed for object '{obj.label}'")
            break
        ret = klp_patch_object(k, patch, obj)
        if ret:
            k.pr(f"livepatch: failed to patch object '{obj.label}'")
            break
    if ret:                                  # err:
        k.pr(f"livepatch: failed to enable patch '{patch.name}'")
        klp_cancel_transition(k)
        return ret
    klp_start_transition(k)
    patch.enabled = True
    k.mon.transition_started(k, "load")
    klp_try_complete_transition(k, first_attempt=True)
    return 0


def klp_enable_patch(k: Kernel, patch: KlpPatch) -> int:
    """core.c, called from the livepatch module's init (§2.1). The structural checks
    before klp_mutex cannot fail for a patch a spec describes."""
    if not klp_is_patch_compatible(k, patch):
        k.pr(f"livepatch: Livepatch patch ({patch.name}) is not compatible with the already installed livepatches.")
        return k.refuse("incompatible", EINVAL)
    k.modules[patch.name].refcnt += 1        # try_module_get(patch->mod)
    klp_init_patch_early(patch)
    ret = klp_init_patch(k, patch)
    if not ret:
        ret = __klp_enable_patch(k, patch)
    if ret:                                  # err:
        klp_free_patch_start(k, patch)
        klp_free_patch_finish(k, patch)
    return ret


def enabled_store(k: Kernel, patch: KlpPatch, enabled: bool) -> int:
    """core.c: /sys/kernel/livepatch/<patch>/enabled."""
    if patch.enabled == enabled:             # already in the requested state
        return k.refuse("EINVAL", EINVAL)
    if k.state_callbacks and patch.enabled and klp_patch_disable_blocked(k, patch):   # v1 04/19
        k.pr(f"livepatch: The livepatch '{patch.name}' does not support disable")
        return k.refuse("disable blocked", EINVAL)
    if patch is k.klp_transition_patch:      # reverse a pending transition, both ways
        klp_reverse_transition(k)
        return 0
    if not enabled:
        return __klp_disable_patch(k, patch)
    return k.refuse("EINVAL", EINVAL)        # a disabled patch is never enabled again


def force_store(k: Kernel, patch: KlpPatch, val: bool) -> int:
    """core.c: /sys/kernel/livepatch/<patch>/force."""
    if not val:
        return 0
    if patch is not k.klp_transition_patch:
        return k.refuse("EINVAL", EINVAL)
    klp_force_transition(k)
    return 0


# --------------------------------------------------------------------------- core.c: target modules


def klp_cleanup_module_patches_limited(k: Kernel, mod: Module, limit: KlpPatch | None) -> None:
    for patch in list(k.klp_patches):
        if patch is limit:
            break
        for obj in list(patch.obj_list):
            if not klp_is_module(obj) or obj.name != mod.name:
                continue
            if patch is not k.klp_transition_patch:
                klp_pre_unpatch_callback(k, patch, obj)
            k.pr(f"livepatch: reverting patch '{patch.name}' on unloading module '{mod.name}'")
            klp_unpatch_object(k, obj)
            klp_post_unpatch_callback(k, patch, obj)
            klp_free_object_loaded(obj)      # after klp_clear_object_relocs()
            break


def klp_module_coming(k: Kernel, mod: Module) -> int:
    mod.klp_alive = True
    for patch in list(k.klp_patches):
        for obj in list(patch.obj_list):
            if not klp_is_module(obj) or obj.name != mod.name:
                continue
            obj.mod = True
            # klp_init_object_loaded() cannot fail in the model
            k.pr(f"livepatch: applying patch '{patch.name}' to loading module '{mod.name}'")
            ret = klp_pre_patch_callback(k, patch, obj)
            if ret:
                k.pr(f"livepatch: pre-patch callback failed for object '{obj.name}'")
                return _klp_module_coming_err(k, mod, patch, obj, ret)
            ret = klp_patch_object(k, patch, obj)
            if ret:
                k.pr(f"livepatch: failed to apply patch '{patch.name}' to module '{mod.name}' ({ret})")
                klp_post_unpatch_callback(k, patch, obj)
                return _klp_module_coming_err(k, mod, patch, obj, ret)
            if patch is not k.klp_transition_patch:
                klp_post_patch_callback(k, patch, obj)
            break
    return 0


def _klp_module_coming_err(k: Kernel, mod: Module, patch: KlpPatch, obj: KlpObject, ret: int) -> int:
    """klp_module_coming's err: label."""
    k.pr(f"livepatch: patch '{patch.name}' failed for module '{mod.name}', refusing to load module '{mod.name}'")
    mod.klp_alive = False
    obj.mod = False
    klp_cleanup_module_patches_limited(k, mod, patch)
    return ret


def klp_module_going(k: Kernel, mod: Module) -> None:
    mod.klp_alive = False
    klp_cleanup_module_patches_limited(k, mod, None)


# --------------------------------------------------------------------------- the module loader, reduced


def load_livepatch(k: Kernel, name: str, params=None) -> int:
    """insmod of a livepatch module: load_module() -> do_init_module() -> its init, which
    returns klp_enable_patch(). A non-zero return unloads the module again."""
    mod = k.modules[name]
    if mod.loaded:
        return k.refuse("EEXIST", EEXIST)
    mod.params = dict(k.spec.patch(name).params)
    mod.params.update(dict(params or ()))
    mod.refcnt = 0
    patch = klp_patch_struct(k, k.spec.patch(name))
    mod.loaded = True
    ret = callbacks.module_func(k, k.spec.patch(name), "init")   # (issue 14) the init's own work first
    if ret:
        mod.loaded = False
        return ret
    ret = klp_enable_patch(k, patch)
    if ret:
        callbacks.module_func(k, k.spec.patch(name), "init_error")
        mod.loaded = False
        mod.patch = None
        return ret
    mod.patch = patch
    return 0


def unload_livepatch(k: Kernel, name: str) -> int:
    """rmmod of a livepatch module: delete_module() refuses while the core holds its
    reference (on klp_patches, or forced); the module's exit does nothing."""
    mod = k.modules[name]
    if not mod.loaded:
        return k.refuse("ENOENT", -2)
    if mod.refcnt:
        return k.refuse("in use", EBUSY)
    callbacks.module_func(k, k.spec.patch(name), "exit")    # (issue 14) the module's exit
    mod.loaded = False
    mod.patch = None
    return 0


def load_target(k: Kernel, name: str, params=None) -> int:
    """insmod of a target module: prepare_coming_module() -> klp_module_coming(); on
    success do_init_module() runs its init. A refusal does not call klp_module_going."""
    mod = k.modules[name]
    if mod.loaded:
        return k.refuse("EEXIST", EEXIST)
    spec = next(m for m in k.spec.modules if m.name == name)
    mod.params = dict(spec.params)
    mod.params.update(dict(params or ()))
    mod.state = MODULE_STATE_COMING
    mod.loaded = True                        # find_module() sees it from here on
    ret = klp_module_coming(k, mod)
    if ret:
        mod.loaded = False
        mod.state = MODULE_STATE_LIVE
        return ret
    mod.sleeping_in = None
    if spec.sleeps is not None and mod.params.get(spec.sleeps[1]):   # the parameter's work goes to sleep
        mod.sleeping_in = switched_task_func(k, name, spec.sleeps[0])  # (parse_args: the setter, before init)
        callbacks.run_code(k, spec.sleeps[0], "")
    ret = callbacks.target_func(k, spec, "init", mod.params)     # do_one_initcall(mod->init)
    if ret:                                  # do_init_module's fail path: the init's own error
        callbacks.target_func(k, spec, "init_error", mod.params)     # label ran first (goto out);
        mod.state = MODULE_STATE_GOING       # MODULE_STATE_GOING, klp_module_going(), freed
        klp_module_going(k, mod)
        mod.loaded = False
        mod.state = MODULE_STATE_LIVE
        mod.sleeping_in = None               # (its task is gone with it)
        shadow.module_going(k, name)         # (issue 14) its objects are gone
        return ret
    mod.state = MODULE_STATE_LIVE
    return 0


def unload_target(k: Kernel, name: str) -> int:
    """rmmod of a target module: its exit runs, then klp_module_going()."""
    mod = k.modules[name]
    if not mod.loaded:
        return k.refuse("ENOENT", -2)
    spec = next(m for m in k.spec.modules if m.name == name)
    mod.state = MODULE_STATE_GOING
    callbacks.target_func(k, spec, "exit", mod.params)
    klp_module_going(k, mod)
    mod.loaded = False
    mod.sleeping_in = None
    mod.state = MODULE_STATE_LIVE
    shadow.module_going(k, name)             # (issue 14) its objects are gone
    return 0


def param_store(k: Kernel, owner: str, name: str, value: int) -> int:
    """echo VALUE > /sys/module/OWNER/parameters/NAME: the module's variable, nothing else."""
    mod = k.modules[owner]
    if not mod.loaded:
        return k.refuse("ENOENT", -2)
    spec = next((m for m in k.spec.modules if m.name == owner), None)
    if spec is not None and spec.sleeps is not None and spec.sleeps[1] == name:
        if mod.params.get(name) and not value:            # the sleeping task wakes (in its own patch
            callbacks.module_code(k, spec, spec.wake, "", task_state(k, spec))   # state) and leaves the function
            mod.sleeping_in = None
        elif not mod.params.get(name) and value:          # a task calls it and sleeps in it
            mod.sleeping_in = switched_task_func(k, owner, spec.sleeps[0])
            callbacks.run_code(k, spec.sleeps[0], "")
    mod.params[name] = value
    return 0
