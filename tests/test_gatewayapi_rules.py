"""The Gateway API rules the control-plane tier judges the lab's objects by, and the Gateway status
its Traefik stand-in writes: both must refuse what Traefik and the API refuse, or the tier's
Gateway assertions could not fail. Objects are the lab's own manifests (components.gateway)."""

from __future__ import annotations

import copy

import pytest

from components import gateway as gw
from tools.controlplane.gatewayapi import V1, attachments
from tools.controlplane.standins import gateway_status

TRAEFIK_ENTRY_POINTS = {8000, 8443, 8080, 9100}  # chart 41.3.0's container ports
TLS_SECRET = {"type": "kubernetes.io/tls", "data": {}}


class ObjectsApi:
    """The read side of tools.controlplane.Api over fixed objects (the rules only list)."""

    def __init__(self, gateways, routes, namespaces=None):
        self.lists = {
            f"{V1}/gateways": gateways,
            f"{V1}/httproutes": routes,
            "/api/v1/namespaces": [{"metadata": {"name": n, "labels": labels}} for n, labels in (namespaces or {}).items()],
        }

    def items(self, path):
        return self.lists[path]


def lab_gateway(tls=True):
    return gw.gateway_manifest("traefik", "lab-tls" if tls else None)


def demo_route(**spec_changes):
    route = gw.http_route_manifest("demo", "demo", "app.lab.local", "demo", 80, "traefik", {})
    route["spec"].update(spec_changes)
    return route


def test_the_lab_route_attaches_to_both_listeners():
    found, unresolved = attachments(ObjectsApi([lab_gateway()], [demo_route()]))
    assert {(a.route, a.gateway, a.listener) for a in found} == {("demo/demo", "traefik/lab", "web"), ("demo/demo", "traefik/lab", "websecure")}
    assert unresolved == {"demo/demo": []}


@pytest.mark.parametrize(
    "parent, reason",
    [
        ({"name": "lab"}, "Gateway demo/lab, which does not exist"),  # namespace left to default to the route's
        ({"name": "other", "namespace": "traefik"}, "Gateway traefik/other, which does not exist"),
        ({"name": "lab", "namespace": "traefik", "sectionName": "https"}, "matches no listener"),
        ({"name": "lab", "namespace": "traefik", "port": 443}, "matches no listener"),
        ({"name": "lab", "namespace": "traefik", "kind": "Service", "group": ""}, "is not a Gateway"),
    ],
)
def test_a_parent_ref_that_resolves_nowhere_is_reported(parent, reason):
    found, unresolved = attachments(ObjectsApi([lab_gateway()], [demo_route(parentRefs=[parent])]))
    assert found == []
    assert len(unresolved["demo/demo"]) == 1 and reason in unresolved["demo/demo"][0]


def test_allowed_routes_and_hostnames_are_honoured():
    gateway = lab_gateway(tls=False)
    listener = gateway["spec"]["listeners"][0]
    listener["allowedRoutes"] = {"namespaces": {"from": "Same"}}
    assert attachments(ObjectsApi([gateway], [demo_route()]))[0] == []
    listener["allowedRoutes"] = {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"lab": "yes"}}}}
    assert attachments(ObjectsApi([gateway], [demo_route()], {"demo": {}}))[0] == []
    assert len(attachments(ObjectsApi([gateway], [demo_route()], {"demo": {"lab": "yes"}}))[0]) == 1
    listener["allowedRoutes"] = {"namespaces": {"from": "All"}}
    listener["hostname"] = "*.other.test"
    assert attachments(ObjectsApi([gateway], [demo_route()]))[0] == []
    listener["hostname"] = "*.lab.local"
    assert len(attachments(ObjectsApi([gateway], [demo_route()]))[0]) == 1


def _conditions(entry):
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


def test_the_stand_in_programs_the_lab_gateway():
    gateway = lab_gateway()
    found, _ = attachments(ObjectsApi([gateway], [demo_route()]))
    status = gateway_status(gateway, TRAEFIK_ENTRY_POINTS, ["192.168.56.200"], {("traefik", "lab-tls"): TLS_SECRET}, found)
    assert _conditions(status)["Programmed"] == ("True", "Programmed")
    assert status["addresses"] == [{"type": "IPAddress", "value": "192.168.56.200"}]
    assert [(entry["name"], entry["attachedRoutes"]) for entry in status["listeners"]] == [("web", 1), ("websecure", 1)]


def test_the_stand_in_refuses_what_traefik_refuses():
    good = lab_gateway()
    secrets = {("traefik", "lab-tls"): TLS_SECRET}
    # A listener on a port that is none of Traefik's entry points (the Service's 80, say).
    wrong_port = copy.deepcopy(good)
    wrong_port["spec"]["listeners"][0]["port"] = 80
    status = gateway_status(wrong_port, TRAEFIK_ENTRY_POINTS, ["192.168.56.200"], secrets, [])
    assert _conditions(status)["Programmed"] == ("False", "Invalid")
    assert _conditions(status["listeners"][0])["Accepted"] == ("False", "PortUnavailable")
    # A certificate Secret that is missing, or not of type kubernetes.io/tls.
    for found in ({}, {("traefik", "lab-tls"): {"type": "Opaque", "data": {}}}):
        status = gateway_status(good, TRAEFIK_ENTRY_POINTS, ["192.168.56.200"], found, [])
        assert _conditions(status)["Programmed"][0] == "False"
        assert _conditions(status["listeners"][1])["ResolvedRefs"] == ("False", "InvalidCertificateRef")
    # No load-balancer IP on Traefik's Service yet.
    status = gateway_status(good, TRAEFIK_ENTRY_POINTS, [], secrets, [])
    assert _conditions(status)["Programmed"] == ("False", "AddressNotAssigned")
