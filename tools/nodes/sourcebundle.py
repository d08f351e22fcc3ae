"""Fill an offline bundle from upstream *sources*: what a machine without any registry or release
download uses instead of ``./lab bundle fill``.

tools/build-node-software.sh builds every binary from the Go module proxy; this module puts them
where ``./lab bundle fill`` would put the release files (the same paths, the same archive shapes:
containerd's ``bin/`` tarball, the CNI plugins' flat tgz, crictl's), takes the manifests from the
Go modules that ship them (or ../shared/reference), and assembles each container image the stack
references, under exactly the name its manifest uses, from those binaries on a base made of Debian
packages where the binary needs userland (iptables for kube-proxy and flannel). The stack's bundle
contents (components.bundle.contents) say what must be there: an image it lists that nothing here
can build (ingress-nginx, whose nginx needs OpenResty) is an error naming it.

    python3 -m tools.nodes.sourcebundle --stack lab --set ingress.controller=traefik --bundle DIR
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from components.bundle import oci, software
from components.bundle.fill import publish_checksum
from components.bundle.contents import BundleContents, Chart, Source, bundle_contents
from components.bundle.images import ImageRef
from components.bundle.store import Bundle
from components.config import LabConfig
from tools.project import REFERENCE, ROOT, run_tool

BUILD_SCRIPT = ROOT / "tools" / "build-node-software.sh"
ORIGIN = "built from source by tools/nodes/sourcebundle.py"
# The Traefik the default chart (41.3.0) runs, for stacks that name no Traefik image.
TRAEFIK_DEFAULT = "3.7.11"
BASE_PACKAGES = ("iptables", "ipset", "conntrack", "kmod")


# ----------------------------------------------------------------------------------------------
# The binaries


def node_software_versions(cfg: LabConfig, traefik: str) -> dict[str, str]:
    """The versions tools/build-node-software.sh builds, from the lab's own pins (Traefik's is its
    chart's appVersion, which the chart says)."""
    tags = software.KUBEADM_IMAGE_TAGS[software.minor(cfg.kubernetes.version)]
    return {
        "KUBERNETES_VERSION": cfg.kubernetes.version,
        "ETCD_VERSION": tags["etcd"].split("-")[0],
        "PAUSE_VERSION": tags["pause"],
        "COREDNS_VERSION": tags["coredns"].lstrip("v"),
        "CONTAINERD_VERSION": software.CONTAINERD_VERSION,
        "RUNC_VERSION": software.RUNC_VERSION,
        "CRICTL_VERSION": software.crictl_version(cfg.kubernetes.version),
        "CNI_PLUGINS_VERSION": software.CNI_PLUGINS_VERSION,
        "FLANNEL_VERSION": software.FLANNEL_VERSION,
        "METALLB_VERSION": cfg.metallb.version,
        "TRAEFIK_VERSION": traefik.lstrip("v"),
    }


def build_binaries(versions: dict[str, str], quiet: bool = True) -> Path:
    """Build (or find cached) every binary; returns the bin directory."""
    env = {**os.environ, **versions}
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *(["--quiet"] if quiet else [])], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"tools/build-node-software.sh failed:\n{result.stderr[-4000:]}")
    sys.stderr.write(result.stderr)
    return Path(result.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# Release-shaped files


def _tar(path: Path, members: list[tuple[str, Path]], *, gz: bool = True) -> None:
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(part, "wb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) if gz else raw
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, source in members:
                info = tar.gettarinfo(str(source), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                with source.open("rb") as f:
                    tar.addfile(info, f)
        if gz:
            stream.close()
    part.replace(path)


def _copy(path: Path, source: Path, mode: int = 0o755) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    shutil.copyfile(source, part)
    part.chmod(mode)
    part.replace(path)


def release_files(bin_dir: Path, contents: BundleContents) -> dict[str, Callable[[Path], None]]:
    """How to make each node file the stack needs, in the shape upstream releases it."""
    makers: dict[str, Callable[[Path], None]] = {}
    for name in ("kubeadm", "kubelet", "kubectl"):
        makers[name] = lambda path, name=name: _copy(path, bin_dir / name)
    makers["runc"] = lambda path: _copy(path, bin_dir / "runc")
    makers["containerd"] = lambda path: _tar(
        path, [(f"bin/{b}", bin_dir / b) for b in ("containerd", "containerd-shim-runc-v2", "ctr")]
    )
    makers["cni-plugins"] = lambda path: _tar(path, [(f"./{p.name}", p) for p in sorted((bin_dir / "cni").iterdir())])
    makers["crictl"] = lambda path: _tar(path, [("crictl", bin_dir / "crictl")])
    missing = set(contents.node_files) - set(makers) - {"cni-manifest"}
    if missing:
        raise RuntimeError(f"no source recipe for node files {sorted(missing)}")
    return makers


def module_dir(module: str, version: str) -> Path:
    out = run_tool(["go", "mod", "download", "-json", f"{module}@v{version}"], f"go mod download {module}", cwd="/")
    import json

    return Path(json.loads(out.stdout)["Dir"])


def source_file(source: Source, cfg: LabConfig) -> Path:
    """The upstream file a source stands for, from the Go module that ships it or ../shared/reference."""
    origin = source.origin
    if isinstance(origin, Path):
        return origin
    if source.key == "kubernetes.cni":
        if cfg.kubernetes.cni != "flannel":
            raise RuntimeError("only flannel's manifest can be had from source here")
        return module_dir("github.com/flannel-io/flannel", software.FLANNEL_VERSION) / "Documentation" / "kube-flannel.yml"
    if source.key == "metallb.manifest":
        return module_dir("go.universe.tf/metallb", cfg.metallb.version) / "config" / "manifests" / "metallb-native.yaml"
    if isinstance(origin, Chart) and origin.name == "traefik":
        chart = REFERENCE / "traefik" / f"chart-{origin.version}"
        if chart.is_dir():
            return chart
    if source.key == "ingress.gateway_api_manifest":
        found = sorted(REFERENCE.glob("gateway-api/standard-install-v*.yaml"))
        if found:
            return found[-1]
    raise RuntimeError(f"{source.what} ({source.key}) cannot be had from source here; give a local copy")


def helmignored(relative: str, patterns: list[str]) -> bool:
    """Whether `helm package` leaves ``relative`` out, by the chart's .helmignore (a directory
    pattern ends in /; the rest match a path or its last part, shell-style)."""
    import fnmatch

    for pattern in patterns:
        if pattern.endswith("/"):
            if relative.startswith(pattern) or f"/{pattern}" in f"/{relative}":
                return True
        elif fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative.rsplit("/", 1)[-1], pattern):
            return True
    return False


def pack_chart(directory: Path, path: Path) -> None:
    """A chart directory as `helm package` lays it out: everything under <chart name>/ but what
    its .helmignore leaves out (a packaged chart is taken as it is, ignore file or not)."""
    import yaml

    name = yaml.safe_load((directory / "Chart.yaml").read_text())["name"]
    ignore = directory / ".helmignore"
    patterns = [
        line.strip() for line in (ignore.read_text().splitlines() if ignore.is_file() else []) if line.strip() and not line.startswith("#")
    ]
    members = [
        (f"{name}/{p.relative_to(directory)}", p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not helmignored(str(p.relative_to(directory)), patterns)
    ]
    _tar(path, members)


# ----------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class Recipe:
    """How an image is assembled: binaries at paths, on the static base or the Debian one."""

    files: tuple[tuple[str, str], ...]  # (binary in bin/, path in the image)
    debian: bool = False
    entrypoint: Optional[tuple[str, ...]] = None
    cmd: Optional[tuple[str, ...]] = None


# By repository (registry/repository), as the lab's manifests and kubeadm name them.
RECIPES: dict[str, Recipe] = {
    "registry.k8s.io/kube-apiserver": Recipe((("kube-apiserver", "usr/local/bin/kube-apiserver"),)),
    "registry.k8s.io/kube-controller-manager": Recipe((("kube-controller-manager", "usr/local/bin/kube-controller-manager"),)),
    "registry.k8s.io/kube-scheduler": Recipe((("kube-scheduler", "usr/local/bin/kube-scheduler"),)),
    "registry.k8s.io/kube-proxy": Recipe((("kube-proxy", "usr/local/bin/kube-proxy"),), debian=True),
    "registry.k8s.io/etcd": Recipe((("etcd", "usr/local/bin/etcd"),)),
    "registry.k8s.io/pause": Recipe((("pause", "pause"),), entrypoint=("/pause",)),
    "registry.k8s.io/coredns/coredns": Recipe((("coredns", "coredns"),), entrypoint=("/coredns",)),
    "registry.k8s.io/e2e-test-images/agnhost": Recipe((("agnhost", "agnhost"),), entrypoint=("/agnhost",), cmd=("pause",)),
    "ghcr.io/flannel-io/flannel": Recipe((("flanneld", "opt/bin/flanneld"),), debian=True, entrypoint=("/opt/bin/flanneld",)),
    "ghcr.io/flannel-io/flannel-cni-plugin": Recipe((("cni/flannel", "flannel"),), debian=True),
    "quay.io/metallb/controller": Recipe((("metallb-controller", "controller"),), entrypoint=("/controller",)),
    "quay.io/metallb/speaker": Recipe((("metallb-speaker", "speaker"),), entrypoint=("/speaker",)),
    "docker.io/library/traefik": Recipe((("traefik", "usr/local/bin/traefik"),), entrypoint=("/usr/local/bin/traefik",)),
}

PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


def static_base() -> oci.Blob:
    """What a static binary needs around it: users, a /tmp, and CA certificates when the host has them."""
    files: list[tuple[str, Path | bytes, int]] = [("etc/passwd", PASSWD, 0o644), ("etc/group", GROUP, 0o644)]
    certs = Path("/etc/ssl/certs/ca-certificates.crt")
    if certs.is_file():
        files.append(("etc/ssl/certs/ca-certificates.crt", certs, 0o644))
    return oci.Blob.of(oci.layer_from_files(files, directories=[("tmp", 0o1777), ("home/nonroot", 0o755)]))


def debian_base(cache: Path) -> oci.Blob:
    """A Debian 12 userland with iptables (nft and legacy), ipset and conntrack, from Debian's
    packages by mmdebstrap; cached, since it changes only with Debian's archive."""
    layer = cache / f"debian-base-{'-'.join(BASE_PACKAGES)}.tar"
    if not layer.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        part = layer.with_name(layer.name + ".part")
        for stale in (layer, part):  # a directory left by an interrupted or older run
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        run_tool(
            [
                "mmdebstrap",
                # Named, not guessed: mmdebstrap reads the format from the file name's
                # extension and makes a directory of anything ending in ".part".
                "--format=tar",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "bookworm",
                str(part),
            ],
            "mmdebstrap (the images' Debian base)",
            timeout=1800,
        )
        part.replace(layer)
    return oci.Blob.from_file(layer)


def build_image(ref: ImageRef, bin_dir: Path, bases: Callable[[bool], list[oci.Blob]]) -> oci.ImageArchive:
    recipe = RECIPES.get(f"{ref.registry}/{ref.repository}")
    if recipe is None:
        raise RuntimeError(f"no source recipe for the image {ref.name}; it cannot be built here")
    if ref.digest:
        raise RuntimeError(f"{ref.name} is pinned by digest, which no image built here can match")
    own = oci.Blob.of(oci.layer_from_files([(target, bin_dir / binary, 0o755) for binary, target in recipe.files]))
    return oci.built_image(
        ref.name,
        [*bases(recipe.debian), own],
        entrypoint=list(recipe.entrypoint) if recipe.entrypoint else None,
        cmd=list(recipe.cmd) if recipe.cmd else None,
    )


# ----------------------------------------------------------------------------------------------


def fill_from_source(cfg: LabConfig, bundle_dir: Path, *, cache: Path, log=print) -> Bundle:
    """Put every file and image of ``cfg``'s bundle into ``bundle_dir``, built from source."""
    contents = bundle_contents(cfg)
    bundle = Bundle(bundle_dir)
    located: dict[str, Path] = {}
    for source in contents.sources:
        located[source.key] = source_file(source, cfg)
    images, _ = contents.all_images(lambda s: located[s.key])
    # Traefik is built at the version of the image its chart names (built even where the stack
    # runs ingress-nginx: one build of the node software serves every stack).
    traefik = next((i.ref.tag for i in images if i.ref.repository == "library/traefik"), None) or TRAEFIK_DEFAULT
    started = time.monotonic()
    bin_dir = build_binaries(node_software_versions(cfg, traefik))
    log(f"binaries ready in {time.monotonic() - started:.0f}s: {bin_dir}")

    makers = release_files(bin_dir, contents)
    for name, download in contents.node_files.items():
        if not bundle.has(download.path):
            target = bundle.file(download.path)
            if name == "cni-manifest":
                _copy(target, located["kubernetes.cni"], 0o644)
            else:
                makers[name](target)
            bundle.record(download.path, ORIGIN)
        publish_checksum(download, bundle)
    if contents.node_image is not None and not bundle.has(contents.node_image.path):
        from components.bundle.fill import Progress, build_node_rootfs

        build_node_rootfs(contents.node_image, bundle, Progress())
    for source in contents.sources:
        if source.path is None or bundle.has(source.path):
            continue
        target = bundle.file(source.path)
        found = located[source.key]
        if found.is_dir():
            pack_chart(found, target)
        else:
            _copy(target, found, 0o644)
        bundle.record(source.path, ORIGIN)

    static: list[oci.Blob] = []
    debian: list[oci.Blob] = []

    def bases(needs_debian: bool) -> list[oci.Blob]:
        if needs_debian:
            if not debian:
                debian.append(debian_base(cache))
            return list(debian)
        if not static:
            static.append(static_base())
        return list(static)

    for image in images:
        path = image.ref.archive
        if bundle.has(path):
            continue
        build_image(image.ref, bin_dir, bases).write(bundle.file(path))
        bundle.record(path, ORIGIN, image=image.ref.name)
        log(f"image {image.ref.name}: {bundle.entries[path].size / 1e6:.0f} MB")
    return bundle


def main(argv: Optional[list[str]] = None) -> int:
    from tools.mocks.stackconfig import stack_config, set_path
    from components.config import parse
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="lab")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="override a stack key (pulumi config set --path form)")
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "k8s-lab" / "node-software")
    args = parser.parse_args(argv)
    config = stack_config(args.stack)
    for item in args.set:
        key, _, value = item.partition("=")
        set_path(config, key, yaml.safe_load(value))
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("k8s-lab:")}
    cfg = parse(raw, stack=args.stack)
    started = time.monotonic()
    bundle = fill_from_source(cfg, args.bundle, cache=args.cache, log=lambda m: print(m, file=sys.stderr))
    total = sum(e.size for e in bundle.entries.values())
    print(f"{len(bundle.entries)} files, {total / 1e6:.0f} MB in {args.bundle} ({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
