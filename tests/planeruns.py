"""What the control-plane scenarios share: running one (`up`, the cluster as the API shows it, a
no-op preview, `destroy`, what is left), what they read from the API server, and the assertions
every lab must pass there. The scenarios are in test_controlplane.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import tools.controlplane as cp
from tools.controlplane.gatewayapi import attachments
from tools.project import Project

LAB_NAMESPACES = ("metallb-system", "ingress-nginx", "traefik", "demo", "lab-dns")
PINNED_IP = "192.168.56.200"
GATEWAY_V1 = "/apis/gateway.networking.k8s.io/v1"


# --------------------------------------------------------------------------------------------
# What a scenario collects from the API server


def _names(items) -> set[str]:
    return {i["metadata"]["name"] for i in items}


def lab_leftovers(api: cp.Api) -> dict[str, list[str]]:
    """Namespaces, CRDs and webhooks of the lab still in the cluster."""
    namespaces = [n for n in _names(api.items("/api/v1/namespaces")) if n in LAB_NAMESPACES]
    crds = [
        n
        for n in _names(api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions"))
        if n.endswith(("metallb.io", "traefik.io", "traefik.containo.us", "gateway.networking.k8s.io"))
    ]
    hooks = sorted(
        _names(api.items("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"))
        | _names(api.items("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"))
    )
    return {"namespaces": sorted(namespaces), "crds": sorted(crds), "webhooks": hooks}


def overlapping_pool_attempt(api: cp.Api) -> str:
    """Create a pool overlapping lab-pool; return the API server's answer (MetalLB's webhook refuses it)."""
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "overlapping", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.168.56.210-192.168.56.220"]},
    }
    try:
        api.request("POST", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools", pool)
    except cp.ApiError as err:
        return str(err)
    api.request("DELETE", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/overlapping")
    return "created"


def snapshot(plane: cp.ControlPlane, service: tuple[str, str]) -> dict:
    api = plane.api
    ns, name = service
    deployments = [d for d in api.items("/apis/apps/v1/deployments") if d["metadata"]["namespace"] in LAB_NAMESPACES]
    events = [
        {"reason": e.get("reason"), "message": e.get("message"), "source": (e.get("source") or {}).get("component") or e.get("reportingComponent")}
        for e in api.items(f"/api/v1/namespaces/{ns}/events")
        if e["involvedObject"].get("kind") == "Service" and e["involvedObject"].get("name") == name
    ]
    return {
        "pools": {p["metadata"]["name"]: p["spec"] for p in api.items("/apis/metallb.io/v1beta1/ipaddresspools")},
        "l2": {a["metadata"]["name"]: a["spec"] for a in api.items("/apis/metallb.io/v1beta1/l2advertisements")},
        "service": api.get(f"/api/v1/namespaces/{ns}/services/{name}"),
        "service_events": events,
        "deployments": {
            f"{d['metadata']['namespace']}/{d['metadata']['name']}": {c["type"]: c["status"] for c in d.get("status", {}).get("conditions") or []}
            for d in deployments
        },
        "ingresses": api.items("/apis/networking.k8s.io/v1/ingresses"),
        "metallb_webhooks": api.get("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration"),
        "metallb_crds": sorted(n for n in _names(api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")) if n.endswith("metallb.io")),
        "configuration_states": api.items("/apis/metallb.io/v1beta1/configurationstates") if api.get("/apis/metallb.io/v1beta1") and any(
            r["name"] == "configurationstates" for r in api.get("/apis/metallb.io/v1beta1")["resources"]
        ) else [],
        "metallb_controller_probe": (
            (api.get("/apis/apps/v1/namespaces/metallb-system/deployments/controller") or {})
            .get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("readinessProbe")
        ),
        "tls_secrets": {
            s["metadata"]["namespace"]: s for s in api.items("/api/v1/secrets") if s["metadata"]["name"] == "lab-tls"
        },
        "overlapping_pool": overlapping_pool_attempt(api),
        "proxy_log": list(plane.proxy.log),
    }


def run_scenario(
    plane: cp.ControlPlane, root: Path, stack: str, config: dict, service: tuple[str, str], prepare=None, collect=None, then=None
) -> dict:
    """`pulumi up`, the cluster as the API shows it, a no-op preview, `destroy`, what is left.

    ``collect(api)`` adds what a scenario reads beyond :func:`snapshot`, while the lab is up;
    ``then(project)`` what it does to the lab after that (a change and its `up`), before the
    no-op preview, and what it saw doing so (under ``"then"``).
    """
    with plane.netns.inside():
        return _run_scenario(plane, root, stack, config, service, prepare, collect, then)


def _run_scenario(plane: cp.ControlPlane, root: Path, stack: str, config: dict, service: tuple[str, str], prepare, collect, then) -> dict:
    plane.check_alive()
    project = Project(root)
    if prepare:
        prepare(project, root)
    project.stack(stack, config)
    if "k8s-lab:nodes" not in config:  # existing-cluster mode
        cp.set_kubeconfig(project, stack, plane.kubeconfig)
    plane.proxy.log.clear()
    start = time.monotonic()
    up = project.pulumi("up", "--stack", stack, "--yes", "--skip-preview", check=False)
    up_seconds = time.monotonic() - start
    if up.returncode != 0:
        project.pulumi("destroy", "--stack", stack, "--yes", "--skip-preview", check=False)
        raise AssertionError(f"pulumi up failed:\n{up.stdout[-6000:]}\n{up.stderr[-3000:]}\nstand-in errors: {plane.kubelet.errors[-5:]}")
    seen = snapshot(plane, service)
    if collect:
        seen.update(collect(plane.api))
    outputs = json.loads(project.pulumi("stack", "output", "--stack", stack, "--json", "--show-secrets").stdout)
    seen_then = None
    if then:
        try:
            seen_then = then(project)
        except BaseException:
            project.pulumi("destroy", "--stack", stack, "--yes", "--skip-preview", check=False)
            raise
    noop = project.pulumi("preview", "--stack", stack, "--expect-no-changes", "--diff", check=False)
    start = time.monotonic()
    destroy = project.pulumi("destroy", "--stack", stack, "--yes", "--skip-preview", check=False)
    destroy_seconds = time.monotonic() - start
    state = json.loads(project.pulumi("stack", "export", "--stack", stack).stdout)
    return {
        "up": up,
        "up_seconds": up_seconds,
        "seen": seen,
        "then": seen_then,
        "outputs": outputs,
        "noop": noop,
        "destroy": destroy,
        "destroy_seconds": destroy_seconds,
        "state_after": state["deployment"].get("resources") or [],
        "left": lab_leftovers(plane.api),
        "stand_in_errors": list(plane.kubelet.errors),
    }


@dataclass(frozen=True)
class Change:
    """One change of a running lab, as a user makes it: `pulumi config set --path` (``None``:
    `pulumi config rm --path`) of each setting, then one `pulumi up`."""

    label: str
    settings: dict[str, Optional[str]]
    settled: Callable[[cp.Api], bool]
    """True once the cluster shows the change done (MetalLB's controller converges on its own
    time, after `up` may already have returned)."""


SETTLE_SECONDS = 60


def run_changes(
    plane: cp.ControlPlane,
    root: Path,
    stack: str,
    config: dict,
    changes: list[Change],
    collect: Callable[[cp.Api], dict],
    up_timeout: float = 600,
) -> dict:
    """`pulumi up`, then each change with one `up` that must pass the first time, what ``collect``
    reads once it settled and a `preview --expect-no-changes`; then `destroy` and what is left.

    ``collect(api)`` also runs after the first `up` (step ``"up"``). Every `up`'s duration is kept,
    and an `up` still running after ``up_timeout`` seconds fails the run: one that waits for an IP
    another Service holds would take ten minutes and then fail.
    """
    with plane.netns.inside():
        plane.check_alive()
        project = Project(root)
        project.stack(stack, config)
        cp.set_kubeconfig(project, stack, plane.kubeconfig)
        steps = [Change("up", {}, lambda _api: True), *changes]
        runs: list[dict] = []
        try:
            for change in steps:
                for path, value in change.settings.items():
                    key = f"k8s-lab:{path}"
                    if value is None:
                        project.pulumi("config", "rm", "--stack", stack, "--path", key)
                    else:
                        project.pulumi("config", "set", "--stack", stack, "--path", key, value)
                start = time.monotonic()
                try:
                    up = project.pulumi("up", "--stack", stack, "--yes", "--skip-preview", check=False, timeout=up_timeout)
                except subprocess.TimeoutExpired as timeout:
                    out = timeout.stdout.decode(errors="replace") if isinstance(timeout.stdout, bytes) else str(timeout.stdout or "")
                    raise AssertionError(f"{change.label}: pulumi up still running after {up_timeout:.0f}s:\n{out[-6000:]}") from None
                up_seconds = time.monotonic() - start
                if up.returncode != 0:
                    raise AssertionError(
                        f"{change.label}: pulumi up failed after {up_seconds:.0f}s:\n{up.stdout[-6000:]}\n{up.stderr[-3000:]}"
                        f"\nstand-in errors: {plane.kubelet.errors[-5:]}"
                    )
                start = time.monotonic()
                cp.wait_for(f"{change.label}: the cluster to settle", lambda: change.settled(plane.api), SETTLE_SECONDS, 0.5)
                settle_seconds = time.monotonic() - start
                noop = project.pulumi("preview", "--stack", stack, "--expect-no-changes", "--diff", check=False)
                runs.append(
                    {
                        "label": change.label,
                        "up": up,
                        "up_seconds": up_seconds,
                        "settle_seconds": settle_seconds,
                        "seen": collect(plane.api),
                        "outputs": json.loads(project.pulumi("stack", "output", "--stack", stack, "--json").stdout),
                        "noop": noop,
                    }
                )
        finally:
            destroy = project.pulumi("destroy", "--stack", stack, "--yes", "--skip-preview", check=False)
        state = json.loads(project.pulumi("stack", "export", "--stack", stack).stdout)
        return {
            "steps": {run["label"]: run for run in runs},
            "destroy": destroy,
            "state_after": state["deployment"].get("resources") or [],
            "left": lab_leftovers(plane.api),
            "stand_in_errors": list(plane.kubelet.errors),
        }


def service_events(api: cp.Api, namespace: str, name: str) -> list[dict]:
    """The events of one Service, each with how often it happened."""
    return [
        {
            "reason": e.get("reason"),
            "message": e.get("message"),
            "source": (e.get("source") or {}).get("component") or e.get("reportingComponent"),
            "count": e.get("count") or 1,
        }
        for e in api.items(f"/api/v1/namespaces/{namespace}/events")
        if e["involvedObject"].get("kind") == "Service" and e["involvedObject"].get("name") == name
    ]


def load_balancer_ip(api: cp.Api, namespace: str, name: str) -> Optional[str]:
    """The Service's first load-balancer IP, or None (no IP, or no Service)."""
    service = api.get(f"/api/v1/namespaces/{namespace}/services/{name}") or {}
    ingress = service.get("status", {}).get("loadBalancer", {}).get("ingress") or []
    return ingress[0].get("ip") if ingress else None


GATEWAY = ("traefik", "lab")


def refused_route(api: cp.Api) -> str:
    """Create an HTTPRoute the v1.6.1 CRD's CEL rules forbid (a path prefix not starting with '/')."""
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "not-a-path", "namespace": "demo"},
        "spec": {
            "parentRefs": [{"name": GATEWAY[1], "namespace": GATEWAY[0]}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "no-slash"}}]}],
        },
    }
    try:
        api.request("POST", f"{GATEWAY_V1}/namespaces/demo/httproutes", route)
    except cp.ApiError as err:
        return str(err)
    api.request("DELETE", f"{GATEWAY_V1}/namespaces/demo/httproutes/not-a-path")
    return "created"


def gateway_snapshot(api: cp.Api) -> dict:
    attached, unresolved = attachments(api)
    return {
        "gateway_crds": {
            c["metadata"]["name"]: {x["type"]: x["status"] for x in c.get("status", {}).get("conditions") or []}
            for c in api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            if c["spec"]["group"] == "gateway.networking.k8s.io"
        },
        "gateway_classes": api.items(f"{GATEWAY_V1}/gatewayclasses"),
        "gateway": api.get(f"{GATEWAY_V1}/namespaces/{GATEWAY[0]}/gateways/{GATEWAY[1]}"),
        "routes": api.items(f"{GATEWAY_V1}/httproutes"),
        "attachments": attached,
        "unresolved": unresolved,
        "refused_route": refused_route(api),
        "services": {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in api.items("/api/v1/services")},
        "dns_events": [
            {"reason": e.get("reason"), "message": e.get("message"), "source": (e.get("source") or {}).get("component") or e.get("reportingComponent")}
            for e in api.items("/api/v1/namespaces/lab-dns/events")
            if e["involvedObject"].get("kind") == "Service"
        ],
    }


# --------------------------------------------------------------------------------------------
# Shared assertions


def assert_lab_was_up(run: dict, *, class_name: str, annotation_prefix: str) -> None:
    seen = run["seen"]
    assert seen["pools"] == {
        "lab-pool": {"addresses": ["192.168.56.201-192.168.56.250"], "autoAssign": True, "avoidBuggyIPs": False},
        "lab-pool-reserved-ingress": {"addresses": ["192.168.56.200/32"], "autoAssign": False, "avoidBuggyIPs": False},
    }
    assert seen["l2"]["lab-l2"]["ipAddressPools"] == ["lab-pool", "lab-pool-reserved-ingress"]
    service = seen["service"]
    assert service["metadata"]["annotations"][f"{annotation_prefix}/loadBalancerIPs"] == PINNED_IP
    assert service["status"]["loadBalancer"]["ingress"][0]["ip"] == PINNED_IP
    allocated = [e for e in seen["service_events"] if e["reason"] == "IPAllocated"]
    assert allocated and allocated[-1]["source"] == "metallb-controller", seen["service_events"]
    assert PINNED_IP in allocated[-1]["message"]
    assert seen["deployments"], "no Deployment of the lab found"
    not_available = {name: c for name, c in seen["deployments"].items() if c.get("Available") != "True"}
    assert not not_available, not_available
    (ingress,) = [i for i in seen["ingresses"] if i["spec"]["rules"][0]["host"] == "app.lab.local"]
    assert ingress["metadata"]["namespace"] == "demo"
    assert ingress["spec"]["ingressClassName"] == class_name
    assert run["outputs"]["ingress_ip"] == PINNED_IP


def assert_webhook_admitted_the_lab(run: dict) -> None:
    seen = run["seen"]
    # The pools exist, so the webhook (failurePolicy Fail) admitted them; it serves with the CA
    # MetalLB's own certificate rotation injected, and it refuses what MetalLB forbids.
    webhooks = seen["metallb_webhooks"]["webhooks"]
    assert all(w["failurePolicy"] == "Fail" and w["clientConfig"].get("caBundle") for w in webhooks)
    assert "ipaddresspoolvalidationwebhook.metallb.io" in seen["overlapping_pool"], seen["overlapping_pool"]
    assert "denied the request" in seen["overlapping_pool"]
    assert "overlaps" in seen["overlapping_pool"]
    # The calls went through the loopback proxy to the local controller.
    assert any("-> 9443" in line for line in seen["proxy_log"]), seen["proxy_log"]


def assert_noop_and_clean_destroy(run: dict) -> None:
    noop = run["noop"]
    assert noop.returncode == 0, noop.stdout[-4000:] + noop.stderr[-2000:]
    destroy = run["destroy"]
    assert destroy.returncode == 0, destroy.stdout[-4000:] + destroy.stderr[-2000:]
    assert run["state_after"] == []
    assert run["left"] == {"namespaces": [], "crds": [], "webhooks": []}


def assert_tls_secrets_carry_the_lab_certificate(run: dict, namespaces: set[str]) -> None:
    """`lab-tls` in exactly ``namespaces``: a kubernetes.io/tls Secret whose certificate chains to
    the CA the stack outputs, names the lab's hosts and matches its key; HTTPS URLs are output."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    secrets = run["seen"]["tls_secrets"]
    assert set(secrets) == namespaces
    ca = x509.load_pem_x509_certificate(run["outputs"]["ca_certificate"].encode())
    for namespace, secret in secrets.items():
        assert secret["type"] == "kubernetes.io/tls", namespace
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), password=None)
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert "*.lab.local" in names, names
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert run["outputs"]["https_urls"] == {"demo": "https://app.lab.local"}
