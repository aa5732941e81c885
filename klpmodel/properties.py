"""The built-in properties (../shared/design/properties.md): names, seed sentences, readings.

Where each is judged lives with the kernel rules (kernel.py, `c.violate(...)`), because
the moment of judgement (a write, a completion, a quiescent point) is a kernel event.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Property:
    """One property: everything verify, prove, review and explain say about it. Where the
    model judges it is one `c.violate(name, ...)` site in kernel.py."""
    name: str
    seed: str            # the sentence of system-state.rst it enforces (or the data discipline)
    violated_when: str   # the precise reading (docs/properties.md)
    judged_at: str = ""  # in words: the kernel event where it is judged (the review's coverage table)
    fix_in: tuple[str, ...] = ()    # the callbacks where the seed puts the work it checks (explain quotes them)


PROPERTIES: tuple[Property, ...] = (
    Property("version-order",
             "System state modifications with the same or higher version are allowed for already "
             "modified system states. (no older version after a newer one)",
             "a state's value becomes a variant older than a variant it held since it was last original",
             judged_at="a write of a state's value (`modify`, `reset`, or `restore` through data)",
             fix_in=("post_patch",)),
    Property("revert-restores",
             "Restore the previous state when the transition is reverted. It might be the original "
             "system state or the state modification done by livepatches that were being replaced.",
             "a patching transition started by load is reversed and completes unpatched, and the "
             "abstract system differs from just before that load",
             judged_at="a reversed load completes unpatched with no module event in between",
             fix_in=("post_unpatch",)),
    Property("disable-restores",
             "Restore the original state when the livepatch is disabled.",
             "a disable transition completes and a state that no installed patch declares any more "
             "is not original",
             judged_at="a disable completes and leaves a state no installed patch declares",
             fix_in=("pre_unpatch", "post_unpatch")),
    Property("error-cleanup",
             "Remove any already made changes when error occurs and the livepatch cannot get enabled.",
             "a load that fails leaves the abstract system different from just before it",
             judged_at="a load fails (in `pre_patch`, or patching an object with the patching fault): the cancel path",
             fix_in=("pre_patch",)),
    Property("no-use-after-free", "(data discipline)",
             "a statement reads or writes a freed block, or an enabled, quiescent patch uses a state "
             "whose data is freed",
             judged_at="an access to state data (`save`, `restore`, `copy`, or `uses` of an enabled patch)",
             fix_in=()),
    Property("no-double-free", "(data discipline)",
             "free or free-prev on a freed block",
             judged_at="a `free` (also of NULL), or a `free-prev` with a previous state",
             fix_in=()),
    Property("no-null-deref", "(data discipline)",
             "a statement reads or writes through a NULL data, or through prev when "
             "klp_get_prev_state is NULL, or an enabled, quiescent patch uses a state whose data is NULL",
             judged_at="an access through data or prev (`save`, `restore`, `copy`, `take`, `free-prev`, `uses`)",
             fix_in=()),
    Property("no-leak",
             "Free *state->data* from replaces livepatches when they are not longer needed.",
             "at a quiescent point, a live block is reachable from no installed patch's data",
             judged_at="a live block loses a pointer (replaced, disabled or overwritten) and stays live, or leaks",
             fix_in=("post_patch", "post_unpatch")),
)

# Beyond the contract (klpmodel, issue 14): shadow variables (semantics §14) and state shared
# between patches. Checked by default on a spec that declares shadow variables or a livepatch
# module's init/exit (Spec.uses_shadows), and on any spec when asked for (--property), so
# that the verdicts of the contract's specs stay as they are.
SHADOW: tuple[Property, ...] = (
    Property("shadow-leak",
             "Shadow variables outlive the patch that created them unless explicitly freed: by module "
             "exit, by a callback, or by a later patch. (semantics §14)",
             "after an operation, a shadow variable (on named objects: one pair, the variable on one object) "
             "exists and no loaded livepatch module nor target module lists it in its shadows (nothing that "
             "is left can free it)",
             judged_at="the end of every operation (a failed load, rmmod, ...)",
             fix_in=("post_unpatch", "exit")),
    Property("shadow-use-after-free",
             "klp_shadow_get(obj, id): returns the data pointer, or NULL. (semantics §14; a patch that "
             "needs the variable then uses a missing one)",
             "a `shadow-get` of a shadow variable the patch lists in `uses` returns NULL (on a named object: "
             "that object's pair is missing), or an enabled, quiescent patch uses a shadow variable on the "
             "abstract parent object that does not exist (never allocated, or freed)",
             judged_at="`shadow-get` in a patch that uses the variable; `uses` of an enabled patch",
             fix_in=("post_unpatch",)),
    Property("shadow-duplicate",
             "If the pair already exists, it emits a kernel WARNING `Duplicate shadow variable <%p, %lx>` "
             "and returns NULL. (klp_shadow_alloc, semantics §14)",
             "`shadow-alloc` of a shadow variable that exists (on a named object: of that object's pair)",
             judged_at="`shadow-alloc`",
             fix_in=("pre_patch",)),
    Property("disable-keeps-shared",
             "Restore the original state when the livepatch is disabled. (but a state another installed "
             "livepatch declares is still that livepatch's: system-state.rst, the shared-state pattern)",
             "while its disable is in progress (its `pre_unpatch` and `post_unpatch`) or at its `rmmod` "
             "(its module's exit), a patch writes original into a state that was not original and that "
             "a patch on klp_patches other than itself declares",
             judged_at="a write of original (`reset`, `restore`) by a patch being disabled or removed",
             fix_in=("pre_unpatch", "post_unpatch", "exit")),
    Property("shadow-layout",
             "Authors must hand shadow variables over between cumulative patches themselves: there is "
             "no special handling. (semantics §14: one id, one layout of its data)",
             "a patch touches a shadow variable (any shadow statement but `shadow-free-all`, or `uses` "
             "while enabled and quiescent) that exists with the layout of the patch that created it, "
             "and its own `shadows` give that variable another layout",
             judged_at="a shadow statement or `uses` on an existing variable, in a spec that gives it two layouts",
             fix_in=("pre_patch",)),
    Property("shadow-orphan",
             "Shadow variables outlive the patch that created them unless explicitly freed. (the parent "
             "objects of a target module go away with it, semantics §14)",
             "a target module unloads (or its init fails) while a shadow variable whose `parent` is that "
             "module exists, or a pair on a named object that module owns",
             judged_at="`modunload` (or a failed init) of a module that is the parent of a shadow variable or "
                       "owns a named object",
             fix_in=("post_unpatch",)),
)

# Beyond the contract: checked when asked for (--property recoverable), by the explicit
# engine only, over the whole reachable state space (AG EF: bounded checking cannot say it).
EXTRA: tuple[Property, ...] = (
    Property("recoverable",
             "They might change the system behavior or state so that it is no longer safe to go back "
             "and use an older livepatch or the original kernel code.",
             "some reachable state has no way back: no sequence of operations from it reaches a state "
             "with no patch installed and every system state original"),
)

NAMES = tuple(p.name for p in PROPERTIES)            # the default set (the contract's eight)


# The seed's "Expected usage" (system-state.rst section 4), per callback: quoted by
# `explain` next to the statement that caused a violation.
EXPECTED_USAGE: dict[str, tuple[str, ...]] = {
    "pre_patch": ("Allocate *state->data* when necessary. [...] The allocation is not needed when the data are "
                  "already provided by previously installed livepatches.",
                  "Clean up its own mess in case of error."),
    "post_patch": ("Copy *state->data* from the previous livepatch when they are compatible.",
                   "Do the actual system state modification.",
                   "Free *state->data* from replaces livepatches when they are not longer needed."),
    "pre_unpatch": ("Prevent the code, added by the livepatch, relying on the system state change.",
                    "Revert the system state modification.",
                    "(note) pre_unpatch() typically does symmetric operations to post_patch(). [...] it is called "
                    "only when the livepatch is being disabled."),
    "post_unpatch": ("Distinguish transition reverse and livepatch disabling by checking klp_get_prev_state().",
                     "In case of transition reverse, restore the previous system state.",
                     "Remove any not longer needed setting or data.",
                     "(note) post_unpatch() typically does symmetric operations to pre_patch(). It might be called "
                     "also during the transition reverse."),
}
