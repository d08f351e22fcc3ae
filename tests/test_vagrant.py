"""The Vagrantfile under the real vagrant CLI, fed with the node specs the program produces.

``vagrant status --machine-readable`` loads the Vagrantfile and lists the machines it defines
without creating any, so it runs here with no hypervisor. It uses the libvirt provider (which
reports "not created" without a libvirt daemon); which machines the Vagrantfile defines does not
depend on the provider. Vagrant's own state goes to temporary directories.
"""

import json
import shutil
import subprocess

import pytest

from harness import ROOT, run_program

COMMAND = "command:local:Command"


_PLUGINS: dict[str, str] = {}


def vagrant() -> str:
    """The vagrant CLI with the libvirt provider these tests load, or a skip saying what is missing."""
    found = shutil.which("vagrant")
    if not found:
        pytest.skip("vagrant is not installed here (Debian: apt-get install vagrant vagrant-libvirt)")
    if "list" not in _PLUGINS:
        listing = subprocess.run([found, "plugin", "list"], capture_output=True, text=True, timeout=60)
        _PLUGINS["list"] = listing.stdout
    if "vagrant-libvirt" not in _PLUGINS["list"]:
        pytest.skip(
            "the vagrant-libvirt plugin is not installed (Debian: apt-get install vagrant-libvirt; it is only a "
            "recommendation of the vagrant package, so --no-install-recommends leaves it out)"
        )
    return found


def machines(lines: str) -> dict[str, str]:
    """Machine name -> state, from `vagrant status --machine-readable` (timestamp,target,type,data...)."""
    found = {}
    for line in lines.splitlines():
        parts = line.split(",", 3)
        if len(parts) == 4 and parts[1] and parts[2] == "state":
            found[parts[1]] = parts[3]
    return found


def test_machine_readable_parser():
    canned = "1,,ui,info,Current machine states\n1,k8s-cp,state,running\n1,k8s-w1,state,not_created\n1,k8s-w1,provider-name,libvirt"
    assert machines(canned) == {"k8s-cp": "running", "k8s-w1": "not_created"}


@pytest.fixture(scope="module")
def vagrant_home(tmp_path_factory):
    """One throwaway VAGRANT_HOME for the module: vagrant sets it up once (a second or two)."""
    return tmp_path_factory.mktemp("vagrant.d")


def vagrant_status(environment: dict, tmp_path, vagrant_home) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "VAGRANT_HOME": str(vagrant_home),
        **environment,
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"),
    }
    return subprocess.run(
        [vagrant(), "status", "--machine-readable"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def vm_environments(run) -> list[dict]:
    return [r.inputs["environment"] for r in run.of_type(COMMAND) if r.name.endswith("-vm")]


def test_the_vagrantfile_defines_exactly_the_configured_machines(tmp_path, vagrant_home):
    vagrant()
    run = run_program("lab", {"vagrant.provider": "libvirt"})
    envs = vm_environments(run)
    # Merge the specs the VM steps carry one by one, as a single call would see them.
    specs = [spec for env in envs for spec in json.loads(env["K8S_LAB_NODES"])]
    result = vagrant_status({**envs[0], "K8S_LAB_NODES": json.dumps(specs)}, tmp_path, vagrant_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert machines(result.stdout) == {"k8s-cp": "not_created", "k8s-w1": "not_created", "k8s-w2": "not_created"}
    assert (tmp_path / "dot" / "machines").is_dir()  # vagrant's state went to the stack's own path


def test_lifecycle_commands_see_the_machines_recorded_for_the_stack(tmp_path, vagrant_home):
    """./lab stop/start/status run vagrant without K8S_LAB_NODES: the recorded specs define the machines."""
    vagrant()
    run = run_program(
        "lab2",
        {
            "vagrant.provider": "libvirt",
            "nodes": [
                {"name": "other-cp", "role": "control-plane", "ip": "192.168.56.30", "cpus": 2, "memory_mb": 2048},
                {"name": "other-w1", "role": "worker", "ip": "192.168.56.31"},
            ],
            "metallb.pools[0].addresses": ["192.168.56.180-192.168.56.190"],
            "ingress.ip": "192.168.56.180",
        },
        stack_file=ROOT / "Pulumi.lab.yaml",
    )
    records = tmp_path / "dot" / "k8s-lab-nodes"
    records.mkdir(parents=True)
    envs = vm_environments(run)
    for env in envs:
        # What scripts/vagrant.sh `up` records after a successful boot.
        name = json.loads(env["K8S_LAB_NODES"])[0]["name"]
        (records / f"{name}.json").write_text(env["K8S_LAB_NODES"] + "\n")
    plain = {k: v for k, v in envs[0].items() if k != "K8S_LAB_NODES"}
    result = vagrant_status(plain, tmp_path, vagrant_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(machines(result.stdout)) == {"other-cp", "other-w1"}
