"""k8s-lab: a local Kubernetes lab where `type: LoadBalancer` works.

config -> cluster -> MetalLB -> ingress -> apps -> self-check -> outputs. Each component takes
the one before it as a typed argument; this file only wires them and exports what the user needs.
"""

import pulumi

from components import config as lab_config
from components.apps import Apps, AppsArgs
from components.cluster import ExistingCluster, ExistingClusterArgs
from components.dns import LabDNS, LabDNSArgs
from components.ingress import Ingress, IngressArgs
from components.kubeadm import KubeadmCluster, KubeadmClusterArgs
from components.metallb import MetalLB, MetalLBArgs
from components.selfcheck import CHECK_COMMAND, SelfCheck, SelfCheckArgs, etc_hosts_line, lab_check_environment
from components.tls import LabTLS, LabTLSArgs

cfg = lab_config.load()
for warning in cfg.warnings:
    pulumi.log.warn(warning)

if cfg.cluster is not None:
    cluster = ExistingCluster(
        cfg.stack,
        ExistingClusterArgs.from_config(cfg.cluster, interface=cfg.network.interface, kubernetes_version=cfg.kubernetes.version),
    )
else:
    cluster = KubeadmCluster(cfg.stack, KubeadmClusterArgs.from_config(cfg))
    if cluster.kubeconfig_file:
        pulumi.export("kubeconfig_export", f"export KUBECONFIG={cluster.kubeconfig_file}")

metallb = MetalLB(
    f"{cfg.stack}-metallb",
    MetalLBArgs(cluster=cluster, config=cfg.metallb, pins=cfg.pins),
)
tls = LabTLS(f"{cfg.stack}-tls", LabTLSArgs(cluster=cluster, config=cfg.tls, domain=cfg.domain, stack=cfg.stack)) if cfg.tls.enabled else None
ingress = Ingress(f"{cfg.stack}-ingress", IngressArgs(cluster=cluster, metallb=metallb, config=cfg.ingress, tls=tls))
dns = (
    LabDNS(f"{cfg.stack}-dns", LabDNSArgs(cluster=cluster, metallb=metallb, ingress=ingress, config=cfg.dns, domain=cfg.domain))
    if cfg.dns.enabled
    else None
)
apps = Apps(
    f"{cfg.stack}-apps",
    AppsArgs(cluster=cluster, ingress=ingress, domain=cfg.domain, apps=cfg.apps, options=cfg.app_options),
)
if cfg.runs_self_check:
    SelfCheck(
        f"{cfg.stack}-self-check",
        SelfCheckArgs(
            cluster=cluster,
            metallb=metallb,
            ingress=ingress,
            apps=apps,
            config=cfg.self_check,
            network_cidr=cfg.network.cidr,
            tls=tls,
            dns=dns,
        ),
    )

if cluster.kubeconfig is not None:
    pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("node_ips", {node.name: str(node.ip) for node in cfg.nodes})
pulumi.export("ingress_ip", ingress.ip)
pulumi.export("hostnames", list(cfg.hostnames))
pulumi.export("etc_hosts", ingress.ip.apply(lambda ip: etc_hosts_line(ip, cfg.hostnames)))
pulumi.export("urls", apps.urls)
pulumi.export("admin_passwords", apps.admin_passwords)
if tls is not None:
    pulumi.export("https_urls", apps.https_urls)
    pulumi.export("ca_certificate", tls.ca_certificate)
if dns is not None:
    pulumi.export("dns_ip", dns.ip)
    pulumi.export("dns_resolvers", dns.resolvers)
pulumi.export("check", CHECK_COMMAND)
pulumi.export("check_environment", lab_check_environment(ingress, apps, cfg.self_check, cfg.network.cidr, tls, dns))
