"""The apps: hostnames, Ingresses, what each installs and how upstream objects are changed."""

from __future__ import annotations

import re
import subprocess

import kubernetes_validate
import pytest

from components.apps import base, demo, grafana, online_boutique
from components.config import DemoOptions, OnlineBoutiqueOptions
from harness import reference_docs
from labruns import ALL_APPS, CHART, COMMAND, CONFIGFILE, INGRESS, NAMESPACE, SECRET, ingress_of, run_lab

KUBERNETES_SCHEMA = "1.34"
BOUTIQUE = "online-boutique/kubernetes-manifests-v0.10.6.yaml"
ARGOCD = "argocd/install-v3.5.1.yaml"


@pytest.fixture(scope="module")
def everything():
    return run_lab(apps=ALL_APPS, domain="lab.test")


def find(objects, kind, name):
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}"
    return matches[0]


# -- every app --


@pytest.mark.parametrize(
    "app,host,namespace,service",
    [
        ("demo", "app.lab.test", "demo", "demo"),
        ("argocd", "argocd.lab.test", "argocd", "argocd-server"),
        ("grafana", "grafana.lab.test", "grafana", "grafana"),
        ("online-boutique", "boutique.lab.test", "online-boutique", "frontend"),
    ],
)
def test_each_app_is_served_at_its_host_under_the_domain(everything, app, host, namespace, service):
    route = ingress_of(everything, host)
    assert route.input("metadata.namespace") == namespace
    assert route.input("spec.ingressClassName") == "nginx"
    backend = route.input("spec.rules")[0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service, "port": {"number": 80}}
    assert everything.outputs["urls"][app] == f"http://{host}"
    assert any(n.input("metadata.name") == namespace for n in everything.of_type(NAMESPACE))


def test_every_ingress_waits_for_the_controller_and_its_admission_webhook(everything):
    # Created before ingress-nginx's webhook serves, an Ingress is refused ("connection refused").
    install = everything.one(CONFIGFILE, "lab-ingress-install")
    for route in everything.of_type(INGRESS):
        assert everything.waits_for(route, install), route.name
        assert route.provider.startswith(everything.one("pulumi:providers:kubernetes").urn)


def test_every_ingress_waits_for_its_app_backend(everything):
    for app, install in [("argocd", CONFIGFILE), ("grafana", CHART), ("online-boutique", CONFIGFILE)]:
        route = everything.named(f"lab-apps-{app}-ingress")
        assert route.depends_on(everything.one(install, f"lab-apps-{app}-install"))
    assert everything.named("lab-apps-demo-ingress").depends_on(everything.named("lab-apps-demo-service"))


def test_only_enabled_apps_are_installed():
    r = run_lab()  # the seed: demo only
    assert [i.input("spec.rules")[0]["host"] for i in r.of_type(INGRESS)] == ["app.lab.local"]
    assert {x.type for x in r.resources if x.type.startswith("k8s-lab:apps:")} == {"k8s-lab:apps:Apps", "k8s-lab:apps:Demo"}


def test_ingress_manifest_is_a_valid_networking_v1_ingress():
    manifest = base.ingress_manifest("demo", "demo", "app.lab.test", "demo", 80, "traefik")
    kubernetes_validate.validate(manifest, KUBERNETES_SCHEMA, strict=True)
    assert manifest["spec"]["ingressClassName"] == "traefik"


# -- demo --


def test_demo_is_a_small_pinned_whoami_with_the_configured_replicas():
    r = run_lab(**{"app_options.demo.replicas": 3})
    deployment = r.named("lab-apps-demo-deployment")
    assert deployment.input("spec.replicas") == 3
    container = deployment.input("spec.template.spec.containers")[0]
    assert container["image"] == "docker.io/traefik/whoami:v1.11.0"
    assert container["resources"]["limits"]["memory"] == "64Mi"
    (spread,) = deployment.input("spec.template.spec.topologySpreadConstraints")
    assert spread["labelSelector"]["matchLabels"] == deployment.input("spec.selector.matchLabels")
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "DoNotSchedule")
    # A worker still joining counts as a place for a pod (it starts there once the node is Ready);
    # a lost one (unreachable) does not.
    assert deployment.input("spec.template.spec.tolerations") == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}
    ]
    service = r.named("lab-apps-demo-service")
    assert service.input("spec.type") == "ClusterIP"
    assert service.input("spec.selector") == deployment.input("spec.selector.matchLabels")


def test_demo_objects_are_valid_kubernetes_objects():
    dep, svc = demo.demo_manifests(DemoOptions(replicas=2))
    kubernetes_validate.validate({"apiVersion": "apps/v1", "kind": "Deployment", **dep}, KUBERNETES_SCHEMA, strict=True)
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Service", **svc}, KUBERNETES_SCHEMA, strict=True)


# -- Argo CD --


@pytest.fixture(scope="module")
def argocd_objects(everything):
    return everything.one(CONFIGFILE, "lab-apps-argocd-install").transformed(reference_docs(ARGOCD))


def test_argocd_is_the_pinned_install_manifest(everything):
    install = everything.one(CONFIGFILE, "lab-apps-argocd-install")
    assert install.inputs["file"] == "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml"
    assert install.depends_on(everything.named("lab-apps-argocd-namespace"))
    assert install.options["transforms"] == 1


def test_argocd_objects_land_in_the_argocd_namespace(argocd_objects):
    for obj in argocd_objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert namespace is None, obj["metadata"]["name"]
        else:
            assert namespace == "argocd", f"{obj['kind']} {obj['metadata']['name']}"


def test_objects_the_provider_put_in_default_move_to_the_apps_namespace():
    # kubernetes.yaml.v2.ConfigFile hands the transforms a namespaced object without a namespace
    # already in the provider's default one; upstream's manifests never mean "default".
    from components.manifests import into_namespace

    edit = into_namespace("argocd")
    assert edit({"kind": "Deployment", "metadata": {"name": "argocd-server", "namespace": "default"}})["metadata"]["namespace"] == "argocd"
    assert edit({"kind": "Deployment", "metadata": {"name": "x", "namespace": "kube-system"}}) is None
    assert edit({"kind": "ClusterRole", "metadata": {"name": "x"}}) is None


def test_argocd_server_speaks_plain_http_so_the_ingress_does_not_loop(argocd_objects):
    assert find(argocd_objects, "ConfigMap", "argocd-cmd-params-cm")["data"]["server.insecure"] == "true"
    server = find(argocd_objects, "Deployment", "argocd-server")
    container = next(c for c in server["spec"]["template"]["spec"]["containers"] if c["name"] == "argocd-server")
    assert "--insecure" in container["args"]
    # The Ingress sends HTTP to port 80, which the server Service maps to the (insecure) server.
    ports = find(argocd_objects, "Service", "argocd-server")["spec"]["ports"]
    assert {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080} in ports


def test_argocd_admin_password_is_read_after_the_install_and_exported_secret(everything):
    read = everything.read("lab-apps-argocd-initial-admin-secret")
    assert read.inputs["id"] == "argocd/argocd-initial-admin-secret"
    assert everything.one(CONFIGFILE, "lab-apps-argocd-install").urn in read.dependencies
    assert everything.outputs["admin_passwords"]["argocd"] == "mock-password"
    assert "admin_passwords" in everything.secret_outputs


def test_argocd_password_export_can_be_turned_off():
    r = run_lab(apps=["argocd"], **{"app_options.argocd.export_admin_password": False})
    assert "lab-apps-argocd-initial-admin-secret" not in [x.name for x in r.reads]
    assert r.outputs["admin_passwords"] == {}


# -- Grafana --


def test_grafana_password_is_generated_once_never_logged_and_secret(everything):
    command = everything.one(COMMAND, "lab-apps-grafana-admin-password")
    assert command.inputs["create"] == grafana.password_command()
    assert command.inputs["logging"] == "none"
    assert "stdout" in command.options["additional_secret_outputs"]
    # No triggers and constant inputs: it never runs again, so the password never changes.
    assert "triggers" not in command.inputs and "update" not in command.inputs
    assert command.inputs == run_lab(apps=["grafana"]).one(COMMAND, "lab-apps-grafana-admin-password").inputs
    assert everything.outputs["admin_passwords"]["grafana"] == "lab-apps-grafana-admin-password-stdout"


def test_password_command_prints_random_letters_and_digits():
    first = subprocess.run(["sh", "-c", grafana.password_command()], capture_output=True, text=True, check=True).stdout
    second = subprocess.run(["sh", "-c", grafana.password_command()], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"[A-Za-z0-9]{24}", first) and first != second


def test_grafana_reads_its_admin_password_from_a_secret_the_lab_owns(everything):
    secret = everything.one(SECRET, "lab-apps-grafana-admin-secret")
    assert secret.input("metadata") == {"name": "grafana-admin", "namespace": "grafana", "labels": base.LABELS}
    assert "stringData" in secret.secret_inputs
    chart = everything.one(CHART, "lab-apps-grafana-install")
    assert chart.depends_on(secret)
    admin = chart.input("values.admin")
    assert admin["existingSecret"] == "grafana-admin"
    assert set(secret.inputs["stringData"]) == {admin["userKey"], admin["passwordKey"]}
    assert "adminPassword" not in chart.inputs["values"]


def test_grafana_is_the_pinned_community_chart_behind_its_hostname(everything):
    chart = everything.one(CHART, "lab-apps-grafana-install")
    assert (chart.inputs["chart"], chart.inputs["version"]) == ("grafana", "12.7.2")
    assert chart.input("repositoryOpts.repo") == "https://grafana-community.github.io/helm-charts"
    assert chart.inputs["name"] == "grafana" and chart.inputs["namespace"] == "grafana"
    assert chart.input("values.ingress.enabled") is False


def test_grafana_builds_its_links_with_the_scheme_the_lab_serves(everything):
    # With the lab CA (the default) Grafana's links and redirects are https, as the https_urls output.
    root_url = everything.one(CHART, "lab-apps-grafana-install").inputs["values"]["grafana.ini"]["server"]["root_url"]
    assert root_url == everything.outputs["https_urls"]["grafana"] + "/" == "https://grafana.lab.test/"
    plain = run_lab(apps=["grafana"], domain="lab.test", **{"tls.enabled": False})
    root_url = plain.one(CHART, "lab-apps-grafana-install").inputs["values"]["grafana.ini"]["server"]["root_url"]
    assert root_url == plain.outputs["urls"]["grafana"] + "/" == "http://grafana.lab.test/"


def test_grafana_offline_chart(tmp_path):
    (tmp_path / "Chart.yaml").write_text("name: grafana\n")
    chart = run_lab(apps=["grafana"], **{"app_options.grafana.chart": str(tmp_path)}).one(CHART, "lab-apps-grafana-install")
    assert chart.inputs["chart"] == str(tmp_path) and "repositoryOpts" not in chart.inputs


# -- Online Boutique --


def boutique(options: OnlineBoutiqueOptions):
    return [online_boutique.online_boutique_edit(options)(o) or o for o in reference_docs(BOUTIQUE)]


def test_boutique_takes_no_pool_ip_and_generates_no_load_by_default(everything):
    objects = everything.one(CONFIGFILE, "lab-apps-online-boutique-install").transformed(reference_docs(BOUTIQUE))
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Service" and o["spec"]["type"] == "LoadBalancer"] == []
    assert find(objects, "Service", "frontend-external")["spec"]["type"] == "ClusterIP"
    assert find(objects, "Deployment", "loadgenerator")["spec"]["replicas"] == 0
    assert {o["metadata"]["namespace"] for o in objects} == {"online-boutique"}
    # The Ingress's backend exists upstream, on port 80.
    assert find(objects, "Service", "frontend")["spec"]["ports"][0]["port"] == 80
    for changed in (find(objects, "Service", "frontend-external"), find(objects, "Deployment", "loadgenerator")):
        kubernetes_validate.validate(changed, KUBERNETES_SCHEMA, strict=True)


def test_boutique_frontend_external_and_load_generator_on_request():
    objects = boutique(OnlineBoutiqueOptions(frontend_external=True, load_generator=True))
    assert find(objects, "Service", "frontend-external")["spec"]["type"] == "LoadBalancer"
    assert find(objects, "Deployment", "loadgenerator")["spec"]["replicas"] == 1


def test_boutique_with_frontend_external_installs_beside_metallb():
    r = run_lab(apps=["online-boutique"], **{"app_options.online-boutique.frontend_external": True})
    install = r.one(CONFIGFILE, "lab-apps-online-boutique-install")
    assert not r.waits_for(install, r.one(CONFIGFILE, "lab-metallb-install"))
    assert r.waits_for(r.named("lab-self-check-run"), install)
    assert r.outputs["urls"] == {"online-boutique": "http://boutique.lab.local"}


def test_boutique_pinned_release(everything):
    install = everything.one(CONFIGFILE, "lab-apps-online-boutique-install")
    assert install.inputs["file"] == (
        "https://raw.githubusercontent.com/GoogleCloudPlatform/microservices-demo/v0.10.6/release/kubernetes-manifests.yaml"
    )


# -- memory --


def test_apps_that_do_not_fit_the_workers_memory_are_warned_about():
    from harness import run_program

    small = {"nodes[1].memory_mb": 2048, "nodes[2].memory_mb": 2048, "apps": ALL_APPS}
    warnings = [w for w in run_program("lab", small).warnings if w.startswith("apps:")]
    assert len(warnings) == 1
    assert "argocd ~900" in warnings[0] and "online-boutique ~1400" in warnings[0] and "memory_mb" in warnings[0]
    assert not [w for w in run_program("lab", {"apps": ALL_APPS}).warnings if w.startswith("apps:")]
    assert not [w for w in run_program("lab", {"nodes[1].memory_mb": 2048, "nodes[2].memory_mb": 2048}).warnings if w.startswith("apps:")]
