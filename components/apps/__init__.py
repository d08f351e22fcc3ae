"""The lab's apps, each behind the ingress at ``<host>.<domain>``; ``apps`` in the config picks them.

| app | host | installed from |
|---|---|---|
| demo | app.<domain> | a whoami Deployment the lab defines |
| argocd | argocd.<domain> | Argo CD's install.yaml (ConfigFile) |
| grafana | grafana.<domain> | the grafana-community Helm chart (Chart v4) |
| online-boutique | boutique.<domain> | Online Boutique's release manifests (ConfigFile) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.apps.argocd import ArgoCD, ArgoCDArgs
from components.apps.base import App
from components.apps.demo import Demo, DemoArgs
from components.apps.grafana import Grafana, GrafanaArgs
from components.apps.online_boutique import OnlineBoutique, OnlineBoutiqueArgs
from components.cluster import Cluster
from components.config import AppOptions, app_hostname
from components.ingress import Ingress


@dataclass(frozen=True)
class AppsArgs:
    cluster: Cluster
    ingress: Ingress
    domain: str
    apps: tuple[str, ...]
    options: AppOptions = AppOptions()


class Apps(pulumi.ComponentResource):
    """Every enabled app; depending on this component waits for all of them (and their Ingresses)."""

    apps: dict[str, App]
    """The enabled apps by name, in the config's order."""

    hostnames: dict[str, str]
    urls: dict[str, str]
    https_urls: dict[str, str]
    """The same apps over HTTPS, which the ingress serves when the lab has its CA."""

    admin_passwords: pulumi.Output[dict[str, str]]
    """Admin passwords by app (grafana, argocd), one Pulumi secret."""

    def __init__(self, name: str, args: AppsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:apps:Apps", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        options = args.options
        self.apps = {}
        for app in args.apps:
            host = app_hostname(app, args.domain)
            if app == "demo":
                self.apps[app] = Demo(f"{name}-demo", DemoArgs(args.cluster, args.ingress, host, options.demo), child)
            elif app == "argocd":
                self.apps[app] = ArgoCD(f"{name}-argocd", ArgoCDArgs(args.cluster, args.ingress, host, options.argocd), child)
            elif app == "grafana":
                self.apps[app] = Grafana(f"{name}-grafana", GrafanaArgs(args.cluster, args.ingress, host, options.grafana), child)
            elif app == "online-boutique":
                self.apps[app] = OnlineBoutique(
                    f"{name}-online-boutique",
                    OnlineBoutiqueArgs(args.cluster, args.ingress, host, options.online_boutique),
                    child,
                )
            else:  # the config's Literal keeps this unreachable
                raise ValueError(f"unknown app {app!r}")
        self.hostnames = {app: a.host for app, a in self.apps.items()}
        self.urls = {app: a.url for app, a in self.apps.items()}
        self.https_urls = {app: f"https://{host}" for app, host in self.hostnames.items()}
        passwords = {app: a.admin_password for app, a in self.apps.items() if a.admin_password is not None}
        self.admin_passwords = pulumi.Output.secret(pulumi.Output.all(**passwords) if passwords else {})
        self.register_outputs({"urls": self.urls})
