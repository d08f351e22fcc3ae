"""The cluster layer as the program registers it: VMs, node steps, their edges, secrets, provider.

Every test runs the whole program under mocks (tests/harness.py) and reads what was registered.
Under mocks ``local.Command`` ids are ``<name>-id`` and stdout is ``<name>-stdout``.
"""

import asyncio
import json
import os
import re
import stat

import pulumi
import pytest
import yaml
from pulumi.runtime import settings

from components import kubeadm
from components.command_step import ROOT, SCRIPTS_VARIABLE, read_scripts, scripts_digest, spec_hash
from components.config import KubernetesConfig, NodeConfig
from harness import DELETE, TEST_KUBECONFIG, LabMocks, run_program

COMMAND = "command:local:Command"
NODES = {"k8s-cp": "192.168.56.10", "k8s-w1": "192.168.56.11", "k8s-w2": "192.168.56.12"}
EXISTING = {"nodes": DELETE, "vagrant": DELETE, "cluster": {"kubeconfig": TEST_KUBECONFIG}}


@pytest.fixture(scope="module")
def seed():
    return run_program("lab")


@pytest.fixture(scope="module")
def libvirt():
    return run_program("lab", {"vagrant.provider": "libvirt"})


def steps(run):
    """The cluster's command steps (the self-check and Grafana's password are commands too)."""
    cluster = {r.urn for r in run.descendants(run.one("k8s-lab:kubeadm:KubeadmCluster"))}
    return {r.name: r for r in run.of_type(COMMAND) if r.urn in cluster}


# ----------------------------------------------------------------------------------------------
# VMs


def test_one_vm_per_node_with_its_own_spec(seed):
    vms = {r.name: r for r in seed.of_type(COMMAND) if r.name.endswith("-vm")}
    assert sorted(vms) == [f"lab-{name}-vm" for name in sorted(NODES)]
    for name, ip in NODES.items():
        vm = vms[f"lab-{name}-vm"]
        assert seed.by_urn(vm.parent).type == "k8s-lab:vm:VirtualMachine"
        assert vm.inputs["create"] == f"bash scripts/vagrant.sh up {name}"
        assert vm.inputs["delete"] == f"bash scripts/vagrant.sh destroy {name}"
        assert json.loads(vm.input("environment.K8S_LAB_NODES")) == [
            {
                "name": name,
                "ip": ip,
                "netmask": "255.255.255.0",
                "cpus": 2,
                "memory_mb": 4096,
                "box": "bento/ubuntu-24.04",
                "box_version": "202510.26.0",
            }
        ]
        assert vm.input("environment.VAGRANT_DEFAULT_PROVIDER") == "virtualbox"


def test_no_step_stores_a_working_directory(seed):
    # A stored absolute dir re-runs every step once the project is moved, and destroy would
    # chdir into the old path; the provider runs commands in the project directory instead.
    for step in seed.of_type(COMMAND):
        assert "dir" not in step.inputs, step.name
        for path in (step.inputs.get("create") or "", step.inputs.get("delete") or ""):
            assert str(ROOT) not in path, step.name


def test_each_stack_keeps_its_own_vagrant_state_and_names():
    other = run_program(
        "lab2",
        {
            "nodes": [
                {"name": "lab2-cp", "role": "control-plane", "ip": "192.168.56.20", "cpus": 2, "memory_mb": 2048},
                {"name": "lab2-w1", "role": "worker", "ip": "192.168.56.21"},
            ],
            "metallb.pools[0].addresses": ["192.168.56.180-192.168.56.190"],
            "ingress.ip": "192.168.56.180",
        },
        stack_file=ROOT / "Pulumi.lab.yaml",
    )
    envs = [r.inputs["environment"] for r in steps(other).values()]
    assert {env["VAGRANT_DOTFILE_PATH"] for env in envs} == {".vagrant/lab2"}
    vm_names = {json.loads(env["K8S_LAB_NODES"])[0]["name"] for env in envs if env["K8S_LAB_NODES"] != "[]"}
    assert vm_names == {"lab2-cp", "lab2-w1"}


def test_virtualbox_boots_the_machines_one_after_another(seed):
    s = steps(seed)
    assert seed.waits_for(s["lab-k8s-w1-vm"], s["lab-k8s-cp-vm"])
    assert seed.waits_for(s["lab-k8s-w2-vm"], s["lab-k8s-w1-vm"])
    # Ordering only: replacing one machine must not replace the next one in the chain.
    assert "lab-k8s-cp-vm-id" not in s["lab-k8s-w1-vm"].inputs["triggers"]


def test_libvirt_boots_the_workers_in_parallel_once_the_control_plane_is_up(libvirt):
    s = steps(libvirt)
    workers = [s["lab-k8s-w1-vm"], s["lab-k8s-w2-vm"]]
    for vm in [s["lab-k8s-cp-vm"], *workers]:
        assert libvirt.waits_for(vm, s["lab-box"]), "the box must be downloaded before any machine"
    for worker in workers:
        # The first `vagrant up` uploads the box into libvirt's pool; concurrent first ups race.
        assert libvirt.waits_for(worker, s["lab-k8s-cp-vm"])
        for other in workers:
            assert not libvirt.waits_for(worker, other), f"{worker.name} waits for {other.name}"


def test_the_control_plane_boots_first_wherever_it_is_listed():
    nodes = [
        {"name": "k8s-w1", "role": "worker", "ip": "192.168.56.11"},
        {"name": "k8s-cp", "role": "control-plane", "ip": "192.168.56.10"},
        {"name": "k8s-w2", "role": "worker", "ip": "192.168.56.12"},
    ]
    run = run_program("lab", {"nodes": nodes})
    s = steps(run)
    assert not run.waits_for(s["lab-k8s-cp-vm"], s["lab-k8s-w1-vm"])
    assert run.waits_for(s["lab-k8s-w1-vm"], s["lab-k8s-cp-vm"])
    assert run.waits_for(s["lab-k8s-w2-vm"], s["lab-k8s-w1-vm"])


def test_box_is_downloaded_once_for_the_configured_provider(libvirt):
    box = steps(libvirt)["lab-box"]
    assert box.inputs["create"] == "bash scripts/vagrant.sh box bento/ubuntu-24.04 202510.26.0"
    assert box.input("environment.VAGRANT_DEFAULT_PROVIDER") == "libvirt"
    assert "delete" not in box.inputs  # the box cache is shared with the user's other projects


# ----------------------------------------------------------------------------------------------
# Triggers and replacement


def test_every_step_carries_its_spec_hash_and_upstream_ids(seed):
    s = steps(seed)
    for step in s.values():
        assert re.fullmatch(r"[0-9a-f]{64}", step.inputs["triggers"][0]), step.name
    upstream = {
        "lab-k8s-cp-prepare": ["lab-k8s-cp-vm-id"],
        "lab-k8s-w1-prepare": ["lab-k8s-w1-vm-id"],
        "lab-init": ["lab-k8s-cp-prepare-id"],
        "lab-cni": ["lab-init-id"],
        "lab-kubeconfig": ["lab-init-id"],
        "lab-k8s-w1-join": ["lab-init-id", "lab-k8s-w1-prepare-id"],
        "lab-k8s-w2-join": ["lab-init-id", "lab-k8s-w2-prepare-id"],
    }
    for name, ids in upstream.items():
        assert s[name].inputs["triggers"][1:] == ids, name


def test_the_spec_hash_covers_the_command_and_environment_not_the_scripts(seed):
    init = steps(seed)["lab-init"]
    env = {k: v for k, v in init.inputs["environment"].items() if k != SCRIPTS_VARIABLE}
    assert init.inputs["triggers"][0] == spec_hash(init.inputs["create"], None, env)
    assert spec_hash(init.inputs["create"], None, {**env, "CNI": "calico"}) != init.inputs["triggers"][0]
    # Environment order is not part of the spec.
    assert spec_hash("c", None, {"A": "1", "B": "2"}) == spec_hash("c", None, {"B": "2", "A": "1"})
    assert init.input(f"environment.{SCRIPTS_VARIABLE}") == scripts_digest(
        read_scripts(["scripts/vagrant.sh", "scripts/node/init.sh"])
    )


def _edited_scripts(monkeypatch, edit):
    """The program as it runs with every step script edited by ``edit(text)``."""
    from components import command_step

    real = command_step.read_scripts
    monkeypatch.setattr(command_step, "read_scripts", lambda paths: {p: edit(t) for p, t in real(paths).items()})
    return run_program("lab")


def test_a_script_edit_re_runs_steps_in_place_and_replaces_none(seed, monkeypatch):
    # A `git pull` that touches a script must never destroy a VM or make a worker leave: the
    # triggers (replacement) stay as they were; only the environment (an in-place re-run) moves.
    edited = _edited_scripts(monkeypatch, lambda text: text + "\n: edited\n")
    before, after = steps(seed), steps(edited)
    assert before.keys() == after.keys()
    for name, step in before.items():
        assert after[name].inputs["triggers"] == step.inputs["triggers"], name
        if SCRIPTS_VARIABLE in step.inputs["environment"]:
            assert after[name].input(f"environment.{SCRIPTS_VARIABLE}") != step.input(f"environment.{SCRIPTS_VARIABLE}"), name
    # Every step re-runs but the kubeconfig read-back, whose output configures the provider.
    assert sorted(name for name, step in before.items() if SCRIPTS_VARIABLE not in step.inputs["environment"]) == ["lab-kubeconfig"]


def test_a_comment_only_script_edit_changes_no_step(seed, monkeypatch):
    # Reworded comments and a new comment line: what every step runs is the same, so nothing runs.
    edited = _edited_scripts(monkeypatch, lambda text: re.sub(r"(?m)^# .*$", "# reworded", text) + "\n# a new comment\n")
    before, after = steps(seed), steps(edited)
    assert before.keys() == after.keys()
    for name, step in before.items():
        assert after[name].inputs == step.inputs, name


def test_a_value_from_another_step_is_named_not_hashed_in_the_triggers(seed):
    # The CNI gets the NIC name from node preparation: unknown whenever preparation is about to
    # re-run, so hashing it would show the CNI as replaced in every such preview.
    cni = steps(seed)["lab-cni"]
    env = {k: v for k, v in cni.inputs["environment"].items() if k != SCRIPTS_VARIABLE}
    assert env["IFACE"] == "eth1"
    assert cni.inputs["triggers"][0] == spec_hash(cni.inputs["create"], None, {**env, "IFACE": "<from another step>"})


def test_a_changed_node_replaces_that_node_only(seed):
    changed = run_program("lab", {"nodes[2].memory_mb": 6144})
    before, after = steps(seed), steps(changed)
    differs = {name for name in before if before[name].inputs["triggers"] != after[name].inputs["triggers"]}
    assert differs == {"lab-k8s-w2-vm", "lab-k8s-w2-prepare", "lab-k8s-w2-join"}


def test_a_new_kubernetes_version_reruns_preparation_and_keeps_the_machines(seed):
    changed = run_program("lab", {"kubernetes.version": "1.35.2"})
    before, after = steps(seed), steps(changed)
    differs = {name for name in before if before[name].inputs["triggers"] != after[name].inputs["triggers"]}
    assert not any(name.endswith("-vm") for name in differs)
    assert {"lab-k8s-cp-prepare", "lab-k8s-w1-prepare", "lab-k8s-w2-prepare", "lab-init"} <= differs


def test_another_cni_initialises_a_new_cluster(seed):
    changed = run_program("lab", {"kubernetes.cni": "calico"})
    before, after = steps(seed), steps(changed)
    assert after["lab-init"].input("environment.CNI") == "calico"
    assert after["lab-init"].inputs["triggers"] != before["lab-init"].inputs["triggers"]
    # init.sh keys its "already initialised" stamp on the kubeadm configuration and the CNI.
    assert '"$KUBEADM_CONFIG" "$CNI" | sha256sum' in (ROOT / "scripts/node/init.sh").read_text()


def test_fixed_names_are_deleted_before_they_are_created_again():
    run = run_program("lab", {"write_kubeconfig": True})
    fixed = {r.name for r in run.of_type(COMMAND) if r.options["delete_before_replace"]}
    assert fixed == {
        "lab-k8s-cp-vm",
        "lab-k8s-w1-vm",
        "lab-k8s-w2-vm",
        "lab-k8s-w1-join",
        "lab-k8s-w2-join",
        "lab-kubeconfig-file",
        # The pinned addresses run nothing: replacing one delete-first is what orders an IP's
        # move between MetalLB pools (components/metallb.py, PinnedAddress).
        "lab-metallb-pin-ingress-ip",
        "lab-metallb-pin-dns-ip",
    }


def test_a_second_run_with_no_change_registers_identical_inputs(seed):
    again = run_program("lab")
    for name, step in steps(seed).items():
        assert steps(again)[name].inputs == step.inputs, f"{name} would run again on an unchanged `pulumi up`"


# ----------------------------------------------------------------------------------------------
# Ordering: what waits for what


def test_preparation_starts_as_soon_as_its_own_machine_is_up(seed):
    s = steps(seed)
    assert seed.waits_for(s["lab-k8s-w1-prepare"], s["lab-k8s-w1-vm"])
    assert not seed.waits_for(s["lab-k8s-cp-prepare"], s["lab-k8s-w1-vm"])
    assert not seed.waits_for(s["lab-k8s-w1-prepare"], s["lab-k8s-w2-vm"])


@pytest.mark.parametrize("run_name", ["seed", "libvirt"])
def test_joins_wait_for_init_and_overlap_the_cni(run_name, request):
    run = request.getfixturevalue(run_name)
    s = steps(run)
    assert run.waits_for(s["lab-init"], s["lab-k8s-cp-prepare"])
    assert not run.waits_for(s["lab-init"], s["lab-k8s-w1-prepare"])
    assert run.waits_for(s["lab-cni"], s["lab-init"])
    assert not run.waits_for(s["lab-cni"], s["lab-k8s-w2-prepare"])
    for worker in ("k8s-w1", "k8s-w2"):
        join = s[f"lab-{worker}-join"]
        assert run.waits_for(join, s["lab-init"])
        assert run.waits_for(join, s[f"lab-{worker}-prepare"])
        assert not run.waits_for(join, s["lab-cni"])
    assert run.waits_for(s["lab-kubeconfig"], s["lab-init"])


@pytest.mark.parametrize("run_name", ["seed", "libvirt"])
def test_objects_wait_for_the_cni_and_the_first_worker_by_order_not_through_the_kubeconfig(run_name, request):
    run = request.getfixturevalue(run_name)
    provider = run.one("pulumi:providers:kubernetes")
    s = steps(run)
    assert "kubeconfig" in provider.secret_inputs
    assert provider.inputs["kubeconfig"] == "lab-kubeconfig-stdout"
    # Nothing but the read-back feeds it: a join or the CNI about to run again (its id unknown in
    # the preview) must not make the provider, and everything on it, look replaced.
    assert provider.property_dependencies["kubeconfig"] == {s["lab-kubeconfig"].urn}
    assert provider.inputs["deleteUnreachable"] == "true"
    # The provider carries the wait instead: created after the CNI and the first join, it is what
    # every object on it waits for. Not the second join: MetalLB and the apps' namespaces overlap
    # it; only what spreads one pod per node (the ingress controller, the demo's Deployment) waits
    # for every worker, or the scheduler would put both pods on the first.
    objects = [r for r in run.resources if r.type.startswith("kubernetes:")]
    spread = {"lab-ingress-install", "lab-apps-demo-deployment"}
    assert {"lab-metallb-install", "lab-apps-demo-namespace"} | spread <= {r.name for r in objects}
    for obj in objects:
        assert run.waits_for(obj, s["lab-cni"]), obj.name
        assert run.waits_for(obj, s["lab-k8s-w1-join"]), obj.name
        after_spread = obj.name in spread or any(run.waits_for(obj, run.named(n)) for n in spread)
        assert run.waits_for(obj, s["lab-k8s-w2-join"]) == after_spread, obj.name


# ----------------------------------------------------------------------------------------------
# Secrets


def test_kubeconfig_and_join_tokens_are_secret_and_unlogged(seed):
    sensitive = {"lab-kubeconfig", "lab-k8s-w1-join", "lab-k8s-w2-join"}
    for name, step in steps(seed).items():
        if name in sensitive:
            assert step.inputs["logging"] == "stderr", name
            assert step.options["additional_secret_outputs"] == ["stdout"], name
            assert step.inputs["addPreviousOutputInEnv"] is False, name
        else:
            assert step.inputs["logging"] == "stdoutAndStderr", name
        # Tokens are minted inside the join step; none is ever an input.
        assert "--token" not in json.dumps(step.inputs), name
    assert "kubeconfig" in seed.secret_outputs
    assert seed.outputs["kubeconfig"] == "lab-kubeconfig-stdout"


def test_init_never_prints_kubeadms_own_token():
    text = (ROOT / "scripts/node/init.sh").read_text()
    assert re.search(r"^\s*kubeadm init .*--skip-token-print", text, re.M)


# ----------------------------------------------------------------------------------------------
# kubeadm, kubelet and CNI settings


def test_kubeadm_advertises_the_host_only_ip_and_names_the_cluster_after_the_stack(seed):
    init = steps(seed)["lab-init"]
    docs = {d["kind"]: d for d in yaml.safe_load_all(init.input("environment.KUBEADM_CONFIG"))}
    assert docs["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == "192.168.56.10"
    assert docs["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"] == [
        {"name": "node-ip", "value": "192.168.56.10"}
    ]
    cluster = docs["ClusterConfiguration"]
    assert cluster["clusterName"] == "lab"
    assert cluster["kubernetesVersion"] == "v1.36.1"
    assert cluster["controlPlaneEndpoint"] == "192.168.56.10:6443"
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"}
    assert docs["KubeProxyConfiguration"]["mode"] == "iptables"
    assert "ipvs" not in docs["KubeProxyConfiguration"]
    # The laptop reaches the API at the same address, and the read-back checks it.
    assert steps(seed)["lab-kubeconfig"].inputs["create"].endswith("kubeconfig k8s-cp https://192.168.56.10:6443")


def test_ipvs_mode_sets_strict_arp_for_metallb():
    cp = NodeConfig(name="cp", role="control-plane", ip="192.168.56.10")
    docs = list(yaml.safe_load_all(kubeadm.kubeadm_config("s", cp, KubernetesConfig(kube_proxy_mode="ipvs"))))
    proxy = next(d for d in docs if d["kind"] == "KubeProxyConfiguration")
    assert proxy == {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "ipvs",
        "ipvs": {"strictARP": True},
    }


def test_cidrs_come_from_config():
    run = run_program("lab", {"kubernetes.pod_cidr": "10.42.0.0/16", "kubernetes.service_cidr": "10.43.0.0/16"})
    s = steps(run)
    docs = {d["kind"]: d for d in yaml.safe_load_all(s["lab-init"].input("environment.KUBEADM_CONFIG"))}
    assert docs["ClusterConfiguration"]["networking"] == {"podSubnet": "10.42.0.0/16", "serviceSubnet": "10.43.0.0/16"}
    assert s["lab-cni"].input("environment.POD_CIDR") == "10.42.0.0/16"


def test_every_node_is_prepared_with_its_own_ip_and_the_pinned_release_files(seed):
    s = steps(seed)
    for name, ip in NODES.items():
        env = s[f"lab-{name}-prepare"].inputs["environment"]
        assert env["NODE_IP"] == ip and env["NODE_NAME"] == name and env["K8S_VERSION"] == "1.36.1"
        files = {line.split()[0]: line.split()[1:] for line in env["NODE_FILES"].splitlines()}
        assert files["kubeadm"][1] == "https://dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubeadm"
        assert files["kubeadm"][2] == files["kubeadm"][1] + ".sha256"  # checked against upstream's checksum
        assert "containerd-2.1.4-linux-amd64.tar.gz" in files["containerd"][1]
        assert files["runc"][1].endswith("/v1.3.2/runc.amd64") and files["runc"][2].endswith("/runc.sha256sum")
        assert set(files) == {"kubeadm", "kubelet", "kubectl", "containerd", "runc", "cni-plugins", "crictl", "cni-manifest"}
        assert env["BUNDLE"] == ""  # online: everything is downloaded
        # Only the named variables travel into the VM.
        assert set(env["K8S_LAB_FORWARD"].split()) == {
            "NODE_NAME", "NODE_IP", "NODE_ROLE", "NETWORK_INTERFACE", "K8S_VERSION",
            "KUBE_PROXY_MODE", "NODE_FILES", "NODE_IMAGES", "BUNDLE",
        }  # fmt: skip


def test_only_the_control_plane_gets_the_control_plane_images(seed):
    s = steps(seed)
    images = {name: {line.split()[0] for line in s[f"lab-{name}-prepare"].input("environment.NODE_IMAGES").splitlines()} for name in NODES}
    assert "registry.k8s.io/kube-apiserver:v1.36.1" in images["k8s-cp"]
    assert "registry.k8s.io/etcd:3.6.8-0" in images["k8s-cp"]
    for worker in ("k8s-w1", "k8s-w2"):
        assert "registry.k8s.io/kube-apiserver:v1.36.1" not in images[worker]
        assert {"registry.k8s.io/kube-proxy:v1.36.1", "registry.k8s.io/pause:3.10.2", "docker.io/traefik/whoami:v1.11.0"} <= images[worker]


def _nic_mocks(nic: str) -> LabMocks:
    mocks = LabMocks()
    mocks.state_for[COMMAND] = lambda args: {"stdout": f"{nic}\n"} if args.name.endswith("-prepare") else {}
    return mocks


@pytest.mark.parametrize("cni, flag", [("flannel", "kube-flannel.yml"), ("calico", "calico.yaml")])
def test_the_cni_uses_the_nic_that_preparation_found(cni, flag):
    run = run_program("lab", {"kubernetes.cni": cni}, mocks=_nic_mocks("enp0s8"))
    env = steps(run)["lab-cni"].inputs["environment"]
    assert env["IFACE"] == "enp0s8"
    assert env["CNI"] == cni and env["CNI_MANIFEST_URL"].endswith(flag)
    # A data edge: the CNI step waits for the control plane's preparation through its input.
    assert steps(run)["lab-k8s-cp-prepare"].urn in steps(run)["lab-cni"].property_dependencies["environment"]


def test_a_fixed_interface_name_reaches_node_preparation():
    run = run_program("lab", {"network.interface": "eth1"})
    assert {steps(run)[f"lab-{n}-prepare"].input("environment.NETWORK_INTERFACE") for n in NODES} == {"eth1"}


def test_cluster_interfaces_are_the_names_preparation_printed():
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(_nic_mocks("enp0s8"), project="k8s-lab", stack="lab", preview=False)
    settings.SETTINGS.rpc_manager.clear()
    nodes = tuple(
        NodeConfig(name=name, role="control-plane" if name == "k8s-cp" else "worker", ip=ip) for name, ip in NODES.items()
    )
    from components.config import NetworkConfig, VagrantConfig

    @pulumi.runtime.test
    def check():
        cluster = kubeadm.KubeadmCluster(
            "lab",
            kubeadm.KubeadmClusterArgs(
                stack="lab",
                nodes=nodes,
                vagrant=VagrantConfig(),
                kubernetes=KubernetesConfig(),
                network=NetworkConfig(cidr="192.168.56.0/24"),
            ),
        )

        def verify(values):
            interfaces, joins = values
            assert interfaces == ["enp0s8"]
            assert joins == ["k8s-w1", "k8s-w2"]

        return pulumi.Output.all(cluster.interfaces, list(cluster.joins)).apply(verify)

    check()


def test_by_default_the_mocks_prepare_nodes_on_eth1(seed):
    assert steps(seed)["lab-cni"].input("environment.IFACE") == "eth1"


def test_parse_interface_takes_the_last_line():
    assert kubeadm.parse_interface("noise\r\neth1\r\n") == "eth1"
    assert kubeadm.unique_interfaces(["eth1", "eth1\n", "enp0s8"]) == ["eth1", "enp0s8"]
    assert kubeadm.unique_interfaces(["", "\n"]) == []


# ----------------------------------------------------------------------------------------------
# Kubeconfig file, existing cluster, missing vagrant, preview


def test_write_kubeconfig_writes_a_private_file_and_says_how_to_use_it():
    run = run_program("lab", {"write_kubeconfig": True})
    step = steps(run)["lab-kubeconfig-file"]
    path = str(kubeadm.kubeconfig_path("lab"))
    assert path.endswith(os.path.join(".kube", "k8s-lab-lab"))
    assert step.inputs["create"] == f"bash scripts/kubeconfig-file.sh write {path}"
    assert step.inputs["delete"] == f"bash scripts/kubeconfig-file.sh remove {path}"
    assert "stdin" in step.secret_inputs
    assert run.outputs["kubeconfig_export"] == f"export KUBECONFIG={path}"


def test_no_kubeconfig_file_unless_asked(seed):
    assert "lab-kubeconfig-file" not in steps(seed)
    assert "kubeconfig_export" not in seed.outputs


def test_existing_cluster_mode_registers_no_command():
    run = run_program("lab", EXISTING)
    # The only commands run on the laptop: the lab CA and its certificate, and the self-check.
    commands = [r for r in run.resources if r.type.startswith("command:")]
    assert [r.name for r in commands if r.inputs.get("create")] == ["lab-tls-ca", "lab-tls-certificate", "lab-self-check-run"]
    # The rest are the pinned addresses (the DNS server's is "" while it is off), state alone:
    # nothing to run on create, update or delete.
    pins = {r.name: r for r in commands if not r.inputs.get("create")}
    assert sorted(pins) == ["lab-metallb-pin-dns-ip", "lab-metallb-pin-ingress-ip"]
    assert pins["lab-metallb-pin-dns-ip"].inputs["triggers"] == ["dns.ip", ""]
    assert not any({"create", "update", "delete"} & set(pin.inputs) for pin in pins.values())
    assert not run.of_type("k8s-lab:kubeadm:KubeadmCluster")
    assert run.one("pulumi:providers:kubernetes").inputs["kubeconfig"] == TEST_KUBECONFIG.strip()
    assert "kubeconfig" in run.secret_outputs


def test_a_missing_vagrant_is_named_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    run = run_program("lab")
    assert any("vagrant is not on PATH" in w and "developer.hashicorp.com/vagrant" in w for w in run.warnings)
    fake = tmp_path / "vagrant"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert not any("vagrant is not on PATH" in w for w in run_program("lab").warnings)
    assert not any("vagrant" in w for w in run_program("lab", EXISTING).warnings)


def _work_tree() -> set[str]:
    skip = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".venv"}
    found = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip]
        found.update(os.path.join(dirpath, f) for f in filenames)
    return found


def test_preview_generates_no_file_in_the_work_tree():
    before = _work_tree()
    run_program("lab", {"write_kubeconfig": True}, preview=True)
    assert _work_tree() == before
