"""The lab CA and its server certificate, made with the ``cryptography`` library.

The lab's two local commands (components/tls.py) run this as
``.venv/bin/python -m components.certificates ca|certificate``: the arguments of
:func:`issue_ca` or :func:`issue_certificate` come on stdin as one JSON object (the CA key
never on a command line), the result goes out on stdout as another, which the command keeps in
the stack's state as a secret. Nothing here knows Pulumi, and the Pulumi program never imports it:
a preview loads no cryptography and starts no process for the CA (see components/tls.py).

The CA vouches for TLS servers under the lab's domain only: its name constraint permits that
domain and excludes every IP address, and its extended key usage is server authentication. Even
if the state leaked, its key could not sign a certificate that a machine trusting it would accept
for another name, an IP address, a client, or code.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import sys
from typing import Any, Iterable, Mapping, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A name constraint's permitted DNS names say nothing of IP addresses: a leaf for 8.8.8.8 would
# verify. Excluding every address closes that.
EVERY_IP_ADDRESS = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")), x509.IPAddress(ipaddress.ip_network("::/0"))]


class CAExpired(ValueError):
    """The CA can sign nothing more: its own validity is over."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


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
    """A server certificate (PEM, key PEM) for ``dns_names``, signed by the CA; never outliving it.

    Raises :class:`CAExpired` when the CA has expired: it has nothing left to sign for.
    """
    now = now or _now()
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    if ca_cert.not_valid_after_utc <= now:
        raise CAExpired(
            f"the lab CA expired on {ca_cert.not_valid_after_utc:%Y-%m-%d} and can sign no certificate; "
            "rotate it (./lab rotate-ca, or raise tls.ca_rotation by one and run up), then trust the new CA (./lab trust)"
        )
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


ISSUERS = {"ca": issue_ca, "certificate": issue_certificate}


def run(what: str, arguments: Mapping[str, Any], now: Optional[datetime.datetime] = None) -> dict[str, str]:
    """What ``python -m components.certificates WHAT`` prints for ``arguments`` (its stdin):
    the certificate, its key and its dates."""
    if what not in ISSUERS:
        raise ValueError(f"unknown kind {what!r}: {' or '.join(ISSUERS)}")
    cert, key = ISSUERS[what](**arguments, now=now)  # type: ignore[operator]
    parsed = x509.load_pem_x509_certificate(cert.encode())
    return {
        "cert_pem": cert,
        "key_pem": key,
        "not_before": parsed.not_valid_before_utc.isoformat(),
        "not_after": parsed.not_valid_after_utc.isoformat(),
    }


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        result = run(args[0] if args else "", json.load(sys.stdin))
    except (ValueError, TypeError) as err:  # CAExpired, a bad kind, bad or missing arguments
        print(f"k8s-lab certificates: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
