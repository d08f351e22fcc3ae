"""Pictures of the step graph: Mermaid and Graphviz."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from tools.stepgraph.graph import Step, StepGraph


def _short_type(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def _tree(graph: StepGraph) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Components holding steps, as (component -> child components, component -> steps)."""
    steps_in: dict[str, list[str]] = defaultdict(list)
    for step in graph.steps.values():
        steps_in[step.component].append(step.urn)
    kept: set[str] = set()
    for urn in list(steps_in):
        while urn:
            kept.add(urn)
            urn = graph.components[urn].parent
    sub: dict[str, list[str]] = defaultdict(list)
    for urn, comp in graph.components.items():
        if urn in kept:
            sub[comp.parent].append(urn)
    return sub, steps_in


def _chain_edges(chain: Sequence[Step]) -> set[tuple[str, str]]:
    return {(a.urn, b.urn) for a, b in zip(chain, chain[1:])}


def to_mermaid(graph: StepGraph, chain: Sequence[Step] = ()) -> str:
    """A Mermaid flowchart: steps as boxes, components as subgraphs, the chain in red.

    Arrows point from a step to those that wait for it; a wait implied by others is not drawn.
    """
    if not graph.steps:
        return 'flowchart LR\n  empty["no steps registered"]\n'
    ids = {urn: f"s{i}" for i, urn in enumerate(graph.steps)}
    cids = {urn: f"c{i}" for i, urn in enumerate(graph.components)}
    sub, steps_in = _tree(graph)
    lines = ["flowchart LR"]

    def emit(component: str, depth: int) -> None:
        pad = "  " * depth
        for urn in steps_in.get(component, []):
            step = graph.steps[urn]
            lines.append(f'{pad}{ids[urn]}["{_label(step.name)}<br/><small>{step.phase}</small>"]')
        for child in sub.get(component, []):
            comp = graph.components[child]
            lines.append(f'{pad}subgraph {cids[child]}["{_label(comp.name)} ({_short_type(comp.type)})"]')
            emit(child, depth + 1)
            lines.append(f"{pad}end")

    emit("", 1)
    on_chain = _chain_edges(chain)
    marked: list[int] = []
    edge = 0
    for urn in graph.steps:
        for p in sorted(graph.waits[urn], key=list(graph.steps).index):
            lines.append(f"  {ids[p]} --> {ids[urn]}")
            if (p, urn) in on_chain:
                marked.append(edge)
            edge += 1
    if chain:
        lines.append("  classDef chain stroke:#d62728,stroke-width:3px")
        lines.append(f"  class {','.join(ids[s.urn] for s in chain)} chain")
    if marked:
        lines.append(f"  linkStyle {','.join(map(str, marked))} stroke:#d62728,stroke-width:3px")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: StepGraph, chain: Sequence[Step] = (), title: str = "k8s-lab") -> str:
    """The same picture for Graphviz: components as clusters, the chain in red."""
    ids = {urn: f"s{i}" for i, urn in enumerate(graph.steps)}
    sub, steps_in = _tree(graph)
    on_chain_steps = {s.urn for s in chain}
    on_chain = _chain_edges(chain)
    lines = [
        f"digraph {_dot_quote(title)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
    ]

    def emit(component: str, depth: int) -> None:
        pad = "  " * depth
        for urn in steps_in.get(component, []):
            step = graph.steps[urn]
            style = ', color="#d62728", penwidth=3' if urn in on_chain_steps else ""
            label = _dot_quote(f"{step.name}\n{step.phase}")
            lines.append(f"{pad}{ids[urn]} [label={label}{style}];")
        for child in sub.get(component, []):
            comp = graph.components[child]
            lines.append(f"{pad}subgraph cluster_{list(graph.components).index(child)} {{")
            label = _dot_quote(f"{comp.name} ({_short_type(comp.type)})")
            lines.append(f"{pad}  label={label};")
            emit(child, depth + 1)
            lines.append(f"{pad}}}")

    emit("", 1)
    for urn in graph.steps:
        for p in sorted(graph.waits[urn], key=list(graph.steps).index):
            style = ' [color="#d62728", penwidth=3]' if (p, urn) in on_chain else ""
            lines.append(f"  {ids[p]} -> {ids[urn]}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"
