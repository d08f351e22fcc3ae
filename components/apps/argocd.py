"""Argo CD at ``argocd.<domain>``, from its upstream install.yaml, served over plain HTTP behind the ingress.

By default argocd-server answers HTTP with a redirect to HTTPS; behind an ingress that terminates
nothing and forwards HTTP, that redirect comes back to the ingress as HTTP again: a redirect loop.
The lab runs the server in insecure (HTTP) mode, as Argo CD's ingress docs describe, and leaves
TLS to whoever later adds it at the ingress.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.apps.base import App, AppArgs
from components.config import ArgoCDOptions
from components.manifests import Edit, Obj, chain, into_namespace, kind_and_name, location

# install.yaml's ClusterRoleBindings name this namespace; it cannot be another.
NAMESPACE = "argocd"
INITIAL_ADMIN_SECRET = "argocd-initial-admin-secret"


def install_manifest_url(version: str) -> str:
    return f"https://raw.githubusercontent.com/argoproj/argo-cd/v{version}/manifests/install.yaml"


def insecure_server(obj: Obj) -> Optional[Obj]:
    """Serve plain HTTP: ``server.insecure`` in argocd-cmd-params-cm, and ``--insecure`` on the server.

    The ConfigMap key is where Argo CD documents the setting; the flag is there too because the
    manifest's objects are applied in parallel, and a server pod that starts before the ConfigMap
    exists reads no key (it is optional) and would redirect to HTTPS until restarted.
    """
    kind, name = kind_and_name(obj)
    if (kind, name) == ("ConfigMap", "argocd-cmd-params-cm"):
        obj = copy.deepcopy(obj)
        obj["data"] = {**(obj.get("data") or {}), "server.insecure": "true"}
        return obj
    if (kind, name) == ("Deployment", "argocd-server"):
        obj = copy.deepcopy(obj)
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container.get("name") == "argocd-server":
                args = container.setdefault("args", [])
                if "--insecure" not in args:
                    args.append("--insecure")
        return obj
    return None


def argocd_edit() -> Edit:
    return chain(into_namespace(NAMESPACE), insecure_server)


def decode_password(data: Any) -> str:
    """The plain password from the initial admin Secret's (base64) data."""
    return base64.b64decode((data or {})["password"]).decode()


@dataclass(frozen=True)
class ArgoCDArgs(AppArgs):
    options: ArgoCDOptions = ArgoCDOptions()


class ArgoCD(App):
    def __init__(self, name: str, args: ArgoCDArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:apps:ArgoCD", name, None, opts)
        options = args.options
        self.namespace = self._namespace(name, NAMESPACE, args.cluster)
        self.install = self._install_manifest(
            name,
            file=location(options.manifest) if options.manifest else install_manifest_url(options.version),
            cluster=args.cluster,
            depends_on=[self.namespace],
            edit=argocd_edit(),
        )
        self.route = self._expose(name, args, namespace=NAMESPACE, service="argocd-server", after=[self.install])
        self.initial_admin_secret = None
        if options.export_admin_password:
            # argocd-server writes a random admin password into this Secret on its first start (the
            # install waited for the server to be ready). The id derives from the install's output
            # so that a preview, before anything exists, skips the read. Reading a Secret that was
            # deleted fails `up`: hence the switch, for users who follow Argo CD's advice to delete
            # it after changing the password.
            secret_id = self.install.resources.apply(lambda _: f"{NAMESPACE}/{INITIAL_ADMIN_SECRET}")
            self.initial_admin_secret = k8s.core.v1.Secret.get(
                f"{name}-initial-admin-secret",
                secret_id,
                opts=pulumi.ResourceOptions(parent=self, provider=args.cluster.provider, depends_on=[self.install]),
            )
            self.admin_password = pulumi.Output.secret(self.initial_admin_secret.data.apply(decode_password))
        self.register_outputs({"url": self.url})
