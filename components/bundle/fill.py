"""Filling a bundle from upstream: release files over HTTPS, charts from their repositories, images
from their registries, each checked on arrival and recorded in the bundle's index only then.

Resumable and idempotent: what the index records (and is still there at its size) is skipped, a
download cut off halfway continues where it stopped (HTTP ranges), and an image's layers are kept
by digest while it is being assembled. Standard library only (urllib), so it runs wherever the
project's Python does.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from components.bundle import oci
from components.bundle.contents import BundleContents, Chart, Image, NodeImage, Source
from components.bundle.images import ImageRef
from components.bundle.software import Download
from components.bundle.store import Bundle, sha256_file

ACCEPT_MANIFESTS = ", ".join(
    (
        oci.INDEX,
        oci.MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
INDEX_TYPES = (oci.INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")
# Docker Hub's registry is not at docker.io.
REGISTRY_HOSTS = {"docker.io": "registry-1.docker.io"}
CHUNK = 1 << 20


class FillError(RuntimeError):
    """A file or image that could not be fetched or checked; the message names it."""


# ----------------------------------------------------------------------------------------------
# Progress


class Progress:
    """What is being fetched, how big it is and how far it got, on one terminal line (or one log
    line a few seconds apart when stderr is not a terminal)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0

    def item(self, what: str) -> None:
        self._line(what, force=True)

    def bytes(self, what: str, done: int, total: Optional[int]) -> None:
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB ({100 * done // max(total, 1)}%)" if total else f"{done / 1e6:.1f} MB"
        self._line(f"{what}: {size}")

    def done(self, what: str) -> None:
        self._line(what, force=True, end=True)

    def _line(self, text: str, force: bool = False, end: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if end else ""))
            self.stream.flush()
        elif force or now - self._last > 5:
            self.stream.write(text + "\n")
            self._last = now


# ----------------------------------------------------------------------------------------------
# HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # redirects are followed by hand, without credentials
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _open(url: str, headers: Optional[dict[str, str]] = None, timeout: float = 60):
    """GET ``url``, following redirects by hand so credentials never travel to another host."""
    for _ in range(10):
        request = urllib.request.Request(url, headers=headers or {})
        try:
            return _opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            if err.code in (301, 302, 303, 307, 308) and err.headers.get("Location"):
                new = urllib.parse.urljoin(url, err.headers["Location"])
                if urllib.parse.urlsplit(new).netloc != urllib.parse.urlsplit(url).netloc:
                    headers = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
                url = new
                continue
            raise
    raise FillError(f"{url}: too many redirects")


def download(url: str, dest: Path, progress: Progress, what: str, headers: Optional[dict[str, str]] = None) -> None:
    """``url`` into ``dest`` through ``dest.part``, continuing a partial download where it stopped."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request_headers = dict(headers or {})
    if have:
        request_headers["Range"] = f"bytes={have}-"
    try:
        response = _open(url, request_headers)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is whole already
            part.replace(dest)
            return
        raise FillError(f"{what}: {url} answered {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise FillError(f"{what}: cannot reach {url} ({getattr(err, 'reason', err)})") from None
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        done = have
        with part.open("ab" if have else "wb") as f:
            try:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    progress.bytes(what, done, total)
            except (http.client.IncompleteRead, OSError) as err:
                # What arrived stays in the part file: the next fill asks for the rest.
                if isinstance(err, http.client.IncompleteRead):
                    f.write(err.partial)
                    done += len(err.partial)
    if total is not None and done != total:
        raise FillError(f"{what}: {url} was cut off at {done} of {total} bytes; run the fill again to continue")
    part.replace(dest)


def fetch_text(url: str, what: str) -> str:
    try:
        with _open(url) as response:
            return response.read().decode()
    except urllib.error.HTTPError as err:
        raise FillError(f"{what}: {url} answered {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise FillError(f"{what}: cannot reach {url} ({getattr(err, 'reason', err)})") from None


def published_sha256(text: str, name: str) -> Optional[str]:
    """The digest an upstream checksum file gives for ``name``: a bare digest, or the line naming it."""
    bare = named = None
    for line in text.splitlines():
        fields = line.split()
        if not fields or not re.fullmatch(r"[0-9a-f]{64}", fields[0]):
            continue
        if len(fields) == 1:
            bare = fields[0]
        elif fields[1].lstrip("*").rsplit("/", 1)[-1] == name:
            named = fields[0]
    return named or bare


def _verified(path: Path, want: str, what: str) -> None:
    got = sha256_file(path)
    if got != want:
        path.unlink()
        raise FillError(f"{what}: SHA-256 {got} is not the published {want}; removed, run the fill again")


# ----------------------------------------------------------------------------------------------
# Files and charts


def mirrored(url: str, mirror: Optional[str]) -> str:
    """``url`` on a mirror that keeps upstream's layout under ``<mirror>/<host>/<path>`` (the bundle's
    own ``files/`` layout, so a bundle served over HTTP is such a mirror)."""
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def publish_checksum(item: Download, bundle: Bundle) -> None:
    """Write beside a recorded file the checksum file its upstream publishes, with the line for it
    (``<sha256>  <name>``, the form release checksum lists use): a bundle served over HTTP then
    answers a fill's checksum requests as upstream does. Not an entry of the index: it is derived
    from the entry's own SHA-256, and written again whenever it is missing or stale."""
    entry = bundle.entries.get(item.path)
    if item.checksum_path is None or entry is None:
        return
    target = bundle.file(item.checksum_path)
    line = f"{entry.sha256}  {item.name}\n"
    if not target.is_file() or target.read_text() != line:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(line)


def fetch_download(item: Download, bundle: Bundle, progress: Progress, mirror: Optional[str] = None) -> None:
    dest = bundle.file(item.path)
    want = item.sha256
    if want is None and item.checksum_url:
        want = published_sha256(fetch_text(mirrored(item.checksum_url, mirror), item.name), item.name)
        if want is None:
            raise FillError(f"{item.name}: {item.checksum_url} lists no SHA-256 for it")
    download(mirrored(item.url, mirror), dest, progress, item.name)
    if want:
        _verified(dest, want, item.name)
    elif dest.suffix in (".yaml", ".yml"):
        try:
            list(yaml.safe_load_all(dest.read_text()))
        except yaml.YAMLError as err:
            dest.unlink()
            raise FillError(f"{item.name}: {item.url} is not YAML ({err}); removed") from None
    bundle.record(item.path, item.url, sha256=want)
    publish_checksum(item, bundle)
    progress.done(f"{item.name}: {dest.stat().st_size / 1e6:.1f} MB, checked")


def fetch_chart(chart: Chart, bundle: Bundle, progress: Progress, mirror: Optional[str] = None) -> None:
    """A chart version from its repository's index.yaml: its archive, checked against the index's digest."""
    what = f"chart {chart.name} {chart.version}"
    repository = mirrored(chart.repository, mirror)
    index_url = repository.rstrip("/") + "/index.yaml"
    index = yaml.safe_load(fetch_text(index_url, what)) or {}
    entry = next((e for e in (index.get("entries") or {}).get(chart.name) or [] if str(e.get("version")) == chart.version), None)
    if entry is None or not entry.get("urls"):
        raise FillError(f"{what}: {index_url} has no such version")
    url = urllib.parse.urljoin(repository.rstrip("/") + "/", entry["urls"][0])
    dest = bundle.file(chart.path)
    download(url, dest, progress, what)
    if entry.get("digest"):
        _verified(dest, entry["digest"], what)
    bundle.record(chart.path, url, sha256=entry.get("digest"))
    progress.done(f"{what}: {dest.stat().st_size / 1e3:.0f} kB, checked")


def build_node_rootfs(node_image: NodeImage, bundle: Bundle, progress: Progress) -> None:
    """Docker nodes' file system, built from Debian's packages (scripts/node-image.sh rootfs)."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "scripts" / "node-image.sh"
    dest = bundle.file(node_image.path)
    progress.item(f"node image {node_image.image}: building its file system from Debian packages")
    result = subprocess.run(["bash", str(script), "rootfs", str(dest)], capture_output=True, text=True)
    if result.returncode != 0:
        raise FillError(f"node image {node_image.image}: scripts/node-image.sh rootfs failed:\n{result.stderr[-2000:]}")
    bundle.record(node_image.path, "scripts/node-image.sh rootfs (Debian packages)")
    progress.done(f"node image {node_image.image}: {dest.stat().st_size / 1e6:.0f} MB")


# ----------------------------------------------------------------------------------------------
# Images


@dataclass
class Registry:
    """The registry API (distribution spec v2) of one host, with the bearer-token handshake."""

    host: str
    scheme: str = "https"
    token: Optional[str] = None
    prefix: str = ""
    """Put before every repository: a mirror keeps registry.k8s.io/pause as <mirror>/registry.k8s.io/pause."""

    @classmethod
    def mirror(cls, url: str) -> Callable[[str], "Registry"]:
        """Every registry through one mirror registry (``http://127.0.0.1:5000``), repositories under their registry's name."""
        parts = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
        return lambda registry: cls(parts.netloc, parts.scheme, prefix=f"{registry}/")

    @property
    def base(self) -> str:
        return f"{self.scheme}://{REGISTRY_HOSTS.get(self.host, self.host)}/v2"

    def _authenticate(self, challenge: str, what: str) -> None:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if not challenge.lower().startswith("bearer") or "realm" not in fields:
            raise FillError(f"{what}: the registry {self.host} asks for credentials this lab does not have ({challenge})")
        query = urllib.parse.urlencode({k: v for k, v in fields.items() if k in ("service", "scope")})
        body = json.loads(fetch_text(f"{fields['realm']}?{query}", what))
        self.token = body.get("token") or body.get("access_token")

    def open(self, path: str, what: str, accept: Optional[str] = None):
        headers = {"Accept": accept} if accept else {}
        for attempt in range(2):
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                return _open(f"{self.base}/{path}", headers)
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 0:
                    self._authenticate(err.headers.get("WWW-Authenticate", ""), what)
                    continue
                raise FillError(f"{what}: {self.base}/{path} answered {err.code} {err.reason}") from None
            except (urllib.error.URLError, OSError) as err:
                raise FillError(f"{what}: cannot reach {self.host} ({getattr(err, 'reason', err)})") from None
        raise FillError(f"{what}: the registry {self.host} refused the token it issued")


def _manifest(registry: Registry, ref: ImageRef, reference: str, what: str) -> tuple[bytes, str]:
    with registry.open(f"{registry.prefix}{ref.repository}/manifests/{reference}", what, ACCEPT_MANIFESTS) as response:
        data = response.read()
        media_type = response.headers.get("Content-Type", "").split(";")[0]
    media_type = json.loads(data).get("mediaType") or media_type
    if reference.startswith("sha256:") and oci.digest_of(data) != reference:
        raise FillError(f"{what}: the registry's manifest does not match {reference}")
    return data, media_type


def pull_image(ref: ImageRef, dest: Path, blobs: Path, progress: Progress, arch: str, registry: Optional[Registry] = None) -> None:
    """``ref`` (its ``arch`` platform) as an OCI archive at ``dest``, its manifests kept byte for byte."""
    what = f"image {ref.name}"
    registry = registry or Registry(ref.registry)
    top, top_type = _manifest(registry, ref, ref.reference, what)
    extra: list[oci.Blob] = []
    manifest, manifest_type = top, top_type
    if top_type in INDEX_TYPES:
        choices = json.loads(top).get("manifests") or []
        chosen = next(
            (m for m in choices if (m.get("platform") or {}).get("os") == "linux" and (m.get("platform") or {}).get("architecture") == arch),
            None,
        )
        if chosen is None:
            raise FillError(f"{what} has no linux/{arch} image")
        manifest, manifest_type = _manifest(registry, ref, chosen["digest"], what)
        extra.append(oci.Blob.of(manifest))
    body = json.loads(manifest)
    needed = [body["config"], *body.get("layers", [])]
    total = sum(int(d.get("size", 0)) for d in needed)
    done = 0
    files: list[oci.Blob] = []
    for descriptor in needed:
        digest = descriptor["digest"]
        path = blobs / oci.blob_path(digest)
        if not path.exists():
            part = path.with_name(path.name + ".part")
            path.parent.mkdir(parents=True, exist_ok=True)
            with registry.open(f"{registry.prefix}{ref.repository}/blobs/{digest}", what) as response, part.open("wb") as f:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    progress.bytes(what, done + f.tell(), total)
            if oci.Blob.from_file(part).digest != digest:
                part.unlink()
                raise FillError(f"{what}: a layer did not match its digest {digest}; run the fill again")
            part.replace(path)
        done += int(descriptor.get("size", 0))
        files.append(oci.Blob.from_file(path, digest))
    tag = ref.tag or ref.digest or "latest"
    oci.ImageArchive(
        name=ref.name,
        tag=tag,
        top=oci.Blob.of(top),
        top_media_type=top_type,
        blobs=[*extra, *files],
        docker_config=body["config"]["digest"],
        docker_layers=tuple(d["digest"] for d in body.get("layers", [])),
    ).write(dest)
    progress.done(f"{what}: {dest.stat().st_size / 1e6:.1f} MB, digests checked")


# ----------------------------------------------------------------------------------------------


@dataclass
class FillReport:
    fetched: int
    kept: int
    size: int
    seconds: float


def fill(
    contents: BundleContents,
    bundle: Bundle,
    *,
    arch: str,
    progress: Optional[Progress] = None,
    registry_for: Callable[[str], Registry] = Registry,
    mirror: Optional[str] = None,
) -> FillReport:
    """Fetch everything ``contents`` lists that ``bundle`` lacks. Raises FillError naming what failed.

    ``mirror``: an HTTP mirror of the release files and charts (see :func:`mirrored`);
    ``registry_for``: how each registry is reached (:meth:`Registry.mirror` for one mirror registry).
    """
    progress = progress or Progress()
    started = time.monotonic()
    fetched = kept = 0
    for path, origin in contents.files():
        if bundle.has(path):
            kept += 1
            continue
        if isinstance(origin, Chart):
            fetch_chart(origin, bundle, progress, mirror)
        elif isinstance(origin, NodeImage):
            build_node_rootfs(origin, bundle, progress)
        else:
            fetch_download(origin, bundle, progress, mirror)
        fetched += 1

    def located(source: Source) -> Optional[Path]:
        if isinstance(source.origin, Path):
            return source.origin
        return bundle.file(source.origin.path) if bundle.has(source.origin.path) else None

    images, pending = contents.all_images(located)
    if pending:
        raise FillError(f"cannot read the images of {', '.join(s.what for s in pending)}: the file is not there")
    blobs = bundle.root / ".blobs"
    registries: dict[str, Registry] = {}
    for image in images:
        path = image.ref.archive
        if bundle.has(path):
            kept += 1
            continue
        registry = registries.setdefault(image.ref.registry, registry_for(image.ref.registry))
        pull_image(image.ref, bundle.file(path), blobs, progress, arch, registry)
        bundle.record(path, f"{image.ref.registry}/{image.ref.repository}", image=image.ref.name)
        fetched += 1
    # Layers live on in the archives; the assembly area goes once every image is whole.
    if blobs.exists():
        import shutil

        shutil.rmtree(blobs, ignore_errors=True)
    size = sum(e.size for e in bundle.entries.values())
    return FillReport(fetched, kept, size, time.monotonic() - started)


def describe(images: list[Image]) -> str:
    return "\n".join(f"  {i.ref.name}  ({i.source}; {i.where})" for i in images)
