"""The typed shape of each stack key: pydantic models, unknown keys rejected, values coerced.

Each value is parsed once here, where it enters; the cross-key checks live in
:mod:`components.config.checks`.
"""

from __future__ import annotations

import re
import unicodedata
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal, Optional, Sequence

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import Annotated

from components import network as net
from components.config.defaults import (
    APP_HOSTS,
    DEFAULT_COREDNS_VERSION,
    DEFAULT_DEMO_IMAGE,
    DEFAULT_NODE_IMAGE,
    DEFAULT_INGRESS_VERSIONS,
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_METALLB_VERSION,
    DEFAULT_POD_CIDR,
    DEFAULT_SERVICE_CIDR,
    DEFAULT_VAGRANT_BOX,
    DEFAULT_VAGRANT_BOX_VERSION,
    MAX_HOSTNAME_LENGTH,
    RENEW_BEFORE_DAYS,
)

# Semantic versions have no leading zeros: 1.036.1 would name an apt repository that does not exist.
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_IMAGE_REF = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$")
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


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


def _text(value: Any) -> str:
    # The parsers below take any value; the stack file must still give these as strings.
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


def _parse_range(value: Any) -> net.IPRange:
    try:
        return net.parse_range(_text(value))
    except net.AddressError as err:
        raise ValueError(
            f"{err}. A pool entry is a range '192.168.56.200-192.168.56.250', a CIDR '192.168.56.200/29' "
            "or one address"
        ) from None


def _parse_address(value: Any) -> IPv4Address:
    try:
        return net.parse_address(_text(value))
    except net.AddressError as err:
        raise ValueError(str(err)) from None


def _parse_network(value: Any) -> IPv4Network:
    try:
        return net.parse_network(_text(value))
    except net.AddressError as err:
        raise ValueError(str(err)) from None


# Addresses, networks and pool ranges are parsed once, here, and travel typed; they become strings
# only where a manifest, a command's environment or an export is built.
Address = Annotated[IPv4Address, PlainValidator(_parse_address)]
Cidr = Annotated[IPv4Network, PlainValidator(_parse_network)]
AddressRange = Annotated[net.IPRange, PlainValidator(_parse_range)]
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
        if value is not None and not INTERFACE_NAME.match(value):
            raise ValueError(f"{value!r} is not a Linux interface name (1-15 letters, digits, '-', '_' or '.'), e.g. eth1")
        return value


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


def control_plane_and_workers(nodes: Sequence[NodeConfig]) -> tuple[Optional[NodeConfig], tuple[NodeConfig, ...]]:
    """The control plane (the checks require exactly one; None before they ran) and the workers, in order."""
    control_plane = next((n for n in nodes if n.role == "control-plane"), None)
    return control_plane, tuple(n for n in nodes if n.role == "worker")


class VagrantConfig(_Strict):
    """The machines: VMs (virtualbox, libvirt) or system containers (docker, Linux hosts only).

    For ``docker`` the box is the node image (built by ``./lab node-image``); it has no version.
    """

    box: str = DEFAULT_VAGRANT_BOX
    box_version: str = DEFAULT_VAGRANT_BOX_VERSION
    provider: Literal["virtualbox", "libvirt", "docker"] = "virtualbox"

    @model_validator(mode="before")
    @classmethod
    def _docker_image(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("provider") == "docker" and "box" not in data:
            return {**data, "box": DEFAULT_NODE_IMAGE}
        return data

    @property
    def containers(self) -> bool:
        """The nodes are system containers sharing the host's kernel, not VMs."""
        return self.provider == "docker"


class KubernetesConfig(_Strict):
    version: KubernetesVersion = DEFAULT_KUBERNETES_VERSION
    cni: Literal["flannel", "calico"] = "flannel"
    pod_cidr: Cidr = Field(DEFAULT_POD_CIDR, validate_default=True)
    service_cidr: Cidr = Field(DEFAULT_SERVICE_CIDR, validate_default=True)
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
    def size(self) -> int:
        return net.total_size(self.addresses)


def reservation_name(pool: str, key: str) -> str:
    """``lab-pool-reserved-ingress``: the ``autoAssign: false`` pool holding the IP ``key`` (``ingress.ip``)
    pins, carved out of ``pool``. One pool a key, so that a key's change touches no other key's pool."""
    return f"{pool}-reserved-{key.split('.')[0]}"


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
    # Controller pods, one per node while there are nodes enough (components.manifests.replicated):
    # with two, a worker that stops takes one and the other keeps serving the IP MetalLB moves.
    replicas: WholeNumber = Field(2, ge=1, le=10)
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
    # Raised by one, it makes a new CA (./lab rotate-ca raises it): before the CA expires, or to
    # start afresh. The number means nothing else.
    ca_rotation: int = Field(0, ge=0)
    # Apple platforms refuse server certificates valid for more than 825 days; it must outlast the
    # renewal window (RENEW_BEFORE_DAYS), or every `up` would issue it again.
    certificate_validity_days: int = Field(397, ge=RENEW_BEFORE_DAYS + 1, le=825)


class DNSConfig(_Strict):
    """An opt-in DNS server answering every ``*.<domain>`` name with the ingress IP."""

    enabled: bool = False
    # Its LoadBalancer IP, from a pool: the one address users configure as the domain's resolver.
    ip: Optional[Address] = None
    version: AppVersion = DEFAULT_COREDNS_VERSION


class OfflineConfig(_Strict):
    """An offline lab: every file and image a node or the program fetches comes from a bundle
    (``./lab bundle fill`` fills it; components/bundle)."""

    # The bundle's directory. None: online, everything is downloaded.
    bundle: Optional[str] = None


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
    # The image behind app.<domain>: any HTTP server listening on `port`. The default,
    # traefik/whoami, answers with the pod's name and the request as it arrived.
    image: str = DEFAULT_DEMO_IMAGE
    # Its arguments. None: whoami's own (--port, --name) for the default image, none for another.
    args: Optional[tuple[str, ...]] = None
    port: WholeNumber = Field(8080, ge=1024, le=65535)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not _IMAGE_REF.match(value) or ("@" not in value and ":" not in value.rsplit("/", 1)[-1]):
            raise ValueError(
                f"{value!r} is not an image reference with a tag or digest, e.g. docker.io/traefik/whoami:v1.11.0"
            )
        return value

    @property
    def resolved_args(self) -> tuple[str, ...]:
        if self.args is not None:
            return self.args
        return (f"--port={self.port}", "--name=k8s-lab-demo") if self.image == DEFAULT_DEMO_IMAGE else ()


class AppOptions(_Strict):
    demo: DemoOptions = DemoOptions()
    argocd: ArgoCDOptions = ArgoCDOptions()
    grafana: GrafanaOptions = GrafanaOptions()
    online_boutique: OnlineBoutiqueOptions = Field(OnlineBoutiqueOptions(), alias="online-boutique")


# --------------------------------------------------------------------------------------------
# The whole lab

# The URL standard parses a host whose last label is a number (decimal, or hex with 0x) as an IPv4
# address: http://app.lab.123 is never looked up.
_NUMBER = re.compile(r"^([0-9]+|0x[0-9a-f]*)$")


def _is_dns_domain(value: str) -> bool:
    return "." in value and all(_DNS_LABEL.match(label) for label in value.split("."))


def _ascii_domain(value: str) -> Optional[str]:
    """``läb.test`` -> ``xn--lb-via.test``: each label with letters outside ASCII in its IDNA (punycode)
    form, the name browsers look up; None when a label cannot be encoded."""
    labels = []
    for label in value.split("."):
        if not label.isascii():
            try:
                label = "xn--" + unicodedata.normalize("NFC", label).encode("punycode").decode("ascii")
            except UnicodeError:
                return None
        labels.append(label)
    return ".".join(labels)


def app_hostname(app: str, domain: str) -> str:
    """``app.lab.local``: where an app answers."""
    return f"{APP_HOSTS[app]}.{domain}"


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
    offline: OfflineConfig = OfflineConfig()
    # Set once the '.local' warning has been read: it then stops repeating on every preview.
    local_domain_acknowledged: bool = False
    write_kubeconfig: bool = False
    # Problems that do not stop the lab, logged by __main__ as Pulumi warnings.
    warnings: tuple[str, ...] = ()

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.lower().rstrip(".")
        ascii_form = _ascii_domain(value)
        if ascii_form is not None and ascii_form != value and _is_dns_domain(ascii_form):
            raise ValueError(
                f"{value!r} is an internationalised name; Ingress hosts, certificates and /etc/hosts take its "
                f"ASCII form, which browsers look up in its place: set the domain to {ascii_form}"
            )
        if len(value) > MAX_HOSTNAME_LENGTH:
            raise ValueError(f"is {len(value)} characters long; a DNS name has at most {MAX_HOSTNAME_LENGTH}")
        if not _is_dns_domain(value):
            raise ValueError(f"{value!r} is not a DNS domain with at least two labels, e.g. lab.local or lab.test")
        last = value.rsplit(".", 1)[1]
        if _NUMBER.match(last):
            raise ValueError(
                f"{value!r} ends in a number ({last}): browsers take such a name for an IPv4 address and never "
                "look it up, so no app URL would open; end the domain with a name, e.g. lab.test"
            )
        if last == "localhost":
            raise ValueError(
                f"{value!r} is under localhost: browsers send every *.localhost name to the laptop's own loopback "
                "address (RFC 6761), ignoring /etc/hosts and DNS, so no app URL would reach the ingress IP; "
                "use another domain, e.g. lab.test"
            )
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
    def control_plane(self) -> Optional[NodeConfig]:
        return control_plane_and_workers(self.nodes)[0]

    @property
    def workers(self) -> tuple[NodeConfig, ...]:
        return control_plane_and_workers(self.nodes)[1]

    def hostname(self, app: str) -> str:
        return app_hostname(app, self.domain)

    @property
    def hostnames(self) -> tuple[str, ...]:
        return tuple(self.hostname(app) for app in self.apps)

    @property
    def pins(self) -> dict[str, Optional[IPv4Address]]:
        """Every key that can pin a Service's IP, with the IP it pins now: None when it is unset or its
        Service is off (dns.ip without dns.enabled). Each pinned IP is carved into a reservation pool."""
        return {"ingress.ip": self.ingress.ip, "dns.ip": self.dns.ip if self.dns.enabled else None}

    @property
    def pinned_ips(self) -> dict[str, IPv4Address]:
        """The IPs Services ask MetalLB for by name, by the config key that pins each."""
        return {key: ip for key, ip in self.pins.items() if ip is not None}

    @property
    def load_balancer_services(self) -> tuple[str, ...]:
        """Every LoadBalancer Service the lab creates, each taking one pool IP."""
        services = [f"{self.ingress.controller} controller"]
        if self.dns.enabled:
            services.append("DNS server")
        if "online-boutique" in self.apps and self.app_options.online_boutique.frontend_external:
            services.append("online-boutique frontend-external")
        return tuple(services)
