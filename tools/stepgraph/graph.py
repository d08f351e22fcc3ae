"""The graph of steps of one recorded run, the waits between them, and its longest paths."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

from tools.stepgraph.phases import (
    LOCAL_PACKAGES,
    PROVIDER_PREFIX,
    STACK_TYPE,
    UNCLASSIFIED,
    Names,
    Stage,
    classify,
    instance_of,
)


@dataclass(frozen=True)
class Step:
    urn: str
    name: str
    type: str
    phase: str
    key: Optional[str]
    component: str  # URN of the nearest of the program's components above it; "" at the top

    @property
    def stage(self) -> Stage:
        # Each unclassified step is a stage of its own, so it is counted and not merged away.
        return (self.phase, self.key) if self.phase != UNCLASSIFIED else (UNCLASSIFIED, self.urn)


@dataclass(frozen=True)
class Component:
    urn: str
    name: str
    type: str
    parent: str


@dataclass
class StepGraph:
    steps: dict[str, Step]  # by URN, each after everything it waits for, then by name
    waits: dict[str, frozenset[str]]  # step -> the steps it waits for directly (transitively reduced)
    components: dict[str, Component]
    ancestors: dict[str, frozenset[str]] = field(default_factory=dict)  # step -> every step it waits for

    def waits_for(self, later: str, earlier: str) -> bool:
        """True when step ``later`` (a URN) cannot start before step ``earlier`` is done."""
        return earlier in self.ancestors[later]

    @property
    def unclassified(self) -> list[Step]:
        return [s for s in self.steps.values() if s.phase == UNCLASSIFIED]

    @property
    def phases(self) -> set[str]:
        return {s.phase for s in self.steps.values()}


class Registrations:
    """The resources of one recorded run and the waits among them (the module's "waits for")."""

    def __init__(self, run: Any, local_packages: frozenset[str] = LOCAL_PACKAGES):
        self.resources = [r for r in run.resources if r.type != STACK_TYPE]
        self.by_urn = {r.urn: r for r in self.resources}
        self.local_packages = local_packages
        self.children: dict[str, list[Any]] = defaultdict(list)
        for r in self.resources:
            self.children[r.parent].append(r)

    def is_component(self, r: Any) -> bool:
        return not r.custom and (r.type.split(":", 1)[0] in self.local_packages or bool(self.children[r.urn]))

    def is_step(self, r: Any) -> bool:
        return not r.type.startswith(PROVIDER_PREFIX) and not self.is_component(r)

    def members(self, component: Any) -> set[str]:
        """The SDK's expansion of a dependency on a component: its children, through nested
        components, but not the children of a custom resource."""
        found, frontier = set(), [component]
        while frontier:
            for child in self.children[frontier.pop().urn]:
                if self.is_component(child):
                    frontier.append(child)
                else:
                    found.add(child.urn)
        return found

    def direct(self, r: Any) -> set[str]:
        """What ``r``'s registration waits for directly: its dependencies, its provider, its parent."""
        out: set[str] = set()
        for urn in r.dependencies:
            dep = self.by_urn.get(urn)
            if dep is not None:
                out |= self.members(dep) if self.is_component(dep) else {urn}
        provider = (r.provider or "").rsplit("::", 1)[0]
        if provider in self.by_urn:
            out.add(provider)
        if r.parent in self.by_urn:
            out.add(r.parent)
        return out

    def waits_for(self, later: str, earlier: str) -> bool:
        """True when ``later`` cannot start before ``earlier`` is done; a component is done when
        each of its members is."""
        targets = self.members(self.by_urn[earlier]) if self.is_component(self.by_urn[earlier]) else {earlier}
        seen: set[str] = set()
        frontier = list(self.direct(self.by_urn[later]))
        while frontier and targets - seen:
            urn = frontier.pop()
            if urn in seen:
                continue
            seen.add(urn)
            frontier.extend(self.direct(self.by_urn[urn]))
        return bool(targets) and targets <= seen


def build(run: Any, cfg: Any = None, local_packages: frozenset[str] = LOCAL_PACKAGES) -> StepGraph:
    """The graph of steps of one recorded run; ``cfg`` (a LabConfig) names nodes, pools and apps."""
    names = Names.of(cfg)
    ignore = (names.stack, *names.nodes)
    registrations = Registrations(run, local_packages)
    resources, by_urn = registrations.resources, registrations.by_urn
    is_component, is_step, direct = registrations.is_component, registrations.is_step, registrations.direct

    def nearest_steps(r: Any) -> frozenset[str]:
        found, seen, frontier = set(), set(), list(direct(r))
        while frontier:
            urn = frontier.pop()
            if urn in seen:
                continue
            seen.add(urn)
            if is_step(by_urn[urn]):
                found.add(urn)
            else:
                frontier.extend(direct(by_urn[urn]))
        return frozenset(found)

    def ancestry(r: Any) -> tuple[list[tuple[str, str]], str]:
        chain, component, urn = [], "", r.parent
        while urn in by_urn:
            a = by_urn[urn]
            if is_component(a):
                chain.append((a.type, a.name))
                component = component or a.urn
            urn = a.parent
        return chain, component

    steps: dict[str, Step] = {}
    for r in resources:
        if not is_step(r):
            continue
        ancestors, component = ancestry(r)
        inputs = getattr(r, "inputs", None) or {}
        phase = classify(r.type, r.name, ancestors, inputs, ignore)
        steps[r.urn] = Step(r.urn, r.name, r.type, phase, instance_of(phase, r.name, inputs, names, ancestors), component)
    components = {
        r.urn: Component(r.urn, r.name, r.type, r.parent if r.parent in by_urn else "")
        for r in sorted(resources, key=lambda r: (r.name, r.urn))
        if is_component(r)
    }
    direct_waits = {urn: nearest_steps(by_urn[urn]) for urn in steps}
    ancestors = _closure(direct_waits)
    reduced = {
        urn: frozenset(p for p in preds if not any(p in ancestors[q] for q in preds if q != p))
        for urn, preds in direct_waits.items()
    }
    # The SDK registers concurrently, so registration order varies from run to run: order the
    # steps by how deep they sit in the graph, then by name, for pictures that only change
    # when the graph does.
    order = sorted(steps, key=lambda urn: (len(ancestors[urn]), steps[urn].name, urn))
    return StepGraph({urn: steps[urn] for urn in order}, reduced, components, ancestors)


def _closure(preds: Mapping[Any, Iterable[Any]]) -> dict[Any, frozenset]:
    """Everything each node reaches through ``preds``; a cycle raises (the SDK refuses them too)."""
    done: dict[Any, frozenset] = {}
    visiting: set = set()

    def visit(node: Any) -> frozenset:
        if node in done:
            return done[node]
        if node in visiting:
            raise ValueError(f"dependency cycle through {node!r}")
        visiting.add(node)
        reach: set = set()
        for p in preds.get(node, ()):
            reach.add(p)
            reach |= visit(p)
        visiting.discard(node)
        done[node] = frozenset(reach)
        return done[node]

    for node in preds:
        visit(node)
    return done


# ----------------------------------------------------------------------------------------------
# Longest chains


def _longest(
    order: Sequence[Any], preds: Mapping[Any, Iterable[Any]], score, tiebreak: Mapping[Any, int]
) -> list[Any]:
    """The path maximising an additive score; ``score(prev, node)`` is node's share (prev may be None)."""
    best: dict[Any, tuple[tuple, Optional[Any]]] = {}
    for node in order:
        options = [(score(None, node), None)]
        for p in sorted(preds.get(node, ()), key=lambda p: tiebreak[p]):
            gained = score(p, node)
            options.append((tuple(a + b for a, b in zip(best[p][0], gained)), p))
        best[node] = max(options, key=lambda o: o[0])  # max keeps the first of equals
    if not best:
        return []
    end = max(order, key=lambda n: (best[n][0], -tiebreak[n]))
    path = [end]
    while best[path[-1]][1] is not None:
        path.append(best[path[-1]][1])
    return path[::-1]
