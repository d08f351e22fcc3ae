"""The example stacks: each validates, and any two can run side by side on one laptop."""

import itertools
import shutil
import subprocess

import pytest
import yaml

from components import config as lab_config
from components import network as net
from harness import ROOT, run_program, stack_config
from tools import stepgraph as sg

# The stacks the project ships. A user's own Pulumi.<stack>.yaml is theirs: the suite does not
# judge it (nor fail because it shares addresses with a shipped lab it never runs beside).
STACKS = ("lab", "lab2")


def test_the_shipped_stacks_are_the_projects_stack_files():
    assert all((ROOT / f"Pulumi.{stack}.yaml").is_file() for stack in STACKS)
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked stack files cannot be listed")
    tracked = subprocess.run(["git", "ls-files", "Pulumi.*.yaml"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("git lists no tracked files here (an export of the project?)")
    assert sorted(name[len("Pulumi.") : -len(".yaml")] for name in tracked) == sorted(STACKS)


def load(stack: str) -> lab_config.LabConfig:
    raw = {k.split(":", 1)[1]: v for k, v in stack_config(stack).items() if k.startswith("k8s-lab:")}
    return lab_config.parse(raw, stack=stack)


def addresses(cfg: lab_config.LabConfig):
    return [r for pool in cfg.metallb.pools for r in pool.addresses]


def test_lab2_is_a_small_traefik_lab_of_its_own():
    cfg = load("lab2")
    assert [(n.name, n.role, str(n.ip)) for n in cfg.nodes] == [
        ("lab2-cp", "control-plane", "192.168.56.20"),
        ("lab2-w1", "worker", "192.168.56.21"),
    ]
    assert cfg.ingress.controller == "traefik" and str(cfg.ingress.ip) == "192.168.56.160"
    assert [(p.name, tuple(map(str, p.addresses))) for p in cfg.metallb.pools] == [("lab2-pool", ("192.168.56.160-192.168.56.180",))]
    assert [(a.name, a.pools) for a in cfg.metallb.l2_advertisements] == [("lab2-l2", ("lab2-pool",))]
    assert sum(n.memory_mb for n in cfg.nodes) < sum(n.memory_mb for n in load("lab").nodes)
    assert cfg.warnings == ()  # lab2.test: no mDNS detour, network inside VirtualBox's default range


def test_lab2_evaluates_under_mocks_with_its_outputs():
    run = run_program("lab2")
    assert run.outputs["node_ips"] == {"lab2-cp": "192.168.56.20", "lab2-w1": "192.168.56.21"}
    assert run.outputs["etc_hosts"] == "192.168.56.160 app.lab2.test"


def collisions(left: lab_config.LabConfig, right: lab_config.LabConfig) -> list[str]:
    """What would clash if both stacks ran on one laptop and one host-only network."""
    found = []
    if {n.name for n in left.nodes} & {n.name for n in right.nodes}:
        found.append("node (VM) names")
    if {n.ip for n in left.nodes} & {n.ip for n in right.nodes}:
        found.append("node IPs")
    for one, other in ((left, right), (right, left)):
        if any(n.ip in r for r in addresses(one) for n in other.nodes):
            found.append(f"{one.stack}'s pool holds a node IP of {other.stack}")
    if net.first_overlap(addresses(left), addresses(right)):
        found.append("pools (both MetalLBs would answer ARP for the same IP)")
    if set(left.hostnames) & set(right.hostnames):
        found.append("hostnames in /etc/hosts")
    return found


@pytest.mark.parametrize("a,b", list(itertools.combinations(STACKS, 2)))
def test_two_stacks_side_by_side_share_no_node_address_or_name(a, b):
    assert collisions(load(a), load(b)) == []


def test_the_check_names_each_clash():
    lab = load("lab")
    assert collisions(lab, lab.model_copy(update={"stack": "copy"})) == [
        "node (VM) names",
        "node IPs",
        "pools (both MetalLBs would answer ARP for the same IP)",
        "hostnames in /etc/hosts",
    ]
    raw = {k.split(":", 1)[1]: v for k, v in stack_config("lab2").items() if k.startswith("k8s-lab:")}
    raw["metallb"]["pools"][0]["addresses"] = ["192.168.56.11-192.168.56.15"]
    raw["ingress"]["ip"] = "192.168.56.13"
    wide = lab_config.parse(raw, stack="lab2")
    assert collisions(lab, wide) == ["lab2's pool holds a node IP of lab"]


def vm_environments(stack: str) -> list[dict]:
    run = run_program(stack)
    cfg = load(stack)
    graph = sg.build(run, cfg)
    vm_urns = {s.urn for s in graph.steps.values() if s.phase == "vm"}
    return [r.inputs.get("environment") or {} for r in run.resources if r.urn in vm_urns]


def test_lab_and_lab2_keep_separate_vagrant_state():
    lab, lab2 = vm_environments("lab"), vm_environments("lab2")
    if not lab or not lab2:
        pytest.skip("the program boots no VMs yet (no cluster component)")
    state = lambda envs: {env.get("VAGRANT_DOTFILE_PATH") for env in envs}  # noqa: E731
    assert None not in state(lab) | state(lab2), "every vagrant command needs its stack's VAGRANT_DOTFILE_PATH"
    assert not state(lab) & state(lab2), "two stacks in one folder would share one Vagrant state"


# -- preview warns about the project's other stack files --


def neighbour_warnings(run) -> list[str]:
    return [w for w in run.warnings if "another stack of this project" in w]


def test_a_stack_reusing_what_another_stack_file_uses_is_warned_naming_that_file():
    assert neighbour_warnings(run_program("lab")) == []  # lab2 beside it shares nothing
    lab2 = load("lab2")
    reuse = {
        "nodes[1].ip": str(lab2.nodes[1].ip),
        "nodes[2].name": lab2.nodes[1].name,
        "metallb.pools[0].addresses": ["192.168.56.170-192.168.56.250"],
    }
    run = run_program("lab", reuse)  # a warning, not an error: the program goes on
    assert run.of_type("kubernetes:yaml/v2:ConfigFile")
    (warning,) = neighbour_warnings(run)
    assert warning.startswith("Pulumi.lab2.yaml is another stack of this project")
    assert "node IP 192.168.56.21 (nodes[1].ip) is also the IP of its node lab2-w1" in warning
    assert "node name lab2-w1 (nodes[2].name) is also one of its nodes" in warning
    assert "lab-pool (metallb.pools[0]) 192.168.56.170-192.168.56.250 overlaps its pool lab2-pool" in warning


def stack_file(directory, stack: str, config: dict) -> None:
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))


def test_every_other_stack_file_that_parses_is_compared_and_the_rest_left_out_quietly(tmp_path):
    lab = stack_config("lab")
    stack_file(tmp_path, "lab", lab)  # its own file: no clash with itself
    stack_file(tmp_path, "copy", lab)
    # Keys without the namespace are the project's; only the clash-prone keys are read, so a
    # secret kubeconfig (existing-cluster mode) does not hide the pool it shares.
    stack_file(tmp_path, "kind", {"network": lab["k8s-lab:network"], "metallb": lab["k8s-lab:metallb"], "domain": "kind.test",
                                  "k8s-lab:cluster": {"kubeconfig": {"secure": "v1:AAAA"}}})  # fmt: skip
    stack_file(tmp_path, "apart", {**lab, "k8s-lab:network": {"cidr": "192.168.57.0/24"}, "k8s-lab:domain": "apart.test"})
    stack_file(tmp_path, "typo", {**lab, "k8s-lab:network": {"cidr": "192.168.56.0"}})
    (tmp_path / "Pulumi.torn.yaml").write_text("config:\n  k8s-lab:nodes: [\n")
    (tmp_path / "Pulumi.empty.yaml").write_text("")
    raw = {k.split(":", 1)[1]: v for k, v in lab.items() if k.startswith("k8s-lab:")}
    warnings = [w for w in lab_config.parse(raw, stack="lab", project_dir=tmp_path).warnings if "another stack" in w]
    assert [w.split(" ", 1)[0] for w in warnings] == ["Pulumi.copy.yaml", "Pulumi.kind.yaml"]
    copy, kind = warnings
    for clash in ("node name k8s-cp (nodes[0].name)", "node IP 192.168.56.12 (nodes[2].ip)", "lab-pool (metallb.pools[0])",
                  "hostname app.lab.local (domain lab.local)"):  # fmt: skip
        assert clash in copy
    assert "lab-pool (metallb.pools[0])" in kind and "node" not in kind.split(":", 1)[1]
