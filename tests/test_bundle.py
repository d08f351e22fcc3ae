"""The offline bundle: what a stack fetches (derived from its config), what a bundle must hold, and
what the program does with one (manifests from it, node files and images from it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.bundle import oci, software
from components.bundle.contents import CONTROL_PLANE, Chart, NodeImage, bundle_contents
from components.bundle.images import ImageRef, images_of_manifest, traefik_chart_images
from components.bundle.plan import NODE_BUNDLE, missing_from_bundle, node_plan
from components.bundle.store import Bundle
from components.config import parse
from harness import DELETE, reference_file, run_program, set_path, stack_config
from labruns import COMMAND, CONFIGFILE, CHART

# -- image references ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, name",
    [
        ("redis:alpine", "docker.io/library/redis:alpine"),
        ("docker.io/traefik:v3.7.11", "docker.io/library/traefik:v3.7.11"),
        ("quay.io/metallb/speaker:v0.14.9", "quay.io/metallb/speaker:v0.14.9"),
        ("localhost:5000/x/y:1", "localhost:5000/x/y:1"),
        (
            "registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:" + "a" * 64,
            "registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:" + "a" * 64,
        ),
    ],
)
def test_image_references_are_named_as_containerd_stores_them(text, name):
    assert ImageRef.parse(text).name == name


def test_an_image_without_tag_or_digest_cannot_be_bundled():
    with pytest.raises(ValueError, match="names no tag or digest"):
        ImageRef.parse("busybox")


def test_archive_paths_keep_tag_and_digest_apart():
    ref = ImageRef.parse("busybox:1.38.0@sha256:" + "f" * 64)
    assert ref.archive == f"images/docker.io/library/busybox/1.38.0@sha256-{'f' * 64}.tar"
    assert ref.reference == "sha256:" + "f" * 64  # a pinned digest is what the registry is asked for


# -- contents, from the stack -------------------------------------------------------------------


def _cfg(stack: str = "lab", **overrides):
    config = stack_config(stack)
    for path, value in overrides.items():
        set_path(config, path, value)
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("k8s-lab:")}
    return parse(raw, stack=stack)


def test_the_seed_lab_fetches_the_pinned_release_files():
    files = dict(bundle_contents(_cfg()).files())
    assert "files/dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubelet" in files
    assert "files/github.com/containerd/containerd/releases/download/v2.1.4/containerd-2.1.4-linux-amd64.tar.gz" in files
    assert "files/github.com/flannel-io/flannel/releases/download/v0.27.4/kube-flannel.yml" in files
    assert "files/raw.githubusercontent.com/metallb/metallb/v0.14.9/config/manifests/metallb-native.yaml" in files
    assert files["files/dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubelet"].checksum_url.endswith("/kubelet.sha256")


def test_kubeadm_images_follow_the_kubernetes_version():
    images = {i.ref.name: i for i in bundle_contents(_cfg(**{"kubernetes.version": "1.35.4"})).images}
    assert "registry.k8s.io/kube-apiserver:v1.35.4" in images
    assert "registry.k8s.io/etcd:3.6.6-0" in images and images["registry.k8s.io/etcd:3.6.6-0"].where == CONTROL_PLANE
    assert "registry.k8s.io/coredns/coredns:v1.13.1" in images


def test_an_existing_cluster_fetches_no_node_files():
    contents = bundle_contents(_cfg(nodes=DELETE, vagrant=DELETE, cluster={"render_yaml_to_directory": "/tmp/out"}, self_check={"enabled": False}, **{"network.interface": "eth1"}))
    assert contents.node_files == {}
    assert not any(i.source.startswith("kubeadm") for i in contents.images)


def _reference_located(contents, extra=None):
    mapping = {
        "metallb.manifest": reference_file("metallb/metallb-native-v0.14.9.yaml"),
        "ingress.manifest": reference_file("ingress-nginx/deploy-cloud-controller-v1.15.1.yaml"),
        "app_options.argocd.manifest": reference_file("argocd/install-v3.5.1.yaml"),
        "app_options.online-boutique.manifest": reference_file("online-boutique/kubernetes-manifests-v0.10.6.yaml"),
        **(extra or {}),
    }
    return lambda source: mapping.get(source.key)


def test_every_image_a_manifest_references_is_in_the_bundle_under_that_name():
    cfg = _cfg(apps=["demo", "argocd", "online-boutique"])
    contents = bundle_contents(cfg)
    located = _reference_located(contents)
    images, pending = contents.all_images(located)
    names = {i.ref.name for i in images}
    for source in contents.sources:
        path = located(source)
        if path is None:
            continue
        for text in images_of_manifest(path):
            assert ImageRef.parse(text).name in names, f"{text} of {source.what} is not in the bundle"
    assert {s.key for s in pending} == {"kubernetes.cni"}  # not among the reference copies
    assert "docker.io/library/redis:alpine" in names  # Online Boutique's unqualified name, normalised


def test_traefik_image_comes_from_the_chart_version():
    assert traefik_chart_images(reference_file("traefik/chart-41.3.0")) == ["docker.io/traefik:v3.7.11"]
    assert traefik_chart_images(reference_file("traefik/chart-37.4.0")) == ["docker.io/traefik:v3.6.2"]
    contents = bundle_contents(_cfg(**{"ingress.controller": "traefik"}))
    (source,) = [s for s in contents.sources if s.key == "ingress.manifest"]
    assert source.origin == Chart("https://traefik.github.io/charts", "traefik", "41.3.0")


def test_docker_nodes_bundle_their_file_system():
    contents = bundle_contents(_cfg(vagrant={"provider": "docker"}))
    assert contents.node_image == NodeImage("k8s-lab/node:bookworm")
    assert ("node-image/k8s-lab_node_bookworm.tar", contents.node_image) in contents.files()


# -- a bundle on disk, and the program using it ---------------------------------------------------


def _fake_bundle(root: Path, cfg, *, skip: str = "") -> Bundle:
    """A bundle holding a stand-in file for every entry of ``cfg``'s contents (except ``skip``):
    the manifests are the reference copies (their images are read), everything else is bytes."""
    bundle = Bundle(root)
    contents = bundle_contents(cfg)
    sources = {s.path: s for s in contents.sources if s.path}
    for path, _ in contents.files():
        target = bundle.file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = sources.get(path)
        if source is not None and source.key == "metallb.manifest":
            target.write_bytes(reference_file("metallb/metallb-native-v0.14.9.yaml").read_bytes())
        elif source is not None and source.key == "ingress.manifest":
            target.write_bytes(reference_file("ingress-nginx/deploy-cloud-controller-v1.15.1.yaml").read_bytes())
        elif source is not None and source.key == "kubernetes.cni":
            target.write_text("kind: DaemonSet\nspec: {template: {spec: {containers: [{image: ghcr.io/flannel-io/flannel:v0.27.4}]}}}\n")
        else:
            target.write_bytes(path.encode())
        if path != skip:
            bundle.record(path, "test")
    images, pending = contents.all_images(lambda s: bundle.file(s.path) if s.path and bundle.has(s.path) else None)
    assert not pending
    for image in images:
        if image.ref.archive == skip:
            continue
        target = bundle.file(image.ref.archive)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image.ref.name.encode())
        bundle.record(image.ref.archive, "test", image=image.ref.name)
    return bundle


def test_a_complete_bundle_has_nothing_missing(tmp_path):
    cfg = _cfg()
    _fake_bundle(tmp_path, cfg)
    assert missing_from_bundle(cfg, tmp_path) == []


def test_a_bundle_lacking_an_image_is_one_problem_naming_it_and_the_fill_command(tmp_path):
    cfg = _cfg()
    _fake_bundle(tmp_path, cfg, skip="images/quay.io/metallb/speaker/v0.14.9.tar")
    problems = _offline_problems(tmp_path)
    assert list(problems) == ["offline.bundle"]
    assert "lacks 1 of this stack's files and images (images/quay.io/metallb/speaker/v0.14.9.tar)" in problems["offline.bundle"]
    assert "./lab bundle fill" in problems["offline.bundle"]


def test_a_missing_bundle_says_how_to_fill_it(tmp_path):
    problems = _offline_problems(tmp_path / "nothing")
    assert problems["offline.bundle"].endswith("holds no bundle (no bundle.json); fill it with `./lab bundle fill`")


def _offline_problems(root: Path) -> dict[str, str]:
    from components.config import ConfigError

    config = stack_config("lab")
    set_path(config, "offline.bundle", str(root))
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("k8s-lab:")}
    with pytest.raises(ConfigError) as caught:
        parse(raw, stack="lab")
    return {p.path: p.message for p in caught.value.problems}


def test_offline_nodes_get_their_files_and_images_from_the_bundle(tmp_path):
    bundle = _fake_bundle(tmp_path, _cfg())
    run = run_program("lab", {"offline.bundle": str(tmp_path)})
    prepare = run.named("lab-k8s-w1-prepare")
    env = prepare.inputs["environment"]
    assert env["BUNDLE"] == NODE_BUNDLE
    files = {line.split()[0]: line.split() for line in env["NODE_FILES"].splitlines()}
    kubelet = "files/dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubelet"
    assert files["kubelet"][1] == kubelet and files["kubelet"][4] == bundle.entries[kubelet].sha256
    # The VM gets exactly the bundle files it needs, with their sizes (scripts/vagrant.sh copies them).
    uploads = dict(reversed(line.split()) for line in env["K8S_LAB_BUNDLE_FILES"].splitlines())
    assert uploads[kubelet] == str(bundle.entries[kubelet].size)
    assert "images/registry.k8s.io/kube-apiserver/v1.36.1.tar" not in uploads  # a worker's share only
    assert env["K8S_LAB_BUNDLE"] == str(tmp_path)


def test_what_a_node_installs_reruns_preparation_in_place_and_rebuilds_nothing(tmp_path):
    _fake_bundle(tmp_path, _cfg())
    online = run_program("lab", {})
    offline = run_program("lab", {"offline.bundle": str(tmp_path)})
    for node in ("k8s-cp", "k8s-w1"):
        before, after = online.named(f"lab-{node}-prepare"), offline.named(f"lab-{node}-prepare")
        assert before.inputs["environment"]["NODE_FILES"] != after.inputs["environment"]["NODE_FILES"]
        # Same triggers: pulumi-command re-runs create in place; the VM, init and joins stay.
        assert before.inputs["triggers"] == after.inputs["triggers"]


def test_offline_manifests_and_charts_come_from_the_bundle(tmp_path):
    _fake_bundle(tmp_path, _cfg())
    run = run_program("lab", {"offline.bundle": str(tmp_path)})
    install = run.one(CONFIGFILE, "lab-metallb-install")
    assert install.inputs["file"] == str(tmp_path / "files/raw.githubusercontent.com/metallb/metallb/v0.14.9/config/manifests/metallb-native.yaml")


def test_a_given_local_manifest_wins_over_the_bundle(tmp_path):
    _fake_bundle(tmp_path, _cfg())
    given = reference_file("metallb/metallb-native-v0.14.9.yaml")
    run = run_program("lab", {"offline.bundle": str(tmp_path), "metallb.manifest": str(given)})
    assert run.one(CONFIGFILE, "lab-metallb-install").inputs["file"] == str(given)


# -- archives -----------------------------------------------------------------------------------


def test_an_image_archive_names_its_image_for_containerd_and_docker(tmp_path):
    layer = oci.Blob.of(oci.layer_from_files([("pause", b"\x7fELF", 0o755)]))
    archive = oci.built_image("registry.k8s.io/pause:3.10.2", [layer], entrypoint=["/pause"])
    path = tmp_path / "pause.tar"
    archive.write(path)
    assert oci.archive_names(path) == ["registry.k8s.io/pause:3.10.2"]
    import tarfile

    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))
        docker = json.load(tar.extractfile("manifest.json"))
        manifest_blob = tar.extractfile(oci.blob_path(index["manifests"][0]["digest"])).read()
        assert oci.digest_of(manifest_blob) == index["manifests"][0]["digest"]  # content-addressed, as containerd checks
        config = json.loads(tar.extractfile(docker[0]["Config"]).read())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "3.10.2"
    assert docker[0]["RepoTags"] == ["registry.k8s.io/pause:3.10.2"]
    assert config["config"]["Entrypoint"] == ["/pause"] and config["rootfs"]["diff_ids"] == [layer.digest]


def test_the_kubeadm_image_table_covers_every_supported_minor():
    from components.config.defaults import OLDEST_SUPPORTED_KUBERNETES_MINOR, DEFAULT_KUBERNETES_VERSION

    newest = int(DEFAULT_KUBERNETES_VERSION.split(".")[1])
    for minor in range(OLDEST_SUPPORTED_KUBERNETES_MINOR, newest + 1):
        assert set(software.kubeadm_images(f"1.{minor}.0")) == {
            "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "pause", "etcd", "coredns",
        }  # fmt: skip
