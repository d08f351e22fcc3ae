"""The project's other stacks: what this one would clash with if both ran on one laptop.

Two labs share the laptop's host-only network and its hosts file. Each stack validates on its
own, so a node IP, node name or pool range reused from another stack file only shows once both
run: two machines answering ARP for one address, two MetalLBs announcing one IP. Preview warns
(the other lab may never run beside this one), naming the other stack file and what clashes.

Only the keys that can clash are read from the other files, with the same models as this stack's;
a file that does not parse (or is no k8s-lab stack) is left out without a word: it is that stack's
own preview that reports its problems. Reading a few small files keeps preview quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import ValidationError

from components.config.defaults import APP_NAMES, NAMESPACE
from components.config.schema import LabConfig, NetworkConfig, NodeConfig, PoolConfig, app_hostname

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Neighbour:
    """What another stack file says about the addresses and names it would use."""

    file: str
    network: IPv4Network
    nodes: tuple[NodeConfig, ...]
    pools: tuple[PoolConfig, ...]
    hostnames: frozenset[str]


def read_neighbour(path: Path) -> Optional[Neighbour]:
    """The clash-prone keys of a ``Pulumi.<stack>.yaml``, or None when they do not parse."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        config: dict[str, Any] = {}
        for key, value in (document.get("config") or {}).items():
            # A key without a namespace is the project's own.
            namespace, _, name = key.rpartition(":")
            if namespace in ("", NAMESPACE):
                config[name] = value
        if "network" not in config:
            return None
        metallb = config.get("metallb") or {}
        defaults = LabConfig.model_fields
        domain = str(config.get("domain", defaults["domain"].default)).lower().rstrip(".")
        apps = config.get("apps", defaults["apps"].default)
        if not isinstance(apps, (list, tuple)) or not set(apps) <= set(APP_NAMES):
            return None
        return Neighbour(
            file=path.name,
            network=NetworkConfig.model_validate(config["network"]).cidr,
            nodes=tuple(NodeConfig.model_validate(node) for node in config.get("nodes") or ()),
            pools=tuple(PoolConfig.model_validate(pool) for pool in metallb.get("pools") or ()),
            hostnames=frozenset(app_hostname(app, domain) for app in apps),
        )
    except (OSError, UnicodeError, yaml.YAMLError, ValidationError, AttributeError, TypeError, ValueError):
        return None


def clashes(cfg: LabConfig, other: Neighbour) -> list[str]:
    """What ``cfg`` shares with ``other`` that two running labs cannot share, each naming this stack's key."""
    found: list[str] = []
    if cfg.network.cidr.overlaps(other.network):
        their_nodes = {node.name: node for node in other.nodes}
        their_ips = {node.ip: node.name for node in other.nodes}
        for i, node in enumerate(cfg.nodes):
            if node.name in their_nodes:
                found.append(f"node name {node.name} (nodes[{i}].name) is also one of its nodes")
            if node.ip in their_ips:
                found.append(f"node IP {node.ip} (nodes[{i}].ip) is also the IP of its node {their_ips[node.ip]}")
            for pool in other.pools:
                if any(node.ip in r for r in pool.addresses):
                    found.append(f"node IP {node.ip} (nodes[{i}].ip) is in its MetalLB pool {pool.name}")
        for i, pool in enumerate(cfg.metallb.pools):
            for theirs in other.pools:
                overlap = next(((mine, their) for mine in pool.addresses for their in theirs.addresses if mine.overlaps(their)), None)
                if overlap:
                    found.append(
                        f"MetalLB pool {pool.name} (metallb.pools[{i}]) {overlap[0]} overlaps its pool {theirs.name} "
                        f"{overlap[1]}: both MetalLBs would answer ARP for the same IPs"
                    )
            for node in other.nodes:
                if any(node.ip in r for r in pool.addresses):
                    found.append(f"MetalLB pool {pool.name} (metallb.pools[{i}]) holds the IP {node.ip} of its node {node.name}")
    shared_hosts = sorted(set(cfg.hostnames) & other.hostnames)
    if shared_hosts:
        found.append(
            f"hostname{'s' if len(shared_hosts) > 1 else ''} {', '.join(shared_hosts)} (domain {cfg.domain}) also its own: "
            "the laptop's hosts file sends a name to one lab only"
        )
    return found


def neighbour_warnings(cfg: LabConfig, project_dir: Path) -> list[str]:
    """One warning per other stack file of ``project_dir`` that this stack would clash with."""
    warnings = []
    others = (read_neighbour(path) for path in sorted(project_dir.glob("Pulumi.*.yaml")) if path.name != f"Pulumi.{cfg.stack}.yaml")
    for other in others:
        found = clashes(cfg, other) if other is not None else []
        if other is not None and found:
            warnings.append(
                f"{other.file} is another stack of this project, and the two labs would clash if both ran on this "
                f"laptop: {'; '.join(found)}. Give this stack its own values (or that one), or never run them together"
            )
    return warnings
