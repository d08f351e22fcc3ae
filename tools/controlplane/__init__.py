"""A real Kubernetes control plane on loopback, in a network namespace of its own.

One module a job: :mod:`tools.testbed.netns` (the namespace, shared with the node tier), :mod:`~tools.controlplane.pki`,
:mod:`~tools.controlplane.api` (a client, processes, waiting), :mod:`~tools.controlplane.servers`
(the egress proxy, the admission stand-in), :mod:`~tools.controlplane.kubelet`,
:mod:`~tools.controlplane.standins` (the controllers' work), :mod:`~tools.controlplane.plane` and
:mod:`~tools.controlplane.stacks` (what the tier runs).

What is real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (upstream code, built
by tools/build-control-plane.sh), MetalLB's own controller (its allocator, its validating
webhook, its certificate rotation), run as a local process whenever its pod is scheduled, with
the arguments and environment of that pod's spec.

What stands in, each as small as it can be:

* **kwok** plays the kubelets: Nodes, pod status (Running, Ready, Job pods Succeeded). Its pod
  "ready" stage is changed to wait for an annotation the :class:`Kubelet` below sets, so a pod
  turns Ready only when a kubelet would let it: its Secrets (volumes, env) exist and, for a pod
  run as a local process, its readiness probe, as the applied manifest declares it, passes
  against that process. The probe runs without its initial delay, so a probe that passes
  before the process can serve is not hidden (MetalLB 0.16's upstream ``/readyz`` is such a
  probe; the lab replaces it by one of the webhook's port). Without this hold every pod is
  Ready at once and the tier would prove no ordering.
* The **secret volumes** of MetalLB's controller: the Secret's keys are written into its
  ``--cert-dir`` as the kubelet writes a mounted Secret, an update 10 s late as a kubelet's
  sync delivers it (its certificate rotation waits for them).
* The **work of controllers that cannot run here**, each listed in
  :mod:`~tools.controlplane.standins`: ingress-nginx's certificate Jobs and admission endpoint,
  the ingress controllers' Ingress status writer, Traefik's Gateway status.
* **Routing of webhook calls**: kube-apiserver's egress selector sends every call to the cluster
  network (webhooks at Service IPs) to an HTTP CONNECT proxy on a Unix socket, which connects
  only to the local process serving that Service, on loopback, and refuses everything else.

Safety: :class:`LoopbackNetns` makes a new network namespace whose only interface is ``lo``,
and every process and thread of the tier is started inside it; 10.96.x.x, 192.168.56.x and every other
address are unreachable from there. Everything binds to 127.0.0.1 (MetalLB's controller binds
every interface, and every interface there is ``lo``).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path
from typing import Optional

from tools.controlplane.api import Api, ApiError, Process, wait_for
from tools.testbed.netns import LoopbackNetns
from tools.controlplane.pki import make_ca, make_serving_cert, pem_cert, pem_key
from tools.controlplane.plane import ControlPlane
from tools.controlplane.servers import AdmitAllWebhook, EgressProxy
from tools.controlplane.stacks import existing_cluster_config, set_kubeconfig
from tools.testbed.vagrant import vagrant_calls, write_vagrant_stand_in

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD_SCRIPT = ROOT / "tools" / "build-control-plane.sh"


def control_plane_bin() -> Optional[Path]:
    """The cached binaries' directory, or None when tools/build-control-plane.sh has not built them."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return Path(result.stdout.strip())


def skip_reason() -> Optional[str]:
    """Why the control-plane tier cannot run here, or None."""
    if os.geteuid() != 0:
        return "the control-plane tier needs root (it creates a loopback-only network namespace)"
    if not hasattr(ctypes.CDLL(None, use_errno=True), "setns"):
        return "the C library has no setns(2)"
    if control_plane_bin() is None:
        return "control-plane binaries are not cached (tools/build-control-plane.sh builds them; .ci/run does)"
    return None


__all__ = [
    "AdmitAllWebhook",
    "Api",
    "ApiError",
    "ControlPlane",
    "EgressProxy",
    "LoopbackNetns",
    "Process",
    "control_plane_bin",
    "existing_cluster_config",
    "make_ca",
    "make_serving_cert",
    "pem_cert",
    "pem_key",
    "set_kubeconfig",
    "skip_reason",
    "vagrant_calls",
    "wait_for",
    "write_vagrant_stand_in",
]
