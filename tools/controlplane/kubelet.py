"""The kubelet stand-in: which pods may turn Ready, and the local processes behind pods.

kwok plays the kubelets (Node and pod status); its pod "ready" stage waits for an annotation this
stand-in sets once a real kubelet would let the pod turn Ready: its Secrets exist and, for a pod run
here as a process (MetalLB's controller), that process passes the pod's own readiness probe
(``httpGet`` or ``tcpSocket``), as the manifest the lab applied declares it. The probe runs at once,
without its initial delay: a probe that passes before the process can do its job shows here
instead of hiding behind that delay. Mounted Secrets get their files when the pod starts and an
update 10 s after it, as a kubelet's periodic sync delivers it (later still).
"""

from __future__ import annotations

import base64
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import yaml

from tools.controlplane.api import Process
from tools.controlplane.standins import ControllerStandIns

if TYPE_CHECKING:
    from tools.controlplane.plane import ControlPlane

READY_ANNOTATION = "kwok.k8s-lab.test/kubelet-ready"
# A kubelet writes an update of a mounted Secret into the pod's volume on its periodic sync, up to
# a minute or more after the update; this stand-in keeps a shorter gap, long enough that what
# waits for it (MetalLB's certificate rotation, and so its webhook) is still waiting when `up`
# reaches the pools: a readiness probe that passes before the webhook serves fails `up` here.
SECRET_SYNC_SECONDS = 10.0


def kwok_config(stages_dir: Path) -> str:
    """kwok's stages, with the pod "ready" stage waiting for this stand-in's annotation."""
    documents = []
    for name in ("node-fast.yaml", "node-heartbeat-with-lease.yaml", "pod-fast.yaml"):
        for stage in yaml.safe_load_all((stages_dir / name).read_text()):
            if not stage:
                continue
            if stage["metadata"]["name"] == "pod-ready":
                stage["spec"]["selector"]["matchExpressions"].append(
                    {"key": f'.metadata.annotations["{READY_ANNOTATION}"]', "operator": "In", "values": ["true"]}
                )
            documents.append(stage)
    return yaml.safe_dump_all(documents, sort_keys=False)


def _secret_refs(pod: dict) -> set[str]:
    """Secrets a kubelet needs before it starts the pod's containers (non-optional ones)."""
    spec = pod["spec"]
    names = set()
    for volume in spec.get("volumes") or []:
        secret = volume.get("secret")
        if secret and not secret.get("optional"):
            names.add(secret["secretName"])
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                names.add(ref["name"])
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef")
            if ref and not ref.get("optional"):
                names.add(ref["name"])
    return names


def _pod_env(pod: dict, container: dict) -> dict[str, str]:
    env = {}
    fields = {
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.name": pod["metadata"]["name"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif (item.get("valueFrom") or {}).get("fieldRef"):
            env[item["name"]] = fields.get(item["valueFrom"]["fieldRef"]["fieldPath"], "")
    return env


@dataclass
class LocalPod:
    """A pod whose container runs here as a process (MetalLB's controller)."""

    pod: str  # namespace/name
    process: Process
    ready: Callable[[], bool]
    """The pod's readiness probe, against the local process."""
    cert_dir: Path
    secret_volumes: dict[str, str]  # Secret name -> dir
    backoff: float = 0.0
    restart_at: float = 0.0
    mounted: dict[str, str] = field(default_factory=dict)
    """Secret name -> the resourceVersion whose files are in its volume."""
    updates_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    """(Secret name, resourceVersion) -> when that update was first seen."""


class Kubelet:
    """Everything a kubelet would do for this tier, on one polling thread. See the module doc."""

    def __init__(self, plane: "ControlPlane", start_seconds: float = 0.0):
        self.plane = plane
        self.api = plane.api
        self.start_seconds = start_seconds
        """A container's start-up (image pull, process start) for the bench's model; 0 in tests."""
        self.first_seen: dict[str, float] = {}
        self.local: dict[str, LocalPod] = {}
        self.events: list[str] = []
        self.errors: list[str] = []
        self.controllers = ControllerStandIns(plane, self.events)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kubelet-stand-in")
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for local in self.local.values():
            local.process.stop()
        self.controllers.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as err:  # noqa: BLE001 - keep the stand-in alive; errors are reported
                self.errors.append(repr(err))
            self._stop.wait(0.2)

    def tick(self) -> None:
        pods = self.api.items("/api/v1/pods")
        secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in self.api.items("/api/v1/secrets")}
        alive = set()
        for pod in pods:
            meta = pod["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            if not pod["spec"].get("nodeName") or meta.get("deletionTimestamp"):
                continue
            alive.add(key)
            missing = [s for s in _secret_refs(pod) if (meta["namespace"], s) not in secrets]
            if missing:
                continue
            local = self._run_local(pod, secrets)
            self.controllers.pod_started(pod, secrets)
            if (meta.get("annotations") or {}).get(READY_ANNOTATION) == "true":
                continue
            seen = self.first_seen.setdefault(meta["uid"], time.monotonic())
            if time.monotonic() - seen < self.start_seconds:
                continue
            if local is not None and not local.ready():
                continue
            self.api.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", {"metadata": {"annotations": {READY_ANNOTATION: "true"}}})
            self.events.append(f"{time.monotonic():.2f} ready {key}")
        for key in list(self.local):
            if key not in alive:
                self.local.pop(key).process.stop()
                self.events.append(f"{time.monotonic():.2f} stopped {key}")
        self.controllers.tick(secrets)

    # MetalLB's controller, as a process
    def _run_local(self, pod: dict, secrets: dict) -> Optional[LocalPod]:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        container = pod["spec"]["containers"][0]
        image = container.get("image", "")
        if "metallb/controller:" not in image:
            return None
        local = self.local.get(key)
        if local is None:
            version = image.rsplit(":", 1)[1].lstrip("v")
            binary = self.plane.bin / f"metallb-controller-v{version}"
            if not binary.exists():
                self.errors.append(f"no MetalLB controller binary for {image}")
                return None
            workdir = Path(tempfile.mkdtemp(prefix="metallb-", dir=self.plane.dir))
            # Secret volumes mounted under /tmp land under the process's own TMPDIR (MetalLB's
            # webhook server reads its certificate from $TMPDIR/k8s-webhook-server/serving-certs).
            tmpdir = workdir / "tmp"
            mounts = {}
            volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
            for mount in container.get("volumeMounts") or []:
                secret = (volumes.get(mount["name"]) or {}).get("secret")
                if secret:
                    path = mount["mountPath"]
                    local_path = tmpdir / path[len("/tmp/"):] if path.startswith("/tmp/") else workdir / mount["name"]
                    mounts[secret["secretName"]] = str(local_path)
            cert_dir = Path(next(iter(mounts.values()), str(tmpdir / "k8s-webhook-server" / "serving-certs")))
            cert_dir.mkdir(parents=True, exist_ok=True)
            args = [a for a in container.get("args") or [] if not a.startswith("--cert-dir")]
            # In a pod the namespace comes from the mounted service-account files.
            args.append(f"--namespace={meta['namespace']}")
            env = {"PATH": os.environ.get("PATH", ""), "TMPDIR": str(tmpdir), **_pod_env(pod, container)}
            process = Process(
                f"metallb-controller {key}",
                [str(binary), *args, f"--kubeconfig={self.plane.kubeconfig_path}", f"--cert-dir={cert_dir}"],
                self.plane.dir / f"metallb-controller-{meta['name']}.log",
                env=env,
            )
            local = LocalPod(key, process, _readiness(container), cert_dir, mounts)
            self.local[key] = local
            self.plane.proxy.routes[(meta["namespace"], "webhook-service")] = 9443
            self.plane.proxy.routes[(meta["namespace"], "metallb-webhook-service")] = 9443
        self._sync_secret_volumes(local, meta["namespace"], secrets)
        if not local.process.running() and time.monotonic() >= local.restart_at:
            if local.process.popen is not None:
                local.process.stop()
                # The kubelet's crash-loop back-off, shortened.
                local.backoff = min(local.backoff * 2 or 0.5, 8.0)
                local.restart_at = time.monotonic() + local.backoff
                self.events.append(f"{time.monotonic():.2f} exited {key} ({local.process.popen.returncode})")
                local.process.popen = None
                return local
            local.process.start()
            self.events.append(f"{time.monotonic():.2f} started {key}")
        return local

    def _sync_secret_volumes(self, local: LocalPod, namespace: str, secrets: dict) -> None:
        """Mounted Secrets: their files when the pod starts; an update only after the sync delay."""
        for name, directory in local.secret_volumes.items():
            secret = secrets.get((namespace, name))
            if not secret:
                continue
            version = secret["metadata"]["resourceVersion"]
            if local.mounted.get(name) == version:
                continue
            if name in local.mounted:
                seen = local.updates_seen.setdefault((name, version), time.monotonic())
                if time.monotonic() - seen < SECRET_SYNC_SECONDS:
                    continue
            _write_secret_files(Path(directory), secret)
            local.mounted[name] = version


def _write_secret_files(directory: Path, secret: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in (secret.get("data") or {}).items():
        path = directory / key
        content = base64.b64decode(value)
        if not path.exists() or path.read_bytes() != content:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(content)
            tmp.replace(path)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _readiness(container: dict) -> Callable[[], bool]:
    """The container's readiness probe as a check of the local process (always ready without one)."""
    probe = container.get("readinessProbe") or {}

    def port_of(port):
        if isinstance(port, str):
            return next(p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port)
        return port

    if "httpGet" in probe:
        url = f"http://127.0.0.1:{port_of(probe['httpGet']['port'])}{probe['httpGet'].get('path', '/')}"
        return lambda: _http_ok(url)
    if "tcpSocket" in probe:
        port = port_of(probe["tcpSocket"]["port"])
        return lambda: _listening(port)
    return lambda: True


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 400
    except (OSError, urllib.error.URLError):
        return False

