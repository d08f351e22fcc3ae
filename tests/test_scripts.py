"""The shell scripts: shellcheck-clean, and what they do with a stand-in for the vagrant CLI.

scripts/vagrant.sh runs here for real against a fake ``vagrant`` on PATH that records its
arguments and stdin (and, for ``run``, executes the remote command locally with a fake ``sudo``).
The node scripts' pure parts (finding the NIC, patching CNI manifests, validating a join command)
run here too; nothing touches this machine's system configuration.
"""


import os
import shutil
import subprocess

import pytest

from harness import ROOT, shellcheck

SCRIPTS = sorted([*ROOT.glob("scripts/*.sh"), *ROOT.glob("scripts/node/*.sh"), ROOT / "lab", ROOT / ".ci/run"])
TOKEN = "abcdef.0123456789abcdef"
JOIN = f"kubeadm join 192.168.56.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash sha256:0a1b2c"
TOOLS = ["mktemp", "tee", "sleep", "tar", "bash", "sh", "env", "cat", "tr", "sed", "tail", "head", "awk", "grep", "mkdir", "mv", "rm", "basename",
         "dirname", "pwd", "sort", "cut", "ip"]  # fmt: skip


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_is_shellcheck_clean(script):
    result = subprocess.run([shellcheck(), "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", [s for s in SCRIPTS if "scripts" in s.parts], ids=lambda p: p.name)
def test_script_stops_at_the_first_error(script):
    assert "set -euo pipefail" in script.read_text()


def test_every_script_a_step_names_exists():
    from components import kubeadm, vm

    for relative in (vm.VAGRANT_SCRIPT, kubeadm.PREPARE_SCRIPT, kubeadm.INIT_SCRIPT, kubeadm.JOIN_SCRIPT,
                     kubeadm.CNI_SCRIPT, kubeadm.KUBECONFIG_FILE_SCRIPT):  # fmt: skip
        assert (ROOT / relative).is_file(), relative


# ----------------------------------------------------------------------------------------------
# scripts/vagrant.sh against a fake vagrant

FAKE_VAGRANT = r"""#!/usr/bin/env bash
# Records each call; answers like vagrant would for what the tests need.
log=$FAKE_LOG
n=$(ls "$log" | grep -c '[.]argv$')
printf '%s\n' "$@" >"$log/$n.argv"
case " $* " in
  *" --fail "*|*"$FAKE_FAIL"*) echo "VBoxManage: error: $FAKE_FAIL_MESSAGE" >&2; exit 1 ;;
esac
# Another vagrant on the same machine: the first FAKE_LOCKED calls are refused, as Vagrant does.
if [ "$n" -lt "${FAKE_LOCKED:-0}" ]; then
  echo "Vagrant can't use the requested machine because it is locked! This" >&2
  exit 1
fi
case "$1" in
  ssh)
    cmd=${!#}
    case $cmd in
      *"kubeadm token create"*) printf '%s\r\n' "$FAKE_JOIN"; exit 0 ;;
      *"cat /etc/kubernetes/admin.conf"*) printf '%s\n' "$FAKE_KUBECONFIG"; exit 0 ;;
      *"find /var/cache/k8s-lab/bundle"*) printf '%s\n' "${FAKE_BUNDLE_HAS:-}"; exit 0 ;;
    esac
    if [ -n "${FAKE_EXECUTE:-}" ]; then exec bash -c "$cmd"; fi
    cat >"$log/$n.stdin"
    ;;
  status) printf '%s\n' "${FAKE_STATUS:-}" ;;
  box) [ "$2" = list ] && printf '%s\n' "${FAKE_BOXES:-}" ;;
esac
exit 0
"""


@pytest.fixture
def fake(tmp_path):
    """Run scripts/vagrant.sh with a recording fake vagrant (or none) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS + ["wc", "ls"]:
        real = shutil.which(tool)
        if real:
            (bin_dir / tool).symlink_to(real)
    log = tmp_path / "log"
    log.mkdir()

    class Fake:
        dotfile = tmp_path / "dot" / "lab"

        def install(self):
            path = bin_dir / "vagrant"
            path.write_text(FAKE_VAGRANT)
            path.chmod(0o755)
            sudo = bin_dir / "sudo"
            sudo.write_text('#!/usr/bin/env bash\nexec "$@"\n')
            sudo.chmod(0o755)

        def run(self, *args, stdin="", **env):
            environment = {
                "PATH": str(bin_dir),
                "HOME": str(tmp_path),
                "FAKE_LOG": str(log),
                "FAKE_FAIL": "never-matches-anything",
                "VAGRANT_DOTFILE_PATH": str(self.dotfile),
                "VAGRANT_DEFAULT_PROVIDER": "virtualbox",
                **env,
            }
            return subprocess.run(
                ["bash", str(ROOT / "scripts/vagrant.sh"), *args],
                cwd=ROOT, env=environment, input=stdin, capture_output=True, text=True, timeout=30,
            )  # fmt: skip

        def calls(self):
            return [
                ((log / f"{i}.argv").read_text().splitlines(), (log / f"{i}.stdin").read_text() if (log / f"{i}.stdin").exists() else None)
                for i in range(len(list(log.glob("*.argv"))))
            ]  # fmt: skip

    return Fake()


def test_a_missing_vagrant_is_a_clear_error(fake):
    for args in (["up", "k8s-cp"], ["box", "bento/ubuntu-24.04", "1"], ["run", "k8s-cp", "scripts/node/init.sh"]):
        result = fake.run(*args)
        assert result.returncode == 1
        assert "vagrant is not installed or not on PATH" in result.stderr
        assert "developer.hashicorp.com/vagrant" in result.stderr


def test_vagrant_failures_surface_their_own_stderr(fake):
    fake.install()
    result = fake.run("up", "k8s-cp", FAKE_FAIL="up", FAKE_FAIL_MESSAGE="VT-x is not available")
    assert result.returncode != 0
    assert "VT-x is not available" in result.stderr
    assert not (fake.dotfile / "k8s-lab-nodes" / "k8s-cp.json").exists()


def test_up_boots_the_node_and_records_its_spec_and_destroy_forgets_it(fake):
    fake.install()
    spec = '[{"name":"k8s-cp"}]'
    assert fake.run("up", "k8s-cp", K8S_LAB_NODES=spec).returncode == 0
    assert fake.calls()[0][0] == ["up", "k8s-cp", "--provider", "virtualbox"]
    assert (fake.dotfile / "k8s-lab-nodes" / "k8s-cp.json").read_text().strip() == spec
    assert fake.run("destroy", "k8s-cp", K8S_LAB_NODES=spec).returncode == 0
    assert fake.calls()[1][0] == ["destroy", "-f", "k8s-cp"]
    assert not (fake.dotfile / "k8s-lab-nodes" / "k8s-cp.json").exists()


def test_box_is_added_only_when_missing(fake):
    fake.install()
    present = "bento/ubuntu-24.04 (virtualbox, 202510.26.0, (amd64))"
    assert fake.run("box", "bento/ubuntu-24.04", "202510.26.0", FAKE_BOXES=present).returncode == 0
    assert [argv for argv, _ in fake.calls()] == [["box", "list"]]
    assert fake.run("box", "bento/ubuntu-24.04", "202510.26.0", FAKE_BOXES="").returncode == 0
    assert fake.calls()[-1][0] == ["box", "add", "bento/ubuntu-24.04", "--box-version", "202510.26.0", "--provider", "virtualbox"]


@pytest.mark.parametrize(
    "listed",
    [
        "generic/debian12 (virtualbox, 4.3.12, (amd64))",  # a longer version starting alike
        "mybento/ubuntu-24.04 (virtualbox, 4.3)",  # a name ending alike
        "bento/ubuntu-24.04-arm (virtualbox, 4.3)",  # a name starting alike
        "bento/ubuntu-24.04 (libvirt, 4.3)",  # another provider
    ],
)
def test_box_must_match_name_provider_and_version_exactly(fake, listed):
    fake.install()
    name = "generic/debian12" if listed.startswith("generic") else "bento/ubuntu-24.04"
    assert fake.run("box", name, "4.3", FAKE_BOXES=listed).returncode == 0
    assert fake.calls()[-1][0] == ["box", "add", name, "--box-version", "4.3", "--provider", "virtualbox"]


def test_box_listed_with_padding_and_architecture_is_found(fake):
    fake.install()
    listed = "generic/debian12   (virtualbox, 4.3.12, (amd64))\nbento/ubuntu-24.04 (virtualbox, 4.3)"
    assert fake.run("box", "generic/debian12", "4.3.12", FAKE_BOXES=listed).returncode == 0
    assert fake.run("box", "bento/ubuntu-24.04", "4.3", FAKE_BOXES=listed).returncode == 0
    assert [argv for argv, _ in fake.calls()] == [["box", "list"], ["box", "list"]]


def test_run_sends_the_script_and_named_variables_on_stdin(fake, tmp_path):
    fake.install()
    script = tmp_path / "node.sh"
    script.write_text("echo from the node\n")
    result = fake.run("run", "k8s-w1", str(script), K8S_LAB_FORWARD="NODE_IP MULTI", NODE_IP="192.168.56.11",
                      MULTI="line one\nline 'two'", UNNAMED="stays home")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (argv, stdin), = fake.calls()
    assert argv[:3] == ["ssh", "k8s-w1", "--no-tty"]
    assert "192.168.56.11" not in " ".join(argv)
    assert "export NODE_IP=192.168.56.11" in stdin
    assert "stays home" not in stdin
    assert stdin.endswith("echo from the node\n")


def test_run_executes_the_whole_script_even_when_it_reads_stdin(fake, tmp_path):
    fake.install()
    script = tmp_path / "node.sh"
    script.write_text('read -r line || line="<eof>"\necho "read: $line; value: $VALUE"\nexit 3\n')
    result = fake.run("run", "k8s-cp", str(script), K8S_LAB_FORWARD="VALUE", VALUE="a b\nc", FAKE_EXECUTE="1")
    # The script reads /dev/null, not the rest of its own text, and its exit status comes back.
    assert result.stdout == "read: <eof>; value: a b\nc\n"
    assert result.returncode == 3


def test_run_refuses_a_variable_name_that_could_inject_code(fake, tmp_path):
    fake.install()
    script = tmp_path / "node.sh"
    script.write_text("true\n")
    result = fake.run("run", "k8s-cp", str(script), K8S_LAB_FORWARD="A;rm")
    assert result.returncode == 1 and "not a variable name" in result.stderr


def test_join_mints_a_token_and_keeps_it_out_of_every_argument_list_and_log(fake):
    fake.install()
    result = fake.run("join", "k8s-cp", "k8s-w1", K8S_LAB_FORWARD="NODE_NAME", NODE_NAME="k8s-w1", FAKE_JOIN=JOIN)
    assert result.returncode == 0, result.stderr
    (mint, _), (join_argv, join_stdin) = fake.calls()
    assert mint[:3] == ["ssh", "k8s-cp", "--no-tty"]
    assert "kubeadm token create --ttl 15m --print-join-command" in mint[-1]
    assert join_argv[:2] == ["ssh", "k8s-w1"]
    assert TOKEN not in " ".join(join_argv)
    assert TOKEN not in result.stdout + result.stderr
    # The join command travels on stdin, as one shell-quoted variable, without the ssh \r.
    assert f"export JOIN_COMMAND={JOIN.replace(' ', chr(92) + ' ')}\n" in join_stdin
    assert join_stdin.endswith((ROOT / "scripts/node/join.sh").read_text())


def test_a_machine_locked_by_another_vagrant_is_tried_again_and_its_stdin_still_arrives(fake, tmp_path):
    # The lab's control-plane steps run side by side; Vagrant refuses a second command on a machine
    # whose index entry another one holds, before reading anything.
    fake.install()
    script = tmp_path / "script.sh"
    script.write_text("echo hello\n")
    result = fake.run("run", "k8s-cp", str(script), FAKE_LOCKED="2")
    assert result.returncode == 0, result.stderr
    calls = fake.calls()
    assert len(calls) == 3 and [argv[:2] for argv, _ in calls] == [["ssh", "k8s-cp"]] * 3
    assert calls[2][1].endswith("echo hello\n")  # the third attempt got the whole script
    assert "because it is locked" not in result.stderr
    assert result.stderr.count("another vagrant command holds the machine; waiting for it") == 1


def test_other_vagrant_failures_are_not_retried(fake):
    fake.install()
    result = fake.run("up", "k8s-cp", FAKE_FAIL="up", FAKE_FAIL_MESSAGE="VT-x is not available")
    assert result.returncode == 1 and "VT-x is not available" in result.stderr
    assert len(fake.calls()) == 1


@pytest.mark.parametrize("provider, copied", [("virtualbox", ["files/b"]), ("docker", None)])
def test_a_vm_gets_the_bundle_files_it_lacks_before_its_script_runs(fake, tmp_path, provider, copied):
    import io
    import tarfile

    fake.install()
    bundle = tmp_path / "bundle"
    (bundle / "files").mkdir(parents=True)
    (bundle / "files/a").write_text("aaaa")
    (bundle / "files/b").write_text("bbbbbb")
    script = tmp_path / "script.sh"
    script.write_text("echo prepared\n")
    result = fake.run(
        "run", "k8s-w1", str(script),
        VAGRANT_DEFAULT_PROVIDER=provider,
        K8S_LAB_BUNDLE=str(bundle),
        K8S_LAB_BUNDLE_FILES="4 files/a\n6 files/b",
        FAKE_BUNDLE_HAS="4 files/a",  # the node holds a, at its size, from an earlier run
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls = fake.calls()
    if copied is None:  # a docker node has the bundle mounted (the Vagrantfile)
        assert len(calls) == 1 and calls[0][1].endswith("echo prepared\n")
        return
    (_, _), (extract, stream), (_, script_stdin) = calls
    assert "tar -C /var/cache/k8s-lab/bundle -xf -" in extract[-1]
    with tarfile.open(fileobj=io.BytesIO(stream.encode("latin-1"))) as tar:
        assert tar.getnames() == copied
    assert script_stdin.endswith("echo prepared\n")


def test_join_fails_clearly_when_the_control_plane_prints_no_join_command(fake):
    fake.install()
    result = fake.run("join", "k8s-cp", "k8s-w1", FAKE_JOIN="error: no such cluster")
    assert result.returncode == 1
    assert "printed no join command" in result.stderr
    assert len(fake.calls()) == 1  # the worker was not touched


def test_leave_is_best_effort(fake):
    assert fake.run("leave", "k8s-cp", "k8s-w1").returncode == 0  # no vagrant at all
    fake.install()
    result = fake.run("leave", "k8s-cp", "k8s-w1", FAKE_FAIL="ssh", FAKE_FAIL_MESSAGE="machine is not running")
    assert result.returncode == 0
    assert "could not reach k8s-cp" in result.stderr
    ok = fake.run("leave", "k8s-cp", "k8s-w1")
    assert ok.returncode == 0
    assert "delete node k8s-w1 --ignore-not-found" in fake.calls()[-1][0][-1]


KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://192.168.56.10:6443
  name: lab
users:
- name: kubernetes-admin
  user:
    client-key-data: VERY-SECRET"""


def test_kubeconfig_is_printed_only_when_it_points_where_the_laptop_can_reach(fake):
    fake.install()
    good = fake.run("kubeconfig", "k8s-cp", "https://192.168.56.10:6443", FAKE_KUBECONFIG=KUBECONFIG)
    assert good.returncode == 0 and good.stdout == KUBECONFIG + "\n"
    nat = KUBECONFIG.replace("192.168.56.10", "10.0.2.15")
    bad = fake.run("kubeconfig", "k8s-cp", "https://192.168.56.10:6443", FAKE_KUBECONFIG=nat)
    assert bad.returncode == 1
    assert "does not point at https://192.168.56.10:6443" in bad.stderr
    assert "VERY-SECRET" not in bad.stdout + bad.stderr


def test_start_boots_existing_machines_and_explains_a_deleted_one(fake):
    fake.install()
    records = fake.dotfile / "k8s-lab-nodes"
    records.mkdir(parents=True)
    for name in ("k8s-cp", "k8s-w1", "k8s-w2"):
        (records / f"{name}.json").write_text("[]")
    status = "\n".join([
        "1,k8s-cp,state,poweroff", "1,k8s-w1,state,not_created", "1,k8s-w2,state,saved", "1,,ui,info,Current machine states",
    ])  # fmt: skip
    result = fake.run("start", FAKE_STATUS=status, K8S_LAB_NODES="[]")
    assert result.returncode == 0, result.stderr
    assert fake.calls()[-1][0] == ["up", "--no-provision", "k8s-cp", "k8s-w2"]
    assert "k8s-w1 no longer exists" in result.stderr and "pulumi up --replace" in result.stderr
    assert "k8s-w1-vm" in result.stderr


def test_lifecycle_commands_need_recorded_machines(fake):
    fake.install()
    result = fake.run("stop")
    assert result.returncode == 1 and "./lab up" in result.stderr
    assert fake.calls() == []


def test_lab_passes_the_stacks_dotfile_path(fake, tmp_path):
    fake.install()
    env = {"PATH": str(fake.dotfile.parent.parent / "bin"), "HOME": str(tmp_path), "FAKE_LOG": str(tmp_path / "log"),
           "FAKE_FAIL": "never", "K8S_LAB_STACK": "lab2"}  # fmt: skip
    result = subprocess.run([str(ROOT / "lab"), "status"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert ".vagrant/lab2" in result.stderr


# ----------------------------------------------------------------------------------------------
# scripts/kubeconfig-file.sh


def test_kubeconfig_file_is_private_and_replaced_whole(tmp_path):
    path = tmp_path / ".kube" / "k8s-lab-lab"
    script = str(ROOT / "scripts/kubeconfig-file.sh")
    assert subprocess.run(["bash", script, "write", str(path)], input=KUBECONFIG, text=True).returncode == 0
    assert path.read_text() == KUBECONFIG
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    empty = subprocess.run(["bash", script, "write", str(path)], input="", text=True, capture_output=True)
    assert empty.returncode == 1 and path.read_text() == KUBECONFIG
    assert subprocess.run(["bash", script, "remove", str(path)]).returncode == 0
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# Node scripts: the parts that can run without a VM

IP_ADDR = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.2.15/24 metric 100 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec
3: enp0s8    inet 192.168.56.110/24 brd 192.168.56.255 scope global enp0s8\\       valid_lft forever
4: eth1    inet 192.168.56.11/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever"""


def source_and_call(script, call, tmp_path, **env):
    """Source a node script without running its main, then run one of its functions."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    fake_ip = bin_dir / "ip"
    fake_ip.write_text(f"#!/bin/sh\ncat <<'EOF'\n{IP_ADDR}\nEOF\n")
    fake_ip.chmod(0o755)
    environment = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "K8S_LAB_SOURCE_ONLY": "1", **env}
    return subprocess.run(
        ["bash", "-c", f'. "$0"; {call}', str(ROOT / script)],
        env=environment, capture_output=True, text=True, cwd=tmp_path, timeout=30,
    )  # fmt: skip


PREPARE_ENV = {
    "NODE_NAME": "k8s-w1", "NODE_IP": "192.168.56.11", "NODE_ROLE": "worker", "K8S_VERSION": "1.36.1",
    "KUBE_PROXY_MODE": "iptables", "NODE_FILES": "kubeadm files/x https://example.invalid/kubeadm - -",
    "NODE_IMAGES": "registry.k8s.io/pause:3.10.2 images/registry.k8s.io/pause/3.10.2.tar",
}  # fmt: skip


def test_preparation_finds_the_nic_that_carries_the_node_ip(tmp_path):
    # .110 must not match .11: the address is compared whole, not as a prefix.
    found = source_and_call("scripts/node/prepare.sh", "host_only_interface >&3", tmp_path, **PREPARE_ENV)
    assert found.returncode == 0, found.stderr
    assert found.stdout == "eth1\n"
    given = source_and_call("scripts/node/prepare.sh", "host_only_interface >&3", tmp_path, **PREPARE_ENV, NETWORK_INTERFACE="eth1")
    assert given.stdout == "eth1\n"


def test_preparation_says_which_nic_carries_the_ip_when_the_given_name_is_wrong(tmp_path):
    wrong = source_and_call("scripts/node/prepare.sh", "host_only_interface >&3", tmp_path, **PREPARE_ENV, NETWORK_INTERFACE="enp0s8")
    assert wrong.returncode == 1
    assert "network.interface is enp0s8 but 192.168.56.11 is on eth1" in wrong.stderr
    missing = source_and_call("scripts/node/prepare.sh", "host_only_interface >&3", tmp_path, **{**PREPARE_ENV, "NODE_IP": "192.168.56.99"})
    assert missing.returncode == 1 and "no interface carries 192.168.56.99" in missing.stderr


FLANNEL = """  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "EnableNFTables": false,
      "Backend": {
        "Type": "vxlan"
      }
    }
---
      containers:
      - args:
        - --ip-masq
        - --kube-subnet-mgr
        command:
        - /opt/bin/flanneld
"""

CALICO = """            - name: IP
              value: "autodetect"
            # Enable or Disable VXLAN on the default IP pool.
            - name: CALICO_IPV4POOL_VXLAN
              value: "Never"
            # no effect. This should fall within `--cluster-cidr`.
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
            # Disable file logging so `kubectl logs` works.
"""


def patch(cni, manifest, tmp_path):
    (tmp_path / "in.yaml").write_text(manifest)
    result = source_and_call("scripts/node/cni.sh", f"patch_{cni} in.yaml out.yaml", tmp_path, IFACE="enp0s8", POD_CIDR="10.42.0.0/16")
    out = tmp_path / "out.yaml"
    return result, (out.read_text() if out.exists() else "")


def test_flannel_is_pinned_to_the_host_only_nic_and_the_pod_cidr(tmp_path):
    result, out = patch("flannel", FLANNEL, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "        - --kube-subnet-mgr\n        - --iface=enp0s8\n" in out
    assert '"Network": "10.42.0.0/16"' in out and "10.244.0.0/16" not in out


def test_calico_autodetects_the_host_only_nic_and_uses_the_pod_cidr(tmp_path):
    result, out = patch("calico", CALICO, tmp_path)
    assert result.returncode == 0, result.stderr
    assert '            - name: IP_AUTODETECTION_METHOD\n              value: "interface=enp0s8"\n' in out
    assert '            - name: CALICO_IPV4POOL_CIDR\n              value: "10.42.0.0/16"\n' in out
    assert "192.168.0.0/16" not in out


@pytest.mark.parametrize("cni", ["flannel", "calico"])
def test_a_changed_upstream_layout_fails_instead_of_applying_defaults(cni, tmp_path):
    result, _ = patch(cni, "kind: DaemonSet\n", tmp_path)
    assert result.returncode == 1
    assert "has its layout changed?" in result.stderr


@pytest.mark.parametrize(
    "command, message",
    [
        ("echo join", "not a kubeadm join command"),
        ("kubeadm join 192.168.56.10:6443 --token abc.def", "carries no --discovery-token-ca-cert-hash"),
    ],
)
def test_join_checks_the_join_command_before_touching_the_node(command, message):
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/node/join.sh")],
        env={**os.environ, "NODE_NAME": "k8s-w1", "JOIN_COMMAND": command},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr
    assert "abc.def" not in result.stderr


# join.sh on a worker, with its files under a temporary root and stand-ins for the node's
# systemctl, kubectl and kubeadm that keep their state in files: whether kubelet runs, and
# whether the API server lists the node.
NODE_FAKES = {
    "systemctl": """case "$1 $2" in
  "is-active --quiet") [ -e "$STATE/kubelet-active" ] ;;
  "restart kubelet") echo restart >>"$STATE/log"; touch "$STATE/kubelet-active" "$STATE/node-listed" ;;
  *) exit 2 ;;
esac""",
    "kubectl": """echo "kubectl $*" >>"$STATE/log"
[ -e "$STATE/node-listed" ] && [ -z "${NEVER_LISTED:-}" ]""",
    "kubeadm": """echo "kubeadm $1" >>"$STATE/log"
if [ "$1" = join ]; then
  mkdir -p "$K8S_LAB_NODE_ROOT/etc/kubernetes"
  : >"$K8S_LAB_NODE_ROOT/etc/kubernetes/kubelet.conf"
  touch "$STATE/kubelet-active" "$STATE/node-listed"
fi""",
    "ip": "exit 0",
    "sleep": "exit 0",
}


@pytest.fixture
def worker(tmp_path):
    root, state, bin_dir = tmp_path / "root", tmp_path / "state", tmp_path / "bin"
    for directory in (root, state, bin_dir):
        directory.mkdir()
    for name, body in NODE_FAKES.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)

    class Worker:
        def joined(self, ca="sha256:0a1b2c", listed=True):
            (root / "etc/kubernetes").mkdir(parents=True)
            (root / "etc/kubernetes/kubelet.conf").write_text("")
            (root / "var/lib/k8s-lab").mkdir(parents=True)
            (root / "var/lib/k8s-lab/joined-ca.sha256").write_text(ca + "\n")
            (state / "kubelet-active").touch()
            if listed:
                (state / "node-listed").touch()

        def run(self, **env):
            environment = {
                "PATH": f"{bin_dir}:{os.environ['PATH']}", "K8S_LAB_NODE_ROOT": str(root), "STATE": str(state),
                "NODE_NAME": "k8s-w1", "JOIN_COMMAND": JOIN, "NODE_REGISTER_TIMEOUT": "1", **env,
            }  # fmt: skip
            return subprocess.run(["bash", str(ROOT / "scripts/node/join.sh")], env=environment,
                                  capture_output=True, text=True, timeout=30)  # fmt: skip

        def log(self):
            path = state / "log"
            return [line.split(" ")[:2] for line in path.read_text().splitlines()] if path.exists() else []

    return Worker()


def test_join_leaves_a_worker_alone_when_it_is_joined_and_listed(worker):
    worker.joined()
    result = worker.run()
    assert result.returncode == 0, result.stderr
    assert "already joined" in result.stderr
    assert ["restart"] not in worker.log() and ["kubeadm", "join"] not in worker.log()


def test_join_registers_a_worker_again_after_its_node_was_deleted(worker):
    # A replaced join step runs `leave` (kubectl delete node) and then this script: kubelet still
    # runs with valid credentials, so the node must be registered again, not declared joined.
    worker.joined(listed=False)
    result = worker.run()
    assert result.returncode == 0, result.stderr
    assert ["restart"] in worker.log()
    assert "registered as node k8s-w1" in result.stderr


def test_join_joins_a_fresh_worker_and_waits_until_it_is_listed(worker):
    result = worker.run()
    assert result.returncode == 0, result.stderr
    assert ["kubeadm", "join"] in worker.log()
    assert "registered as node k8s-w1" in result.stderr
    assert TOKEN not in result.stderr


def test_join_resets_a_worker_joined_to_an_earlier_cluster(worker):
    worker.joined(ca="sha256:ffff")
    result = worker.run()
    assert result.returncode == 0, result.stderr
    assert worker.log().index(["kubeadm", "reset"]) < worker.log().index(["kubeadm", "join"])


def test_join_fails_clearly_when_the_node_never_registers(worker):
    result = worker.run(NEVER_LISTED="1")
    assert result.returncode == 1
    assert "is not listed by the API server" in result.stderr


def test_toolchain_build_without_upstream_sources_says_how_to_get_the_official_cli(tmp_path):
    # A user's clone has no ../shared: the script must stop before building anything and say so.
    if shutil.which("go") is None:
        pytest.skip("go is not installed here; the toolchain script needs it before anything else")
    result = subprocess.run(
        ["bash", str(ROOT / "tools/build-pulumi-toolchain.sh"), "--no-plugin-install"],
        env={**os.environ, "K8S_LAB_UPSTREAM_DIR": str(tmp_path / "none"), "K8S_LAB_TOOLCHAIN_DIR": str(tmp_path / "cache")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "pulumi-command-v1.2.1/provider" in result.stderr
    assert "https://www.pulumi.com/docs/install/" in result.stderr
    assert not list((tmp_path / "cache").glob("*/bin/*"))


# ----------------------------------------------------------------------------------------------
# prepare.sh from an offline bundle, whole, with its files under a temporary root and stand-ins
# for the node's system tools that record every call: nothing may reach the network.

RECORDING_TOOL = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >>"$NODE_CALLS"
case "$(basename "$0") $1" in
  "containerd config") echo "SystemdCgroup = true" ;;
  # containerd's image store, as far as ctr's import and list go: a stand-in archive holds its image's name.
  "ctr -n")
    case " $* " in
      *" images import "*) cat "${!#}" >>"$NODE_CALLS.images" ;;
      *" images ls "*) grep -sx "${!##name==}" "$NODE_CALLS.images" || true ;;
    esac ;;
  "systemd-detect-virt --container") [ "$#" -gt 1 ] || echo docker ;;
  "ip -o") cat <<'EOF'
{ip_addr}
EOF
  ;;
esac
exit 0
"""
# What a node runs that must be there: the network and package tools are what must not be called.
NODE_TOOLS = ["curl", "wget", "apt-get", "apt-mark", "dpkg-query", "ctr", "crictl", "systemctl", "sysctl", "modprobe",
              "swapoff", "swapon", "containerd", "kubeadm", "ip", "systemd-detect-virt"]  # fmt: skip


def _bundle_file(root, path: str, data: bytes) -> str:
    import hashlib

    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _tgz(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_preparation_from_a_bundle_installs_its_files_imports_its_images_and_calls_no_network_tool(tmp_path):
    from components.bundle import software

    bundle, node_root, calls = tmp_path / "bundle", tmp_path / "node", tmp_path / "calls"
    for directory in ("usr/local/bin", "usr/local/sbin", "etc"):
        (node_root / directory).mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in NODE_TOOLS:
        (bin_dir / tool).write_text(RECORDING_TOOL.replace("{ip_addr}", IP_ADDR.replace("\\\\", "\\")))
        (bin_dir / tool).chmod(0o755)
    contents = {
        "kubeadm": b"kubeadm 1.36.1", "kubelet": b"kubelet 1.36.1", "kubectl": b"kubectl 1.36.1", "runc": b"runc 1.3.2",
        "containerd": _tgz({"bin/containerd": b"containerd", "bin/ctr": b"ctr", "bin/containerd-shim-runc-v2": b"shim"}),
        "cni-plugins": _tgz({"./bridge": b"bridge", "./host-local": b"host-local", "./loopback": b"loopback"}),
        "crictl": _tgz({"crictl": b"crictl"}),
        "cni-manifest": b"kind: DaemonSet\n",
    }  # fmt: skip
    lines = []
    for name, download in software.node_downloads("1.36.1", "flannel", "amd64").items():
        sha = _bundle_file(bundle, download.path, contents[name])
        lines.append(f"{name} {download.path} {download.url} {download.checksum_url or '-'} {sha}")
    images = {"registry.k8s.io/pause:3.10.2": "images/registry.k8s.io/pause/3.10.2.tar",
              "registry.k8s.io/kube-proxy:v1.36.1": "images/registry.k8s.io/kube-proxy/v1.36.1.tar"}  # fmt: skip
    for name, archive in images.items():
        _bundle_file(bundle, archive, f"{name}\n".encode())
    env = {
        **PREPARE_ENV,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "NODE_CALLS": str(calls),
        "K8S_LAB_NODE_ROOT": str(node_root),
        "NODE_ROLE": "control-plane",
        "NODE_FILES": "\n".join(lines),
        "NODE_IMAGES": "\n".join(f"{name} {archive}" for name, archive in images.items()),
        "BUNDLE": str(bundle),
    }
    result = subprocess.run(["bash", str(ROOT / "scripts/node/prepare.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "eth1\n"  # the host-only NIC, the script's one line of stdout
    made = [line.split() for line in calls.read_text().splitlines()]
    assert not [c for c in made if c[0] in ("curl", "wget", "apt-get", "apt-mark") or c[:2] == ["crictl", "pull"]], made
    # Every image imported into containerd's k8s.io namespace before kubeadm could ask for it.
    imported = [c[-1] for c in made if c[:4] == ["ctr", "-n", "k8s.io", "images"] and "import" in c]
    assert imported == [str(bundle / archive) for archive in images.values()]
    # The release files installed where the units and kubeadm expect them, checked by their digests.
    assert (node_root / "usr/local/bin/kubeadm").read_bytes() == contents["kubeadm"]
    assert (node_root / "usr/local/sbin/runc").read_bytes() == contents["runc"]
    assert (node_root / "usr/local/bin/containerd").read_bytes() == b"containerd"
    assert (node_root / "opt/cni/bin/bridge").read_bytes() == b"bridge"
    assert "ExecStart=/usr/local/bin/kubelet" in (node_root / "etc/systemd/system/kubelet.service").read_text()
    assert "sandbox = 'registry.k8s.io/pause:3.10.2'" in (node_root / "etc/containerd/config.toml").read_text()
    # A container node (systemd-detect-virt says docker): the host's swap and disk are left alone.
    patch = (node_root / "etc/kubernetes/k8s-lab-patches/kubeletconfiguration+merge.yaml").read_text()
    assert "failSwapOn: false" in patch and "imageGCHighThresholdPercent: 100" in patch
    assert not [c for c in made if c[0] in ("swapoff",)]


def test_preparation_from_a_bundle_refuses_a_file_that_does_not_match_its_digest(tmp_path):
    from components.bundle import software

    bundle = tmp_path / "bundle"
    kubeadm = software.node_downloads("1.36.1", "flannel", "amd64")["kubeadm"]
    _bundle_file(bundle, kubeadm.path, b"tampered")
    env = {
        **PREPARE_ENV,
        "K8S_LAB_NODE_ROOT": str(tmp_path / "node"),
        "NODE_FILES": f"kubeadm {kubeadm.path} {kubeadm.url} {kubeadm.checksum_url} {'0' * 64}",
        "BUNDLE": str(bundle),
    }
    result = source_and_call("scripts/node/prepare.sh", "fetch kubeadm", tmp_path, **env)
    assert result.returncode == 1
    assert f"{kubeadm.path} does not match its checksum {'0' * 64}" in result.stderr
