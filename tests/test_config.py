"""The stack config contract: the seed's lab loads, and every bad input fails cleanly.

Each bad config runs the whole program under mocks and must raise ConfigError naming the key
path, saying what is wrong, and registering nothing.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from components import config as lab_config
from harness import DELETE, ROOT, TEST_KUBECONFIG, run_program, stack_config

CONFIGFILE = "kubernetes:yaml/v2:ConfigFile"
CHART = "kubernetes:helm.sh/v4:Chart"
TRAEFIK = {"ingress.controller": "traefik"}


def fails(overrides, stack="lab", **kwargs) -> lab_config.ConfigError:
    with pytest.raises(lab_config.ConfigError) as caught:
        run_program(stack, overrides, **kwargs)
    assert caught.value.registered == [], "resources were registered before the config error"
    return caught.value


def problem(err: lab_config.ConfigError, path: str) -> str:
    matches = [p.message for p in err.problems if p.path == path]
    assert matches, f"no problem at {path}; got {[str(p) for p in err.problems]}"
    return " | ".join(matches)


def test_seed_lab_loads_as_typed_frozen_config():
    raw = {k.split(":", 1)[1]: v for k, v in __import__("harness").stack_config("lab").items() if k.startswith("k8s-lab:")}
    cfg = lab_config.parse(raw, stack="lab")
    assert [n.name for n in cfg.nodes] == ["k8s-cp", "k8s-w1", "k8s-w2"]
    assert [n.ip for n in cfg.nodes] == [IPv4Address(f"192.168.56.{i}") for i in (10, 11, 12)]
    assert cfg.control_plane.name == "k8s-cp"
    assert cfg.metallb.version == "0.14.9"
    assert cfg.metallb.pools[0].name == "lab-pool"
    assert [str(r) for r in cfg.metallb.pools[0].addresses] == ["192.168.56.200-192.168.56.250"]
    assert cfg.metallb.pools[0].size == 51
    assert cfg.metallb.l2_advertisements[0].name == "lab-l2"
    assert cfg.metallb.l2_advertisements[0].pools == ("lab-pool",)
    assert cfg.ingress.controller == "ingress-nginx" and cfg.ingress.ip == IPv4Address("192.168.56.200")
    assert cfg.domain == "lab.local" and cfg.apps == ("demo",)
    assert cfg.hostnames == ("app.lab.local",)
    with pytest.raises(Exception):
        cfg.nodes[0].ip = "192.168.56.99"  # frozen


def test_seed_stack_evaluates_under_mocks_with_its_outputs():
    run = run_program("lab")
    assert run.outputs["node_ips"] == {"k8s-cp": "192.168.56.10", "k8s-w1": "192.168.56.11", "k8s-w2": "192.168.56.12"}
    assert run.outputs["etc_hosts"] == "192.168.56.200 app.lab.local"
    assert any("/etc/hosts" not in w and ".local" in w for w in run.warnings)  # the mDNS hint


BAD = [
    # (id, overrides, path, words the message must contain)
    ("typo-top-level", {"metalb": {"version": "0.14.9"}}, "metalb", ["unknown key", "metallb"]),
    ("typo-nested", {"metallb.pools[0].adresses": ["192.168.56.200-192.168.56.210"]}, "metallb.pools[0].adresses", ["unknown key", "addresses"]),
    ("typo-node", {"nodes[1].memory": 2048}, "nodes[1].memory", ["unknown key", "memory_mb"]),
    ("bad-ip", {"nodes[0].ip": "192.168.56.300"}, "nodes[0].ip", ["not an IPv4 address"]),
    ("ipv6-node", {"nodes[0].ip": "fd00::10"}, "nodes[0].ip", ["IPv6"]),
    ("bad-cidr", {"network.cidr": "192.168.56.0"}, "network.cidr", ["not a CIDR", "/24"]),
    ("host-bits", {"network.cidr": "192.168.56.1/24"}, "network.cidr", ["host bits", "192.168.56.0/24"]),
    ("bad-range", {"metallb.pools[0].addresses[0]": "192.168.56.200-192.168.56"}, "metallb.pools[0].addresses[0]", ["not an IPv4 address"]),
    ("reversed-range", {"metallb.pools[0].addresses[0]": "192.168.56.250-192.168.56.200"}, "metallb.pools[0].addresses[0]", ["reversed", "192.168.56.200-192.168.56.250"]),
    ("pool-outside-network", {"metallb.pools[0].addresses[0]": "192.168.57.200-192.168.57.250", "ingress.ip": DELETE}, "metallb.pools[0].addresses[0]", ["not inside network.cidr", "192.168.56.0/24"]),
    ("pool-over-node", {"metallb.pools[0].addresses[0]": "192.168.56.11-192.168.56.30", "ingress.ip": DELETE}, "metallb.pools[0].addresses[0]", ["192.168.56.11", "k8s-w1"]),
    ("pool-over-laptop", {"metallb.pools[0].addresses[0]": "192.168.56.1-192.168.56.5", "ingress.ip": DELETE}, "metallb.pools[0].addresses[0]", ["laptop"]),
    (
        "pool-over-pool",
        {"metallb.pools[1]": {"name": "second", "addresses": ["192.168.56.240/28"]}},
        "metallb.pools[1].addresses[0]",
        ["overlaps metallb.pools[0]", "lab-pool"],
    ),
    ("duplicate-node-name", {"nodes[2].name": "k8s-w1"}, "nodes[2].name", ["k8s-w1", "unique"]),
    ("duplicate-node-ip", {"nodes[2].ip": "192.168.56.11"}, "nodes[2].ip", ["192.168.56.11", "nodes[1]"]),
    ("node-outside-network", {"nodes[2].ip": "192.168.60.12"}, "nodes[2].ip", ["outside network.cidr"]),
    ("no-control-plane", {"nodes[0].role": "worker"}, "nodes", ["control-plane"]),
    ("bad-role", {"nodes[0].role": "master"}, "nodes[0].role", ["'master'", "control-plane"]),
    ("no-nodes", {"nodes": []}, "nodes", ["no nodes", "cluster.kubeconfig"]),
    ("nodes-key-absent", {"nodes": DELETE}, "nodes", ["no nodes"]),
    ("unknown-l2-pool", {"metallb.l2_advertisements[0].pools[0]": "lab-pol"}, "metallb.l2_advertisements[0].pools[0]", ["'lab-pol'", "did you mean 'lab-pool'"]),
    ("ingress-ip-outside-pools", {"ingress.ip": "192.168.56.100"}, "ingress.ip", ["outside every MetalLB pool"]),
    ("bad-k8s-version", {"kubernetes.version": "1.36"}, "kubernetes.version", ["MAJOR.MINOR.PATCH"]),
    ("v-prefixed-version", {"metallb.version": "v0.14.9"}, "metallb.version", ["drop the leading 'v'"]),
    ("ancient-metallb", {"metallb.version": "0.12.1"}, "metallb.version", ["0.13.6"]),
    ("bad-ingress-version", {"ingress.version": "latest"}, "ingress.version", ["MAJOR.MINOR.PATCH"]),
    (
        "too-many-load-balancers",
        {
            "metallb.pools[0].addresses": ["192.168.56.200/32"],
            "apps": ["demo", "online-boutique"],
            "app_options": {"online-boutique": {"frontend_external": True}},
        },
        "metallb.pools",
        ["needs 2 LoadBalancer IPs", "frontend-external", "hold 1"],
    ),
    ("calico-default-pod-cidr", {"kubernetes.pod_cidr": "192.168.0.0/16"}, "kubernetes.pod_cidr", ["overlaps the host-only network", "Calico"]),
    ("service-cidr-over-network", {"kubernetes.service_cidr": "192.168.56.0/24"}, "kubernetes.service_cidr", ["overlaps"]),
    ("pod-over-service", {"kubernetes.pod_cidr": "10.96.0.0/16"}, "kubernetes.service_cidr", ["overlaps kubernetes.pod_cidr"]),
    ("cp-one-cpu", {"nodes[0].cpus": 1}, "nodes[0].cpus", ["kubeadm", "2"]),
    ("cp-low-memory", {"nodes[0].memory_mb": 1024}, "nodes[0].memory_mb", ["kubeadm", "1700"]),
    ("cpus-not-a-number", {"nodes[0].cpus": "two"}, "nodes[0].cpus", ["whole number", "'two'"]),
    (
        "control-plane-only",
        {"nodes": [{"name": "k8s-cp", "role": "control-plane", "ip": "192.168.56.10", "cpus": 2, "memory_mb": 4096}]},
        "nodes",
        ["only node is the control plane", "exclude-from-external-load-balancers", "Add a worker"],
    ),
    ("no-pools", {"metallb.pools": [], "metallb.l2_advertisements": [{"name": "lab-l2"}], "ingress.ip": DELETE}, "metallb.pools", ["no pools", "<pending>"]),
    ("no-l2", {"metallb.l2_advertisements": []}, "metallb.l2_advertisements", ["never announced"]),
    ("bad-provider", {"vagrant.provider": "hyperv"}, "vagrant.provider", ["'hyperv'", "virtualbox"]),
    ("unknown-app", {"apps": ["demo", "grafna"]}, "apps[1]", ["'grafna'", "grafana"]),
    ("bad-domain", {"domain": "lab"}, "domain", ["two labels"]),
    ("network-missing", {"network": DELETE}, "network.cidr", ["required"]),
    ("bad-node-name", {"nodes[1].name": "K8S_W1"}, "nodes[1].name", ["host name"]),
    ("bad-pool-name", {"metallb.pools[0].name": "Lab Pool"}, "metallb.pools[0].name", ["object name"]),
    ("missing-metallb-manifest", {"metallb.manifest": "offline/metallb-native.yaml"}, "metallb.manifest", ["is not a file"]),
    ("bad-interface", {"network.interface": "eth 1"}, "network.interface", ["interface name"]),
    ("program-owned-key", {"stack": "other"}, "stack", ["set by the program"]),
    # kubeadm would refuse these, or the nodes' apt would find no repository
    ("k8s-before-v1beta4", {"kubernetes.version": "1.30.5"}, "kubernetes.version", ["v1beta4", "1.31.0 or newer"]),
    ("k8s-leading-zero", {"kubernetes.version": "1.036.1"}, "kubernetes.version", ["MAJOR.MINOR.PATCH", "no leading zeros: 1.36.1"]),
    ("service-cidr-too-large", {"kubernetes.service_cidr": "10.0.0.0/8"}, "kubernetes.service_cidr", ["too large", "/12"]),
    ("service-cidr-too-small", {"kubernetes.service_cidr": "10.96.0.0/29"}, "kubernetes.service_cidr", ["too small", "tenth"]),
    ("pod-cidr-smaller-than-a-node", {"kubernetes.pod_cidr": "10.244.0.0/25"}, "kubernetes.pod_cidr", ["holds 0 node ranges of /24", "3 nodes", "/22"]),
    ("pod-cidr-one-node", {"kubernetes.pod_cidr": "10.244.0.0/24"}, "kubernetes.pod_cidr", ["holds 1 node range of /24", "3 nodes"]),
    # MetalLB would assign an IP that nobody announces
    (
        "ingress-pool-unannounced",
        {"metallb.pools[1]": {"name": "other", "addresses": ["192.168.56.100-192.168.56.110"]}, "metallb.l2_advertisements[0].pools": ["other"]},
        "metallb.l2_advertisements",
        ["'lab-pool'", "ingress.ip 192.168.56.200", "nobody would answer ARP"],
    ),
    (
        "auto-pools-unannounced",
        {"ingress.ip": DELETE, "metallb.pools[0].auto_assign": False,
         "metallb.pools[1]": {"name": "other", "addresses": ["192.168.56.100-192.168.56.110"]},
         "metallb.l2_advertisements[0].pools": ["lab-pool"]},
        "metallb.l2_advertisements",
        ["auto_assign", "ingress controller's IP"],
    ),
    ("interfaces-empty", {"metallb.l2_advertisements[0].interfaces": []}, "metallb.l2_advertisements[0].interfaces", ["every interface", "NAT", "remove the key"]),
    ("hostname-too-long", {"domain": ".".join(["a" * 63] * 3 + ["b" * 57]), "apps": ["demo", "online-boutique"]}, "domain", ["boutique.", "258 characters", "253"]),
    ("domain-too-long", {"domain": ".".join(["a" * 63] * 4)}, "domain", ["255 characters", "253"]),
    # domains that validate as DNS names but no browser would open
    ("domain-ends-in-a-number", {"domain": "lab.123"}, "domain", ["ends in a number", "IPv4", "lab.test"]),
    ("domain-ends-in-a-hex-number", {"domain": "lab.0x1f"}, "domain", ["ends in a number", "IPv4"]),
    ("domain-under-localhost", {"domain": "lab.localhost"}, "domain", ["*.localhost", "loopback", "/etc/hosts", "lab.test"]),
    ("internationalised-domain", {"domain": "läb.test"}, "domain", ["internationalised", "xn--lb-via.test"]),
    # messages: what is wrong, and only that
    ("pools-as-mapping", {"metallb.pools": {"lab-pool": {"addresses": ["192.168.56.200-192.168.56.250"]}}}, "metallb.pools", ["expected a list", "a mapping"]),
    ("nodes-as-mapping", {"nodes": {"k8s-cp": {"role": "control-plane", "ip": "192.168.56.10"}}}, "nodes", ["expected a list"]),
    ("memory-with-unit", {"nodes[1].memory_mb": "4G"}, "nodes[1].memory_mb", ["whole number", "megabytes", "4096"]),
    ("memory-with-mi", {"nodes[1].memory_mb": "3584Mi"}, "nodes[1].memory_mb", ["write 3584"]),
    ("cpus-boolean", {"nodes[1].cpus": True}, "nodes[1].cpus", ["whole number", "true"]),
    ("timeout-boolean", {"self_check.timeout_seconds": True}, "self_check.timeout_seconds", ["whole number", "true"]),
]


@pytest.mark.parametrize("overrides,path,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_fails_before_anything_is_registered(overrides, path, words):
    err = fails(overrides)
    message = problem(err, path)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert str(err).startswith("the k8s-lab stack configuration has")
    assert f"{path}: " in str(err)
    assert not isinstance(err, (KeyError, TypeError))


@pytest.mark.parametrize("domain", ["bücher.example", "lab.テスト", "Läb.Test."])
def test_an_internationalised_domain_is_refused_with_its_ascii_form_which_works(domain):
    message = problem(fails({"domain": domain}), "domain")
    suggested = message.rsplit(" ", 1)[1]
    # The standard library's IDNA codec as the yardstick: the name browsers look up.
    assert suggested == domain.lower().rstrip(".").encode("idna").decode()
    assert run_program("lab", {"domain": suggested}).outputs["hostnames"] == [f"app.{suggested}"]


def test_the_problem_list_is_the_runs_one_error_and_the_program_ends_quietly():
    # pulumi-language-python-exec exits 1 after a RunError, and the CLI then adds "an unhandled
    # error occurred"; exit code 32 tells it the user has been shown the message already.
    err = fails({"nodes[2].ip": "192.168.56.11", "ingress.ip": "192.168.56.100"})
    errors = [message for level, message in err.logged if level >= logging.ERROR]
    assert errors == [str(err)]
    assert err.exit_code == 32


def _lab_preview_with_stack_config(tmp_path, config: dict) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`./lab preview` in a copy of the project whose stack file holds ``config``, with a stand-in
    Pulumi CLI that lists that file's config as `pulumi config --json` does and records every call."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("lab", "Pulumi.yaml", "requirements.txt", "requirements-dev.txt"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "components", project / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".venv").symlink_to(ROOT / ".venv")
    (project / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    lister = tmp_path / "list_config.py"
    lister.write_text(
        "import json, sys, yaml\n"
        "config = yaml.safe_load(open(sys.argv[1]))['config']\n"
        "print(json.dumps({k: {'value': v if isinstance(v, str) else json.dumps(v),"
        " **({} if isinstance(v, str) else {'objectValue': v}), 'secret': False} for k, v in config.items()}))\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pulumi = bin_dir / "pulumi"
    pulumi.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >>{tmp_path}/calls\n'
        f'echo "$KUBECONFIG" >>{tmp_path}/kubeconfigs\n'
        'case "$*" in\n'
        f"  'config --stack lab --json --show-secrets') {sys.executable} {lister} Pulumi.lab.yaml ;;\n"
        "esac\n"
    )
    pulumi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "K8S_LAB_STACK": "lab",
           "PULUMI_BACKEND_URL": f"file://{tmp_path}", "PULUMI_CONFIG_PASSPHRASE": "test"}  # fmt: skip
    result = subprocess.run(["bash", str(project / "lab"), "preview"], env=env, capture_output=True, text=True, timeout=60)
    return result, (tmp_path / "calls").read_text().splitlines()


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="./lab checks the config with .venv, which ./lab test creates")
def test_lab_preview_of_an_invalid_config_ends_with_the_problem_list_alone(tmp_path):
    config = stack_config("lab")
    config["k8s-lab:nodes"][2]["ip"] = "192.168.56.11"
    result, calls = _lab_preview_with_stack_config(tmp_path, config)
    assert result.returncode == 1
    assert result.stderr.rstrip().splitlines()[-1].startswith("  - nodes[2].ip: 192.168.56.11 is also the IP of nodes[1]")
    assert not any(call.startswith("preview") for call in calls), calls


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="./lab checks the config with .venv, which ./lab test creates")
def test_lab_preview_of_a_valid_config_goes_on_to_pulumi(tmp_path):
    result, calls = _lab_preview_with_stack_config(tmp_path, stack_config("lab"))
    assert result.returncode == 0, result.stderr
    assert calls[-1].startswith("preview --stack lab"), calls


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="./lab checks the config with .venv, which ./lab test creates")
def test_lab_checks_the_config_again_only_when_the_stack_file_changed(tmp_path):
    result, calls = _lab_preview_with_stack_config(tmp_path, stack_config("lab"))
    assert result.returncode == 0, result.stderr
    again = subprocess.run(["bash", str(tmp_path / "project" / "lab"), "preview"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "K8S_LAB_STACK": "lab",
                                "PULUMI_BACKEND_URL": f"file://{tmp_path}", "PULUMI_CONFIG_PASSPHRASE": "test"})  # fmt: skip
    assert again.returncode == 0, again.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    checks = [c for c in calls if c.startswith("config --stack lab --json")]
    assert len(checks) == 1, calls  # the warm run skipped it
    assert calls[-1].startswith("preview --stack lab")


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="./lab checks the config with .venv, which ./lab test creates")
def test_lab_runs_pulumi_with_an_empty_kubeconfig_whatever_the_shell_has(tmp_path, monkeypatch):
    # Render mode gives the provider no kubeconfig; pulumi-kubernetes would then ask the cluster
    # of the shell's KUBECONFIG (or ~/.kube/config) for /version and /openapi/v2.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "users-cluster"))
    _lab_preview_with_stack_config(tmp_path, stack_config("lab"))
    assert set((tmp_path / "kubeconfigs").read_text().split()) == {"/dev/null"}


def test_all_problems_are_reported_together():
    err = fails({"nodes[2].ip": "192.168.56.11", "kubernetes.pod_cidr": "192.168.0.0/16", "ingress.ip": "192.168.56.100"})
    assert {"nodes[2].ip", "kubernetes.pod_cidr", "ingress.ip"} <= set(err.paths())


def test_virtualbox_network_outside_default_range_is_a_warning_naming_networks_conf():
    run = run_program(
        "lab",
        {
            "network.cidr": "10.20.0.0/24",
            "nodes[0].ip": "10.20.0.10",
            "nodes[1].ip": "10.20.0.11",
            "nodes[2].ip": "10.20.0.12",
            "metallb.pools[0].addresses": ["10.20.0.200-10.20.0.250"],
            "ingress.ip": "10.20.0.200",
        },
    )
    assert any("/etc/vbox/networks.conf" in w and "10.20.0.0/24" in w for w in run.warnings)
    run = run_program("lab", {"network.cidr": "10.20.0.0/24", "vagrant.provider": "libvirt", "nodes[0].ip": "10.20.0.10",
                              "nodes[1].ip": "10.20.0.11", "nodes[2].ip": "10.20.0.12",
                              "metallb.pools[0].addresses": ["10.20.0.200-10.20.0.250"], "ingress.ip": "10.20.0.200"})
    assert not any("networks.conf" in w for w in run.warnings)


def test_seed_network_gives_no_virtualbox_warning():
    assert not any("networks.conf" in w for w in run_program("lab").warnings)


# -- existing-cluster mode --


def existing(kubeconfig=TEST_KUBECONFIG, **cluster):
    return {"nodes": DELETE, "vagrant": DELETE, "cluster": {"kubeconfig": kubeconfig, **cluster}}


def test_existing_cluster_with_nodes_is_refused():
    err = fails({"cluster": {"kubeconfig": TEST_KUBECONFIG}})
    assert "existing cluster replaces the VMs" in problem(err, "nodes")


def test_existing_cluster_needs_the_network_for_pool_checks():
    err = fails({**existing(), "network": DELETE})
    assert "required" in problem(err, "network.cidr")


def test_existing_cluster_kubeconfig_path_must_exist(tmp_path):
    err = fails(existing(str(tmp_path / "missing")))
    assert "does not exist" in problem(err, "cluster.kubeconfig")


def test_existing_cluster_context_must_exist(tmp_path):
    path = tmp_path / "config"
    path.write_text(TEST_KUBECONFIG)
    err = fails(existing(str(path), context="kind-lbe"))
    message = problem(err, "cluster.context")
    assert "kind-lab" in message and "did you mean" in message


def test_existing_cluster_kubeconfig_must_be_a_kubeconfig():
    err = fails(existing("apiVersion: v1\nkind: Pod\n"))
    assert "no clusters" in problem(err, "cluster.kubeconfig")


@pytest.fixture
def kubeconfig_values(tmp_path):
    """Kubeconfigs a user might give by mistake, each with a word its problem must name."""
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00kube")
    return {
        "base64": (__import__("base64").b64encode(TEST_KUBECONFIG.encode()).decode(), "base64"),
        "base64-wrapped": (__import__("base64").encodebytes(TEST_KUBECONFIG.encode()).decode(), "base64"),
        "not-utf8": (str(binary), "UTF-8"),
        "contexts-a-number": (TEST_KUBECONFIG.replace("contexts: [{name: kind-lab, context: {cluster: kind, user: admin}}]", "contexts: 5"), "contexts"),
        "directory": (str(tmp_path), "is a directory"),
        "a-token": ("eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9", "neither the path"),
        "a-number": (5, "as a string"),
    }


@pytest.mark.parametrize("case", ["base64", "base64-wrapped", "not-utf8", "contexts-a-number", "directory", "a-token", "a-number"])
def test_a_kubeconfig_that_is_not_one_is_a_config_error_that_never_shows_it(case, kubeconfig_values):
    value, word = kubeconfig_values[case]
    err = fails(existing(value))
    assert word in problem(err, "cluster.kubeconfig")
    if case in ("base64", "base64-wrapped", "a-token"):
        assert str(value).split()[0] not in str(err)
    assert "token: abc" not in str(err)


def test_existing_cluster_ignores_the_unused_pod_and_service_ranges():
    # A LAN inside the defaults 10.96.0.0/12 and 10.244.0.0/16: the cluster chose its own ranges.
    for lan in ("10.100.0.0/24", "10.244.7.0/24"):
        prefix = lan.rsplit(".", 1)[0]
        run_program("lab", {**existing(), "network.cidr": lan, "metallb.pools[0].addresses": [f"{prefix}.200-{prefix}.250"],
                            "ingress.ip": f"{prefix}.200"})  # fmt: skip


def test_kubernetes_version_is_not_checked_against_kubeadm_on_an_existing_cluster():
    run_program("lab", {**existing(), "kubernetes.version": "1.30.5"})


def test_plain_text_kubeconfig_in_stack_file_is_warned_about_and_still_secret():
    run = run_program("lab", existing())
    assert any("--secret" in w for w in run.warnings)
    assert "kubeconfig" in run.secret_outputs


def test_secret_kubeconfig_gives_no_plain_text_warning():
    run = run_program("lab", existing(), secret_keys=("cluster",))
    assert not any("plain text" in w for w in run.warnings)


# -- render mode (manifests written to a directory, no cluster) --


def rendering(directory):
    return {"nodes": DELETE, "vagrant": DELETE, "cluster": {"render_yaml_to_directory": str(directory)}}


def test_render_mode_reaches_the_provider_without_a_kubeconfig(tmp_path):
    run = run_program("lab", rendering(tmp_path))
    provider = run.one("pulumi:providers:kubernetes")
    assert provider.inputs["renderYamlToDirectory"] == str(tmp_path)
    assert not provider.inputs.get("kubeconfig") and "kubeconfig" not in run.outputs


def test_render_mode_ignores_the_shells_kubeconfig(tmp_path, monkeypatch):
    # The SDK fills an unset Provider kubeconfig from $KUBECONFIG; the provider then refuses it
    # beside renderYamlToDirectory ("kubeconfig arg is not compatible with renderYamlToDirectory").
    shell_config = tmp_path / "shell-kubeconfig"
    shell_config.write_text(TEST_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(shell_config))
    provider = run_program("lab", rendering(tmp_path / "out")).one("pulumi:providers:kubernetes")
    assert not provider.inputs.get("kubeconfig"), provider.inputs.get("kubeconfig")
    assert not provider.inputs.get("context")


def test_render_mode_runs_no_self_check_and_no_command_but_the_cas(tmp_path):
    run = run_program("lab", rendering(tmp_path))
    # The lab CA and its certificate are made on the laptop, from nothing but their settings.
    from components.tls import CA_COMMAND, CERTIFICATE_COMMAND

    commands = {c.name: c.inputs.get("create") for c in run.of_type("command:local:Command")}
    # The pinned IPs (ingress, and the DNS server's, "" while it is off) are commands with nothing
    # to run: state alone (components/metallb.py).
    assert commands == {
        "lab-tls-ca": CA_COMMAND,
        "lab-tls-certificate": CERTIFICATE_COMMAND,
        "lab-metallb-pin-ingress-ip": None,
        "lab-metallb-pin-dns-ip": None,
    }
    assert not run.of_type("k8s-lab:selfcheck:SelfCheck")


def test_render_mode_refuses_a_self_check_asked_for(tmp_path):
    err = fails({**rendering(tmp_path), "self_check": {"enabled": True}})
    assert "contacts nothing" in problem(err, "self_check.enabled")


def test_render_mode_refuses_a_kubeconfig_too(tmp_path):
    err = fails(existing(render_yaml_to_directory=str(tmp_path)))
    assert "provider refuses both" in problem(err, "cluster.kubeconfig")


def _chart(directory: Path, kube_version: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "traefik", "version": "41.3.0", "kubeVersion": kube_version}))
    return directory


def test_a_local_chart_that_refuses_the_kubernetes_version_is_named_before_anything_is_registered(tmp_path):
    # Helm would refuse it only during `up`, and the engine may then report a cancelled call
    # instead of Helm's words: the lab reads the chart's kubeVersion itself.
    chart = _chart(tmp_path / "traefik", ">=1.25.0-0")
    err = fails({**rendering(tmp_path / "out"), **TRAEFIK, "ingress.manifest": str(chart), "kubernetes.version": "1.24.17"})
    message = problem(err, "ingress.manifest")
    assert "requires Kubernetes >=1.25.0-0 (its Chart.yaml kubeVersion), and kubernetes.version is 1.24.17" in message
    assert "chart traefik 41.3.0" in message
    # The same chart for a version it admits, and a constraint the lab cannot read, pass to Helm.
    run_program("lab", {**rendering(tmp_path / "out"), **TRAEFIK, "ingress.manifest": str(chart), "kubernetes.version": "1.25.0"})
    odd = _chart(tmp_path / "odd", "=1.24")
    run_program("lab", {**rendering(tmp_path / "out"), **TRAEFIK, "ingress.manifest": str(odd), "kubernetes.version": "1.24.17"})


def test_the_lab_clusters_own_version_is_checked_against_a_local_chart_too(tmp_path):
    chart = _chart(tmp_path / "traefik", ">=1.37.0-0")
    err = fails({**TRAEFIK, "ingress.manifest": str(chart)})
    assert "kubernetes.version is 1.36.1" in problem(err, "ingress.manifest")


def test_an_existing_clusters_version_is_left_to_helm(tmp_path):
    # kubernetes.version says nothing of a cluster the lab did not build: Helm asks it.
    chart = _chart(tmp_path / "traefik", ">=1.37.0-0")
    run_program("lab", {**existing(), **TRAEFIK, "ingress.manifest": str(chart)})


@pytest.mark.parametrize(
    "constraint,version,admits",
    [
        (">=1.25.0-0", "1.24.17", False),  # Traefik 41.3.0's
        (">=1.25.0-0", "1.25.0", True),
        (">=1.22.0-0", "1.36.1", True),  # Traefik 37.4.0's
        ("^1.8.0-0", "1.36.1", True),
        ("^1.8.0-0", "2.0.0", False),
        ("^0.3.1", "0.4.0", False),
        ("~1.25", "1.25.9", True),
        ("~1.25", "1.26.0", False),
        (">=1.20.0 <1.30.0", "1.36.1", False),
        (">=1.20.0, <1.37.0", "1.36.1", True),
        ("<1.20 || >=1.31.0", "1.36.1", True),
        ("1.25.0 - 1.30.0", "1.28.1", True),
        ("1.25.0 - 1.30.0", "1.31.0", False),
        ("> 1.36.1", "1.36.1", False),
        ("<=1.36.0-0", "1.36.0", False),
        ("*", "1.36.1", True),
        ("=1.25", "1.25.3", None),  # partial versions read differently by different libraries
        ("garbage", "1.36.1", None),
    ],
)
def test_kube_version_constraints_read_as_helm_reads_them(constraint, version, admits):
    from components.config.charts import kube_version_admits

    assert kube_version_admits(constraint, version) is admits


def test_render_mode_needs_a_pinned_ingress_ip(tmp_path):
    err = fails({**rendering(tmp_path), "ingress.ip": DELETE})
    assert "cannot be read back" in problem(err, "ingress.ip")


def helm_templates(run) -> dict[str, dict]:
    """The charts a run has the provider render itself (`helm template`), by release: their options."""
    calls = [json.loads(args["jsonOpts"]) for token, args in run.invokes if token == "kubernetes:helm:template"]
    return {call["release_name"]: call for call in calls}


def test_render_mode_renders_the_charts_for_the_stacks_kubernetes_version(tmp_path):
    # Without a cluster pulumi-kubernetes would render a chart for Kubernetes v1.20.0 and stop at its
    # kubeVersion (">=1.25.0-0" for Traefik 41.3.0 and Grafana 12.7.2): "incompatible with Kubernetes v1.20.0".
    both = {**rendering(tmp_path), **TRAEFIK, "apps": ["demo", "grafana"]}
    templates = helm_templates(run_program("lab", {**both, "kubernetes.version": "1.35.2"}))
    assert {release: call["kube_version"] for release, call in templates.items()} == {"traefik": "1.35.2", "grafana": "1.35.2"}
    unset = helm_templates(run_program("lab", {**both, "kubernetes": DELETE}))
    assert {call["kube_version"] for call in unset.values()} == {lab_config.KubernetesConfig().version} == {"1.36.1"}


@pytest.mark.parametrize(
    "settings,release,install",
    [
        (TRAEFIK, "traefik", "lab-ingress-install"),
        ({**TRAEFIK, "ingress.api": "gateway", "ingress.version": "37.4.0"}, "traefik", "lab-ingress-install"),
        ({"apps": ["demo", "grafana"]}, "grafana", "lab-apps-grafana-install"),
    ],
    ids=["traefik", "traefik-37-gateway", "grafana"],
)
def test_render_mode_renders_the_chart_a_cluster_gets(settings, release, install, tmp_path):
    live = run_program("lab", {**existing(), **settings}).one(CHART, install).inputs
    (rendered,) = [call for name, call in helm_templates(run_program("lab", {**rendering(tmp_path), **settings})).items() if name == release]
    assert (rendered["chart"], rendered["version"], rendered["fetch_opts"]["repo"]) == (live["chart"], live["version"], live["repositoryOpts"]["repo"])
    assert (rendered["namespace"], rendered["values"]) == (live["namespace"], live["values"])
    assert live["name"] == release


def test_render_mode_renders_a_local_chart_relative_to_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    given = from_project(chart_directory(tmp_path, "traefik", "37.4.0"))
    (call,) = helm_templates(run_program("lab", {**rendering(tmp_path / "out"), **TRAEFIK, "ingress.manifest": given})).values()
    assert call["path"] == given and "chart" not in call and "fetch_opts" not in call
    assert call["values"]["service"]["type"] == "LoadBalancer"  # the values of a 37.x chart


def test_render_mode_cannot_read_argocd_password(tmp_path):
    err = fails({**rendering(tmp_path), "apps": ["demo", "argocd"]})
    assert "set it to false" in problem(err, "app_options.argocd.export_admin_password")


@pytest.mark.parametrize(
    "entry",
    ["192.168.56.250-192.168.56.200", "fd00::1-fd00::5"],
    ids=["reversed", "ipv6"],
)
def test_a_bad_pool_entry_is_one_problem_not_two(entry):
    err = fails({"metallb.pools[0].addresses[0]": entry})
    assert err.paths() == ["metallb.pools[0].addresses[0]"], [str(p) for p in err.problems]
    assert "Tuple" not in str(err)


def test_a_list_given_as_a_mapping_is_not_a_list_of_unknown_keys():
    err = fails({"metallb.pools": {"lab-pool": {"addresses": ["192.168.56.200/29"]}, "second": {}}})
    assert "unknown key" not in str(err)


def test_shape_problems_do_not_hide_problems_of_the_lab_as_a_whole():
    # An unknown key, an ill-typed value and a cross-key problem, all reported at once.
    err = fails({"nodes[1].memory": 2048, "nodes[2].cpus": "two", "kubernetes.pod_cidr": "192.168.0.0/16", "vagrant.provider": "hyperv"})
    assert {"nodes[1].memory", "nodes[2].cpus", "kubernetes.pod_cidr", "vagrant.provider"} <= set(err.paths()), err.paths()


def test_a_misspelt_section_is_one_problem_not_the_real_sections_absence():
    err = fails({"metalb": {"version": "0.14.9"}, "metallb": DELETE})
    assert err.paths() == ["metalb"], [str(p) for p in err.problems]


def test_an_ill_shaped_value_does_not_make_up_lab_problems_from_its_absence():
    # With the pool's only range left out, the ingress IP would be "outside every pool": it is not said.
    err = fails({"metallb.pools[0].addresses[0]": "192.168.56.250-192.168.56.200"})
    assert err.paths() == ["metallb.pools[0].addresses[0]"]


def test_a_pool_no_advertisement_names_is_a_warning():
    run = run_program("lab", {"metallb.pools[1]": {"name": "spare", "addresses": ["192.168.56.100-192.168.56.110"]}})
    assert any("metallb.pools[1] (spare)" in w and "never answered" in w for w in run.warnings), run.warnings


def test_an_advertisement_of_every_pool_covers_the_ingress_pool():
    run = run_program("lab", {"metallb.l2_advertisements[0].pools": []})
    assert not any("L2 advertisement" in w for w in run.warnings)


def test_an_empty_interface_list_on_an_existing_cluster_is_a_warning():
    run = run_program("lab", {**existing(), "metallb.l2_advertisements[0].interfaces": []})
    assert any("interfaces: an empty list announces on every interface" in w for w in run.warnings), run.warnings


def test_a_bad_pool_hides_the_dns_ip_checks_that_depend_on_it():
    # A typo in a pool address is the problem; "dns.ip is outside every pool" would send the user
    # to a value that is fine.
    err = fails({"metallb.pools[0].addresses": ["192.168.56.200-192.168.56.2500"], "dns": {"enabled": True, "ip": "192.168.56.240"}})
    assert "dns.ip" not in err.paths()
    assert any(path.startswith("metallb.pools[0]") for path in err.paths())


def test_a_certificate_shorter_than_its_renewal_window_is_refused():
    # Renewed when 30 days or fewer remain: a shorter certificate would be issued again on every `up`.
    err = fails({"tls.certificate_validity_days": 30})
    assert "tls.certificate_validity_days" in err.paths()
    run_program("lab", {"tls.certificate_validity_days": 31})


# -- offline files (README, Offline labs): local paths as users write them, relative to the project --


def from_project(path: Path) -> str:
    """``path`` as a stack file gives it: relative to the project directory, where Pulumi runs."""
    relative = os.path.relpath(path, ROOT)
    assert not os.path.isabs(relative)
    return relative


def chart_directory(parent: Path, name: str, version: str) -> Path:
    chart = parent / name
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    return chart


def chart_archive(parent: Path, name: str, version: str) -> Path:
    """What `helm pull` downloads: the chart's directory, under its name, in a .tgz."""
    chart = chart_directory(parent / "unpacked", name, version)
    archive = parent / f"{name}-{version}.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(chart, arcname=name)
    return archive


def manifest_file(parent: Path, name: str) -> Path:
    path = parent / name
    path.write_text("# a downloaded manifest\n")
    return path


# (id, key, what to download, other settings, the resource that reads it and its input)
OFFLINE = [
    ("metallb", "metallb.manifest", lambda d: manifest_file(d, "metallb-native.yaml"), {}, CONFIGFILE, "lab-metallb-install", "file"),
    ("ingress-nginx", "ingress.manifest", lambda d: manifest_file(d, "deploy.yaml"), {}, CONFIGFILE, "lab-ingress-install", "file"),
    ("traefik-archive", "ingress.manifest", lambda d: chart_archive(d, "traefik", "41.3.0"), TRAEFIK, CHART, "lab-ingress-install", "chart"),
    ("traefik-directory", "ingress.manifest", lambda d: chart_directory(d, "traefik", "41.3.0"), TRAEFIK, CHART, "lab-ingress-install", "chart"),
    ("gateway-api", "ingress.gateway_api_manifest", lambda d: manifest_file(d, "standard-install.yaml"),
     {**TRAEFIK, "ingress.api": "gateway"}, CONFIGFILE, "lab-ingress-gateway-api-crds", "file"),  # fmt: skip
    ("argocd", "app_options.argocd.manifest", lambda d: manifest_file(d, "install.yaml"), {"apps": ["argocd"]},
     CONFIGFILE, "lab-apps-argocd-install", "file"),  # fmt: skip
    ("grafana", "app_options.grafana.chart", lambda d: chart_directory(d, "grafana", "12.7.2"), {"apps": ["grafana"]},
     CHART, "lab-apps-grafana-install", "chart"),  # fmt: skip
    ("online-boutique", "app_options.online-boutique.manifest", lambda d: manifest_file(d, "kubernetes-manifests.yaml"),
     {"apps": ["online-boutique"]}, CONFIGFILE, "lab-apps-online-boutique-install", "file"),  # fmt: skip
]


@pytest.mark.parametrize("key,download,settings,type_,name,field", [c[1:] for c in OFFLINE], ids=[c[0] for c in OFFLINE])
def test_a_local_file_relative_to_the_project_is_found_and_read_as_written(key, download, settings, type_, name, field, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # where Pulumi runs the program and the provider
    given = from_project(download(tmp_path))
    run = run_program("lab", {**existing(), **settings, key: given})
    # Relative, as given: the provider runs in the project directory too, and two clones stay alike.
    assert run.one(type_, name).inputs[field] == given


@pytest.mark.parametrize("packed", [chart_archive, chart_directory], ids=["archive", "directory"])
def test_a_local_traefik_chart_gets_the_values_of_its_own_version(packed, tmp_path, monkeypatch):
    # Chart 40 moved the Service's type into service.spec; a 37.x chart ignores it there and
    # would make a ClusterIP Service that MetalLB never serves.
    monkeypatch.chdir(ROOT)
    given = from_project(packed(tmp_path, "traefik", "37.4.0"))
    chart = run_program("lab", {**existing(), **TRAEFIK, "ingress.manifest": given}).one(CHART, "lab-ingress-install")
    assert chart.input("values.service.type") == "LoadBalancer"
    assert "type" not in chart.input("values.service.spec")


def test_a_relative_path_means_the_project_directory_and_nothing_below_it(monkeypatch):
    monkeypatch.chdir(ROOT)
    # Pulumi.yaml is in the project directory; manifests.py only in components/.
    run = run_program("lab", {"metallb.manifest": "Pulumi.yaml"})
    assert run.one(CONFIGFILE, "lab-metallb-install").inputs["file"] == "Pulumi.yaml"
    message = problem(fails({"metallb.manifest": "manifests.py"}), "metallb.manifest")
    assert f"manifests.py ({ROOT / 'manifests.py'}) is not a file" in message
    assert f"relative to the project directory {ROOT}" in message
