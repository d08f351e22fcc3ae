"""DNS for the lab's domain (``dns.enabled``): CoreDNS answering every ``*.<domain>`` with the ingress IP.

One small CoreDNS Deployment serves the lab's zone only (queries for any other name are
refused: it is no open resolver) behind one LoadBalancer Service on a pinned pool IP, UDP and
TCP port 53. The laptop sends just the lab's domain there (systemd-resolved's per-link routing
domain, macOS's /etc/resolver/<domain>, Windows' NRPT), so no /etc/hosts line is needed and
every new app resolves at once.

CoreDNS listens on an unprivileged port inside the pod (the Service maps 53 to it), so it runs
as a non-root user with every capability dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import Cluster
from components.config import DNSConfig
from components.manifests import spread_pod_spec

if TYPE_CHECKING:
    from components.ingress import Ingress
    from components.metallb import MetalLB

NAMESPACE = "lab-dns"
NAME = "lab-dns"
CONTAINER_PORT = 1053
READY_PORT = 8181
HEALTH_PORT = 8080
TTL_SECONDS = 60
SELECTOR = {"app.kubernetes.io/name": NAME}
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "k8s-lab", "app.kubernetes.io/managed-by": "pulumi"}


def corefile(domain: str, ingress_ip: str) -> str:
    """The zone: A records for ``domain`` and every name below it, NODATA for other types there."""
    return (
        f"{domain}:{CONTAINER_PORT} {{\n"
        "    errors\n"
        f"    health :{HEALTH_PORT}\n"
        f"    ready :{READY_PORT}\n"
        f"    template IN A {domain} {{\n"
        f'        answer "{{{{ .Name }}}} {TTL_SECONDS} IN A {ingress_ip}"\n'
        "    }\n"
        f"    template ANY ANY {domain} {{\n"
        "        rcode NOERROR\n"
        "    }\n"
        "}\n"
    )


def resolver_commands(domain: str, ip: str) -> dict[str, str]:
    """How to send the lab's domain, and only it, to the lab's DNS server, per system."""
    return {
        "systemd_resolved": (
            f"link=$(ip -o route get {ip} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p') && "
            f"sudo resolvectl dns \"$link\" {ip} && sudo resolvectl domain \"$link\" '~{domain}'"
            "  # per link (the host-only adapter); run again after it is re-created, e.g. by a reboot"
        ),
        "macos": f"sudo mkdir -p /etc/resolver && echo 'nameserver {ip}' | sudo tee /etc/resolver/{domain}",
        "windows": f'Add-DnsClientNrptRule -Namespace ".{domain}" -NameServers "{ip}"  # PowerShell as Administrator',
    }


def image(version: str) -> str:
    """The lab DNS server's image: CoreDNS as Kubernetes publishes it."""
    return f"registry.k8s.io/coredns/coredns:v{version}"


def dns_manifests(domain: str, ingress_ip: str, version: str, annotations: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The ConfigMap, Deployment and Service (metadata and the rest) of the lab's DNS server."""
    config = corefile(domain, ingress_ip)
    # A new Corefile rolls the pod: CoreDNS reads it only at start (no reload plugin to poll).
    checksum = hashlib.sha256(config.encode()).hexdigest()
    deployment = {
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            # Two, on two nodes while there are two: the resolver the laptop is told to use keeps
            # answering when a worker stops (MetalLB moves the IP, the other pod serves it).
            "replicas": 2,
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {"labels": LABELS, "annotations": {"k8s-lab/corefile-sha256": checksum}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "coredns",
                            "image": image(version),
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": CONTAINER_PORT, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": CONTAINER_PORT, "protocol": "TCP"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": READY_PORT}, "periodSeconds": 5},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": HEALTH_PORT}, "periodSeconds": 10},
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": NAME}}],
                },
            },
        },
    }
    spread_pod_spec(deployment["spec"]["template"]["spec"], SELECTOR)
    config_map = {"metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS}, "data": {"Corefile": config}}
    return {"config_map": config_map, "deployment": deployment, "service": dns_service(annotations)}


def dns_service(annotations: dict[str, str]) -> dict[str, Any]:
    """The DNS server's LoadBalancer Service: it needs only its pinned IP's annotations, not the ingress IP."""
    return {
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS, "annotations": dict(annotations)},
        "spec": {
            "type": "LoadBalancer",
            # Why Cluster and not Local: see components.manifests.load_balancer_service.
            "externalTrafficPolicy": "Cluster",
            "selector": SELECTOR,
            "ports": [
                {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp", "protocol": "TCP"},
            ],
        },
    }


@dataclass(frozen=True)
class LabDNSArgs:
    cluster: Cluster
    metallb: "MetalLB"
    ingress: "Ingress"
    config: DNSConfig
    domain: str


class LabDNS(pulumi.ComponentResource):
    """CoreDNS for the lab's zone on ``dns.ip``; ready once its Service has the IP and its pod answers."""

    ip: str
    resolvers: dict[str, str]
    """Commands that send the lab's domain to this server (systemd-resolved, macOS, Windows)."""

    def __init__(self, name: str, args: LabDNSArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:dns:LabDNS", name, None, opts)
        config = args.config
        assert config.ip is not None  # the configuration's checks require it
        self.ip = str(config.ip)
        provider = args.cluster.provider
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": NAMESPACE, "labels": LABELS},
            # Like the ingress controller: it installs while MetalLB comes up, once a worker can run it.
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        annotations = args.metallb.load_balancer_annotations(config.ip)
        # Only the zone (the Corefile, and the Deployment that rolls with it) needs the ingress IP.
        manifests = args.ingress.ip.apply(lambda ip: dns_manifests(args.domain, ip, config.version, annotations))
        service = dns_service(annotations)
        child = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.namespace])
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=manifests["config_map"]["metadata"],
            data=manifests["config_map"]["data"],
            opts=child,
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=manifests["deployment"]["metadata"],
            spec=manifests["deployment"]["spec"],
            # Its two pods spread over the workers: all of them, not only the first to join.
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.namespace, self.config_map, *args.cluster.every_worker]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=service["metadata"],
            spec=service["spec"],
            opts=child,
        )
        self.resolvers = resolver_commands(args.domain, self.ip)
        self.register_outputs({"ip": self.ip})
