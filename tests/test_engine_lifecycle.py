"""The Vagrant lab's command steps through the real Pulumi CLI and the real command provider.

What a user lives with after the first `up`: which commands a later `up` runs, what a change to
one node replaces, what a script edit or a moved project does, and the order `destroy` takes.
These are properties of upstream pulumi-command's lifecycle (a changed create, dir or
environment re-runs create in place; only changed triggers replace) meeting the program's
triggers, so they are only proven through the real engine and provider.

Stand-ins: ``vagrant`` on PATH is the testbed's (tools/testbed/vagrant.py), which records each call and answers as far as the
lab's steps need (the NIC name, a join command, a kubeconfig); it boots nothing. The program is
the cluster layer alone (``KubeadmCluster`` built from the stack's config as ``__main__.py``
builds it, from the same ``KubeadmClusterArgs.from_config``): MetalLB's and the ingress's manifests are components the Kubernetes provider expands
against a live API server, which the real control-plane tier provides and this test does not. As
a guard, every `pulumi` runs in a network namespace of its own with only loopback, so nothing can
leave (the stand-in's kubeconfig names the user's network).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from tools.project import Project, lab_config
from tools.testbed.netns import LOOPBACK_ONLY
from tools.testbed.vagrant import describe, vagrant_calls, write_vagrant_stand_in

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engine-lifecycle")]

if shutil.which("pulumi") is None:
    pytest.skip(
        "the Pulumi CLI is not on PATH (tools/build-pulumi-toolchain.sh builds it; .ci/run does)",
        allow_module_level=True,
    )
if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
    pytest.skip(
        "these tests run pulumi in a loopback-only network namespace, which needs root, unshare and ip",
        allow_module_level=True,
    )

COMMAND = "command:local:Command"

# What the stand-in vagrant hands back as the control plane's admin kubeconfig; nothing contacts it.
STAND_IN_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://192.168.56.10:6443
contexts: [{name: lab, context: {cluster: lab, user: admin}}]
current-context: lab
users: [{name: admin, user: {token: stand-in}}]
"""
PROVIDER = "pulumi:providers:kubernetes"



CLUSTER_ONLY = """import pulumi

from components import config as lab_config
from components.kubeadm import KubeadmCluster, KubeadmClusterArgs

cfg = lab_config.load()
cluster = KubeadmCluster(cfg.stack, KubeadmClusterArgs.from_config(cfg))
pulumi.export("kubeconfig", cluster.kubeconfig)
"""


class Lab:
    """A copy of the project whose `pulumi` runs in a loopback-only namespace with the stand-in vagrant."""

    def __init__(self, tmp_path):
        self.project = Project(tmp_path)
        (self.project.dir / "__main__.py").write_text(CLUSTER_ONLY)
        bin_dir = tmp_path / "bin"
        self.log = tmp_path / "vagrant.log"
        kubeconfig = tmp_path / "admin.conf"
        kubeconfig.write_text(STAND_IN_KUBECONFIG)
        write_vagrant_stand_in(
            bin_dir,
            log=self.log,
            scripts=self.project.dir / "scripts" / "node",
            kubeconfig=kubeconfig,
            boxes="bento/ubuntu-24.04 (virtualbox, 202510.26.0)",
        )
        self.project.env.update(PATH=f"{bin_dir}{os.pathsep}{self.project.env['PATH']}")
        self.project.stack("lab", lab_config(**{"k8s-lab:self_check": {"enabled": False}}))

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.project.pulumi(*args, check=check, wrapper=LOOPBACK_ONLY)

    def up(self) -> subprocess.CompletedProcess:
        return self.pulumi("up", "--stack", "lab", "--yes", "--skip-preview")

    def calls(self) -> list[str]:
        """The stand-in vagrant's calls since the last time this was asked, as the steps mean them."""
        calls = [described for call in vagrant_calls(self.log) if (described := describe(call))]
        self.log.write_text("")
        return calls

    def ids(self, type_: str = COMMAND) -> dict[str, str]:
        state = json.loads(self.pulumi("stack", "export", "--stack", "lab").stdout)["deployment"]
        return {r["urn"].rsplit("::", 1)[1]: r.get("id", "") for r in state.get("resources") or [] if r["type"] == type_}

    def preview(self) -> dict[str, str]:
        """What `pulumi preview` plans: resource name -> op (same, update, replace, ...)."""
        steps = json.loads(self.pulumi("preview", "--stack", "lab", "--json").stdout)["steps"]
        return {step["urn"].rsplit("::", 1)[1]: step["op"] for step in steps}

    def set_config(self, path: str, value) -> None:
        file = self.project.dir / "Pulumi.lab.yaml"
        config = yaml.safe_load(file.read_text())
        node = config["config"]
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
        file.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lifecycle"))
    lab.up()
    lab.first_calls = lab.calls()
    return lab


def test_first_up_runs_every_step_once(lab):
    calls = lab.first_calls
    for node in ("k8s-cp", "k8s-w1", "k8s-w2"):
        assert calls.count(f"up {node}") == 1 and calls.count(f"prepare {node}") == 1, calls
    assert calls.count("init k8s-cp") == 1 and calls.count("cni k8s-cp") == 1
    assert calls.count("join k8s-w1") == 1 and calls.count("join k8s-w2") == 1
    assert calls.index("up k8s-cp") < calls.index("up k8s-w1") < calls.index("up k8s-w2")  # VirtualBox: a chain
    assert not [c for c in calls if c.startswith(("destroy", "leave"))]


def test_second_up_with_nothing_changed_runs_no_command(lab):
    before = lab.ids()
    lab.up()
    assert lab.calls() == []
    assert lab.ids() == before


def test_a_workers_memory_replaces_its_vm_preparation_and_join_only(lab):
    before, provider = lab.ids(), lab.ids(PROVIDER)
    lab.set_config("k8s-lab:nodes.1.memory_mb", 6144)
    try:
        plan = lab.preview()
        lab.up()
        calls = lab.calls()
        after = lab.ids()
        provider_after = lab.ids(PROVIDER)
    finally:
        lab.set_config("k8s-lab:nodes.1.memory_mb", 4096)
    # The first worker, whose join the provider waits for: the preview replaces its three steps and
    # keeps the provider, and so every Kubernetes object on it (the engine replaces all of those
    # with their provider: the control-plane tier shows them, test_controlplane.py). `up` too.
    assert sorted(name for name, op in plan.items() if op not in ("same", "update")) == sorted(
        f"lab-k8s-w1-{step}" for step in ("join", "prepare", "vm")
    ), plan
    assert plan.get("lab-provider", "same") == "same", plan
    replaced = sorted(name for name in before if after.get(name) != before[name])
    assert replaced == ["lab-k8s-w1-join", "lab-k8s-w1-prepare", "lab-k8s-w1-vm"]
    assert provider_after == provider
    # Delete before replace, dependents first: the worker leaves, its VM goes, then it comes back.
    assert calls == ["leave k8s-w1", "destroy k8s-w1", "up k8s-w1", "prepare k8s-w1", "mint-token k8s-cp", "join k8s-w1"]
    # Back to the old size: the same three again, nothing else.
    lab.up()
    assert sorted(c.split()[0] for c in lab.calls()) == ["destroy", "join", "leave", "mint-token", "prepare", "up"]
    assert lab.ids(PROVIDER) == provider


def edit_comments(text: str) -> str:
    """Every comment line of a script reworded, and one added after the shebang."""
    first, rest = text.split("\n", 1)
    return first + "\n# a comment added\n" + re.sub(r"(?m)^(\s*)# .*$", r"\1# reworded", rest)


def test_a_comment_only_script_edit_runs_nothing(lab):
    before = lab.ids()
    scripts = [lab.project.dir / "scripts" / "vagrant.sh", *sorted((lab.project.dir / "scripts" / "node").glob("*.sh"))]
    originals = {script: script.read_text() for script in scripts}
    for script, text in originals.items():
        assert edit_comments(text) != text
        script.write_text(edit_comments(text))
    try:
        result = lab.pulumi("preview", "--stack", "lab", "--expect-no-changes", check=False)
        lab.up()
        calls = lab.calls()
    finally:
        for script, text in originals.items():
            script.write_text(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == []
    assert lab.ids() == before


def test_a_script_edit_re_runs_steps_in_place_and_destroys_nothing(lab):
    before = lab.ids()
    script = lab.project.dir / "scripts" / "vagrant.sh"
    original = script.read_text()
    script.write_text(original + "\n: a real edit\n")
    try:
        ops = lab.preview()
        lab.up()
        calls = lab.calls()
    finally:
        script.write_text(original)
    changed = {name: op for name, op in ops.items() if op != "same"}
    # Every step that runs a script re-runs in place; the kubeconfig read-back and the provider
    # it configures stay as they are, so the preview shows no replacement anywhere.
    assert set(changed.values()) == {"update"}, ops
    assert len(changed) == 11 and "lab-kubeconfig" not in changed and "lab-provider" not in changed, changed
    assert lab.ids() == before
    assert calls and not [c for c in calls if c.startswith(("destroy", "leave"))], calls
    lab.up()  # the original script again: in place as well
    assert not [c for c in lab.calls() if c.startswith(("destroy", "leave"))]


def test_a_moved_project_finds_nothing_to_change(lab):
    before = lab.ids()
    moved = lab.project.dir.with_name("k8s-lab-moved")
    lab.project.dir.rename(moved)
    lab.project.dir = moved
    result = lab.pulumi("preview", "--stack", "lab", "--expect-no-changes", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lab.up()
    assert lab.calls() == []
    assert lab.ids() == before


def test_destroy_runs_every_leave_before_any_vm_destroy_and_empties_the_stack(lab):
    lab.pulumi("destroy", "--stack", "lab", "--yes", "--skip-preview")
    calls = lab.calls()
    leaves = [i for i, c in enumerate(calls) if c.startswith("leave")]
    destroys = [i for i, c in enumerate(calls) if c.startswith("destroy")]
    assert len(leaves) == 2 and len(destroys) == 3, calls
    assert max(leaves) < min(destroys), calls
    state = json.loads(lab.pulumi("stack", "export", "--stack", "lab").stdout)["deployment"]
    assert (state.get("resources") or []) == []
