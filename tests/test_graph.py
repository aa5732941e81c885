"""`klpmodel graph`: the lifecycle the rules read, and a spec's reachable states."""
from __future__ import annotations

import os
import shutil

import pytest
from conftest import cli


def test_lifecycle_dot_has_every_edge_of_the_graph():
    from klpmodel.kernel import lifecycle

    p = cli("graph", "--lifecycle")
    assert p.returncode == 0
    assert p.stdout.startswith('digraph "klp per-patch lifecycle (mainline)" {')
    assert p.stdout.count(" -> ") == lifecycle().number_of_edges()
    assert 'n1 -> n2 [label="complete / post_patch"];' in p.stdout
    assert 'n2 -> n2 [label="modload / pre_patch, post_patch"];' in p.stdout
    assert 'n1 -> n1 [label="force"];' in p.stdout                  # 5.18+: not marked


def test_lifecycle_of_each_profile():
    old = cli("graph", "--lifecycle", "--kernel", "5.5").stdout
    assert old.startswith('digraph "klp per-patch lifecycle (5.5)" {')
    assert 'n1 -> n1 [label="force (marks forced)"];' in old         # 5.5-5.17: every listed patch
    sets = cli("graph", "--lifecycle", "--kernel", "replace-set").stdout
    assert sets.startswith('digraph "klp per-patch lifecycle (replace-set)" {')
    assert 'n2 -> n2 [label="force (marks forced if a patch of its replace_set patches)"];' in sets
    bad = cli("graph", "--lifecycle", "--kernel", "4.19")
    assert bad.returncode == 2 and "unknown kernel profile '4.19' for --kernel; known profiles: mainline, 5.5, state-callbacks, replace-set" in bad.stderr


def test_states_graph_marks_violating_transitions():
    p = cli("graph", "specs/no-leak-bad.toml", "--states", "--depth", "4")
    assert p.returncode == 0
    bad = [line for line in p.stdout.splitlines() if "color=red" in line]
    assert bad and all("!! no-leak" in line for line in bad)
    m = cli("graph", "specs/no-leak-bad.toml", "--states", "--depth", "4", "--format", "mermaid")
    assert m.stdout.startswith("flowchart LR") and "linkStyle" in m.stdout and "stroke:red" in m.stdout
    good = cli("graph", "specs/no-leak-good.toml", "--states", "--depth", "4")
    assert "color=red" not in good.stdout


def test_graph_usage_errors():
    assert "exactly one of --lifecycle or --states" in cli("graph").stderr
    assert "--states needs a SPEC" in cli("graph", "--states").stderr


def test_svg_without_graphviz_names_the_package(tmp_path):
    env_path = os.environ.get("PATH", "")
    os.environ["PATH"] = str(tmp_path)            # no `dot` here; python is run by absolute path
    try:
        p = cli("graph", "--lifecycle", "--format", "svg")
    finally:
        os.environ["PATH"] = env_path
    assert p.returncode == 2
    assert "install the graphviz package" in p.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_svg_renders():
    p = cli("graph", "specs/no-leak-bad.toml", "--states", "--depth", "4", "--format", "svg")
    assert p.returncode == 0 and "<svg" in p.stdout


def test_lifecycle_of_state_callbacks_shows_what_that_profile_runs():
    """Under state-callbacks the edges show the per-state callbacks (the replaced patches' on a
    cumulative load and completion, shadow_dtor after post_unpatch), none at module events,
    and the actions block_disable refuses; no per-object callback."""
    sc = cli("graph", "--lifecycle", "--kernel", "state-callbacks").stdout
    assert sc.startswith('digraph "klp per-patch lifecycle (state-callbacks)" {')
    assert 'n0 -> n1 [label="load / pre_patch, replaced pre_unpatch"];' in sc
    assert 'n1 -> n2 [label="complete / replaced post_unpatch, replaced shadow_dtor, post_patch"];' in sc
    assert 'n3 -> n4 [label="complete / replaced post_patch, post_unpatch, shadow_dtor"];' in sc
    assert 'n0 -> n0 [label="load-failed / replaced post_patch, post_unpatch, shadow_dtor"];' in sc
    assert 'n2 -> n3 [label="disable (refused if block_disable) / pre_unpatch"];' in sc
    assert 'n1 -> n3 [label="reverse (refused if block_disable)"];' in sc
    assert 'n2 -> n2 [label="modload"];' in sc and 'n1 -> n1 [label="modunload"];' in sc
    assert "pre_patch, post_patch" not in sc                    # mainline's per-object labels
    m = cli("graph", "--lifecycle", "--kernel", "state-callbacks", "--format", "mermaid").stdout
    assert '-->|"disable (refused if block_disable) / pre_unpatch"|' in m
