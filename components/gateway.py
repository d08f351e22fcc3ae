"""The Gateway API objects of the lab (``ingress.api: gateway``), as pure manifest builders.

Traefik serves the Gateway API through its ``kubernetesGateway`` provider. The lab makes one
GatewayClass (``traefik``), one Gateway in Traefik's namespace whose listeners are Traefik's own
entry points (HTTP on ``web``, HTTPS on ``websecure``), and one HTTPRoute per app in the app's
namespace, attached to that Gateway. The Gateway's status carries the IP of Traefik's Service
(the chart's default ``statusAddress.service``), which is the lab's pinned ingress IP.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

from components.config.charts import chart_metadata
from components.config.defaults import version_tuple

GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GROUP}/v1"
CLASS_NAME = "traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"  # what Traefik's provider claims
GATEWAY_NAME = "lab"
HTTP_LISTENER = "web"
HTTPS_LISTENER = "websecure"
# Traefik binds a listener to the entry point with the same *container* port (the chart's
# ports.web.port and ports.websecure.port), not to the Service's 80/443.
ENTRY_POINT_PORTS = {HTTP_LISTENER: 8000, HTTPS_LISTENER: 8443}
# pulumi-kubernetes has no built-in await for custom resources; this makes `up` wait until
# Traefik has accepted the Gateway and programmed its listeners before any route is created.
WAIT_FOR_PROGRAMMED = {"pulumi.com/waitFor": "condition=Programmed"}
# Traefik charts from 40.2.0 no longer carry the Gateway API CRDs (crds/gateway-standard-install.yaml).
FIRST_CHART_WITHOUT_CRDS = (40, 2, 0)


def await_established(obj: dict[str, Any]) -> Optional[dict[str, Any]]:
    """Make Pulumi wait until each Gateway API CRD is Established, so no route meets "no matches for kind"."""
    if obj.get("kind") != "CustomResourceDefinition" or not str((obj.get("spec") or {}).get("group", "")).endswith(GROUP):
        return None
    obj = copy.deepcopy(obj)
    metadata = obj.setdefault("metadata", {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), "pulumi.com/waitFor": "condition=Established"}
    return obj


def standard_install_url(version: str) -> str:
    return f"https://github.com/kubernetes-sigs/gateway-api/releases/download/v{version}/standard-install.yaml"


def chart_bundles_crds(chart_version: str) -> bool:
    """Whether a Traefik chart of this version installs the Gateway API CRDs itself."""
    return version_tuple(chart_version)[:3] < FIRST_CHART_WITHOUT_CRDS


def local_chart_version(path: Path) -> Optional[str]:
    """The ``version`` of a local chart (a directory or a .tgz), None when it cannot be read."""
    version = (chart_metadata(path) or {}).get("version")
    return str(version) if version else None


def gateway_class_manifest() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "GatewayClass",
        "metadata": {"name": CLASS_NAME},
        "spec": {"controllerName": CONTROLLER_NAME},
    }


def gateway_manifest(namespace: str, tls_secret: Optional[str]) -> dict[str, Any]:
    """The lab's Gateway: HTTP always, HTTPS when the lab has a certificate (a Secret in ``namespace``).

    Routes from every namespace may attach: each app lives in its own.
    """
    everywhere = {"namespaces": {"from": "All"}}
    listeners: list[dict[str, Any]] = [
        {"name": HTTP_LISTENER, "port": ENTRY_POINT_PORTS[HTTP_LISTENER], "protocol": "HTTP", "allowedRoutes": everywhere}
    ]
    if tls_secret:
        listeners.append(
            {
                "name": HTTPS_LISTENER,
                "port": ENTRY_POINT_PORTS[HTTPS_LISTENER],
                "protocol": "HTTPS",
                "tls": {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": tls_secret}]},
                "allowedRoutes": everywhere,
            }
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": GATEWAY_NAME, "namespace": namespace, "annotations": dict(WAIT_FOR_PROGRAMMED)},
        "spec": {"gatewayClassName": CLASS_NAME, "listeners": listeners},
    }


def http_route_manifest(
    name: str, namespace: str, host: str, service: str, port: int, gateway_namespace: str, labels: dict[str, str]
) -> dict[str, Any]:
    """An HTTPRoute sending every path of ``host`` to ``service:port``, on each listener of the lab's Gateway."""
    return {
        "apiVersion": API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "parentRefs": [{"group": GROUP, "kind": "Gateway", "name": GATEWAY_NAME, "namespace": gateway_namespace}],
            "hostnames": [host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": service, "port": port}],
                }
            ],
        },
    }
