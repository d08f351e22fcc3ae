"""The lab's bring-up as a graph of steps: what waits for what, and the longest chain of waits.

Pure: it reads any record of registered resources shaped like :class:`tools.mocks.Run`
(``resources`` with ``urn, type, name, parent, custom, dependencies, provider, inputs``) and,
for the inherent chain, a ``LabConfig``-shaped object. Nothing here imports Pulumi.

Terms
-----
step
    A resource that does work during ``pulumi up``: a custom resource (a command, a Kubernetes
    object) or a provider-side component such as ``kubernetes:yaml/v2:ConfigFile`` or
    ``kubernetes:helm.sh/v4:Chart`` (one registration that applies and awaits many objects).
    The program's own components (``k8s-lab:*``) and providers do no work of their own.
waits for
    What the Python SDK and the engine do: a resource's registration is sent only once
    (1) each dependency, explicit or through an input, is done, a dependency on one of the
    program's components meaning each of its members (the SDK expands it so);
    (2) its provider is done (the provider reference carries the provider's id);
    (3) its parent has registered, and a component registers only once its own dependencies
    are done, so children inherit their component's ``depends_on``.
    The engine answers a registration only when the step is done, which makes these waits.
phase
    What a step is for, one of :data:`PHASES`, from its type and name (``<node>-vm``,
    ``<stack>-metallb-install``, an ``IPAddressPool``...), else from its components' types
    and names. Steps that match no rule are ``unclassified`` and listed, never guessed.
stage
    One phase of one node, pool, advertisement or app (``("join", "k8s-w1")``). Steps of one
    stage that wait for each other are one unit of work.
chain
    A path of waits between steps, counted in steps (each step 1) and in stages (a run of
    consecutive steps of one stage counts once; reading the kubeconfig counts 0: it takes a
    second next to minutes of VM boots, image pulls and rollouts).
inherent chain
    The longest chain of stages that the configuration and the tools impose
    (:func:`inherent_requirements`). A program whose longest chain in stages is longer makes
    some work wait that could overlap; :func:`needless_waits` names those waits.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

PHASES = (
    "box", "tls", "vm", "prep", "init", "kubeconfig", "cni", "join",
    "metallb", "pool", "l2", "ingress", "ingress-ip", "dns", "apps", "route", "selfcheck",
)  # fmt: skip
UNCLASSIFIED = "unclassified"
CHEAP_PHASES = frozenset({"kubeconfig"})
PER_NODE_PHASES = frozenset({"vm", "prep", "join"})
STACK_TYPE = "pulumi:pulumi:Stack"
PROVIDER_PREFIX = "pulumi:providers:"
# Component types of these packages are the program's own (run in-process, children recorded);
# components of any other package are run by their provider and are steps themselves.
LOCAL_PACKAGES = frozenset({"k8s-lab"})

Stage = tuple[str, Optional[str]]

# Token rules: the first phase one of whose tokens appears in a name wins, so the specific
# come before the general ("lab-metallb-pool" is a pool, "lab-demo-ingress" belongs to the app).
APP_TOKENS = {"demo": "demo", "argocd": "argocd", "grafana": "grafana", "boutique": "online-boutique"}
_TOKEN_RULES: tuple[tuple[str, frozenset[str]], ...] = (
    ("box", frozenset({"box"})),
    ("kubeconfig", frozenset({"kubeconfig"})),
    ("join", frozenset({"join"})),
    ("init", frozenset({"init"})),
    ("prep", frozenset({"prep", "prepare", "preparation", "provision"})),
    ("vm", frozenset({"vm", "vms"})),
    ("cni", frozenset({"cni", "flannel", "calico"})),
    ("pool", frozenset({"pool", "pools", "ipaddresspool"})),
    ("l2", frozenset({"l2", "l2advertisement", "l2advertisements"})),
    ("metallb", frozenset({"metallb"})),
    ("apps", frozenset(APP_TOKENS) | {"app", "apps"}),
    ("ingress", frozenset({"ingress", "nginx", "traefik"})),
    ("tls", frozenset({"tls", "ca", "certificate"})),
    ("dns", frozenset({"dns", "coredns"})),
)
# An Ingress object is its app's route; the ingress controller's own objects are not Ingresses.
_KIND_PHASES = {"IPAddressPool": "pool", "L2Advertisement": "l2", "Ingress": "route", "HTTPRoute": "route"}


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def _without(name: str, words: Iterable[str]) -> str:
    """``lab-k8s-cp-vm`` -> ``--vm``: node and stack names say nothing of the phase (a node "demo-cp")."""
    for word in sorted((w for w in words if w), key=len, reverse=True):
        name = re.sub(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", "-", name)
    return name


def _phase_of_text(text: str) -> Optional[str]:
    if "selfcheck" in "".join(_tokens(text)):  # selfcheck, self-check, self_check
        return "selfcheck"
    tokens = set(_tokens(text))
    for phase, marks in _TOKEN_RULES:
        if tokens & marks:
            return phase
    return None


def _is_load_balancer(type_: str, inputs: Mapping[str, Any]) -> bool:
    spec = inputs.get("spec") if isinstance(inputs, Mapping) else None
    return type_.endswith(":Service") and isinstance(spec, Mapping) and spec.get("type") == "LoadBalancer"


def classify(
    type_: str,
    name: str,
    ancestors: Sequence[tuple[str, str]] = (),
    inputs: Optional[Mapping[str, Any]] = None,
    ignore: Iterable[str] = (),
) -> str:
    """The phase of one step: by its kind, then its name, then its components' (nearest first).

    ``ancestors`` are ``(type, name)`` of the components above the step; ``ignore`` the node
    and stack names, which resource names carry and which say nothing about the phase.
    """
    ignore = tuple(ignore)
    kind = type_.rsplit(":", 1)[-1] if type_.startswith("kubernetes:") else ""
    phase = _KIND_PHASES.get(kind) or _phase_of_text(_without(name, ignore))
    for a_type, a_name in ancestors:
        if phase:
            break
        phase = _phase_of_text(a_type.split(":", 1)[-1]) or _phase_of_text(_without(a_name, ignore))
    if phase == "ingress" and _is_load_balancer(type_, inputs or {}):
        phase = "ingress-ip"  # the controller's LoadBalancer Service: done when MetalLB gave it its IP
    return phase or UNCLASSIFIED


@dataclass(frozen=True)
class Names:
    """The names a configuration gives to nodes, pools, advertisements and apps."""

    stack: str = ""
    nodes: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    l2_advertisements: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()

    @classmethod
    def of(cls, cfg: Any) -> "Names":
        if cfg is None:
            return cls()
        return cls(
            stack=cfg.stack,
            nodes=tuple(n.name for n in cfg.nodes),
            pools=tuple(p.name for p in cfg.metallb.pools),
            l2_advertisements=tuple(a.name for a in cfg.metallb.l2_advertisements),
            apps=tuple(cfg.apps),
        )


def _named_in(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The longest candidate that appears in ``name`` as whole dash-separated words."""
    for candidate in sorted(candidates, key=len, reverse=True):
        if re.search(rf"(^|[^a-z0-9]){re.escape(candidate)}($|[^a-z0-9])", name):
            return candidate
    return None


def instance_of(phase: str, name: str, inputs: Optional[Mapping[str, Any]], names: Names) -> Optional[str]:
    """Which node, pool, advertisement or app a step works on; None when the phase is cluster-wide
    or the name does not say."""
    if phase in PER_NODE_PHASES:
        return _named_in(name, names.nodes)
    if phase in ("pool", "l2"):
        known = names.pools if phase == "pool" else names.l2_advertisements
        metadata = (inputs or {}).get("metadata")
        object_name = metadata.get("name") if isinstance(metadata, Mapping) else None
        return object_name if object_name in known else _named_in(name, known)
    if phase in ("apps", "route"):
        for token in _tokens(_without(name, (names.stack, *names.nodes))):
            if token in APP_TOKENS:
                return APP_TOKENS[token]
    return None


def stage_weight(stage: Stage) -> int:
    return 0 if stage[0] in CHEAP_PHASES else 1


# ----------------------------------------------------------------------------------------------
# The graph of steps


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
        steps[r.urn] = Step(r.urn, r.name, r.type, phase, instance_of(phase, r.name, inputs, names), component)
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


def inherent_requirements(cfg: Any) -> dict[Stage, frozenset[Stage]]:
    """What each stage of this configuration needs done before it can be done, whatever the program.

    - The Vagrant box is fetched before any VM boots, and the control plane's VM boots first
      (it is on the critical path). VirtualBox then boots the workers one at a time, in the
      order of ``nodes`` (no parallel ``vagrant up``); libvirt boots them all together (after
      the first ``vagrant up``, which uploads the box: concurrent first ones race on it).
    - A node is prepared once its VM runs; ``kubeadm init`` needs the control plane prepared;
      the kubeconfig is read after init; the CNI is applied after init.
    - A worker joins once it is prepared and the control plane is up: joins overlap the CNI.
    - "Cluster ready" is the CNI applied and the first worker joined: MetalLB's controller is a
      Deployment without a control-plane toleration, and it, the ingress controller and the
      apps are awaited as rollouts, so they need a schedulable, networked node; later workers
      get their pods when they join, with no one waiting.
    - MetalLB's install, the ingress controller and the apps need only a ready cluster (and the
      kubeconfig): the ingress controller and the apps install while MetalLB comes up.
    - Pools and L2 advertisements need MetalLB ready (its webhook validates them); an
      advertisement also needs every node prepared when the host-only NIC's name is found there
      (``network.interface`` unset).
    - The ingress IP needs the pool it comes from. An app's route (its Ingress object) needs the
      ingress controller (its admission webhook, its class), its app's Service and, awaited
      until its status shows the address, the ingress IP. The self-check needs the ingress, its
      IP, the advertisements, the apps and their routes.
    - The lab CA and its certificate (``tls``) are made on the laptop and need nothing; the TLS
      Secrets that hold the certificate belong to the apps (beside each Ingress) or to the
      ingress (beside the Gateway), and the self-check trusts the CA.
    - The lab's DNS server (``dns``) installs like the ingress controller; its zone names the
      ingress IP, so an unpinned one must be known first. The self-check asks it.
    """
    req: dict[Stage, set[Stage]] = {}
    kube: set[Stage] = set()
    ready: set[Stage] = set()
    prepared: set[Stage] = set()
    if not getattr(cfg, "existing_cluster", False) and cfg.nodes:
        control_plane, workers = cfg.control_plane, cfg.workers
        assert control_plane is not None  # the configuration's checks require one
        first_vm: Stage = ("vm", control_plane.name)
        req[("box", None)] = set()
        req[first_vm] = {("box", None)}
        previous = first_vm
        for node in workers:
            vm: Stage = ("vm", node.name)
            req[vm] = {("box", None), previous}
            if cfg.vagrant.provider == "virtualbox":
                previous = vm
        for node in cfg.nodes:
            req[("prep", node.name)] = {("vm", node.name)}
        prepared = {("prep", n.name) for n in cfg.nodes}
        req[("init", None)] = {("prep", control_plane.name)}
        req[("kubeconfig", None)] = {("init", None)}
        req[("cni", None)] = {("init", None)}
        for node in workers:
            req[("join", node.name)] = {("init", None), ("prep", node.name)}
        kube = {("kubeconfig", None)}
        ready = {("cni", None)} | ({("join", workers[0].name)} if workers else set())
    installed = kube | ready
    req[("metallb", None)] = set(installed)
    for pool in cfg.metallb.pools:
        req[("pool", pool.name)] = kube | {("metallb", None)}
    nic_from_nodes = prepared if cfg.network.interface is None else set()
    for adv in cfg.metallb.l2_advertisements:
        req[("l2", adv.name)] = kube | {("metallb", None)} | nic_from_nodes
    tls_on = getattr(getattr(cfg, "tls", None), "enabled", False)
    certificate: set[Stage] = {("tls", None)} if tls_on else set()
    if tls_on:
        req[("tls", None)] = set()
    gateway = getattr(cfg.ingress, "api", "ingress") == "gateway"
    req[("ingress", None)] = set(installed) | (certificate if gateway else set())
    ingress_pools = _pools_of_ingress(cfg)
    req[("ingress-ip", None)] = kube | {("pool", name) for name in ingress_pools}
    dns_on = getattr(getattr(cfg, "dns", None), "enabled", False)
    if dns_on:
        req[("dns", None)] = set(installed) | (set() if getattr(cfg.ingress, "ip", None) else {("ingress-ip", None)})
    for app in cfg.apps:
        req[("apps", app)] = set(installed) | (set() if gateway else certificate)
        # An Ingress names its app's Service: a data edge to the app is no needless wait.
        req[("route", app)] = kube | {("ingress", None), ("ingress-ip", None), ("apps", app)}
    if cfg.self_check.enabled:
        announcing = {
            ("l2", adv.name)
            for adv in cfg.metallb.l2_advertisements
            if not adv.pools or set(adv.pools) & set(ingress_pools)
        }
        req[("selfcheck", None)] = (
            kube
            | {("ingress", None), ("ingress-ip", None)}
            | announcing
            | {(phase, a) for a in cfg.apps for phase in ("apps", "route")}
            | certificate
            | ({("dns", None)} if dns_on else set())
        )
    return {stage: frozenset(needs) for stage, needs in req.items()}


def _pools_of_ingress(cfg: Any) -> list[str]:
    """The pools the ingress IP can come from: the one holding ingress.ip, else the auto-assign ones."""
    pools = cfg.metallb.pools
    address = cfg.ingress.ip
    if address is not None:
        holding = [p.name for p in pools if any(address in r for r in p.addresses)]
        if holding:
            return holding
    return [p.name for p in pools if p.auto_assign] or [p.name for p in pools]


def contract(req: Mapping[Stage, Iterable[Stage]], keep_phases: Iterable[str]) -> dict[Stage, frozenset[Stage]]:
    """The requirements among the stages of ``keep_phases`` only: a dropped stage passes its own
    requirements on (a program that prepares nodes inside the VM step has no prep stage)."""
    keep = set(keep_phases)
    out: dict[Stage, frozenset[Stage]] = {}

    def expand(stages: Iterable[Stage], seen: set) -> set[Stage]:
        result: set[Stage] = set()
        for s in stages:
            if s[0] in keep:
                result.add(s)
            elif s not in seen:
                seen.add(s)
                result |= expand(req.get(s, ()), seen)
        return result

    for stage, needs in req.items():
        if stage[0] in keep:
            out[stage] = frozenset(expand(needs, set()))
    return out


def inherent_chain(cfg: Any, phases: Optional[Iterable[str]] = None) -> list[Stage]:
    """The longest chain of stages the configuration imposes, over ``phases`` (default: all)."""
    req = inherent_requirements(cfg)
    if phases is not None:
        req = contract(req, phases)
    reach = _closure(req)
    listed = list(req)
    order = sorted(listed, key=lambda s: (len(reach[s]), listed.index(s)))
    tiebreak = {s: i for i, s in enumerate(listed)}
    return _longest(order, req, lambda prev, s: (stage_weight(s),), tiebreak)


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
