"""The properties of docs/properties.md, judged from their documented readings.

The kernel (klp.py) and the statements (callbacks.py) report events here; nothing here
changes what the kernel does, except that every write of a state's value passes through
`value_written` (version-order is judged at the write).

- version-order: at a write of a variant older than the highest variant the state held
  since it was last `original` (`zero` does not start the history afresh).
- no-use-after-free, no-double-free, no-null-deref: reported by the statements; at a
  quiescent point also every installed patch's `uses` of a freed or NULL data.
- no-leak: at a quiescent point, a live block that no installed patch's data points at.
- error-cleanup: a `load` that fails (in pre_patch, or patching an object) and leaves the
  abstract system different from just before it.
- revert-restores: a patching transition started by `load`, completing unpatched, with
  the abstract system different from just before that load, unless a target module came
  or went (a refused `modload` too) during the transition.
- disable-restores: a transition started by `disable` completing unpatched while a state
  that no installed patch declares is not `original`.

"The abstract system": every state's value; for every installed patch and every state it
declares, NULL, freed, or live with its content; the number of live blocks.
"""
from __future__ import annotations


def variant(value: str) -> int | None:
    return int(value[1:]) if value.startswith("v") else None


class Monitors:
    def __init__(self, spec):
        self.spec = spec
        self.found: set[str] = set()            # the current operation's violations
        self.hi: dict[str, int | None] = {s.name: None for s in spec.states}
        self.started_by: str | None = None      # the transition in progress: "load" or "disable"
        self.exempt = False
        self.snapshot = None                    # the abstract system before the current load

    def clone(self) -> Monitors:
        n = Monitors.__new__(Monitors)
        n.spec, n.found, n.hi = self.spec, set(self.found), dict(self.hi)
        n.started_by, n.exempt, n.snapshot = self.started_by, self.exempt, self.snapshot
        return n

    # ---- the state the monitors keep between operations (for the memo of the search)
    def freeze(self) -> tuple:
        return (tuple(sorted(self.hi.items())), self.started_by, self.exempt,
                self.snapshot if self.started_by == "load" else None)

    # ---- events
    def violate(self, name: str, why: str = "") -> None:
        self.found.add(name)

    def value_written(self, k, state: str, value: str, writer=None) -> None:
        if writer is not None:
            self.keeps_shared(k, state, value, *writer)
        v = variant(value)
        if v is not None:
            if self.hi[state] is not None and v < self.hi[state]:
                self.violate("version-order", f"{state}: v{v} after v{self.hi[state]}")
            self.hi[state] = v if self.hi[state] is None else max(self.hi[state], v)
        elif value == "original":
            self.hi[state] = None
        k.values[state] = value

    def keeps_shared(self, k, state: str, value: str, patch, where: str) -> None:
        """disable-keeps-shared: a patch being disabled (its pre_unpatch/post_unpatch during a
        transition started by disable, in which it is the patch going to unpatched) or removed
        (its exit) writes original over a changed state another installed patch declares."""
        from .klp import KLP_TRANSITION_UNPATCHED
        tp = k.klp_transition_patch
        going = tp is not None and tp.name == patch.name and k.klp_target_state == KLP_TRANSITION_UNPATCHED
        if where == "pre_unpatch":                  # only __klp_disable_patch runs the transition
            judged = going                           # patch's pre_unpatch (module going skips it)
        elif where == "post_unpatch":
            judged = going and self.started_by == "disable"
        else:
            judged = where == "exit"
        shared = any(q.name != patch.name and state in dict(q.spec.states) for q in k.klp_patches)
        if judged and shared and value == "original" and k.values[state] != "original":
            self.violate("disable-keeps-shared", f"{patch.name} undid {state} under another installed patch")

    def load_begins(self, k) -> None:
        self.snapshot = abstract_system(k)

    def load_failed(self, k) -> None:
        if abstract_system(k) != self.snapshot:
            self.violate("error-cleanup", "the failed load left changes")

    def transition_started(self, k, how: str) -> None:
        self.started_by = how
        self.exempt = False

    def module_event(self, k) -> None:
        if k.klp_transition_patch is not None:
            self.exempt = True

    def transition_completed(self, k, patch, target: int) -> None:
        from .klp import KLP_TRANSITION_UNPATCHED
        if target == KLP_TRANSITION_UNPATCHED:
            if self.started_by == "load" and not self.exempt and abstract_system(k) != self.snapshot:
                self.violate("revert-restores", f"reverted {patch.name} left changes")
            if self.started_by == "disable":
                declared = {s for p in k.klp_patches for s, _ in p.spec.states}
                if any(k.values[s.name] != "original" for s in self.spec.states if s.name not in declared):
                    self.violate("disable-restores", f"disabled {patch.name} left a state changed")
        self.started_by = None
        self.exempt = False

    def operation_done(self, k) -> None:
        """Judged at every quiescent point: after each operation that leaves no transition."""
        if k.klp_transition_patch is not None:
            return
        reachable = set()
        for p in k.klp_patches:
            for st in p.states:
                if st.data is not None:
                    reachable.add(st.data)
            for s in p.spec.uses:
                data = next(st.data for st in p.states if st.name == s)
                if data is None:
                    self.violate("no-null-deref", f"{p.name} uses {s} with data NULL")
                elif not k.blocks[data][0]:
                    self.violate("no-use-after-free", f"{p.name} uses {s} freed")
        if any(live and n not in reachable for n, (live, _) in enumerate(k.blocks)):
            self.violate("no-leak", "a live block is reachable from no installed patch")
        from .shadow import klp_shadow_get, on_named_objects
        for p in k.klp_patches:                     # (issue 14) the code of an enabled patch
            for name in p.spec.shadow_uses:          # needs its shadow variables (on named
                if on_named_objects(k.spec, name):   # objects: judged at each get of a pair)
                    continue
                var = klp_shadow_get(k, name)
                if var is None:
                    self.violate("shadow-use-after-free", f"{p.name} uses {name}, which does not exist")
                elif var["layout"] != dict(p.spec.shadows)[name]:
                    self.violate("shadow-layout", f"{p.name} uses {name} of layout {var['layout']}")


def abstract_system(k) -> tuple:
    values = tuple(sorted(k.values.items()))
    installed = []
    for p in k.klp_patches:
        for st in p.states:
            if st.data is None:
                installed.append((p.name, st.name, "NULL"))
            elif not k.blocks[st.data][0]:
                installed.append((p.name, st.name, "freed"))
            else:
                installed.append((p.name, st.name, "live", k.blocks[st.data][1]))
    return values, tuple(installed), sum(1 for live, _ in k.blocks if live)
