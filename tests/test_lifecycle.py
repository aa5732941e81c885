"""The lifecycle graph is data the rules read: its shape is the kernel's (§3-§10), and a
profile that changes an edge changes what the step does."""
from __future__ import annotations

from sim import Sim

from klpmodel import interp
from klpmodel.events import Callback, Log
from klpmodel.kernel import ENABLED, OFFLIST, PATCHING, PROFILES, UNLOADED, UNPATCHING, Mainline, Model, Op, lifecycle
from klpmodel.spec import load_spec


def test_lifecycle_nodes_and_main_edges():
    g = lifecycle()
    assert [g.nodes[n]["name"] for n in sorted(g.nodes)] == ["unloaded", "patching", "enabled", "unpatching", "off-list"]
    assert g.edges[UNLOADED, PATCHING, "load"]["callbacks"] == ("pre_patch",)
    assert g.edges[PATCHING, ENABLED, "complete"]["callbacks"] == ("post_patch",)
    assert g.edges[UNPATCHING, OFFLIST, "complete"]["callbacks"] == ("post_unpatch",)
    assert g.edges[ENABLED, UNPATCHING, "disable"]["callbacks"] == ("pre_unpatch",)
    assert g.edges[PATCHING, UNPATCHING, "reverse"]["callbacks"] == ()
    assert g.edges[ENABLED, OFFLIST, "replaced"]["callbacks"] == ()
    assert g.edges[OFFLIST, UNLOADED, "rmmod"]["callbacks"] == ()
    # module events: post_patch deferred and pre_unpatch skipped for the transition patch (§8, §9)
    assert g.edges[ENABLED, ENABLED, "modload"]["callbacks"] == ("pre_patch", "post_patch")
    assert g.edges[PATCHING, PATCHING, "modload"]["callbacks"] == ("pre_patch",)
    assert g.edges[UNPATCHING, UNPATCHING, "modunload"]["callbacks"] == ("post_unpatch",)


def test_every_edge_cites_the_semantics():
    for profile in PROFILES.values():
        for _, _, data in profile.lifecycle().edges(data=True):
            assert "§" in data["note"]


def _read_from_graph(g):
    """What the rules need of a lifecycle graph, read from the networkx graph itself."""
    by_event = {}
    for src, dst, data in g.edges(data=True):
        by_event.setdefault(data["event"], []).append((src, dst, data["callbacks"]))
    return {k: tuple(v) for k, v in by_event.items()}, {(u, v, k): d for u, v, k, d in g.edges(keys=True, data=True)}


def _compiled_reading(profile, events):
    return ({e: profile.edges(e) for e in events},
            {(u, v, k): profile.edge(u, v, k) for u, v, k in _read_from_graph(profile.lifecycle())[1]})


def test_the_compiled_lifecycle_is_the_graph():
    """The rules read the lifecycle compiled into plain data (a run imports no networkx): for
    every profile, each event's edges in the graph's order, and each edge's attributes, are
    the networkx graph's; and there is no edge or event the graph does not have."""
    from klpmodel.kernel import _compiled

    for name, profile in PROFILES.items():
        by_event, data = _read_from_graph(profile.lifecycle())
        assert _compiled_reading(profile, by_event) == (by_event, data), name
        assert set(_compiled(profile.EDGES).by_event) == set(by_event), name
        assert set(_compiled(profile.EDGES).data) == set(data), name


def test_the_compiled_lifecycle_follows_an_edited_table():
    """A profile's table edited in ways that test the layout (a new phase-less node, an edge
    given twice, edges of one event listed out of phase order) compiles as networkx lays it out."""
    class Odd(Mainline):
        name = "odd"
        EDGES = ((ENABLED, OFFLIST, "complete", ("x",), "§0"),
                 *reversed(Mainline.EDGES),
                 (9, UNLOADED, "load", (), "§0 a node past the phases", (("marks", "no"),)),
                 (ENABLED, OFFLIST, "complete", ("y",), "§0 again: updates the first", (("marks", "yes"),)))

    by_event, data = _read_from_graph(Odd.lifecycle())
    assert _compiled_reading(Odd, by_event) == (by_event, data)
    assert [e[:2] for e in Odd.edges("complete")] == [(PATCHING, ENABLED), (ENABLED, OFFLIST), (UNPATCHING, OFFLIST)]
    assert Odd.edge(ENABLED, OFFLIST, "complete")["callbacks"] == ("y",)


MOD = """
[modules.m]
[[patch]]
name = "p"
[patch.objects.m]
pre_patch = ['log "pre"']
post_patch = ['log "post"']
"""


def test_an_edited_edge_changes_the_step(write_spec):
    """The rules take an edge's callbacks from the graph: a profile whose module-coming edge
    for an enabled patch runs only pre_patch makes the step run only pre_patch."""
    class Edited(Mainline):
        name = "edited"
        EDGES = tuple((s, d, e, ("pre_patch",), note, *rest) if (s, e) == (ENABLED, "modload") else (s, d, e, cbs, note, *rest)
                      for s, d, e, cbs, note, *rest in Mainline.EDGES)

    spec = load_spec(write_spec(MOD))
    runs = {}
    for rules in (Mainline, Edited):
        m = Model(spec)
        m.profile = rules
        st = interp.initial(m)
        for op in (Op("load", "p"), Op("complete"), Op("modload", "m")):
            out = interp.apply(m, st, op)
            st = out.state
        runs[rules.name] = [e.callback for e in out.events if isinstance(e, Callback)]
    assert runs == {"mainline": ["pre_patch", "post_patch"], "edited": ["pre_patch"]}


FORCE = """
[[patch]]
name = "a"
[[patch]]
name = "b"
"""


def test_the_5_5_profile_marks_what_its_force_edges_say(write_spec):
    """The one difference of profile 5.5 is data: its force edges mark every listed patch."""
    assert {d["marks"] for _, _, d in PROFILES["5.5"].lifecycle().edges(data=True) if d["event"] == "force"} == {"yes"}
    for profile, forced in (("mainline", set()), ("5.5", {"a", "b"})):
        s = Sim(write_spec(FORCE), profile=profile)
        s.do("load a"); s.do("complete"); s.do("load b"); s.do("force")
        assert {p for p in "ab" if s.state[f"forced[{p}]"]} == forced, profile


SC = """
kernel = "state-callbacks"
[states.s]
id = 1
is_shadow = true
pre_patch    = ['log "pre"', "shadow-alloc x"]
post_patch   = ['log "post"']
pre_unpatch  = ['log "pre_un"']
post_unpatch = ['log "post_un"']
shadow_dtor  = ['log "dtor"']
[states.b]
id = 2
block_disable = true
[shadows.x]
id = 1
[[patch]]
name = "p"
states = { s = 1 }
shadows = { x = "int" }
[[patch]]
name = "q"
states = { b = 1 }
"""


def test_the_state_callbacks_profile_runs_what_its_edges_list(write_spec):
    """Under state-callbacks the lifecycle's `states` attribute is the rule: the graph lists the
    per-state callbacks each edge runs (and mainline's edges have none), and a profile whose
    completion edge lists no post_patch runs none; `refused` marks the edges block_disable
    refuses, and a profile without it lets the disable through."""
    from klpmodel.kernel import StateCallbacks

    g = PROFILES["state-callbacks"].lifecycle()
    assert g.edges[UNLOADED, PATCHING, "load"]["states"] == ("pre_patch", "replaced pre_unpatch")
    assert g.edges[UNPATCHING, OFFLIST, "complete"]["states"] == ("replaced post_patch", "post_unpatch", "shadow_dtor")
    assert g.edges[ENABLED, ENABLED, "modload"]["states"] == ()                 # §A.4.7
    assert {(u, v, k) for u, v, k, d in g.edges(keys=True, data=True) if d.get("refused")} == \
        {(PATCHING, UNPATCHING, "reverse"), (ENABLED, UNPATCHING, "disable")}
    assert not any("states" in d for _, _, d in lifecycle().edges(data=True))

    class Edited(StateCallbacks):
        name = "edited"
        EDGES = tuple((s, d, e, cbs, note, tuple((k, () if k == "states" else v) for k, v in attrs))
                      if (s, e) == (PATCHING, "complete") else (s, d, e, cbs, note, tuple(a for a in attrs if a[0] != "refused"))
                      for s, d, e, cbs, note, attrs in StateCallbacks.EDGES)

    spec = load_spec(write_spec(SC))
    logs, refusals = {}, {}
    for rules in (StateCallbacks, Edited):
        m = Model(spec)
        m.profile = rules
        st, lines = interp.initial(m), []
        for op in (Op("load", "p"), Op("complete"), Op("disable", "p"), Op("complete"), Op("load", "q"), Op("complete")):
            out = interp.apply(m, st, op)
            st = out.state
            lines += [e.text for e in out.events if isinstance(e, Log)]
        logs[rules.name] = lines
        refusals[rules.name] = interp.refusal(m, st, Op("disable", "q"))
    assert logs["state-callbacks"] == ["pre", "post", "pre_un", "post_un", "dtor"]
    assert logs["edited"] == ["pre", "pre_un", "post_un", "dtor"]
    assert refusals["state-callbacks"] is not None and "block_disable" in refusals["state-callbacks"]
    assert refusals["edited"] is None
