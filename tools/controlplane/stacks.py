"""Stacks the tier runs: the seed's lab on an existing cluster, and the Vagrant lab with a stand-in vagrant."""

from __future__ import annotations

import json
from pathlib import Path

from tools.project import lab_config


def existing_cluster_config(**overrides) -> dict:
    """The seed's lab in existing-cluster mode; the kubeconfig is set apart, as a secret."""
    config = lab_config(
        **{
            "k8s-lab:network": {"cidr": "192.168.56.0/24", "interface": "eth1"},
            # The self-check curls the ingress IP on the lab network; it has loopback tests of its own.
            "k8s-lab:self_check": {"enabled": False},
        }
    )
    del config["k8s-lab:nodes"], config["k8s-lab:vagrant"]
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def set_kubeconfig(project, stack: str, kubeconfig: str) -> None:
    """The existing cluster's kubeconfig, as a Pulumi secret (as README tells users to set it)."""
    project.pulumi("config", "set", "--stack", stack, "--secret", "--path", "k8s-lab:cluster.kubeconfig", kubeconfig)


VAGRANT_STAND_IN = """#!/usr/bin/env python3
# Stand-in for the Vagrant CLI: no VM exists. Records every call (argv, and which of the
# project's node scripts came on stdin) and answers what k8s-lab's steps read back: the
# prepared node's host-only NIC, a join command, the control plane's admin kubeconfig.
import json, sys
from pathlib import Path

LOG = {log!r}
SCRIPTS = {scripts!r}
KUBECONFIG = {kubeconfig!r}
NIC = {nic!r}
CONTROL_PLANE = {control_plane!r}

args = sys.argv[1:]
entry = {{"argv": args, "script": None}}
answer = ""
if args[:1] == ["ssh"]:
    command = args[args.index("-c") + 1] if "-c" in args else ""
    if "kubeadm token create" in command:
        answer = ("kubeadm join " + CONTROL_PLANE + " --token abcdef.0123456789abcdef "
                  "--discovery-token-ca-cert-hash sha256:" + "0" * 64 + "\\n")
    elif "cat /etc/kubernetes/admin.conf" in command:
        answer = Path(KUBECONFIG).read_text()
    elif "delete node" in command:
        answer = ""
    else:
        text = sys.stdin.read()
        for script in sorted(Path(SCRIPTS).glob("*.sh")):
            if script.read_text() in text:
                entry["script"] = script.name
        if entry["script"] == "prepare.sh":
            answer = NIC + "\\n"
with open(LOG, "a") as log:
    log.write(json.dumps(entry) + "\\n")
sys.stdout.write(answer)
"""


def write_vagrant_stand_in(bin_dir: Path, *, log: Path, scripts: Path, kubeconfig: Path, nic: str, control_plane: str) -> Path:
    """A `vagrant` executable in ``bin_dir`` (put it first on PATH); its calls go to ``log`` as JSON lines."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "vagrant"
    path.write_text(
        VAGRANT_STAND_IN.format(log=str(log), scripts=str(scripts), kubeconfig=str(kubeconfig), nic=nic, control_plane=control_plane)
    )
    path.chmod(0o755)
    return path


def vagrant_calls(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
