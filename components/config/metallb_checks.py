"""Checks of the MetalLB section: pools inside the network and clear of nodes, cluster ranges and
each other; advertisements that name real pools and announce the ones the lab's IPs come from.
"""

from __future__ import annotations

from typing import Optional

from components import network as net
from components.config.defaults import DEFAULT_METALLB_VERSION, MAX_OBJECT_NAME_LENGTH, version_tuple
from components.config.problems import did_you_mean
from components.config.schema import INTERFACE_NAME, LabConfig, MetalLBConfig, reservation_name


def _pool_path(i: int, j: Optional[int] = None) -> str:
    return f"metallb.pools[{i}].addresses" + ("" if j is None else f"[{j}]")


def check_metallb(cfg: LabConfig, network, reserved, pod, svc, add, warnings) -> None:
    mlb = cfg.metallb
    if version_tuple(mlb.version) < (0, 13, 6):
        add(
            "metallb.version",
            f"{mlb.version} predates CRD configuration and L2Advertisement interfaces (0.13.6); use {DEFAULT_METALLB_VERSION} or newer",
        )
    if not mlb.pools:
        add(
            "metallb.pools",
            "no pools; LoadBalancer Services would stay <pending>. Add one, e.g. "
            "[{name: lab-pool, addresses: ['192.168.56.200-192.168.56.250']}]",
        )
    pool_index: dict[str, int] = {}
    node_ips = {n.ip: n.name for n in cfg.nodes}
    for i, pool in enumerate(mlb.pools):
        if pool.name in pool_index:
            add(f"metallb.pools[{i}].name", f"{pool.name!r} is also the name of metallb.pools[{pool_index[pool.name]}]")
        pool_index.setdefault(pool.name, i)
        for j, r in enumerate(pool.addresses):
            path = _pool_path(i, j)
            if not r.within(network):
                add(
                    path,
                    f"{r} is not inside network.cidr {network}: MetalLB would assign it but nothing on the "
                    "host-only segment can reach it; use addresses inside the network",
                )
                continue
            for address, why in reserved.items():
                if address in r:
                    add(path, f"{r} includes {address}, {why}; start the range after it")
            for address, name in node_ips.items():
                if address in r:
                    add(path, f"{r} includes {address}, the IP of node {name}; keep pools clear of node IPs")
            for label, cidr in (("kubernetes.pod_cidr", pod), ("kubernetes.service_cidr", svc)):
                if cidr is not None and net.range_overlaps_network(r, cidr):
                    add(path, f"{r} overlaps {label} {cidr}")
            for k, other in enumerate(mlb.pools[:i]):
                hit = net.first_overlap([r], other.addresses)
                if hit:
                    add(path, f"{r} overlaps metallb.pools[{k}] ({other.name}: {hit[1]}); pools must not share addresses")
            for k, earlier in enumerate(pool.addresses[:j]):
                if r.overlaps(earlier):
                    add(path, f"{r} overlaps {earlier}, an earlier entry of the same pool")
    # Each pinned IP is carved into <its pool>-reserved-<key's first word>, a pool of its own in the cluster.
    reservations: dict[str, str] = {}
    for key, ip in cfg.pinned_ips.items():
        found = next(((k, p) for k, p in enumerate(mlb.pools) if any(ip in r for r in p.addresses)), None)
        if found is None:
            continue
        k, holder = found
        name = reservation_name(holder.name, key)
        reservations[name] = f"{key} {ip} inside {holder.name}"
        if len(name) > MAX_OBJECT_NAME_LENGTH:
            suffix = name[len(holder.name):]
            add(
                f"metallb.pools[{k}].name",
                f"is {len(holder.name)} characters long; it holds {key} {ip}, which is reserved in a pool named "
                f"{holder.name!r} + {suffix!r}, and object names are at most {MAX_OBJECT_NAME_LENGTH}: shorten it to "
                f"{MAX_OBJECT_NAME_LENGTH - len(suffix)} characters or fewer",
            )
    for i, pool in enumerate(mlb.pools):
        if pool.name in reservations:
            add(
                f"metallb.pools[{i}].name",
                f"{pool.name!r} is the name of the pool that reserves {reservations[pool.name]}; rename it",
            )
    if cfg.existing_cluster and cfg.kubernetes.kube_proxy_mode == "ipvs":
        warnings.append(
            "kubernetes.kube_proxy_mode is ipvs on an existing cluster: MetalLB needs strictARP there; run "
            "`kubectl -n kube-system get cm kube-proxy -o yaml | sed -e 's/strictARP: false/strictARP: true/' | "
            "kubectl apply -f -` (the lab sets it itself on clusters it builds)"
        )
    if not mlb.l2_advertisements:
        add(
            "metallb.l2_advertisements",
            "no L2 advertisements; IPs would be assigned but never announced by ARP. Add one, e.g. "
            "[{name: lab-l2, pools: [lab-pool]}]",
        )
    seen: dict[str, int] = {}
    for i, adv in enumerate(mlb.l2_advertisements):
        if adv.name in seen:
            add(f"metallb.l2_advertisements[{i}].name", f"{adv.name!r} is also the name of l2_advertisements[{seen[adv.name]}]")
        seen.setdefault(adv.name, i)
        for j, name in enumerate(adv.pools):
            if name not in pool_index:
                known = ", ".join(pool_index) or "none"
                add(
                    f"metallb.l2_advertisements[{i}].pools[{j}]",
                    f"names pool {name!r}, which is not in metallb.pools (known: {known}){did_you_mean(name, pool_index)}",
                )
        for j, iface in enumerate(adv.interfaces or ()):
            if not INTERFACE_NAME.match(iface):
                add(f"metallb.l2_advertisements[{i}].interfaces[{j}]", f"{iface!r} is not a Linux interface name, e.g. eth1")
        if adv.interfaces is None and cfg.existing_cluster and cfg.network.interface is None:
            warnings.append(
                f"metallb.l2_advertisements[{i}] announces on every interface of the existing cluster's nodes; "
                "set network.interface (or its interfaces) to the NIC on network.cidr"
            )
        if adv.interfaces == ():
            # MetalLB reads an empty list as "every interface", the VMs' NAT NIC (10.0.2.15) included.
            every_nic = (
                f"an empty list announces on every interface of every node, not none; remove the key to announce on "
                f"the host-only NIC only, or name it, e.g. [{cfg.network.interface or 'eth1'}]"
            )
            if cfg.existing_cluster:
                warnings.append(f"metallb.l2_advertisements[{i}].interfaces: {every_nic}")
            else:
                add(f"metallb.l2_advertisements[{i}].interfaces", f"{every_nic} (the VMs' NAT NIC must never answer ARP)")
    _check_announced(cfg, add, warnings)


def _announced(mlb: MetalLBConfig, pool: str) -> bool:
    """True when an L2 advertisement announces the pool (and with it the reservation carved from it)."""
    return any(not adv.pools or pool in adv.pools for adv in mlb.l2_advertisements)


def _check_announced(cfg: LabConfig, add, warnings) -> None:
    """A pool no advertisement names hands out IPs nobody answers ARP for."""
    mlb = cfg.metallb
    if not mlb.l2_advertisements:
        return  # reported already
    ingress_ip = cfg.ingress.ip
    holder = next((p for p in mlb.pools if ingress_ip is not None and any(ingress_ip in r for r in p.addresses)), None)
    if holder is not None and not _announced(mlb, holder.name):
        add(
            "metallb.l2_advertisements",
            f"no advertisement announces pool {holder.name!r}, which holds ingress.ip {ingress_ip}: MetalLB would "
            f"assign the IP and nobody would answer ARP for it; add {holder.name!r} to an advertisement's pools",
        )
    if ingress_ip is None and mlb.pools and not any(_announced(mlb, p.name) for p in mlb.pools if p.auto_assign):
        add(
            "metallb.l2_advertisements",
            "no advertisement announces a pool with auto_assign, where the ingress controller's IP would come from; "
            "add one of them to an advertisement's pools",
        )
    # Pools holding a pinned IP get an error of their own (above, and dns.ip's in checks.py).
    holders = {p.name for p in mlb.pools for ip in cfg.pinned_ips.values() if any(ip in r for r in p.addresses)}
    for i, pool in enumerate(mlb.pools):
        if pool.name not in holders and not _announced(mlb, pool.name):
            warnings.append(
                f"metallb.pools[{i}] ({pool.name}) is named by no L2 advertisement: its IPs would be assigned but "
                "never answered; add it to an advertisement's pools"
            )
