"""What each step is for: its phase, and which node, pool or app it works on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from components.kubeadm_steps import step_role

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

# Token rules, only for steps outside the program's components and for event logs (see classify):
# the first phase one of whose tokens appears in a name wins, so the specific come before the
# general ("lab-metallb-pool" is a pool, "lab-demo-ingress" belongs to the app).
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


# The program's components say what their steps are for: the nearest one above a step that is
# listed here gives its phase. The kubeadm cluster's steps each have a role of their own.
APP_TYPES = {
    "k8s-lab:apps:Demo": "demo",
    "k8s-lab:apps:ArgoCD": "argocd",
    "k8s-lab:apps:Grafana": "grafana",
    "k8s-lab:apps:OnlineBoutique": "online-boutique",
}
_COMPONENT_PHASES = {
    "k8s-lab:vm:VirtualMachine": "vm",
    "k8s-lab:metallb:MetalLB": "metallb",
    "k8s-lab:ingress:Ingress": "ingress",
    "k8s-lab:dns:LabDNS": "dns",
    "k8s-lab:tls:LabTLS": "tls",
    "k8s-lab:selfcheck:SelfCheck": "selfcheck",
    "k8s-lab:apps:Apps": "apps",
    **{app_type: "apps" for app_type in APP_TYPES},
}
KUBEADM_TYPE = "k8s-lab:kubeadm:KubeadmCluster"
_KUBEADM_ROLE_PHASES = {
    "box": "box", "prepare": "prep", "init": "init", "cni": "cni", "join": "join",
    "kubeconfig": "kubeconfig", "kubeconfig-file": "kubeconfig",
}  # fmt: skip


def _is_local(type_: str) -> bool:
    return type_.split(":", 1)[0] in LOCAL_PACKAGES


def _phase_of_components(name: str, ancestors: Sequence[tuple[str, str]]) -> Optional[str]:
    """The phase the nearest of the program's components gives; None when it gives none."""
    for a_type, a_name in ancestors:
        if a_type in _COMPONENT_PHASES:
            return _COMPONENT_PHASES[a_type]
        if a_type == KUBEADM_TYPE:
            role = step_role(a_name, name)
            return _KUBEADM_ROLE_PHASES.get(role) if role else None
    return None


def _phase_of_names(name: str, ancestors: Sequence[tuple[str, str]], ignore: tuple[str, ...]) -> Optional[str]:
    """By words in the names: only for steps outside the program's components (an event log's)."""
    phase = _phase_of_text(_without(name, ignore))
    for a_type, a_name in ancestors:
        if phase:
            break
        phase = _phase_of_text(a_type.split(":", 1)[-1]) or _phase_of_text(_without(a_name, ignore))
    return phase


def classify(
    type_: str,
    name: str,
    ancestors: Sequence[tuple[str, str]] = (),
    inputs: Optional[Mapping[str, Any]] = None,
    ignore: Iterable[str] = (),
    by_names: bool = False,
) -> str:
    """The phase of one step: by its Kubernetes kind, then by the nearest of the program's
    components above it (a kubeadm cluster's step by its role there).

    ``ancestors`` are ``(type, name)`` of the components above the step, nearest first. A step
    under none of the program's components falls back to the words in its and its components'
    names; ``ignore`` lists the node and stack names, which resource names carry and which say
    nothing about the phase. ``by_names`` reads the names first for every step: for a recorded
    event log, whose steps may be another version's or a stand-in's, typed only as commands.
    """
    ignore = tuple(ignore)
    kind = type_.rsplit(":", 1)[-1] if type_.startswith("kubernetes:") else ""
    phase = _KIND_PHASES.get(kind)
    if phase is None and by_names:
        phase = _phase_of_names(name, ancestors, ignore) or _phase_of_components(name, ancestors)
    elif phase is None:
        phase = _phase_of_components(name, ancestors)
        if phase is None and not any(_is_local(a_type) for a_type, _ in ancestors):
            phase = _phase_of_names(name, ancestors, ignore)
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


def instance_of(
    phase: str,
    name: str,
    inputs: Optional[Mapping[str, Any]],
    names: Names,
    ancestors: Sequence[tuple[str, str]] = (),
) -> Optional[str]:
    """Which node, pool, advertisement or app a step works on; None when the phase is cluster-wide
    or the name does not say. An app's step is its app component's (by type), else by name."""
    if phase in PER_NODE_PHASES:
        return _named_in(name, names.nodes)
    if phase in ("pool", "l2"):
        known = names.pools if phase == "pool" else names.l2_advertisements
        metadata = (inputs or {}).get("metadata")
        object_name = metadata.get("name") if isinstance(metadata, Mapping) else None
        return object_name if object_name in known else _named_in(name, known)
    if phase in ("apps", "route"):
        for a_type, _ in ancestors:
            if a_type in APP_TYPES:
                return APP_TYPES[a_type]
        for token in _tokens(_without(name, (names.stack, *names.nodes))):
            if token in APP_TOKENS:
                return APP_TOKENS[token]
    return None


def stage_weight(stage: Stage) -> int:
    return 0 if stage[0] in CHEAP_PHASES else 1
