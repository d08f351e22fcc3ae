"""`./lab bundle fill` against loopback servers: an HTTP mirror of the release files and charts (a
plain server that honours Range) and a real registry (distribution's, built from source), both in
a network namespace with only loopback. The content is small stand-in bytes and images under the
real names; the checksums, digests, ranges and registry API are the real thing."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from pathlib import Path

import pytest
import yaml

from components.bundle import oci
from components.bundle.contents import Chart, bundle_contents
from components.bundle.fill import FillError, Progress, Registry, fetch_download, fill
from components.bundle.plan import missing_from_bundle
from components.bundle.store import Bundle
from components.config import parse
from harness import reference_file, set_path, stack_config
from tools.testbed.netns import LoopbackNetns
from tools.nodes import tier
from tools.nodes.registry import LoopbackRegistry, free_port

pytestmark = [pytest.mark.xdist_group("bundle-fill")]

REGISTRY = tier.software_bin() / "registry" if tier.software_bin() else None
if REGISTRY is None or not REGISTRY.is_file():
    pytest.skip("the loopback registry is not built: python3 -m tools.nodes.tier builds it (.ci/run does)", allow_module_level=True)


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, with Range (206) as CDNs serve them; can cut one file off once."""

    cut_once: set[str] = set()
    ranges: list[tuple[str, str]] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if "Range" in self.headers:
            self.ranges.append((self.path, self.headers["Range"]))
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.cut_once:
            self.cut_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


def _cfg():
    config = stack_config("lab")
    set_path(config, "ingress", {"controller": "traefik", "ip": "192.168.56.200"})
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("k8s-lab:")}
    return parse(raw, stack="lab")


def _flannel() -> bytes:
    return yaml.safe_dump(
        {"kind": "DaemonSet", "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/flannel-io/flannel:v0.27.4"}]}}}}
    ).encode()


def _chart_archive(tmp: Path) -> bytes:
    from tools.nodes.sourcebundle import pack_chart

    archive = tmp / "traefik-41.3.0.tgz"
    pack_chart(reference_file("traefik/chart-41.3.0"), archive)
    return archive.read_bytes()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The mirror (release files, checksum files, chart repository) and the registry (every image)."""
    root = tmp_path_factory.mktemp("fill")
    mirror = root / "mirror"
    cfg = _cfg()
    contents = bundle_contents(cfg)
    for name, item in contents.node_files.items():
        data = _flannel() if name == "cni-manifest" else hashlib.sha256(item.url.encode()).digest() * 1000
        target = mirror / item.path.removeprefix("files/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if item.checksum_url:
            digest = hashlib.sha256(data).hexdigest()
            listing = mirror / item.checksum_url.split("://", 1)[1]
            if name == "runc":  # upstream's list of every asset
                listing.write_text(f"{'0' * 64}  runc.arm64\n{digest}  {item.name}\n")
            elif name == "kubelet" or name in ("kubeadm", "kubectl"):
                listing.write_text(f"{digest}\n")
            else:
                listing.write_text(f"{digest}  {item.name}\n")
    metallb = mirror / "raw.githubusercontent.com/metallb/metallb/v0.14.9/config/manifests/metallb-native.yaml"
    metallb.parent.mkdir(parents=True, exist_ok=True)
    metallb.write_bytes(reference_file("metallb/metallb-native-v0.14.9.yaml").read_bytes())
    chart = _chart_archive(root)
    repo = mirror / "traefik.github.io/charts"
    repo.mkdir(parents=True)
    (repo / "traefik-41.3.0.tgz").write_bytes(chart)
    (repo / "index.yaml").write_text(
        yaml.safe_dump(
            {"apiVersion": "v1", "entries": {"traefik": [{"version": "41.3.0", "urls": ["traefik-41.3.0.tgz"], "digest": hashlib.sha256(chart).hexdigest()}]}}
        )
    )
    netns = LoopbackNetns()
    handler = type("Handler", (MirrorHandler,), {"cut_once": set(), "ranges": []})
    with netns.inside():
        registry = LoopbackRegistry(REGISTRY, root / "registry").start()
        http_port = free_port()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), lambda *a: handler(*a, directory=str(mirror)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        # Every image the stack needs, under its own name: a one-file layer each.
        located = {
            "metallb.manifest": metallb,
            "ingress.manifest": reference_file("traefik/chart-41.3.0"),
            "kubernetes.cni": mirror / contents.node_files["cni-manifest"].path.removeprefix("files/"),
        }
        images, _ = contents.all_images(lambda s: located.get(s.key))
        for image in images:
            layer = oci.Blob.of(oci.layer_from_files([("who", image.ref.name.encode(), 0o644)]))
            archive = root / "push.tar"
            oci.built_image(image.ref.name, [layer]).write(archive)
            registry.push_archive(archive)
    try:
        yield {"cfg": cfg, "netns": netns, "mirror": f"http://127.0.0.1:{http_port}", "registry": registry, "root": mirror, "handler": handler, "images": images}
    finally:
        with netns.inside():
            server.shutdown()
            registry.stop()
        netns.close()


def _fill(servers, bundle: Bundle):
    with servers["netns"].inside():
        return fill(
            bundle_contents(servers["cfg"]),
            bundle,
            arch="amd64",
            progress=Progress(io.StringIO()),
            mirror=servers["mirror"],
            registry_for=Registry.mirror(servers["registry"].url),
        )


def test_a_fill_fetches_everything_the_stack_needs_and_checks_it(servers, tmp_path):
    bundle = Bundle(tmp_path)
    report = _fill(servers, bundle)
    assert missing_from_bundle(servers["cfg"], tmp_path) == []
    assert report.fetched == len(bundle.entries) and report.kept == 0
    for image in servers["images"]:
        assert oci.archive_names(bundle.file(image.ref.archive)) == [image.ref.name]
    kubelet = bundle.entries["files/dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubelet"]
    assert kubelet.origin == "https://dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubelet"  # recorded by upstream URL
    assert kubelet.sha256 == hashlib.sha256(bundle.file(kubelet.path).read_bytes()).hexdigest()
    # Idempotent: a second fill fetches nothing.
    again = _fill(servers, Bundle(tmp_path))
    assert (again.fetched, again.kept) == (0, len(bundle.entries))


def test_a_filled_bundle_served_over_http_is_a_mirror_another_fill_checks_against(servers, tmp_path):
    # README: "a bundle's files/ directory served over HTTP is one": with upstream's checksum files
    # beside the files, in upstream's layout, or a fill from it would find no SHA-256 to check.
    first = Bundle(tmp_path / "first")
    _fill(servers, first)
    downloads = list(bundle_contents(servers["cfg"]).node_files.values())
    assert [d.name for d in downloads if d.checksum_path and not first.file(d.checksum_path).is_file()] == []
    second, third = Bundle(tmp_path / "second"), Bundle(tmp_path / "third")
    kubelet = next(d for d in downloads if d.name == "kubelet")
    with servers["netns"].inside():
        port = free_port()
        served = first.root / "files"
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), lambda *a: MirrorHandler(*a, directory=str(served)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for item in downloads:
                fetch_download(item, second, Progress(io.StringIO()), mirror=f"http://127.0.0.1:{port}")
            # A file changed on the way is refused against the checksum the first bundle serves.
            first.file(kubelet.path).write_bytes(b"not the kubelet")
            with pytest.raises(FillError, match="kubelet: SHA-256 .* is not the published"):
                fetch_download(kubelet, third, Progress(io.StringIO()), mirror=f"http://127.0.0.1:{port}")
        finally:
            server.shutdown()
            server.server_close()
    for item in downloads:
        assert second.entries[item.path].sha256 == first.entries[item.path].sha256, item.name


def test_a_file_that_does_not_match_its_published_checksum_is_refused_by_name(servers, tmp_path):
    target = servers["root"] / "dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubectl"
    original = target.read_bytes()
    target.write_bytes(b"tampered" + original[8:])
    try:
        with pytest.raises(FillError, match=r"kubectl: SHA-256 [0-9a-f]{64} is not the published"):
            _fill(servers, Bundle(tmp_path))
    finally:
        target.write_bytes(original)
    assert "files/dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubectl" not in Bundle(tmp_path).entries
    assert not (tmp_path / "files/dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubectl").exists()


def test_a_cut_off_download_continues_where_it_stopped(servers, tmp_path):
    path = "/github.com/containerd/containerd/releases/download/v2.1.4/containerd-2.1.4-linux-amd64.tar.gz"
    servers["handler"].cut_once.add(path)
    with pytest.raises(FillError, match="containerd-2.1.4-linux-amd64.tar.gz: .* cut off"):
        _fill(servers, Bundle(tmp_path))
    report = _fill(servers, Bundle(tmp_path))
    assert any(p == path and r.startswith("bytes=") and r != "bytes=0-" for p, r in servers["handler"].ranges)
    assert missing_from_bundle(servers["cfg"], tmp_path) == []
    assert report.kept > 0  # what the first attempt finished is not fetched again
