"""The lifecycle graph is data the engine reads: its shape is the kernel's (§3-§10)."""
from __future__ import annotations

from klpmodel import kernel
from klpmodel.kernel import ENABLED, OFFLIST, PATCHING, UNLOADED, UNPATCHING, lifecycle


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
    for _, _, data in lifecycle().edges(data=True):
        assert "§" in data["note"]


def test_the_engine_reads_its_edges_from_the_graph():
    # the step function's edge lookup is the graph's edge data, event by event
    g = lifecycle()
    for event in {d["event"] for _, _, d in g.edges(data=True)}:
        expected = sorted((u, v, d["callbacks"]) for u, v, d in g.edges(data=True) if d["event"] == event)
        assert sorted(kernel.edges(event)) == expected
