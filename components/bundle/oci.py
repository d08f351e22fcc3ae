"""OCI image archives: the one form the bundle keeps images in, readable by ``ctr images import``
(containerd, on the nodes) and by ``docker load``.

An archive is an OCI image layout in a tar (``oci-layout``, ``index.json``, ``blobs/sha256/...``)
plus Docker's ``manifest.json``. ``index.json`` names the image twice: the full name containerd
stores (``io.containerd.image.name``) and the tag (``org.opencontainers.image.ref.name``). Images
pulled from a registry keep their manifests byte for byte, so a reference pinned by digest still
matches after import; images built here get fresh manifests.

Pure: no Pulumi, no network.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    return f"blobs/{algorithm}/{hex_digest}"


@dataclass
class Blob:
    """A blob of the archive: its bytes in memory, or a file already holding them."""

    digest: str
    size: int
    data: Optional[bytes] = None
    file: Optional[Path] = None

    @classmethod
    def of(cls, data: bytes) -> "Blob":
        return cls(digest_of(data), len(data), data=data)

    @classmethod
    def from_file(cls, path: Path, digest: Optional[str] = None) -> "Blob":
        if digest is None:
            sha = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    sha.update(chunk)
            digest = "sha256:" + sha.hexdigest()
        return cls(digest, path.stat().st_size, file=path)


@dataclass
class ImageArchive:
    """What goes into one archive: the top-level manifest (or index) and every blob it needs."""

    name: str  # the full name containerd stores
    tag: str
    top: Blob
    top_media_type: str
    blobs: list[Blob] = field(default_factory=list)
    docker_config: Optional[str] = None  # config digest, for manifest.json
    docker_layers: tuple[str, ...] = ()  # layer digests, for manifest.json

    def write(self, path: Path) -> None:
        """Write the archive atomically (to ``path.part``, then renamed)."""
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {
                    "mediaType": self.top_media_type,
                    "digest": self.top.digest,
                    "size": self.top.size,
                    "annotations": {NAME_ANNOTATION: self.name, REF_ANNOTATION: self.tag},
                }
            ],
        }
        entries: list[tuple[str, Blob]] = [(blob_path(self.top.digest), self.top)]
        seen = {self.top.digest}
        for blob in self.blobs:
            if blob.digest not in seen:
                seen.add(blob.digest)
                entries.append((blob_path(blob.digest), blob))
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
            if self.docker_config:
                docker = [
                    {
                        "Config": blob_path(self.docker_config),
                        "RepoTags": [_docker_tag(self.name)] if "@" not in self.name else [],
                        "Layers": [blob_path(d) for d in self.docker_layers],
                    }
                ]
                _add_bytes(tar, "manifest.json", json.dumps(docker, separators=(",", ":")).encode())
            for name, blob in entries:
                if blob.data is not None:
                    _add_bytes(tar, name, blob.data)
                else:
                    assert blob.file is not None
                    info = tarfile.TarInfo(name)
                    info.size = blob.size
                    info.mode = 0o644
                    with blob.file.open("rb") as f:
                        tar.addfile(info, f)
        part.replace(path)


def _docker_tag(name: str) -> str:
    # docker load shows docker.io/library/x:t as x:t; both forms load.
    return name


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def layer_from_files(files: Iterable[tuple[str, Path | bytes, int]], directories: Iterable[tuple[str, int]] = ()) -> bytes:
    """An uncompressed, reproducible layer: each (path in the image, source file or bytes, mode) and
    each (directory, mode), owned by root and dated 1970; parent directories are 0755."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()

        def directory(name: str, mode: int = 0o755) -> None:
            if name and name not in made:
                made.add(name)
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = mode
                tar.addfile(info)

        def parents(name: str) -> None:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                directory("/".join(parts[:i]))

        for name, mode in directories:
            name = name.strip("/")
            parents(name)
            directory(name, mode)
        for name, source, mode in files:
            name = name.lstrip("/")
            parents(name)
            data = source if isinstance(source, bytes) else source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def built_image(
    name: str,
    layers: list[Blob],
    *,
    entrypoint: Optional[list[str]] = None,
    cmd: Optional[list[str]] = None,
    env: Optional[list[str]] = None,
    user: Optional[str] = None,
    workdir: Optional[str] = None,
    stop_signal: Optional[str] = None,
    arch: str = "amd64",
) -> ImageArchive:
    """An image made here from uncompressed layers, as an archive ready to write."""
    config: dict = {
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "history": [{"created_by": "k8s-lab"} for _ in layers],
    }
    for key, value in (("Entrypoint", entrypoint), ("Cmd", cmd), ("User", user), ("WorkingDir", workdir), ("StopSignal", stop_signal)):
        if value:
            config["config"][key] = value
    config_blob = Blob.of(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config_blob.digest, "size": config_blob.size},
        "layers": [{"mediaType": LAYER, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    top = Blob.of(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    tag = name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    return ImageArchive(
        name=name,
        tag=tag,
        top=top,
        top_media_type=MANIFEST,
        blobs=[config_blob, *layers],
        docker_config=config_blob.digest,
        docker_layers=tuple(layer.digest for layer in layers),
    )


def archive_names(path: Path) -> list[str]:
    """The image names an archive carries (``io.containerd.image.name`` of its index)."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.load(member)
    return [m.get("annotations", {}).get(NAME_ANNOTATION, "") for m in index.get("manifests", [])]
