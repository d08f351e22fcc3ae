"""The Gateway API's attachment rules, read off the objects in the API server.

Which listeners of which Gateway an HTTPRoute attaches to follows from the route's ``parentRefs``
(group, kind, namespace and port defaulted as the API defines them, ``sectionName`` naming one
listener), each listener's ``allowedRoutes`` (namespaces ``Same``, ``All`` or ``Selector``; kinds)
and the intersection of the listener's ``hostname`` with the route's ``hostnames``. A Gateway
controller applies these rules before it programs a route; the control-plane tier applies them to
the objects `up` created, so a route whose ``parentRefs`` point nowhere, at a missing listener or
from a namespace the listener refuses is found without the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from tools.controlplane.api import Api

GROUP = "gateway.networking.k8s.io"
V1 = f"/apis/{GROUP}/v1"


@dataclass(frozen=True)
class Attachment:
    route: str  # namespace/name
    gateway: str  # namespace/name
    listener: str


def _selected(labels: dict[str, str], selector: dict[str, Any]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _namespace_allowed(listener: dict, gateway_namespace: str, route_namespace: str, namespace_labels: dict[str, dict]) -> bool:
    namespaces = (listener.get("allowedRoutes") or {}).get("namespaces") or {}
    where = namespaces.get("from", "Same")
    if where == "All":
        return True
    if where == "Same":
        return route_namespace == gateway_namespace
    if where == "Selector":
        return _selected(namespace_labels.get(route_namespace, {}), namespaces.get("selector") or {})
    return False


def _kind_allowed(listener: dict, kind: str) -> bool:
    kinds = (listener.get("allowedRoutes") or {}).get("kinds")
    if kinds:
        return any(k.get("kind") == kind and k.get("group", GROUP) == GROUP for k in kinds)
    # Without a list the listener takes the route kinds of its protocol.
    return kind == "HTTPRoute" and listener.get("protocol") in ("HTTP", "HTTPS")


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return pattern == host


def _hostnames_intersect(listener: dict, route: dict) -> bool:
    listener_host: Optional[str] = listener.get("hostname")
    route_hosts = route["spec"].get("hostnames") or []
    if not listener_host or not route_hosts:
        return True
    return any(_host_matches(listener_host, h) or _host_matches(h, listener_host) for h in route_hosts)


def attachments(api: Api) -> tuple[list[Attachment], dict[str, list[str]]]:
    """Every (route, Gateway, listener) attachment of the cluster's HTTPRoutes, and for each route
    the reasons any of its ``parentRefs`` attaches nowhere (empty when all resolve)."""
    gateways = {f"{g['metadata']['namespace']}/{g['metadata']['name']}": g for g in api.items(f"{V1}/gateways")}
    namespace_labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in api.items("/api/v1/namespaces")}
    found: list[Attachment] = []
    unresolved: dict[str, list[str]] = {}
    for route in api.items(f"{V1}/httproutes"):
        meta = route["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        unresolved[key] = []
        for ref in route["spec"].get("parentRefs") or []:
            if ref.get("group", GROUP) != GROUP or ref.get("kind", "Gateway") != "Gateway":
                unresolved[key].append(f"parentRef {ref} is not a Gateway")
                continue
            target = f"{ref.get('namespace', meta['namespace'])}/{ref['name']}"
            gateway = gateways.get(target)
            if gateway is None:
                unresolved[key].append(f"parentRef names Gateway {target}, which does not exist")
                continue
            listeners = [
                listener
                for listener in gateway["spec"]["listeners"]
                if ref.get("sectionName") in (None, listener["name"]) and ref.get("port") in (None, listener["port"])
            ]
            attached = [
                listener["name"]
                for listener in listeners
                if _namespace_allowed(listener, gateway["metadata"]["namespace"], meta["namespace"], namespace_labels)
                and _kind_allowed(listener, route.get("kind", "HTTPRoute"))
                and _hostnames_intersect(listener, route)
            ]
            if not attached:
                unresolved[key].append(f"parentRef to {target} matches no listener that accepts the route")
            found += [Attachment(key, target, name) for name in attached]
    return found, unresolved
