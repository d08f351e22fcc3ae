"""The values the program pins and the limits it holds the stack config to.

Each pinned version can be overridden in the stack file; the limits are the tools' own.
"""

from __future__ import annotations

import re
from pathlib import Path

NAMESPACE = "k8s-lab"

# Values that the program pins. Each can be overridden in the stack file.
DEFAULT_KUBERNETES_VERSION = "1.36.1"
DEFAULT_METALLB_VERSION = "0.14.9"
DEFAULT_VAGRANT_BOX = "bento/ubuntu-24.04"
DEFAULT_VAGRANT_BOX_VERSION = "202510.26.0"
# vagrant.provider: docker runs nodes from this image, which `./lab node-image` builds.
DEFAULT_NODE_IMAGE = "k8s-lab/node:bookworm"
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
# The same CoreDNS as kubeadm 1.36's cluster DNS, so one image serves both.
DEFAULT_COREDNS_VERSION = "1.14.2"
# The demo app's image (app_options.demo.image).
DEFAULT_DEMO_IMAGE = "docker.io/traefik/whoami:v1.11.0"
DEFAULT_POD_CIDR = "10.244.0.0/16"  # flannel's own default
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"  # kubeadm's default

# kubeadm's preflight refuses a control plane below these.
KUBEADM_MIN_CPUS = 2
KUBEADM_MIN_MEMORY_MB = 1700
OLDEST_SUPPORTED_KUBERNETES_MINOR = 34
# The kubeadm configuration the lab writes is kubeadm.k8s.io/v1beta4, which kubeadm reads from 1.31.
OLDEST_KUBEADM_V1BETA4_MINOR = 31

MAX_HOSTNAME_LENGTH = 253  # RFC 1035, as Kubernetes checks an Ingress host
MAX_OBJECT_NAME_LENGTH = 253  # a Kubernetes object name (DNS subdomain)

APP_NAMES = ("demo", "argocd", "grafana", "online-boutique")
APP_HOSTS = {"demo": "app", "argocd": "argocd", "grafana": "grafana", "online-boutique": "boutique"}

# The project directory (this file is components/config/defaults.py): where Pulumi.yaml lives and
# where Pulumi runs the program and its providers, so relative manifest and chart paths start here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# The server certificate is renewed by the first `up` this close to its expiry, so it must be
# issued for longer, or every `up` would issue it again.
RENEW_BEFORE_DAYS = 30

# Preview warns this long before the lab CA expires, so there is time to rotate it and trust the
# new one. The CA must outlive the certificate by at least this much: the warning then never
# starts while the first certificate is fresh, and a renewed certificate, which never outlives
# the CA, still gets months rather than days.
CA_WARN_BEFORE_DAYS = 90


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.15.1"`` -> (1, 15, 1); a pre-release or build suffix (``40.2.0-rc.1``, ``v3.7.11``'s v) is dropped."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", version)
    if match is None:
        raise ValueError(f"{version!r} is not a version")
    return tuple(int(part) for part in match.group(1).split("."))
