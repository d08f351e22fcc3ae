"""Stacks the tier runs: the seed's lab on an existing cluster, and the Vagrant lab (with the testbed's
stand-in vagrant, tools/testbed/vagrant.py)."""

from __future__ import annotations

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


