"""The inherent chain: what each stage needs before it, from the configuration alone, whatever the program."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from tools.stepgraph.graph import _closure, _longest
from tools.stepgraph.phases import Stage, stage_weight


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
      kubeconfig): the ingress controller and the apps install while MetalLB comes up. What runs
      one pod per node (the ingress controller, the demo app and the lab DNS) needs every worker
      joined as well: the scheduler spreads pods only over the nodes it sees when it places them.
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
    every_worker: set[Stage] = set()
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
        every_worker = {("join", node.name) for node in workers}
    installed = kube | ready
    spread = installed | every_worker
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
    req[("ingress", None)] = spread | (certificate if gateway else set())
    ingress_pools = _pools_of_ingress(cfg)
    req[("ingress-ip", None)] = kube | {("pool", name) for name in ingress_pools}
    dns_on = getattr(getattr(cfg, "dns", None), "enabled", False)
    if dns_on:
        req[("dns", None)] = spread | (set() if getattr(cfg.ingress, "ip", None) else {("ingress-ip", None)})
    for app in cfg.apps:
        req[("apps", app)] = (spread if app == "demo" else set(installed)) | (set() if gateway else certificate)
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
