"""The real Pulumi engine: preview, up, a no-op re-run and destroy, not only mocks.

Mocks prove the graph the program builds; these prove that the Pulumi CLI accepts it: the
project file, the stack config, the Python language host, the providers' input checks, secrets,
URNs. They need `pulumi` and the command and kubernetes plugins (`tools/build-pulumi-toolchain.sh`
builds them from source; an ordinary Pulumi install works too) and skip without them.

Render mode (existing-cluster mode with `cluster.render_yaml_to_directory`) proves the manifests
and transforms: every object is written to a directory instead of a cluster. It proves nothing
about ordering: nothing is awaited, no webhook is called. Rendered Secrets are plain text, so they
only ever go to a temporary directory. Every `pulumi` runs in a network namespace with only
loopback: a chart or manifest that would be downloaded fails instead of reaching the network.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from harness import TEST_KUBECONFIG, reference_docs, reference_file
from tools.controlplane import existing_cluster_config
from tools.project import INGRESS_MANIFEST, METALLB_MANIFEST, Project, lab_config
from tools.testbed.netns import LOOPBACK_ONLY

# One worker runs them all, so the render-mode stack is brought up once.
pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engine-render")]

if shutil.which("pulumi") is None:
    pytest.skip(
        "the Pulumi CLI is not on PATH (tools/build-pulumi-toolchain.sh builds it; .ci/run does)",
        allow_module_level=True,
    )
if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
    pytest.skip("these tests run pulumi in a loopback-only network namespace, which needs root, unshare and ip", allow_module_level=True)


def lab_project(root) -> Project:
    """A copy of the project whose every `pulumi` runs where only loopback exists."""
    return Project(root, wrapper=LOOPBACK_ONLY)


@pytest.fixture(scope="module")
def references():
    reference_file(METALLB_MANIFEST)
    reference_file(INGRESS_MANIFEST)


def planned(preview_json: str) -> dict[str, str]:
    """URN -> op from `pulumi preview --json`."""
    steps = json.loads(preview_json).get("steps", [])
    return {step["urn"]: step["op"] for step in steps}


def test_preview_of_the_lab_plans_the_whole_lab(tmp_path, references):
    project = lab_project(tmp_path)
    project.stack("lab", lab_config())
    result = project.pulumi("preview", "--stack", "lab", "--json")
    plan = planned(result.stdout)
    names = {urn.rsplit("::", 1)[1] for urn in plan}
    for expected in (
        "lab-k8s-cp-vm",
        "lab-k8s-w1-vm",
        "lab-k8s-w2-vm",
        "lab-init",
        "lab-cni",
        "lab-k8s-w1-join",
        "lab-provider",
        "lab-metallb-install",
        "lab-metallb-pool-lab-pool",
        "lab-metallb-pool-lab-pool-reserved-ingress",
        "lab-metallb-l2-lab-l2",
    ):
        assert expected in names, f"{expected} not planned; planned: {sorted(names)}"
    assert set(plan.values()) == {"create"}


def offline(project: Project, reference: str, name: str) -> str:
    """A reference file or chart copied where a user keeps downloads, ``offline/`` in the project,
    and the path the stack file gives it: relative to the project directory (README, Offline labs)."""
    source = reference_file(reference)
    target = project.dir / "offline" / name
    target.parent.mkdir(exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    return f"offline/{name}"


def rendered_manifests(out) -> list[dict]:
    return [doc for path in sorted(out.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, references):
    """One render-mode stack taken through up, a no-op preview and destroy."""
    root = tmp_path_factory.mktemp("engine")
    out = root / "rendered"
    project = lab_project(root)
    config = existing_cluster_config(**{"k8s-lab:cluster": {"render_yaml_to_directory": str(out)}})
    # The manifests as an offline lab gives them: relative to the project, read by the provider there.
    config["k8s-lab:metallb"]["manifest"] = offline(project, METALLB_MANIFEST, "metallb-native.yaml")
    config["k8s-lab:ingress"]["manifest"] = offline(project, INGRESS_MANIFEST, "deploy.yaml")
    project.stack("render", config)
    up = project.pulumi("up", "--stack", "render", "--yes", "--skip-preview")
    noop = project.pulumi("preview", "--stack", "render", "--expect-no-changes", check=False)
    outputs = json.loads(project.pulumi("stack", "output", "--stack", "render", "--json").stdout)
    # A second `up`: the lab CA (a local command) must be the one the first made.
    project.pulumi("up", "--stack", "render", "--yes", "--skip-preview")
    outputs_again = json.loads(project.pulumi("stack", "output", "--stack", "render", "--json").stdout)
    # A new CA name is a new CA: a changed trigger replaces the command (previewed only).
    project.pulumi("config", "set", "--stack", "render", "--path", "tls.ca_common_name", "renamed lab CA")
    renamed = planned(project.pulumi("preview", "--stack", "render", "--json").stdout)
    project.pulumi("config", "rm", "--stack", "render", "--path", "tls.ca_common_name")
    state = json.loads(project.pulumi("stack", "export", "--stack", "render").stdout)
    manifests = rendered_manifests(out)
    destroy = project.pulumi("destroy", "--stack", "render", "--yes", "--skip-preview")
    after = json.loads(project.pulumi("stack", "export", "--stack", "render").stdout)
    return {
        "config": config,
        "up": up,
        "noop": noop,
        "outputs": outputs,
        "outputs_again": outputs_again,
        "renamed": renamed,
        "state": state,
        "manifests": manifests,
        "destroy": destroy,
        "after": after,
    }


def _objects(rendered, kind):
    return [m for m in rendered["manifests"] if m.get("kind") == kind]


def test_up_renders_metallb_pools_advertisement_ingress_and_app(rendered):
    pools = {m["metadata"]["name"]: m["spec"] for m in _objects(rendered, "IPAddressPool")}
    assert pools == {
        "lab-pool": {"addresses": ["192.168.56.201-192.168.56.250"], "autoAssign": True},
        "lab-pool-reserved-ingress": {"addresses": ["192.168.56.200/32"], "autoAssign": False},
    }
    (l2,) = _objects(rendered, "L2Advertisement")
    assert l2["spec"] == {"ipAddressPools": ["lab-pool", "lab-pool-reserved-ingress"], "interfaces": ["eth1"]}
    assert any(m["metadata"]["name"] == "controller" for m in _objects(rendered, "Deployment"))
    assert any(m["metadata"]["name"] == "speaker" for m in _objects(rendered, "DaemonSet"))
    ingresses = _objects(rendered, "Ingress")
    assert [rule["host"] for i in ingresses for rule in i["spec"]["rules"]] == ["app.lab.local"]
    assert all(i["spec"].get("ingressClassName") for i in ingresses)


def test_relative_offline_manifests_are_read_from_the_project_directory(rendered):
    # preview and up took "offline/..." from the stack file; the provider read those very files.
    assert rendered["config"]["k8s-lab:metallb"]["manifest"] == "offline/metallb-native.yaml"
    assert rendered["config"]["k8s-lab:ingress"]["manifest"] == "offline/deploy.yaml"
    names = {(m["kind"], m["metadata"]["name"]) for m in rendered["manifests"]}
    for reference in (METALLB_MANIFEST, INGRESS_MANIFEST):
        assert {(d["kind"], d["metadata"]["name"]) for d in reference_docs(reference)} <= names, reference


def test_transforms_reach_the_rendered_upstream_objects(rendered):
    services = [s for s in _objects(rendered, "Service") if s["spec"].get("type") == "LoadBalancer"]
    assert len(services) == 1, [s["metadata"]["name"] for s in services]
    service = services[0]
    assert service["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "192.168.56.200"
    assert service["spec"]["externalTrafficPolicy"] == "Cluster"
    classes = _objects(rendered, "IngressClass")
    assert any(c["metadata"].get("annotations", {}).get("ingressclass.kubernetes.io/is-default-class") == "true" for c in classes)
    bgppeers = [c for c in _objects(rendered, "CustomResourceDefinition") if c["metadata"]["name"] == "bgppeers.metallb.io"]
    assert bgppeers and "caBundle" not in bgppeers[0]["spec"]["conversion"]["webhook"]["clientConfig"]


def validate_rendered(manifests: list[dict], version: str = "1.36.0") -> int:
    """Every rendered object against its schema: Kubernetes' own kinds with kubernetes-validate, MetalLB's
    and the Gateway API's against their CRDs. How many were checked."""
    import jsonschema
    import kubernetes_validate

    from test_gateway import assert_valid_gateway_object
    from test_metallb import crd_schema

    checked = 0
    for obj in manifests:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group.endswith("metallb.io"):
            jsonschema.validate(obj, crd_schema("0.14.9", obj["kind"]))
        elif group == "gateway.networking.k8s.io":
            assert_valid_gateway_object(obj)
        else:
            kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    return checked


def test_rendered_objects_validate_against_their_schemas(rendered):
    assert validate_rendered(rendered["manifests"]) > 20
    assert _objects(rendered, "IPAddressPool") and _objects(rendered, "L2Advertisement")


def test_second_preview_has_no_changes(rendered):
    assert rendered["noop"].returncode == 0, rendered["noop"].stdout + rendered["noop"].stderr


def test_admin_passwords_output_is_a_secret_in_state_and_cli(rendered):
    # Render mode enables no app with a password (their charts or reads need a cluster or the
    # network); what is checked is that the output itself travels as a secret.
    assert rendered["outputs"]["admin_passwords"] == "[secret]"
    state = rendered["state"]["deployment"]
    stack = next(r for r in state["resources"] if r["type"] == "pulumi:pulumi:Stack")
    assert "ciphertext" in json.dumps(stack["outputs"]["admin_passwords"])


def test_lab_ca_is_made_once_and_its_keys_are_secret_in_state(rendered):
    # The command provider ran the certificate commands with the project's .venv Python.
    ca = rendered["outputs"]["ca_certificate"]
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert rendered["outputs_again"]["ca_certificate"] == ca
    ops = {urn.rsplit("::", 1)[1]: op for urn, op in rendered["renamed"].items()}
    assert ops["render-tls-ca"] == "replace" and ops["render-tls-certificate"] == "replace"
    resources = {r["urn"].rsplit("::", 1)[1]: r for r in rendered["state"]["deployment"]["resources"]}
    for name in ("render-tls-ca", "render-tls-certificate"):
        assert "ciphertext" in json.dumps(resources[name]["outputs"]["stdout"]), name
    assert "ciphertext" in json.dumps(resources["render-tls-certificate"]["inputs"]["stdin"])  # it holds the CA key
    assert "PRIVATE KEY" not in json.dumps(rendered["state"])
    secrets = [m for m in _objects(rendered, "Secret") if m.get("type") == "kubernetes.io/tls"]
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets] == [("demo", "lab-tls")]


def test_destroy_leaves_the_stack_empty(rendered):
    resources = rendered["after"]["deployment"].get("resources") or []
    assert resources == []


# The lab CA and its certificate as labs made before the local commands hold them: two Python
# dynamic resources, their providers pickled by reference to components.tls.
EARLIER_PROVIDERS = {
    "ca": "gASVNgAAAAAAAACMDmNvbXBvbmVudHMudGxzlIwcQ2VydGlmaWNhdGVBdXRob3JpdHlQcm92aWRlcpSTlCmBlC4=",
    "certificate": "gASVMwAAAAAAAACMDmNvbXBvbmVudHMudGxzlIwZU2VydmVyQ2VydGlmaWNhdGVQcm92aWRlcpSTlCmBlC4=",
}


EARLIER_PINNED_ADDRESS = "gASVMwAAAAAAAACMEmNvbXBvbmVudHMubWV0YWxsYpSMFVBpbm5lZEFkZHJlc3NQcm92aWRlcpSTlCmBlC4="


def earlier_dynamic_resources(stack: str) -> list[dict]:
    prefix = f"urn:pulumi:{stack}::k8s-lab::"
    root, tls = f"{prefix}pulumi:pulumi:Stack::k8s-lab-{stack}", f"{prefix}k8s-lab:tls:LabTLS::{stack}-tls"
    provider = f"{prefix}pulumi:providers:pulumi-python::default"
    resources = [
        {"urn": root, "custom": False, "type": "pulumi:pulumi:Stack"},
        {"urn": tls, "custom": False, "type": "k8s-lab:tls:LabTLS", "parent": root},
        {"urn": provider, "custom": True, "id": "earlier", "type": "pulumi:providers:pulumi-python", "inputs": {}, "outputs": {}},
    ]
    for role, payload in EARLIER_PROVIDERS.items():
        props = {"__provider": payload, "cert_pem": f"an earlier {role}"}
        resources.append({
            "urn": f"{prefix}k8s-lab:tls:LabTLS$pulumi-python:dynamic:Resource::{stack}-tls-{role}",
            "custom": True, "id": f"earlier-{role}", "type": "pulumi-python:dynamic:Resource",
            "inputs": props, "outputs": props, "parent": tls, "provider": f"{provider}::earlier",
        })  # fmt: skip
    # The earlier pinned address: a dynamic resource of components.metallb, under its MetalLB.
    metallb = f"{prefix}k8s-lab:metallb:MetalLB::{stack}-metallb"
    props = {"__provider": EARLIER_PINNED_ADDRESS, "key": "ingress.ip", "address": "192.168.56.200"}
    resources += [
        {"urn": metallb, "custom": False, "type": "k8s-lab:metallb:MetalLB", "parent": root},
        {
            "urn": f"{prefix}k8s-lab:metallb:MetalLB$pulumi-python:dynamic:Resource::{stack}-metallb-pin-ingress-ip",
            "custom": True, "id": "ingress.ip", "type": "pulumi-python:dynamic:Resource",
            "inputs": props, "outputs": props, "parent": metallb, "provider": f"{provider}::earlier",
        },
    ]  # fmt: skip
    return resources


def test_a_lab_made_with_the_earlier_dynamic_resources_drops_them_on_the_next_up(tmp_path, references):
    # The engine deletes them through their own provider: components.tls and components.metallb
    # must still unpickle it.
    project = Project(tmp_path)
    config = existing_cluster_config(**{"k8s-lab:cluster": {"render_yaml_to_directory": str(tmp_path / "rendered")}})
    project.stack("render", config)
    state = json.loads(project.pulumi("stack", "export", "--stack", "render").stdout)
    state["deployment"]["resources"] = earlier_dynamic_resources("render")
    (tmp_path / "earlier.json").write_text(json.dumps(state))
    project.pulumi("stack", "import", "--stack", "render", "--file", str(tmp_path / "earlier.json"))
    steps = planned(project.pulumi("preview", "--stack", "render", "--json").stdout).items()
    plan = {(urn.rsplit("::", 2)[1].rsplit("$", 1)[-1], urn.rsplit("::", 1)[1]): op for urn, op in steps}
    # The dynamic ones are deleted; commands of the same names are created.
    for name in ("render-tls-ca", "render-tls-certificate", "render-metallb-pin-ingress-ip"):
        assert plan["pulumi-python:dynamic:Resource", name] == "delete"
        assert plan["command:local:Command", name] == "create"
    project.pulumi("up", "--stack", "render", "--yes", "--skip-preview")
    resources = json.loads(project.pulumi("stack", "export", "--stack", "render").stdout)["deployment"]["resources"]
    assert not [r["urn"] for r in resources if "pulumi-python" in r["type"]]
    commands = {r["urn"].rsplit("::", 1)[1] for r in resources if r["type"] == "command:local:Command"}
    assert {"render-tls-ca", "render-tls-certificate", "render-metallb-pin-ingress-ip"} <= commands
    project.pulumi("destroy", "--stack", "render", "--yes", "--skip-preview")


def test_an_invalid_config_ends_with_the_problem_list_alone(tmp_path, references):
    project = lab_project(tmp_path)
    config = lab_config()
    config["k8s-lab:nodes"][2]["ip"] = config["k8s-lab:nodes"][1]["ip"]
    config["k8s-lab:kubernetes"]["version"] = "1.30.5"
    project.stack("lab", config)
    result = project.pulumi("preview", "--stack", "lab", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "nodes[2].ip: 192.168.56.11 is also the IP of nodes[1]" in output
    assert "kubernetes.version: 1.30.5" in output
    # Neither a traceback nor the CLI's own "unhandled error" after the list.
    assert "unhandled" not in output and "Traceback" not in output, output


def test_render_mode_previews_whatever_kubeconfig_the_shell_has(tmp_path, references):
    project = lab_project(tmp_path)
    shell_config = tmp_path / "shell-kubeconfig"
    shell_config.write_text(TEST_KUBECONFIG)
    project.env["KUBECONFIG"] = str(shell_config)
    config = existing_cluster_config(**{"k8s-lab:cluster": {"render_yaml_to_directory": str(tmp_path / "rendered")}})
    project.stack("render", config)
    result = project.pulumi("preview", "--stack", "render", "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any("self-check" in urn for urn in planned(result.stdout))


# -- render mode renders the charts too: Traefik (both APIs, both chart layouts) and Grafana --

GATEWAY_API_MANIFEST = "gateway-api/standard-install-v1.6.1.yaml"
# pulumi-kubernetes before 4.32.0 (#4400) cannot tell offline whether a kind its tables lack is namespaced.
UNRENDERED_POLICY = "failed to determine if the following GVK is namespaced: admissionregistration.k8s.io/v1, Kind=ValidatingAdmissionPolicy"
# Traefik chart, routing API, and whether the stack has every app and the DNS server, or demo and Grafana.
EVERYTHING = ("37.4.0", "gateway", True)
CHART_STACKS = [("41.3.0", "ingress", False), ("41.3.0", "gateway", False), ("37.4.0", "ingress", False), EVERYTHING]
# Every app whose upstream manifest or chart is among the reference copies (Grafana's chart is not).
EVERY_APP = {"demo": "app", "argocd": "argocd", "online-boutique": "boutique"}
DNS_IP = "192.168.56.250"
APP_DEPLOYMENTS = {"demo": "demo", "argocd": "argocd-server", "online-boutique": "frontend"}


def stack_id(chart_version: str, api: str, everything: bool) -> str:
    return f"traefik-{chart_version}-{api}" + ("-everything" if everything else "")


@pytest.fixture(scope="module", params=CHART_STACKS, ids=[stack_id(*stack) for stack in CHART_STACKS])
def rendered_charts(request, tmp_path_factory, references):
    """A render-mode stack with Traefik's chart (offline, relative to the project), through up and a no-op preview."""
    chart_version, api, everything = request.param
    root = tmp_path_factory.mktemp(f"engine-traefik-{chart_version}-{api}")
    out = root / "rendered"
    project = lab_project(root)
    ingress = {"controller": "traefik", "api": api, "manifest": offline(project, f"traefik/chart-{chart_version}", "traefik")}
    if api == "gateway":
        ingress["gateway_api_manifest"] = offline(project, GATEWAY_API_MANIFEST, "standard-install.yaml")
    apps = list(EVERY_APP) if everything else ["demo"]
    options: dict = {}
    if everything:
        options["argocd"] = {"manifest": offline(project, "argocd/install-v3.5.1.yaml", "install.yaml"), "export_admin_password": False}
        options["online-boutique"] = {"manifest": offline(project, "online-boutique/kubernetes-manifests-v0.10.6.yaml", "boutique.yaml")}
    config = existing_cluster_config(
        **{
            "k8s-lab:cluster": {"render_yaml_to_directory": str(out)},
            "k8s-lab:ingress": ingress,
            "k8s-lab:apps": apps,
            "k8s-lab:app_options": options,
            "k8s-lab:dns": {"enabled": everything, "ip": DNS_IP},
        }
    )
    project.stack("charts", config)
    up = project.pulumi("up", "--stack", "charts", "--yes", "--skip-preview", check=False)
    policy_left_out = UNRENDERED_POLICY in up.stdout + up.stderr
    if policy_left_out:
        # This engine's provider cannot render the manifest's ValidatingAdmissionPolicy (see
        # test_the_whole_gateway_api_manifest_renders): the rest is still proven, without it.
        manifest = project.dir / ingress["gateway_api_manifest"]
        kept = [d for d in yaml.safe_load_all(manifest.read_text()) if d and not d["kind"].startswith("ValidatingAdmissionPolicy")]
        manifest.write_text(yaml.safe_dump_all(kept, sort_keys=False))
        up = project.pulumi("up", "--stack", "charts", "--yes", "--skip-preview", check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    noop = project.pulumi("preview", "--stack", "charts", "--expect-no-changes", check=False)
    return {
        "chart_version": chart_version,
        "api": api,
        "apps": apps,
        "dns": everything,
        "manifests": rendered_manifests(out),
        "noop": noop,
        "policy_left_out": policy_left_out,
    }


def _chart_objects(rendered, kind, namespace=None):
    return [m for m in rendered["manifests"] if m.get("kind") == kind and namespace in (None, m["metadata"].get("namespace"))]


def test_render_mode_renders_traefiks_chart_with_the_labs_service_and_class(rendered_charts):
    (service,) = [s for s in _chart_objects(rendered_charts, "Service", "traefik") if s["metadata"]["name"] == "traefik"]
    # Chart 40 moved the type into service.spec: each chart got the values of its own layout.
    assert service["spec"]["type"] == "LoadBalancer", rendered_charts["chart_version"]
    assert service["spec"]["externalTrafficPolicy"] == "Cluster"
    assert service["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "192.168.56.200"
    (deployment,) = _chart_objects(rendered_charts, "Deployment", "traefik")
    assert deployment["metadata"]["labels"]["helm.sh/chart"] == f"traefik-{rendered_charts['chart_version']}"
    # The lab's transform reached the chart's Deployment: two pods, one per node, counted by the
    # chart's own selector.
    assert deployment["spec"]["replicas"] == 2
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    classes = {c["metadata"]["name"]: c for c in _chart_objects(rendered_charts, "IngressClass")}
    assert classes["traefik"]["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"


def test_render_mode_renders_the_gateway_api_with_either_chart(rendered_charts):
    routes = _chart_objects(rendered_charts, "HTTPRoute")
    crds = [c for c in _chart_objects(rendered_charts, "CustomResourceDefinition") if c["spec"]["group"] == "gateway.networking.k8s.io"]
    if rendered_charts["api"] == "ingress":
        assert routes == [] and _chart_objects(rendered_charts, "Gateway") == []
        return
    assert sorted(r["spec"]["hostnames"][0] for r in routes) == sorted(f"{EVERY_APP[app]}.lab.local" for app in rendered_charts["apps"])
    (gateway,) = _chart_objects(rendered_charts, "Gateway", "traefik")
    assert [listener["name"] for listener in gateway["spec"]["listeners"]] == ["web", "websecure"]
    # 37.4.0 carries the CRDs in its chart, 41.3.0 none (the lab installs the standard channel):
    # either way each is there once, with the lab's await transform on it.
    assert len(crds) == len({c["metadata"]["name"] for c in crds}) >= 5
    assert all(c["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Established" for c in crds)


def test_the_whole_gateway_api_manifest_renders(rendered_charts):
    if rendered_charts["policy_left_out"]:
        pytest.xfail(
            "the kubernetes plugin built here is pulumi-kubernetes main of 2026-01-15 (tools/build-pulumi-toolchain.sh, "
            "NOTE 3), which fails to render the Gateway API manifest's ValidatingAdmissionPolicy without a cluster; "
            "4.32.0 and later (the 4.34.2 release the SDK asks for) render it (pulumi-kubernetes#4400)"
        )
    policies = {m["kind"] for m in rendered_charts["manifests"] if m["kind"].startswith("ValidatingAdmissionPolicy")}
    # Only the lab's own copy of the manifest (charts from 40.2.0) carries the policy.
    from_manifest = rendered_charts["api"] == "gateway" and rendered_charts["chart_version"] == "41.3.0"
    assert policies == ({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} if from_manifest else set())


def test_render_mode_renders_every_app_it_is_given_and_the_dns_server(rendered_charts):
    routed = {
        host
        for kind in ("Ingress", "HTTPRoute")
        for route in _chart_objects(rendered_charts, kind)
        for host in [*route["spec"].get("hostnames", []), *(rule["host"] for rule in route["spec"].get("rules", []) if "host" in rule)]
    }
    assert routed == {f"{EVERY_APP[app]}.lab.local" for app in rendered_charts["apps"]}
    deployments = {d["metadata"]["name"] for d in _chart_objects(rendered_charts, "Deployment")}
    assert {app for app, deployment in APP_DEPLOYMENTS.items() if deployment in deployments} == set(rendered_charts["apps"])
    dns = [s for s in _chart_objects(rendered_charts, "Service", "lab-dns") if s["spec"].get("type") == "LoadBalancer"]
    assert [s["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] for s in dns] == ([DNS_IP] if rendered_charts["dns"] else [])


@pytest.mark.parametrize("rendered_charts", [EVERYTHING], ids=[stack_id(*EVERYTHING)], indirect=True)
def test_upstream_manifests_without_a_namespace_land_in_their_apps_namespace(rendered_charts):
    namespaces = {d["metadata"]["name"]: d["metadata"].get("namespace") for d in _chart_objects(rendered_charts, "Deployment")}
    assert (namespaces["argocd-server"], namespaces["frontend"]) == ("argocd", "online-boutique")


def test_rendered_chart_objects_validate_against_their_schemas(rendered_charts):
    assert validate_rendered(rendered_charts["manifests"]) > 40


def test_a_second_preview_of_rendered_charts_has_no_changes(rendered_charts):
    assert rendered_charts["noop"].returncode == 0, rendered_charts["noop"].stdout + rendered_charts["noop"].stderr


def test_render_mode_refuses_a_chart_the_stacks_kubernetes_version_is_outside_of(tmp_path, references):
    # Traefik 41.3.0 requires Kubernetes 1.25 or later. Told 1.24, Helm refuses only during the
    # preview, and the engine then often reports a transform call it cancelled ("Cancelling all
    # calls") instead of Helm's words: the lab reads the chart's kubeVersion first. (The charts
    # rendered for 1.36 in rendered_charts prove Helm is given the stack's version: for its own
    # default, v1.20.0, it would refuse them.)
    project = lab_project(tmp_path)
    config = existing_cluster_config(
        **{
            "k8s-lab:cluster": {"render_yaml_to_directory": str(tmp_path / "rendered")},
            "k8s-lab:ingress": {"controller": "traefik", "manifest": offline(project, "traefik/chart-41.3.0", "traefik")},
            "k8s-lab:kubernetes": {"version": "1.24.17"},
        }
    )
    project.stack("old", config)
    result = project.pulumi("preview", "--stack", "old", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "ingress.manifest:" in output and "requires Kubernetes >=1.25.0-0" in output, output
    assert "kubernetes.version is 1.24.17" in output
    # One error, the configuration's, raised before anything but the stack itself is registered.
    assert "Cancelling all calls" not in output and "k8s-lab:cluster" not in output, output
