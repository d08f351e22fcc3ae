"""The demo app at ``app.<domain>``: by default traefik/whoami, which answers with what reached it.

Its reply shows the pod's name and IP and the request headers as they arrived (Host,
X-Forwarded-For, X-Real-Ip), so ``curl http://app.lab.local`` shows the whole path: the ingress
controller forwarded it, and which of the replicas answered. ``app_options.demo.image`` (with
``args`` and ``port``) puts any other HTTP server there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.apps.base import App, AppArgs, LABELS
from components.config import DemoOptions
from components.manifests import spread_pod_spec

NAMESPACE = "demo"


def image(options: DemoOptions) -> str:
    """The demo's image, as its Deployment names it."""
    return options.image


def demo_manifests(options: DemoOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo Deployment and its Service. Its port is unprivileged, so the container needs no
    root and no NET_BIND_SERVICE."""
    selector = {"app.kubernetes.io/name": "demo"}
    labels = {**LABELS, **selector}
    deployment = {
        "metadata": {"name": "demo", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "demo",
                            "image": image(options),
                            "args": list(options.resolved_args),
                            "ports": [{"name": "http", "containerPort": options.port}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
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
    # A replica per node: a worker that stops leaves the other answering.
    spread_pod_spec(deployment["spec"]["template"]["spec"], selector)
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
        deployment, service = demo_manifests(args.options)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider, depends_on=[self.namespace])
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=deployment["metadata"],
            spec=deployment["spec"],
            # Its pods spread over the workers: all of them, not only the first to join.
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=args.cluster.every_worker)),
        )
        self.service = k8s.core.v1.Service(f"{name}-service", metadata=service["metadata"], spec=service["spec"], opts=k8s_opts)
        self.route = self._expose(name, args, namespace=NAMESPACE, service="demo", after=[self.service])
        self.register_outputs({"url": self.url})
