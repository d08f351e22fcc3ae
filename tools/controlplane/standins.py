"""Stand-ins for the work of processes that cannot run here, each as small as it can be.

* **ingress-nginx's certificate Jobs**: a CA and serving certificate in Secret
  ``ingress-nginx-admission``, its CA patched into the ValidatingWebhookConfiguration, as
  kube-webhook-certgen does.
* **ingress-nginx's admission endpoint**: an HTTPS server with that certificate that admits every
  Ingress, as the controller does for valid ones.
* **The ingress controllers' status writer**: it copies the controller Service's load-balancer
  address (written by MetalLB's real controller) into the status of Ingresses of its class, as
  ingress-nginx's ``--publish-service`` and Traefik's ``publishedService`` do.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Optional

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

    # ingress-nginx: what its certificate Jobs do
    def pod_started(self, pod: dict, secrets: dict) -> None:
        """A pod the kubelet would start now (its Secrets exist): do its work if it is one stood in for."""
        self._ingress_nginx_jobs(pod, secrets)

    def tick(self, secrets: dict) -> None:
        """What the controllers do on every loop of the kubelet stand-in."""
        self._admission_endpoint(secrets)
        self._publish_ingress_status()

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
