"""The built-in properties (../shared/design/properties.md): names, seed sentences, readings.

Where each is judged lives with the kernel rules (kernel.py, `c.violate(...)`), because
the moment of judgement (a write, a completion, a quiescent point) is a kernel event.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Property:
    name: str
    seed: str            # the sentence of system-state.rst it enforces (or the data discipline)
    violated_when: str


PROPERTIES: tuple[Property, ...] = (
    Property("version-order",
             "System state modifications with the same or higher version are allowed for already "
             "modified system states. (no older version after a newer one)",
             "a state's value becomes a variant older than a variant it held since it was last original"),
    Property("revert-restores",
             "Restore the previous state when the transition is reverted. It might be the original "
             "system state or the state modification done by livepatches that were being replaced.",
             "a patching transition started by load is reversed and completes unpatched, and the "
             "abstract system differs from just before that load"),
    Property("disable-restores",
             "Restore the original state when the livepatch is disabled.",
             "a disable transition completes and a state that no installed patch declares any more "
             "is not original"),
    Property("error-cleanup",
             "Remove any already made changes when error occurs and the livepatch cannot get enabled.",
             "a load that fails in pre_patch leaves the abstract system different from just before it"),
    Property("no-use-after-free", "(data discipline)",
             "a statement reads or writes a freed block, or an enabled, quiescent patch uses a state "
             "whose data is freed"),
    Property("no-double-free", "(data discipline)",
             "free or free-prev on a freed block"),
    Property("no-null-deref", "(data discipline)",
             "a statement reads or writes through a NULL data, or through prev when "
             "klp_get_prev_state is NULL, or an enabled, quiescent patch uses a state whose data is NULL"),
    Property("no-leak",
             "Free *state->data* from replaces livepatches when they are not longer needed.",
             "at a quiescent point, a live block is reachable from no installed patch's data"),
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
ALL_NAMES = NAMES + tuple(p.name for p in EXTRA)
BY_NAME = {p.name: p for p in PROPERTIES + EXTRA}


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
