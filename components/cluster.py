"""The cluster every Kubernetes resource of the lab lands in.

:class:`Cluster` is the contract downstream components rely on: a Kubernetes provider whose
kubeconfig is a secret and carries the dependency on whatever built the cluster, and the name of
the NIC on the host-only network (MetalLB announces there and nowhere else). Two kinds exist:
the Vagrant + kubeadm lab (``components.kubeadm``) and :class:`ExistingCluster`, which adopts a
cluster the user already has and creates no command resources at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.config import ClusterConfig


class Cluster(pulumi.ComponentResource):
    """What MetalLB, the ingress and the apps need from a cluster."""

    provider: k8s.Provider
    """Every Kubernetes resource of the lab uses this provider, never an ambient one. The
    provider is created only once what a pod needs before it can run is there, so whatever it
    applies waits for that and no more (see KubeadmCluster)."""

    identity: list[pulumi.CustomResource]
    """What the cluster is: when one of these is replaced, the cluster is a new one and everything
    on it was made again (the self-check runs again then)."""

    kubeconfig: Optional[pulumi.Output[str]]
    """The admin kubeconfig, a Pulumi secret (None when manifests are only rendered)."""

    interfaces: pulumi.Output[list[str]]
    """Names of the nodes' NICs on the host-only network; empty means "every interface"."""

    every_worker: list[pulumi.Resource] = []
    """Every worker's join (none for an existing cluster, whose nodes are there): what a workload
    spread one pod per node (components.manifests.spread_over_nodes) waits for, since the
    scheduler spreads only over the nodes it sees when it places each pod."""

    render_kubernetes_version: Optional[str] = None
    """The Kubernetes version Helm charts are rendered for when manifests are only written to a
    directory (no cluster to ask); None on a cluster, whose own version Helm reads."""


@dataclass(frozen=True)
class ExistingClusterArgs:
    kubeconfig: Optional[str]
    """The kubeconfig's content (the program turns it into a secret at once); None when rendering."""
    context: Optional[str] = None
    interface: Optional[str] = None
    """The nodes' NIC on the lab network, when the user knows it."""
    render_yaml_to_directory: Optional[str] = None
    """Write manifests there instead of applying them (no cluster is contacted)."""
    kubernetes_version: Optional[str] = None
    """What rendered charts are rendered for (``kubernetes.version``); unused on a live cluster."""

    @classmethod
    def from_config(
        cls, config: ClusterConfig, interface: Optional[str] = None, kubernetes_version: Optional[str] = None
    ) -> "ExistingClusterArgs":
        """The stack's ``cluster`` section, its kubeconfig unwrapped for the provider alone."""
        return cls(
            kubeconfig=config.kubeconfig.get_secret_value() if config.kubeconfig else None,
            context=config.context,
            interface=interface,
            render_yaml_to_directory=config.render_yaml_to_directory,
            kubernetes_version=kubernetes_version,
        )


class ExistingCluster(Cluster):
    """A cluster that already exists (kind, k3s, bare metal), reached through its kubeconfig."""

    def __init__(self, name: str, args: ExistingClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:cluster:ExistingCluster", name, None, opts)
        self.kubeconfig = None if args.kubeconfig is None else pulumi.Output.secret(args.kubeconfig)
        self.provider = k8s.Provider(
            f"{name}-provider",
            # Never None: the SDK would fill it from the shell's KUBECONFIG, which the provider
            # refuses beside render_yaml_to_directory. An empty string is "no kubeconfig" to both.
            kubeconfig=self.kubeconfig if self.kubeconfig is not None else "",
            context=args.context,
            render_yaml_to_directory=args.render_yaml_to_directory,
            # Resources of a cluster that vanished can still be removed from state by destroy.
            delete_unreachable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Another cluster (the kubeconfig's server or CA) replaces the provider.
        self.identity = [self.provider]
        # Without a cluster Helm would take its built-in v1.20.0, below what the lab's charts accept.
        self.render_kubernetes_version = args.kubernetes_version if args.render_yaml_to_directory else None
        self.interfaces = pulumi.Output.from_input([args.interface] if args.interface else [])
        self.register_outputs({"interfaces": self.interfaces})
