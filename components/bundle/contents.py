"""What a stack fetches, file by file and image by image: the contents of its offline bundle.

The list is derived from the stack's own configuration, by the same pins and URL builders the
program applies, so a bundle holds exactly what ``up`` would otherwise download:

- **node files**: the Kubernetes binaries, containerd, runc, the CNI plugins, crictl and the CNI
  manifest (:mod:`components.bundle.software`);
- **sources**: the manifests and charts Pulumi applies from the laptop (MetalLB, the ingress
  controller, the Gateway API CRDs, the apps), each either a download or a local file the user gave;
- **images**: kubeadm's images for the version, the lab's own (the demo app, the lab DNS), and
  every image the sources name, read from them once they are at hand (a chart or manifest must be
  fetched before its images are known).

Pure: no Pulumi, no network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from components.bundle import images as img
from components.bundle import software
from components.bundle.software import Download
from components.config import GATEWAY_API_VERSION, LabConfig, is_url, local_path

ARCH = "amd64"

# Where an image must be on a node before anything asks for it.
EVERY_NODE = "every node"
CONTROL_PLANE = "control plane"


@dataclass(frozen=True)
class Chart:
    """A Helm chart in a chart repository (the fill reads the repository's index for its URL and digest)."""

    repository: str
    name: str
    version: str

    @property
    def path(self) -> str:
        return f"charts/{urlsplit(self.repository).netloc}/{self.name}-{self.version}.tgz"


@dataclass(frozen=True)
class NodeImage:
    """The docker nodes' root file system (scripts/node-image.sh rootfs), which ``./lab node-image``
    imports: built from Debian's packages at fill time, so an air-gapped host needs no mirror."""

    image: str  # the Docker image it becomes (vagrant.box)

    @property
    def path(self) -> str:
        return f"node-image/{self.image.replace('/', '_').replace(':', '_')}.tar"


@dataclass(frozen=True)
class Source:
    """A manifest or chart the program applies from the laptop, and how to read its images."""

    key: str  # the config key that names it (metallb.manifest, ...)
    what: str  # for messages: "MetalLB 0.14.9 manifest"
    origin: Download | Chart | Path  # Path: a local file the user gave
    read_images: Callable[[Path], list[str]]

    @property
    def path(self) -> Optional[str]:
        """Where the bundle keeps it (None for the user's own local file, which stays where it is)."""
        return None if isinstance(self.origin, Path) else self.origin.path


@dataclass(frozen=True)
class Image:
    ref: img.ImageRef
    source: str  # where the reference comes from, for `./lab bundle list`
    where: str = EVERY_NODE


@dataclass
class BundleContents:
    node_files: dict[str, Download]
    sources: list[Source]
    images: list[Image] = field(default_factory=list)
    """The images known from the configuration alone; see :meth:`all_images` for the rest."""
    node_image: Optional[NodeImage] = None
    """Docker nodes' file system (vagrant.provider: docker)."""

    def all_images(self, located: Callable[[Source], Optional[Path]]) -> tuple[list[Image], list[Source]]:
        """Every image, with those read from each source that ``located`` finds on disk; the
        sources it cannot find yet are returned as well (their images are not known yet)."""
        found: dict[str, Image] = {}
        for image in self.images:
            found.setdefault(image.ref.name, image)
        pending = []
        for source in self.sources:
            path = located(source)
            if path is None:
                pending.append(source)
                continue
            for text in source.read_images(path):
                ref = img.ImageRef.parse(text)
                found.setdefault(ref.name, Image(ref, source.what))
        return list(found.values()), pending

    def files(self) -> list[tuple[str, Download | Chart | NodeImage]]:
        """Every file the bundle holds besides images, as (path in the bundle, origin)."""
        entries: list[tuple[str, Download | Chart | NodeImage]] = [(d.path, d) for d in self.node_files.values()]
        if self.node_image is not None:
            entries.append((self.node_image.path, self.node_image))
        for source in self.sources:
            if not isinstance(source.origin, Path):
                entries.append((source.origin.path, source.origin))
        return list(dict(entries).items())


def _source(key: str, what: str, given: Optional[str], upstream: Download | Chart, read: Callable[[Path], list[str]]) -> Source:
    """The user's local file when ``given`` is a path, its URL when a URL, else the upstream default."""
    if given is None:
        return Source(key, what, upstream, read)
    if is_url(given):
        return Source(key, what, Download(given), read)
    return Source(key, what, local_path(given), read)


def bundle_contents(cfg: LabConfig, arch: str = ARCH) -> BundleContents:
    """Everything the stack ``cfg`` fetches (for the lab's own cluster, the nodes' files too)."""
    # Imported here: these modules import Pulumi, which the pure functions above do not need.
    from components.apps.argocd import install_manifest_url
    from components.apps.grafana import REPOSITORY as GRAFANA_REPOSITORY
    from components.apps.online_boutique import release_manifest_url
    from components.dns import image as dns_image
    from components.apps.demo import image as demo_image
    from components.gateway import standard_install_url as gateway_api_manifest_url
    from components.ingress import TRAEFIK_REPOSITORY, ingress_nginx_manifest_url

    node_files: dict[str, Download] = {}
    images: list[Image] = []
    if cfg.cluster is None:
        k8s = cfg.kubernetes
        node_files = software.node_downloads(k8s.version, k8s.cni, arch)
        for component, ref in software.kubeadm_images(k8s.version).items():
            where = CONTROL_PLANE if component in (*software.CONTROL_PLANE_COMPONENTS, "etcd") else EVERY_NODE
            images.append(Image(img.ImageRef.parse(ref), f"kubeadm {k8s.version}", where))

    sources = [
        _source(
            "metallb.manifest",
            f"MetalLB {cfg.metallb.version} manifest",
            cfg.metallb.manifest,
            Download(cfg.metallb.manifest_url),
            img.images_of_manifest,
        )
    ]
    ingress = cfg.ingress
    if ingress.controller == "traefik":
        sources.append(
            _source(
                "ingress.manifest",
                f"Traefik chart {ingress.resolved_version}",
                ingress.manifest,
                Chart(TRAEFIK_REPOSITORY, "traefik", ingress.resolved_version),
                img.traefik_chart_images,
            )
        )
        if ingress.api == "gateway":
            sources.append(
                _source(
                    "ingress.gateway_api_manifest",
                    f"Gateway API {GATEWAY_API_VERSION} CRDs",
                    ingress.gateway_api_manifest,
                    Download(gateway_api_manifest_url(GATEWAY_API_VERSION)),
                    img.images_of_manifest,
                )
            )
    else:
        sources.append(
            _source(
                "ingress.manifest",
                f"ingress-nginx {ingress.resolved_version} manifest",
                ingress.manifest,
                Download(ingress_nginx_manifest_url(ingress.resolved_version)),
                img.images_of_manifest,
            )
        )
    options = cfg.app_options
    if "demo" in cfg.apps:
        images.append(Image(img.ImageRef.parse(demo_image(options.demo)), "the demo app"))
    if cfg.dns.enabled:
        images.append(Image(img.ImageRef.parse(dns_image(cfg.dns.version)), "the lab DNS server"))
    if "argocd" in cfg.apps:
        sources.append(
            _source(
                "app_options.argocd.manifest",
                f"Argo CD {options.argocd.version} manifest",
                options.argocd.manifest,
                Download(install_manifest_url(options.argocd.version)),
                img.images_of_manifest,
            )
        )
    if "grafana" in cfg.apps:
        sources.append(
            _source(
                "app_options.grafana.chart",
                f"Grafana chart {options.grafana.chart_version}",
                options.grafana.chart,
                Chart(GRAFANA_REPOSITORY, "grafana", options.grafana.chart_version),
                img.grafana_chart_images,
            )
        )
    if "online-boutique" in cfg.apps:
        sources.append(
            _source(
                "app_options.online-boutique.manifest",
                f"Online Boutique {options.online_boutique.version} manifest",
                options.online_boutique.manifest,
                Download(release_manifest_url(options.online_boutique.version)),
                img.images_of_manifest,
            )
        )
    if cfg.cluster is None:
        # The CNI manifest is applied on the control plane, but its images are pulled by every node.
        cni = node_files["cni-manifest"]
        sources.append(Source("kubernetes.cni", f"{cfg.kubernetes.cni} manifest", cni, img.images_of_manifest))
    node_image = NodeImage(cfg.vagrant.box) if cfg.cluster is None and cfg.vagrant.containers else None
    return BundleContents(node_files=node_files, sources=sources, images=images, node_image=node_image)
