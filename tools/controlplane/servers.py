"""Loopback servers: the egress proxy for kube-apiserver's webhook calls, and the admission stand-in."""

from __future__ import annotations

import http.server
import json
import select
import socket
import socketserver
import ssl
import threading
from pathlib import Path
from typing import Optional

from tools.controlplane.api import Api


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
