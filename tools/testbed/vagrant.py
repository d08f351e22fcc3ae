"""The one stand-in for the Vagrant CLI, for the tiers that run the Vagrant lab's steps without
machines (the engine lifecycle tests, the control-plane tier); the node tier runs the real one.

No machine exists. Every call is recorded (argv, and which of the project's node scripts came on
stdin) as a JSON line, and the answers are what k8s-lab's steps read back: the boxes already
added, the prepared node's host-only NIC, a join command, the control plane's admin kubeconfig.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

VAGRANT_STAND_IN = """#!/usr/bin/env python3
# Stand-in for the Vagrant CLI (tools/testbed/vagrant.py): no VM exists.
import json, sys
from pathlib import Path

LOG = {log!r}
SCRIPTS = {scripts!r}
KUBECONFIG = {kubeconfig!r}
NIC = {nic!r}
CONTROL_PLANE = {control_plane!r}
BOXES = {boxes!r}

args = sys.argv[1:]
entry = {{"argv": args, "script": None}}
answer = ""
if args[:2] == ["box", "list"]:
    answer = BOXES
elif args[:1] == ["ssh"]:
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


def write_vagrant_stand_in(
    bin_dir: Path,
    *,
    log: Path,
    scripts: Path,
    kubeconfig: Path,
    nic: str = "eth1",
    control_plane: str = "192.168.56.10:6443",
    boxes: str = "",
) -> Path:
    """A `vagrant` executable in ``bin_dir`` (put it first on PATH); its calls go to ``log`` as JSON
    lines. ``scripts``: the node scripts it recognises on stdin; ``boxes``: what `vagrant box list` says."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "vagrant"
    path.write_text(
        VAGRANT_STAND_IN.format(
            log=str(log), scripts=str(scripts), kubeconfig=str(kubeconfig), nic=nic, control_plane=control_plane, boxes=boxes
        )
    )
    path.chmod(0o755)
    return path


def vagrant_calls(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def describe(call: dict) -> Optional[str]:
    """A call as the lab's steps mean it: ``up k8s-w1``, ``prepare k8s-w1``, ``mint-token k8s-cp``,
    ``join k8s-w1``, ``leave k8s-w1``, ``destroy k8s-w1``, ``kubeconfig k8s-cp`` (None for a query)."""
    argv = call["argv"]
    verb = argv[0] if argv else ""
    if verb == "box":
        return f"box-add {argv[2]}" if argv[1:2] == ["add"] else None
    if verb in ("up", "destroy"):
        return f"{verb} {argv[-1] if verb == 'destroy' else argv[1]}"
    if verb == "ssh":
        node, command = argv[1], argv[argv.index("-c") + 1] if "-c" in argv else ""
        if "kubeadm token create" in command:
            return f"mint-token {node}"
        if "delete node" in command:
            return f"leave {command.split('delete node ', 1)[1].split()[0]}"
        if "cat /etc/kubernetes/admin.conf" in command:
            return f"kubeconfig {node}"
        if call.get("script"):
            return f"{call['script'].removesuffix('.sh')} {node}"
        return f"run-unknown {node}"
    return f"unexpected {' '.join(argv)}"
