"""The k8s-lab stack configuration: read once, validated once, handed out as frozen objects.

Every key lives in the ``k8s-lab`` namespace of the stack file (``Pulumi.<stack>.yaml``). The
shape is checked by pydantic (unknown keys rejected, types coerced), then the lab as a whole is
checked by :func:`check_lab` with the IP math of :mod:`components.network`. Every problem found
is reported at once, each naming its key path the way ``pulumi config set --path`` spells it, and
the program stops before registering a single resource.

Components never read configuration; ``__main__.py`` calls :func:`load` and passes the pieces on.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import json
import os
import re
import typing
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import pulumi
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator
from typing_extensions import Annotated

from components import network as net

NAMESPACE = "k8s-lab"

# Values that the program pins. Each can be overridden in the stack file.
DEFAULT_KUBERNETES_VERSION = "1.36.1"
DEFAULT_METALLB_VERSION = "0.14.9"
DEFAULT_VAGRANT_BOX = "bento/ubuntu-24.04"
DEFAULT_VAGRANT_BOX_VERSION = "202510.26.0"
# ingress-nginx: the controller release (its static manifest is tagged controller-v<version>).
# traefik: the Helm chart release; chart 41.3.0 ships Traefik Proxy v3.7.11. Chart 40 moved the
# Service's type into service.spec (components.ingress.traefik_values follows the chart version).
DEFAULT_INGRESS_VERSIONS = {"ingress-nginx": "1.15.1", "traefik": "41.3.0"}
# The Gateway API standard channel the lab installs when the Traefik chart brings no CRDs of its
# own (charts from 40.2.0 dropped them).
GATEWAY_API_VERSION = "1.6.1"
# Traefik's chart versions are far ahead of its proxy versions; below this a chart version is
# almost surely a proxy version given by mistake.
OLDEST_TRAEFIK_CHART_MAJOR = 30
# CoreDNS, the lab's optional DNS server for its domain (components/dns.py).
DEFAULT_COREDNS_VERSION = "1.12.1"
DEFAULT_POD_CIDR = "10.244.0.0/16"  # flannel's own default
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"  # kubeadm's default

# kubeadm's preflight refuses a control plane below these.
KUBEADM_MIN_CPUS = 2
KUBEADM_MIN_MEMORY_MB = 1700
OLDEST_SUPPORTED_KUBERNETES_MINOR = 34
# The kubeadm configuration the lab writes is kubeadm.k8s.io/v1beta4, which kubeadm reads from 1.31.
OLDEST_KUBEADM_V1BETA4_MINOR = 31

MAX_HOSTNAME_LENGTH = 253  # RFC 1035, as Kubernetes checks an Ingress host

APP_NAMES = ("demo", "argocd", "grafana", "online-boutique")
APP_HOSTS = {"demo": "app", "argocd": "argocd", "grafana": "grafana", "online-boutique": "boutique"}

# Rough steady-state memory in MB, used only to warn before a lab that cannot fit is built. Apps
# land on the workers (kubeadm taints the control plane). Figures: the upstream manifests'
# requests, rounded up to what a fresh idle install uses (Argo CD's manifest requests nothing but
# its seven pods use 0.7-1 GB; Online Boutique requests 1.1 GB and its Java adservice grows past
# its request).
NODE_OVERHEAD_MB = 700  # OS, kubelet, containerd, kube-proxy, CNI pod, MetalLB speaker
CONTROLLER_MEMORY_MB = {"ingress-nginx": 150, "traefik": 100}
METALLB_CONTROLLER_MEMORY_MB = 60
APP_MEMORY_MB = {"demo": 50, "argocd": 900, "grafana": 250, "online-boutique": 1400}
LOAD_GENERATOR_MEMORY_MB = 300

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Semantic versions have no leading zeros: 1.036.1 would name an apt repository that does not exist.
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_IFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: where, what, and how to fix it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(pulumi.RunError):
    """The stack configuration is invalid. Raised before any resource is registered.

    A ``pulumi.RunError`` so the CLI prints the message alone, without a Python traceback.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"the {NAMESPACE} stack configuration has {count} problem{'s' if count != 1 else ''}; "
            f"nothing was created. Fix {'them' if count != 1 else 'it'} in Pulumi.<stack>.yaml "
            f"(or with `pulumi config set --path '<key>' <value>`):\n{lines}"
        )

    def paths(self) -> list[str]:
        return [p.path for p in self.problems]


# pulumi-language-python-exec's exit code for "the user was shown an actionable message": the
# CLI then adds nothing of its own. (A RunError is printed too, but the executor exits 1 and the
# CLI follows the list with "an unhandled error occurred: Program exited with non-zero exit code".)
EXIT_AFTER_MESSAGE = 32


class ConfigReported(SystemExit):
    """Ends the program after :func:`load` has logged the problem list as the run's error."""

    def __init__(self, error: ConfigError):
        super().__init__(EXIT_AFTER_MESSAGE)
        self.error = error


# --------------------------------------------------------------------------------------------
# The typed shape of each key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, populate_by_name=True)


def _check_version(value: str, example: str) -> str:
    value = str(value).strip()
    if not _VERSION.match(value):
        hint = f" (drop the leading 'v': {value[1:]})" if value.startswith("v") and _VERSION.match(value[1:]) else ""
        unpadded = ".".join(str(int(part)) for part in value.split(".")) if re.match(r"^\d+\.\d+\.\d+$", value) else ""
        if unpadded and _VERSION.match(unpadded):
            hint = f" (no leading zeros: {unpadded})"
        raise ValueError(f"{value!r} is not a MAJOR.MINOR.PATCH version such as {example}{hint}")
    return value


def _check_range(value: str) -> str:
    try:
        net.parse_range(value)
    except net.AddressError as err:
        raise ValueError(
            f"{err}. A pool entry is a range '192.168.56.200-192.168.56.250', a CIDR '192.168.56.200/29' "
            "or one address"
        ) from None
    return str(value).strip()


def _check_address(value: str) -> str:
    try:
        return str(net.parse_address(value))
    except net.AddressError as err:
        raise ValueError(str(err)) from None


def _check_cidr(value: str) -> str:
    try:
        return str(net.parse_network(value))
    except net.AddressError as err:
        raise ValueError(str(err)) from None


Address = Annotated[str, AfterValidator(_check_address)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]
AddressRange = Annotated[str, AfterValidator(_check_range)]
KubernetesVersion = Annotated[str, AfterValidator(lambda v: _check_version(v, DEFAULT_KUBERNETES_VERSION))]
MetalLBVersion = Annotated[str, AfterValidator(lambda v: _check_version(v, DEFAULT_METALLB_VERSION))]
AppVersion = Annotated[str, AfterValidator(lambda v: _check_version(v, "1.15.1"))]


class NetworkConfig(_Strict):
    """The host-only network the laptop shares with the VMs (VirtualBox: vboxnet0)."""

    cidr: Cidr
    # The guests' NIC on that network. None: node preparation finds it from the node IP.
    interface: Optional[str] = None

    @field_validator("interface")
    @classmethod
    def _iface(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _IFACE.match(value):
            raise ValueError(f"{value!r} is not a Linux interface name (1-15 letters, digits, '-', '_' or '.'), e.g. eth1")
        return value

    @property
    def network(self) -> IPv4Network:
        return net.parse_network(self.cidr)


def _not_a_boolean(value: Any) -> Any:
    # pydantic would take `true` as 1: a slip (`cpus: true`) becomes a one-CPU VM.
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {str(value).lower()}")
    return value


WholeNumber = Annotated[int, BeforeValidator(_not_a_boolean)]


class NodeConfig(_Strict):
    name: str
    role: Literal["control-plane", "worker"]
    ip: Address
    cpus: WholeNumber = Field(2, ge=1, le=64)
    memory_mb: WholeNumber = Field(2048, ge=512, le=262144)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a valid host name; use lower-case letters, digits and '-' "
                "(at most 63, starting and ending with a letter or digit), e.g. k8s-w1"
            )
        return value

    @property
    def address(self) -> IPv4Address:
        return net.parse_address(self.ip)


class VagrantConfig(_Strict):
    box: str = DEFAULT_VAGRANT_BOX
    box_version: str = DEFAULT_VAGRANT_BOX_VERSION
    provider: Literal["virtualbox", "libvirt"] = "virtualbox"


class KubernetesConfig(_Strict):
    version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION
    cni: Literal["flannel", "calico"] = "flannel"
    pod_cidr: Cidr = DEFAULT_POD_CIDR
    service_cidr: Cidr = DEFAULT_SERVICE_CIDR
    kube_proxy_mode: Literal["iptables", "ipvs"] = "iptables"

    @property
    def minor(self) -> str:
        """``1.36``: pkgs.k8s.io keeps one apt repository per minor."""
        return ".".join(self.version.split(".")[:2])


def _check_object_name(value: str) -> str:
    if not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes object name; use lower-case letters, digits, '-' and '.', "
            "e.g. lab-pool"
        )
    return value


ObjectName = Annotated[str, AfterValidator(_check_object_name)]


class PoolConfig(_Strict):
    name: ObjectName
    addresses: tuple[AddressRange, ...] = Field(min_length=1)
    auto_assign: bool = True

    @field_validator("addresses", mode="before")
    @classmethod
    def _one_string(cls, value: Any) -> Any:
        # A lone string is the commonest slip (addresses: 192.168.56.200-192.168.56.250).
        return [value] if isinstance(value, str) else value

    @property
    def ranges(self) -> tuple[net.IPRange, ...]:
        return tuple(net.parse_range(a) for a in self.addresses)

    @property
    def size(self) -> int:
        return net.total_size(self.ranges)


class L2AdvertisementConfig(_Strict):
    name: ObjectName
    # Empty: every pool (MetalLB's own meaning of an empty ipAddressPools).
    pools: tuple[str, ...] = ()
    # None: the host-only NIC, found by node preparation or given as network.interface.
    interfaces: Optional[tuple[str, ...]] = None


class MetalLBConfig(_Strict):
    version: MetalLBVersion = DEFAULT_METALLB_VERSION
    # A local path or URL of metallb-native.yaml, for offline labs. None: the upstream URL.
    manifest: Optional[str] = None
    pools: tuple[PoolConfig, ...] = ()
    l2_advertisements: tuple[L2AdvertisementConfig, ...] = ()

    @property
    def manifest_url(self) -> str:
        return (
            self.manifest
            or f"https://raw.githubusercontent.com/metallb/metallb/v{self.version}/config/manifests/metallb-native.yaml"
        )


class IngressConfig(_Strict):
    controller: Literal["ingress-nginx", "traefik"] = "ingress-nginx"
    # ingress-nginx: the controller version; traefik: the Helm chart version (see DEFAULT_INGRESS_VERSIONS).
    version: Optional[AppVersion] = None
    ip: Optional[Address] = None
    # For offline labs: ingress-nginx's deploy.yaml, or traefik's chart (a directory or .tgz),
    # as a local path (relative to the project) or a URL.
    manifest: Optional[str] = None
    # How apps are routed: Ingress objects (either controller) or Gateway API HTTPRoutes (traefik).
    api: Literal["ingress", "gateway"] = "ingress"
    # For offline labs: the Gateway API standard-install.yaml, when the chart carries no CRDs.
    gateway_api_manifest: Optional[str] = None

    @property
    def resolved_version(self) -> str:
        return self.version or DEFAULT_INGRESS_VERSIONS[self.controller]

    @property
    def address(self) -> Optional[IPv4Address]:
        return None if self.ip is None else net.parse_address(self.ip)


class ClusterConfig(_Strict):
    """An existing cluster: replaces the VM and kubeadm layer entirely."""

    # A kubeconfig file path, or the kubeconfig itself (set it with `pulumi config set --secret`).
    kubeconfig: Optional[SecretStr] = None
    context: Optional[str] = None
    # Write every manifest to this directory instead of applying it (pulumi-kubernetes'
    # render_yaml_to_directory): no cluster is contacted, nothing is awaited, and Secrets are
    # written there in plain text, so point it at a private, temporary directory.
    render_yaml_to_directory: Optional[str] = None


class TLSConfig(_Strict):
    """HTTPS from the lab's own CA (components/tls.py)."""

    enabled: bool = True
    # The CA's name as browsers and trust stores show it. None: "k8s-lab <stack> CA".
    ca_common_name: Optional[str] = Field(None, min_length=1, max_length=64)
    # Changing either of these (or the domain) makes a new CA, which must be trusted again.
    ca_validity_days: int = Field(3650, ge=30, le=36500)
    # Apple platforms refuse server certificates valid for more than 825 days.
    certificate_validity_days: int = Field(397, ge=7, le=825)


class DNSConfig(_Strict):
    """An opt-in DNS server answering every ``*.<domain>`` name with the ingress IP."""

    enabled: bool = False
    # Its LoadBalancer IP, from a pool: the one address users configure as the domain's resolver.
    ip: Optional[Address] = None
    version: AppVersion = DEFAULT_COREDNS_VERSION

    @property
    def address(self) -> Optional[IPv4Address]:
        return None if self.ip is None else net.parse_address(self.ip)


class SelfCheckConfig(_Strict):
    enabled: bool = True
    timeout_seconds: WholeNumber = Field(300, ge=10, le=3600)


class ArgoCDOptions(_Strict):
    version: AppVersion = "3.5.1"
    # install.yaml as a local path or URL, for offline labs. None: the upstream URL of `version`.
    manifest: Optional[str] = None
    # Export the initial admin password (read from argocd-initial-admin-secret on every `up`).
    # Turn off before deleting that Secret, or `up` fails reading it.
    export_admin_password: bool = True


class GrafanaOptions(_Strict):
    # The chart of the grafana-community repository (grafana/helm-charts froze its copy in 2026);
    # 12.7.2 ships Grafana 13.1.
    chart_version: AppVersion = "12.7.2"
    # The chart as a local directory or .tgz, for offline labs. None: the repository above.
    chart: Optional[str] = None


class OnlineBoutiqueOptions(_Strict):
    version: AppVersion = "0.10.6"
    # release/kubernetes-manifests.yaml as a local path or URL, for offline labs.
    manifest: Optional[str] = None
    load_generator: bool = False
    # Keep frontend-external a LoadBalancer (it then takes a pool IP) instead of ClusterIP.
    frontend_external: bool = False


class DemoOptions(_Strict):
    replicas: WholeNumber = Field(2, ge=1, le=20)


class AppOptions(_Strict):
    demo: DemoOptions = DemoOptions()
    argocd: ArgoCDOptions = ArgoCDOptions()
    grafana: GrafanaOptions = GrafanaOptions()
    online_boutique: OnlineBoutiqueOptions = Field(OnlineBoutiqueOptions(), alias="online-boutique")


# --------------------------------------------------------------------------------------------
# The whole lab


class LabConfig(_Strict):
    """Everything the program needs, validated. Build it with :func:`load` or :func:`parse`."""

    stack: str
    network: NetworkConfig
    nodes: tuple[NodeConfig, ...] = ()
    vagrant: VagrantConfig = VagrantConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    metallb: MetalLBConfig = MetalLBConfig()
    ingress: IngressConfig = IngressConfig()
    domain: str = "lab.local"
    apps: tuple[Literal["demo", "argocd", "grafana", "online-boutique"], ...] = ("demo",)
    app_options: AppOptions = AppOptions()
    cluster: Optional[ClusterConfig] = None
    self_check: SelfCheckConfig = SelfCheckConfig()
    tls: TLSConfig = TLSConfig()
    dns: DNSConfig = DNSConfig()
    # Set once the '.local' warning has been read: it then stops repeating on every preview.
    local_domain_acknowledged: bool = False
    write_kubeconfig: bool = False
    # Problems that do not stop the lab, logged by __main__ as Pulumi warnings.
    warnings: tuple[str, ...] = ()

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.lower().rstrip(".")
        if len(value) > MAX_HOSTNAME_LENGTH:
            raise ValueError(f"is {len(value)} characters long; a DNS name has at most {MAX_HOSTNAME_LENGTH}")
        if not all(_DNS_LABEL.match(label) for label in value.split(".")) or "." not in value:
            raise ValueError(f"{value!r} is not a DNS domain with at least two labels, e.g. lab.local or lab.test")
        return value

    @field_validator("apps")
    @classmethod
    def _unique_apps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))

    # -- derived views, so components do no config arithmetic of their own --

    @property
    def existing_cluster(self) -> bool:
        return self.cluster is not None

    @property
    def rendering(self) -> bool:
        """Render mode: manifests are written to a directory, and nothing is contacted."""
        return self.cluster is not None and bool(self.cluster.render_yaml_to_directory)

    @property
    def runs_self_check(self) -> bool:
        """The self-check curls the ingress IP, which render mode never does."""
        return self.self_check.enabled and not self.rendering

    @property
    def control_plane(self) -> NodeConfig:
        return next(n for n in self.nodes if n.role == "control-plane")

    @property
    def workers(self) -> tuple[NodeConfig, ...]:
        return tuple(n for n in self.nodes if n.role == "worker")

    def hostname(self, app: str) -> str:
        return f"{APP_HOSTS[app]}.{self.domain}"

    @property
    def hostnames(self) -> tuple[str, ...]:
        return tuple(self.hostname(app) for app in self.apps)

    @property
    def load_balancer_services(self) -> tuple[str, ...]:
        """Every LoadBalancer Service the lab creates, each taking one pool IP."""
        services = [f"{self.ingress.controller} controller"]
        if self.dns.enabled:
            services.append("DNS server")
        if "online-boutique" in self.apps and self.app_options.online_boutique.frontend_external:
            services.append("online-boutique frontend-external")
        return tuple(services)


# --------------------------------------------------------------------------------------------
# Checks of the lab as a whole


def _pool_path(i: int, j: Optional[int] = None) -> str:
    return f"metallb.pools[{i}].addresses" + ("" if j is None else f"[{j}]")


def check_lab(cfg: LabConfig) -> tuple[list[Problem], list[str]]:
    """Cross-key checks. Returns (problems, warnings)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    add = lambda path, message: problems.append(Problem(path, message))  # noqa: E731
    network = cfg.network.network
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
        pod, svc = net.parse_network(k8s.pod_cidr), net.parse_network(k8s.service_cidr)
        _check_cluster_ranges(cfg, network, pod, svc, add)

    # -- MetalLB --
    _check_metallb(cfg, network, reserved, pod, svc, add, warnings)

    # -- ingress --
    ingress_ip = cfg.ingress.address
    if ingress_ip is not None and not any(ingress_ip in r for p in cfg.metallb.pools for r in p.ranges):
        add(
            "ingress.ip",
            f"{ingress_ip} is outside every MetalLB pool, so MetalLB will never assign it; "
            "choose an address from metallb.pools or add it to a pool",
        )

    # -- LoadBalancer capacity --
    services = cfg.load_balancer_services
    capacity = sum(p.size for p in cfg.metallb.pools)
    auto_capacity = sum(p.size for p in cfg.metallb.pools if p.auto_assign)
    pinned = {a for a in (ingress_ip, cfg.dns.address if cfg.dns.enabled else None) if a is not None}
    for address in pinned:
        if any(address in r for p in cfg.metallb.pools if p.auto_assign for r in p.ranges):
            auto_capacity -= 1  # a pinned address is reserved for its Service
    wanting_auto = len(services) - len(pinned)
    if cfg.metallb.pools and (len(services) > capacity or wanting_auto > auto_capacity):
        add(
            "metallb.pools",
            f"the lab needs {len(services)} LoadBalancer IPs ({', '.join(services)}) but the pools hold "
            f"{capacity} ({auto_capacity} assignable automatically); widen a pool's addresses",
        )

    _check_ingress(cfg, add)
    _check_offline_files(cfg, add)
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
    ingress_ip = cfg.ingress.address
    if dns.address is None:
        free = next(
            (a for p in pools for r in p.ranges for a in (r.last, r.first) if a != ingress_ip),
            None,
        )
        example = f", e.g. {free}" if free else ""
        add("dns.ip", f"is required with dns.enabled: the resolver you configure needs an address that never changes; pick a free one from metallb.pools{example}")
        return
    address = dns.address
    holders = [p.name for p in pools if any(address in r for r in p.ranges)]
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
    if tls.enabled and tls.ca_validity_days < tls.certificate_validity_days:
        add(
            "tls.certificate_validity_days",
            f"{tls.certificate_validity_days} days outlives the CA (tls.ca_validity_days: {tls.ca_validity_days}); "
            "make it shorter than the CA's validity",
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


def is_url(location: str) -> bool:
    return "://" in location


def local_path(location: str) -> Path:
    """A local manifest or chart path as the program sees it: relative paths are from the project root."""
    path = Path(os.path.expanduser(location))
    return path if path.is_absolute() else PROJECT_ROOT / path


def _check_offline_files(cfg: LabConfig, add) -> None:
    """Local manifests and charts must exist now, not halfway through `pulumi up`."""
    options = cfg.app_options
    files = [
        ("metallb.manifest", cfg.metallb.manifest, "manifest"),
        ("ingress.manifest", cfg.ingress.manifest, "chart" if cfg.ingress.controller == "traefik" else "manifest"),
    ]
    if cfg.ingress.api == "gateway":
        files.append(("ingress.gateway_api_manifest", cfg.ingress.gateway_api_manifest, "manifest"))
    if "argocd" in cfg.apps:
        files.append(("app_options.argocd.manifest", options.argocd.manifest, "manifest"))
    if "grafana" in cfg.apps:
        files.append(("app_options.grafana.chart", options.grafana.chart, "chart"))
    if "online-boutique" in cfg.apps:
        files.append(("app_options.online-boutique.manifest", options.online_boutique.manifest, "manifest"))
    for key, location, kind in files:
        if location is None or is_url(location):
            continue
        path = local_path(location)
        if kind == "manifest" and not path.is_file():
            add(key, f"{path} is not a file; give the path of the downloaded manifest (relative to the project) or its URL")
        elif kind == "chart" and not (path.is_file() or (path / "Chart.yaml").is_file()):
            add(
                key,
                f"{path} is neither a chart archive (.tgz) nor a chart directory with a Chart.yaml; "
                "fetch it with `helm pull <repo>/<chart> --version <version>`",
            )


def app_memory_mb(cfg: LabConfig) -> dict[str, int]:
    """What the enabled apps and the lab's own controllers need on the workers, by name."""
    need = {
        f"{cfg.ingress.controller} controller": CONTROLLER_MEMORY_MB[cfg.ingress.controller],
        "MetalLB controller": METALLB_CONTROLLER_MEMORY_MB,
    }
    for app in cfg.apps:
        need[app] = APP_MEMORY_MB[app]
        if app == "online-boutique" and cfg.app_options.online_boutique.load_generator:
            need[app] += LOAD_GENERATOR_MEMORY_MB
    return need


def memory_warnings(cfg: LabConfig) -> list[str]:
    """A warning when the enabled apps will not fit the workers' memory (never an error: figures are rough)."""
    workers = cfg.workers
    if cfg.existing_cluster or not workers:
        return []  # an existing cluster's nodes are unknown here; no workers is an error already
    need = app_memory_mb(cfg)
    total = sum(need.values())
    room = sum(max(0, w.memory_mb - NODE_OVERHEAD_MB) for w in workers)
    if total <= room:
        return []
    breakdown = ", ".join(f"{name} ~{mb}" for name, mb in need.items())
    return [
        f"apps: the enabled apps need about {total} MB ({breakdown}) but the workers have about {room} MB "
        f"left after Kubernetes itself (~{NODE_OVERHEAD_MB} MB each); pods would stay Pending or be evicted. "
        "Raise the workers' memory_mb, add a worker, or enable fewer apps"
    ]


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
        address = node.address
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


def _check_metallb(cfg: LabConfig, network, reserved, pod, svc, add, warnings) -> None:
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
    node_ips = {n.address: n.name for n in cfg.nodes}
    for i, pool in enumerate(mlb.pools):
        if pool.name in pool_index:
            add(f"metallb.pools[{i}].name", f"{pool.name!r} is also the name of metallb.pools[{pool_index[pool.name]}]")
        pool_index.setdefault(pool.name, i)
        for j, r in enumerate(pool.ranges):
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
                hit = net.first_overlap([r], other.ranges)
                if hit:
                    add(path, f"{r} overlaps metallb.pools[{k}] ({other.name}: {hit[1]}); pools must not share addresses")
            for k, earlier in enumerate(pool.ranges[:j]):
                if r.overlaps(earlier):
                    add(path, f"{r} overlaps {earlier}, an earlier entry of the same pool")
    ingress_ip = cfg.ingress.address
    for i, pool in enumerate(mlb.pools):
        holder = next((p for p in mlb.pools if ingress_ip is not None and any(ingress_ip in r for r in p.ranges)), None)
        if holder is not None and pool.name == f"{holder.name}-reserved":
            add(
                f"metallb.pools[{i}].name",
                f"{pool.name!r} is the name of the pool that reserves ingress.ip {ingress_ip} inside {holder.name}; rename it",
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
                    f"names pool {name!r}, which is not in metallb.pools (known: {known}){_did_you_mean(name, pool_index)}",
                )
        for j, iface in enumerate(adv.interfaces or ()):
            if not _IFACE.match(iface):
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
    ingress_ip = cfg.ingress.address
    holder = next((p for p in mlb.pools if ingress_ip is not None and any(ingress_ip in r for r in p.ranges)), None)
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
    for i, pool in enumerate(mlb.pools):
        if pool is not holder and not _announced(mlb, pool.name):
            warnings.append(
                f"metallb.pools[{i}] ({pool.name}) is named by no L2 advertisement: its IPs would be assigned but "
                "never answered; add it to an advertisement's pools"
            )


# --------------------------------------------------------------------------------------------
# From raw stack config to LabConfig


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _format_loc(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "(root)"


def _model_of(annotation: Any) -> Optional[type[BaseModel]]:
    """The pydantic model inside an annotation such as ``Optional[X]`` or ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found:
            return found
    return None


def _is_sequence(annotation: Any) -> bool:
    """True for ``tuple[X, ...]`` and ``Optional[tuple[X, ...]]``."""
    if typing.get_origin(annotation) is tuple:
        return True
    return any(_is_sequence(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def _strip_unknown(model: type[BaseModel], data: Any) -> Any:
    """``data`` without the keys ``model`` does not know (already reported), so the rest can be checked."""
    if not isinstance(data, Mapping):
        return data
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    kept = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            continue
        sub = _model_of(field.annotation)
        if sub is not None and _is_sequence(field.annotation) and not isinstance(value, list):
            pass  # pydantic reports it as not a list
        elif sub is not None and isinstance(value, list):
            value = [_strip_unknown(sub, item) for item in value]
        elif sub is not None:
            value = _strip_unknown(sub, value)
        kept[key] = value
    return kept


def _unknown_keys(model: type[BaseModel], data: Any, loc: tuple) -> list[Problem]:
    """Typos, with the keys that are allowed and the closest match."""
    if not isinstance(data, Mapping):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            known = ", ".join(k for k in fields if k not in ("stack", "warnings"))
            problems.append(
                Problem(_format_loc(loc + (key,)), f"unknown key{_did_you_mean(str(key), fields)} (allowed here: {known})")
            )
            continue
        sub = _model_of(field.annotation)
        if sub is None:
            continue
        if _is_sequence(field.annotation) and not isinstance(value, list):
            continue  # pydantic says "expected a list"; its entries are not keys
        if isinstance(value, list):
            for i, item in enumerate(value):
                problems += _unknown_keys(sub, item, loc + (key, i))
        else:
            problems += _unknown_keys(sub, value, loc + (key,))
    return problems


_TYPE_HINTS = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "tuple_type": "expected a list (one `- ...` line per entry)",
    "model_type": "expected a mapping of keys",
    "dict_type": "expected a mapping of keys",
}


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt])i?b?\s*$", re.IGNORECASE)
_MB_PER_UNIT = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def _unit_hint(loc: tuple, given: Any) -> str:
    """``memory_mb: 4G`` -> "; memory_mb is in megabytes: write 4096"."""
    if not loc or loc[-1] != "memory_mb" or not isinstance(given, str):
        return ""
    match = _SIZE.match(given)
    if not match:
        return "; memory_mb is a whole number of megabytes, e.g. 4096"
    megabytes = float(match.group(1)) * _MB_PER_UNIT[match.group(2).lower()]
    return f"; memory_mb is in megabytes: write {int(megabytes)}"


def _shape_problems(errors: list[dict]) -> list[Problem]:
    """pydantic's errors as problems, without the echo of an entry's error on the list that holds it."""
    locs = [tuple(e["loc"]) for e in errors]
    kept = [
        e
        for e in errors
        # A tuple with a min_length counts only the entries that passed: "at least 1 item, not 0" is
        # the same problem as its one bad entry, already reported.
        if not (e["type"] == "too_short" and any(len(other) > len(e["loc"]) and other[: len(e["loc"])] == tuple(e["loc"]) for other in locs))
    ]
    return [_problem_from_pydantic(e) for e in kept]


def _problem_from_pydantic(error: dict) -> Problem:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = error["type"]
    given = error.get("input")
    if kind == "missing":
        message = "is required but missing"
    elif kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind in _TYPE_HINTS:
        shown = f"a {_kind_of(given)}" if isinstance(given, (Mapping, list)) else repr(given)
        message = f"{_TYPE_HINTS[kind]}, got {shown}{_unit_hint(loc, given)}"
    elif kind == "literal_error":
        message = f"{given!r} is not allowed; {error['msg'][0].lower()}{error['msg'][1:]}"
        if loc and loc[0] == "apps":
            loc = loc[:2]
    else:
        message = f"{error['msg']} (got {given!r})"
    return Problem(_format_loc(loc), message)


def parse(raw: Mapping[str, Any], *, stack: str, secret_keys: frozenset[str] = frozenset()) -> LabConfig:
    """Validate raw stack config (keys without the namespace) into a :class:`LabConfig`.

    Raises :class:`ConfigError` listing every problem found.
    """
    problems = _unknown_keys(LabConfig, raw, ())
    for key in ("stack", "warnings"):
        if key in raw:
            problems.append(Problem(key, "is set by the program, not by stack config; remove it"))
    data = _strip_unknown(LabConfig, {k: v for k, v in raw.items() if k not in ("stack", "warnings")})

    warnings: list[str] = []
    problems += _resolve_cluster(data, secret_keys, warnings)
    if "network" not in data:
        problems.append(Problem("network.cidr", "is required: the host-only network, e.g. {cidr: 192.168.56.0/24}"))
        raise ConfigError(problems)
    # The shape first; then, so that every problem is reported at once, the lab as a whole, on
    # the config with each ill-shaped value left out (its default, or its entry dropped).
    # Problems of the lab stage under a key that was left out are not reported: they could
    # stem from the omission.
    left_out: list[tuple] = []
    for p in problems:
        top = _top_key(p.path)
        left_out.append((top,))
        # A misspelt section (metalb) leaves the real one (metallb) at its defaults: not a problem of its own.
        left_out += [(close,) for close in difflib.get_close_matches(top, list(LabConfig.model_fields), n=1, cutoff=0.6)]
    candidate: dict = data
    cfg = None
    for attempt in range(4):
        try:
            cfg = LabConfig.model_validate({**candidate, "stack": stack})
            break
        except ValidationError as err:
            errors = err.errors()
            if attempt == 0:
                reported = {p.path for p in problems}
                problems += [p for p in _shape_problems(errors) if p.path not in reported]
            locs = [_repair_loc(e) for e in errors]
            left_out += locs
            candidate = _without(candidate, locs)
    if cfg is None:
        raise ConfigError(problems)

    lab_problems, lab_warnings = check_lab(cfg)
    hidden = {_section(loc[0]) for loc in left_out if loc}
    problems += [p for p in lab_problems if _section(_top_key(p.path)) not in hidden]
    if problems:
        raise ConfigError(problems)
    return cfg.model_copy(update={"warnings": tuple(warnings + lab_warnings)})


def _top_key(path: str) -> str:
    """``metallb.pools[0].name`` -> ``metallb``."""
    return path.split(".")[0].split("[")[0]


def _section(key: Any) -> str:
    """Keys whose checks depend on each other: the ingress IP must sit in a MetalLB pool."""
    return "metallb" if key == "ingress" else str(key)


def _repair_loc(error: dict) -> tuple:
    """What to leave out for an error: the value itself, or the entry missing a required key."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    return loc[:-1] if error["type"] == "missing" and len(loc) > 1 else loc


def _without(data: dict, locs: list[tuple]) -> dict:
    """A deep copy of ``data`` with the value at each loc removed (list entries deepest-last first)."""
    result = copy.deepcopy(data)
    for loc in sorted(locs, key=lambda l: [(0, p) if isinstance(p, int) else (1, str(p)) for p in l], reverse=True):
        target: Any = result
        for part in loc[:-1]:
            try:
                target = target[part]
            except (KeyError, IndexError, TypeError):
                target = None
                break
        if isinstance(target, dict):
            target.pop(loc[-1], None)
        elif isinstance(target, list) and isinstance(loc[-1], int) and loc[-1] < len(target):
            del target[loc[-1]]
    return result


def _resolve_cluster(data: dict, secret_keys: frozenset[str], warnings: list[str]) -> list[Problem]:
    """Turn cluster.kubeconfig from a path into the file's content, checking the context exists."""
    cluster = data.get("cluster")
    if cluster is None:
        return []
    if not isinstance(cluster, Mapping):
        return [Problem("cluster", "expected a mapping such as {kubeconfig: ~/.kube/config, context: kind-lab}")]
    if cluster.get("render_yaml_to_directory"):
        if cluster.get("kubeconfig") or cluster.get("context"):
            key = "cluster.kubeconfig" if cluster.get("kubeconfig") else "cluster.context"
            return [
                Problem(
                    key,
                    "cannot be combined with cluster.render_yaml_to_directory (the Kubernetes provider refuses "
                    "both: rendering contacts no cluster); remove one of them",
                )
            ]
        return []
    if not cluster.get("kubeconfig"):
        return [Problem("cluster.kubeconfig", "is required in existing-cluster mode: a kubeconfig path or its content")]
    value = cluster["kubeconfig"]
    if not isinstance(value, str):
        return [Problem("cluster.kubeconfig", f"expected a kubeconfig path or its content as a string, got a {_kind_of(value)}")]
    if "\n" in value or value.lstrip().startswith(("apiVersion", "{")):
        content, where = value, "the kubeconfig given inline"
        if "cluster" not in secret_keys:
            warnings.append(
                "cluster.kubeconfig holds credentials in plain text in the stack file; store it with "
                "`pulumi config set --secret --path cluster.kubeconfig \"$(cat <file>)\"`"
            )
    else:
        content, where, problem = _read_kubeconfig_file(value)
        if problem:
            return [Problem("cluster.kubeconfig", problem)]
    # Messages name where the kubeconfig came from and what is wrong, never its content.
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as err:
        return [Problem("cluster.kubeconfig", f"{where} is not valid YAML ({err.__class__.__name__})")]
    if isinstance(document, str) and _is_base64_kubeconfig(document):
        return [Problem("cluster.kubeconfig", BASE64_KUBECONFIG)]
    if not isinstance(document, Mapping) or not document.get("clusters"):
        return [Problem("cluster.kubeconfig", f"{where} has no clusters; is it a kubeconfig?")]
    for key in ("clusters", "contexts", "users"):
        entries = document.get(key)
        if entries is not None and not (isinstance(entries, list) and all(isinstance(e, Mapping) for e in entries)):
            return [
                Problem(
                    "cluster.kubeconfig",
                    f"{where}: `{key}` is a {_kind_of(entries)}, not a list of entries; is it a kubeconfig? "
                    "(`kubectl config view` shows what kubectl makes of it)",
                )
            ]
    contexts = [c.get("name") for c in document.get("contexts") or []]
    context = cluster.get("context")
    if context is not None and context not in contexts:
        return [
            Problem(
                "cluster.context",
                f"{context!r} is not a context of {where} (it has: {', '.join(map(str, contexts)) or 'none'})"
                f"{_did_you_mean(str(context), map(str, contexts))}",
            )
        ]
    data["cluster"] = {**cluster, "kubeconfig": content}
    return []


def _kind_of(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", list: "list", dict: "mapping", str: "string"}.get(
        type(value), type(value).__name__
    )


BASE64_KUBECONFIG = (
    "holds a base64-encoded kubeconfig; give the kubeconfig itself (decode it with `base64 -d`) or the path "
    "of its file (the value is not shown: it holds credentials)"
)


def _is_base64_kubeconfig(value: str) -> bool:
    try:
        decoded = base64.b64decode("".join(value.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return "clusters" in decoded or "apiVersion" in decoded


def _looks_like_a_path(value: str) -> bool:
    return len(value) < 1024 and ("/" in value or value.startswith(("~", ".")) or "." in value[1:])


def _read_kubeconfig_file(value: str) -> tuple[str, str, Optional[str]]:
    """(content, where, problem) of a kubeconfig given as a path; the value is shown only when it looks like one."""
    stripped = value.strip()
    path = Path(os.path.expanduser(stripped))
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError):  # a name too long for a path, or a NUL in it
        is_dir = is_file = False
    if is_dir:
        return "", "", f"{path} is a directory; give the kubeconfig file inside it, e.g. {path / 'config'}"
    if is_file:
        try:
            return path.read_bytes().decode("utf-8"), str(path), None
        except UnicodeDecodeError:
            return "", "", f"{path} is not a UTF-8 text file; is it a kubeconfig?"
        except OSError as err:
            return "", "", f"{path} cannot be read ({err.strerror})"
    if _is_base64_kubeconfig(stripped):
        return "", "", BASE64_KUBECONFIG
    if _looks_like_a_path(stripped):
        return "", "", f"file {path} does not exist; give the path of a kubeconfig or its content"
    return "", "", (
        "is neither the path of an existing file nor a kubeconfig (the value is not shown: it may hold credentials); "
        "give a path such as ~/.kube/config or the kubeconfig's YAML"
    )


STRUCTURED_KEYS = frozenset(
    {"network", "nodes", "vagrant", "kubernetes", "metallb", "ingress", "apps", "app_options", "cluster", "self_check", "tls", "dns"}
)


def _decode(key: str, value: Any) -> Any:
    """Pulumi hands structured values to the program as JSON text; plain ones as strings."""
    if not isinstance(value, str):
        return value
    if key in STRUCTURED_KEYS or key in ("write_kubeconfig", "local_domain_acknowledged"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # pydantic then names the key and the expected type
    return value


def read_stack_config() -> tuple[dict[str, Any], frozenset[str]]:
    """Every ``k8s-lab:*`` key of the running stack, decoded, and which of them are secret."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key in sorted(keys):
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        raw[key] = _decode(key, runtime_config.get_config(full_key))
        if runtime_config.is_config_secret(full_key) or full_key in runtime_config.get_config_secret_keys_env():
            secret.add(key)
    return raw, frozenset(secret)


def load() -> LabConfig:
    """Read and validate the running stack's configuration. Call once, from ``__main__.py``.

    On a problem the list is logged as the run's one error and the program ends (:class:`ConfigReported`).
    """
    raw, secret_keys = read_stack_config()
    try:
        return parse(raw, stack=pulumi.get_stack(), secret_keys=secret_keys)
    except ConfigError as err:
        pulumi.log.error(str(err))
        raise ConfigReported(err) from None


# --------------------------------------------------------------------------------------------
# Before the engine: `./lab up` and `./lab preview` check the stack's config first, so that a
# mistake ends with the problem list alone rather than followed by the CLI's resource summary.

PROBLEMS_EXIT_CODE = 65  # EX_DATAERR: anything else lets ./lab go on and pulumi report it


def raw_from_cli_json(text: str) -> tuple[dict[str, Any], frozenset[str]]:
    """The ``k8s-lab:*`` keys of ``pulumi config --json --show-secrets``, decoded, and the secret ones."""
    listed = json.loads(text)
    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for full_key, entry in listed.items():
        if not full_key.startswith(prefix):
            continue
        if not isinstance(entry, Mapping) or "value" not in entry or entry["value"] == "[unknown]":
            # A secret pulumi did not decrypt, or a value from an environment it did not open.
            raise ValueError(f"{full_key} has no value to check here")
        key = full_key[len(prefix) :]
        raw[key] = entry["objectValue"] if "objectValue" in entry else _decode(key, entry["value"])
        if entry.get("secret"):
            secret.add(key)
    return raw, frozenset(secret)


def main(argv: Optional[list[str]] = None) -> int:
    """``pulumi config --json --show-secrets | python -m components.config --stack lab``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Check a k8s-lab stack's config as `pulumi config --json` lists it.")
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    try:
        raw, secret_keys = raw_from_cli_json(sys.stdin.read())
    except (ValueError, AttributeError):
        return 0  # not what was expected: the program checks it again under pulumi
    try:
        parse(raw, stack=args.stack, secret_keys=secret_keys)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return PROBLEMS_EXIT_CODE
    except Exception:  # noqa: BLE001 - whatever it is, the program meets it again under pulumi
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
