"""DNS for the lab's zone (``dns.enabled``): CoreDNS objects, its pinned and reserved IP, the
validation of ``dns.ip``, the resolver outputs, and the self-check's DNS path against a loopback
DNS server (a few lines of dnspython standing in for CoreDNS: it answers A queries for the names
it is given and refuses the rest, as the lab's Corefile does).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import kubernetes_validate
import pytest

from components import dns as lab_dns
from harness import DELETE, MOCK_LOAD_BALANCER_IP, ROOT, needs_curl, run_lab_cli, run_program
from labruns import COMMAND, SERVICE, config_problems, existing, run_lab
from test_selfcheck import fake_ingress  # noqa: F401  (the loopback ingress fixture)

DNS_IP = "192.168.56.250"
ON = {"dns.enabled": True, "dns.ip": DNS_IP, "domain": "lab.test"}
POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"
L2 = "kubernetes:metallb.io/v1beta1:L2Advertisement"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"


def dns_lab(**overrides):
    return run_lab(**{**ON, **overrides})


# -- the objects -----------------------------------------------------------------------------


def test_coredns_answers_the_zone_with_the_ingress_ip_on_one_pinned_service():
    r = dns_lab()
    service = r.named("lab-dns-service")
    assert service.input("metadata.annotations") == {"metallb.io/loadBalancerIPs": DNS_IP}
    spec = service.input("spec")
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Cluster"
    assert sorted((p["port"], p["protocol"], p["targetPort"]) for p in spec["ports"]) == [(53, "TCP", "dns-tcp"), (53, "UDP", "dns")]
    corefile = r.named("lab-dns-config").input("data")["Corefile"]
    assert corefile.startswith("lab.test:1053 {")
    assert 'template IN A lab.test {\n        answer "{{ .Name }} 60 IN A 192.168.56.200"' in corefile
    assert "forward" not in corefile  # the lab's zone only: no open resolver
    container = r.named("lab-dns-deployment").input("spec.template.spec.containers")[0]
    assert container["image"] == "registry.k8s.io/coredns/coredns:v1.14.2"  # the same as kubeadm 1.36's cluster DNS
    assert {p["containerPort"] for p in container["ports"]} == {1053}  # unprivileged: no capability needed
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert r.named("lab-dns-namespace").input("metadata.name") == "lab-dns"
    # Two servers on two nodes: the laptop's resolver keeps answering when a worker stops.
    deployment = r.named("lab-dns-deployment")
    assert deployment.input("spec.replicas") == 2
    (spread,) = deployment.input("spec.template.spec.topologySpreadConstraints")
    assert spread["labelSelector"]["matchLabels"] == deployment.input("spec.selector.matchLabels")
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    # A worker still joining counts as a place for a pod (it starts there once the node is Ready);
    # a lost one (unreachable) does not.
    assert deployment.input("spec.template.spec.tolerations") == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_coredns_version_comes_from_config():
    container = dns_lab(**{"dns.version": "1.12.4"}).named("lab-dns-deployment").input("spec.template.spec.containers")[0]
    assert container["image"] == "registry.k8s.io/coredns/coredns:v1.12.4"
    assert "MAJOR.MINOR.PATCH" in config_problems(**{**ON, "dns.version": "v1.12"})["dns.version"]


def test_coredns_objects_are_valid_kubernetes_objects():
    objects = lab_dns.dns_manifests("lab.test", "192.168.56.200", "1.12.1", {"metallb.io/loadBalancerIPs": DNS_IP})
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", **objects["config_map"]}, "1.34", strict=True)
    kubernetes_validate.validate({"apiVersion": "apps/v1", "kind": "Deployment", **objects["deployment"]}, "1.34", strict=True)
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Service", **objects["service"]}, "1.34", strict=True)


def test_a_new_corefile_rolls_the_pod():
    one = lab_dns.dns_manifests("lab.test", "192.168.56.200", "1.12.1", {})["deployment"]
    other = lab_dns.dns_manifests("lab.test", "192.168.56.210", "1.12.1", {})["deployment"]
    key = "k8s-lab/corefile-sha256"
    assert one["spec"]["template"]["metadata"]["annotations"][key] != other["spec"]["template"]["metadata"]["annotations"][key]


def test_unpinned_ingress_ip_reaches_the_corefile():
    corefile = dns_lab(**{"ingress.ip": DELETE}).named("lab-dns-config").input("data")["Corefile"]
    assert f"IN A {MOCK_LOAD_BALANCER_IP}" in corefile


def test_the_dns_ip_is_reserved_beside_the_ingress_ip_and_announced():
    r = dns_lab()
    pools = {p.input("metadata.name"): p.input("spec") for p in r.of_type(POOL)}
    assert pools["lab-pool-reserved-ingress"] == {"addresses": ["192.168.56.200/32"], "autoAssign": False}
    assert pools["lab-pool-reserved-dns"] == {"addresses": [f"{DNS_IP}/32"], "autoAssign": False}
    assert pools["lab-pool"] == {"addresses": ["192.168.56.201-192.168.56.249"], "autoAssign": True}
    (l2,) = r.of_type(L2)
    assert l2.input("spec.ipAddressPools") == ["lab-pool", "lab-pool-reserved-ingress", "lab-pool-reserved-dns"]


def test_dns_installs_beside_metallb_and_its_pods_once_every_worker_can_run_one():
    r = dns_lab()
    deployment, service = r.named("lab-dns-deployment"), r.named("lab-dns-service")
    assert deployment.depends_on(r.named("lab-dns-config"))
    # On a cluster the lab builds, its two pods spread one per worker: the scheduler counts only
    # the workers there when it places them, so the Deployment waits for every join; its Service
    # and zone need not.
    built = run_program("lab", ON)
    deployment = built.named("lab-dns-deployment")
    for join in ("lab-k8s-w1-join", "lab-k8s-w2-join"):
        assert built.waits_for(deployment, built.named(join)), join
    for other in ("lab-dns-service", "lab-dns-config"):
        assert not built.waits_for(built.named(other), built.named("lab-k8s-w2-join")), other
    for metallb_step in (r.named("lab-metallb-pool-lab-pool-reserved-dns"), r.one(L2)):
        assert not r.waits_for(service, metallb_step)
    check = r.one(COMMAND, "lab-self-check-run")
    assert r.waits_for(check, deployment) and r.waits_for(check, service)


def test_with_an_auto_assigned_ingress_ip_only_the_zone_waits_for_it():
    # The zone (Corefile) answers with the ingress IP, known once MetalLB gave the controller one;
    # the DNS Service asks MetalLB for its own pinned IP meanwhile.
    r = dns_lab(**{"ingress.ip": DELETE})
    (controller_service,) = r.reads  # the controller's Service, read back for its IP
    assert r.named("lab-dns-config").depends_on(controller_service)
    assert not r.named("lab-dns-service").depends_on(controller_service)
    assert not r.waits_for(r.named("lab-dns-service"), r.named("lab-ingress-install"))


def test_outputs_and_the_self_check_know_the_dns_server():
    r = dns_lab()
    assert r.outputs["dns_ip"] == DNS_IP
    resolvers = r.outputs["dns_resolvers"]
    assert set(resolvers) == {"systemd_resolved", "macos", "windows"}
    assert f"resolvectl dns \"$link\" {DNS_IP}" in resolvers["systemd_resolved"] and "'~lab.test'" in resolvers["systemd_resolved"]
    assert f"echo 'nameserver {DNS_IP}' | sudo tee /etc/resolver/lab.test" in resolvers["macos"]
    assert f'Add-DnsClientNrptRule -Namespace ".lab.test" -NameServers "{DNS_IP}"' in resolvers["windows"]
    environment = r.one(COMMAND, "lab-self-check-run").inputs["environment"]
    assert environment["LAB_DNS_IP"] == DNS_IP and environment["LAB_PYTHON"] == ".venv/bin/python"
    assert DNS_IP in r.one(COMMAND, "lab-self-check-run").inputs["triggers"]


def test_off_by_default():
    r = run_lab()
    assert not [x for x in r.resources if x.name.startswith("lab-dns")]
    assert "dns_ip" not in r.outputs and "LAB_DNS_IP" not in r.one(COMMAND, "lab-self-check-run").inputs["environment"]
    assert [s.input("metadata.name") for s in r.of_type(SERVICE)] == ["demo"]


# -- validation ------------------------------------------------------------------------------


def test_dns_ip_is_required_and_a_free_pool_address_is_suggested():
    assert "e.g. 192.168.56.250" in config_problems(**{"dns.enabled": True})["dns.ip"]


def test_dns_ip_must_be_in_a_pool_its_own_and_announced():
    assert "outside every MetalLB pool" in config_problems(**{**ON, "dns.ip": "192.168.56.100"})["dns.ip"]
    assert "also ingress.ip" in config_problems(**{**ON, "dns.ip": "192.168.56.200"})["dns.ip"]
    silent = config_problems(**{**ON, "dns.ip": "192.168.56.150", "metallb.pools[1]": {"name": "quiet", "addresses": ["192.168.56.150-192.168.56.160"]}})
    assert "no L2 advertisement announces" in silent["dns.ip"] and "quiet" in silent["dns.ip"]
    assert "lab-dns" in config_problems(**{**ON, "dns.ip": "lab-dns"})["dns.ip"]


def test_dns_needs_room_in_the_pools():
    tight = {"metallb.pools[0].addresses": ["192.168.56.200-192.168.56.201"], "dns.ip": "192.168.56.201"}
    run_program("lab", existing(**{**ON, **tight}))  # two addresses, two pinned Services: fits
    crowded = config_problems(**{**ON, **tight, "apps": ["online-boutique"], "app_options.online-boutique.frontend_external": True})
    assert "DNS server" in crowded["metallb.pools"]


def test_local_domain_warns_until_acknowledged():
    warned = [w for w in run_lab().warnings if "'.local'" in w]
    assert len(warned) == 1 and "RFC 6762" in warned[0] and "lab.test" in warned[0]
    assert "pulumi config set local_domain_acknowledged true" in warned[0]
    assert not [w for w in run_lab(local_domain_acknowledged=True).warnings if "'.local'" in w]
    assert not [w for w in run_lab(domain="lab.test").warnings if "'.local'" in w]
    with_dns = [w for w in run_lab(**{**ON, "domain": "lab.local"}).warnings if "'.local'" in w]
    assert "systemd-resolved and macOS send '.local' to mDNS" in with_dns[0]


# -- the self-check against a loopback DNS server --------------------------------------------


class FakeZone:
    """A UDP DNS server on 127.0.0.1: A records for the given names, REFUSED for anything else."""

    def __init__(self, records: dict[str, str]):
        self.records = {name.rstrip(".") + ".": ip for name, ip in records.items()}
        self.asked: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while self.running:
            try:
                data, peer = self.sock.recvfrom(512)
            except (socket.timeout, OSError):
                continue
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text()
            self.asked.append(name)
            response = dns.message.make_response(query)
            if name in self.records:
                response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", self.records[name]))
            else:
                response.set_rcode(dns.rcode.REFUSED)
            self.sock.sendto(response.to_wire(), peer)

    def close(self):
        self.running = False
        self.sock.close()


@pytest.fixture
def zone():
    zones = []

    def start(records):
        zones.append(FakeZone(records))
        return zones[-1]

    yield start
    for z in zones:
        z.close()


def test_dns_query_script_reports_answers_and_refusals(zone):
    z = zone({"app.lab.test": "192.168.56.200"})
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/dns-query.py"), "127.0.0.1", str(z.port), "app.lab.test", "www.example.com"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["app.lab.test ok 192.168.56.200", "www.example.com REFUSED"]
    assert z.asked == ["app.lab.test.", "www.example.com."]




def self_check(http_port: int, hostnames: str, dns_port: int) -> subprocess.CompletedProcess:
    from test_selfcheck import check

    return check(
        http_port, hostnames, LAB_DNS_IP="127.0.0.1", LAB_DNS_PORT=str(dns_port), LAB_PYTHON=sys.executable, LAB_DNS_TIMEOUT_SECONDS="0.5"
    )


@needs_curl
def test_self_check_passes_when_every_host_resolves_to_the_ingress_ip(fake_ingress, zone):
    z = zone({"app.lab.test": "127.0.0.1", "grafana.lab.test": "127.0.0.1"})
    http = fake_ingress({"app.lab.test": [200], "grafana.lab.test": [200]})
    result = self_check(http.server_port, "app.lab.test grafana.lab.test", z.port)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-check ok: app.lab.test resolves to 127.0.0.1 through the lab's DNS server 127.0.0.1" in result.stdout
    assert sorted(set(z.asked)) == ["app.lab.test.", "grafana.lab.test."]


@needs_curl
def test_self_check_names_a_wrong_address_and_a_refused_name(fake_ingress, zone):
    z = zone({"app.lab.test": "192.168.56.99"})
    http = fake_ingress({"app.lab.test": [200], "grafana.lab.test": [200]})
    result = self_check(http.server_port, "app.lab.test grafana.lab.test", z.port)
    assert result.returncode == 1
    assert "FAIL  app.lab.test resolves to 192.168.56.99 through 127.0.0.1, not to 127.0.0.1" in result.stdout
    assert "FAIL  grafana.lab.test: the DNS server 127.0.0.1 answers REFUSED" in result.stdout
    assert "older configuration" in result.stdout


@needs_curl
def test_self_check_names_a_silent_dns_server(fake_ingress):
    from test_selfcheck import closed_port

    http = fake_ingress({"app.lab.test": [200]})
    result = self_check(http.server_port, "app.lab.test", closed_port())
    assert result.returncode == 1
    assert "no answer from the DNS server 127.0.0.1" in result.stdout
    assert "kubectl -n lab-dns get pods,svc" in result.stdout


# -- ./lab dns -------------------------------------------------------------------------------


def test_lab_dns_prints_the_resolver_settings_of_the_stacks_output(tmp_path):
    resolvers = dns_lab().outputs["dns_resolvers"]
    (tmp_path / "out.json").write_text(json.dumps(resolvers))
    result = run_lab_cli(tmp_path, "dns", f'case "$*" in *"--json dns_resolvers"*) cat {tmp_path}/out.json ;; *) exit 1 ;; esac\n')
    assert result.returncode == 0, result.stderr
    assert "# macos\n" + resolvers["macos"] in result.stdout
    assert "# systemd resolved\n" + resolvers["systemd_resolved"] in result.stdout


def test_the_bring_up_graph_places_the_dns_server_beside_the_ingress_with_no_needless_wait():
    from harness import stack_config
    from components import config as lab_config
    from tools import stepgraph as sg

    overrides = {"k8s-lab:dns": {"enabled": True, "ip": DNS_IP}, "k8s-lab:domain": "lab.test"}
    raw = {k.split(":", 1)[1]: v for k, v in {**stack_config("lab"), **overrides}.items() if k.startswith("k8s-lab:")}
    cfg = lab_config.parse(raw, stack="lab")
    req = sg.inherent_requirements(cfg)
    assert req[("dns", None)] == req[("ingress", None)]  # the same ready cluster, nothing of MetalLB's
    assert ("dns", None) in req[("selfcheck", None)]
    result = sg.report(sg.build(run_program("lab", overrides), cfg), cfg)
    assert result.unclassified == [] and result.needless == []
