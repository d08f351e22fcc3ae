"""HTTPS from the lab CA: the certificates themselves, the two commands that make them (made once,
replaced only on purpose, renewed on time), the CA's expiry, and where the certificate goes in
the graph (Ingress, Gateway, outputs).

Certificates are checked with cryptography's own X.509 path verifier (the rules browsers apply:
chain, validity, names, the CA's name constraint), not by reading fields back. Time is the
tests' to set: the certificates are issued at a given ``now``, and the program's clock
(``components.tls._now``) is replaced where a run must see another day.
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
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components import certificates, tls
from components.command_step import VENV_PYTHON
from components.config.defaults import CA_WARN_BEFORE_DAYS, RENEW_BEFORE_DAYS
from harness import ROOT, LabMocks, run_lab_cli, run_program
from labruns import ALL_APPS, COMMAND, INGRESS, SECRET, config_problems, existing, run_lab

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def verify(cert_pem: str, ca_pem: str, host: str) -> None:
    """Raises VerificationError unless ``cert_pem`` is valid for ``host`` with only ``ca_pem`` trusted."""
    store = verification.Store([x509.load_pem_x509_certificate(ca_pem.encode())])
    verifier = verification.PolicyBuilder().store(store).time(NOW).build_server_verifier(verification.DNSName(host))
    verifier.verify(x509.load_pem_x509_certificate(cert_pem.encode()), [])


@pytest.fixture(scope="module")
def lab_ca():
    return certificates.issue_ca("k8s-lab test CA", "lab.test", 3650)


# -- the certificates ------------------------------------------------------------------------


def test_server_certificate_is_trusted_for_every_lab_host_through_the_ca(lab_ca):
    ca_pem, ca_key = lab_ca
    cert, key = certificates.issue_certificate(ca_pem, ca_key, ["*.lab.test", "lab.test"], 397)
    for host in ("app.lab.test", "grafana.lab.test", "lab.test"):
        verify(cert, ca_pem, host)
    assert "PRIVATE KEY" in key and key != ca_key
    parsed = x509.load_pem_x509_certificate(cert.encode())
    assert parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    assert (parsed.not_valid_after_utc - NOW).days in (396, 397)


def test_server_certificate_is_refused_for_other_names_and_other_cas(lab_ca):
    ca_pem, ca_key = lab_ca
    cert, _ = certificates.issue_certificate(ca_pem, ca_key, ["*.lab.test", "lab.test"], 397)
    with pytest.raises(verification.VerificationError):
        verify(cert, ca_pem, "app.example.com")
    with pytest.raises(verification.VerificationError):
        verify(cert, ca_pem, "deep.app.lab.test")  # a wildcard covers one label
    other_ca, _ = certificates.issue_ca("another CA", "lab.test", 3650)
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
    cert, _ = certificates.issue_certificate(ca_pem, ca_key, ["*.lab.test", "lab.test"], 397)
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


def not_after(cert_pem: str) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc


def test_certificate_never_outlives_its_ca():
    ca_pem, ca_key = certificates.issue_ca("short CA", "lab.test", 30)
    cert, _ = certificates.issue_certificate(ca_pem, ca_key, ["lab.test"], 397)
    assert not_after(cert) == not_after(ca_pem)


# -- the commands: made once, replaced only on purpose -----------------------------------------


def triggers(run, name: str) -> list:
    return run.one(COMMAND, name).inputs["triggers"]


def test_the_ca_is_replaced_only_by_a_new_setting_or_a_rotation():
    # pulumi-command replaces a command when its triggers change, and only then.
    base = run_lab(domain="lab.test")
    assert triggers(base, "lab-tls-ca") == triggers(run_lab(domain="lab.test", apps=ALL_APPS), "lab-tls-ca")
    for key, value in (
        ("tls.ca_common_name", "my CA"),
        ("tls.ca_validity_days", 1000),
        ("domain", "lab2.test"),
        ("tls.ca_rotation", 1),
    ):
        assert triggers(run_lab(**{"domain": "lab.test", key: value}), "lab-tls-ca") != triggers(base, "lab-tls-ca"), key
    ca = base.one(COMMAND, "lab-tls-ca")
    # An update in place (a changed command line) prints the CA it printed before.
    kept = subprocess.run(["sh", "-c", ca.inputs["update"]], env={"PULUMI_COMMAND_STDOUT": '{"cert_pem": "the CA"}'}, capture_output=True, text=True)
    assert kept.stdout == '{"cert_pem": "the CA"}'
    assert ca.options["delete_before_replace"] is False  # the new CA exists before the old goes


def test_the_commands_keep_their_keys_secret_and_never_log_them():
    r = run_lab(domain="lab.test")
    ca, cert = r.one(COMMAND, "lab-tls-ca"), r.one(COMMAND, "lab-tls-certificate")
    for command in (ca, cert):
        assert command.inputs["logging"] == "none" and command.options["additional_secret_outputs"] == ["stdout"]
    assert "stdin" in cert.secret_inputs and "PRIVATE KEY" in json.loads(cert.inputs["stdin"])["ca_key_pem"]
    assert cert.inputs["addPreviousOutputInEnv"] is False  # the old key never reaches the next run
    assert cert.depends_on(ca)


def test_the_certificate_commands_run_from_the_project_directory_in_a_fresh_process():
    # As the command provider runs them: sh -c '<create>' in the project directory, stdin as given.
    r = run_lab(domain="lab.test")
    ca_command, cert_command = r.one(COMMAND, "lab-tls-ca"), r.one(COMMAND, "lab-tls-certificate")

    def run(command, stdin: str) -> subprocess.CompletedProcess:
        create = command.inputs["create"].replace(VENV_PYTHON, sys.executable)  # this checkout's interpreter
        return subprocess.run(["sh", "-c", create], cwd=ROOT, input=stdin, capture_output=True, text=True)

    made = run(ca_command, ca_command.inputs["stdin"])
    assert made.returncode == 0, made.stderr
    ca = json.loads(made.stdout)
    request = {**json.loads(cert_command.inputs["stdin"]), "ca_cert_pem": ca["cert_pem"], "ca_key_pem": ca["key_pem"]}
    issued = run(cert_command, json.dumps(request))
    assert issued.returncode == 0, issued.stderr
    verify(json.loads(issued.stdout)["cert_pem"], ca["cert_pem"], "app.lab.test")
    # From a CA that has expired: a clear message, and no certificate.
    old_ca, old_key = certificates.issue_ca("k8s-lab lab CA", "lab.test", 30, now=NOW - 40 * DAY)
    refused = run(cert_command, json.dumps({**request, "ca_cert_pem": old_ca, "ca_key_pem": old_key}))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith(f"k8s-lab certificates: the lab CA expired on {not_after(old_ca):%Y-%m-%d}")
    assert "./lab rotate-ca" in refused.stderr and "Traceback" not in refused.stderr


def test_labs_made_with_the_earlier_dynamic_resources_can_still_delete_them():
    # Their state names these two providers, pickled by reference to components.tls; the engine
    # unpickles them (in a fresh process, in the project directory) to delete the resources.
    earlier = {
        "CertificateAuthorityProvider": "gASVNgAAAAAAAACMDmNvbXBvbmVudHMudGxzlIwcQ2VydGlmaWNhdGVBdXRob3JpdHlQcm92aWRlcpSTlCmBlC4=",
        "ServerCertificateProvider": "gASVMwAAAAAAAACMDmNvbXBvbmVudHMudGxzlIwZU2VydmVyQ2VydGlmaWNhdGVQcm92aWRlcpSTlCmBlC4=",
    }
    script = (
        "import base64, json, sys, dill\n"
        "for payload in json.load(sys.stdin):\n"
        "    p = dill.loads(base64.b64decode(payload)); p.delete('id', {}); print(type(p).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, input=json.dumps(list(earlier.values())), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == list(earlier), out.stderr
    assert [type(dill.loads(base64.b64decode(p))).__name__ for p in earlier.values()] == list(earlier)


# -- time: renewal, expiry, rotation ---------------------------------------------------------


def dates(cert_pem: str) -> tuple[datetime.datetime, datetime.datetime]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.not_valid_before_utc, cert.not_valid_after_utc


@pytest.mark.parametrize("ca_days,cert_days", [(3650, 397), (487, 397), (365, 31)])
def test_over_a_cas_life_the_certificate_is_renewed_in_time_and_never_again_at_its_end(ca_days, cert_days):
    # One `up` a day from the CA's birth to 60 days after it expired: the certificate command runs
    # whenever its renewal trigger changes (pulumi-command replaces it), as under the engine.
    start = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.timezone.utc)
    ca_pem, ca_key = certificates.issue_ca("k8s-lab lab CA", "lab.test", ca_days, now=start)
    ca_start, ca_end = dates(ca_pem)
    trigger, cert, issued = None, "", []
    day = start
    while day < ca_end + 60 * DAY:
        due = tls.renewal(ca_start, ca_end, cert_days, day)
        if due != trigger:
            cert, _ = certificates.issue_certificate(ca_pem, ca_key, ["*.lab.test"], cert_days, now=day)  # CAExpired would fail the test
            trigger = due
            issued.append(day)
        expires = not_after(cert)
        if day < ca_end:
            assert expires > day, f"{day:%Y-%m-%d}: the certificate in place has expired"
        if day < ca_end - RENEW_BEFORE_DAYS * DAY:
            assert expires - day > (RENEW_BEFORE_DAYS - 1) * DAY, f"{day:%Y-%m-%d}: not renewed with {RENEW_BEFORE_DAYS} days left"
        day += DAY
    # One certificate each renewal period until one reaches the CA's end, then none: not in the
    # CA's last days, not after it expired.
    period = cert_days - RENEW_BEFORE_DAYS
    assert [(d - start).days for d in issued] == [k * period for k in range(len(issued))]
    assert issued[-1] + cert_days * DAY >= ca_end and issued[-1] <= ca_end - RENEW_BEFORE_DAYS * DAY


def test_the_ca_expiry_is_announced_from_90_days_before():
    end = datetime.datetime(2036, 3, 1, tzinfo=datetime.timezone.utc)
    assert tls.ca_expiry_warning(end, end - (CA_WARN_BEFORE_DAYS + 1) * DAY) is None
    soon = tls.ca_expiry_warning(end, end - CA_WARN_BEFORE_DAYS * DAY)
    assert soon and "expires on 2036-03-01, in 90 days" in soon and "./lab rotate-ca" in soon and "./lab trust" in soon
    gone = tls.ca_expiry_warning(end, end + DAY)
    assert gone and "expired on 2036-03-01" in gone and "./lab rotate-ca" in gone


def run_with_ca(monkeypatch, issued: datetime.datetime, today: datetime.datetime):
    """The program under mocks on ``today``, with the CA and certificate a lab made on ``issued``
    holds in its state (as a preview or `up` of that lab sees them)."""
    ca = certificates.run("ca", {"common_name": "k8s-lab lab CA", "domain": "lab.test", "validity_days": 3650}, now=issued)
    request = {"ca_cert_pem": ca["cert_pem"], "ca_key_pem": ca["key_pem"], "dns_names": ["*.lab.test", "lab.test"], "validity_days": 397}
    made = {"lab-tls-ca": ca, "lab-tls-certificate": certificates.run("certificate", request, now=issued)}

    class MadeOnThatDay(LabMocks):
        def new_resource(self, args):
            if args.name in made:
                return f"{args.name}-id", {**args.inputs, "stdout": json.dumps(made[args.name]), "stderr": ""}
            return super().new_resource(args)

    monkeypatch.setattr(tls, "_now", lambda: today)
    return run_program("lab", existing(domain="lab.test"), secret_keys=("cluster",), mocks=MadeOnThatDay())


def test_preview_warns_when_the_ca_nears_its_end_and_once_it_has_expired(monkeypatch):
    issued = NOW - 3600 * DAY  # a CA of 3650 days with 50 left
    near = run_with_ca(monkeypatch, issued, NOW)
    end = not_after(near.outputs["ca_certificate"])
    (warning,) = [w for w in near.warnings if w.startswith("tls:")]
    assert f"the lab CA expires on {end:%Y-%m-%d}, in {(end - NOW).days} days" in warning and "./lab rotate-ca" in warning
    assert not [w for w in run_with_ca(monkeypatch, NOW - 3000 * DAY, NOW).warnings if w.startswith("tls:")]
    expired = run_with_ca(monkeypatch, NOW - 3700 * DAY, NOW)
    assert expired.errors == [] and any("the lab CA expired on" in w for w in expired.warnings)


def test_no_up_issues_the_certificate_again_in_the_cas_last_days_or_after_it_expired(monkeypatch):
    # The old rule (renew within 30 days of the certificate's expiry) re-issued it on every `up`
    # once the certificate had been cut short to the CA's end, and crashed once the CA expired.
    issued = NOW - 3630 * DAY  # the CA has 20 days left
    due = [triggers(run_with_ca(monkeypatch, issued, NOW + n * DAY), "lab-tls-certificate") for n in (0, 5, 19, 21, 400)]
    assert all(t == due[0] for t in due), due


def lab_with_stand_in_pulumi(tmp_path, rotation, up_status: int = 0):
    """``./lab rotate-ca`` with a stand-in pulumi: it answers ``config get`` with ``rotation`` (None:
    not set), fails ``up`` with ``up_status``, and records every call."""
    get = f"echo {rotation}" if rotation is not None else "echo 'error: configuration key not found' >&2; exit 1"
    pulumi = (
        f'echo "$*" >>{tmp_path}/calls\n'
        'case "$*" in\n'
        f'  "config get --stack lab --path tls.ca_rotation") {get} ;;\n'
        f'  "up --stack lab"*) exit {up_status} ;;\n'
        "esac\n"
    )
    result = run_lab_cli(tmp_path, "rotate-ca", pulumi)
    return result, (tmp_path / "calls").read_text().splitlines()


def test_lab_rotate_ca_raises_the_rotation_runs_up_and_says_to_trust_the_new_ca(tmp_path):
    result, calls = lab_with_stand_in_pulumi(tmp_path, rotation=None)
    assert result.returncode == 0, result.stderr
    assert "config set --stack lab --path tls.ca_rotation 1" in calls
    assert calls[-1] == "up --stack lab"
    assert "the lab has a new CA" in result.stdout and "./lab trust" in result.stdout
    (tmp_path / "again").mkdir()
    _, calls = lab_with_stand_in_pulumi(tmp_path / "again", rotation=4)
    assert "config set --stack lab --path tls.ca_rotation 5" in calls


def test_lab_rotate_ca_says_what_stays_when_up_fails(tmp_path):
    result, calls = lab_with_stand_in_pulumi(tmp_path, rotation=2, up_status=255)
    assert result.returncode == 1 and "the lab has a new CA" not in result.stdout
    assert "tls.ca_rotation stays 3, so the next ./lab up makes the new CA (set it back to 2 to keep the old one)" in result.stderr


# -- the graph -------------------------------------------------------------------------------


def test_one_ca_and_one_wildcard_certificate_for_the_domain():
    r = run_lab(apps=ALL_APPS, domain="lab.test")
    ca, cert = r.one(COMMAND, "lab-tls-ca"), r.one(COMMAND, "lab-tls-certificate")
    assert json.loads(ca.inputs["stdin"]) == {"common_name": "k8s-lab lab CA", "domain": "lab.test", "validity_days": 3650}
    assert json.loads(cert.inputs["stdin"])["dns_names"] == ["*.lab.test", "lab.test"]
    assert [c.name for c in r.of_type(COMMAND) if c.parent == r.one("k8s-lab:tls:LabTLS").urn] == ["lab-tls-ca", "lab-tls-certificate"]
    verify(r.named("lab-apps-demo-tls").input("stringData")["tls.crt"], r.outputs["ca_certificate"], "grafana.lab.test")


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
    assert r.outputs["ca_certificate"] in check.inputs["triggers"]


def test_tls_can_be_turned_off():
    r = run_lab(**{"tls.enabled": False})
    assert not [c for c in r.of_type(COMMAND) if "-tls-" in c.name] and not [s for s in r.of_type(SECRET) if s.name.endswith("-tls")]
    assert "tls" not in r.one(INGRESS).inputs["spec"]
    assert "LAB_CA_CERT" not in r.named("lab-self-check-run").inputs["environment"]
    assert "ca_certificate" not in r.outputs and "trust_commands" not in r.outputs
    gateway = run_lab(**{"tls.enabled": False, "ingress.controller": "traefik", "ingress.api": "gateway"})
    (lab_gateway,) = gateway.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    assert [listener["name"] for listener in lab_gateway.input("spec.listeners")] == ["web"]
    assert not [s for s in gateway.of_type(SECRET) if s.name.endswith("-tls")]


def test_settings_reach_the_ca_and_the_certificate():
    r = run_lab(**{"tls.ca_common_name": "My lab", "tls.ca_validity_days": 365, "tls.certificate_validity_days": 90})
    ca = x509.load_pem_x509_certificate(r.outputs["ca_certificate"].encode())
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "My lab"
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == 365
    cert = x509.load_pem_x509_certificate(r.named("lab-apps-demo-tls").input("stringData")["tls.crt"].encode())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 90


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
