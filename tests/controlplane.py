"""A real Kubernetes control plane on loopback, in a network namespace of its own.

What is real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (upstream code, built
by tools/build-control-plane.sh), MetalLB's own controller (its allocator, its validating
webhook, its certificate rotation), run as a local process whenever its pod is scheduled, with
the arguments and environment of that pod's spec.

What stands in, each as small as it can be:

* **kwok** plays the kubelets: Nodes, pod status (Running, Ready, Job pods Succeeded). Its pod
  "ready" stage is changed to wait for an annotation the :class:`Kubelet` below sets, so a pod
  turns Ready only when a kubelet would let it: its Secrets (volumes, env) exist and, for a pod
  run as a local process, its own readiness probe passes against that process and the process
  serves every port the pod declares (MetalLB 0.16's readiness probe is a bare ping that passes
  before its webhook serves; a real kubelet's first probe comes only after the probe's 10 s
  initial delay). Without this hold every pod is Ready at once and the tier would prove no
  ordering.
* The **secret volume** of MetalLB's controller: the Secret's keys are written into its
  ``--cert-dir`` as the kubelet writes a mounted Secret (its certificate rotation waits for them).
* **ingress-nginx's admission pieces**, whose processes cannot run here: the certificate Jobs'
  work (a CA and serving certificate in Secret ``ingress-nginx-admission``, its CA patched into
  the ValidatingWebhookConfiguration, as kube-webhook-certgen does) and the admission endpoint
  (an HTTPS server with that certificate that admits every Ingress, as the controller does for
  valid ones).
* The **ingress controller's status writer**: it copies the controller Service's load-balancer
  address (written by MetalLB's real controller) into the status of Ingresses of its class, as
  ingress-nginx's ``--publish-service`` and Traefik's ``publishedService`` do.
* **Routing of webhook calls**: kube-apiserver's egress selector sends every call to the cluster
  network (webhooks at Service IPs) to an HTTP CONNECT proxy on a Unix socket, which connects
  only to the local process serving that Service, on loopback, and refuses everything else.

Safety: :class:`LoopbackNetns` makes a new network namespace whose only interface is ``lo``,
and every process and thread of the tier is started inside it; 10.96.x.x, 192.168.56.x and every other
address are unreachable from there. Everything binds to 127.0.0.1 (MetalLB's controller binds
every interface, and every interface there is ``lo``).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import fcntl
import http.server
import json
import os
import select
import socket
import socketserver
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tools" / "build-control-plane.sh"

ETCD_PORT = 2379
ETCD_PEER_PORT = 2380
APISERVER_PORT = 6443
SERVICE_CIDR = "10.96.0.0/12"
READY_ANNOTATION = "kwok.k8s-lab.test/kubelet-ready"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
CLONE_NEWNET = 0x40000000


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


# --------------------------------------------------------------------------------------------
# The network namespace


def _bring_lo_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


class LoopbackNetns:
    """A fresh network namespace whose only interface is ``lo``, up.

    Creating it leaves the caller where it was; ``with netns.inside():`` moves the calling thread
    into it and back. Threads started and processes spawned from inside stay in it.
    """

    def __init__(self):
        self._libc = ctypes.CDLL(None, use_errno=True)
        home = self._current()
        try:
            if self._libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
            _bring_lo_up()
            self.interfaces = [name for _, name in socket.if_nameindex()]
            self._fd = self._current()
        finally:
            self._setns(home)
            os.close(home)
        if self.interfaces != ["lo"]:
            raise RuntimeError(f"the new network namespace has interfaces {self.interfaces}, expected only lo")

    @staticmethod
    def _current() -> int:
        return os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")

    @contextlib.contextmanager
    def inside(self):
        home = self._current()
        self._setns(self._fd)
        try:
            yield self
        finally:
            self._setns(home)
            os.close(home)

    def close(self) -> None:
        os.close(self._fd)


# --------------------------------------------------------------------------------------------
# PKI


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def make_ca(name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_serving_cert(ca, ca_key, dns_names: list[str], ips: list[str] = ()):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


# --------------------------------------------------------------------------------------------
# A small client of the API server


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body
        super().__init__(f"{status}: {body.get('message', body)}")


class Api:
    def __init__(self, server: str, token: str, ca_file: Path):
        self.server = server
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout: float = 10) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"message": raw.decode(errors="replace")}
            raise ApiError(err.code, payload) from None
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:  # /readyz and friends answer plain text
            return {"text": raw.decode(errors="replace")}

    def get(self, path: str) -> Optional[dict]:
        try:
            return self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def items(self, path: str) -> list[dict]:
        found = self.get(path)
        return (found or {}).get("items") or []

    def patch(self, path: str, body: Any, kind: str = "merge") -> dict:
        types = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}
        return self.request("PATCH", path, body, content_type=types[kind])


# --------------------------------------------------------------------------------------------
# Processes


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    env: Optional[dict] = None
    popen: Optional[subprocess.Popen] = None

    def start(self) -> "Process":
        self._log = open(self.log, "ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, start_new_session=True
        )
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.1, context: Callable[[], str] = lambda: ""):
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as err:  # noqa: BLE001 - kept for the message
            last = err
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout:.0f}s (last error: {last}) {context()}")


# --------------------------------------------------------------------------------------------
# kwok's stages, with the pod "ready" stage waiting for the kubelet stand-in


def kwok_config(stages_dir: Path) -> str:
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


# --------------------------------------------------------------------------------------------
# Loopback servers: the egress proxy and the ingress-nginx admission stand-in


class _ThreadingServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingUnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class EgressProxy:
    """HTTP CONNECT proxy for kube-apiserver's "cluster" egress: Service IP:port -> a local process.

    ``routes`` maps (namespace, Service name) to a loopback port, ``static`` an exact "host:port"
    to one. A CONNECT to any other address is refused with 403: nothing leaves loopback.
    """

    def __init__(self, api: Optional["Api"], *, uds: Optional[Path] = None, port: Optional[int] = None, static: Optional[dict[str, int]] = None):
        self.api = api
        self.routes: dict[tuple[str, str], int] = {}
        self.static = dict(static or {})
        self.log: list[str] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(65536).decode("latin-1").strip()
                while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                parts = line.split()
                if len(parts) < 2 or parts[0] != "CONNECT":
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                target = proxy.resolve(parts[1])
                proxy.log.append(f"{parts[1]} -> {target}")
                if target is None:
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                    return
                try:
                    upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
                except OSError:
                    self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                    return
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                _pipe(self.connection, upstream)

        if uds is not None:
            self.server = _ThreadingUnixServer(str(uds), Handler)
        else:
            self.server = _ThreadingServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="egress-proxy").start()

    def resolve(self, hostport: str) -> Optional[int]:
        if hostport in self.static:
            return self.static[hostport]
        if self.api is None:
            return None
        host, _, port = hostport.rpartition(":")
        for service in self.api.items("/api/v1/services"):
            meta, spec = service["metadata"], service["spec"]
            if spec.get("clusterIP") != host.strip("[]"):
                continue
            if not any(str(p.get("port")) == port for p in spec.get("ports") or []):
                continue
            return self.routes.get((meta["namespace"], meta["name"]))
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    finally:
        b.close()


class AdmitAllWebhook:
    """The admission endpoint of ingress-nginx's controller (which cannot run here): admits every request."""

    def __init__(self, port: int, cert_pem: bytes, key_pem: bytes, workdir: Path):
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                outer.requests.append(review["request"])
                body = json.dumps(
                    {
                        "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                        "kind": "AdmissionReview",
                        "response": {"uid": review["request"]["uid"], "allowed": True},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        (workdir / "admission.crt").write_bytes(cert_pem)
        (workdir / "admission.key").write_bytes(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(workdir / "admission.crt", workdir / "admission.key")
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="admission-stand-in").start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# The kubelet stand-in: which pods may turn Ready, and the local processes behind pods


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
    probe_url: Optional[str]
    ports: list[int]
    """The pod's container ports: it is Ready only once the process serves each of them."""
    cert_dir: Path
    secret_volumes: dict[str, str]  # Secret name -> dir
    backoff: float = 0.0
    restart_at: float = 0.0


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
        self.admission: Optional[AdmitAllWebhook] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kubelet-stand-in")
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for local in self.local.values():
            local.process.stop()
        if self.admission:
            self.admission.close()

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
            self._ingress_nginx_jobs(pod, secrets)
            if (meta.get("annotations") or {}).get(READY_ANNOTATION) == "true":
                continue
            seen = self.first_seen.setdefault(meta["uid"], time.monotonic())
            if time.monotonic() - seen < self.start_seconds:
                continue
            if local is not None and not (_probe(local.probe_url) and all(map(_listening, local.ports))):
                continue
            self.api.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", {"metadata": {"annotations": {READY_ANNOTATION: "true"}}})
            self.events.append(f"{time.monotonic():.2f} ready {key}")
        for key in list(self.local):
            if key not in alive:
                self.local.pop(key).process.stop()
                self.events.append(f"{time.monotonic():.2f} stopped {key}")
        self._admission_endpoint(secrets)
        self._publish_ingress_status()

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
            probe = container.get("readinessProbe", {}).get("httpGet")
            probe_url = None
            if probe:
                port = probe["port"]
                if isinstance(port, str):
                    port = next(p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port)
                probe_url = f"http://127.0.0.1:{port}{probe.get('path', '/')}"
            ports = [p["containerPort"] for p in container.get("ports") or []]
            local = LocalPod(key, process, probe_url, ports, cert_dir, mounts)
            self.local[key] = local
            self.plane.proxy.routes[(meta["namespace"], "webhook-service")] = 9443
            self.plane.proxy.routes[(meta["namespace"], "metallb-webhook-service")] = 9443
        # The kubelet keeps mounted Secrets' files up to date.
        for name, directory in local.secret_volumes.items():
            secret = secrets.get((meta["namespace"], name))
            if secret:
                _write_secret_files(Path(directory), secret)
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

    # ingress-nginx: what its certificate Jobs do
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
            data = {"ca": _pem_cert(ca), "cert": _pem_cert(cert), "key": _pem_key(key)}
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


def _probe(url: Optional[str]) -> bool:
    if url is None:
        return True
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 400
    except (OSError, urllib.error.URLError):
        return False


# --------------------------------------------------------------------------------------------
# The control plane


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1.

    Start it, and talk to it, inside a :class:`LoopbackNetns`.
    """

    bin: Path
    dir: Path
    nodes: list[str] = field(default_factory=lambda: ["kwok-node-0", "kwok-node-1"])
    serving_ips: list[str] = field(default_factory=lambda: ["127.0.0.1", "10.96.0.1"])
    """Addresses in kube-apiserver's certificate (a kubeadm cluster's names its node IP too)."""
    pod_start_seconds: float = 0.0
    """How long every pod takes to start before it may turn Ready (a model, for the bench)."""
    processes: list[Process] = field(default_factory=list)
    started_seconds: float = 0.0

    def start(self) -> "ControlPlane":
        start = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pki()
        self._etcd()
        self._apiserver()
        self.api = Api(f"https://127.0.0.1:{APISERVER_PORT}", self.token, self.dir / "ca.crt")
        wait_for("kube-apiserver /readyz", lambda: self.api.request("GET", "/readyz", timeout=2) is not None, 90, 0.2, self._tails)
        self.proxy = EgressProxy(self.api, uds=self.egress_socket)
        common = [f"--kubeconfig={self.kubeconfig_path}"]
        self._spawn(
            "kube-controller-manager",
            [
                *common,
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                f"--service-account-private-key-file={self.dir / 'sa.key'}",
                f"--root-ca-file={self.dir / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cert-dir={self.dir / 'kcm-certs'}",
                "--controllers=*",
                "--concurrent-namespace-syncs=4",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [*common, "--bind-address=127.0.0.1", "--leader-elect=false", f"--cert-dir={self.dir / 'scheduler-certs'}"],
        )
        (self.dir / "kwok.yaml").write_text(kwok_config(self.bin / "stages"))
        self._spawn(
            "kwok",
            [
                *common,
                f"--config={self.dir / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                "--server-address=127.0.0.1:10247",
                "--node-lease-duration-seconds=40",
                "--node-ip=192.0.2.10",
                "--cidr=10.244.0.0/16",
            ],
        )
        for node in self.nodes:
            self.add_node(node)
        wait_for("default ServiceAccount", lambda: self.api.get("/api/v1/namespaces/default/serviceaccounts/default"), 60, 0.2, self._tails)
        wait_for("kwok nodes Ready", self._nodes_ready, 60, 0.2, self._tails)
        self.kubelet = Kubelet(self, self.pod_start_seconds)
        self.started_seconds = time.monotonic() - start
        return self

    def _nodes_ready(self) -> bool:
        nodes = self.api.items("/api/v1/nodes")
        ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions") or [])]
        return len(ready) >= len(self.nodes)

    def add_node(self, name: str) -> None:
        self.api.request(
            "POST",
            "/api/v1/nodes",
            {
                "metadata": {
                    "name": name,
                    "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"},
                }
            },
        )

    def _pki(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        ca, ca_key = make_ca("k8s-lab-test control-plane CA")
        cert, key = make_serving_cert(
            ca, ca_key, ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"], self.serving_ips
        )
        (self.dir / "ca.crt").write_bytes(_pem_cert(ca))
        (self.dir / "apiserver.crt").write_bytes(_pem_cert(cert))
        (self.dir / "apiserver.key").write_bytes(_pem_key(key))
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.dir / "sa.key").write_bytes(_pem_key(sa))
        (self.dir / "sa.pub").write_bytes(
            sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        self.token = base64.b32encode(os.urandom(20)).decode().lower()
        (self.dir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        self.kubeconfig = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": f"https://127.0.0.1:{APISERVER_PORT}",
                            "certificate-authority-data": base64.b64encode(_pem_cert(ca)).decode(),
                        },
                    }
                ],
                "users": [{"name": "admin", "user": {"token": self.token}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
                "current-context": "local",
            },
            sort_keys=False,
        )
        self.egress_socket = self.dir / "egress.sock"
        self.kubeconfig_path = self.dir / "kubeconfig"
        self.kubeconfig_path.write_text(self.kubeconfig)
        self.kubeconfig_path.chmod(0o600)
        (self.dir / "egress.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "apiserver.k8s.io/v1beta1",
                    "kind": "EgressSelectorConfiguration",
                    "egressSelections": [
                        {
                            "name": "cluster",
                            "connection": {
                                "proxyProtocol": "HTTPConnect",
                                "transport": {"uds": {"udsName": str(self.egress_socket)}},
                            },
                        }
                    ],
                }
            )
        )

    def _etcd(self) -> None:
        self._spawn(
            "etcd",
            [
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
                f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
                f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-cluster=default=http://127.0.0.1:{ETCD_PEER_PORT}",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def _apiserver(self) -> None:
        d = self.dir
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={APISERVER_PORT}",
                # The default reconciler publishes the advertise address as the kubernetes
                # Service's endpoint and refuses loopback.
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--tls-cert-file={d / 'apiserver.crt'}",
                f"--tls-private-key-file={d / 'apiserver.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--egress-selector-config-file={d / 'egress.yaml'}",
                f"--cert-dir={d / 'apiserver-certs'}",
            ],
        )

    def _spawn(self, name: str, args: list[str]) -> Process:
        process = Process(name, [str(self.bin / name), *args], self.dir / f"{name}.log").start()
        self.processes.append(process)
        return process

    def _tails(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.tail(15)}" for p in self.processes if not p.running()) or ""

    def check_alive(self) -> None:
        dead = [p for p in self.processes if not p.running()]
        if dead:
            raise RuntimeError("control-plane process exited: " + self._tails())

    def kubectl(self, *args: str, check: bool = True, input: Optional[str] = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig_path}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def memory_mb(self) -> float:
        """Resident memory of the control plane's processes (and the local pods'), in MB."""
        total = 0
        pids = [p.popen.pid for p in self.processes if p.running()]
        pids += [l.process.popen.pid for l in self.kubelet.local.values() if l.process.running()]
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        kubelet = getattr(self, "kubelet", None)
        if kubelet:
            kubelet.close()
        for process in reversed(self.processes):
            process.stop()
        proxy = getattr(self, "proxy", None)
        if proxy:
            proxy.close()


# --------------------------------------------------------------------------------------------
# Stacks


def existing_cluster_config(**overrides) -> dict:
    """The seed's lab in existing-cluster mode; the kubeconfig is set apart, as a secret."""
    from engine_project import lab_config

    config = lab_config(
        **{
            "k8s-lab:network": {"cidr": "192.168.56.0/24", "interface": "eth1"},
            # The self-check curls the ingress IP on the lab network; it has loopback tests of its own.
            "k8s-lab:self_check": {"enabled": False},
        }
    )
    del config["k8s-lab:nodes"], config["k8s-lab:vagrant"]
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def set_kubeconfig(project, stack: str, kubeconfig: str) -> None:
    """The existing cluster's kubeconfig, as a Pulumi secret (as README tells users to set it)."""
    project.pulumi("config", "set", "--stack", stack, "--secret", "--path", "k8s-lab:cluster.kubeconfig", kubeconfig)


# --------------------------------------------------------------------------------------------
# A stand-in `vagrant` for the Vagrant lab stack

VAGRANT_STAND_IN = """#!/usr/bin/env python3
# Stand-in for the Vagrant CLI: no VM exists. Records every call (argv, and which of the
# project's node scripts came on stdin) and answers what k8s-lab's steps read back: the
# prepared node's host-only NIC, a join command, the control plane's admin kubeconfig.
import json, sys
from pathlib import Path

LOG = {log!r}
SCRIPTS = {scripts!r}
KUBECONFIG = {kubeconfig!r}
NIC = {nic!r}
CONTROL_PLANE = {control_plane!r}

args = sys.argv[1:]
entry = {{"argv": args, "script": None}}
answer = ""
if args[:1] == ["ssh"]:
    command = args[args.index("-c") + 1] if "-c" in args else ""
    if "kubeadm token create" in command:
        answer = ("kubeadm join " + CONTROL_PLANE + " --token abcdef.0123456789abcdef "
                  "--discovery-token-ca-cert-hash sha256:" + "0" * 64 + "\\n")
    elif "cat /etc/kubernetes/admin.conf" in command:
        answer = Path(KUBECONFIG).read_text()
    elif "delete node" in command:
        answer = ""
    else:
        text = sys.stdin.read()
        for script in sorted(Path(SCRIPTS).glob("*.sh")):
            if script.read_text() in text:
                entry["script"] = script.name
        if entry["script"] == "prepare.sh":
            answer = NIC + "\\n"
with open(LOG, "a") as log:
    log.write(json.dumps(entry) + "\\n")
sys.stdout.write(answer)
"""


def write_vagrant_stand_in(bin_dir: Path, *, log: Path, scripts: Path, kubeconfig: Path, nic: str, control_plane: str) -> Path:
    """A `vagrant` executable in ``bin_dir`` (put it first on PATH); its calls go to ``log`` as JSON lines."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "vagrant"
    path.write_text(
        VAGRANT_STAND_IN.format(log=str(log), scripts=str(scripts), kubeconfig=str(kubeconfig), nic=nic, control_plane=control_plane)
    )
    path.chmod(0o755)
    return path


def vagrant_calls(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
