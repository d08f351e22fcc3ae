"""The real Pulumi engine: preview, up, a no-op re-run and destroy, not only mocks.

Mocks prove the graph the program builds; these prove that the Pulumi CLI accepts it: the
project file, the stack config, the Python language host, the providers' input checks, secrets,
URNs. They need `pulumi` and the command and kubernetes plugins (`tools/build-pulumi-toolchain.sh`
builds them from source; an ordinary Pulumi install works too) and skip without them.

Render mode (existing-cluster mode with `cluster.render_yaml_to_directory`) proves the manifests
and transforms: every object is written to a directory instead of a cluster. It proves nothing
about ordering: nothing is awaited, no webhook is called. Rendered Secrets are plain text, so they
only ever go to a temporary directory.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from harness import TEST_KUBECONFIG, reference_file
from tools.controlplane import existing_cluster_config
from tools.project import INGRESS_MANIFEST, METALLB_MANIFEST, Project, lab_config

# One worker runs them all, so the render-mode stack is brought up once.
pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engine-render")]

if shutil.which("pulumi") is None:
    pytest.skip(
        "the Pulumi CLI is not on PATH (tools/build-pulumi-toolchain.sh builds it; .ci/run does)",
        allow_module_level=True,
    )

@pytest.fixture(scope="module")
def references():
    reference_file(METALLB_MANIFEST)
    reference_file(INGRESS_MANIFEST)


def planned(preview_json: str) -> dict[str, str]:
    """URN -> op from `pulumi preview --json`."""
    steps = json.loads(preview_json).get("steps", [])
    return {step["urn"]: step["op"] for step in steps}


def test_preview_of_the_lab_plans_the_whole_lab(tmp_path, references):
    project = Project(tmp_path)
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
        "lab-metallb-pool-lab-pool-reserved",
        "lab-metallb-l2-lab-l2",
    ):
        assert expected in names, f"{expected} not planned; planned: {sorted(names)}"
    assert set(plan.values()) == {"create"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, references):
    """One render-mode stack taken through up, a no-op preview and destroy."""
    root = tmp_path_factory.mktemp("engine")
    out = root / "rendered"
    project = Project(root)
    config = existing_cluster_config(**{"k8s-lab:cluster": {"render_yaml_to_directory": str(out)}})
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
    manifests = [doc for path in sorted(out.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    destroy = project.pulumi("destroy", "--stack", "render", "--yes", "--skip-preview")
    after = json.loads(project.pulumi("stack", "export", "--stack", "render").stdout)
    return {
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
        "lab-pool-reserved": {"addresses": ["192.168.56.200/32"], "autoAssign": False},
    }
    (l2,) = _objects(rendered, "L2Advertisement")
    assert l2["spec"] == {"ipAddressPools": ["lab-pool", "lab-pool-reserved"], "interfaces": ["eth1"]}
    assert any(m["metadata"]["name"] == "controller" for m in _objects(rendered, "Deployment"))
    assert any(m["metadata"]["name"] == "speaker" for m in _objects(rendered, "DaemonSet"))
    ingresses = _objects(rendered, "Ingress")
    assert [rule["host"] for i in ingresses for rule in i["spec"]["rules"]] == ["app.lab.local"]
    assert all(i["spec"].get("ingressClassName") for i in ingresses)


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


def test_rendered_core_objects_validate_against_kubernetes_schemas(rendered):
    import kubernetes_validate

    version = "1.36.0"
    checked = 0
    for obj in rendered["manifests"]:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group.endswith("metallb.io"):
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked > 20


def test_rendered_metallb_objects_validate_against_metallb_crds(rendered):
    import jsonschema

    from test_metallb import crd_schema

    for kind in ("IPAddressPool", "L2Advertisement"):
        for obj in _objects(rendered, kind):
            jsonschema.validate(obj, crd_schema("0.14.9", kind))


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


def earlier_tls_resources(stack: str) -> list[dict]:
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
    return resources


def test_a_lab_made_with_the_earlier_dynamic_resources_drops_them_on_the_next_up(tmp_path, references):
    # The engine deletes them through their own provider: components.tls must still unpickle it.
    project = Project(tmp_path)
    config = existing_cluster_config(**{"k8s-lab:cluster": {"render_yaml_to_directory": str(tmp_path / "rendered")}})
    project.stack("render", config)
    state = json.loads(project.pulumi("stack", "export", "--stack", "render").stdout)
    state["deployment"]["resources"] = earlier_tls_resources("render")
    (tmp_path / "earlier.json").write_text(json.dumps(state))
    project.pulumi("stack", "import", "--stack", "render", "--file", str(tmp_path / "earlier.json"))
    plan = {urn.rsplit("::", 1)[1]: op for urn, op in planned(project.pulumi("preview", "--stack", "render", "--json").stdout).items()}
    assert plan["render-tls-ca"] == plan["render-tls-certificate"] == "delete"  # the dynamic ones; the commands are created
    project.pulumi("up", "--stack", "render", "--yes", "--skip-preview")
    resources = json.loads(project.pulumi("stack", "export", "--stack", "render").stdout)["deployment"]["resources"]
    assert not [r["urn"] for r in resources if "pulumi-python" in r["type"]]
    assert sorted(r["urn"].rsplit("::", 1)[1] for r in resources if r["type"] == "command:local:Command") == ["render-tls-ca", "render-tls-certificate"]
    project.pulumi("destroy", "--stack", "render", "--yes", "--skip-preview")


def test_an_invalid_config_ends_with_the_problem_list_alone(tmp_path, references):
    project = Project(tmp_path)
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
    project = Project(tmp_path)
    shell_config = tmp_path / "shell-kubeconfig"
    shell_config.write_text(TEST_KUBECONFIG)
    project.env["KUBECONFIG"] = str(shell_config)
    config = existing_cluster_config(**{"k8s-lab:cluster": {"render_yaml_to_directory": str(tmp_path / "rendered")}})
    project.stack("render", config)
    result = project.pulumi("preview", "--stack", "render", "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any("self-check" in urn for urn in planned(result.stdout))
