"""etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from tools.controlplane.api import Api, Process, wait_for
from tools.controlplane.kubelet import Kubelet, kwok_config
from tools.controlplane.pki import make_ca, make_serving_cert, pem_cert, pem_key
from tools.controlplane.servers import EgressProxy
from tools.project import run_tool

ETCD_PORT = 2379
ETCD_PEER_PORT = 2380
APISERVER_PORT = 6443
SERVICE_CIDR = "10.96.0.0/12"
NODE_ANNOTATION = "kwok.x-k8s.io/node"


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
        (self.dir / "ca.crt").write_bytes(pem_cert(ca))
        (self.dir / "apiserver.crt").write_bytes(pem_cert(cert))
        (self.dir / "apiserver.key").write_bytes(pem_key(key))
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.dir / "sa.key").write_bytes(pem_key(sa))
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
                            "certificate-authority-data": base64.b64encode(pem_cert(ca)).decode(),
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
        argv = [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig_path}", *args]
        return run_tool(argv, f"kubectl {' '.join(args)}", check=check, input=input, timeout=300)

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
