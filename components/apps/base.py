"""What every app of the lab shares: a namespace, an Ingress at ``<host>.<domain>``, an optional admin password."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components import gateway as gw
from components.cluster import Cluster
from components.ingress import Ingress
from components.tls import SECRET_NAME as TLS_SECRET
from components.manifests import Edit, as_transform, custom_resource

LABELS = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "k8s-lab"}


# With a TLS section ingress-nginx redirects HTTP to HTTPS; the lab keeps both answering.
NGINX_NO_REDIRECT = {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}


def ingress_manifest(
    name: str, namespace: str, host: str, service: str, port: int, class_name: str, tls_secret: Optional[str] = None
) -> dict[str, Any]:
    """An Ingress routing every path of ``host`` to ``service:port``, naming its class explicitly.

    The class is named even though it is the default one: an Ingress without a class is ignored
    when no default exists (an existing cluster, a second controller), and one with a class is
    picked up by exactly one controller. With ``tls_secret`` (a kubernetes.io/tls Secret in the
    same namespace) the controller also serves ``https://host`` with that certificate.
    """
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(LABELS)}
    tls: dict[str, Any] = {}
    if tls_secret:
        tls = {"tls": [{"hosts": [host], "secretName": tls_secret}]}
        metadata["annotations"] = dict(NGINX_NO_REDIRECT)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {
            **tls,
            "ingressClassName": class_name,
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"number": port}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


@dataclass(frozen=True)
class AppArgs:
    """What every app takes: the cluster it runs in, the ingress that serves it, its hostname."""

    cluster: Cluster
    ingress: Ingress
    host: str


class App(pulumi.ComponentResource):
    """One app of the lab. Subclasses install it; :meth:`_expose` gives it its Ingress."""

    host: str
    """``<app host>.<domain>``, e.g. app.lab.local."""

    url: str

    namespace: k8s.core.v1.Namespace

    route: pulumi.CustomResource
    """The app's Ingress, or its HTTPRoute with ``ingress.api: gateway``; it waits for the controller (and
    its admission webhook, or the programmed Gateway) to be ready."""

    tls_secret: Optional[k8s.core.v1.Secret] = None
    """The lab's certificate beside the app's Ingress (HTTPS with ``ingress.api: ingress``)."""

    admin_password: Optional[pulumi.Output[str]] = None
    """The admin password (a Pulumi secret), for apps that have one."""

    def _namespace(self, name: str, namespace: str, cluster: Cluster) -> k8s.core.v1.Namespace:
        """The app's namespace; everything of the app comes after it.

        Through the provider it waits for what the app's pods need to run (``Cluster.provider``).
        """
        return k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": namespace, "labels": dict(LABELS)},
            opts=pulumi.ResourceOptions(parent=self, provider=cluster.provider),
        )

    def _install_manifest(
        self, name: str, *, file: str, cluster: Cluster, depends_on: list[pulumi.Resource], edit: Edit
    ) -> k8s.yaml.v2.ConfigFile:
        """The app's upstream manifest, unmodified but for ``edit`` (applied as a transform)."""
        return k8s.yaml.v2.ConfigFile(
            f"{name}-install",
            file=file,
            opts=pulumi.ResourceOptions(
                parent=self, provider=cluster.provider, depends_on=depends_on, transforms=[as_transform(edit)]
            ),
        )

    def _expose(
        self,
        name: str,
        args: AppArgs,
        *,
        namespace: str,
        service: str,
        after: list[pulumi.Resource],
        port: int = 80,
        object_name: Optional[str] = None,
    ) -> pulumi.CustomResource:
        """The app's Ingress (or HTTPRoute), created only once the controller is ready and the app's backend exists.

        Waiting for ``ingress`` (the whole component: controller Deployment ready, admission Jobs
        done) is what keeps ingress-nginx's validating webhook from refusing the Ingress with
        "connection refused" while its pod starts; with the Gateway API it is what makes the route
        wait for established CRDs and a programmed Gateway (no "no matches for kind").
        """
        self.host = args.host
        self.url = f"http://{args.host}"
        tls = args.ingress.tls
        secret = None
        if tls is not None and args.ingress.api == "ingress":
            # The certificate beside the Ingress: an Ingress names Secrets of its own namespace only.
            secret = TLS_SECRET
            self.tls_secret = tls.secret(f"{name}-tls", namespace, parent=self, depends_on=[self.namespace])
            after = [*after, self.tls_secret]
        opts = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider, depends_on=[args.ingress, *after])
        if args.ingress.api == "gateway":
            route = gw.http_route_manifest(
                object_name or service, namespace, args.host, service, port, args.ingress.controller.namespace, LABELS
            )
            return custom_resource(f"{name}-route", route, opts)
        manifest = ingress_manifest(object_name or service, namespace, args.host, service, port, args.ingress.class_name, secret)
        return k8s.networking.v1.Ingress(f"{name}-ingress", metadata=manifest["metadata"], spec=manifest["spec"], opts=opts)
