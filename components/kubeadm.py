"""The lab's own cluster: Vagrant machines bootstrapped with kubeadm, one command step each.

The graph, and why it has this shape (the critical path is what the user waits for):

    box ─> VM per node ─> prepare per node ─> init (control plane) ─┬─> CNI ──────┐
           (control plane first;              (as soon as that      ├─> joins      ├─> provider
            VirtualBox: a chain,               node's VM is up)     └─> kubeconfig ┘
            libvirt: workers in parallel)

Joins and the CNI both wait for init only, so workers join while the CNI rolls out. The
provider is created only after the CNI and the first join (``depends_on``), so no workload is
applied before pods can get IPs and have a node to run on. Depending on this component waits for
every join as well.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.bundle import software
from components.bundle.plan import NODE_BUNDLE, NodePlan, node_plan
from components.cluster import Cluster
from components.command_step import Step, command_step
from components.config import (
    KubernetesConfig,
    LabConfig,
    NetworkConfig,
    NodeConfig,
    VagrantConfig,
    control_plane_and_workers,
)
from components.kubeadm_steps import step_name
from components.vm import VAGRANT_SCRIPT, VirtualMachine, VirtualMachineArgs, vagrant_command, vagrant_environment

API_SERVER_PORT = 6443
PATCHES_DIR = "/etc/kubernetes/k8s-lab-patches"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"

PREPARE_SCRIPT = "scripts/node/prepare.sh"
INIT_SCRIPT = "scripts/node/init.sh"
JOIN_SCRIPT = "scripts/node/join.sh"
CNI_SCRIPT = "scripts/node/cni.sh"
KUBECONFIG_FILE_SCRIPT = "scripts/kubeconfig-file.sh"


# --------------------------------------------------------------------------------------------
# Pure helpers


def api_server_url(control_plane: NodeConfig) -> str:
    """What the kubeconfig points at: the control plane's host-only IP, which the laptop reaches."""
    return f"https://{control_plane.ip}:{API_SERVER_PORT}"


def kubeadm_config(stack: str, control_plane: NodeConfig, kubernetes: KubernetesConfig, containers: bool = False) -> str:
    """The kubeadm configuration of ``kubeadm init``, as a multi-document YAML string.

    ``containers``: the nodes are system containers sharing the host's kernel (vagrant.provider:
    docker), so kube-proxy must leave the host-wide conntrack table size alone.
    """
    init = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        # The host-only IP, never the NAT NIC's 10.0.2.15 that every VirtualBox VM shares.
        "localAPIEndpoint": {"advertiseAddress": str(control_plane.ip), "bindPort": API_SERVER_PORT},
        "nodeRegistration": {
            "name": control_plane.name,
            "criSocket": CRI_SOCKET,
            "kubeletExtraArgs": [{"name": "node-ip", "value": str(control_plane.ip)}],
        },
        # Node preparation writes what the kubelet's configuration must say on this kind of node.
        "patches": {"directory": PATCHES_DIR},
    }
    cluster = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "clusterName": stack,
        "kubernetesVersion": f"v{kubernetes.version}",
        # admin.conf's server: the address the laptop uses too.
        "controlPlaneEndpoint": f"{control_plane.ip}:{API_SERVER_PORT}",
        "apiServer": {"certSANs": [str(control_plane.ip)]},
        "networking": {"podSubnet": str(kubernetes.pod_cidr), "serviceSubnet": str(kubernetes.service_cidr)},
    }
    proxy: dict = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": kubernetes.kube_proxy_mode,
    }
    if kubernetes.kube_proxy_mode == "ipvs":
        # MetalLB's L2 mode answers ARP itself; IPVS must not answer for every VIP on every node.
        proxy["ipvs"] = {"strictARP": True}
    if containers:
        # nf_conntrack_max is one value for the whole host, read-only from a container.
        proxy["conntrack"] = {"maxPerCore": 0}
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
    }
    return yaml.safe_dump_all([init, cluster, proxy, kubelet], sort_keys=False)


def node_script_environment(
    variables: Mapping[str, pulumi.Input[str]], also: Sequence[str] = ()
) -> dict[str, pulumi.Input[str]]:
    """Variables for a script run inside a VM, plus the list of names scripts/vagrant.sh forwards
    (these and ``also``; the K8S_LAB_* ones are scripts/vagrant.sh's own)."""
    names = sorted(name for name in {*variables, *also} if not name.startswith("K8S_LAB_"))
    return {**variables, "K8S_LAB_FORWARD": " ".join(names)}


def parse_interface(stdout: str) -> str:
    """Node preparation prints the host-only NIC's name as its last line."""
    lines = [line.strip() for line in stdout.replace("\r", "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def unique_interfaces(stdouts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(name for name in map(parse_interface, stdouts) if name))


def kubeconfig_path(stack: str) -> Path:
    return Path.home() / ".kube" / f"k8s-lab-{stack}"


def vagrant_missing_warning() -> Optional[str]:
    if shutil.which("vagrant"):
        return None
    return (
        "vagrant is not on PATH: `pulumi up` will fail at the first VM step. Install Vagrant "
        "(https://developer.hashicorp.com/vagrant/install) with VirtualBox, or vagrant-libvirt for "
        "vagrant.provider: libvirt"
    )


# --------------------------------------------------------------------------------------------
# The component


@dataclass(frozen=True)
class KubeadmClusterArgs:
    stack: str
    nodes: tuple[NodeConfig, ...]
    vagrant: VagrantConfig
    kubernetes: KubernetesConfig
    network: NetworkConfig
    write_kubeconfig: bool = False
    payload: NodePlan = NodePlan(files="")
    """What node preparation installs and where it comes from (the offline bundle, or upstream)."""

    @classmethod
    def from_config(cls, cfg: LabConfig) -> "KubeadmClusterArgs":
        """The cluster part of the stack config."""
        return cls(
            stack=cfg.stack,
            nodes=cfg.nodes,
            vagrant=cfg.vagrant,
            kubernetes=cfg.kubernetes,
            network=cfg.network,
            write_kubeconfig=cfg.write_kubeconfig,
            payload=node_plan(cfg),
        )


class KubeadmCluster(Cluster):
    """Three (or more) Vagrant VMs with Kubernetes bootstrapped by kubeadm."""

    vms: dict[str, VirtualMachine]
    prepared: dict[str, Step]
    """Node preparation per node; its stdout is the node's host-only NIC."""
    init: Step
    joins: dict[str, Step]
    """One join per worker; depending on the component waits for all of them."""
    cni: Step
    kubeconfig_file: Optional[str]
    """Where the kubeconfig was written, when write_kubeconfig is on."""

    def __init__(self, name: str, args: KubeadmClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:kubeadm:KubeadmCluster", name, None, opts)
        warning = vagrant_missing_warning()
        if warning:
            pulumi.log.warn(warning, resource=self)

        control_plane, workers = control_plane_and_workers(args.nodes)
        assert control_plane is not None  # the configuration's checks require one

        def env(
            nodes: Sequence[NodeConfig], variables: Optional[Mapping[str, pulumi.Input[str]]] = None, also: Sequence[str] = ()
        ) -> dict:
            return {
                **vagrant_environment(args.stack, nodes, args.vagrant, args.network.cidr, args.payload.bundle),
                **node_script_environment(variables or {}, also),
            }

        def run_script(
            step: str,
            node: NodeConfig,
            script: str,
            variables: Mapping[str, pulumi.Input[str]],
            builds_on: Sequence[Step],
            in_place: Optional[Mapping[str, pulumi.Input[str]]] = None,
        ) -> Step:
            """The step named ``step``: ``script`` run as root on ``node`` (vagrant.sh run) with
            ``variables`` and ``in_place`` ones (see command_step)."""
            return command_step(
                step,
                parent=self,
                create=vagrant_command("run", node.name, script),
                environment=env([node], variables, also=list(in_place or {})),
                scripts=[VAGRANT_SCRIPT, script],
                builds_on=builds_on,
                in_place=in_place,
            )

        # -- machines --
        box = command_step(
            step_name(name, "box"),
            parent=self,
            # Downloaded once, before any machine, so parallel `vagrant up`s never race on it.
            create=vagrant_command("box", args.vagrant.box, args.vagrant.box_version),
            environment=env([]),
            scripts=[VAGRANT_SCRIPT],
        )
        self.vms = {}
        previous: Optional[VirtualMachine] = None
        # The control plane boots first wherever it is listed: it is on the critical path.
        for node in [control_plane, *workers]:
            after: list[pulumi.Resource] = [box.command]
            if previous is not None:
                if args.vagrant.provider == "virtualbox":
                    # VirtualBox cannot boot machines of one environment concurrently: a chain.
                    after.append(previous.step.command)
                else:
                    # libvirt boots in parallel, but the first `vagrant up` on a host uploads the
                    # box into the storage pool under an in-process lock only; concurrent first
                    # ups race on it. So the control plane goes first, then all workers at once
                    # (they are needed only after init, so the critical path does not move).
                    after.append(self.vms[control_plane.name].step.command)
            vm = VirtualMachine(
                f"{name}-{node.name}",
                VirtualMachineArgs(
                    stack=args.stack,
                    node=node,
                    vagrant=args.vagrant,
                    network_cidr=args.network.cidr,
                    after=after,
                    bundle=args.payload.bundle,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.vms[node.name] = vm
            previous = vm

        # -- node preparation, each as soon as its own VM is up --
        payload = args.payload
        cni = software.cni_manifest(args.kubernetes.cni)
        self.prepared = {}
        for node in args.nodes:
            variables = {
                "NODE_NAME": node.name,
                "NODE_IP": str(node.ip),
                "NODE_ROLE": node.role,
                "NETWORK_INTERFACE": args.network.interface or "",
                "K8S_VERSION": args.kubernetes.version,
                "KUBE_PROXY_MODE": args.kubernetes.kube_proxy_mode,
            }
            # What the node installs, and from where: a change (another app's images, the bundle
            # turned on, a newer containerd) re-runs preparation in place and rebuilds nothing.
            payload_variables = {
                "NODE_FILES": payload.files,
                "NODE_IMAGES": payload.images.get(node.role, ""),
                "BUNDLE": NODE_BUNDLE if payload.bundle is not None else "",
            }
            if payload.bundle is not None:
                # scripts/vagrant.sh copies these into a VM first (a docker node has the bundle mounted).
                payload_variables["K8S_LAB_BUNDLE"] = str(payload.bundle)
                payload_variables["K8S_LAB_BUNDLE_FILES"] = payload.uploads.get(node.role, "")
            self.prepared[node.name] = run_script(
                step_name(name, "prepare", node.name),
                node,
                PREPARE_SCRIPT,
                variables,
                builds_on=[self.vms[node.name].step],
                in_place=payload_variables,
            )

        # -- control plane --
        self.init = run_script(
            step_name(name, "init"),
            control_plane,
            INIT_SCRIPT,
            {
                "NODE_NAME": control_plane.name,
                "KUBEADM_CONFIG": kubeadm_config(args.stack, control_plane, args.kubernetes, containers=args.vagrant.containers),
                # A cluster cannot swap its CNI in place: another CNI means a new cluster.
                "CNI": args.kubernetes.cni,
            },
            builds_on=[self.prepared[control_plane.name]],
        )

        # -- CNI and joins, side by side once init is done --
        control_plane_nic = self.prepared[control_plane.name].stdout.apply(parse_interface)
        self.cni = run_script(
            step_name(name, "cni"),
            control_plane,
            CNI_SCRIPT,
            {
                "NODE_NAME": control_plane.name,
                "CNI": args.kubernetes.cni,
                # Node preparation put the manifest there, from the bundle or from this URL.
                "CNI_MANIFEST_URL": cni.url,
                "CNI_MANIFEST_FILE": cni.name,
                "POD_CIDR": str(args.kubernetes.pod_cidr),
                # Every node runs the same box, so the control plane's NIC name is everyone's.
                "IFACE": control_plane_nic,
            },
            builds_on=[self.init],
        )
        self.joins = {}
        for worker in workers:
            self.joins[worker.name] = command_step(
                step_name(name, "join", worker.name),
                parent=self,
                # Each join mints its own short-lived token on the control plane: one captured
                # at init would be dead a day later.
                create=vagrant_command("join", control_plane.name, worker.name),
                delete=vagrant_command("leave", control_plane.name, worker.name),
                environment=env([control_plane, worker], {"NODE_NAME": worker.name}),
                scripts=[VAGRANT_SCRIPT, JOIN_SCRIPT],
                builds_on=[self.init, self.prepared[worker.name]],
                # The node name is fixed: leave the cluster before joining it again.
                fixed_identity=True,
                sensitive=True,
            )

        # -- the kubeconfig, read back as a secret --
        readback = command_step(
            step_name(name, "kubeconfig"),
            parent=self,
            create=vagrant_command("kubeconfig", control_plane.name, api_server_url(control_plane)),
            environment=env([control_plane]),
            scripts=[VAGRANT_SCRIPT],
            builds_on=[self.init],
            sensitive=True,
            rerun_on_script_edit=False,
        )
        self.kubeconfig = readback.stdout
        # Whatever uses the provider waits for the provider, and the provider for what a pod needs:
        # pod networking (the CNI) and a worker to run on, since kubeadm taints the control plane
        # and a Deployment applied before a worker joins would sit unscheduled while Pulumi awaits
        # it. The first worker only: installs overlap the other joins. An ordering edge, not data
        # in the kubeconfig: a step about to run again has an unknown id, which would show the
        # provider, and every object on it, as replaced whenever that worker is recreated (and a
        # join's delete-before-replace would take them down with it).
        ready_for_pods = [self.cni.command, *([self.joins[workers[0].name].command] if workers else [])]
        self.every_worker = [join.command for join in self.joins.values()]
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            # Lets destroy drop objects of a cluster whose VMs are already gone.
            delete_unreachable=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready_for_pods),
        )
        # A new init is a new cluster (its own CA); a new provider is one too.
        self.identity = [self.init.command, self.provider]

        self.kubeconfig_file = None
        if args.write_kubeconfig:
            path = str(kubeconfig_path(args.stack))
            command_step(
                step_name(name, "kubeconfig-file"),
                parent=self,
                create=shlex.join(["bash", KUBECONFIG_FILE_SCRIPT, "write", path]),
                delete=shlex.join(["bash", KUBECONFIG_FILE_SCRIPT, "remove", path]),
                environment={},
                scripts=[KUBECONFIG_FILE_SCRIPT],
                builds_on=[readback],
                stdin=readback.stdout,
                fixed_identity=True,
                sensitive=True,
            )
            self.kubeconfig_file = path

        self.interfaces = pulumi.Output.all(*[step.stdout for step in self.prepared.values()]).apply(unique_interfaces)
        self.register_outputs({"interfaces": self.interfaces})
