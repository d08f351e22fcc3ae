"""Whole-program runs shared by the ingress, apps, self-check and output tests.

The seed's MetalLB and ingress settings on an existing cluster (so no VM layer is needed), with
overrides in ``pulumi config set --path`` form. A run is cached by its overrides: the program is
deterministic under mocks and tests only read what it registered.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness import DELETE, TEST_KUBECONFIG, Run, run_program

ALL_APPS = ["demo", "argocd", "grafana", "online-boutique"]

CONFIGFILE = "kubernetes:yaml/v2:ConfigFile"
CHART = "kubernetes:helm.sh/v4:Chart"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
COMMAND = "command:local:Command"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"

_cache: dict[str, Run] = {}


def existing(**overrides: Any) -> dict[str, Any]:
    return {
        "nodes": DELETE,
        "vagrant": DELETE,
        "cluster": {"kubeconfig": TEST_KUBECONFIG},
        "network.interface": "eth1",
        **overrides,
    }


def run_lab(**overrides: Any) -> Run:
    """The program on an existing cluster with ``overrides`` (``apps=[...]``, ``**{"ingress.ip": DELETE}``)."""
    key = json.dumps({k: ("<delete>" if v is DELETE else v) for k, v in sorted(overrides.items())}, sort_keys=True)
    if key not in _cache:
        _cache[key] = run_program("lab", existing(**overrides), secret_keys=("cluster",))
    return _cache[key]


def ingress_of(run: Run, host: str):
    """The app Ingress that routes ``host``."""
    matches = [r for r in run.of_type(INGRESS) if r.input("spec.rules")[0]["host"] == host]
    assert len(matches) == 1, f"expected one Ingress for {host}, found {[m.name for m in matches]}"
    return matches[0]


def config_problems(**overrides: Any) -> dict[str, str]:
    """The program on an existing cluster with ``overrides``, which must fail with ConfigError before
    registering anything: its problems' messages by key path."""
    from components.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        run_program("lab", existing(**overrides))
    assert caught.value.registered == []
    return {p.path: p.message for p in caught.value.problems}
