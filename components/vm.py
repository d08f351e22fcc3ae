"""One lab node as a Vagrant machine: ``vagrant up <node>`` on create, ``vagrant destroy -f`` on delete.

The repo's ``Vagrantfile`` defines no machine of its own: every vagrant command gets the specs of
the nodes it acts on in ``K8S_LAB_NODES`` (JSON, built by :func:`node_specs`), so the program is
the only source of truth and nothing is generated into the work tree. Each stack keeps its Vagrant
state in its own ``VAGRANT_DOTFILE_PATH`` (``.vagrant/<stack>``), so two labs live side by side.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Optional, Sequence

import pulumi

from components.command_step import Step, command_step
from components.config import NodeConfig, VagrantConfig

VAGRANT_SCRIPT = "scripts/vagrant.sh"


def dotfile_path(stack: str) -> str:
    """Where Vagrant keeps this stack's machine state, relative to the project root (git-ignored)."""
    return f".vagrant/{stack}"


def node_specs(
    nodes: Sequence[NodeConfig], vagrant: VagrantConfig, network_cidr: IPv4Network, bundle: Optional[Path] = None
) -> str:
    """``K8S_LAB_NODES``: what the Vagrantfile needs to define these machines, as compact JSON.

    Docker's networks take a prefix length as the netmask (a dotted one is refused); a docker node
    also gets the offline bundle's directory, which the Vagrantfile mounts into it.
    """
    netmask = str(network_cidr.prefixlen) if vagrant.containers else str(network_cidr.netmask)
    specs = []
    for node in nodes:
        spec = {
            "name": node.name,
            "ip": str(node.ip),
            "netmask": netmask,
            "cpus": node.cpus,
            "memory_mb": node.memory_mb,
            "box": vagrant.box,
            "box_version": vagrant.box_version,
        }
        if vagrant.containers and bundle is not None:
            spec["bundle"] = str(bundle)
        specs.append(spec)
    return json.dumps(specs, sort_keys=True, separators=(",", ":"))


def vagrant_environment(
    stack: str, nodes: Sequence[NodeConfig], vagrant: VagrantConfig, network_cidr: IPv4Network, bundle: Optional[Path] = None
) -> dict[str, str]:
    """The environment of every vagrant command acting on ``nodes``.

    Only the nodes a step touches are listed, so a change to one node's spec changes only the
    steps of that node.
    """
    return {
        "VAGRANT_DOTFILE_PATH": dotfile_path(stack),
        "VAGRANT_DEFAULT_PROVIDER": vagrant.provider,
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
        "K8S_LAB_STACK": stack,
        "K8S_LAB_NODES": node_specs(nodes, vagrant, network_cidr, bundle),
    }


def vagrant_command(action: str, *args: str) -> str:
    """A command line of the one script that calls the Vagrant CLI."""
    return " ".join(shlex.quote(part) for part in ("bash", VAGRANT_SCRIPT, action, *args))


@dataclass(frozen=True)
class VirtualMachineArgs:
    stack: str
    node: NodeConfig
    vagrant: VagrantConfig
    network_cidr: IPv4Network
    after: Sequence[pulumi.Resource] = ()
    bundle: Optional[Path] = None
    """The offline bundle's directory, mounted into docker nodes."""
    """Ordering only: the box download, and under VirtualBox the previous machine of the chain."""


class VirtualMachine(pulumi.ComponentResource):
    """A Vagrant machine with a fixed name and address."""

    step: Step
    """The ``vagrant up`` step; its id changes whenever the machine is recreated."""

    node: NodeConfig

    def __init__(self, name: str, args: VirtualMachineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:vm:VirtualMachine", name, None, opts)
        self.node = args.node
        self.step = command_step(
            f"{name}-vm",
            parent=self,
            create=vagrant_command("up", args.node.name),
            delete=vagrant_command("destroy", args.node.name),
            environment=vagrant_environment(args.stack, [args.node], args.vagrant, args.network_cidr, args.bundle),
            # The Vagrantfile is not part of the spec on purpose: editing it must not destroy
            # running machines. A machine picks it up when recreated (`pulumi up --replace`).
            scripts=[VAGRANT_SCRIPT],
            after=args.after,
            # Same machine name and IP: the old machine must be gone before the new one boots.
            fixed_identity=True,
        )
        self.register_outputs({"id": self.step.id})
