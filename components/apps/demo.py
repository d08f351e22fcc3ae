"""The demo app at ``app.<domain>``: traefik/whoami, which answers with what reached it.

Its reply shows the pod's name and IP and the request headers as they arrived (Host,
X-Forwarded-For, X-Real-Ip), so ``curl http://app.lab.local`` shows the whole path: the ingress
controller forwarded it, and which of the replicas answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.apps.base import App, AppArgs, LABELS
from components.config import DemoOptions

NAMESPACE = "demo"
IMAGE = "docker.io/traefik/whoami:v1.11.0"
PORT = 8080  # unprivileged, so the container needs no root and no NET_BIND_SERVICE


def demo_manifests(replicas: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo Deployment and its Service."""
    selector = {"app.kubernetes.io/name": "demo"}
    labels = {**LABELS, **selector}
    deployment = {
        "metadata": {"name": "demo", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "whoami",
                            "image": IMAGE,
                            "args": [f"--port={PORT}", "--name=k8s-lab-demo"],
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "metadata": {"name": "demo", "namespace": NAMESPACE, "labels": labels},
        "spec": {"type": "ClusterIP", "selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    return deployment, service


@dataclass(frozen=True)
class DemoArgs(AppArgs):
    options: DemoOptions = DemoOptions()


class Demo(App):
    def __init__(self, name: str, args: DemoArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:apps:Demo", name, None, opts)
        self.namespace = self._namespace(name, NAMESPACE, args.cluster)
        deployment, service = demo_manifests(args.options.replicas)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider, depends_on=[self.namespace])
        self.deployment = k8s.apps.v1.Deployment(f"{name}-deployment", metadata=deployment["metadata"], spec=deployment["spec"], opts=k8s_opts)
        self.service = k8s.core.v1.Service(f"{name}-service", metadata=service["metadata"], spec=service["spec"], opts=k8s_opts)
        self.route = self._expose(name, args, namespace=NAMESPACE, service="demo", after=[self.service])
        self.register_outputs({"url": self.url})
