"""Rough memory estimates, used only to warn before a lab that cannot fit is built."""

from __future__ import annotations

from components.config.schema import LabConfig

# Rough steady-state memory in MB, used only to warn before a lab that cannot fit is built. Apps
# land on the workers (kubeadm taints the control plane). Figures: the upstream manifests'
# requests, rounded up to what a fresh idle install uses (Argo CD's manifest requests nothing but
# its seven pods use 0.7-1 GB; Online Boutique requests 1.1 GB and its Java adservice grows past
# its request).
NODE_OVERHEAD_MB = 700  # OS, kubelet, containerd, kube-proxy, CNI pod, MetalLB speaker
CONTROLLER_MEMORY_MB = {"ingress-nginx": 150, "traefik": 100}
METALLB_CONTROLLER_MEMORY_MB = 60
APP_MEMORY_MB = {"demo": 50, "argocd": 900, "grafana": 250, "online-boutique": 1400}
LOAD_GENERATOR_MEMORY_MB = 300


def app_memory_mb(cfg: LabConfig) -> dict[str, int]:
    """What the enabled apps and the lab's own controllers need on the workers, by name."""
    need = {
        f"{cfg.ingress.controller} controller": CONTROLLER_MEMORY_MB[cfg.ingress.controller],
        "MetalLB controller": METALLB_CONTROLLER_MEMORY_MB,
    }
    for app in cfg.apps:
        need[app] = APP_MEMORY_MB[app]
        if app == "online-boutique" and cfg.app_options.online_boutique.load_generator:
            need[app] += LOAD_GENERATOR_MEMORY_MB
    return need


def memory_warnings(cfg: LabConfig) -> list[str]:
    """A warning when the enabled apps will not fit the workers' memory (never an error: figures are rough)."""
    workers = cfg.workers
    if cfg.existing_cluster or not workers:
        return []  # an existing cluster's nodes are unknown here; no workers is an error already
    need = app_memory_mb(cfg)
    total = sum(need.values())
    room = sum(max(0, w.memory_mb - NODE_OVERHEAD_MB) for w in workers)
    if total <= room:
        return []
    breakdown = ", ".join(f"{name} ~{mb}" for name, mb in need.items())
    return [
        f"apps: the enabled apps need about {total} MB ({breakdown}) but the workers have about {room} MB "
        f"left after Kubernetes itself (~{NODE_OVERHEAD_MB} MB each); pods would stay Pending or be evicted. "
        "Raise the workers' memory_mb, add a worker, or enable fewer apps"
    ]
