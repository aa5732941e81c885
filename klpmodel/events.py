"""What happens during one operation, as kernel.step tells it: one dataclass per event kind,
each with the one renderer every consumer shares.

`kernel.step` emits these (concrete runs only); `klog` turns a run's events into the kernel
log the selftests capture (`Event.log`), `report` and `explain` describe the model's side of
the same run (`Event.note`), and the review's coverage reads the lifecycle edge an event
took (`Event.edge`, `Force.edges`) instead of reconstructing it. Nothing here decides a
kernel rule.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, NamedTuple

if TYPE_CHECKING:
    from .spec import Stmt

# the phases of one patch (the nodes of the lifecycle graph, kernel.lifecycle)
UNLOADED, PATCHING, ENABLED, UNPATCHING, OFFLIST = range(5)
PHASES = ("unloaded", "patching", "enabled", "unpatching", "off-list")
LISTED = (PATCHING, ENABLED, UNPATCHING)            # on klp_patches (§1)
IN_TRANSITION = (PATCHING, UNPATCHING)              # == klp_transition_patch (§1)

MODULE_STATE = {
    "COMING": "[MODULE_STATE_COMING] Full formed, running module_init",
    "LIVE": "[MODULE_STATE_LIVE] Normal state",
    "GOING": "[MODULE_STATE_GOING] Going away",
}
# what insmod prints for an errno (kmod's mod_strerror; -EINVAL is special-cased there)
INSMOD_ERROR = {-22: "Invalid parameters", -19: "No such device", -16: "Device or resource busy",
                -12: "Cannot allocate memory", -17: "File exists", -1: "Operation not permitted"}
STRERROR = {-22: "Invalid argument", -19: "No such device", -16: "Device or resource busy",
            -12: "Cannot allocate memory", -17: "File exists", -1: "Operation not permitted"}
ERRNO_NAMES = {-1: "-EPERM", -2: "-ENOENT", -5: "-EIO", -6: "-ENXIO", -7: "-E2BIG", -11: "-EAGAIN", -12: "-ENOMEM",
               -14: "-EFAULT", -16: "-EBUSY", -17: "-EEXIST", -19: "-ENODEV", -22: "-EINVAL", -28: "-ENOSPC",
               -38: "-ENOSYS", -524: "-ENOTSUPP"}


def errno_name(errno: int) -> str:
    return ERRNO_NAMES.get(errno, str(errno))


def insmod_error(name: str, errno: int, era: str = "insmod") -> str:
    """The loader's error line that load_failing_mod writes into the log (selftests.md §0.2)."""
    if era == "modprobe":
        return f"modprobe: ERROR: could not insert '{name}': {STRERROR.get(errno, f'errno {errno}')}"
    return f"insmod: ERROR: could not insert module test_modules/{name}.ko: {INSMOD_ERROR.get(errno, f'errno {errno}')}"


class Incompatible(str):
    """What klp_is_patch_compatible refuses (kernel.compatible, §2.2): loading `new` while
    `old` is installed. The sentence (it is one) and what the rule compared, so that reports
    can summarise many refusals by rule: `rule` is "version" (new declares `state` with
    `version` below old's `installed`) or "undeclared" (new is cumulative and does not
    declare old's `state`; `version` is None); under kernel replace-set also
    "undeclared-in-set" (old is in new's set), "shared-state" (old, of another set, declares
    `state` too) and "shared-function" (`state` is the function both patch); under kernel
    state-callbacks "undeclared-block-disable" (new is cumulative and lacks old's `state`,
    which has block_disable; no versions)."""

    new: str
    old: str
    rule: str
    state: str
    version: int | None
    installed: int

    def __new__(cls, why: str, new: str, old: str, rule: str, state: str, version: int | None,
                installed: int) -> Incompatible:
        self = super().__new__(cls, why)
        self.new, self.old, self.rule, self.state = new, old, rule, state
        self.version, self.installed = version, installed
        return self


class Refusal(str):
    """Why the kernel (or the module loader, or rmmod) refuses an operation: the sentence
    (it is one), the errno the user sees, the kernel's own log line when it prints one, and
    for a load the compatibility rule refuses, that rule's `Incompatible` (`cause`)."""

    errno: int
    kernel: str | None
    cause: Incompatible | None

    def __new__(cls, why: str, errno: int, kernel: str | None = None, cause: Incompatible | None = None) -> Refusal:
        self = super().__new__(cls, why)
        self.errno, self.kernel, self.cause = errno, kernel, cause
        return self

    def lines(self, word: str, name: str | None, era: str = "insmod") -> list[str]:
        """What the kernel and the user-space tool print when `word NAME` is refused."""
        if word in ("load", "modload"):
            return ([self.kernel] if self.kernel else []) + [insmod_error(name or "", self.errno, era)]
        if word in ("disable", "reverse", "force"):
            return ([self.kernel] if self.kernel else []) + [f"echo: write error: {STRERROR.get(self.errno, STRERROR[-22])}"]
        if word in ("rmmod", "modunload"):
            return [f"rmmod: ERROR: Module {name} is {'not currently loaded' if self.errno == -2 else 'in use'}"]
        return []


class Edge(NamedTuple):
    """A lifecycle edge (kernel.lifecycle): source phase, target phase, kernel action."""
    src: int
    dst: int
    event: str


@dataclass(frozen=True)
class Where:
    """Where a statement runs: for reports and for the spec line that broke a property."""
    patch: str
    obj: str
    callback: str
    stmt: Stmt
    index: int = 0                 # the statement's place in the callback's list (from 0)

    def __repr__(self) -> str:
        return f"{self.patch}/{self.obj}/{self.callback}: '{self.stmt.text}' (line {self.stmt.line})"


# where a property broke when it is not a statement (a `Where`): the kernel event that judged it
@dataclass(frozen=True)
class FailedLoad:
    """error-cleanup: the failed load of `patch`."""
    patch: str


@dataclass(frozen=True)
class RevertedLoad:
    """revert-restores: a reversed load's transition completed unpatched."""


@dataclass(frozen=True)
class StateLeft:
    """disable-restores: `state`, declared by no installed patch any more, is not original."""
    state: str


@dataclass(frozen=True)
class Quiescent:
    """no-leak: a quiescent point with a live block nobody points at."""


@dataclass(frozen=True)
class Uses:
    """no-null-deref / no-use-after-free: enabled `patch`'s code uses `state`'s data."""
    patch: str
    state: str


@dataclass(frozen=True)
class NoWayBack:
    """recoverable: no sequence of operations gets back to a clean kernel, because `reason`."""
    reason: str


@dataclass(frozen=True)
class ShadowLeft:
    """shadow-leak: shadow variable `shadow` exists and no loaded livepatch module lists it."""
    shadow: str


@dataclass(frozen=True)
class ShadowUses:
    """shadow-use-after-free: enabled `patch`'s code needs `shadow`, which does not exist."""
    patch: str
    shadow: str


@dataclass(frozen=True)
class Orphaned:
    """shadow-orphan: target `module` unloads while `shadow` is attached to its objects."""
    module: str
    shadow: str


Site = Where | FailedLoad | RevertedLoad | StateLeft | Quiescent | Uses | NoWayBack | ShadowLeft | ShadowUses | Orphaned


@dataclass
class LogContext:
    """What rendering one operation's log needs besides its events: the operation word and
    the module it names (module events show the module's state in callback banners), the
    selftest era, and the errno the loader prints when the load fails (the last failure)."""
    word: str
    module: str | None = None
    era: str = "insmod"
    errno: int | None = None
    # (issue 14, a conformance aid) the echoing test module's ptr_id() table for this run of
    # its function (test_klp_shadow_vars.c: PTR0 is NULL, the others numbered when first
    # printed), and how many data buffers each pair has had (each creation is a new pointer)
    going: bool = False         # (issue 14) the module's init failed: MODULE_STATE_GOING from here on
    ptrs: dict[object, int] = field(default_factory=dict)
    gens: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def ptr_id(self, what: object) -> int:
        """test_klp_shadow_vars.c's ptr_id(): the number of a pointer, given at its first print."""
        if not self.ptrs:
            self.ptrs[None] = 0                   # the module's init calls ptr_id(NULL) first
        return int(self.ptrs.setdefault(what, len(self.ptrs)))

    def data(self, shadow: str, obj: str | None) -> tuple[str, str, str | None, int]:
        """The current data pointer of pair <obj, shadow> (a new one per creation)."""
        return ("data", shadow, obj, self.gens.get((shadow, obj), 0))


@dataclass(frozen=True)
class Event:
    """Something kernel.step did. `log` is its kernel log lines, `note` its description in
    the model's words (reports), `edge` the lifecycle edge it took (coverage)."""
    kind: ClassVar[str] = ""

    def log(self, ctx: LogContext) -> list[str]:
        return []

    def note(self) -> str | None:
        return None

    @property
    def edge(self) -> tuple[str, Edge] | None:
        """(patch, the lifecycle edge it took), for an event that moves one patch."""
        return None

    def describe(self, ctx: LogContext) -> list[str]:
        """The kernel's lines, else the model's note: what a report shows for the event."""
        lines = self.log(ctx)
        if lines:
            return lines
        text = self.note()
        return [text] if text else []


# ------------------------------------------------------------------ the patch's lifecycle

@dataclass(frozen=True)
class LoadStart(Event):
    """klp_enable_patch: compatible and not busy; the patch joins klp_patches (§2-3)."""
    kind: ClassVar[str] = "load-start"
    patch: str
    taken: Edge

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: enabling patch '{self.patch}'", f"livepatch: '{self.patch}': initializing patching transition"]

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class LoadStarted(Event):
    kind: ClassVar[str] = "load-started"
    patch: str

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: '{self.patch}': starting patching transition"]


@dataclass(frozen=True)
class LoadCancel(Event):
    """§3.1: a pre_patch or the patching of an object failed; cancel, going to unpatch."""
    kind: ClassVar[str] = "load-cancel"
    patch: str
    taken: Edge

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: failed to enable patch '{self.patch}'",
                f"livepatch: '{self.patch}': canceling patching transition, going to unpatch",
                f"livepatch: '{self.patch}': completing unpatching transition"]

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class LoadCancelled(Event):
    kind: ClassVar[str] = "load-cancelled"
    patch: str
    insmod: bool = True     # the loader's line follows at once (no init_error of the module's to run first)

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: '{self.patch}': unpatching complete"] + \
            ([insmod_error(self.patch, ctx.errno or -22, ctx.era)] if self.insmod else [])


@dataclass(frozen=True)
class Complete(Event):
    """klp_complete_transition begins (§4.2)."""
    kind: ClassVar[str] = "complete"
    patch: str
    taken: Edge

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: '{self.patch}': completing {PHASES[self.taken.src]} transition"]

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class Completed(Event):
    kind: ClassVar[str] = "completed"
    patch: str
    phase: int                      # the phase the patch completed into

    @property
    def patched(self) -> bool:
        return self.phase == ENABLED

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: '{self.patch}': {'patching' if self.patched else 'unpatching'} complete"]


@dataclass(frozen=True)
class Replaced(Event):
    """A completing cumulative patch drops this one (§4.2, §7)."""
    kind: ClassVar[str] = "replaced"
    patch: str
    taken: Edge

    def note(self) -> str:
        return f"'{self.patch}' is replaced: it leaves klp_patches, none of its callbacks run"

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class Reverse(Event):
    """klp_reverse_transition (§6.2)."""
    kind: ClassVar[str] = "reverse"
    patch: str
    taken: Edge

    def log(self, ctx: LogContext) -> list[str]:
        frm, to = ("patching", "unpatching") if self.taken.src == PATCHING else ("unpatching", "patching")
        return [f"livepatch: '{self.patch}': reversing transition from {frm} to {to}",
                f"livepatch: '{self.patch}': starting {to} transition"]

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class DisableStart(Event):
    kind: ClassVar[str] = "disable-start"
    patch: str
    taken: Edge

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: '{self.patch}': initializing unpatching transition"]

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class DisableStarted(Event):
    kind: ClassVar[str] = "disable-started"
    patch: str

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: '{self.patch}': starting unpatching transition"]


@dataclass(frozen=True)
class Rmmod(Event):
    """The livepatch module is removed (§10): no livepatch line."""
    kind: ClassVar[str] = "rmmod"
    patch: str
    taken: Edge

    def note(self) -> str:
        return f"module {self.patch} is removed"

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class Force(Event):
    """klp_force_transition (§6.4): every task switched; `edges`: the force edge of every
    listed patch, `marked` the patches it marked forced."""
    kind: ClassVar[str] = "force"
    edges: tuple[tuple[str, Edge], ...] = ()
    marked: tuple[str, ...] = ()

    def log(self, ctx: LogContext) -> list[str]:
        return ["livepatch: forcing remaining tasks to the patched state"]

    def note(self) -> str:
        return "force: every task switched" + (f"; marked forced: {', '.join(self.marked)}" if self.marked else "")


# ------------------------------------------------------------------ callbacks and statements

STATE_OBJ = "state "        # (kernel "state-callbacks") Where.obj of a per-state callback: "state ID"


@dataclass(frozen=True)
class StateCallback(Event):
    """(kernel "state-callbacks", proposals.md §A.4) a per-state callback of a patch runs."""
    kind: ClassVar[str] = "state-callback"
    patch: str
    state: str
    callback: str
    obj: str = ""                   # Where.obj of its statements: "state ID"

    def note(self) -> str:
        return f"{self.patch}: {self.callback}(state {self.state})"


@dataclass(frozen=True)
class ShadowFreeAll(Event):
    """(kernel "state-callbacks", §A.4.3) an is_shadow state is removed: klp_shadow_free_all(id, dtor)."""
    kind: ClassVar[str] = "shadow-free-all"
    patch: str
    state: str

    def note(self) -> str:
        return f"{self.patch}: klp_shadow_free_all(id of {self.state}, shadow_dtor)"


@dataclass(frozen=True)
class Callback(Event):
    kind: ClassVar[str] = "callback"
    patch: str
    obj: str
    callback: str

    def note(self) -> str:
        return f"{self.patch}: {self.callback}({self.obj})"


@dataclass(frozen=True)
class Ran(Event):
    """A statement whose condition held (`ran`) or not; `prev`: what klp_get_prev_state
    returned for it, (state, patch or None), when it asked."""
    kind: ClassVar[str] = "stmt"
    where: Where
    ran: bool
    prev: tuple[str, str | None] | None = None

    def note(self) -> str:
        st = self.where.stmt
        prev = f"   [klp_get_prev_state({self.prev[0]}) = {self.prev[1] or 'NULL'}]" if self.prev else ""
        return (f"    {st.text:<48} line {st.line}" if self.ran else f"    (skipped) {st.text:<38} line {st.line}") + prev


@dataclass(frozen=True)
class AllocFailed(Event):
    """An `alloc` in pre_patch failed (the explored choice): data = NULL, -ENOMEM."""
    kind: ClassVar[str] = "alloc-failed"
    where: Where

    def log(self, ctx: LogContext) -> list[str]:
        ctx.errno = -12
        return []

    def note(self) -> str:
        return "    -> the allocation fails (explored choice): data = NULL, fails with -ENOMEM"


@dataclass(frozen=True)
class Failed(Event):
    """`fail`/`maybe-fail`: the callback returns errno."""
    kind: ClassVar[str] = "failed"
    where: Where
    errno: int

    def log(self, ctx: LogContext) -> list[str]:
        ctx.errno = self.errno
        return []

    def note(self) -> str:
        chosen = " (explored choice)" if self.where.stmt.action == "maybe-fail" else ""
        return f"    -> fails with {errno_name(self.errno)}{chosen}"


@dataclass(frozen=True)
class PrePatchFailed(Event):
    kind: ClassVar[str] = "pre-patch-failed"
    patch: str
    obj: str

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: pre-patch callback failed for object '{self.obj}'"]


@dataclass(frozen=True)
class PatchFailed(Event):
    """klp_patch_object failed (the optional patching fault, §16): -EBUSY from ftrace. In
    __klp_enable_patch (`module` None) or in klp_module_coming for `module`."""
    kind: ClassVar[str] = "patch-failed"
    patch: str
    obj: str
    func: str | None                # the function whose ftrace handler was refused
    module: str | None = None

    def log(self, ctx: LogContext) -> list[str]:
        ctx.errno = -16
        out = [f"livepatch: failed to register ftrace handler for function '{self.func}' (-16)"] if self.func else []
        return out + [f"livepatch: failed to patch object '{self.obj}'" if self.module is None else
                      f"livepatch: failed to apply patch '{self.patch}' to module '{self.obj}' (-16)"]

    def note(self) -> str:
        return f"{self.patch}: patching object {self.obj} fails (the explored patching fault): -EBUSY"


@dataclass(frozen=True)
class Log(Event):
    """`log "TEXT"`: the callback's pr_info line."""
    kind: ClassVar[str] = "log"
    where: Where
    text: str

    def log(self, ctx: LogContext) -> list[str]:
        return [f"{self.where.patch}: {self.text}"]


@dataclass(frozen=True)
class Banner(Event):
    """`banner`: the test modules' callback_info() line."""
    kind: ClassVar[str] = "banner"
    where: Where

    def log(self, ctx: LogContext) -> list[str]:
        w = self.where
        if w.obj == "vmlinux" or w.obj.startswith(STATE_OBJ):     # (state-callbacks: "state ID", §A.6)
            return [f"{w.patch}: {w.callback}_callback: {w.obj}"]
        state = ("GOING" if ctx.going else {"modload": "COMING", "modunload": "GOING"}.get(ctx.word)) \
            if w.obj == ctx.module else None
        return [f"{w.patch}: {w.callback}_callback: {w.obj} -> {MODULE_STATE[state or 'LIVE']}"]


@dataclass(frozen=True)
class Leaked(Event):
    """A live block became reachable from no installed patch."""
    kind: ClassVar[str] = "leaked"
    state: str
    slot: int                       # 1-based: block state#slot

    def note(self) -> str:
        return f"    block {self.state}#{self.slot} is now reachable from no installed patch (leaked)"


@dataclass(frozen=True)
class Judged(Event):
    """The code a property judges was reached (the review's vacuity check)."""
    kind: ClassVar[str] = "judged"
    prop: str


# ------------------------------------------------------------------ target modules

@dataclass(frozen=True)
class ModLoad(Event):
    kind: ClassVar[str] = "modload"
    module: str

    def note(self) -> str:
        return f"target module '{self.module}' is loading (klp_module_coming)"


@dataclass(frozen=True)
class ModUnload(Event):
    kind: ClassVar[str] = "modunload"
    module: str

    def note(self) -> str:
        return f"target module '{self.module}' is going (klp_module_going)"


@dataclass(frozen=True)
class Applying(Event):
    kind: ClassVar[str] = "applying"
    patch: str
    module: str
    taken: Edge

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: applying patch '{self.patch}' to loading module '{self.module}'"]

    @property
    def edge(self) -> tuple[str, Edge]:
        return self.patch, self.taken


@dataclass(frozen=True)
class Refused(Event):
    kind: ClassVar[str] = "refused"
    patch: str
    module: str

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: patch '{self.patch}' failed for module '{self.module}', refusing to load module '{self.module}'"]


@dataclass(frozen=True)
class ModLoadFailed(Event):
    kind: ClassVar[str] = "modload-failed"
    module: str

    def log(self, ctx: LogContext) -> list[str]:
        return [insmod_error(self.module, ctx.errno or -22, ctx.era)]

    def note(self) -> str:
        return f"the load of module '{self.module}' fails; its init never runs"


@dataclass(frozen=True)
class Reverting(Event):
    kind: ClassVar[str] = "reverting"
    patch: str
    module: str
    taken: Edge | None = field(default=None)     # None: the rollback of a refused module

    def log(self, ctx: LogContext) -> list[str]:
        return [f"livepatch: reverting patch '{self.patch}' on unloading module '{self.module}'"]

    @property
    def edge(self) -> tuple[str, Edge] | None:
        return None if self.taken is None else (self.patch, self.taken)


@dataclass(frozen=True)
class ModLog(Event):
    """A target module's own init/exit line."""
    kind: ClassVar[str] = "modlog"
    module: str
    text: str

    def log(self, ctx: LogContext) -> list[str]:
        return [f"{self.module}: {self.text}"]


# ------------------------------------------------------------------ the livepatch module's init/exit, shadow variables

@dataclass(frozen=True)
class ModuleFunc(Event):
    """(klpmodel) The livepatch module's own init (before klp_enable_patch), init_error (its
    error path when klp_enable_patch failed) or exit (at rmmod)."""
    kind: ClassVar[str] = "module-func"
    patch: str
    func: str

    def note(self) -> str:
        return f"{self.patch}: module {self.func}"


@dataclass(frozen=True)
class Call(Event):
    """(klpmodel) A task runs the patch's new code once (the `call` operation)."""
    kind: ClassVar[str] = "call"
    patch: str
    func: str

    def note(self) -> str:
        return f"a task runs {self.patch}'s {self.func}"


@dataclass(frozen=True)
class InitFailed(Event):
    """The livepatch module's init returned an error (the last failure's): before
    klp_enable_patch, so that no livepatch line is printed, or (`enable`) after
    klp_enable_patch failed and init_error ran. The module is refused."""
    kind: ClassVar[str] = "init-failed"
    patch: str
    enable: bool = False

    def log(self, ctx: LogContext) -> list[str]:
        return [insmod_error(self.patch, ctx.errno or -22, ctx.era)]

    def note(self) -> str:
        return f"{self.patch}'s init returns {'the error of klp_enable_patch' if self.enable else 'an error'}: the module is refused"


def shadow_pair(shadow_id: int) -> str:
    """The `<obj, id>` of the kernel's shadow messages (the object's address is a runtime value)."""
    return f"<$OBJ, {shadow_id:x}>"


@dataclass(frozen=True)
class ShadowDuplicate(Event):
    """klp_shadow_alloc on a pair that exists: WARN, returns NULL (§14)."""
    kind: ClassVar[str] = "shadow-duplicate"
    where: Where
    shadow: str
    id: int

    def log(self, ctx: LogContext) -> list[str]:
        return [f"Duplicate shadow variable {shadow_pair(self.id)}"]

    def note(self) -> str:
        return f"    -> {self.shadow} exists already: WARN, klp_shadow_alloc returns NULL"


@dataclass(frozen=True)
class ShadowCtorFailed(Event):
    """The constructor failed (an explored choice): the buffer is freed, NULL returned (§14)."""
    kind: ClassVar[str] = "shadow-ctor-failed"
    where: Where
    shadow: str
    id: int
    errno: int
    returned: bool = False      # the callback (pre_patch, init) returns the error: the loader prints it

    def log(self, ctx: LogContext) -> list[str]:
        if self.returned:
            ctx.errno = self.errno
        return [f"livepatch: Failed to construct shadow variable {shadow_pair(self.id)} ({self.errno})"]

    def note(self) -> str:
        return f"    -> the constructor of {self.shadow} fails (explored choice): NULL"


@dataclass(frozen=True)
class ShadowCall(Event):
    """(a conformance aid) One shadow API call of a target module with echoes_shadow_calls, as
    test_klp_shadow_vars.c's wrappers print it: the constructor's line (alloc, get_or_alloc
    that created the pair) or the destructor's (free, free_all with a dtor, once per freed
    pair) first, then the call with its result. The model decides `got` (not NULL),
    `created` and `dtors`; the PTR numbers are the module's ptr_id(), per run of its function
    (LogContext.ptrs). The wrappers pass shadow_ctor with the pair's own field as ctor_data,
    sizeof a pointer (8) and GFP_KERNEL, and shadow_dtor (or NULL) as the statement says."""
    kind: ClassVar[str] = "shadow-call"
    module: str
    func: str                   # get, alloc, get_or_alloc, free, free_all
    shadow: str
    id: int
    obj: str | None
    got: bool = False
    created: bool = False
    dtor: bool = False
    dtors: tuple[str | None, ...] = ()     # the objects whose pair the destructor ran for

    def log(self, ctx: LogContext) -> list[str]:
        m, ptr, sid, out = self.module, ctx.ptr_id, f"0x{self.id:x}", []
        result = ctx.data(self.shadow, self.obj) if self.got else None
        if self.func == "get":
            o = ptr(("obj", self.obj))
            return [f"{m}: klp_shadow_get(obj=PTR{o}, id={sid}) = PTR{ptr(ctx.data(self.shadow, self.obj) if self.got else None)}"]
        if self.func in ("alloc", "get_or_alloc"):
            field_ = ("field", self.shadow, self.obj)
            ptr(field_)                                       # ptr_id(pnfields[i]) before the call
            if self.created:
                ctx.gens[(self.shadow, self.obj)] = ctx.gens.get((self.shadow, self.obj), 0) + 1
                result = ctx.data(self.shadow, self.obj)
                d = ptr(result)
                out.append(f"{m}: shadow_ctor: PTR{d} -> PTR{ptr(field_)}")
            o = ptr(("obj", self.obj))
            f = ptr("shadow_ctor")
            fd = ptr(field_)
            r = ptr(result)
            return out + [f"{m}: klp_shadow_{self.func}(obj=PTR{o}, id={sid}, size=8, gfp_flags=GFP_KERNEL), "
                          f"ctor=PTR{f}, ctor_data=PTR{fd} = PTR{r}"]
        for obj in self.dtors:                                # free, free_all
            o = ptr(("obj", obj))
            out.append(f"{m}: shadow_dtor(obj=PTR{o}, shadow_data=PTR{ptr(ctx.data(self.shadow, obj))})")
        if self.func == "free":
            o = ptr(("obj", self.obj))
            return out + [f"{m}: klp_shadow_free(obj=PTR{o}, id={sid}, dtor=PTR{ptr('shadow_dtor' if self.dtor else None)})"]
        return out + [f"{m}: klp_shadow_free_all(id={sid}, dtor=PTR{ptr('shadow_dtor' if self.dtor else None)})"]


@dataclass(frozen=True)
class Expected(Event):
    """(a conformance aid) test_klp_shadow_vars.c's check line: the call returned what the
    module expects (`shadow` None: NULL; else the data it first got for the pair, holding the
    pair's field)."""
    kind: ClassVar[str] = "expected"
    module: str
    shadow: str | None
    obj: str | None

    def log(self, ctx: LogContext) -> list[str]:
        if self.shadow is None:
            return [f"{self.module}:   got expected NULL result"]
        d = ctx.ptr_id(ctx.data(self.shadow, self.obj))
        return [f"{self.module}:   got expected PTR{d} -> PTR{ctx.ptr_id(('field', self.shadow, self.obj))} result"]


@dataclass(frozen=True)
class ModGoing(Event):
    """A target module's init failed: do_init_module sets MODULE_STATE_GOING before
    klp_module_going (the callbacks' banners show it)."""
    kind: ClassVar[str] = "mod-going"
    module: str

    def log(self, ctx: LogContext) -> list[str]:
        ctx.going = True
        return []

    def note(self) -> str:
        return f"the init of module '{self.module}' failed: it goes (klp_module_going)"


@dataclass(frozen=True)
class ModInitFailed(Event):
    """A target module's init returned an error (`or fail`): after its error path the module
    goes (klp_module_going) and the loader prints the error."""
    kind: ClassVar[str] = "mod-init-failed"
    module: str

    def log(self, ctx: LogContext) -> list[str]:
        return [insmod_error(self.module, ctx.errno or -22, ctx.era)]

    def note(self) -> str:
        return f"the init of module '{self.module}' fails: the module is not loaded"


@dataclass(frozen=True)
class ShadowOrphaned(Event):
    """A target module unloads; the shadow variables attached to its objects stay in the hash."""
    kind: ClassVar[str] = "shadow-orphaned"
    module: str
    shadow: str

    def note(self) -> str:
        return f"{self.shadow} stays attached to freed objects of {self.module} (orphaned)"


def lines(events: Iterable[Event], word: str, module: str | None, era: str = "insmod") -> list[str]:
    """The kernel log of one operation's events, in the kernel's order."""
    ctx = LogContext(word, module, era)
    return [line for ev in events for line in ev.log(ctx)]


def described(events: Iterable[Event], word: str, module: str | None) -> list[str]:
    """Each event as a report shows it: the kernel's lines, else the model's note."""
    ctx = LogContext(word, module)
    return [line for ev in events for line in ev.describe(ctx)]
