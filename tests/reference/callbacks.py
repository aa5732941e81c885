"""The spec's statements, run the way a test module's callback runs its C code.

Each statement is the C the docs give it (docs/spec-format.md "Statements", and the
precise readings of docs/properties.md): `alloc S` is `data = kzalloc()`, `take S` is
`state->data = prev_state->data`, and so on. Memory is a list of blocks `[live, content]`
and a pointer is a block number or None (NULL). What the properties watch is reported to
`k.mon` (monitors.py) at the statement that does it; the rules of the properties are
there, not here.
"""
from __future__ import annotations

from . import klp, shadow

MODULE_STATE_TEXT = {        # module_state[] of test_klp_callbacks_demo.c
    "LIVE": "[MODULE_STATE_LIVE] Normal state",
    "COMING": "[MODULE_STATE_COMING] Full formed, running module_init",
    "GOING": "[MODULE_STATE_GOING] Going away",
}
_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}


def pre_patch(k, patch, obj) -> int:
    """The pre_patch callback: its statements; when it fails, its cleanup label
    (`pre_patch_error`) runs before it returns the error."""
    ret = run(k, patch, obj, "pre_patch")
    if ret:
        run(k, patch, obj, "pre_patch_error")
    return ret


class StateSite:
    """(kernel "state-callbacks") A state's callbacks as `run` and `statement` see an object:
    no name, so `banner` prints the label, `P: CALLBACK_callback: state ID`
    (docs/spec-format.md); the label is the fallible points' object too; the spec's
    [states.S] holds the statements (one set of callbacks per state, whichever patch runs them)."""

    def __init__(self, k, state):
        self.name = None
        self.label = f"state {state.id}"
        self.spec = next(d for d in k.spec.states if d.id == state.id)


def state_pre_patch(k, patch, state) -> int:
    """A state's pre_patch (v1 01/19): its statements; no cleanup label (struct
    klp_state_callbacks has none: the series rolls back with the other states' post_unpatch)."""
    return run(k, patch, StateSite(k, state), "pre_patch")


def state_run(k, patch, state, cb: str) -> None:
    """post_patch, pre_unpatch, post_unpatch, or the shadow_dtor (once per variable freed)."""
    run(k, patch, StateSite(k, state), cb)


def run(k, patch, obj, cb: str) -> int:
    """Run one callback's statements in order; the value it returns."""
    for index, st in enumerate(obj.spec.cb(cb)):
        if st.cond is not None and not holds(k, patch, st.cond, k.modules[patch.name].params):
            continue
        ret = statement(k, patch, obj, cb, index, st)
        if ret is not None:
            return ret
    return 0


def holds(k, patch, cond, params) -> bool:
    if getattr(cond, "shadow", None) is not None:          # (issue 14) `shadow SV`, `count SV cmp N`
        var = shadow.klp_shadow_get(k, cond.state, getattr(cond, "obj", None))
        count = 0 if var is None else var["count"]
        value = var is not None if cond.shadow == "exists" else _CMP[cond.cmp](count, cond.value)
    elif cond.param:
        value = bool(params.get(cond.state))
    else:
        prev = klp.klp_get_prev_state(k, _id(k, cond.state))
        value = prev is not None and (cond.cmp is None or _CMP[cond.cmp](prev.version, cond.value))
    return value != cond.negate


def _id(k, state: str) -> int:
    return next(s.id for s in k.spec.states if s.name == state)


def statement(k, patch, obj, cb: str, index: int, st) -> int | None:
    """One statement. Returns the callback's return value when it ends the callback."""
    a = st.action
    if a == "return":
        return 0
    if a == "fail":
        if st.arg is not None:                              # `fail PARAM`: return the parameter
            value = k.modules[patch.name].params.get(st.arg, 0)
            return value if value else None
        return st.errno
    if a == "maybe-fail":
        return st.errno if k.choose((patch.name, obj.label, cb, index)) else None
    if a == "log":
        k.pr(f"{patch.name}: {st.arg}")
        return None
    if a == "banner":                                       # callback_info()
        where = obj.label if not obj.name else f"{obj.name} -> {MODULE_STATE_TEXT[k.modules[obj.name].state]}"
        k.pr(f"{patch.name}: {cb}_callback: {where}")
        return None
    if a.startswith("shadow-") or a in ("get", "put"):
        return shadow.statement(k, patch.spec, (obj.label, cb), index, st)
    s = st.arg
    state = klp.klp_get_state(patch, _id(k, s))             # this patch's own struct klp_state
    mon = k.mon
    if a == "alloc":
        if cb == "pre_patch" and k.choose((patch.name, obj.label, cb, index)):
            state.data = None                               # kzalloc() returned NULL
            return klp.ENOMEM
        k.blocks.append([True, "zero"])
        state.data = len(k.blocks) - 1
    elif a == "free":
        kfree(k, state.data)
    elif a == "save":                                       # *data = value
        write(k, state.data, k.values[s])
    elif a == "restore":                                    # value = *data
        content = read(k, state.data)
        if content is not None:
            mon.value_written(k, s, content, writer=(patch, cb))
    elif a == "modify":
        mon.value_written(k, s, f"v{state.version}")
    elif a == "reset":
        mon.value_written(k, s, "original", writer=(patch, cb))
    elif a in ("take", "copy", "free-prev"):
        prev = klp.klp_get_prev_state(k, state.id)
        if prev is None:
            mon.violate("no-null-deref", f"{a} {s} with klp_get_prev_state() NULL")
        elif a == "take":
            state.data = prev.data                          # a no-op when prev is this state
        elif a == "copy":                                   # *data = *prev_state->data
            content = read(k, prev.data)                    # both accesses are judged; the copy
            if content is not None:                         # happens when neither pointer is NULL
                write(k, state.data, content)
            elif state.data is None:
                mon.violate("no-null-deref", "copy into a NULL data")
            elif not k.blocks[state.data][0]:
                mon.violate("no-use-after-free", "copy into a freed block")
        else:
            kfree(k, prev.data)
    else:
        raise AssertionError(f"unknown action {a}")
    return None


def kfree(k, ptr) -> None:
    if ptr is None:                                         # kfree(NULL)
        return
    if not k.blocks[ptr][0]:
        k.mon.violate("no-double-free", "kfree of a freed block")
        return
    k.blocks[ptr][0] = False


def read(k, ptr):
    """*ptr; None when ptr is NULL (the read does not happen). A freed block still holds
    its last content."""
    if ptr is None:
        k.mon.violate("no-null-deref", "read through NULL")
        return None
    if not k.blocks[ptr][0]:
        k.mon.violate("no-use-after-free", "read of a freed block")
    return k.blocks[ptr][1]


def write(k, ptr, content) -> None:
    if ptr is None:
        k.mon.violate("no-null-deref", "write through NULL")
        return
    if not k.blocks[ptr][0]:
        k.mon.violate("no-use-after-free", "write to a freed block")
    k.blocks[ptr][1] = content


def target_func(k, module_spec, func: str, params) -> int:
    """A target module's init, init_error or exit: its `log` lines (`if|unless param`
    checked) and (issue 14) its shadow API calls, in order; the value it returns (init: an
    `or fail` whose call returned NULL: goto out with that error)."""
    echo = shadow.Echo(k, module_spec) if module_spec.echoes else None
    for index, st in enumerate(getattr(module_spec, func)):
        if st.cond is not None and not holds(k, None, st.cond, params):
            continue
        if st.action == "log":
            k.pr(f"{module_spec.name}: {st.arg}")
            continue
        ret = shadow.statement(k, module_spec, (f"module {module_spec.name}", func), index, st, echo)
        if ret:
            return ret
    return 0


def run_code(k, func: str, arg: str, state: int | None = None) -> None:
    """(issue 15) `call FUNC "ARG"`: a task in patch state `state` (default: a new one, at the
    transition's target state) runs the version of FUNC that klp_ftrace_handler picks on the
    func_stack of the module object that has it; the target module's own code when it picks
    the original. `{arg}` in a log line is ARG."""
    state = k.klp_target_state if state is None else state
    for m in k.spec.modules:
        if func not in dict(m.code):
            continue
        owner = klp.klp_ftrace_handler(k, m.name, func, state)
        if owner is not None:
            module_func(k, k.spec.patch(owner), func, arg)
        else:
            module_code(k, m, dict(m.code)[func], arg, state)


def module_code(k, m, stmts, arg: str, state: int) -> None:
    """A target module's statements run by a task in patch state `state` (its code, its
    sleeps.wake): log lines with ARG for {arg}, calls."""
    params = k.modules[m.name].params
    for st in stmts:
        if st.cond is not None and not holds(k, None, st.cond, params):
            continue
        if st.action == "call":
            run_code(k, st.arg, st.value or "", state)
        else:
            k.pr(f"{m.name}: {st.arg.replace('{arg}', arg)}")


def module_func(k, patch_spec, func: str, arg: str = "") -> int:
    """The livepatch module's own init, init_error or exit, or the new function `func` of
    its code (issue 14): log, return, fail (init), modify/reset of its states, the shadow
    actions. The value it returns (init: non-zero refuses the module)."""
    params = k.modules[patch_spec.name].params
    for index, st in enumerate(patch_spec.module_func(func)):
        if st.cond is not None and not holds(k, None, st.cond, params):
            continue
        a = st.action
        if a == "return":
            return 0
        if a == "fail":
            if st.arg is not None:
                value = params.get(st.arg, 0)
                if value:
                    return value
                continue
            return st.errno
        if a == "maybe-fail":
            if k.choose((patch_spec.name, "module", func, index)):
                return st.errno
        elif a == "log":                    # (a new function's text argument: none from the `call` operation)
            text = st.arg if func in ("init", "init_error", "exit") else st.arg.replace("{arg}", arg)
            k.pr(f"{patch_spec.name}: {text}")
        elif a == "call":                   # (issue 15) a function calling another
            run_code(k, st.arg, st.value or "")
        elif a == "modify":
            k.mon.value_written(k, st.arg, f"v{dict(patch_spec.states)[st.arg]}", writer=(patch_spec, func))
        elif a == "reset":
            k.mon.value_written(k, st.arg, "original", writer=(patch_spec, func))
        else:
            ret = shadow.statement(k, patch_spec, ("module", func), index, st)
            if ret:
                return ret
    return 0
