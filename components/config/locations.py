"""Where a manifest or chart comes from: a URL, or a local path that must exist before `up`."""

from __future__ import annotations

import os
from pathlib import Path

from components.config.charts import chart_metadata, kube_version_admits
from components.config.defaults import PROJECT_ROOT
from components.config.schema import LabConfig


def is_url(location: str) -> bool:
    """A manifest or chart location is a URL or a local path; nothing else tells them apart."""
    return "://" in location


def local_path(location: str) -> Path:
    """A local manifest or chart path as the program sees it: relative paths are from the project root."""
    path = Path(os.path.expanduser(location))
    return path if path.is_absolute() else PROJECT_ROOT / path


def check_offline_files(cfg: LabConfig, add) -> None:
    """Local manifests and charts must exist now, not halfway through `pulumi up`."""
    options = cfg.app_options
    files = [
        ("metallb.manifest", cfg.metallb.manifest, "manifest"),
        ("ingress.manifest", cfg.ingress.manifest, "chart" if cfg.ingress.controller == "traefik" else "manifest"),
    ]
    if cfg.ingress.api == "gateway":
        files.append(("ingress.gateway_api_manifest", cfg.ingress.gateway_api_manifest, "manifest"))
    if "argocd" in cfg.apps:
        files.append(("app_options.argocd.manifest", options.argocd.manifest, "manifest"))
    if "grafana" in cfg.apps:
        files.append(("app_options.grafana.chart", options.grafana.chart, "chart"))
    if "online-boutique" in cfg.apps:
        files.append(("app_options.online-boutique.manifest", options.online_boutique.manifest, "manifest"))
    for key, location, kind in files:
        if location is None or is_url(location):
            continue
        path = local_path(location)
        # The resolved path too: a relative one is read from the project directory, wherever the shell is.
        where = f"{location} ({path})" if str(path) != location else location
        if kind == "manifest" and not path.is_file():
            add(
                key,
                f"{where} is not a file; give the path of the downloaded manifest, relative to the project "
                f"directory {PROJECT_ROOT} or absolute, or its URL",
            )
        elif kind == "chart" and not (path.is_file() or (path / "Chart.yaml").is_file()):
            add(
                key,
                f"{where} is neither a chart archive (.tgz) nor a chart directory with a Chart.yaml; "
                f"fetch it with `helm pull <chart> --repo <repository> --version <version>` and give its path, relative "
                f"to the project directory {PROJECT_ROOT} or absolute",
            )
        elif kind == "chart":
            _check_chart_kube_version(cfg, key, where, path, add)


def _check_chart_kube_version(cfg: LabConfig, key: str, where: str, path: Path, add) -> None:
    """Helm refuses a chart whose kubeVersion leaves out the version it templates for; where the lab
    knows that version (its own cluster, or render mode), say so now (components.config.charts)."""
    if cfg.cluster is not None and not cfg.rendering:
        return  # an existing cluster: Helm asks it for its version during `up`
    chart = chart_metadata(path) or {}
    constraint = chart.get("kubeVersion")
    version = cfg.kubernetes.version
    if constraint and kube_version_admits(str(constraint), version) is False:
        add(
            key,
            f"{where} is chart {chart.get('name', '?')} {chart.get('version', '?')}, which requires Kubernetes "
            f"{constraint} (its Chart.yaml kubeVersion), and kubernetes.version is {version}; "
            "give a chart version that supports it, or another kubernetes.version",
        )
