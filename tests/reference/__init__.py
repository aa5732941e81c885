"""An independent reference of the kernel's livepatch rules, for the differential test.

Written from ../shared/kernel/semantics.md and the kernel C it describes
(kernel/livepatch/core.c, transition.c, state.c, patch.c, core.h), and from the user
documentation of the spec language and the properties (docs/spec-format.md,
docs/properties.md) -- never from klpmodel/kernel.py, which it must not import. Under
`kernel = "replace-set"` it runs the replace_set series v2 (proposals.md §B.5.2: the hunks
of its patch 2/4, each beside the mainline code it changes, behind `Kernel.sets`). Under
`kernel = "state-callbacks"` it runs Petr Mladek's per-state callbacks series v1 (proposals.md
§A.5: state.c's functions by name, the core.c/transition.c hunks, 19/19, behind
`Kernel.state_callbacks`), written from that code and §A.4, not from kernel.StateCallbacks.

- `klp`: the kernel. Plain Python structs shaped like the kernel's (`klp_patches` is a
  list, `klp_transition_patch` a pointer, `post_unpatch_enabled` per object) and one
  function per kernel function, with the kernel's name. Concrete values only.
- `callbacks`: the spec's statements, run as a test module's callback would run them.
- `monitors`: the eight properties of docs/properties.md, judged from their readings.
- `driver`: operations (`possible`, `outcomes`), the abstract state the differential
  test compares, and the log rendering of the selftest scripts' user-space lines.
"""
