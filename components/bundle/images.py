"""Container image references: read from the manifests and charts the lab applies, and normalised.

A reference is kept exactly as a manifest writes it (the kubelet asks the runtime for that
string) and normalised the way containerd names what it stores: ``redis:alpine`` is
``docker.io/library/redis:alpine``. Pure: no Pulumi, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import yaml

DEFAULT_REGISTRY = "docker.io"

# Objects whose pod template (or pod spec) holds containers, and where.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, order=True)
class ImageRef:
    """A parsed image reference: registry, repository, and a tag and/or a digest."""

    registry: str
    repository: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> "ImageRef":
        ref = text.strip()
        digest = None
        if "@" in ref:
            ref, digest = ref.split("@", 1)
            if not _DIGEST.match(digest):
                raise ValueError(f"image {text!r} has a malformed digest {digest!r}")
        tag = None
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            ref, tag = ref.rsplit(":", 1)
        first, _, rest = ref.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
        else:
            registry, repository = DEFAULT_REGISTRY, ref
        if registry == DEFAULT_REGISTRY and "/" not in repository:
            repository = f"library/{repository}"
        if not repository or (tag is None and digest is None):
            # An untagged reference means :latest, which no offline lab can pin.
            raise ValueError(f"image {text!r} names no tag or digest; pin one")
        return cls(registry, repository, tag, digest)

    @property
    def name(self) -> str:
        """The full name containerd stores, e.g. ``docker.io/library/redis:alpine``."""
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def archive(self) -> str:
        """Where a bundle keeps its archive: ``images/<registry>/<repository>/<tag or digest>.tar``."""
        leaf = self.tag or ""
        if self.digest:
            leaf = f"{leaf}@{self.digest.replace(':', '-')}" if leaf else self.digest.replace(":", "-")
        return f"images/{self.registry}/{self.repository}/{leaf}.tar"

    @property
    def reference(self) -> str:
        """What a registry is asked for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return self.name


def _walk(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def images_of_objects(objects: Iterable[Any]) -> list[str]:
    """Every container image the objects' pod specs name (containers and init containers), in order."""
    found: list[str] = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        items = obj.get("items") if obj.get("kind", "").endswith("List") else None
        if isinstance(items, list):
            found.extend(images_of_objects(items))
            continue
        spec = _walk(obj, _POD_SPEC_PATHS.get(str(obj.get("kind")), ()))
        if not isinstance(spec, dict) or str(obj.get("kind")) not in _POD_SPEC_PATHS:
            continue
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for container in spec.get(key) or []:
                image = (container or {}).get("image")
                if isinstance(image, str) and image not in found:
                    found.append(image)
    return found


def manifest_objects(text: str) -> Iterator[Any]:
    return (doc for doc in yaml.safe_load_all(text) if doc)


def images_of_manifest(path: Path) -> list[str]:
    """The images a multi-document manifest file references."""
    return images_of_objects(manifest_objects(path.read_text()))


def chart_files(chart: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Chart.yaml, values.yaml) of a chart directory or ``.tgz`` archive."""
    if chart.is_dir():
        return (
            yaml.safe_load((chart / "Chart.yaml").read_text()) or {},
            yaml.safe_load((chart / "values.yaml").read_text()) or {},
        )
    import tarfile

    with tarfile.open(chart) as archive:
        members = {m.name.split("/", 1)[-1]: m for m in archive.getmembers() if m.name.count("/") == 1}
        meta, values = (archive.extractfile(members[name]) for name in ("Chart.yaml", "values.yaml"))
        assert meta is not None and values is not None
        return yaml.safe_load(meta.read()) or {}, yaml.safe_load(values.read()) or {}


def _chart_image(image: dict[str, Any], app_version: str, *, registry: str, repository: str) -> str:
    """A chart's ``image:`` block as the usual template composes it (registry/repository:tag, digest wins)."""
    ref = f"{image.get('registry') or registry}/{image.get('repository') or repository}"
    if image.get("digest"):
        return f"{ref}@{image['digest']}"
    return f"{ref}:{image.get('tag') or app_version}"


def traefik_chart_images(chart: Path) -> list[str]:
    """The Traefik chart's one image, as its ``_helpers.tpl`` composes it (docker.io/traefik:<appVersion>)."""
    meta, values = chart_files(chart)
    return [_chart_image(values.get("image") or {}, str(meta.get("appVersion")), registry="docker.io", repository="traefik")]


def grafana_chart_images(chart: Path) -> list[str]:
    """Grafana's image from the grafana chart, with the lab's values (no sidecars, no persistence)."""
    meta, values = chart_files(chart)
    image = values.get("image") or {}
    return [_chart_image(image, str(meta.get("appVersion")), registry="docker.io", repository="grafana/grafana")]
