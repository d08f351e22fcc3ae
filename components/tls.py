"""HTTPS for the lab: its own certificate authority, made once, and a certificate for ``*.<domain>``.

The keys and certificates are made by the ``cryptography`` library inside two Pulumi dynamic
providers, so no network and no extra Pulumi plugin are needed. A dynamic provider's ``create``
runs only when the resource is first created: the CA key is made once, kept in the stack's state
as a secret output (encrypted by the stack's secrets provider, shown as ``[secret]``), and a later
`up` reuses it. Its ``diff`` replaces the CA only when its own settings change (common name,
validity, the domain its name constraint allows), so a user trusts it once.

The CA vouches for TLS servers under the lab's domain only: its name constraint permits that domain
and excludes every IP address, and its extended key usage is server authentication. Even if the
state leaked, its key could not sign a certificate that a machine trusting it would accept for
another name, an IP address, a client, or code. The server certificate is
renewed by the first `up` within :data:`RENEW_BEFORE_DAYS` of its expiry.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import pulumi
import pulumi_kubernetes as k8s
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

from components.cluster import Cluster
from components.config import TLSConfig
from components.config.defaults import RENEW_BEFORE_DAYS

SECRET_NAME = "lab-tls"  # the kubernetes.io/tls Secret beside each route
CA_SETTINGS = ("common_name", "domain", "validity_days")
CERTIFICATE_SETTINGS = ("dns_names", "validity_days", "ca_cert_pem")


# --------------------------------------------------------------------------------------------
# Pure certificate making (tested without Pulumi)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# A name constraint's permitted DNS names say nothing of IP addresses: a leaf for 8.8.8.8 would
# verify. Excluding every address closes that.
EVERY_IP_ADDRESS = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")), x509.IPAddress(ipaddress.ip_network("::/0"))]


def issue_ca(common_name: str, domain: str, validity_days: int, now: Optional[datetime.datetime] = None) -> tuple[str, str]:
    """A self-signed CA (certificate PEM, key PEM) for TLS servers named under ``domain`` only."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "k8s-lab")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # a laptop clock a little behind
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.NameConstraints(permitted_subtrees=[x509.DNSName(domain)], excluded_subtrees=EVERY_IP_ADDRESS), critical=True)
        # Server authentication only: Windows, macOS, NSS and OpenSSL refuse a chain through this
        # CA for client certificates, code or mail signing, even where the store trusts it for all.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _pem(key)


def issue_certificate(
    ca_cert_pem: str, ca_key_pem: str, dns_names: Iterable[str], validity_days: int, now: Optional[datetime.datetime] = None
) -> tuple[str, str]:
    """A server certificate (PEM, key PEM) for ``dns_names``, signed by the CA."""
    now = now or _now()
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    names = list(dns_names)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(min(now + datetime.timedelta(days=validity_days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, encipher_only=False, decipher_only=False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _cert_pem(cert), _pem(key)


def not_after(cert_pem: str) -> str:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc.isoformat()


def due_for_renewal(expiry: Optional[str], now: Optional[datetime.datetime] = None) -> bool:
    if not expiry:
        return True
    return datetime.datetime.fromisoformat(expiry) - (now or _now()) < datetime.timedelta(days=RENEW_BEFORE_DAYS)


def fingerprint(cert_pem: str) -> str:
    return x509.load_pem_x509_certificate(cert_pem.encode()).fingerprint(hashes.SHA256()).hex()


def _changed(olds: dict[str, Any], news: dict[str, Any], keys: Iterable[str]) -> list[str]:
    # An unknown new value (preview, an upstream replacement) counts as a change.
    return [k for k in keys if olds.get(k) != news.get(k)]


# --------------------------------------------------------------------------------------------
# Dynamic providers: create once, replace only on a change of their settings


class CertificateAuthorityProvider(ResourceProvider):
    """Creates the lab CA; never updates it in place (a new key would untrust every browser)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        cert, key = issue_ca(props["common_name"], props["domain"], int(props["validity_days"]))
        outs = {k: props[k] for k in CA_SETTINGS}
        outs.update(cert_pem=cert, key_pem=key, not_after=not_after(cert))
        return CreateResult(id_=fingerprint(cert), outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, CA_SETTINGS)
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)


class ServerCertificateProvider(ResourceProvider):
    """Issues the server certificate; reissues it for new names, a new CA, or an expiry in sight."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        names = list(props["dns_names"])
        cert, key = issue_certificate(props["ca_cert_pem"], props["ca_key_pem"], names, int(props["validity_days"]))
        outs = {"dns_names": names, "validity_days": props["validity_days"], "ca_cert_pem": props["ca_cert_pem"]}
        outs.update(cert_pem=cert, key_pem=key, not_after=not_after(cert))
        return CreateResult(id_=fingerprint(cert), outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, CERTIFICATE_SETTINGS)
        if due_for_renewal(olds.get("not_after")):
            replaces.append("not_after")
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)


class CertificateAuthority(pulumi.dynamic.Resource):
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]
    not_after: pulumi.Output[str]

    def __init__(self, name: str, common_name: str, domain: str, validity_days: int, opts: pulumi.ResourceOptions):
        props = {"common_name": common_name, "domain": domain, "validity_days": validity_days, "cert_pem": None, "key_pem": None, "not_after": None}
        super().__init__(CertificateAuthorityProvider(), name, props, pulumi.ResourceOptions.merge(opts, _SECRET_KEY))


class ServerCertificate(pulumi.dynamic.Resource):
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]
    not_after: pulumi.Output[str]

    def __init__(self, name: str, ca: CertificateAuthority, dns_names: list[str], validity_days: int, opts: pulumi.ResourceOptions):
        props = {
            "ca_cert_pem": ca.cert_pem,
            "ca_key_pem": pulumi.Output.secret(ca.key_pem),
            "dns_names": dns_names,
            "validity_days": validity_days,
            "cert_pem": None,
            "key_pem": None,
            "not_after": None,
        }
        super().__init__(ServerCertificateProvider(), name, props, pulumi.ResourceOptions.merge(opts, _SECRET_KEY))


# The keys are secret in the stack's state and on screen; the CA's key is an input of the server
# certificate too, and secret there as well.
_SECRET_KEY = pulumi.ResourceOptions(additional_secret_outputs=["key_pem"])


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

    def __init__(self, name: str, args: LabTLSArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:tls:LabTLS", name, None, opts)
        self.cluster = args.cluster
        config = args.config
        self.ca = CertificateAuthority(
            f"{name}-ca",
            common_name=config.ca_common_name or f"k8s-lab {args.stack} CA",
            domain=args.domain,
            validity_days=config.ca_validity_days,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # A wildcard: adding an app needs no new certificate. Browsers match it one label deep.
        self.dns_names = [f"*.{args.domain}", args.domain]
        self.server = ServerCertificate(
            f"{name}-certificate",
            ca=self.ca,
            dns_names=self.dns_names,
            validity_days=config.certificate_validity_days,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ca_certificate = self.ca.cert_pem
        self.certificate = self.server.cert_pem
        self.private_key = pulumi.Output.secret(self.server.key_pem)
        self.register_outputs({"ca_certificate": self.ca_certificate})

    def secret(self, name: str, namespace: str, parent: pulumi.Resource, depends_on: list[pulumi.Resource]) -> k8s.core.v1.Secret:
        """The certificate as a ``kubernetes.io/tls`` Secret named :data:`SECRET_NAME` in ``namespace``."""
        return k8s.core.v1.Secret(
            name,
            metadata={"name": SECRET_NAME, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "k8s-lab"}},
            type="kubernetes.io/tls",
            string_data={"tls.crt": self.certificate, "tls.key": self.private_key},
            opts=pulumi.ResourceOptions(parent=parent, provider=self.cluster.provider, depends_on=depends_on),
        )
