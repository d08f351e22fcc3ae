"""The Gateway API (``ingress.api: gateway``): what Traefik is told, which objects the lab makes,
what waits for what, and that every Gateway API object passes the v1.6.1 CRD schemas.

The CRD schemas are checked with jsonschema plus a walk that refuses fields the schema does not
know (the API server would silently prune them). CEL rules (x-kubernetes-validations) need an
API server: the control-plane tier checks those.
"""

from __future__ import annotations

import json
import tarfile

import jsonschema
import pytest
import yaml

from components import gateway as gw
from components import ingress as ing
from harness import DELETE, REFERENCE, reference_docs, reference_file
from labruns import ALL_APPS, CHART, CONFIGFILE, INGRESS, config_problems, run_lab

GATEWAY_API = "gateway-api/standard-install-v1.6.1.yaml"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
GATEWAY_CLASS = "kubernetes:gateway.networking.k8s.io/v1:GatewayClass"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
ON_GATEWAY = {"ingress.controller": "traefik", "ingress.api": "gateway"}


def gateway_lab(**overrides):
    return run_lab(**{**ON_GATEWAY, **overrides})


# -- schema checks ---------------------------------------------------------------------------


def crd_schema(kind: str, version: str = "v1") -> dict:
    for doc in reference_docs(GATEWAY_API):
        if doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind:
            for served in doc["spec"]["versions"]:
                if served["name"] == version:
                    assert served["served"] and served["storage"], f"{kind} {version} is not the served storage version"
                    return served["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {kind} {version} in {GATEWAY_API}")


def unknown_fields(obj, schema, path="") -> list[str]:
    """Fields of ``obj`` that ``schema`` does not declare (the API server would drop them)."""
    found = []
    if isinstance(obj, dict) and "properties" in schema:
        for key, value in obj.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(value, schema["properties"][key], f"{path}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def assert_valid_gateway_object(obj: dict) -> None:
    schema = crd_schema(obj["kind"], obj["apiVersion"].split("/")[1])
    jsonschema.validate(obj, schema, cls=jsonschema.Draft7Validator)
    assert unknown_fields(obj, schema) == [], f"{obj['kind']} has fields the v1.6.1 schema does not know"


def registered_object(resource) -> dict:
    return {k: resource.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}


def test_every_gateway_api_object_of_the_lab_passes_the_v1_6_1_schemas():
    r = gateway_lab(apps=ALL_APPS)
    objects = [*r.of_type(GATEWAY_CLASS), *r.of_type(GATEWAY), *r.of_type(HTTP_ROUTE)]
    assert len(objects) == 2 + len(ALL_APPS)
    for resource in objects:
        assert_valid_gateway_object(registered_object(resource))


def test_the_schema_check_refuses_what_the_api_server_would_refuse_or_drop():
    route = gw.http_route_manifest("demo", "demo", "app.lab.test", "demo", 80, "traefik", {})
    assert_valid_gateway_object(route)
    bad_port = json.loads(json.dumps(route))
    bad_port["spec"]["rules"][0]["backendRefs"][0]["port"] = 70000
    with pytest.raises(jsonschema.ValidationError):
        assert_valid_gateway_object(bad_port)
    typo = json.loads(json.dumps(route))
    typo["spec"]["parentRef"] = typo["spec"].pop("parentRefs")
    with pytest.raises(AssertionError, match="does not know"):
        assert_valid_gateway_object(typo)
    gateway = gw.gateway_manifest("traefik", "lab-tls")
    gateway["spec"]["listeners"][1]["tls"]["mode"] = "terminate"  # the enum is case-sensitive
    with pytest.raises(jsonschema.ValidationError):
        assert_valid_gateway_object(gateway)


@pytest.mark.parametrize("chart", ["chart-37.4.0", "chart-41.3.0"])
@pytest.mark.parametrize("gateway", [False, True])
def test_traefik_values_pass_the_charts_own_values_schema(chart, gateway):
    schema_file = reference_file(f"traefik/{chart}/values.schema.json")
    version = yaml.safe_load((schema_file.parent / "Chart.yaml").read_text())["version"]
    values = ing.traefik_values({"metallb.io/loadBalancerIPs": "192.168.56.200"}, version, gateway=gateway)
    jsonschema.validate(values, json.loads(schema_file.read_text()))


def test_gateway_listener_ports_are_the_charts_entry_point_ports():
    # Traefik binds a Gateway listener to the entry point with the same port; a Service port
    # (80/443) would leave the listener unbound and the Gateway never programmed.
    chart = yaml.safe_load(reference_file("traefik/chart-41.3.0/values.yaml").read_text())
    assert gw.ENTRY_POINT_PORTS == {"web": chart["ports"]["web"]["port"], "websecure": chart["ports"]["websecure"]["port"]}
    template = reference_file("traefik/chart-41.3.0/templates/gatewayclass.yaml").read_text()
    assert f"controllerName: {gw.CONTROLLER_NAME}" in template


# -- what the lab registers ------------------------------------------------------------------


def test_traefik_serves_the_gateway_api_with_the_labs_own_gateway_and_class():
    r = gateway_lab()
    values = r.one(CHART, "lab-ingress-install").inputs["values"]
    assert values["providers"]["kubernetesGateway"] == {"enabled": True}
    assert values["gateway"] == {"enabled": False} and values["gatewayClass"] == {"enabled": False}
    assert values["providers"]["kubernetesIngress"]["publishedService"]["enabled"] is True  # Ingress still served
    (klass,) = r.of_type(GATEWAY_CLASS)
    assert klass.input("spec.controllerName") == "traefik.io/gateway-controller"
    (gateway,) = r.of_type(GATEWAY)
    assert gateway.input("metadata") == {"name": "lab", "namespace": "traefik", "annotations": {"pulumi.com/waitFor": "condition=Programmed"}}
    assert gateway.input("spec.gatewayClassName") == klass.input("metadata.name")
    (http,) = gateway.input("spec.listeners")[:1]
    assert (http["name"], http["port"], http["protocol"]) == ("web", 8000, "HTTP")
    assert http["allowedRoutes"] == {"namespaces": {"from": "All"}}  # each app has its own namespace


def test_every_app_gets_an_httproute_attached_to_the_labs_gateway_and_no_ingress():
    r = gateway_lab(apps=ALL_APPS)
    assert r.of_type(INGRESS) == []
    (gateway,) = r.of_type(GATEWAY)
    routes = {route.input("spec.hostnames")[0]: route for route in r.of_type(HTTP_ROUTE)}
    assert sorted(routes) == ["app.lab.local", "argocd.lab.local", "boutique.lab.local", "grafana.lab.local"]
    for host, route in routes.items():
        (parent,) = route.input("spec.parentRefs")
        # The parentRef resolves to the lab's Gateway: same name and namespace.
        assert (parent["kind"], parent["name"], parent["namespace"]) == ("Gateway", gateway.input("metadata.name"), gateway.input("metadata.namespace"))
        assert "sectionName" not in parent  # every listener: HTTP, and HTTPS when the lab has a certificate
    backends = {host: route.input("spec.rules")[0]["backendRefs"][0] for host, route in routes.items()}
    assert backends["app.lab.local"] == {"group": "", "kind": "Service", "name": "demo", "port": 80}
    assert backends["argocd.lab.local"]["name"] == "argocd-server"
    assert backends["boutique.lab.local"]["name"] == "frontend"
    assert routes["app.lab.local"].input("metadata.namespace") == "demo"


def test_routes_wait_for_established_crds_and_a_programmed_gateway():
    r = gateway_lab(apps=ALL_APPS)
    crds = r.one(CONFIGFILE, "lab-ingress-gateway-api-crds")
    chart = r.one(CHART, "lab-ingress-install")
    (gateway,) = r.of_type(GATEWAY)
    (klass,) = r.of_type(GATEWAY_CLASS)
    assert chart.depends_on(crds)  # Traefik's Gateway provider watches kinds the CRDs define
    for obj in (klass, gateway):
        assert obj.depends_on(crds) and obj.depends_on(chart)
    assert gateway.depends_on(klass)
    for route in r.of_type(HTTP_ROUTE):
        assert r.waits_for(route, gateway), route.name
        assert r.waits_for(route, crds), route.name
    # ...and the self-check waits for the routes, as it does for Ingresses.
    check = r.named("lab-self-check-run")
    assert all(r.waits_for(check, route) for route in r.of_type(HTTP_ROUTE))


def test_crds_come_from_the_gateway_api_release_with_charts_that_carry_none():
    crds = gateway_lab().one(CONFIGFILE, "lab-ingress-gateway-api-crds")
    assert crds.inputs["file"] == "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml"


def test_older_charts_bring_their_own_crds_so_the_lab_installs_none():
    # Upstream's charts: 37.4.0 carries the CRDs, 41.3.0 none.
    reference_file("traefik/chart-37.4.0/crds/gateway-standard-install.yaml")
    reference_file("traefik/chart-41.3.0/Chart.yaml")
    r = gateway_lab(**{"ingress.version": "37.4.0"})
    assert "lab-ingress-gateway-api-crds" not in [c.name for c in r.of_type(CONFIGFILE)]
    assert r.one(CHART, "lab-ingress-install").input("values.service.type") == "LoadBalancer"
    (gateway,) = r.of_type(GATEWAY)
    assert gateway.depends_on(r.one(CHART, "lab-ingress-install"))
    assert not (REFERENCE / "traefik/chart-41.3.0/crds/gateway-standard-install.yaml").exists()


def test_a_local_chart_is_asked_for_its_version(tmp_path):
    chart = tmp_path / "traefik"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("name: traefik\nversion: 37.4.0\n")
    assert gw.local_chart_version(chart) == "37.4.0"
    archive = tmp_path / "traefik-41.3.0.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        (chart / "Chart.yaml").write_text("name: traefik\nversion: 41.3.0\n")
        tar.add(chart / "Chart.yaml", arcname="traefik/Chart.yaml")
    assert gw.local_chart_version(archive) == "41.3.0"
    assert gw.local_chart_version(tmp_path / "missing") is None
    r = gateway_lab(**{"ingress.manifest": str(archive), "ingress.gateway_api_manifest": str(tmp_path / "traefik/Chart.yaml")})
    assert r.one(CONFIGFILE, "lab-ingress-gateway-api-crds").inputs["file"] == str(tmp_path / "traefik/Chart.yaml")


def test_unpinned_ip_works_with_the_gateway_too():
    r = gateway_lab(**{"ingress.ip": DELETE})
    assert r.read("lab-ingress-service").inputs["id"] == "traefik/traefik"
    assert r.of_type(GATEWAY)


def test_ingress_api_stays_the_default_and_makes_no_gateway_objects():
    r = run_lab(**{"ingress.controller": "traefik"})
    assert r.of_type(GATEWAY) == [] and r.of_type(HTTP_ROUTE) == [] and len(r.of_type(INGRESS)) == 1
    assert "kubernetesGateway" not in r.one(CHART, "lab-ingress-install").input("values.providers")


def test_self_check_and_outputs_are_the_same_whichever_api_routes():
    ingress, gateway = run_lab(**{"ingress.controller": "traefik"}), gateway_lab()
    checks = gateway.named("lab-self-check-run").inputs, ingress.named("lab-self-check-run").inputs
    assert checks[0]["environment"] == checks[1]["environment"] and checks[0]["create"] == checks[1]["create"]
    # The same check, run again after a switch: the routes it goes through are other objects.
    assert checks[0]["triggers"] != checks[1]["triggers"]
    assert gateway.outputs == ingress.outputs


# -- configuration errors --------------------------------------------------------------------


def test_gateway_with_ingress_nginx_is_refused_naming_the_key():
    problems = config_problems(**{"ingress.api": "gateway"})
    assert "ingress.controller: traefik" in problems["ingress.api"]


def test_unknown_api_is_refused():
    assert "ingress.api" in config_problems(**{"ingress.api": "httproute"})


def test_missing_offline_gateway_api_manifest_is_refused(tmp_path):
    problems = config_problems(**ON_GATEWAY, **{"ingress.gateway_api_manifest": str(tmp_path / "standard-install.yaml")})
    assert "is not a file" in problems["ingress.gateway_api_manifest"]


def test_every_gateway_api_crd_is_awaited_until_established_and_nothing_else_changes():
    r = gateway_lab()
    before = reference_docs(GATEWAY_API)
    after = r.one(CONFIGFILE, "lab-ingress-gateway-api-crds").transformed(before)
    crds = [o for o in after if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 10
    assert all(c["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Established" for c in crds)
    assert [o for o in after if o["kind"] != "CustomResourceDefinition"] == [o for o in before if o["kind"] != "CustomResourceDefinition"]
    # Older charts bring the CRDs inside the chart: the same await reaches them there.
    old = gateway_lab(**{"ingress.version": "37.4.0"}).one(CHART, "lab-ingress-install")
    bundled = reference_docs("traefik/chart-37.4.0/crds/gateway-standard-install.yaml")
    assert all("pulumi.com/waitFor" in o["metadata"]["annotations"] for o in old.transformed(bundled) if o["kind"] == "CustomResourceDefinition")
    traefik_crd = reference_docs("traefik/chart-41.3.0/crds/traefik.io_ingressroutes.yaml")
    assert old.transformed(traefik_crd) == traefik_crd


def test_a_local_chart_with_a_pre_release_version_is_read_not_crashed_on():
    # A chart's Chart.yaml may carry "40.2.0-rc.1"; the version rules compare its numbers.
    assert gw.chart_bundles_crds("39.0.0-rc.1") and not gw.chart_bundles_crds("41.3.0-rc.1")
