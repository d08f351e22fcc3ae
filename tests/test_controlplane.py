"""`pulumi up` against a real Kubernetes API server, with MetalLB's own controller assigning the IP.

Mocks prove the graph and render mode the manifests; these prove what the lab exists for, through
the real Pulumi CLI: MetalLB's controller gives the ingress Service the pinned pool IP, the pools
and the advertisement pass MetalLB's own validating webhook (because they wait for it), every await
`up` relies on finishes, a second run finds nothing to change, and `destroy` leaves the cluster
clean. Real and stand-in parts are listed in tools/controlplane/; in short: etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and MetalLB's controller are the real
programs; kwok stands in for the kubelets (with pods held un-Ready until what a kubelet would wait
for exists, and MetalLB's controller passes the readiness probe the lab applied), and
small stand-ins do the work of ingress-nginx's certificate Jobs, its admission endpoint, and the
ingress controllers' Ingress status writer, whose processes cannot run here.

The whole tier, Pulumi CLI included, runs in a network namespace with only loopback: kube-apiserver
calls webhooks at Service IPs, and its egress selector hands those calls to a proxy on a Unix
socket that reaches only the local process serving that Service, never the network. The IPs in Service status (192.168.56.x) are data.

Scenarios that run on one control plane run in turn, so each also proves the one before it left
nothing behind. They need root, the binaries of tools/build-control-plane.sh, the Pulumi CLI and
../shared/reference, and skip with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
from typing import Optional

import pytest
import yaml

from harness import reference_file

# One test per scenario, so that a scenario runs once whichever pytest-xdist worker gets it; each
# worker that gets one runs its own control plane, in a network namespace of its own.
pytestmark = [pytest.mark.engine]

if shutil.which("pulumi") is None:
    pytest.skip(
        "the Pulumi CLI is not on PATH (tools/build-pulumi-toolchain.sh builds it; .ci/run does)",
        allow_module_level=True,
    )
try:
    import cryptography  # noqa: F401
except ImportError:
    pytest.skip("the cryptography package is not installed (requirements-dev.txt has it)", allow_module_level=True)

import tools.controlplane as cp  # noqa: E402
from planeruns import (  # noqa: E402
    PINNED_IP,
    Change,
    assert_lab_was_up,
    assert_noop_and_clean_destroy,
    assert_tls_secrets_carry_the_lab_certificate,
    assert_webhook_admitted_the_lab,
    gateway_snapshot,
    load_balancer_ip,
    overlapping_pool_attempt,
    run_changes,
    run_scenario,
    service_events,
)
from tools.controlplane import existing_cluster_config  # noqa: E402
from tools.project import INGRESS_MANIFEST, METALLB_MANIFEST, lab_config  # noqa: E402

_reason = cp.skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

METALLB_0_16_MANIFEST = "metallb/metallb-native-v0.16.1.yaml"
TRAEFIK_CHART = "traefik/chart-37.4.0"
TRAEFIK_GATEWAY_CHART = "traefik/chart-41.3.0"
GATEWAY_API_CRDS = "gateway-api/standard-install-v1.6.1.yaml"
DNS_IP = "192.168.56.250"
VAGRANT_CONTROL_PLANE_IP = "192.168.56.10"  # Pulumi.lab.yaml's k8s-cp; data only, never contacted
KUBECONFIG_PROXY_PORT = 8132


@pytest.fixture(scope="session")
def plane(tmp_path_factory):
    """One control plane per worker, in a loopback-only network namespace; talk to it inside ``plane.netns``.

    Session-scoped, like the scenarios: pytest-xdist interleaves other modules' tests, and a
    module-scoped fixture would be torn down and built again in between.
    """
    for relative in (METALLB_MANIFEST, METALLB_0_16_MANIFEST, INGRESS_MANIFEST, TRAEFIK_CHART, TRAEFIK_GATEWAY_CHART, GATEWAY_API_CRDS):
        reference_file(relative)
    root = tmp_path_factory.mktemp("controlplane")
    netns = cp.LoopbackNetns()
    plane = cp.ControlPlane(
        bin=cp.control_plane_bin(),
        dir=root / "plane",
        # The Vagrant lab's node names; its kubeconfig names the control plane's IP, as kubeadm's does.
        nodes=["k8s-cp", "k8s-w1", "k8s-w2"],
        serving_ips=["127.0.0.1", "10.96.0.1", VAGRANT_CONTROL_PLANE_IP],
    )
    plane.netns = netns
    try:
        with netns.inside():
            plane.start()
        yield plane
    finally:
        plane.stop()
        netns.close()



@pytest.fixture(scope="session")
def nginx_0_14(plane, tmp_path_factory):
    """Scenario 1: existing-cluster mode, the seed's lab (MetalLB 0.14.9, ingress-nginx, demo)."""
    return run_scenario(
        plane, tmp_path_factory.mktemp("nginx-0-14"), "existing", existing_cluster_config(), ("ingress-nginx", "ingress-nginx-controller")
    )



# --------------------------------------------------------------------------------------------
# Scenario 1


def test_the_tier_runs_with_loopback_only(plane):
    assert plane.netns.interfaces == ["lo"]
    with plane.netns.inside():
        assert [name for _, name in socket.if_nameindex()] == ["lo"]
        assert plane.api.get("/version")["gitVersion"].startswith("v1.")


def test_seed_lab_in_existing_cluster_mode(nginx_0_14):
    """MetalLB 0.14.9, ingress-nginx, demo: the pinned IP, the webhook, a no-op rerun, a clean destroy."""
    assert_lab_was_up(nginx_0_14, class_name="nginx", annotation_prefix="metallb.io")
    assert_webhook_admitted_the_lab(nginx_0_14)
    assert "configurationstates.metallb.io" not in nginx_0_14["seen"]["metallb_crds"]
    assert nginx_0_14["seen"]["metallb_controller_probe"]["httpGet"]["path"] == "/metrics"
    # HTTPS through the Ingress: the certificate beside the app's Ingress, which names it for its host.
    assert_tls_secrets_carry_the_lab_certificate(nginx_0_14, {"demo"})
    (ingress,) = [i for i in nginx_0_14["seen"]["ingresses"] if i["metadata"]["namespace"] == "demo"]
    assert ingress["spec"]["tls"] == [{"hosts": ["app.lab.local"], "secretName": "lab-tls"}]
    assert_noop_and_clean_destroy(nginx_0_14)


# --------------------------------------------------------------------------------------------
# Scenario 4: MetalLB 0.16.1 (its CRDs, its annotation prefix, its controller)


@pytest.fixture(scope="session")
def nginx_0_16(plane, tmp_path_factory):
    config = existing_cluster_config(
        **{"k8s-lab:metallb": {"version": "0.16.1", "manifest": str(reference_file(METALLB_0_16_MANIFEST))}}
    )
    return run_scenario(plane, tmp_path_factory.mktemp("nginx-0-16"), "metallb016", config, ("ingress-nginx", "ingress-nginx-controller"))


def test_metallb_0_16(nginx_0_16):
    """The version-dependent parts (CRDs, annotation prefix) meet MetalLB 0.16.1's own controller."""
    assert_lab_was_up(nginx_0_16, class_name="nginx", annotation_prefix="metallb.io")
    assert_webhook_admitted_the_lab(nginx_0_16)
    assert "configurationstates.metallb.io" in nginx_0_16["seen"]["metallb_crds"]
    # Its upstream /readyz passes before the webhook serves: the lab's probe is the webhook's port.
    assert nginx_0_16["seen"]["metallb_controller_probe"]["tcpSocket"] == {"port": "webhook-server"}
    # 0.16's controller reports the configuration it loaded in a ConfigurationState of its own.
    assert nginx_0_16["seen"]["configuration_states"], "MetalLB 0.16.1's controller wrote no ConfigurationState"
    assert_noop_and_clean_destroy(nginx_0_16)


# --------------------------------------------------------------------------------------------
# Scenario 2: Traefik from its chart


def traefik_config(chart: str, stack: Optional[dict] = None, **ingress) -> dict:
    """The seed's lab with Traefik from a local chart on the pinned IP, ``ingress`` keys added, and
    ``stack``'s other keys."""
    return existing_cluster_config(
        **{"k8s-lab:ingress": {"controller": "traefik", "ip": PINNED_IP, "manifest": str(reference_file(chart)), **ingress}},
        **(stack or {}),
    )


@pytest.fixture(scope="session")
def traefik(plane, tmp_path_factory):
    config = traefik_config(TRAEFIK_CHART, version="37.4.0")
    return run_scenario(plane, tmp_path_factory.mktemp("traefik"), "traefik", config, ("traefik", "traefik"))


def test_traefik_lab(traefik):
    """`ingress.controller: traefik` from its chart: the same guarantees."""
    assert_lab_was_up(traefik, class_name="traefik", annotation_prefix="metallb.io")
    assert_webhook_admitted_the_lab(traefik)
    assert_noop_and_clean_destroy(traefik)


# --------------------------------------------------------------------------------------------
# Scenario 3: the Vagrant lab stack, whole, with a stand-in `vagrant`


CURL_STAND_IN = """#!/bin/sh
# Stand-in for curl, for the self-check: no data plane runs in this tier (no controller pod, no
# MetalLB speaker), so nothing could answer on the ingress IP. Records each request; answers 200.
printf '%s\\n' "$*" >>{log}
printf 200
"""
REPLACED = ("replace", "create-replacement", "delete-replaced")


def plan(project, stack: str) -> dict[str, tuple[str, str]]:
    """What `pulumi preview` plans: resource name -> (type, op)."""
    steps = json.loads(project.pulumi("preview", "--stack", stack, "--json").stdout)["steps"]
    return {step["urn"].rsplit("::", 1)[1]: (step["urn"].split("::")[2].split("$")[-1], step["op"]) for step in steps}


def set_stack_config(project, stack: str, key: str, path: list, value) -> None:
    file = project.dir / f"Pulumi.{stack}.yaml"
    config = yaml.safe_load(file.read_text())
    node = config["config"][key]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    file.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="session")
def vagrant_lab(plane, tmp_path_factory):
    """Pulumi.lab.yaml as it is: VM, kubeadm and kubeconfig steps, then every layer and the self-check.

    No VM can run here, so `vagrant` is a stand-in (tools/controlplane/): it records each call
    and answers the kubeconfig read with the local control plane's kubeconfig, which, like
    kubeadm's, names the control plane at https://192.168.56.10:6443. The Kubernetes provider
    reaches it through a CONNECT proxy on loopback (HTTPS_PROXY) that maps that one address to
    127.0.0.1:6443 and refuses any other: the address is data, nothing is sent to it. `curl` is a
    stand-in too (CURL_STAND_IN), for the self-check's requests to the ingress IP.

    After the first `up`: a preview of the first worker's memory_mb changed (then set back), and
    an `up` with another kubernetes.version, which runs kubeadm init again.
    """
    root = tmp_path_factory.mktemp("vagrant")
    server = f"{VAGRANT_CONTROL_PLANE_IP}:6443"
    admin_conf = root / "admin.conf"
    admin_conf.write_text(plane.kubeconfig.replace("https://127.0.0.1:6443", f"https://{server}"))
    log = root / "vagrant-calls.jsonl"
    checks = root / "curl-calls.log"
    with plane.netns.inside():
        proxy = cp.EgressProxy(None, port=KUBECONFIG_PROXY_PORT, static={server: 6443})

    def prepare(project, _root):
        stand_in = cp.write_vagrant_stand_in(
            root / "vagrant-bin", log=log, scripts=project.dir / "scripts" / "node", kubeconfig=admin_conf, nic="eth1", control_plane=server
        )
        curl = stand_in.parent / "curl"
        curl.write_text(CURL_STAND_IN.format(log=shlex.quote(str(checks))))
        curl.chmod(0o755)
        project.env["PATH"] = f"{stand_in.parent}{os.pathsep}{project.env['PATH']}"
        project.env["HTTPS_PROXY"] = f"http://127.0.0.1:{KUBECONFIG_PROXY_PORT}"
        project.env["NO_PROXY"] = "127.0.0.1,localhost"

    def requests() -> list[str]:
        return checks.read_text().splitlines() if checks.exists() else []

    def then(project):
        seen = {"requests_of_the_first_up": requests(), "namespaces": {n["metadata"]["name"] for n in plane.api.items("/api/v1/namespaces")}}
        set_stack_config(project, "lab", "k8s-lab:nodes", [1, "memory_mb"], 6144)
        seen["worker_memory_plan"] = plan(project, "lab")
        set_stack_config(project, "lab", "k8s-lab:nodes", [1, "memory_mb"], 4096)
        calls, checked = len(cp.vagrant_calls(log)), len(requests())
        set_stack_config(project, "lab", "k8s-lab:kubernetes", ["version"], "1.35.2")
        seen["new_version_plan"] = plan(project, "lab")
        seen["new_version_up"] = project.pulumi("up", "--stack", "lab", "--yes", "--skip-preview", check=False)
        seen["new_version_calls"] = cp.vagrant_calls(log)[calls:]
        seen["new_version_requests"] = requests()[checked:]
        return seen

    config = lab_config(**{"k8s-lab:self_check": {"enabled": True, "timeout_seconds": 30}})
    try:
        run = run_scenario(plane, root, "lab", config, ("ingress-nginx", "ingress-nginx-controller"), prepare=prepare, then=then)
    finally:
        proxy.close()
    run["vagrant_calls"] = cp.vagrant_calls(log)
    run["kubeconfig_proxy_log"] = list(proxy.log)
    return run


def _calls(run, verb):
    return [c for c in run["vagrant_calls"] if c["argv"][:1] == [verb]]


def test_vagrant_lab_stack_whole(vagrant_lab):
    """Every command step through `vagrant`, the provider built from their output, every layer."""
    ups = {c["argv"][1] for c in _calls(vagrant_lab, "up")}
    assert ups == {"k8s-cp", "k8s-w1", "k8s-w2"}
    scripts = [(c["argv"][1], c["script"]) for c in _calls(vagrant_lab, "ssh") if c["script"]]
    assert {s for s in scripts if s[1] == "prepare.sh"} == {("k8s-cp", "prepare.sh"), ("k8s-w1", "prepare.sh"), ("k8s-w2", "prepare.sh")}
    assert ("k8s-cp", "init.sh") in scripts and ("k8s-cp", "cni.sh") in scripts
    assert {s for s in scripts if s[1] == "join.sh"} == {("k8s-w1", "join.sh"), ("k8s-w2", "join.sh")}
    # The provider was built from the kubeconfig step's output and reached the API through the proxy.
    assert any(c["argv"][:2] == ["ssh", "k8s-cp"] and "admin.conf" in c["argv"][-1] for c in _calls(vagrant_lab, "ssh"))
    assert vagrant_lab["kubeconfig_proxy_log"] and all(line.endswith("-> 6443") for line in vagrant_lab["kubeconfig_proxy_log"])
    assert_lab_was_up(vagrant_lab, class_name="nginx", annotation_prefix="metallb.io")
    assert_webhook_admitted_the_lab(vagrant_lab)
    assert_noop_and_clean_destroy(vagrant_lab)
    destroyed = {c["argv"][-1] for c in _calls(vagrant_lab, "destroy")}
    assert destroyed == {"k8s-cp", "k8s-w1", "k8s-w2"}


def test_a_recreated_first_worker_previews_no_kubernetes_object_replaced(vagrant_lab):
    """The first worker's memory_mb: its VM, preparation and join are replaced; the provider, which
    waits for that join, stays, and with it every object of MetalLB, the ingress and the apps."""
    planned = vagrant_lab["then"]["worker_memory_plan"]  # what the preview changes; the rest stays
    replaced = sorted(name for name, (_, op) in planned.items() if op in REPLACED)
    assert replaced == ["lab-k8s-w1-join", "lab-k8s-w1-prepare", "lab-k8s-w1-vm"], planned
    assert "lab-provider" not in planned and "lab-self-check-run" not in planned, planned
    # Nothing of MetalLB, the ingress or the apps is replaced (the advertisement's NIC list, from
    # node preparation, is unknown until preparation has run again: an update at most).
    assert {name: op for name, (type_, op) in planned.items() if type_.startswith("kubernetes:") and op != "update"} == {}
    assert {"metallb-system", "ingress-nginx", "demo"} <= set(vagrant_lab["then"]["namespaces"])


def test_a_new_kubernetes_version_runs_the_self_check_again(vagrant_lab):
    """kubernetes.version re-initialises the cluster, which makes every object on it again under the
    same names: the self-check must check the new lab, and the preview says so."""
    seen = vagrant_lab["then"]
    assert seen["requests_of_the_first_up"], "the first up ran no self-check"
    upgrade = seen["new_version_up"]
    assert upgrade.returncode == 0, upgrade.stdout[-4000:] + upgrade.stderr[-2000:]
    assert seen["new_version_plan"]["lab-init"][1] in REPLACED
    assert seen["new_version_plan"]["lab-self-check-run"][1] in REPLACED
    scripts = [(c["argv"][1], c["script"]) for c in seen["new_version_calls"] if c["argv"][:1] == ["ssh"] and c["script"]]
    assert ("k8s-cp", "init.sh") in scripts
    # The check ran again, every hostname over HTTP and HTTPS; then the no-op preview found nothing.
    assert any("http://192.168.56.200:80/" in request for request in seen["new_version_requests"])
    assert any("https://app.lab.local:443/" in request for request in seen["new_version_requests"])
    assert vagrant_lab["noop"].returncode == 0


# --------------------------------------------------------------------------------------------
# Scenario 5: Traefik's Gateway API, HTTPS from the lab's CA, DNS on a pinned pool IP
#
# Real: the Gateway API v1.6.1 CRDs in kube-apiserver (their OpenAPI schemas and CEL rules
# validate every object the lab creates), MetalLB's controller assigning both pinned IPs, the
# TLS Secrets as the program issued them. Stand-in (tools/controlplane/standins.py): the status
# Traefik's Gateway provider writes, Programmed once each listener names one of Traefik's entry
# points and its certificate Secret exists; `up` waits for it.


@pytest.fixture(scope="session")
def gateway_lab(plane, tmp_path_factory):
    config = traefik_config(
        TRAEFIK_GATEWAY_CHART,
        api="gateway",
        stack={"k8s-lab:dns": {"enabled": True, "ip": DNS_IP}},
        gateway_api_manifest=str(reference_file(GATEWAY_API_CRDS)),
    )
    return run_scenario(
        plane, tmp_path_factory.mktemp("gateway"), "gateway", config, ("traefik", "traefik"), collect=gateway_snapshot
    )


def assert_gateway_api_crds_established(gateway_lab: dict) -> None:
    """The v1.6.1 standard CRDs the lab installs are the manifest's, every one Established."""
    manifest = [d for d in yaml.safe_load_all(reference_file(GATEWAY_API_CRDS).read_text()) if d and d["kind"] == "CustomResourceDefinition"]
    crds = gateway_lab["seen"]["gateway_crds"]
    assert set(crds) == {d["metadata"]["name"] for d in manifest}
    assert all(c.get("Established") == "True" for c in crds.values()), crds
    # Their validation is live: a route the CRD's CEL rules forbid is refused by the API server.
    refused = gateway_lab["seen"]["refused_route"]
    assert "Invalid" in refused and "must be an absolute path" in refused, refused


def assert_gateway_programmed_on_the_pinned_ip(gateway_lab: dict) -> None:
    """GatewayClass traefik claims Traefik's controller; the Gateway's listeners are Traefik's entry
    points, its HTTPS certificate Secret resolves, and its address is the IP MetalLB gave Traefik."""
    seen = gateway_lab["seen"]
    (gateway_class,) = [c for c in seen["gateway_classes"] if c["metadata"]["name"] == "traefik"]
    assert gateway_class["spec"]["controllerName"] == "traefik.io/gateway-controller"
    gateway = seen["gateway"]
    assert gateway is not None, "no Gateway traefik/lab"
    assert gateway["spec"]["gatewayClassName"] == "traefik"
    # Programmed is what `up` waited for; the stand-in sets it only when every listener is valid.
    conditions = {c["type"]: c["status"] for c in gateway["status"]["conditions"]}
    assert conditions["Programmed"] == "True", gateway["status"]
    assert gateway["status"]["addresses"] == [{"type": "IPAddress", "value": PINNED_IP}]
    listeners = {entry["name"]: entry for entry in gateway["status"]["listeners"]}
    assert set(listeners) == {"web", "websecure"}
    assert all(c["status"] == "True" for entry in listeners.values() for c in entry["conditions"]), listeners
    traefik = seen["service"]
    assert traefik["status"]["loadBalancer"]["ingress"][0]["ip"] == PINNED_IP
    allocated = [e for e in seen["service_events"] if e["reason"] == "IPAllocated"]
    assert allocated and allocated[-1]["source"] == "metallb-controller" and PINNED_IP in allocated[-1]["message"]


def assert_http_routes_attach_to_the_lab_gateway(gateway_lab: dict) -> None:
    """One HTTPRoute an app, whose parentRefs resolve to traefik/lab on both listeners, whose
    backend Service and port exist; the apps get no Ingress."""
    seen = gateway_lab["seen"]
    routes = {f"{r['metadata']['namespace']}/{r['metadata']['name']}": r for r in seen["routes"]}
    assert len(routes) == 1, list(routes)
    (key, route), = routes.items()
    assert key.startswith("demo/")
    assert route["spec"]["hostnames"] == ["app.lab.local"]
    assert seen["unresolved"] == {key: []}
    assert {(a.gateway, a.listener) for a in seen["attachments"] if a.route == key} == {("traefik/lab", "web"), ("traefik/lab", "websecure")}
    for rule in route["spec"]["rules"]:
        for backend in rule["backendRefs"]:
            service = seen["services"].get(f"demo/{backend['name']}")
            assert service is not None, f"backendRef {backend['name']} names no Service"
            assert backend["port"] in [p["port"] for p in service["spec"]["ports"]]
    assert [i for i in seen["ingresses"] if i["metadata"]["namespace"] == "demo"] == []


def assert_dns_service_holds_its_pinned_pool_ip(gateway_lab: dict) -> None:
    """CoreDNS's LoadBalancer Service: UDP and TCP 53 on dns.ip, which MetalLB's controller assigned
    from the reserved pool; the lab's pool hands out neither pinned IP."""
    seen = gateway_lab["seen"]
    service = seen["services"]["lab-dns/lab-dns"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert service["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == DNS_IP
    assert service["status"]["loadBalancer"]["ingress"][0]["ip"] == DNS_IP
    allocated = [e for e in seen["dns_events"] if e["reason"] == "IPAllocated"]
    assert allocated and allocated[-1]["source"] == "metallb-controller" and DNS_IP in allocated[-1]["message"], seen["dns_events"]
    pools = seen["pools"]
    assert pools["lab-pool-reserved-ingress"]["addresses"] == [f"{PINNED_IP}/32"]
    assert pools["lab-pool-reserved-dns"]["addresses"] == [f"{DNS_IP}/32"]
    assert pools["lab-pool-reserved-ingress"]["autoAssign"] is False and pools["lab-pool-reserved-dns"]["autoAssign"] is False
    assert pools["lab-pool"]["addresses"] == ["192.168.56.201-192.168.56.249"]
    assert gateway_lab["outputs"]["dns_ip"] == DNS_IP
    not_available = {name: c for name, c in seen["deployments"].items() if c.get("Available") != "True"}
    assert "lab-dns/lab-dns" in seen["deployments"] and not not_available, seen["deployments"]


def test_gateway_api_https_and_dns(gateway_lab):
    """`ingress.api: gateway` with Traefik 41.3.0, HTTPS and DNS: every object admitted, the
    Gateway programmed on the pinned IP, the routes attached, the certificate, the DNS IP, a no-op
    rerun and a clean destroy."""
    assert_gateway_api_crds_established(gateway_lab)
    assert_gateway_programmed_on_the_pinned_ip(gateway_lab)
    assert_http_routes_attach_to_the_lab_gateway(gateway_lab)
    # HTTPS ends at the Gateway for every route: the certificate is beside it, none beside the routes.
    assert_tls_secrets_carry_the_lab_certificate(gateway_lab, {"traefik"})
    assert_dns_service_holds_its_pinned_pool_ip(gateway_lab)
    assert_webhook_admitted_the_lab(gateway_lab)
    assert gateway_lab["stand_in_errors"] == []
    assert_noop_and_clean_destroy(gateway_lab)


# --------------------------------------------------------------------------------------------
# Scenario 6: a running lab whose pinned IPs change (the seed's lab, MetalLB 0.14.9's webhook)
#
# MetalLB's validating webhook refuses any create or update that leaves two pools overlapping.
# Turning the DNS server on carves dns.ip out of lab-pool into a reservation of its own, turning
# it off gives it back, and moving ingress.ip from .200 to .201 swaps an address each way between
# lab-pool and the ingress reservation. Each is one `pulumi config set` and one `pulumi up`, which
# must pass the first time; MetalLB's controller then gives each Service its new IP.

INGRESS_NGINX_SERVICE = ("ingress-nginx", "ingress-nginx-controller")
TRAEFIK_SERVICE = ("traefik", "traefik")
DNS_SERVICE = ("lab-dns", "lab-dns")
MOVED_INGRESS_IP = "192.168.56.201"
POOLS = "/apis/metallb.io/v1beta1/ipaddresspools"
UNASSIGNED = ("ClearAssignment", "AllocationFailed")


def pins_snapshot(api) -> dict:
    return {
        "pools": {p["metadata"]["name"]: p["spec"] for p in api.items(POOLS)},
        "l2": {a["metadata"]["name"]: a["spec"] for a in api.items("/apis/metallb.io/v1beta1/l2advertisements")},
        "ingress_ip": load_balancer_ip(api, *INGRESS_NGINX_SERVICE),
        "ingress_events": service_events(api, *INGRESS_NGINX_SERVICE),
        "dns_ip": load_balancer_ip(api, *DNS_SERVICE),
        "dns_events": service_events(api, *DNS_SERVICE),
        "namespaces": sorted(n["metadata"]["name"] for n in api.items("/api/v1/namespaces")),
        "ingresses": {i["metadata"]["namespace"]: i for i in api.items("/apis/networking.k8s.io/v1/ingresses")},
        "overlapping_pool": overlapping_pool_attempt(api),
    }


@pytest.fixture(scope="session")
def pins_moved(plane, tmp_path_factory):
    changes = [
        Change("dns on", {"dns.enabled": "true", "dns.ip": DNS_IP}, lambda api: load_balancer_ip(api, *DNS_SERVICE) == DNS_IP),
        Change("dns off", {"dns.enabled": "false"}, lambda api: not api.get("/api/v1/namespaces/lab-dns")),
        Change("ingress.ip moved", {"ingress.ip": MOVED_INGRESS_IP}, lambda api: load_balancer_ip(api, *INGRESS_NGINX_SERVICE) == MOVED_INGRESS_IP),
    ]
    plane.proxy.log.clear()
    run = run_changes(plane, tmp_path_factory.mktemp("pins"), "pins", existing_cluster_config(), changes, pins_snapshot)
    run["proxy_log"] = list(plane.proxy.log)
    return run


def _times(run: dict, event_reasons, key: str) -> int:
    return sum(e["count"] for e in run["seen"][key] if e["reason"] in event_reasons)


def _allocated_by_metallb(events: list[dict], ip: str) -> bool:
    allocated = [e for e in events if e["reason"] == "IPAllocated"]
    return bool(allocated) and allocated[-1]["source"] == "metallb-controller" and ip in allocated[-1]["message"]


def test_pinned_ips_change_on_a_running_lab(pins_moved):
    """dns.enabled on and off, then ingress.ip .200 -> .201: each one `up` that passes the first time
    (MetalLB's webhook admits every step), the Service on its new IP from MetalLB's controller, the
    pools as planned, and no change left for the next preview."""
    steps = pins_moved["steps"]
    print({label: (round(step["up_seconds"]), round(step["settle_seconds"], 1)) for label, step in steps.items()})
    for label, step in steps.items():
        assert step["noop"].returncode == 0, f"{label}: {step['noop'].stdout[-4000:]}"
    reserved = {"autoAssign": False, "avoidBuggyIPs": False}
    first = steps["up"]["seen"]
    assert first["pools"] == {
        "lab-pool": {"addresses": ["192.168.56.201-192.168.56.250"], "autoAssign": True, "avoidBuggyIPs": False},
        "lab-pool-reserved-ingress": {"addresses": [f"{PINNED_IP}/32"], **reserved},
    }
    assert first["ingress_ip"] == PINNED_IP

    dns_on = steps["dns on"]["seen"]
    assert dns_on["pools"] == {
        "lab-pool": {"addresses": ["192.168.56.201-192.168.56.249"], "autoAssign": True, "avoidBuggyIPs": False},
        "lab-pool-reserved-ingress": {"addresses": [f"{PINNED_IP}/32"], **reserved},
        "lab-pool-reserved-dns": {"addresses": [f"{DNS_IP}/32"], **reserved},
    }
    assert dns_on["l2"]["lab-l2"]["ipAddressPools"] == ["lab-pool", "lab-pool-reserved-ingress", "lab-pool-reserved-dns"]
    assert dns_on["dns_ip"] == DNS_IP and _allocated_by_metallb(dns_on["dns_events"], DNS_IP), dns_on["dns_events"]
    # The ingress reservation is not touched: the ingress Service keeps its IP throughout.
    assert dns_on["ingress_ip"] == PINNED_IP
    assert _times(steps["dns on"], UNASSIGNED, "ingress_events") == _times(steps["up"], UNASSIGNED, "ingress_events")

    dns_off = steps["dns off"]["seen"]
    assert dns_off["pools"] == first["pools"]
    assert dns_off["l2"]["lab-l2"]["ipAddressPools"] == ["lab-pool", "lab-pool-reserved-ingress"]
    assert "lab-dns" not in dns_off["namespaces"]
    assert dns_off["ingress_ip"] == PINNED_IP
    assert _times(steps["dns off"], UNASSIGNED, "ingress_events") == _times(steps["up"], UNASSIGNED, "ingress_events")

    moved = steps["ingress.ip moved"]
    assert moved["seen"]["pools"] == {
        "lab-pool": {"addresses": [f"{PINNED_IP}/32", "192.168.56.202-192.168.56.250"], "autoAssign": True, "avoidBuggyIPs": False},
        "lab-pool-reserved-ingress": {"addresses": [f"{MOVED_INGRESS_IP}/32"], **reserved},
    }
    assert moved["seen"]["ingress_ip"] == MOVED_INGRESS_IP
    assert _allocated_by_metallb(moved["seen"]["ingress_events"], MOVED_INGRESS_IP), moved["seen"]["ingress_events"]
    assert moved["outputs"]["ingress_ip"] == MOVED_INGRESS_IP

    # MetalLB's webhook was live all along (through the loopback proxy), and refuses an overlap.
    assert "denied the request" in moved["seen"]["overlapping_pool"] and "overlaps" in moved["seen"]["overlapping_pool"]
    assert any("-> 9443" in line for line in pins_moved["proxy_log"])
    assert pins_moved["destroy"].returncode == 0, pins_moved["destroy"].stdout[-4000:]
    assert pins_moved["state_after"] == [] and pins_moved["left"] == {"namespaces": [], "crds": [], "webhooks": []}


# --------------------------------------------------------------------------------------------
# Scenario 7: a running lab switches its ingress controller, ingress-nginx -> traefik -> ingress-nginx
#
# The old controller's LoadBalancer Service holds ingress.ip until it is deleted; the new one's
# asks for the same IP. One `up` must switch, the old Service releasing the IP first.

SWITCH_BUDGET_SECONDS = 300  # an `up` that waited for an IP held by the other Service would take 600 s, then fail


def switch_snapshot(api) -> dict:
    return {
        "namespaces": sorted(n["metadata"]["name"] for n in api.items("/api/v1/namespaces")),
        "nginx_ip": load_balancer_ip(api, *INGRESS_NGINX_SERVICE),
        "nginx_events": service_events(api, *INGRESS_NGINX_SERVICE),
        "traefik_ip": load_balancer_ip(api, *TRAEFIK_SERVICE),
        "traefik_events": service_events(api, *TRAEFIK_SERVICE),
        "ingress_classes": sorted(c["metadata"]["name"] for c in api.items("/apis/networking.k8s.io/v1/ingressclasses")),
        "ingresses": {i["metadata"]["namespace"]: i for i in api.items("/apis/networking.k8s.io/v1/ingresses")},
    }


@pytest.fixture(scope="session")
def controller_switched(plane, tmp_path_factory):
    nginx_manifest = str(reference_file(INGRESS_MANIFEST))
    traefik_chart = str(reference_file(TRAEFIK_GATEWAY_CHART))
    changes = [
        Change(
            "traefik",
            {"ingress.controller": "traefik", "ingress.manifest": traefik_chart},
            lambda api: load_balancer_ip(api, *TRAEFIK_SERVICE) == PINNED_IP,
        ),
        Change(
            "ingress-nginx",
            {"ingress.controller": "ingress-nginx", "ingress.manifest": nginx_manifest},
            lambda api: load_balancer_ip(api, *INGRESS_NGINX_SERVICE) == PINNED_IP,
        ),
    ]
    return run_changes(
        plane, tmp_path_factory.mktemp("switch"), "switch", existing_cluster_config(), changes, switch_snapshot, up_timeout=SWITCH_BUDGET_SECONDS
    )


def test_switching_the_ingress_controller_on_a_running_lab(controller_switched):
    """ingress-nginx -> traefik -> ingress-nginx with ingress.ip pinned: each one `up`, well inside
    the ten minutes an IP await takes to fail; the new controller's Service gets the IP from
    MetalLB's controller, the old controller's namespace is gone, and no change is left."""
    steps = controller_switched["steps"]
    print({label: round(step["up_seconds"]) for label, step in steps.items()})
    for label, step in steps.items():
        assert step["noop"].returncode == 0, f"{label}: {step['noop'].stdout[-4000:]}"
        assert step["up_seconds"] < SWITCH_BUDGET_SECONDS, (label, step["up_seconds"])
    assert steps["up"]["seen"]["nginx_ip"] == PINNED_IP

    traefik = steps["traefik"]["seen"]
    assert traefik["traefik_ip"] == PINNED_IP and _allocated_by_metallb(traefik["traefik_events"], PINNED_IP), traefik["traefik_events"]
    assert "ingress-nginx" not in traefik["namespaces"] and traefik["nginx_ip"] is None
    assert traefik["ingress_classes"] == ["traefik"]
    assert traefik["ingresses"]["demo"]["spec"]["ingressClassName"] == "traefik"
    assert steps["traefik"]["outputs"]["ingress_ip"] == PINNED_IP

    back = steps["ingress-nginx"]["seen"]
    assert back["nginx_ip"] == PINNED_IP and _allocated_by_metallb(back["nginx_events"], PINNED_IP), back["nginx_events"]
    assert "traefik" not in back["namespaces"] and back["traefik_ip"] is None
    assert back["ingress_classes"] == ["nginx"]
    assert back["ingresses"]["demo"]["spec"]["ingressClassName"] == "nginx"

    assert controller_switched["destroy"].returncode == 0, controller_switched["destroy"].stdout[-4000:]
    assert controller_switched["state_after"] == [] and controller_switched["left"] == {"namespaces": [], "crds": [], "webhooks": []}
