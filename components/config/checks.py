"""Checks of the lab as a whole: what no single key's type can say (ranges that overlap, a control
plane too small for kubeadm, an IP outside every pool). The MetalLB section has its own module,
:mod:`components.config.metallb_checks`.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from components import network as net
from components.config.defaults import (
    CA_WARN_BEFORE_DAYS,
    DEFAULT_INGRESS_VERSIONS,
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_NODE_IMAGE,
    DEFAULT_VAGRANT_BOX,
    DEFAULT_POD_CIDR,
    DEFAULT_SERVICE_CIDR,
    KUBEADM_MIN_CPUS,
    KUBEADM_MIN_MEMORY_MB,
    MAX_HOSTNAME_LENGTH,
    OLDEST_KUBEADM_V1BETA4_MINOR,
    OLDEST_SUPPORTED_KUBERNETES_MINOR,
    OLDEST_TRAEFIK_CHART_MAJOR,
    RENEW_BEFORE_DAYS,
    version_tuple,
)
from components.config.locations import check_offline_files
from components.config.offline import check_offline_bundle
from components.config.memory import memory_warnings
from components.config.metallb_checks import check_metallb
from components.config.problems import Problem
from components.config.schema import LabConfig


def check_lab(cfg: LabConfig) -> tuple[list[Problem], list[str]]:
    """Cross-key checks. Returns (problems, warnings)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    add = lambda path, message: problems.append(Problem(path, message))  # noqa: E731
    network = cfg.network.cidr
    reserved = net.reserved_addresses(network)

    # -- cluster mode --
    if cfg.existing_cluster:
        if cfg.nodes:
            add(
                "nodes",
                "nodes are given together with cluster.kubeconfig; an existing cluster replaces the VMs. "
                "Remove `nodes` (and `vagrant`) to use the existing cluster, or remove `cluster` to build VMs",
            )
    else:
        _check_nodes(cfg, network, reserved, add)
        if cfg.vagrant.containers and cfg.vagrant.box == DEFAULT_VAGRANT_BOX:
            add(
                "vagrant.box",
                f"is {DEFAULT_VAGRANT_BOX}, a Vagrant box, but docker nodes run from a node image; remove "
                f"vagrant.box to use {DEFAULT_NODE_IMAGE} (built by ./lab node-image) or name your own image",
            )
        if cfg.vagrant.provider == "virtualbox" and net.needs_virtualbox_networks_conf(network):
            warnings.append(
                f"network.cidr {network} is outside {net.VIRTUALBOX_DEFAULT_HOST_ONLY}: VirtualBox 6.1.28+ refuses "
                f"host-only networks there unless /etc/vbox/networks.conf lists it (add a line `* {network}`)"
            )

    # -- Kubernetes --
    k8s = cfg.kubernetes
    minor = version_tuple(k8s.version)[1]
    if version_tuple(k8s.version)[0] != 1:
        add("kubernetes.version", f"{k8s.version!r} is not a Kubernetes 1.x version; use e.g. {DEFAULT_KUBERNETES_VERSION}")
    elif minor < OLDEST_KUBEADM_V1BETA4_MINOR and not cfg.existing_cluster:
        add(
            "kubernetes.version",
            f"{k8s.version} is too old for the lab's kubeadm configuration (kubeadm.k8s.io/v1beta4, read by "
            f"kubeadm 1.{OLDEST_KUBEADM_V1BETA4_MINOR} and newer); use 1.{OLDEST_KUBEADM_V1BETA4_MINOR}.0 or newer, "
            f"e.g. {DEFAULT_KUBERNETES_VERSION}",
        )
    elif minor < OLDEST_SUPPORTED_KUBERNETES_MINOR and not cfg.existing_cluster:
        warnings.append(
            f"kubernetes.version {k8s.version} is out of upstream support; consider {DEFAULT_KUBERNETES_VERSION}"
        )
    # An existing cluster chose its own pod and Service ranges: the lab's (unused) ones are not checked.
    pod = svc = None
    if not cfg.existing_cluster:
        pod, svc = k8s.pod_cidr, k8s.service_cidr
        _check_cluster_ranges(cfg, network, pod, svc, add)

    # -- MetalLB --
    check_metallb(cfg, network, reserved, pod, svc, add, warnings)

    # -- ingress --
    ingress_ip = cfg.ingress.ip
    if ingress_ip is not None and not any(ingress_ip in r for p in cfg.metallb.pools for r in p.addresses):
        add(
            "ingress.ip",
            f"{ingress_ip} is outside every MetalLB pool, so MetalLB will never assign it; "
            "choose an address from metallb.pools or add it to a pool",
        )

    # -- LoadBalancer capacity --
    services = cfg.load_balancer_services
    capacity = sum(p.size for p in cfg.metallb.pools)
    auto_capacity = sum(p.size for p in cfg.metallb.pools if p.auto_assign)
    pinned = set(cfg.pinned_ips.values())
    for address in pinned:
        if any(address in r for p in cfg.metallb.pools if p.auto_assign for r in p.addresses):
            auto_capacity -= 1  # a pinned address is reserved for its Service
    wanting_auto = len(services) - len(pinned)
    if cfg.metallb.pools and (len(services) > capacity or wanting_auto > auto_capacity):
        add(
            "metallb.pools",
            f"the lab needs {len(services)} LoadBalancer IPs ({', '.join(services)}) but the pools hold "
            f"{capacity} ({auto_capacity} assignable automatically); widen a pool's addresses",
        )

    _check_ingress(cfg, add)
    check_offline_files(cfg, add)
    check_offline_bundle(cfg, add)
    warnings.extend(memory_warnings(cfg))

    # -- render mode: nothing can be read back from a cluster --
    if cfg.rendering:
        if cfg.self_check.enabled and "enabled" in cfg.self_check.model_fields_set:
            add(
                "self_check.enabled",
                "cannot run with cluster.render_yaml_to_directory: render mode contacts nothing, so no self-check "
                "is run; set it to false or remove it",
            )
        if cfg.ingress.ip is None:
            add("ingress.ip", "is required with cluster.render_yaml_to_directory: the Service's IP cannot be read back from a rendered manifest; pin one from a pool")
        if "argocd" in cfg.apps and cfg.app_options.argocd.export_admin_password:
            add(
                "app_options.argocd.export_admin_password",
                "cannot be read from a rendered manifest; set it to false with cluster.render_yaml_to_directory",
            )

    _check_dns(cfg, add)

    # -- domain --
    too_long = [h for h in cfg.hostnames if len(h) > MAX_HOSTNAME_LENGTH]
    if too_long:
        longest = max(too_long, key=len)
        add(
            "domain",
            f"makes {longest} {len(longest)} characters long; a DNS name has at most {MAX_HOSTNAME_LENGTH}: "
            f"shorten the domain to {MAX_HOSTNAME_LENGTH - (len(longest) - len(cfg.domain))} characters or fewer",
        )
    if cfg.domain.endswith(".local") and not cfg.local_domain_acknowledged:
        dns_note = (
            " With dns.enabled this matters more: systemd-resolved and macOS send '.local' to mDNS, not to the lab's DNS server."
            if cfg.dns.enabled
            else ""
        )
        warnings.append(
            f"domain {cfg.domain}: '.local' belongs to multicast DNS (RFC 6762); on macOS such names go through mDNS "
            f"first (multi-second lookups). 'lab.test' (RFC 6761, reserved for testing) avoids that.{dns_note} "
            "To keep the domain and stop this warning: pulumi config set local_domain_acknowledged true"
        )
    return problems, warnings


# kube-apiserver allocates Service IPs from at most 2^20 addresses: an IPv4 service range needs a
# prefix of /12 or longer. kubeadm gives the cluster DNS the tenth address of the range.
WIDEST_SERVICE_PREFIX = 12
NARROWEST_SERVICE_PREFIX = 28
# kube-controller-manager gives each node its own /24 of the pod range (--node-cidr-mask-size).
NODE_POD_PREFIX = 24


def _check_cluster_ranges(cfg: LabConfig, network: IPv4Network, pod: IPv4Network, svc: IPv4Network, add) -> None:
    """The pod and Service ranges of a cluster the lab builds, as kubeadm and the controllers take them."""
    for path, cidr in (("kubernetes.pod_cidr", pod), ("kubernetes.service_cidr", svc)):
        if cidr.overlaps(network):
            add(
                path,
                f"{cidr} overlaps the host-only network {network} (Calico's usual 192.168.0.0/16 does); "
                f"pick a range outside it, e.g. {DEFAULT_POD_CIDR if path.endswith('pod_cidr') else DEFAULT_SERVICE_CIDR}",
            )
    if pod.overlaps(svc):
        add("kubernetes.service_cidr", f"{svc} overlaps kubernetes.pod_cidr {pod}; the two must be disjoint")
    if svc.prefixlen < WIDEST_SERVICE_PREFIX:
        add(
            "kubernetes.service_cidr",
            f"{svc} is too large: kubeadm requires a prefix of /{WIDEST_SERVICE_PREFIX} or longer "
            f"for an IPv4 Service range; use e.g. {DEFAULT_SERVICE_CIDR}",
        )
    elif svc.prefixlen > NARROWEST_SERVICE_PREFIX:
        add(
            "kubernetes.service_cidr",
            f"{svc} is too small: kubeadm gives the cluster DNS the range's tenth address; use a /{NARROWEST_SERVICE_PREFIX} "
            f"or wider, e.g. {DEFAULT_SERVICE_CIDR}",
        )
    nodes = len(cfg.nodes)
    room = net.node_ranges(pod, NODE_POD_PREFIX)
    if nodes and room < nodes:
        wide_enough = max(8, NODE_POD_PREFIX - max(nodes - 1, 0).bit_length())
        add(
            "kubernetes.pod_cidr",
            f"{pod} holds {room} node range{'s' if room != 1 else ''} of /{NODE_POD_PREFIX} (each node takes its own) "
            f"but the lab has {nodes} nodes; use a /{wide_enough} or wider, e.g. {DEFAULT_POD_CIDR}",
        )


def _check_dns(cfg: LabConfig, add) -> None:
    """The DNS server's IP: given, inside a pool, its own, and announced."""
    dns = cfg.dns
    if not dns.enabled:
        return
    pools = cfg.metallb.pools
    ingress_ip = cfg.ingress.ip
    if dns.ip is None:
        free = next(
            (a for p in pools for r in p.addresses for a in (r.last, r.first) if a != ingress_ip),
            None,
        )
        example = f", e.g. {free}" if free else ""
        add("dns.ip", f"is required with dns.enabled: the resolver you configure needs an address that never changes; pick a free one from metallb.pools{example}")
        return
    address = dns.ip
    holders = [p.name for p in pools if any(address in r for r in p.addresses)]
    if not holders:
        add("dns.ip", f"{address} is outside every MetalLB pool, so MetalLB will never assign it; choose an address from metallb.pools")
        return
    if address == ingress_ip:
        add("dns.ip", f"{address} is also ingress.ip; the DNS server needs an address of its own from metallb.pools")
        return
    announced = any(not adv.pools or set(adv.pools) & set(holders) for adv in cfg.metallb.l2_advertisements)
    if cfg.metallb.l2_advertisements and not announced:
        add(
            "dns.ip",
            f"{address} is in pool {holders[0]}, which no L2 advertisement announces: nobody would answer ARP for it; "
            f"add {holders[0]} to the pools of an entry of metallb.l2_advertisements",
        )


def _check_ingress(cfg: LabConfig, add) -> None:
    ingress = cfg.ingress
    tls = cfg.tls
    if tls.enabled and tls.ca_validity_days < tls.certificate_validity_days + CA_WARN_BEFORE_DAYS:
        add(
            "tls.ca_validity_days",
            f"{tls.ca_validity_days} days does not outlive the certificate (tls.certificate_validity_days: "
            f"{tls.certificate_validity_days}) by the {CA_WARN_BEFORE_DAYS} days preview warns before the CA expires; "
            f"set tls.ca_validity_days to at least {tls.certificate_validity_days + CA_WARN_BEFORE_DAYS}"
            + (
                f", or tls.certificate_validity_days to at most {tls.ca_validity_days - CA_WARN_BEFORE_DAYS}"
                if tls.ca_validity_days - CA_WARN_BEFORE_DAYS >= RENEW_BEFORE_DAYS + 1
                else ""
            ),
        )
    if ingress.api == "gateway" and ingress.controller != "traefik":
        add(
            "ingress.api",
            f"gateway needs a Gateway API controller, and {ingress.controller} serves only Ingress objects; "
            "set ingress.controller: traefik (it serves both), or ingress.api: ingress",
        )
    if ingress.controller == "traefik" and ingress.version and version_tuple(ingress.version)[0] < OLDEST_TRAEFIK_CHART_MAJOR:
        add(
            "ingress.version",
            f"{ingress.version} looks like a Traefik Proxy version; for traefik this key is the Helm chart "
            f"version (chart {DEFAULT_INGRESS_VERSIONS['traefik']} ships Traefik Proxy v3.7.11)",
        )


def _check_nodes(cfg: LabConfig, network: IPv4Network, reserved: dict, add) -> None:
    if not cfg.nodes:
        add(
            "nodes",
            "no nodes are configured; list a control-plane and at least one worker, e.g. "
            "[{name: k8s-cp, role: control-plane, ip: 192.168.56.10}, {name: k8s-w1, role: worker, ip: 192.168.56.11}] "
            "(or set cluster.kubeconfig to use an existing cluster)",
        )
        return
    seen_names: dict[str, int] = {}
    seen_ips: dict[IPv4Address, int] = {}
    for i, node in enumerate(cfg.nodes):
        if node.name in seen_names:
            add(f"nodes[{i}].name", f"{node.name!r} is also the name of nodes[{seen_names[node.name]}]; names must be unique")
        seen_names.setdefault(node.name, i)
        address = node.ip
        if address in seen_ips:
            add(f"nodes[{i}].ip", f"{address} is also the IP of nodes[{seen_ips[address]}]; give each node its own IP")
        seen_ips.setdefault(address, i)
        if address not in network:
            add(f"nodes[{i}].ip", f"{address} is outside network.cidr {network}; pick an address inside it")
        elif address in reserved:
            add(f"nodes[{i}].ip", f"{address} is {reserved[address]}; pick another address, e.g. {network.network_address + 10}")
    control_planes = [i for i, n in enumerate(cfg.nodes) if n.role == "control-plane"]
    if not control_planes:
        add("nodes", "no node has role control-plane; set `role: control-plane` on exactly one node")
    elif len(control_planes) > 1:
        add(
            f"nodes[{control_planes[1]}].role",
            "more than one control-plane node; this lab runs a single control plane, make the others workers",
        )
    else:
        i = control_planes[0]
        cp = cfg.nodes[i]
        if cp.cpus < KUBEADM_MIN_CPUS:
            add(f"nodes[{i}].cpus", f"{cp.cpus} CPU is below kubeadm's minimum of {KUBEADM_MIN_CPUS} for a control plane; set 2 or more")
        if cp.memory_mb < KUBEADM_MIN_MEMORY_MB:
            add(
                f"nodes[{i}].memory_mb",
                f"{cp.memory_mb} MB is below kubeadm's minimum of about {KUBEADM_MIN_MEMORY_MB} MB for a control plane; set 2048 or more",
            )
        if len(cfg.nodes) == 1:
            add(
                "nodes",
                "the only node is the control plane; MetalLB does not announce from nodes labelled "
                "node.kubernetes.io/exclude-from-external-load-balancers (kubeadm labels control planes), "
                "so no IP would ever answer. Add a worker",
            )
