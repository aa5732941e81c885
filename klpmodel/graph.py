"""`klpmodel graph`: the kernel's per-patch lifecycle (the networkx graph kernel.py's rules
read) and the reachable state space of a spec, as DOT, Mermaid or SVG (through Graphviz)."""
from __future__ import annotations

import shutil
import subprocess

from .errors import UserError
from .interp import State
from .kernel import Model, lifecycle

Nodes = list[tuple[str, str]]                  # (id, label)
Edges = list[tuple[str, str, str, bool]]       # (source, target, label, breaks a property)


def quote(text: str) -> str:
    """A DOT quoted string whose label reads as `text`: backslashes and quotes escaped, each
    line break written as DOT's \\n (centred line), other control characters dropped."""
    out = []
    for ch in text.replace("\r\n", "\n"):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
    return '"' + "".join(out) + '"'


def lifecycle_graph(profile: str = "mainline") -> tuple[Nodes, Edges]:
    """(nodes, edges) of a profile's lifecycle: node id and label; edge source, target, label."""
    g = lifecycle(profile)
    nodes = [(f"n{n}", g.nodes[n]["name"]) for n in sorted(g.nodes)]
    edges: Edges = []
    for u, v, data in sorted(g.edges(data=True), key=lambda e: (e[0], e[1], e[2]["event"])):
        # what runs: a profile with per-state callbacks lists them as `states` (its object
        # callbacks are none); otherwise the per-object callbacks
        cbs = ", ".join(data["states"] if "states" in data else data["callbacks"])
        refused = f" (refused if {data['refused']})" if data.get("refused") else ""
        marks = {"yes": " (marks forced)", "if-replacing": " (marks forced if a replace patch patches)",
                 "if-same-set": " (marks forced if a patch of its replace_set patches)"}.get(
            data.get("marks", ""), "")
        edges.append((f"n{u}", f"n{v}", data["event"] + marks + refused + (f" / {cbs}" if cbs else ""), False))
    return nodes, edges


def describe(m: Model, state: State) -> str:
    view = m.view(state)
    parts = [f"{p.name}: {view.phase(p.name)}" for p in m.P if view.loaded(p.name)]
    parts += [f"{s}={view.describe(s)}" for s in m.state_names]
    parts += [f"{mod} loaded" for mod in m.module_names if view.module_loaded(mod)]
    parts += [f"shadow {words}" + (f" count {view.count(sv, obj)}" if key in m.counted else "")
              for sv, obj, words, key in m.shadow_pair_list() if view.shadow(sv, obj)]
    if view.leaked():
        parts.append("leaked")
    return "\n".join(parts) or "nothing loaded"


def states_graph(m: Model, depth: int) -> tuple[Nodes, Edges]:
    """(nodes, edges) of the states reachable in up to `depth` operations; edges whose
    transition breaks a property are marked."""
    from .engine_explicit import ExplicitEngine

    eng = ExplicitEngine(m, keep_graph=True)
    eng.run(depth, [p.name for p in m.properties])
    g = eng.graph()
    ids = {k: f"s{i}" for i, k in enumerate(sorted(g.nodes, key=lambda k: (g.nodes[k]["level"], str(k))))}
    nodes = [(ids[k], describe(m, g.nodes[k]["state"])) for k in sorted(g.nodes, key=lambda k: ids[k])]
    edges: Edges = []
    for a, b, data in g.edges(data=True):
        label = data["op"] + (" [fails]" if data["failed"] else "")
        if data["violations"]:
            label += " !! " + ", ".join(data["violations"])
        edges.append((ids[a], ids[b], label, bool(data["violations"])))
    edges.sort()
    return nodes, edges


def dot(name: str, nodes: Nodes, edges: Edges) -> str:
    out = [f"digraph {quote(name)} {{", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    out += [f"  {n} [label={quote(label)}];" for n, label in nodes]
    for a, b, label, bad in edges:
        style = ", color=red, fontcolor=red, penwidth=2" if bad else ""
        out.append(f"  {a} -> {b} [label={quote(label)}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"


def mermaid(nodes: Nodes, edges: Edges) -> str:
    out = ["flowchart LR"]
    out += [f'  {n}["{_mermaid_text(label)}"]' for n, label in nodes]
    bad = []
    for i, (a, b, label, is_bad) in enumerate(edges):
        out.append(f'  {a} -->|"{_mermaid_text(label)}"| {b}')
        if is_bad:
            bad.append(str(i))
    if bad:
        out.append(f"  linkStyle {','.join(bad)} stroke:red,stroke-width:2px")
    return "\n".join(out) + "\n"


def _mermaid_text(label: str) -> str:
    """A Mermaid quoted label: line breaks as <br/>, quotes as the #quot; entity."""
    return label.replace('"', "#quot;").replace("\n", "<br/>")


def svg(dot_text: str) -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise UserError("--format svg needs Graphviz's `dot` program; install the graphviz package "
                        "(e.g. apt-get install graphviz) or use --format dot or mermaid")
    return subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True, check=True).stdout
