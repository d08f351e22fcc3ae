"""The stack outputs: what tells the user what to do after `pulumi up`."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from typing import Callable


from harness import DELETE, MOCK_LOAD_BALANCER_IP, needs_curl, run_lab_cli, run_program
from labruns import ALL_APPS, run_lab


def test_outputs_of_a_lab_with_every_app():
    r = run_lab(apps=ALL_APPS, domain="lab.test")
    assert r.outputs["ingress_ip"] == "192.168.56.200"
    assert r.outputs["etc_hosts"] == "192.168.56.200 app.lab.test argocd.lab.test grafana.lab.test boutique.lab.test"
    assert r.outputs["hostnames"] == ["app.lab.test", "argocd.lab.test", "grafana.lab.test", "boutique.lab.test"]
    assert r.outputs["urls"] == {
        "demo": "http://app.lab.test",
        "argocd": "http://argocd.lab.test",
        "grafana": "http://grafana.lab.test",
        "online-boutique": "http://boutique.lab.test",
    }
    assert r.outputs["check"] == "./lab check"
    assert set(r.outputs["admin_passwords"]) == {"argocd", "grafana"}


def test_credentials_are_secret_and_nothing_else_is():
    r = run_lab(apps=ALL_APPS)
    assert r.secret_outputs == {"kubeconfig", "admin_passwords"}
    assert r.outputs["kubeconfig"].startswith("apiVersion: v1")


def test_a_lab_without_passwords_still_exports_an_empty_secret_map():
    r = run_lab()
    assert r.outputs["admin_passwords"] == {}
    assert "admin_passwords" in r.secret_outputs


def test_unpinned_ingress_ip_comes_from_metallb():
    r = run_lab(**{"ingress.ip": DELETE})
    assert r.outputs["ingress_ip"] == MOCK_LOAD_BALANCER_IP
    assert r.outputs["etc_hosts"] == f"{MOCK_LOAD_BALANCER_IP} app.lab.local"


def test_the_seed_lab_on_its_own_vms():
    r = run_program("lab")
    assert r.outputs["node_ips"] == {"k8s-cp": "192.168.56.10", "k8s-w1": "192.168.56.11", "k8s-w2": "192.168.56.12"}
    assert r.outputs["ingress_ip"] == "192.168.56.200"
    assert r.outputs["etc_hosts"] == "192.168.56.200 app.lab.local"
    assert r.secret_outputs == {"kubeconfig", "admin_passwords"}
    # The ingress goes in once pods get IPs (the CNI) and every worker is there to take one of its
    # pods, while MetalLB comes up beside it (MetalLB needs the first worker only); the self-check
    # runs last, after everything.
    install = r.one("kubernetes:yaml/v2:ConfigFile", "lab-ingress-install")
    for step in ("lab-k8s-w1-join", "lab-k8s-w2-join", "lab-cni"):
        assert r.waits_for(install, r.named(step)), step
    metallb = r.one("kubernetes:yaml/v2:ConfigFile", "lab-metallb-install")
    assert not r.waits_for(install, metallb) and not r.waits_for(metallb, r.named("lab-k8s-w2-join"))
    # So do the apps: their pods need a worker too.
    for app_step in ("lab-apps-demo-deployment", "lab-apps-demo-namespace"):
        assert r.waits_for(r.named(app_step), r.named("lab-k8s-w1-join")), app_step
    check = r.named("lab-self-check-run")
    assert r.waits_for(check, r.named("lab-apps-demo-ingress"))
    for step in ("lab-k8s-w1-join", "lab-metallb-l2-lab-l2", "lab-metallb-pool-lab-pool-reserved-ingress"):
        assert r.waits_for(check, r.named(step)), step


# -- ./lab check: the same script, on the stack's outputs --


def _lab_check(tmp_path, exported: dict, status: Callable[[str], int]) -> subprocess.CompletedProcess:
    """`./lab check` against a loopback ingress answering ``status(Host)``, with a stand-in Pulumi
    CLI that knows one stack output: the environment the program exports for the check."""

    class Ingress(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status(self.headers.get("Host", "")))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ingress)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    pulumi = (
        'case "$*" in\n'
        f"  'stack output --stack lab --json check_environment') echo '{json.dumps(exported)}' ;;\n"
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    try:
        return run_lab_cli(tmp_path, "check", pulumi, LAB_INGRESS_PORT=str(server.server_port), LAB_TIMEOUT_SECONDS="0")
    finally:
        server.shutdown()
        server.server_close()


CHECK_ENVIRONMENT = {"LAB_INGRESS_IP": "127.0.0.1", "LAB_TIMEOUT_SECONDS": "300", "LAB_CONTROLLER": "ingress-nginx",
                     "LAB_NETWORK_CIDR": "192.168.56.0/24"}  # fmt: skip


@needs_curl
def test_lab_check_runs_the_self_check_on_the_stack_outputs(tmp_path):
    result = _lab_check(tmp_path, {**CHECK_ENVIRONMENT, "LAB_HOSTNAMES": "app.lab.test"},
                        lambda host: 200 if host == "app.lab.test" else 404)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-check ok: http://app.lab.test -> HTTP 200 through 127.0.0.1" in result.stdout


@needs_curl
def test_lab_check_of_a_lab_without_apps_checks_the_ingress_ip(tmp_path):
    # apps: [] leaves the check's hostnames empty; a controller answers 404 for a host it has no rule for.
    result = _lab_check(tmp_path, {**CHECK_ENVIRONMENT, "LAB_HOSTNAMES": ""}, lambda host: 404)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the lab has no apps" in result.stdout and "127.0.0.1" in result.stdout


def test_lab_check_before_up_says_what_to_do(tmp_path):
    result = run_lab_cli(tmp_path, "check", "exit 1\n")
    assert result.returncode == 1
    assert "run ./lab up first" in result.stderr
