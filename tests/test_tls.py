"""HTTPS from the lab CA: the certificates themselves, the dynamic providers' create-once and
replace rules, and where the certificate goes in the graph (Ingress, Gateway, outputs).

Certificates are checked with cryptography's own X.509 path verifier (the rules browsers apply:
chain, validity, names, the CA's name constraint), not by reading fields back.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import shutil
import subprocess
import sys

import dill
import kubernetes_validate
import pytest
from cryptography import x509
from cryptography.x509 import verification
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components import tls
from harness import ROOT, run_lab_cli
from labruns import ALL_APPS, INGRESS, SECRET, config_problems, run_lab

DYNAMIC = "pulumi-python:dynamic:Resource"
NOW = datetime.datetime.now(datetime.timezone.utc)


def verify(cert_pem: str, ca_pem: str, host: str) -> None:
    """Raises VerificationError unless ``cert_pem`` is valid for ``host`` with only ``ca_pem`` trusted."""
    store = verification.Store([x509.load_pem_x509_certificate(ca_pem.encode())])
    verifier = verification.PolicyBuilder().store(store).time(NOW).build_server_verifier(verification.DNSName(host))
    verifier.verify(x509.load_pem_x509_certificate(cert_pem.encode()), [])


@pytest.fixture(scope="module")
def lab_ca():
    return tls.issue_ca("k8s-lab test CA", "lab.test", 3650)


# -- the certificates ------------------------------------------------------------------------


def test_server_certificate_is_trusted_for_every_lab_host_through_the_ca(lab_ca):
    ca_pem, ca_key = lab_ca
    cert, key = tls.issue_certificate(ca_pem, ca_key, ["*.lab.test", "lab.test"], 397)
    for host in ("app.lab.test", "grafana.lab.test", "lab.test"):
        verify(cert, ca_pem, host)
    assert "PRIVATE KEY" in key and key != ca_key
    parsed = x509.load_pem_x509_certificate(cert.encode())
    assert parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    assert (parsed.not_valid_after_utc - NOW).days in (396, 397)


def test_server_certificate_is_refused_for_other_names_and_other_cas(lab_ca):
    ca_pem, ca_key = lab_ca
    cert, _ = tls.issue_certificate(ca_pem, ca_key, ["*.lab.test", "lab.test"], 397)
    with pytest.raises(verification.VerificationError):
        verify(cert, ca_pem, "app.example.com")
    with pytest.raises(verification.VerificationError):
        verify(cert, ca_pem, "deep.app.lab.test")  # a wildcard covers one label
    other_ca, _ = tls.issue_ca("another CA", "lab.test", 3650)
    with pytest.raises(verification.VerificationError):
        verify(cert, other_ca, "app.lab.test")


def signed_leaf(ca_pem: str, ca_key_pem: str, names: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> x509.Certificate:
    """What anyone holding the CA key could sign: any names, any extended key usage."""
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )


def code_signing_verifier(ca_pem: str):
    """A verifier for code signing as Windows, macOS and OpenSSL's codesign purpose chain it: every
    certificate's extended key usage, where present, must allow code signing (cryptography has no
    code-signing policy of its own, so the rule is spelt out here)."""

    def allows_code_signing(_policy, _cert, usage):
        if usage is not None and not {ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(usage):
            raise ValueError("extended key usage does not allow code signing")

    store = verification.Store([x509.load_pem_x509_certificate(ca_pem.encode())])
    return (
        verification.PolicyBuilder()
        .store(store)
        .time(NOW)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
                x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, allows_code_signing
            ),
            ee_policy=verification.ExtensionPolicy.webpki_defaults_ee().require_present(
                x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, allows_code_signing
            ),
        )
        .build_client_verifier()
    )


def openssl_verify(tmp_path, ca_pem: str, leaf: x509.Certificate, purpose: str) -> subprocess.CompletedProcess:
    (tmp_path / "ca.pem").write_text(ca_pem)
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return subprocess.run(
        ["openssl", "verify", "-purpose", purpose, "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True,
    )  # fmt: skip


def test_the_ca_key_can_vouch_only_for_tls_servers_named_under_the_domain(lab_ca, tmp_path):
    # Whoever gets the CA key (a leaked state) can sign anything; what a machine trusting the CA
    # accepts is what its name constraint and extended key usage allow.
    ca_pem, ca_key = lab_ca
    server = verification.PolicyBuilder().store(verification.Store([x509.load_pem_x509_certificate(ca_pem.encode())])).time(NOW)
    lab_host = signed_leaf(ca_pem, ca_key, [x509.DNSName("app.lab.test")], ExtendedKeyUsageOID.SERVER_AUTH)
    server.build_server_verifier(verification.DNSName("app.lab.test")).verify(lab_host, [])
    refused_servers = {
        "8.8.8.8": signed_leaf(ca_pem, ca_key, [x509.IPAddress(ipaddress.ip_address("8.8.8.8"))], ExtendedKeyUsageOID.SERVER_AUTH),
        "2001:4860:4860::8888": signed_leaf(
            ca_pem, ca_key, [x509.IPAddress(ipaddress.ip_address("2001:4860:4860::8888"))], ExtendedKeyUsageOID.SERVER_AUTH
        ),
        "bank.example.com": signed_leaf(ca_pem, ca_key, [x509.DNSName("bank.example.com")], ExtendedKeyUsageOID.SERVER_AUTH),
    }
    for target, leaf in refused_servers.items():
        subject = verification.DNSName(target) if target[0].isalpha() else verification.IPAddress(ipaddress.ip_address(target))
        with pytest.raises(verification.VerificationError):
            server.build_server_verifier(subject).verify(leaf, [])
    client = signed_leaf(ca_pem, ca_key, [x509.DNSName("app.lab.test")], ExtendedKeyUsageOID.CLIENT_AUTH)
    with pytest.raises(verification.VerificationError):
        server.build_client_verifier().verify(client, [])
    code = signed_leaf(ca_pem, ca_key, [x509.DNSName("app.lab.test")], ExtendedKeyUsageOID.CODE_SIGNING)
    with pytest.raises(verification.VerificationError):
        code_signing_verifier(ca_pem).verify(code, [])
    # The lab's own certificate still verifies for every lab host, as a TLS server.
    cert, _ = tls.issue_certificate(ca_pem, ca_key, ["*.lab.test", "lab.test"], 397)
    verify(cert, ca_pem, "app.lab.test")
    if shutil.which("openssl"):
        assert openssl_verify(tmp_path, ca_pem, x509.load_pem_x509_certificate(cert.encode()), "sslserver").returncode == 0
        assert openssl_verify(tmp_path, ca_pem, lab_host, "sslserver").returncode == 0
        for target, leaf in refused_servers.items():
            assert openssl_verify(tmp_path, ca_pem, leaf, "sslserver").returncode != 0, target
        assert openssl_verify(tmp_path, ca_pem, client, "sslclient").returncode != 0
        signed_code = openssl_verify(tmp_path, ca_pem, code, "codesign")
        if "Invalid purpose" not in signed_code.stderr:  # OpenSSL 3.4 and later know the purpose
            assert signed_code.returncode != 0


def test_certificate_never_outlives_its_ca():
    ca_pem, ca_key = tls.issue_ca("short CA", "lab.test", 30)
    cert, _ = tls.issue_certificate(ca_pem, ca_key, ["lab.test"], 397)
    assert tls.not_after(cert) <= tls.not_after(ca_pem)


# -- the dynamic providers: made once, replaced only on purpose ------------------------------


def ca_props(**changes):
    return {"common_name": "k8s-lab lab CA", "domain": "lab.test", "validity_days": 3650, **changes}


def test_ca_provider_creates_a_ca_and_keeps_it_while_its_settings_stand():
    provider = tls.CertificateAuthorityProvider()
    created = provider.create(ca_props())
    assert created.id == tls.fingerprint(created.outs["cert_pem"])
    assert "PRIVATE KEY" in created.outs["key_pem"]
    unchanged = provider.diff(created.id, created.outs, ca_props())
    assert unchanged.changes is False and unchanged.replaces == []
    for key, value in (("common_name", "my CA"), ("domain", "lab2.test"), ("validity_days", 365)):
        changed = provider.diff(created.id, created.outs, ca_props(**{key: value}))
        assert changed.changes is True and changed.replaces == [key]
        assert changed.delete_before_replace is False  # the new CA exists before the old goes


def test_certificate_provider_reissues_for_new_names_a_new_ca_or_expiry_in_sight(lab_ca):
    ca_pem, ca_key = lab_ca
    provider = tls.ServerCertificateProvider()
    props = {"ca_cert_pem": ca_pem, "ca_key_pem": ca_key, "dns_names": ["*.lab.test", "lab.test"], "validity_days": 397}
    created = provider.create(props)
    verify(created.outs["cert_pem"], ca_pem, "app.lab.test")
    assert "ca_key_pem" not in created.outs  # the CA key stays an input, never an output
    assert provider.diff(created.id, created.outs, props).changes is False
    assert provider.diff(created.id, created.outs, {**props, "dns_names": ["*.lab2.test"]}).replaces == ["dns_names"]
    other_ca, other_key = tls.issue_ca("new CA", "lab.test", 3650)
    assert provider.diff(created.id, created.outs, {**props, "ca_cert_pem": other_ca, "ca_key_pem": other_key}).replaces == ["ca_cert_pem"]
    expiring = {**created.outs, "not_after": (NOW + datetime.timedelta(days=10)).isoformat()}
    assert provider.diff(created.id, expiring, props).replaces == ["not_after"]


def test_the_serialized_provider_loads_in_a_fresh_process_in_the_project_directory():
    # The engine runs dynamic providers in their own process (`python -m pulumi.dynamic`, in the
    # project directory): the provider is pickled by reference and must import from there.
    ca = run_lab().named("lab-tls-ca")
    script = (
        "import base64, sys, dill; "
        "p = dill.loads(base64.b64decode(sys.stdin.read())); "
        "r = p.create({'common_name': 'x', 'domain': 'lab.test', 'validity_days': 30}); "
        "print(type(p).__module__, type(p).__name__, 'BEGIN CERTIFICATE' in r.outs['cert_pem'])"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, input=ca.inputs["__provider"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["components.tls", "CertificateAuthorityProvider", "True"]
    assert type(dill.loads(base64.b64decode(ca.inputs["__provider"]))) is tls.CertificateAuthorityProvider


# -- the graph -------------------------------------------------------------------------------


def test_one_ca_and_one_wildcard_certificate_for_the_domain():
    r = run_lab(apps=ALL_APPS, domain="lab.test")
    ca, cert = r.named("lab-tls-ca"), r.named("lab-tls-certificate")
    assert {x.type for x in (ca, cert)} == {DYNAMIC} and len(r.of_type(DYNAMIC)) == 2
    assert {k: ca.inputs[k] for k in ("common_name", "domain", "validity_days")} == {
        "common_name": "k8s-lab lab CA", "domain": "lab.test", "validity_days": 3650,
    }  # fmt: skip
    assert cert.inputs["dns_names"] == ["*.lab.test", "lab.test"]
    assert cert.depends_on(ca)
    assert "ca_key_pem" in cert.secret_inputs
    assert ca.options["additional_secret_outputs"] == ["key_pem"] and cert.options["additional_secret_outputs"] == ["key_pem"]


def test_every_app_ingress_serves_https_with_the_lab_certificate_beside_it():
    r = run_lab(apps=ALL_APPS)
    ca_pem = r.outputs["ca_certificate"]
    secrets = {s.input("metadata.namespace"): s for s in r.of_type(SECRET) if s.name.endswith("-tls")}
    for ingress in r.of_type(INGRESS):
        namespace, host = ingress.input("metadata.namespace"), ingress.input("spec.rules")[0]["host"]
        assert ingress.input("spec.tls") == [{"hosts": [host], "secretName": "lab-tls"}]
        secret = secrets[namespace]
        assert secret.input("metadata.name") == "lab-tls" and secret.input("type") == "kubernetes.io/tls"
        assert "stringData" in secret.secret_inputs
        verify(secret.input("stringData")["tls.crt"], ca_pem, host)
        assert r.waits_for(ingress, secret) and r.waits_for(secret, r.named(ingress.name.replace("-ingress", "-namespace")))
        # HTTP keeps answering: ingress-nginx would otherwise redirect it to HTTPS.
        assert ingress.input("metadata.annotations") == {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
        kubernetes_validate.validate({k: ingress.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}, "1.34", strict=True)


def test_tls_secret_is_a_valid_kubernetes_secret():
    secret = run_lab().named("lab-apps-demo-tls")
    kubernetes_validate.validate({k: secret.inputs[k] for k in ("apiVersion", "kind", "metadata", "type", "stringData")}, "1.34", strict=True)


def test_gateway_gets_an_https_listener_with_the_certificate_in_its_namespace():
    from test_gateway import GATEWAY, HTTP_ROUTE, assert_valid_gateway_object, registered_object

    r = run_lab(**{"ingress.controller": "traefik", "ingress.api": "gateway"})
    (gateway,) = r.of_type(GATEWAY)
    https = gateway.input("spec.listeners")[1]
    assert (https["name"], https["port"], https["protocol"]) == ("websecure", 8443, "HTTPS")
    assert https["tls"] == {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": "lab-tls"}]}
    secret = r.named("lab-ingress-tls")
    assert secret.input("metadata.namespace") == gateway.input("metadata.namespace") == "traefik"
    assert gateway.depends_on(secret)
    assert_valid_gateway_object(registered_object(gateway))
    # Routes carry no TLS of their own, and no per-app Secret is made.
    assert [s.name for s in r.of_type(SECRET) if s.name.endswith("-tls")] == ["lab-ingress-tls"]
    assert all("tls" not in route.inputs["spec"] for route in r.of_type(HTTP_ROUTE))


def test_outputs_give_the_ca_in_clear_and_no_private_key():
    r = run_lab()
    assert r.outputs["ca_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "ca_certificate" not in r.secret_outputs
    assert r.outputs["https_urls"] == {"demo": "https://app.lab.local"}
    assert r.outputs["urls"] == {"demo": "http://app.lab.local"}
    assert not any("PRIVATE KEY" in json.dumps(v) for v in r.outputs.values())


def test_self_check_gets_the_ca_and_reruns_when_it_changes():
    r = run_lab()
    check = r.named("lab-self-check-run")
    assert check.inputs["environment"]["LAB_CA_CERT"] == r.outputs["ca_certificate"]
    assert check.inputs["triggers"][-1] == r.outputs["ca_certificate"]


def test_tls_can_be_turned_off():
    r = run_lab(**{"tls.enabled": False})
    assert r.of_type(DYNAMIC) == [] and not [s for s in r.of_type(SECRET) if s.name.endswith("-tls")]
    assert "tls" not in r.one(INGRESS).inputs["spec"]
    assert "LAB_CA_CERT" not in r.named("lab-self-check-run").inputs["environment"]
    assert "ca_certificate" not in r.outputs and "trust_commands" not in r.outputs
    gateway = run_lab(**{"tls.enabled": False, "ingress.controller": "traefik", "ingress.api": "gateway"})
    (lab_gateway,) = gateway.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    assert [listener["name"] for listener in lab_gateway.input("spec.listeners")] == ["web"]
    assert not [s for s in gateway.of_type(SECRET) if s.name.endswith("-tls")]


def test_settings_reach_the_ca_and_the_certificate():
    r = run_lab(**{"tls.ca_common_name": "My lab", "tls.ca_validity_days": 365, "tls.certificate_validity_days": 90})
    assert r.named("lab-tls-ca").inputs["common_name"] == "My lab"
    assert r.named("lab-tls-ca").inputs["validity_days"] == 365
    assert r.named("lab-tls-certificate").inputs["validity_days"] == 90


def test_bad_tls_settings_are_refused_naming_the_key():
    assert "825" in config_problems(**{"tls.certificate_validity_days": 1000})["tls.certificate_validity_days"]
    problems = config_problems(**{"tls.ca_validity_days": 60, "tls.certificate_validity_days": 90})
    assert "does not outlive the certificate (tls.certificate_validity_days: 90)" in problems["tls.ca_validity_days"]
    assert "unknown key" in config_problems(**{"tls.ca_days": 10})["tls.ca_days"]


# Stand-ins for what the trust commands call: each records its arguments (and sudo what it would
# run, and its input), and none changes the machine. sudo runs a stand-in of this directory, and
# only those; a bare `pulumi` answers as in a shell logged in to no backend.
STAND_INS = {
    "sudo": '''#!/bin/sh
here=$(dirname "$0")
printf 'sudo %s\\n' "$*" >>"$TRUST_LOG"
if [ -x "$here/$1" ]; then exec "$@"; fi
if [ "$1" = tee ]; then cat >"$TRUST_LOG.tee"; fi
''',
    "certutil": '#!/bin/sh\nprintf "certutil %s\\n" "$*" >>"$TRUST_LOG"\n',
    "update-ca-certificates": '#!/bin/sh\necho update-ca-certificates >>"$TRUST_LOG"\n',
    "update-ca-trust": '#!/bin/sh\necho update-ca-trust >>"$TRUST_LOG"\n',
    "security": '#!/bin/sh\nprintf "security %s\\n" "$*" >>"$TRUST_LOG"\n',
    "pulumi": '#!/bin/sh\necho "error: no stack named lab found" >&2\nexit 255\n',
}


def trust_output(text: str) -> tuple[str, dict[str, str]]:
    """./lab trust's output: its first line, and the one command under each ``# <system>:`` comment."""
    lines = text.splitlines()
    commands = {}
    for comment, command in zip(lines, lines[1:]):
        if comment.startswith("# ") and ":" in comment and command and not command.startswith("#"):
            commands[comment[2:].split(":")[0]] = command
    return lines[0], commands


def test_a_ca_barely_longer_lived_than_the_certificate_is_refused_naming_both_keys():
    # 400 against 397 days: the first renewal would get a certificate of 33 days, and the CA's
    # expiry warning would start while the first certificate is still fresh.
    problems = config_problems(**{"tls.ca_validity_days": 400, "tls.certificate_validity_days": 397})
    assert set(problems) == {"tls.ca_validity_days"}
    message = problems["tls.ca_validity_days"]
    assert "tls.certificate_validity_days: 397" in message and "by the 90 days preview warns before the CA expires" in message
    assert "set tls.ca_validity_days to at least 487, or tls.certificate_validity_days to at most 310" in message
    run_lab(**{"tls.ca_validity_days": 487, "tls.certificate_validity_days": 397})  # the margin itself is enough
    run_lab(**{"tls.enabled": False, "tls.ca_validity_days": 400})  # no CA, nothing to refuse


def test_lab_trust_prints_commands_that_work_pasted_into_a_plain_shell(tmp_path):
    ca_pem = run_lab().outputs["ca_certificate"]
    (tmp_path / "ca.pem").write_text(ca_pem)
    # ./lab's own pulumi (a stand-in that knows the stack's outputs) answers ./lab trust.
    lab_pulumi = f'case "$*" in *"--stack lab ca_certificate"*) cat {tmp_path}/ca.pem ;; *) exit 1 ;; esac\n'
    (tmp_path / "lab").mkdir()
    result = run_lab_cli(tmp_path / "lab", "trust", lab_pulumi)
    assert result.returncode == 0, result.stderr
    first, commands = trust_output(result.stdout)
    file = tmp_path / "lab" / ".config" / "k8s-lab" / "k8s-lab-lab-ca.crt"
    assert str(file) in first and file.read_text().strip() == ca_pem.strip()
    assert set(commands) == {"debian ubuntu", "fedora", "macos", "windows", "firefox"}

    # The user's shell: another HOME, nothing of ./lab's environment, stand-ins first on PATH.
    home, bin_dir, log = tmp_path / "home", tmp_path / "bin", tmp_path / "trust.log"
    bin_dir.mkdir()
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    profiles = [
        home / ".mozilla/firefox/abcd.default-release",
        home / "snap/firefox/common/.mozilla/firefox/efgh.default",
        home / ".pki/nssdb",
    ]
    for profile in profiles:
        profile.mkdir(parents=True)
        (profile / "cert9.db").write_text("")
    (home / ".mozilla/firefox/Crash Reports").mkdir()  # not a profile
    (home / ".mozilla/firefox/profiles.ini").write_text("[Profile0]\n")
    env = {"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin", "TRUST_LOG": str(log)}

    def paste(system: str) -> list[str]:
        log.write_text("")
        run = subprocess.run(["bash", "--noprofile", "--norc", "-c", commands[system]], env=env, cwd=home,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)  # fmt: skip
        assert run.returncode == 0, f"{system}: {run.stderr}"
        return log.read_text().splitlines()

    assert paste("debian ubuntu") == [f"sudo cp {file} /usr/local/share/ca-certificates/k8s-lab-lab-ca.crt", "sudo update-ca-certificates", "update-ca-certificates"]
    assert paste("fedora") == ["sudo tee /etc/pki/ca-trust/source/k8s-lab-lab-ca.pem", "sudo update-ca-trust", "update-ca-trust"]
    trusted = (tmp_path / "trust.log.tee").read_text()
    assert trusted.startswith("-----BEGIN TRUSTED CERTIFICATE-----")
    uses = subprocess.run(["openssl", "x509", "-noout", "-text", "-trustout"], input=trusted, capture_output=True, text=True, check=True)
    assert "Trusted Uses:\n  TLS Web Server Authentication\n" in uses.stdout
    security = f"security add-trusted-cert -d -r trustRoot -p ssl -k /Library/Keychains/System.keychain {file}"
    assert paste("macos") == [f"sudo {security}", security]
    certutil = sorted(paste("firefox"))
    assert certutil == sorted(f"certutil -A -d sql:{p} -n k8s-lab lab CA -t C,, -i {file}" for p in profiles)
    assert commands["windows"] == f"Import-Certificate -FilePath '{file}' -CertStoreLocation Cert:\\LocalMachine\\Root"


def test_lab_trust_without_a_ca_says_to_run_up(tmp_path):
    empty = run_lab_cli(tmp_path, "trust", "exit 0\n")
    assert empty.returncode == 1 and "run ./lab up first" in empty.stderr


def test_ingress_nginx_sends_no_hsts_so_http_keeps_working_in_browsers():
    from harness import reference_docs
    from labruns import CONFIGFILE

    objects = run_lab().one(CONFIGFILE, "lab-ingress-install").transformed(reference_docs("ingress-nginx/deploy-cloud-controller-v1.15.1.yaml"))
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "ingress-nginx-controller"]
    assert config["data"] == {"hsts": "false"}
    kubernetes_validate.validate(config, "1.34", strict=True)
