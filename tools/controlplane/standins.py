"""Stand-ins for the work of processes that cannot run here, each as small as it can be.

* **ingress-nginx's certificate Jobs**: a CA and serving certificate in Secret
  ``ingress-nginx-admission``, its CA patched into the ValidatingWebhookConfiguration, as
  kube-webhook-certgen does.
* **ingress-nginx's admission endpoint**: an HTTPS server with that certificate that admits every
  Ingress, as the controller does for valid ones.
* **The ingress controllers' status writer**: it copies the controller Service's load-balancer
  address (written by MetalLB's real controller) into the status of Ingresses of its class, as
  ingress-nginx's ``--publish-service`` and Traefik's ``publishedService`` do.
* **Traefik's Gateway status**: for a Gateway of a GatewayClass whose ``controllerName`` is
  Traefik's, what Traefik's ``kubernetesGateway`` provider writes into its status: the address of
  Traefik's Service (its ``statusAddress.service``), each listener's conditions and attached
  routes, and ``Programmed`` once every listener is. A listener is refused, as Traefik refuses
  it, when its port is none of the Traefik container's ports (its entry points) or its
  certificate is not a ``kubernetes.io/tls`` Secret in the Gateway's namespace; the Gateway then
  stays un-Programmed and `up`, which waits for it, does not finish.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any, Optional

from tools.controlplane.api import ApiError
from tools.controlplane.gatewayapi import V1 as GATEWAY_V1
from tools.controlplane.gatewayapi import attachments
from tools.controlplane.pki import make_ca, make_serving_cert, pem_cert, pem_key
from tools.controlplane.servers import AdmitAllWebhook

if TYPE_CHECKING:
    from tools.controlplane.plane import ControlPlane


class ControllerStandIns:
    """The controllers' work for this tier, driven by the kubelet stand-in's loop."""

    def __init__(self, plane: "ControlPlane", events: list[str]):
        self.plane = plane
        self.api = plane.api
        self.events = events
        self.admission: Optional[AdmitAllWebhook] = None

    def close(self) -> None:
        if self.admission:
            self.admission.close()
            self.admission = None

    def pod_started(self, pod: dict, secrets: dict) -> None:
        """A pod the kubelet would start now (its Secrets exist): do its work if it is one stood in for."""
        self._ingress_nginx_jobs(pod, secrets)

    def tick(self, secrets: dict) -> None:
        """What the controllers do on every loop of the kubelet stand-in."""
        self._admission_endpoint(secrets)
        self._publish_ingress_status()
        self._traefik_gateway_status(secrets)

    # ingress-nginx: what its certificate Jobs do
    def _ingress_nginx_jobs(self, pod: dict, secrets: dict) -> None:
        meta = pod["metadata"]
        job = (meta.get("labels") or {}).get("job-name") or (meta.get("labels") or {}).get("batch.kubernetes.io/job-name")
        if meta["namespace"] != "ingress-nginx" or job not in ("ingress-nginx-admission-create", "ingress-nginx-admission-patch"):
            return
        name = "ingress-nginx-admission"
        if job.endswith("create") and ("ingress-nginx", name) not in secrets:
            ca, ca_key = make_ca("k8s-lab-test ingress-nginx admission CA")
            host = "ingress-nginx-controller-admission"
            cert, key = make_serving_cert(ca, ca_key, [f"{host}.ingress-nginx.svc", f"{host}.ingress-nginx.svc.cluster.local"])
            data = {"ca": pem_cert(ca), "cert": pem_cert(cert), "key": pem_key(key)}
            self.api.request(
                "POST",
                "/api/v1/namespaces/ingress-nginx/secrets",
                {"metadata": {"name": name}, "data": {k: base64.b64encode(v).decode() for k, v in data.items()}},
            )
            self.events.append(f"{time.monotonic():.2f} certgen create")
        if job.endswith("patch") and ("ingress-nginx", name) in secrets:
            config = self.api.get(f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}")
            ca = secrets[("ingress-nginx", name)]["data"]["ca"]
            if config and any(w["clientConfig"].get("caBundle") != ca for w in config.get("webhooks") or []):
                ops = [{"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca} for i in range(len(config["webhooks"]))]
                self.api.patch(f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}", ops, kind="json")
                self.events.append(f"{time.monotonic():.2f} certgen patch")

    def _admission_endpoint(self, secrets: dict) -> None:
        secret = secrets.get(("ingress-nginx", "ingress-nginx-admission"))
        if secret and self.admission is None:
            data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
            self.admission = AdmitAllWebhook(8443, data["cert"], data["key"], self.plane.dir)
            self.plane.proxy.routes[("ingress-nginx", "ingress-nginx-controller-admission")] = 8443
        elif secret is None and self.admission is not None:
            self.admission.close()
            self.admission = None

    def _publish_ingress_status(self) -> None:
        controllers = {"nginx": ("ingress-nginx", "ingress-nginx-controller"), "traefik": ("traefik", "traefik")}
        for ingress in self.api.items("/apis/networking.k8s.io/v1/ingresses"):
            where = controllers.get(ingress["spec"].get("ingressClassName", ""))
            if where is None:
                continue
            service = self.api.get(f"/api/v1/namespaces/{where[0]}/services/{where[1]}")
            addresses = [{"ip": a["ip"]} for a in ((service or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or []) if a.get("ip")]
            current = ingress.get("status", {}).get("loadBalancer", {}).get("ingress") or []
            if addresses and [{"ip": a.get("ip")} for a in current] != addresses:
                meta = ingress["metadata"]
                self.api.patch(
                    f"/apis/networking.k8s.io/v1/namespaces/{meta['namespace']}/ingresses/{meta['name']}/status",
                    {"status": {"loadBalancer": {"ingress": addresses}}},
                )

    # Traefik's kubernetesGateway provider: the status of the Gateways of its class
    def _traefik_gateway_status(self, secrets: dict) -> None:
        try:
            self._write_gateway_status(secrets)
        except ApiError as err:
            # While its CRDs are being created or deleted the API server answers 429 ("storage is
            # (re)initializing") or 404 for the Gateway API's resources; a controller retries.
            if err.status not in (404, 429):
                raise

    def _write_gateway_status(self, secrets: dict) -> None:
        if not self.api.get(GATEWAY_V1):
            return
        classes = {c["metadata"]["name"]: c for c in self.api.items(f"{GATEWAY_V1}/gatewayclasses")}
        gateways = [
            g
            for g in self.api.items(f"{GATEWAY_V1}/gateways")
            if (classes.get(g["spec"]["gatewayClassName"]) or {}).get("spec", {}).get("controllerName") == TRAEFIK_CONTROLLER
        ]
        if not gateways:
            return
        deployment = self.api.get(f"/apis/apps/v1/namespaces/{TRAEFIK[0]}/deployments/{TRAEFIK[1]}") or {}
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
        entry_points = {p["containerPort"] for p in containers[0].get("ports") or []}
        service = self.api.get(f"/api/v1/namespaces/{TRAEFIK[0]}/services/{TRAEFIK[1]}") or {}
        ips = [a["ip"] for a in service.get("status", {}).get("loadBalancer", {}).get("ingress") or [] if a.get("ip")]
        attached, _ = attachments(self.api)
        for gateway in gateways:
            status = gateway_status(gateway, entry_points, ips, secrets, attached)
            if _without_times(gateway.get("status")) == _without_times(status):
                continue
            meta = gateway["metadata"]
            self.api.patch(f"{GATEWAY_V1}/namespaces/{meta['namespace']}/gateways/{meta['name']}/status", {"status": status})
            programmed = next(c["status"] for c in status["conditions"] if c["type"] == "Programmed")
            self.events.append(f"{time.monotonic():.2f} gateway {meta['namespace']}/{meta['name']} Programmed={programmed}")


TRAEFIK = ("traefik", "traefik")  # the chart's Deployment and Service, in the lab's traefik namespace
TRAEFIK_CONTROLLER = "traefik.io/gateway-controller"


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def gateway_status(gateway: dict, entry_points: set[int], ips: list[str], secrets: dict, attached: list) -> dict[str, Any]:
    meta = gateway["metadata"]
    generation = meta.get("generation", 1)
    key = f"{meta['namespace']}/{meta['name']}"
    listeners = []
    for listener in gateway["spec"]["listeners"]:
        problems = []
        if listener["port"] not in entry_points:
            problems.append(("Accepted", "PortUnavailable", f"no Traefik entry point on port {listener['port']} (entry points: {sorted(entry_points)})"))
        for ref in (listener.get("tls") or {}).get("certificateRefs") or []:
            secret = secrets.get((ref.get("namespace", meta["namespace"]), ref["name"]))
            if ref.get("kind", "Secret") != "Secret" or secret is None or secret.get("type") != "kubernetes.io/tls":
                problems.append(("ResolvedRefs", "InvalidCertificateRef", f"certificateRef {ref['name']} is not a kubernetes.io/tls Secret here"))
        failed = {kind: (reason, message) for kind, reason, message in problems}
        # Each condition holds unless a problem names it; Programmed holds when none is found.
        passing = {
            "Accepted": ("Accepted", "Listener accepted"),
            "ResolvedRefs": ("ResolvedRefs", "References resolved"),
            "Programmed": ("Programmed", "Listener programmed"),
        }
        if failed:
            failed.setdefault("Programmed", ("Invalid", "Listener not valid"))
        conditions = [
            _condition(kind, kind not in failed, *failed.get(kind, passing[kind]), generation) for kind in passing
        ]
        listeners.append(
            {
                "name": listener["name"],
                "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                "attachedRoutes": sum(1 for a in attached if a.gateway == key and a.listener == listener["name"]),
                "conditions": conditions,
            }
        )
    programmed = bool(ips) and all(c["status"] == "True" for entry in listeners for c in entry["conditions"])
    return {
        "addresses": [{"type": "IPAddress", "value": ip} for ip in ips],
        "conditions": [
            _condition("Accepted", True, "Accepted", "Gateway accepted", generation),
            _condition(
                "Programmed",
                programmed,
                "Programmed" if programmed else ("AddressNotAssigned" if not ips else "Invalid"),
                "Gateway programmed" if programmed else ("Traefik's Service has no load-balancer IP yet" if not ips else "a listener is not valid"),
                generation,
            ),
        ],
        "listeners": listeners,
    }


def _without_times(status: Optional[dict]) -> Any:
    """A status without its transition times, to compare what a controller would write again."""
    if isinstance(status, dict):
        return {k: _without_times(v) for k, v in status.items() if k != "lastTransitionTime"}
    if isinstance(status, list):
        return [_without_times(v) for v in status]
    return status
