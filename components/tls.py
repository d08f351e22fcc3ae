"""HTTPS for the lab: its own certificate authority, made once, and a certificate for ``*.<domain>``.

Both are made by two local commands that run components/certificates.py (the ``cryptography``
library) in the project's virtualenv, its arguments on stdin as JSON; each prints the certificate
and its key as JSON, and its stdout is a secret in the stack's state (encrypted by the stack's
secrets provider, shown as ``[secret]``), never logged. A command's ``create`` runs only when it is first
created or replaced, so a later `up` reuses the CA, and a preview of an unchanged lab does
nothing for it: the command provider, which the lab loads anyway, compares the triggers, and no
process starts. (Two Python dynamic providers did this before: every preview then started a
Python process of their own, which imported the program's modules to unpickle them.)

- **The CA** is replaced only by a change of its settings (common name, validity, the domain its
  name constraint allows) or of ``tls.ca_rotation`` (``./lab rotate-ca``), so a user trusts it
  once per rotation. An in-place update, a changed command line, prints the CA it had.
- **The server certificate** is issued again for a new CA, new names or validity, and when its
  renewal falls due: :func:`renewal` says when, from the clock and the CA's dates alone.
- **Expiry**: preview warns from :data:`CA_WARN_BEFORE_DAYS` before the CA expires
  (:func:`ca_expiry_warning`); an expired CA is left as it is, and nothing is re-issued from it.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
from pulumi.dynamic import ResourceProvider
from pulumi_command import local

from components.cluster import Cluster
from components.command_step import VENV_PYTHON
from components.config import TLSConfig
from components.config.defaults import CA_WARN_BEFORE_DAYS, RENEW_BEFORE_DAYS

SECRET_NAME = "lab-tls"  # the kubernetes.io/tls Secret beside each route

# The project's virtualenv has cryptography.
CA_COMMAND = f"{VENV_PYTHON} -m components.certificates ca"
CERTIFICATE_COMMAND = f"{VENV_PYTHON} -m components.certificates certificate"
# pulumi-command hands a command's previous stdout to its update in this variable.
KEEP_PREVIOUS_STDOUT = 'printf "%s" "$PULUMI_COMMAND_STDOUT"'
ROTATE = (
    "rotate it with ./lab rotate-ca (or raise tls.ca_rotation by one and run up), "
    "then trust the new CA (./lab trust prints the commands)"
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------------------------------
# When: pure functions of the clock and the CA's dates (tested without Pulumi)


def renewal(ca_not_before: datetime.datetime, ca_not_after: datetime.datetime, validity_days: int, now: datetime.datetime) -> str:
    """The start of the server certificate's current renewal period, as a date: a trigger.

    Periods of ``validity_days - RENEW_BEFORE_DAYS`` count from the CA's start, so a certificate
    issued at the start of one is issued again at the next, when RENEW_BEFORE_DAYS of its
    validity remain. They stop at the first period whose certificate reaches the CA's end: any
    later one would expire with the CA just the same, so within the CA's last days, and after it
    expired, no `up` issues a certificate again.
    """
    period = datetime.timedelta(days=validity_days - RENEW_BEFORE_DAYS)
    elapsed = max(now - ca_not_before, datetime.timedelta(0)) // period
    # The first period k with ca_not_before + k * period + validity >= ca_not_after.
    short = ca_not_after - ca_not_before - datetime.timedelta(days=validity_days)
    last = max(0, -(-short // period))
    return (ca_not_before + min(elapsed, last) * period).date().isoformat()


def ca_expiry_warning(ca_not_after: datetime.datetime, now: datetime.datetime) -> Optional[str]:
    """What preview says from CA_WARN_BEFORE_DAYS before the CA expires, and once it has."""
    left = ca_not_after - now
    if left <= datetime.timedelta(0):
        return (
            f"tls: the lab CA expired on {ca_not_after:%Y-%m-%d}: browsers refuse the lab's HTTPS, "
            f"and no certificate can be issued from it; {ROTATE}"
        )
    if left <= datetime.timedelta(days=CA_WARN_BEFORE_DAYS):
        return (
            f"tls: the lab CA expires on {ca_not_after:%Y-%m-%d}, in {left.days} days; browsers will then "
            f"refuse the lab's HTTPS: {ROTATE} before that"
        )
    return None


def _date(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


# --------------------------------------------------------------------------------------------
# Labs made before the CA moved to local commands hold two dynamic resources whose providers
# are pickled by reference to these classes: the engine loads them to delete those resources on
# the next `up`. Deleting does nothing (the key goes with the state); nothing creates one now.


class CertificateAuthorityProvider(ResourceProvider):
    """The earlier lab CA's provider, kept so that its resource can be deleted."""


class ServerCertificateProvider(ResourceProvider):
    """The earlier server certificate's provider, kept so that its resource can be deleted."""


# --------------------------------------------------------------------------------------------
# The component


@dataclass(frozen=True)
class LabTLSArgs:
    cluster: Cluster
    config: TLSConfig
    domain: str
    stack: str


class LabTLS(pulumi.ComponentResource):
    """The lab CA and the ``*.<domain>`` certificate; :meth:`secret` puts it beside a route."""

    ca_certificate: pulumi.Output[str]
    """The CA certificate (PEM): public, what users trust."""

    certificate: pulumi.Output[str]
    private_key: pulumi.Output[str]
    """The server certificate's key: a Pulumi secret."""

    dns_names: list[str]

    ca: local.Command
    """The lab CA (components/certificates.py); replaced only by a new CA setting or a rotation."""
    server: local.Command
    """Replaced when it is issued again (new names, a new CA, an expiry in sight)."""

    def __init__(self, name: str, args: LabTLSArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:tls:LabTLS", name, None, opts)
        self.cluster = args.cluster
        config = args.config
        common_name = config.ca_common_name or f"k8s-lab {args.stack} CA"
        self.ca = local.Command(
            f"{name}-ca",
            create=CA_COMMAND,
            update=KEEP_PREVIOUS_STDOUT,
            stdin=json.dumps({"common_name": common_name, "domain": args.domain, "validity_days": config.ca_validity_days}),
            # Only these make a new CA, which every browser must be told to trust again.
            triggers=[common_name, args.domain, config.ca_validity_days, config.ca_rotation],
            logging=local.Logging.NONE,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        ca = self.ca.stdout.apply(json.loads)
        self.ca_certificate = pulumi.Output.unsecret(ca.apply(lambda c: c["cert_pem"]))
        ca_dates = pulumi.Output.unsecret(ca.apply(lambda c: (c["not_before"], c["not_after"])))
        ca_dates.apply(self._warn_of_expiry)

        # A wildcard: adding an app needs no new certificate. Browsers match it one label deep.
        self.dns_names = [f"*.{args.domain}", args.domain]
        validity = config.certificate_validity_days
        due = ca_dates.apply(lambda d: renewal(_date(d[0]), _date(d[1]), validity, _now()))
        self.server = local.Command(
            f"{name}-certificate",
            create=CERTIFICATE_COMMAND,
            # Secret as a whole: it holds the CA key.
            stdin=pulumi.Output.json_dumps(
                {
                    "ca_cert_pem": self.ca_certificate,
                    "ca_key_pem": pulumi.Output.secret(ca.apply(lambda c: c["key_pem"])),
                    "dns_names": self.dns_names,
                    "validity_days": validity,
                }
            ),
            # The CA's id changes only with a new CA.
            triggers=[self.ca.id, self.dns_names, validity, due],
            logging=local.Logging.NONE,
            # The previous key has no business in the next run's environment.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        server = self.server.stdout.apply(json.loads)
        self.certificate = pulumi.Output.unsecret(server.apply(lambda c: c["cert_pem"]))
        self.private_key = pulumi.Output.secret(server.apply(lambda c: c["key_pem"]))
        self.register_outputs({"ca_certificate": self.ca_certificate})

    def _warn_of_expiry(self, dates: tuple[str, str]) -> None:
        warning = ca_expiry_warning(_date(dates[1]), _now())
        if warning:
            pulumi.log.warn(warning, resource=self)

    def secret(self, name: str, namespace: str, parent: pulumi.Resource, depends_on: list[pulumi.Resource]) -> k8s.core.v1.Secret:
        """The certificate as a ``kubernetes.io/tls`` Secret named :data:`SECRET_NAME` in ``namespace``."""
        return k8s.core.v1.Secret(
            name,
            metadata={"name": SECRET_NAME, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "k8s-lab"}},
            type="kubernetes.io/tls",
            string_data={"tls.crt": self.certificate, "tls.key": self.private_key},
            opts=pulumi.ResourceOptions(parent=parent, provider=self.cluster.provider, depends_on=depends_on),
        )
