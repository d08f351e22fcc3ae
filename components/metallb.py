"""MetalLB: the install, its IPAddressPools and its L2Advertisements, ordered so they cannot race.

How MetalLB makes ``type: LoadBalancer`` work on a laptop:

* the **controller** watches LoadBalancer Services and assigns each an IP from an
  ``IPAddressPool`` (the allocator);
* a **speaker** on each node answers ARP for the assigned IPs, on the interfaces an
  ``L2Advertisement`` names (the announcer). Without an advertisement an IP is assigned but
  nobody answers for it.

Two failures shape this module:

* *The webhook race.* Pools and advertisements are validated by the controller's webhook; created
  before it serves, they fail with ``failed calling webhook ... connection refused``. The
  install below is awaited until its Deployment and DaemonSet are ready, and every pool and
  advertisement ``depends_on`` the install, so the controller must turn Ready only once its
  webhook serves. Up to 0.15 it does: its readiness probe reads the metrics endpoint, which it
  opens together with the webhook. From 0.16 the probe is ``/readyz``, which answers as soon as
  the process starts, before the webhook's certificate exists; the lab probes the webhook's own
  port instead (:func:`ready_when_webhook_serves`).
* *The pinned-IP race.* An IP pinned for the ingress inside an auto-assign pool can be taken by
  any LoadBalancer Service created first. The pinned address is therefore carved out of its
  pool into a reservation pool of its own with ``autoAssign: false``: only a Service that asks
  for it by annotation can get it. MetalLB forbids overlapping pools, hence the carving rather
  than a second pool over the same range. Advertisements that name the original pool also name
  the reservation, so the pinned IP is announced like the rest.
* *Moving a pinned IP.* MetalLB's webhook refuses every create or update that leaves two pools
  overlapping, and moving ``ingress.ip`` from .200 to .201 swaps an address each way between
  the carved pool and the reservation: no order of two updates passes. So an address always
  leaves one pool before it enters another (:class:`PinnedAddress`): an old reservation is
  deleted first, then the carved pools are updated, then the new reservation is created. The
  webhook does not check deletions, but the controller clears the IP of a Service whose IP is
  in no pool, until one holds it again: so each pinned key has a reservation of its own, and a
  change of one key leaves the other key's Service alone.

Control planes: kubeadm labels them ``node.kubernetes.io/exclude-from-external-load-balancers``
and MetalLB honours that label since 0.14, so no speaker there announces anything. That is why
the lab needs a worker, and why the ingress Service keeps ``externalTrafficPolicy: Cluster``: a
speaker on any worker may announce the IP and kube-proxy forwards to the controller pod wherever
it runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s
from pulumi.dynamic import ResourceProvider
from pulumi_command import local

from components import network as net
from components.cluster import Cluster
from components.config import MetalLBConfig, reservation_name, version_tuple
from components.manifests import as_transform, location

NAMESPACE = "metallb-system"
API_VERSION = "metallb.io/v1beta1"
WEBHOOK_PORT = "webhook-server"  # the controller's container port for its validating webhook


# ----------------------------------------------------------------------------------------------
# Pure planning: which pools and advertisements to create


@dataclass(frozen=True)
class PoolSpec:
    name: str
    addresses: tuple[str, ...]
    auto_assign: bool
    pin: Optional[str] = None  # a reservation pool: the config key (ingress.ip) whose IP it holds
    carved_from: Optional[str] = None  # a reservation pool: the configured pool its IP belongs to

    def manifest_spec(self) -> dict[str, Any]:
        return {"addresses": list(self.addresses), "autoAssign": self.auto_assign}


@dataclass(frozen=True)
class L2AdvertisementSpec:
    name: str
    pools: tuple[str, ...]  # empty: every pool
    interfaces: Optional[tuple[str, ...]]  # None: the cluster's host-only NIC


def plan_pools(config: MetalLBConfig, pins: Mapping[str, Optional[IPv4Address]]) -> list[PoolSpec]:
    """The pools to create: the configured ones with every pinned IP carved out (a configured pool
    left empty is not created), then one reservation pool a pinned IP, ``<pool>-reserved-<key>``."""
    pinned = {key: ip for key, ip in pins.items() if ip is not None}
    plan: list[PoolSpec] = []
    reservations: list[PoolSpec] = []
    for pool in config.pools:
        rest = list(pool.addresses)
        for key, ip in pinned.items():
            if any(ip in r for r in pool.addresses):
                rest = net.subtract_address(rest, ip)
                reservations.append(
                    PoolSpec(reservation_name(pool.name, key), (f"{ip}/32",), False, pin=key, carved_from=pool.name)
                )
        if rest:
            plan.append(PoolSpec(pool.name, tuple(r.to_metallb() for r in rest), pool.auto_assign))
    return plan + reservations


def plan_advertisements(config: MetalLBConfig, pools: list[PoolSpec]) -> list[L2AdvertisementSpec]:
    """Each configured advertisement, also naming the reservations carved from a pool it names."""
    names = {p.name for p in pools}
    plan = []
    for adv in config.l2_advertisements:
        announced: list[str] = []
        for pool in adv.pools:
            if pool in names:
                announced.append(pool)
            announced.extend(p.name for p in pools if p.carved_from == pool)
        plan.append(L2AdvertisementSpec(adv.name, tuple(announced), adv.interfaces))
    return plan


def pin_annotation(version: str) -> str:
    """The Service annotation that asks MetalLB for given IPs.

    ``metallb.universe.tf/loadBalancerIPs`` exists since 0.12; the ``metallb.io/`` prefix since
    0.14.9, and older versions ignore it. ``spec.loadBalancerIP`` is deprecated since Kubernetes 1.24.
    """
    prefix = "metallb.io" if version_tuple(version) >= (0, 14, 9) else "metallb.universe.tf"
    return f"{prefix}/loadBalancerIPs"


def drop_placeholder_ca_bundle(obj: dict[str, Any]) -> dict[str, Any]:
    """Leave a CRD's conversion-webhook caBundle to the controller that injects the real one.

    MetalLB 0.14.9's manifest ships an expired placeholder caBundle on the BGPPeer CRD's
    conversion webhook (fixed in 0.15.0). The controller replaces it at run time; if Pulumi
    applied the placeholder it would own the field and write it back on every update. Without
    the field in what Pulumi applies, server-side apply leaves the controller's value alone.
    """
    if obj.get("kind") != "CustomResourceDefinition":
        return obj
    client = (((obj.get("spec") or {}).get("conversion") or {}).get("webhook") or {}).get("clientConfig") or {}
    if "caBundle" not in client:
        return obj
    edited = {**obj, "spec": {**obj["spec"], "conversion": {**obj["spec"]["conversion"]}}}
    webhook = {**edited["spec"]["conversion"]["webhook"]}
    webhook["clientConfig"] = {k: v for k, v in client.items() if k != "caBundle"}
    edited["spec"]["conversion"]["webhook"] = webhook
    return edited


def ready_when_webhook_serves(obj: dict[str, Any]) -> dict[str, Any]:
    """Make a controller whose readiness probe is ``/readyz`` Ready only once its webhook port serves.

    MetalLB 0.16's ``/readyz`` is a bare ping: it passes once the process runs, while the webhook
    still waits for its certificate, and only the probe's 10 s initial delay usually hides that.
    controller-runtime opens the webhook port (``webhook-server``, 9443) only once the certificate
    is there and the handlers are registered, so a TCP probe of that port is "the webhook serves".
    Probes of other paths (``/metrics`` up to 0.15, opened with the webhook) are left alone.
    """
    if obj.get("kind") != "Deployment":
        return obj
    obj = copy.deepcopy(obj)
    for container in ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
        probe = container.get("readinessProbe") or {}
        serves_webhook = any(port.get("name") == WEBHOOK_PORT for port in container.get("ports") or [])
        if serves_webhook and (probe.get("httpGet") or {}).get("path") == "/readyz":
            container["readinessProbe"] = {
                **{k: v for k, v in probe.items() if k != "httpGet"},
                "tcpSocket": {"port": WEBHOOK_PORT},
            }
    return obj


def edit_install(obj: dict[str, Any]) -> dict[str, Any]:
    """Every edit the lab makes to MetalLB's upstream manifest."""
    return ready_when_webhook_serves(drop_placeholder_ca_bundle(obj))


# ----------------------------------------------------------------------------------------------
# Components


@dataclass(frozen=True)
class MetalLBArgs:
    cluster: Cluster
    config: MetalLBConfig
    pins: Mapping[str, Optional[IPv4Address]] = field(default_factory=dict)
    """Every key that can pin a Service's IP (LabConfig.pins: ingress.ip, dns.ip), with the IP it
    pins or None: each pinned IP is carved into a reservation pool of its own."""


class MetalLB(pulumi.ComponentResource):
    """MetalLB at a pinned version, with the lab's pools and L2 advertisements."""

    cluster: Cluster
    install: k8s.yaml.v2.ConfigFile
    """The upstream native manifest; ready once the controller (webhook) and speakers are."""
    pinned: dict[str, "PinnedAddress"]
    """One a key of ``pins``, pinned or not; see :class:`PinnedAddress`."""
    install_source: str
    """What the install is made from (version and manifest): another one re-makes its objects."""
    pools: dict[str, "IPAddressPool"]
    """The carved configured pools, then the reservations, by object name."""
    l2_advertisements: dict[str, "L2Advertisement"]

    def __init__(self, name: str, args: MetalLBArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:metallb:MetalLB", name, None, opts)
        self.cluster = args.cluster
        self.version = args.config.version
        self.install_source = f"metallb {self.version} {location(args.config.manifest_url)}"
        self.install = k8s.yaml.v2.ConfigFile(
            f"{name}-install",
            file=location(args.config.manifest_url),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.cluster.provider, transforms=[as_transform(edit_install)]
            ),
        )
        self.pinned = {
            key: PinnedAddress(f"{name}-pin-{key.replace('.', '-')}", key, ip, pulumi.ResourceOptions(parent=self))
            for key, ip in args.pins.items()
        }
        pool_plan = plan_pools(args.config, args.pins)
        # Every address leaves one pool before it enters another: the carved pools wait for every
        # PinnedAddress (whose replacement deletes an outdated reservation first), and a reservation
        # waits for every carved pool (which must have let its IP go).
        self.pools = {
            spec.name: IPAddressPool(
                f"{name}-pool-{spec.name}",
                IPAddressPoolArgs(metallb=self, spec=spec),
                pulumi.ResourceOptions(depends_on=list(self.pinned.values())),
            )
            for spec in pool_plan
            if spec.pin is None
        }
        carved = list(self.pools.values())
        configured = {p.name for p in args.config.pools}
        for spec in (s for s in pool_plan if s.pin is not None):
            earlier = [p for p in self.pools.values() if p.plan.pin is not None]
            self.pools[spec.name] = IPAddressPool(
                f"{name}-pool-{spec.name}",
                IPAddressPoolArgs(metallb=self, spec=spec, pinned=self.pinned[spec.pin]),
                pulumi.ResourceOptions(
                    # Reservations are made one after another: see _shared_reservation.
                    depends_on=[*carved, *earlier],
                    aliases=_shared_reservation(name, spec, earlier, configured),
                ),
            )
        self.l2_advertisements = {
            spec.name: L2Advertisement(f"{name}-l2-{spec.name}", L2AdvertisementArgs(metallb=self, spec=spec))
            for spec in plan_advertisements(args.config, pool_plan)
        }
        self.register_outputs(
            {
                "version": self.version,
                "pools": {n: list(p.plan.addresses) for n, p in self.pools.items()},
                "l2_advertisements": list(self.l2_advertisements),
            }
        )

    def load_balancer_annotations(self, ip: Optional[IPv4Address]) -> dict[str, str]:
        """Annotations that pin a LoadBalancer Service to ``ip`` ({} for no pin)."""
        return {pin_annotation(self.version): str(ip)} if ip else {}


def _shared_reservation(name: str, spec: PoolSpec, earlier: list["IPAddressPool"], configured: set[str]) -> list[pulumi.Alias]:
    """The first reservation carved from a pool takes over the one ``<pool>-reserved`` that held
    every pinned IP of that pool in labs made before reservations were one a key.

    Its replacement, delete-first, frees all of them at once; the reservations after it in the
    same pool wait for it. (Not when a configured pool has that name: it is then that pool's.)
    """
    shared = f"{spec.carved_from}-reserved"
    if shared in configured or any(p.plan.carved_from == spec.carved_from for p in earlier):
        return []
    return [pulumi.Alias(name=f"{name}-pool-{shared}")]


def _after_install(metallb: MetalLB, opts: Optional[pulumi.ResourceOptions]) -> pulumi.ResourceOptions:
    """Options of every MetalLB object: a child of the component, on the lab's provider, and
    created only once the install is ready, since the validating webhook must serve first.

    Advertisements do not wait for the pools they name: MetalLB pairs them whenever both exist.
    """
    own = pulumi.ResourceOptions(parent=metallb, provider=metallb.cluster.provider, depends_on=[metallb.install])
    return pulumi.ResourceOptions.merge(own, opts)


class PinnedAddressProvider(ResourceProvider):
    """The provider of the earlier pinned addresses (dynamic resources), kept so that a lab that
    holds one can delete it on its next `up`: the engine unpickles it by reference to this class.
    Deleting does nothing (the address lives in the state alone); nothing creates one now."""


class PinnedAddress(local.Command):
    """The IP a config key pins (``""`` for none), a resource of the stack's state alone (a command
    with nothing to run), that orders a move of that IP between pools.

    The key's reservation pool takes its spec through this resource's id, and is replaced whenever
    its spec changes. This resource is replaced, delete-first, whenever its IP changes (its
    triggers), and replacing it delete-first makes the engine delete, at this resource's step, every
    resource that the change would replace: the key's old reservation. The carved pools wait for
    this resource, so they take the old IP back only once no pool holds it; the new reservation
    waits for them. Turning a key off (dns.enabled: false) replaces this resource too, which deletes
    the reservation that no longer belongs to the program. A command, not a dynamic resource: the
    command provider is loaded anyway, and a preview starts no provider process of its own for it.
    """

    def __init__(self, name: str, key: str, ip: Optional[IPv4Address], opts: pulumi.ResourceOptions):
        self.key = key
        self.address = str(ip) if ip else ""
        super().__init__(
            name,
            triggers=[key, self.address],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
        )


@dataclass(frozen=True)
class IPAddressPoolArgs:
    metallb: MetalLB
    spec: PoolSpec
    pinned: Optional[PinnedAddress] = None
    """A reservation's key: its spec depends on it, and it is replaced, delete-first, with it."""


class IPAddressPool(k8s.apiextensions.CustomResource):
    """A MetalLB IPAddressPool: the addresses the controller may hand out."""

    def __init__(self, name: str, args: IPAddressPoolArgs, opts: Optional[pulumi.ResourceOptions] = None):
        metallb = args.metallb
        spec: pulumi.Input[dict[str, Any]] = args.spec.manifest_spec()
        own = None
        if args.pinned is not None:
            # The spec is the plan's, carried through the pinned address so that it depends on it.
            spec = args.pinned.id.apply(lambda _: args.spec.manifest_spec())
            own = pulumi.ResourceOptions(delete_before_replace=True, replace_on_changes=["spec"])
        super().__init__(
            name,
            api_version=API_VERSION,
            kind="IPAddressPool",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.spec.name, namespace=NAMESPACE),
            spec=spec,
            opts=_after_install(metallb, pulumi.ResourceOptions.merge(own, opts)),
        )
        self.plan = args.spec


@dataclass(frozen=True)
class L2AdvertisementArgs:
    metallb: MetalLB
    spec: L2AdvertisementSpec


class L2Advertisement(k8s.apiextensions.CustomResource):
    """A MetalLB L2Advertisement: announce the named pools by ARP on the host-only NIC only.

    Announcing on every NIC would let VirtualBox's NAT NIC (10.0.2.15 on every VM) answer, or a
    libvirt management NIC; the speaker must answer on the segment the laptop shares.
    """

    def __init__(self, name: str, args: L2AdvertisementArgs, opts: Optional[pulumi.ResourceOptions] = None):
        metallb = args.metallb
        interfaces: pulumi.Input[list[str]] = (
            list(args.spec.interfaces) if args.spec.interfaces is not None else metallb.cluster.interfaces
        )
        spec = pulumi.Output.from_input(interfaces).apply(
            lambda names: {
                **({"ipAddressPools": list(args.spec.pools)} if args.spec.pools else {}),
                **({"interfaces": list(names)} if names else {}),
            }
        )
        super().__init__(
            name,
            api_version=API_VERSION,
            kind="L2Advertisement",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.spec.name, namespace=NAMESPACE),
            spec=spec,
            opts=_after_install(metallb, opts),
        )
        self.plan = args.spec
