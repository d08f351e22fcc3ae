"""Chains of waits: the longest one, in steps and in stages, and the waits no stage needs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from tools.stepgraph.graph import Step, StepGraph, _closure, _longest
from tools.stepgraph.inherent import inherent_chain, inherent_requirements
from tools.stepgraph.phases import PHASES, UNCLASSIFIED, Stage, stage_weight


def _stage_gain(stage_of, prev, node) -> int:
    return 0 if prev is not None and stage_of(prev) == stage_of(node) else stage_weight(stage_of(node))


def stages_along(chain: Sequence[Step]) -> list[Stage]:
    """The stages a chain goes through, one entry per run of steps of one stage."""
    out: list[Stage] = []
    for step in chain:
        if not out or out[-1] != step.stage:
            out.append(step.stage)
    return out


def stage_length(stages: Iterable[Stage]) -> int:
    return sum(stage_weight(s) for s in stages)


def longest_chain(graph: StepGraph, by: str = "steps") -> list[Step]:
    """The longest chain of waits, ``by`` steps (ties: more stages) or ``by`` stages (ties: more steps)."""
    stage_of = lambda urn: graph.steps[urn].stage  # noqa: E731

    def score(prev, node):
        gains = (1, _stage_gain(stage_of, prev, node))
        return gains if by == "steps" else gains[::-1]

    index = {urn: i for i, urn in enumerate(graph.steps)}
    return [graph.steps[u] for u in _longest(list(graph.steps), graph.waits, score, index)]


# ----------------------------------------------------------------------------------------------
# The inherent chain


def needless_waits(graph: StepGraph, cfg: Any) -> list[tuple[Step, Step]]:
    """``(later, earlier)`` pairs where a step waits directly for a stage it does not need.

    A cheap step (reading the kubeconfig) may wait for more than it needs when everything that
    waits for it needs that too: a kubeconfig read once the cluster is ready delays nothing.
    """
    req = inherent_requirements(cfg)
    reach = _closure(req)
    dependents: dict[str, set[str]] = defaultdict(set)
    for urn, preds in graph.waits.items():
        for p in preds:
            dependents[p].add(urn)

    def matching(step: Step) -> list[Stage]:
        exact = [s for s in req if s[0] == step.phase and s[1] == step.key]
        return exact or [s for s in req if s[0] == step.phase]

    def needs(step: Step, earlier: Step) -> bool:
        targets, sources = matching(step), matching(earlier)
        return not targets or not sources or any(e in reach[t] for t in targets for e in sources)

    def delayed(step: Step, seen: set[str]) -> list[Step]:
        """The steps a wait of ``step`` holds back: itself, or for a cheap step its dependents."""
        if stage_weight(step.stage):
            return [step]
        out = []
        for d in sorted(dependents[step.urn] - seen):
            seen.add(d)
            out += delayed(graph.steps[d], seen)
        return out

    found = []
    for urn, preds in graph.waits.items():
        later = graph.steps[urn]
        for p in sorted(preds, key=list(graph.steps).index):
            earlier = graph.steps[p]
            if earlier.stage == later.stage or UNCLASSIFIED in (later.phase, earlier.phase):
                continue
            held = [d for d in delayed(later, set()) if d.phase != UNCLASSIFIED and d.stage != earlier.stage]
            if any(not needs(d, earlier) for d in held):
                found.append((later, earlier))
    return found


@dataclass(frozen=True)
class ChainReport:
    """The numbers of one program run against its configuration."""

    steps: int  # the serial count: a script running every step one by one
    serial_stages: int
    chain: list[Step]  # the longest chain in steps
    chain_stages: int  # the longest chain counted in stages (it may follow another path)
    inherent: list[Stage]  # over the phases the program has
    inherent_all_phases: list[Stage]
    needless: list[tuple[Step, Step]]
    unclassified: list[Step]
    missing_phases: list[str]

    @property
    def inherent_length(self) -> int:
        return stage_length(self.inherent)

    @property
    def meets_target(self) -> bool:
        # Both: the count alone misses a wait that swaps one stage for another of equal count
        # (an ingress rollout queued behind the pool instead of only its IP).
        return self.chain_stages <= self.inherent_length and not self.needless


def report(graph: StepGraph, cfg: Any) -> ChainReport:
    by_stages = longest_chain(graph, by="stages")
    modelled = {s[0] for s in inherent_requirements(cfg)}
    present = graph.phases
    return ChainReport(
        steps=len(graph.steps),
        serial_stages=stage_length({s.stage for s in graph.steps.values()}),
        chain=longest_chain(graph, by="steps"),
        chain_stages=stage_length(stages_along(by_stages)),
        inherent=inherent_chain(cfg, present),
        inherent_all_phases=inherent_chain(cfg),
        needless=needless_waits(graph, cfg),
        unclassified=graph.unclassified,
        missing_phases=[p for p in PHASES if p in modelled and p not in present],
    )


def format_stages(stages: Iterable[Stage]) -> str:
    def one(phase: str, key: Optional[str]) -> str:
        if key is None:
            return phase
        return f"{phase}({key.rsplit('::', 1)[-1]})"  # an unclassified step's key is its URN

    return " -> ".join(one(*stage) for stage in stages)


# ----------------------------------------------------------------------------------------------
# Pictures
