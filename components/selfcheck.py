"""The self-check: after `pulumi up`, every lab hostname must answer through the ingress IP.

It runs ``scripts/self-check.sh`` on the laptop (a ``command.local.Command``), the same script
``./lab check`` runs any time. The script sends ``GET /`` to the ingress IP with each hostname as
the Host header, retries until its timeout, and on failure exits non-zero with the likely cause,
which fails `pulumi up` with that message.

It runs again only when the ingress IP or the hostnames change (``triggers``), so an unchanged
lab shows no diff; a failed run leaves nothing in the state, so the next `up` tries again.
"""

from __future__ import annotations

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


class SelfCheck(pulumi.ComponentResource):
    """Fails `pulumi up`, naming the likely cause, when a lab hostname does not answer through the ingress."""

    run: command.local.Command

    def __init__(self, name: str, args: SelfCheckArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:selfcheck:SelfCheck", name, None, opts)
        hostnames = list(args.apps.hostnames.values())
        ca = args.tls.ca_certificate if args.tls is not None else None
        dns_ip = args.dns.ip if args.dns is not None else None
        environment = lab_check_environment(args.ingress, args.apps, args.config, args.network_cidr, args.tls, args.dns)
        self.run = command.local.Command(
            f"{name}-run",
            create=check_command(),
            environment=environment,
            # A change of the IP, the hostnames or the CA replaces the command, which runs it again.
            triggers=[args.ingress.ip, *hostnames, *([ca] if ca is not None else []), *([dns_ip] if dns_ip else [])],
            # Nothing secret here, and the result is what the user wants to see.
            logging=command.local.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                # After the controller is ready and every app's Ingress exists (and was admitted).
                # Everything on the path from the laptop to an app: a worker to announce and run
                # the pods, MetalLB's pools and advertisements, the controller, every app's
                # Ingress. Not every join: the first curl need not wait for the last worker.
                depends_on=[args.metallb, args.ingress, args.apps, *([args.dns] if args.dns else [])],
            ),
        )
        self.register_outputs({"stdout": self.run.stdout})
