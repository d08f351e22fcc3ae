"""What a node installs besides its OS, pinned, and where upstream publishes each piece.

Node preparation installs the same release files whether they come from upstream or from an
offline bundle: the Kubernetes release binaries (dl.k8s.io), containerd, runc, the CNI plugins
and crictl (their GitHub releases), and the CNI's manifest. Each has an upstream checksum file
where the project publishes one, which is how a download is checked on arrival.

Pure: no Pulumi, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

CONTAINERD_VERSION = "2.1.4"  # Kubernetes 1.36 needs containerd 2.x; Ubuntu 24.04 ships 1.7
RUNC_VERSION = "1.3.2"
CNI_PLUGINS_VERSION = "1.9.1"  # what Kubernetes 1.36's build/dependencies.yaml names
FLANNEL_VERSION = "0.27.4"
CALICO_VERSION = "3.30.3"

# The images kubeadm lists (`kubeadm config images list`) besides kube-apiserver,
# kube-controller-manager, kube-scheduler and kube-proxy, which carry the Kubernetes version:
# pause, etcd and CoreDNS, as kubeadm's constants name them in the newest release of each minor
# (1.34.4, 1.35.4, 1.36.1).
KUBEADM_IMAGE_TAGS: dict[str, dict[str, str]] = {
    "1.34": {"pause": "3.10.1", "etcd": "3.6.5-0", "coredns": "v1.12.1"},
    "1.35": {"pause": "3.10.1", "etcd": "3.6.6-0", "coredns": "v1.13.1"},
    "1.36": {"pause": "3.10.2", "etcd": "3.6.8-0", "coredns": "v1.14.2"},
}
KUBERNETES_REGISTRY = "registry.k8s.io"
CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def minor(version: str) -> str:
    """``1.36.1`` -> ``1.36``."""
    return ".".join(version.split(".")[:2])


def crictl_version(kubernetes_version: str) -> str:
    """cri-tools releases one minor per Kubernetes minor: 1.36 -> 1.36.0."""
    return f"{minor(kubernetes_version)}.0"


@dataclass(frozen=True)
class Download:
    """One file a node (or the laptop, for a manifest) fetches, and how it is checked.

    ``checksum_url`` names an upstream file holding its SHA-256 (bare, or ``<hex>  <name>`` lines
    of a release's checksum list, the line naming this file); ``sha256`` pins it where upstream
    publishes none at a URL. With neither, the file is checked by what reads it (a manifest must
    parse as Kubernetes objects).
    """

    url: str
    checksum_url: Optional[str] = None
    sha256: Optional[str] = None
    executable: bool = False

    @property
    def path(self) -> str:
        """Where the bundle keeps it: ``files/<host>/<path of the URL>``, a mirror of upstream."""
        parts = urlsplit(self.url)
        return f"files/{parts.netloc}{parts.path}"

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def checksum_path(self) -> Optional[str]:
        """Where the bundle keeps the checksum file (``checksum_url`` in the same layout), so that a
        bundle's ``files/`` served over HTTP is a mirror a fill can check against."""
        if not self.checksum_url:
            return None
        parts = urlsplit(self.checksum_url)
        return f"files/{parts.netloc}{parts.path}"


def kubernetes_binaries(version: str, arch: str) -> dict[str, Download]:
    """kubeadm, kubelet and kubectl: the release binaries, each with its ``.sha256``."""
    downloads = {}
    for name in ("kubeadm", "kubelet", "kubectl"):
        url = f"https://dl.k8s.io/release/v{version}/bin/linux/{arch}/{name}"
        downloads[name] = Download(url, checksum_url=f"{url}.sha256", executable=True)
    return downloads


def containerd(arch: str, version: str = CONTAINERD_VERSION) -> Download:
    url = f"https://github.com/containerd/containerd/releases/download/v{version}/containerd-{version}-linux-{arch}.tar.gz"
    return Download(url, checksum_url=f"{url}.sha256sum")


def runc(arch: str, version: str = RUNC_VERSION) -> Download:
    base = f"https://github.com/opencontainers/runc/releases/download/v{version}"
    return Download(f"{base}/runc.{arch}", checksum_url=f"{base}/runc.sha256sum", executable=True)


def cni_plugins(arch: str, version: str = CNI_PLUGINS_VERSION) -> Download:
    url = (
        f"https://github.com/containernetworking/plugins/releases/download/v{version}/"
        f"cni-plugins-linux-{arch}-v{version}.tgz"
    )
    return Download(url, checksum_url=f"{url}.sha256")


def crictl(kubernetes_version: str, arch: str) -> Download:
    version = crictl_version(kubernetes_version)
    url = f"https://github.com/kubernetes-sigs/cri-tools/releases/download/v{version}/crictl-v{version}-linux-{arch}.tar.gz"
    return Download(url, checksum_url=f"{url}.sha256")


def cni_manifest(cni: str) -> Download:
    """The pinned CNI manifest (applied on the control plane by scripts/node/cni.sh)."""
    if cni == "calico":
        return Download(f"https://raw.githubusercontent.com/projectcalico/calico/v{CALICO_VERSION}/manifests/calico.yaml")
    return Download(f"https://github.com/flannel-io/flannel/releases/download/v{FLANNEL_VERSION}/kube-flannel.yml")


def node_downloads(kubernetes_version: str, cni: str, arch: str) -> dict[str, Download]:
    """Every file node preparation installs, by the name scripts/node/prepare.sh knows it by."""
    return {
        **kubernetes_binaries(kubernetes_version, arch),
        "containerd": containerd(arch),
        "runc": runc(arch),
        "cni-plugins": cni_plugins(arch),
        "crictl": crictl(kubernetes_version, arch),
        "cni-manifest": cni_manifest(cni),
    }


def kubeadm_images(kubernetes_version: str) -> dict[str, str]:
    """The images ``kubeadm config images list`` names for a version, by component."""
    tags = KUBEADM_IMAGE_TAGS.get(minor(kubernetes_version))
    if tags is None:
        known = ", ".join(sorted(KUBEADM_IMAGE_TAGS))
        raise ValueError(f"no kubeadm image list for Kubernetes {kubernetes_version}; known minors: {known}")
    images = {name: f"{KUBERNETES_REGISTRY}/{name}:v{kubernetes_version}" for name in (*CONTROL_PLANE_COMPONENTS, "kube-proxy")}
    images["pause"] = f"{KUBERNETES_REGISTRY}/pause:{tags['pause']}"
    images["etcd"] = f"{KUBERNETES_REGISTRY}/etcd:{tags['etcd']}"
    images["coredns"] = f"{KUBERNETES_REGISTRY}/coredns/coredns:{tags['coredns']}"
    return images
