"""The lifecycle graph is data the rules read: its shape is the kernel's (§3-§10), and a
profile that changes an edge changes what the step does."""
from __future__ import annotations

from sim import Sim

from klpmodel import interp
from klpmodel.events import Callback
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
