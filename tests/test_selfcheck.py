"""The self-check: its wiring into `pulumi up`, and the script's verdicts against a loopback server.

The script only ever talks to 127.0.0.1 here. Its diagnosis reads the machine's route and ARP
tables through `ip`; tests that need another network's view put a stub `ip` first on PATH.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from components import selfcheck
from harness import DELETE, MOCK_LOAD_BALANCER_IP, ROOT, needs_curl, run_program
from labruns import ALL_APPS, COMMAND, CONFIGFILE, INGRESS, run_lab

SCRIPT = ROOT / "scripts" / "self-check.sh"
BASH = shutil.which("bash") or "/bin/bash"
CHECK = "lab-self-check-run"


# -- wiring --


def test_runs_the_script_with_the_ip_and_every_hostname():
    r = run_lab(apps=ALL_APPS)
    command = r.one(COMMAND, CHECK)
    assert command.inputs["create"] == "bash scripts/self-check.sh"
    assert (ROOT / "scripts/self-check.sh").is_file()
    hosts = ["app.lab.local", "argocd.lab.local", "grafana.lab.local", "boutique.lab.local"]
    ca = r.outputs["ca_certificate"]
    assert command.inputs["environment"] == {
        "LAB_CA_CERT": ca,
        "LAB_INGRESS_IP": "192.168.56.200",
        "LAB_HOSTNAMES": " ".join(hosts),
        "LAB_TIMEOUT_SECONDS": "300",
        "LAB_CONTROLLER": "ingress-nginx",
        "LAB_NETWORK_CIDR": "192.168.56.0/24",
    }
    # Re-runs when the IP, the hostnames, the CA or the objects on the way change (the last, a digest).
    assert command.inputs["triggers"][:-1] == ["192.168.56.200", *hosts, ca]
    assert re.fullmatch(r"[0-9a-f]{64}", command.inputs["triggers"][-1])
    assert command.inputs["logging"] == "stdoutAndStderr"


def test_runs_after_the_controller_and_every_app_ingress():
    r = run_lab(apps=ALL_APPS)
    command = r.one(COMMAND, CHECK)
    assert r.waits_for(command, r.one(CONFIGFILE, "lab-ingress-install"))
    for route in r.of_type(INGRESS):
        assert r.waits_for(command, route), route.name


def test_inputs_are_stable_between_runs_so_an_unchanged_lab_shows_no_diff():
    from harness import run_program
    from labruns import existing

    again = run_program("lab", existing(apps=ALL_APPS), secret_keys=("cluster",))
    assert again.one(COMMAND, CHECK).inputs == run_lab(apps=ALL_APPS).one(COMMAND, CHECK).inputs


def test_changing_the_ip_or_the_apps_changes_the_triggers():
    base = run_lab().one(COMMAND, CHECK).inputs["triggers"]
    assert run_lab(**{"ingress.ip": "192.168.56.210"}).one(COMMAND, CHECK).inputs["triggers"] != base
    assert run_lab(apps=["demo", "grafana"]).one(COMMAND, CHECK).inputs["triggers"] != base
    assert run_lab(domain="lab.test").one(COMMAND, CHECK).inputs["triggers"] != base


def replaced_with(run) -> set[str]:
    """The names of the resources whose replacement replaces (re-runs) the self-check."""
    return {run.by_urn(urn).name for urn in run.one(COMMAND, CHECK).options["replace_with"]}


def test_runs_again_whenever_the_cluster_or_an_object_it_checks_is_replaced():
    # A rebuilt cluster remakes every object under the same names: no input of the check changes,
    # so it follows the engine's replacements of the cluster and of each object on the way.
    r = run_lab(apps=ALL_APPS)
    routes = {f"lab-apps-{app}-ingress" for app in ALL_APPS}
    secrets = {f"lab-apps-{app}-tls" for app in ALL_APPS}
    assert replaced_with(r) == {
        "lab-provider",
        "lab-metallb-pool-lab-pool",
        "lab-metallb-pool-lab-pool-reserved-ingress",
        "lab-metallb-l2-lab-l2",
        *routes,
        *secrets,
        "lab-tls-ca",
        "lab-tls-certificate",
    }
    assert {r.named(name).type for name in routes} == {INGRESS}


def test_a_new_kubeadm_cluster_runs_it_again():
    # kubernetes.version, pod_cidr, cni...: a new init is a new cluster, whose provider is new too.
    vagrant_lab = run_program("lab")
    assert {"lab-init", "lab-provider"} <= replaced_with(vagrant_lab)
    assert vagrant_lab.named("lab-init").type == COMMAND


def test_with_the_gateway_api_and_dns_it_follows_their_objects():
    r = run_lab(**{"ingress.controller": "traefik", "ingress.api": "gateway", "dns.enabled": True, "dns.ip": "192.168.56.250"})
    names = replaced_with(r)
    assert {"lab-ingress-gateway-class", "lab-ingress-gateway", "lab-ingress-tls", "lab-apps-demo-route"} <= names
    assert {"lab-dns-config", "lab-dns-deployment", "lab-dns-service"} <= names
    # HTTPS ends at the Gateway: no certificate beside the route.
    assert "lab-apps-demo-tls" not in names


@pytest.mark.parametrize(
    "change",
    [
        {"metallb.pools[0].name": "pool-a", "metallb.l2_advertisements[0].pools": ["pool-a"]},
        {"metallb.l2_advertisements[0].name": "l2-a"},
        {"ingress.controller": "traefik", "ingress.api": "gateway"},
        {"metallb.version": "0.15.3"},
        {"ingress.version": "1.14.0"},
    ],
    ids=["a renamed pool", "a renamed advertisement", "routes of another API", "another MetalLB", "another controller version"],
)
def test_other_objects_on_the_way_or_another_install_run_it_again(change):
    base = run_lab(**{"ingress.controller": change["ingress.controller"]} if "ingress.controller" in change else {})
    changed = run_lab(**change)
    assert changed.one(COMMAND, CHECK).inputs["environment"] == base.one(COMMAND, CHECK).inputs["environment"]
    assert changed.one(COMMAND, CHECK).inputs["triggers"] != base.one(COMMAND, CHECK).inputs["triggers"]


def test_unpinned_ip_is_the_one_metallb_assigned():
    command = run_lab(**{"ingress.ip": DELETE}).one(COMMAND, CHECK)
    assert command.inputs["environment"]["LAB_INGRESS_IP"] == MOCK_LOAD_BALANCER_IP
    assert command.inputs["triggers"][0] == MOCK_LOAD_BALANCER_IP


def test_can_be_switched_off():
    r = run_lab(**{"self_check.enabled": False})
    assert CHECK not in [c.name for c in r.of_type(COMMAND)]
    assert not r.of_type("k8s-lab:selfcheck:SelfCheck")
    assert r.outputs["check"] == "./lab check"  # still runnable by hand


def test_a_lab_without_apps_checks_that_the_ingress_ip_answers():
    r = run_lab(apps=[])
    command = r.one(COMMAND, CHECK)
    assert command.inputs["environment"]["LAB_HOSTNAMES"] == ""
    assert command.inputs["environment"]["LAB_INGRESS_IP"] == "192.168.56.200"
    # The IP, the lab CA (HTTPS is on by default) and the objects' digest; no hostname.
    assert command.inputs["triggers"][0] == "192.168.56.200"
    assert [t for t in command.inputs["triggers"][1:-1] if "BEGIN CERTIFICATE" not in t] == []
    assert r.outputs["ingress_ip"] == "192.168.56.200"
    assert r.outputs["hostnames"] == [] and r.outputs["urls"] == {} and r.outputs["etc_hosts"] is None


def test_timeout_comes_from_config():
    assert run_lab(**{"self_check.timeout_seconds": 60}).one(COMMAND, CHECK).inputs["environment"]["LAB_TIMEOUT_SECONDS"] == "60"


def test_etc_hosts_line():
    assert selfcheck.etc_hosts_line("192.168.56.200", ["app.lab.test", "grafana.lab.test"]) == "192.168.56.200 app.lab.test grafana.lab.test"
    assert selfcheck.etc_hosts_line(None, ["app.lab.test"]) is None
    assert selfcheck.etc_hosts_line("192.168.56.200", []) is None


# -- the script against a loopback ingress --


class FakeIngress(http.server.ThreadingHTTPServer):
    """Routes by Host like an ingress controller: known hosts answer, others get 404."""

    def __init__(self, routes: dict[str, list[int]]):
        self.routes = routes  # host -> status codes to answer in turn (the last one repeats)
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        host = self.headers.get("Host", "").split(":")[0]  # controllers match the name, not the port
        self.server.seen.append(host)
        codes = self.server.routes.get(host, [404])
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_ingress(tmp_path):
    """Starts loopback FakeIngress servers; given a certificate and its key (PEM), one serves HTTPS with them."""
    servers = []

    def start(routes: dict[str, list[int]], tls: tuple[str, str] | None = None):
        server = FakeIngress(routes)
        if tls is not None:
            (tmp_path / "tls.crt").write_text(tls[0])
            (tmp_path / "tls.key").write_text(tls[1])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check(port: int, hostnames: str, *, path: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {
        "PATH": path if path is not None else os.environ["PATH"],
        "LAB_INGRESS_IP": "127.0.0.1",
        "LAB_INGRESS_PORT": str(port),
        "LAB_HOSTNAMES": hostnames,
        "LAB_TIMEOUT_SECONDS": "0",
        "LAB_RETRY_SECONDS": "0",
        **env,
    }
    environment = {k: v for k, v in environment.items() if v is not None}  # None: unset
    return subprocess.run([BASH, str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60)


@needs_curl
def test_without_apps_the_controllers_own_answer_passes(fake_ingress):
    # No hostnames: the controller answers the bare IP with its default 404, which shows it serves.
    server = fake_ingress({})
    result = check(server.server_port, "")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no apps" in result.stdout and "HTTP 404" in result.stdout


@needs_curl
def test_without_apps_a_silent_ip_still_fails():
    result = check(closed_port(), "")
    assert result.returncode == 1
    assert "no apps" in result.stdout and "does not answer" in result.stdout


@needs_curl
def test_every_host_answering_passes(fake_ingress):
    server = fake_ingress({"app.lab.test": [200], "grafana.lab.test": [302]})
    result = check(server.server_port, "app.lab.test grafana.lab.test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-check ok: http://app.lab.test -> HTTP 200" in result.stdout
    assert "http://grafana.lab.test -> HTTP 302" in result.stdout
    assert sorted(server.seen) == ["app.lab.test", "grafana.lab.test"]  # the Host header is what routes


@needs_curl
def test_retries_until_the_app_is_ready(fake_ingress):
    server = fake_ingress({"app.lab.test": [503, 503, 200]})
    result = check(server.server_port, "app.lab.test", LAB_TIMEOUT_SECONDS="30")
    assert result.returncode == 0, result.stdout
    assert server.seen == ["app.lab.test"] * 3


@needs_curl
def test_unknown_host_fails_naming_the_missing_ingress_rule(fake_ingress):
    server = fake_ingress({"app.lab.test": [200]})
    result = check(server.server_port, "app.lab.test argocd.lab.test")
    assert result.returncode == 1
    assert "FAIL  http://argocd.lab.test -> HTTP 404" in result.stdout
    assert "ok    http://app.lab.test -> HTTP 200" in result.stdout
    assert "Likely cause:" in result.stdout and "no rule for the failing hostnames" in result.stdout
    assert "kubectl get ingress -A" in result.stdout


@needs_curl
def test_backend_not_ready_is_named(fake_ingress):
    server = fake_ingress({"app.lab.test": [503]})
    result = check(server.server_port, "app.lab.test")
    assert result.returncode == 1
    assert "apps' pods are not ready" in result.stdout


@needs_curl
def test_gives_up_after_the_timeout(fake_ingress):
    server = fake_ingress({"app.lab.test": [503]})
    # The next round would end past the timeout: give up now rather than overrun it.
    result = check(server.server_port, "app.lab.test", LAB_TIMEOUT_SECONDS="5", LAB_RETRY_SECONDS="5")
    assert result.returncode == 1
    assert server.seen == ["app.lab.test"]
    assert "(timeout 5s)" in result.stdout


@needs_curl
def test_nothing_listening_on_this_machine():
    result = check(closed_port(), "app.lab.test")
    assert result.returncode == 1
    assert "connection refused" in result.stdout
    assert "address of this machine itself" in result.stdout


@needs_curl
def test_ip_outside_the_host_only_network_is_named():
    result = check(closed_port(), "app.lab.test", LAB_NETWORK_CIDR="192.168.56.0/24")
    assert "127.0.0.1 is not inside the host-only network 192.168.56.0/24" in result.stdout


def stub_ip(tmp_path: Path, *, route: str, neigh: str = "", addr: str = "") -> str:
    """A PATH whose `ip` prints canned route/neighbour/address tables (everything else is the real PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "ip"
    stub.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *'route get'*) echo '{route}' ;;\n"
        f"  *'neigh show'*) echo '{neigh}' ;;\n"
        f"  *'addr show'*) echo '{addr}' ;;\n"
        "esac\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}:{os.environ['PATH']}"


@needs_curl
def test_unanswered_arp_means_metallb_did_not_announce(tmp_path):
    path = stub_ip(tmp_path, route="192.168.56.200 dev vboxnet0 src 192.168.56.1 uid 0", neigh="192.168.56.200 dev vboxnet0 FAILED")
    result = check(closed_port(), "app.lab.test", path=path)
    assert result.returncode == 1
    assert "nobody answered ARP for 127.0.0.1 (vboxnet0 on this machine): MetalLB has not announced it" in result.stdout
    assert "L2Advertisement" in result.stdout


@needs_curl
def test_answered_arp_with_refused_connection_means_the_controller_is_not_ready(tmp_path):
    path = stub_ip(
        tmp_path,
        route="192.168.56.200 dev vboxnet0 src 192.168.56.1 uid 0",
        neigh="192.168.56.200 dev vboxnet0 lladdr 08:00:27:aa:bb:cc REACHABLE",
    )
    result = check(closed_port(), "app.lab.test", path=path, LAB_CONTROLLER="ingress-nginx")
    assert "announced (08:00:27:aa:bb:cc answered ARP)" in result.stdout
    assert "ingress-nginx on port" in result.stdout and "not ready" in result.stdout


@needs_curl
def test_route_through_the_default_gateway_means_off_segment(tmp_path):
    path = stub_ip(tmp_path, route="192.168.56.200 via 10.0.0.1 dev wlan0 src 10.0.0.5 uid 0")
    result = check(closed_port(), "app.lab.test", path=path)
    assert "leave through your default gateway" in result.stdout


@needs_curl
def test_laptop_without_an_address_on_the_network_is_named(tmp_path):
    path = stub_ip(tmp_path, route="unused", addr="2: wlan0    inet 10.0.0.5/24 brd 10.0.0.255 scope global wlan0")
    result = check(closed_port(), "app.lab.test", path=path, LAB_NETWORK_CIDR="127.0.0.0/8")
    assert "this machine has no address on the host-only network 127.0.0.0/8" in result.stdout


def test_missing_curl_is_said_plainly(tmp_path):
    result = check(80, "app.lab.test", path=str(tmp_path))  # a PATH with no curl on it
    assert result.returncode == 2
    assert "curl is not installed" in result.stderr
    assert "self_check.enabled false" in result.stderr


@pytest.mark.parametrize("env,words", [({"LAB_INGRESS_IP": ""}, "LAB_INGRESS_IP"), ({"LAB_HOSTNAMES": None}, "LAB_HOSTNAMES"), ({"LAB_TIMEOUT_SECONDS": "soon"}, "whole number")])
def test_bad_usage_exits_2(env, words):
    result = check(80, "app.lab.test", **env)
    assert result.returncode == 2 and words in result.stderr


# -- HTTPS: the certificate must chain to the lab CA and name the host ----------------------


@pytest.fixture(scope="module")
def lab_ca():
    from components import certificates

    return certificates.issue_ca("k8s-lab test CA", "lab.test", 30)


def check_both(http_port: int, https_port: int, hostnames: str, ca_pem: str, **env: str) -> subprocess.CompletedProcess:
    return check(http_port, hostnames, LAB_HTTPS_PORT=str(https_port), LAB_CA_CERT=ca_pem, **env)


@needs_curl
def test_https_with_the_lab_certificate_passes(fake_ingress, lab_ca):
    from components import certificates

    ca_pem, ca_key = lab_ca
    cert, key = certificates.issue_certificate(ca_pem, ca_key, ["*.lab.test", "lab.test"], 7)
    routes = {"app.lab.test": [200], "grafana.lab.test": [302]}
    http, https = fake_ingress(dict(routes)), fake_ingress(dict(routes), tls=(cert, key))
    result = check_both(http.server_port, https.server_port, "app.lab.test grafana.lab.test", ca_pem)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-check ok: https://app.lab.test -> HTTP 200" in result.stdout and "certificate from the lab CA" in result.stdout
    assert sorted(https.seen) == ["app.lab.test", "grafana.lab.test"]  # SNI and Host are the hostname


@needs_curl
def test_https_certificate_from_another_ca_is_named(fake_ingress, lab_ca):
    from components import certificates

    other_ca, other_key = certificates.issue_ca("a controller's default CA", "lab.test", 30)
    cert, key = certificates.issue_certificate(other_ca, other_key, ["*.lab.test"], 7)
    http, https = fake_ingress({"app.lab.test": [200]}), fake_ingress({"app.lab.test": [200]}, tls=(cert, key))
    result = check_both(http.server_port, https.server_port, "app.lab.test", lab_ca[0])
    assert result.returncode == 1
    assert "ok    http://app.lab.test -> HTTP 200" in result.stdout
    assert "FAIL  https://app.lab.test -> the certificate does not chain to the lab CA" in result.stdout
    assert "lab-tls Secret is missing" in result.stdout


@needs_curl
def test_https_certificate_for_other_names_is_named(fake_ingress, lab_ca):
    from components import certificates

    ca_pem, ca_key = lab_ca
    cert, key = certificates.issue_certificate(ca_pem, ca_key, ["lab.test"], 7)  # no wildcard: app.lab.test is not covered
    http, https = fake_ingress({"app.lab.test": [200]}), fake_ingress({"app.lab.test": [200]}, tls=(cert, key))
    result = check_both(http.server_port, https.server_port, "app.lab.test", ca_pem)
    assert result.returncode == 1
    assert "FAIL  https://app.lab.test -> the certificate does not name app.lab.test" in result.stdout
    assert "*.<domain>" in result.stdout


@needs_curl
def test_http_answering_but_no_https_is_named(fake_ingress, lab_ca):
    http = fake_ingress({"app.lab.test": [200]})
    result = check_both(http.server_port, closed_port(), "app.lab.test", lab_ca[0])
    assert result.returncode == 1
    assert "FAIL  https://app.lab.test -> refused" in result.stdout
    assert "HTTP works but HTTPS does not" in result.stdout


@needs_curl
def test_without_a_ca_only_http_is_checked(fake_ingress):
    http = fake_ingress({"app.lab.test": [200]})
    result = check(http.server_port, "app.lab.test", LAB_HTTPS_PORT=str(closed_port()))
    assert result.returncode == 0 and "https://" not in result.stdout



def test_pulumi_up_and_lab_check_share_one_exported_environment():
    r = run_lab()
    exported = r.outputs["check_environment"]
    assert exported == r.one(COMMAND, CHECK).inputs["environment"]
    assert exported["LAB_NETWORK_CIDR"] == "192.168.56.0/24" and exported["LAB_CONTROLLER"] == "ingress-nginx"
