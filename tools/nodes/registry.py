"""A loopback registry (distribution's own, built by tools/build-node-software.sh) and a small
client that pushes OCI archives into it: what ``./lab bundle fill`` is tested and measured against.

Images are pushed as a mirror keeps them, ``<registry>/<repository>`` (``quay.io/metallb/speaker``),
so one loopback registry stands for every registry a stack pulls from
(components.bundle.fill.Registry.mirror).
"""

from __future__ import annotations

import json
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from components.bundle import oci
from components.bundle.images import ImageRef


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackRegistry:
    """distribution's registry on 127.0.0.1, storing under ``root``. Start it inside a namespace."""

    def __init__(self, binary: Path, root: Path):
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LoopbackRegistry":
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '127.0.0.1:{self.port}'}}\n"
        )
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen([str(self.binary), "serve", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                if self.process.poll() is not None:
                    raise RuntimeError(f"the registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
                time.sleep(0.2)
        raise RuntimeError("the loopback registry did not answer in 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    # -- pushing -------------------------------------------------------------------------------

    def _request(self, method: str, url: str, data: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        return urllib.request.urlopen(request, timeout=120)

    def push_blob(self, repository: str, digest: str, data: bytes) -> None:
        try:
            self._request("HEAD", f"{self.url}/v2/{repository}/blobs/{digest}").close()
            return
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
        with self._request("POST", f"{self.url}/v2/{repository}/blobs/uploads/") as response:
            location = response.headers["Location"]
        separator = "&" if "?" in location else "?"
        url = location if location.startswith("http") else f"{self.url}{location}"
        self._request("PUT", f"{url}{separator}digest={digest}", data, {"Content-Type": "application/octet-stream"}).close()

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> None:
        self._request("PUT", f"{self.url}/v2/{repository}/manifests/{reference}", data, {"Content-Type": media_type}).close()

    def push_archive(self, archive: Path) -> str:
        """Push an OCI archive (components.bundle.oci) as ``<registry>/<repository>``; returns that name."""
        with tarfile.open(archive) as tar:
            index = json.load(tar.extractfile("index.json"))
            (top,) = index["manifests"]
            ref = ImageRef.parse(top["annotations"][oci.NAME_ANNOTATION])
            repository = f"{ref.registry}/{ref.repository}"

            def blob(digest: str) -> bytes:
                member = tar.extractfile(oci.blob_path(digest))
                assert member is not None
                return member.read()

            def push_manifest_tree(digest: str, media_type: str, reference: str) -> None:
                data = blob(digest)
                body = json.loads(data)
                if "manifests" in body:
                    for child in body["manifests"]:
                        try:
                            push_manifest_tree(child["digest"], child["mediaType"], child["digest"])
                        except KeyError:
                            continue  # another platform's manifest, left out of the archive
                else:
                    for descriptor in [body["config"], *body.get("layers", [])]:
                        self.push_blob(repository, descriptor["digest"], blob(descriptor["digest"]))
                self.push_manifest(repository, reference, data, media_type)

            push_manifest_tree(top["digest"], top["mediaType"], ref.tag or top["digest"])
        return f"{repository}:{ref.tag}"
