"""What each step is for: its phase, and which node, pool or app it works on."""

from __future__ import annotations

import re
from dataclasses import dataclass
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
