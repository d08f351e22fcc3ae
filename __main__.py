"""k8s-lab: a local Kubernetes lab where `type: LoadBalancer` works.

config -> cluster -> MetalLB -> ingress -> apps -> self-check -> outputs. Each component takes
the one before it as a typed argument; this file only wires them and exports what the user needs.
"""

import pulumi

from components import config as lab_config
from components.cluster import ExistingCluster, ExistingClusterArgs
from components.metallb import MetalLB, MetalLBArgs

cfg = lab_config.load()
for warning in cfg.warnings:
    pulumi.log.warn(warning)

if cfg.cluster is not None:
    cluster = ExistingCluster(
        cfg.stack,
        ExistingClusterArgs(
            kubeconfig=cfg.cluster.kubeconfig.get_secret_value(),
            context=cfg.cluster.context,
            interface=cfg.network.interface,
        ),
    )
    pulumi.export("kubeconfig", cluster.kubeconfig)

if cfg.cluster is not None:
    metallb = MetalLB(f"{cfg.stack}-metallb", MetalLBArgs(cluster=cluster, config=cfg.metallb, reserved_ip=cfg.ingress.ip))

pulumi.export("node_ips", {node.name: node.ip for node in cfg.nodes})
pulumi.export("hostnames", list(cfg.hostnames))
pulumi.export("urls", [f"http://{host}" for host in cfg.hostnames])
if cfg.ingress.ip:
    pulumi.export("ingress_ip", cfg.ingress.ip)
    pulumi.export("etc_hosts", f"{cfg.ingress.ip} {' '.join(cfg.hostnames)}")
