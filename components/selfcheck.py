"""The self-check: after `pulumi up`, every lab hostname must answer through the ingress IP.

It runs ``scripts/self-check.sh`` on the laptop (a ``command.local.Command``), the same script
``./lab check`` runs any time. The script sends ``GET /`` to the ingress IP with each hostname as
the Host header, retries until its timeout, and on failure exits non-zero with the likely cause,
which fails `pulumi up` with that message.

It runs again when what it checks is new: another ingress IP, hostnames, CA or DNS IP
(``triggers``); another set of objects on the way, or another version or manifest of an install
(``triggers`` too, one digest, one line); any of those objects replaced, the cluster above all
(``replace_with``: a rebuilt cluster makes everything on it again, and only the engine knows that
an object it keeps the name of was made anew). Nothing else: an unchanged lab shows no diff, and a
failed run leaves nothing in the state, so the next `up` tries again.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Iterable, Optional

import pulumi
import pulumi_command as command

from components.apps import Apps
from components.command_step import VENV_PYTHON
from components.config import SelfCheckConfig
from components.dns import LabDNS
from components.cluster import Cluster
from components.metallb import MetalLB
from components.ingress import Ingress
from components.tls import LabTLS

# Relative to the project: Pulumi runs the program and its providers there, and an absolute path
# would differ between two clones of the lab and show as a change.
SCRIPT = "scripts/self-check.sh"
# The project's virtualenv has dnspython for the DNS check.
PYTHON = VENV_PYTHON
CHECK_COMMAND = "./lab check"


def etc_hosts_line(ip: Optional[str], hostnames: Iterable[str]) -> Optional[str]:
    """The one line for /etc/hosts that sends every lab hostname to the ingress IP."""
    hosts = list(hostnames)
    if not ip or not hosts:
        return None
    return f"{ip} {' '.join(hosts)}"


def check_environment(
    ip: str,
    hostnames: Iterable[str],
    config: SelfCheckConfig,
    controller: str,
    network_cidr: IPv4Network,
    ca_certificate: Optional[str] = None,
    dns_ip: Optional[str] = None,
) -> dict[str, str]:
    """The script's environment (see the header of scripts/self-check.sh).

    With the lab CA's certificate the script also checks ``https://<host>``: the answer must come
    with a certificate that chains to that CA and names the host.
    """
    environment = {
        "LAB_INGRESS_IP": ip,
        "LAB_HOSTNAMES": " ".join(hostnames),
        "LAB_TIMEOUT_SECONDS": str(config.timeout_seconds),
        "LAB_CONTROLLER": controller,
        "LAB_NETWORK_CIDR": str(network_cidr),
    }
    if ca_certificate:
        environment["LAB_CA_CERT"] = ca_certificate
    if dns_ip:
        # Every hostname must resolve to the ingress IP through the lab's DNS server.
        environment["LAB_DNS_IP"] = dns_ip
        environment["LAB_PYTHON"] = PYTHON
    return environment


def lab_check_environment(
    ingress: Ingress,
    apps: Apps,
    config: SelfCheckConfig,
    network_cidr: IPv4Network,
    tls: Optional[LabTLS] = None,
    dns: Optional[LabDNS] = None,
) -> pulumi.Output[dict[str, str]]:
    """The script's environment for this lab: the same for `pulumi up`'s check and `./lab check`,
    which reads it from the stack output ``check_environment``."""
    hostnames = list(apps.hostnames.values())
    dns_ip = dns.ip if dns is not None else None
    return pulumi.Output.all(ingress.ip, tls.ca_certificate if tls is not None else None).apply(
        lambda v: check_environment(v[0], hostnames, config, ingress.controller.name, network_cidr, v[1], dns_ip)
    )


def check_command() -> str:
    return f"bash {shlex.quote(SCRIPT)}"


def checked_digest(urns: Iterable[str], install_sources: Iterable[str]) -> str:
    """One line for the objects a check goes through (their URNs, in any order) and what the
    installs are made from: equal for the same lab, different once one is added, removed or renamed."""
    lines = ["objects:", *sorted(set(urns)), "installs:", *install_sources]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True)
class SelfCheckArgs:
    cluster: Cluster
    metallb: MetalLB
    ingress: Ingress
    apps: Apps
    config: SelfCheckConfig
    network_cidr: IPv4Network
    tls: Optional[LabTLS] = None
    dns: Optional[LabDNS] = None


def checked_resources(args: SelfCheckArgs) -> list[pulumi.CustomResource]:
    """The resources of the program that a request from the laptop depends on: the cluster's own
    (its identity), MetalLB's pools and advertisements, the Gateway, every app's route and its
    certificate Secret, the lab's CA and certificate, the DNS server.

    The installs (MetalLB's manifest, the ingress controller's) are not among them: their objects
    are made by the Kubernetes provider, not by the program, and are made anew with the cluster
    or from another version or manifest (``install_source``, in the triggers).
    """
    ingress, apps = args.ingress, args.apps.apps.values()
    found: list[Optional[pulumi.CustomResource]] = [
        *args.cluster.identity,
        *args.metallb.pools.values(),
        *args.metallb.l2_advertisements.values(),
        ingress.gateway_class,
        ingress.gateway,
        ingress.tls_secret,
        *[app.route for app in apps],
        *[app.tls_secret for app in apps],
    ]
    if args.tls is not None:
        found += [args.tls.ca, args.tls.server]
    if args.dns is not None:
        found += [args.dns.config_map, args.dns.deployment, args.dns.service]
    return [resource for resource in found if resource is not None]


class SelfCheck(pulumi.ComponentResource):
    """Fails `pulumi up`, naming the likely cause, when a lab hostname does not answer through the ingress."""

    run: command.local.Command

    def __init__(self, name: str, args: SelfCheckArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:selfcheck:SelfCheck", name, None, opts)
        hostnames = list(args.apps.hostnames.values())
        ca = args.tls.ca_certificate if args.tls is not None else None
        dns_ip = args.dns.ip if args.dns is not None else None
        environment = lab_check_environment(args.ingress, args.apps, args.config, args.network_cidr, args.tls, args.dns)
        checked = checked_resources(args)
        # URNs are known in every preview: the digest changes only when the set of objects does.
        objects = pulumi.Output.all(*[resource.urn for resource in checked]).apply(
            lambda urns: checked_digest(urns, [args.metallb.install_source, args.ingress.install_source])
        )
        self.run = command.local.Command(
            f"{name}-run",
            create=check_command(),
            environment=environment,
            # A change of one of these replaces the command, which runs it again.
            triggers=[args.ingress.ip, *hostnames, *([ca] if ca is not None else []), *([dns_ip] if dns_ip else []), objects],
            # Nothing secret here, and the result is what the user wants to see.
            logging=command.local.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                # After the controller is ready and every app's Ingress exists (and was admitted).
                # Everything on the path from the laptop to an app: a worker to announce and run
                # the pods, MetalLB's pools and advertisements, the controller, every app's
                # Ingress. Not every join: the first curl need not wait for the last worker.
                depends_on=[args.metallb, args.ingress, args.apps, *([args.dns] if args.dns else [])],
                # Replaced (run again) whenever the engine replaces one of them: a rebuilt cluster
                # (a new kubernetes.version) remakes every object under the same names, which no
                # input of this command would show. The engine's own decision, so a preview shows
                # the check replaced exactly when it shows one of them replaced.
                replace_with=checked,
            ),
        )
        self.register_outputs({"stdout": self.run.stdout})
