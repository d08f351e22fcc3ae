"""The ingress controller: what is installed, how its Service is pinned, and what it waits for.

ConfigFile v2 and Chart v4 expand their objects inside the provider, which mocks do not run; the
transforms registered with them are replayed over the upstream reference manifests instead.
"""

from __future__ import annotations

import pytest

from components import ingress as ing
from components.manifests import DEFAULT_CLASS_ANNOTATION, apply_edit
from harness import DELETE, MOCK_LOAD_BALANCER_IP, reference_docs
from labruns import CHART, CONFIGFILE, INGRESS, NAMESPACE, config_problems, run_lab

NGINX_CLOUD = "ingress-nginx/deploy-cloud-controller-v1.15.1.yaml"
PINNED = "192.168.56.200"
POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"


def find(objects, kind, name):
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}"
    return matches[0]


def nginx_objects(run):
    """ingress-nginx's upstream objects as the registered transforms leave them."""
    return run.one(CONFIGFILE, "lab-ingress-install").transformed(reference_docs(NGINX_CLOUD))


# -- ingress-nginx --


def test_ingress_nginx_is_the_pinned_static_manifest_through_the_lab_provider():
    r = run_lab()
    install = r.one(CONFIGFILE, "lab-ingress-install")
    assert install.inputs["file"] == (
        "https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.15.1/deploy/static/provider/cloud/deploy.yaml"
    )
    assert install.provider.startswith(r.one("pulumi:providers:kubernetes").urn)
    assert install.parent == r.one("k8s-lab:ingress:Ingress").urn
    assert install.options["transforms"] == 2  # the lab's edits, then the Service's succession
    assert "lab-ingress-install" not in [c.name for c in r.of_type(CHART)]


def test_ingress_nginx_version_picks_the_manifest_tag():
    install = run_lab(**{"ingress.version": "1.14.3"}).one(CONFIGFILE, "lab-ingress-install")
    assert "/controller-v1.14.3/deploy/static/provider/cloud/deploy.yaml" in install.inputs["file"]


def test_ingress_nginx_service_is_pinned_by_metallb_annotation_with_cluster_traffic_policy():
    service = find(nginx_objects(run_lab()), "Service", "ingress-nginx-controller")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {"metallb.io/loadBalancerIPs": PINNED}
    # Upstream says Local; a controller pod on a node MetalLB does not announce from would be unreachable.
    assert service["spec"]["externalTrafficPolicy"] == "Cluster"
    assert "loadBalancerIP" not in service["spec"]  # deprecated since Kubernetes 1.24


@pytest.mark.parametrize(
    "version,annotation",
    [("0.14.9", "metallb.io/loadBalancerIPs"), ("0.14.8", "metallb.universe.tf/loadBalancerIPs")],
)
def test_pin_annotation_follows_the_metallb_version(version, annotation):
    r = run_lab(**{"metallb.version": version})
    service = find(nginx_objects(r), "Service", "ingress-nginx-controller")
    assert service["metadata"]["annotations"] == {annotation: PINNED}
    traefik = run_lab(**{"metallb.version": version, "ingress.controller": "traefik"}).one(CHART, "lab-ingress-install")
    assert traefik.input("values.service.annotations") == {annotation: PINNED}


def test_only_the_controller_service_and_its_pod_count_are_changed():
    before = reference_docs(NGINX_CLOUD)
    after = nginx_objects(run_lab())
    admission = find(after, "Service", "ingress-nginx-controller-admission")
    assert admission == find(before, "Service", "ingress-nginx-controller-admission")
    controller = find(after, "Deployment", "ingress-nginx-controller")
    pod = controller["spec"]["template"]["spec"]
    assert pod.pop("tolerations") == [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]
    del controller["spec"]["replicas"], pod["topologySpreadConstraints"]
    assert controller == find(before, "Deployment", "ingress-nginx-controller")
    assert len(after) == len(before)


def test_ingress_nginx_class_becomes_the_default():
    objects = nginx_objects(run_lab())
    classes = [o for o in objects if o["kind"] == "IngressClass"]
    assert [c["metadata"]["name"] for c in classes] == ["nginx"]
    assert classes[0]["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true"


def test_admission_jobs_are_plain_jobs_kept_after_they_finish():
    objects = nginx_objects(run_lab())
    jobs = [o for o in objects if o["kind"] == "Job"]
    assert {j["metadata"]["name"] for j in jobs} == {"ingress-nginx-admission-create", "ingress-nginx-admission-patch"}
    for job in jobs:
        # Plain Jobs (not Helm hooks, which Chart v4 would skip): they run, and stay for Pulumi's state.
        assert "helm.sh/hook" not in (job["metadata"].get("annotations") or {})
        assert "ttlSecondsAfterFinished" not in job["spec"]
    assert any(o["kind"] == "ValidatingWebhookConfiguration" for o in objects)


def test_controller_facts_match_the_upstream_manifest():
    objects = reference_docs(NGINX_CLOUD)
    controller = find(objects, "Deployment", "ingress-nginx-controller")
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    # Ingress status (which Pulumi's Ingress await reads) is copied from the Service the lab pins.
    assert f"--publish-service=$(POD_NAMESPACE)/{ing.INGRESS_NGINX.service}" in args
    assert f"--ingress-class={ing.INGRESS_NGINX.class_name}" in args
    assert controller["metadata"]["namespace"] == ing.INGRESS_NGINX.namespace


def test_edit_is_pure_and_leaves_its_input_alone():
    objects = reference_docs(NGINX_CLOUD)
    snapshot = reference_docs(NGINX_CLOUD)
    edited = apply_edit(ing.ingress_nginx_edit({"metallb.io/loadBalancerIPs": PINNED}, 2), objects)
    assert objects == snapshot
    assert edited != snapshot


def _spread(deployment) -> dict:
    (constraint,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    return constraint


def test_the_controller_runs_two_replicas_one_per_node():
    # A worker that stops takes one controller pod; the other serves the IP MetalLB moves to it.
    controller = find(nginx_objects(run_lab()), "Deployment", "ingress-nginx-controller")
    assert controller["spec"]["replicas"] == 2
    constraint = _spread(controller)
    assert constraint["labelSelector"]["matchLabels"] == controller["spec"]["selector"]["matchLabels"]
    assert (constraint["topologyKey"], constraint["maxSkew"], constraint["whenUnsatisfiable"]) == (
        "kubernetes.io/hostname",
        1,
        "DoNotSchedule",
    )
    # The tainted control plane and a lost node are no domain to balance against.
    assert constraint["nodeTaintsPolicy"] == "Honor"
    assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_ingress_replicas_is_the_controllers_pod_count():
    controller = find(nginx_objects(run_lab(**{"ingress.replicas": 1})), "Deployment", "ingress-nginx-controller")
    assert controller["spec"]["replicas"] == 1
    assert "ingress.replicas" in config_problems(**{"ingress.replicas": 0})


def test_the_controller_edit_leaves_the_manifests_jobs_alone():
    jobs = [o for o in nginx_objects(run_lab()) if o["kind"] == "Job"]
    assert jobs and all("topologySpreadConstraints" not in j["spec"]["template"]["spec"] for j in jobs)


def test_install_overlaps_metallb_and_its_ip_is_reserved():
    # Nothing in the controller needs MetalLB: its Service waits for an IP on its own, and the
    # pinned IP sits in an autoAssign:false pool that no other Service can draw from meanwhile.
    r = run_lab()
    install = r.one(CONFIGFILE, "lab-ingress-install")
    reservation = r.named("lab-metallb-pool-lab-pool-reserved-ingress")
    assert reservation.input("spec") == {"addresses": [f"{PINNED}/32"], "autoAssign": False}
    for metallb_step in (reservation, r.named("lab-metallb-l2-lab-l2"), r.one(CONFIGFILE, "lab-metallb-install")):
        assert not r.waits_for(install, metallb_step), metallb_step.name


def test_unpinned_ip_is_read_back_from_the_service_after_the_install():
    r = run_lab(**{"ingress.ip": DELETE})
    service = find(nginx_objects(r), "Service", "ingress-nginx-controller")
    assert not service["metadata"].get("annotations")
    assert service["spec"]["externalTrafficPolicy"] == "Cluster"
    read = r.read("lab-ingress-service")
    assert read.inputs["id"] == "ingress-nginx/ingress-nginx-controller"
    assert r.one(CONFIGFILE, "lab-ingress-install").urn in read.dependencies
    assert r.outputs["ingress_ip"] == MOCK_LOAD_BALANCER_IP
    assert r.of_type(POOL) and not any(p.name.endswith("-reserved") for p in r.of_type(POOL))


def test_pinned_ip_needs_no_read():
    assert "lab-ingress-service" not in [x.name for x in run_lab().reads]
    assert run_lab().outputs["ingress_ip"] == PINNED


def test_offline_manifest_is_used_as_given(tmp_path):
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text("# a downloaded deploy.yaml\n")
    assert run_lab(**{"ingress.manifest": str(manifest)}).one(CONFIGFILE, "lab-ingress-install").inputs["file"] == str(manifest)


# -- traefik --


def test_traefik_is_the_pinned_chart_with_the_same_service_and_default_class():
    r = run_lab(**{"ingress.controller": "traefik"})
    chart = r.one(CHART, "lab-ingress-install")
    assert chart.inputs["chart"] == "traefik"
    assert chart.inputs["version"] == "41.3.0"
    assert chart.input("repositoryOpts.repo") == "https://traefik.github.io/charts"
    assert chart.inputs["namespace"] == "traefik"
    values = chart.inputs["values"]
    # Chart 40 moved the type into service.spec; a top-level `type` would be ignored.
    assert "type" not in values["service"]
    assert values["service"]["annotations"] == {"metallb.io/loadBalancerIPs": PINNED}
    assert values["service"]["spec"] == {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"}
    assert values["ingressClass"] == {"enabled": True, "isDefaultClass": True, "name": "traefik"}
    assert values["providers"]["kubernetesIngress"]["publishedService"]["enabled"] is True
    namespace = r.one(NAMESPACE, "lab-ingress-namespace")
    assert namespace.input("metadata.name") == "traefik"
    assert chart.depends_on(namespace)
    assert not r.waits_for(chart, r.named("lab-metallb-pool-lab-pool-reserved-ingress"))
    assert not [c for c in r.of_type(CONFIGFILE) if c.name == "lab-ingress-install"]


def test_traefik_runs_the_configured_replicas_one_per_node():
    # The chart expands inside the provider; its Deployment as the chart renders it (the selector
    # is traefik.labelselector) goes through the registered transforms.
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "traefik", "namespace": "traefik"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-traefik"}},
            "template": {"spec": {"containers": []}},
        },
    }
    chart = run_lab(**{"ingress.controller": "traefik", "ingress.replicas": 3}).one(CHART, "lab-ingress-install")
    (edited,) = chart.transformed([deployment])
    assert edited["spec"]["replicas"] == 3
    assert _spread(edited)["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_traefik_unpinned_reads_its_own_service():
    r = run_lab(**{"ingress.controller": "traefik", "ingress.ip": DELETE})
    assert r.read("lab-ingress-service").inputs["id"] == "traefik/traefik"
    assert r.one(CHART, "lab-ingress-install").input("values.service.annotations") == {}


def test_traefik_offline_chart_is_a_local_path_without_repository(tmp_path):
    (tmp_path / "Chart.yaml").write_text("name: traefik\nversion: 37.4.0\n")
    chart = run_lab(**{"ingress.controller": "traefik", "ingress.manifest": str(tmp_path)}).one(CHART, "lab-ingress-install")
    assert chart.inputs["chart"] == str(tmp_path)
    assert "repositoryOpts" not in chart.inputs and "version" not in chart.inputs


@pytest.mark.parametrize("controller,class_name", [("ingress-nginx", "nginx"), ("traefik", "traefik")])
def test_every_app_ingress_names_the_controllers_class(controller, class_name):
    r = run_lab(**{"ingress.controller": controller, "apps": ["demo", "argocd", "grafana", "online-boutique"]})
    ingresses = r.of_type(INGRESS)
    assert len(ingresses) == 4
    assert {i.input("spec.ingressClassName") for i in ingresses} == {class_name}


# -- switching controllers on a running lab --
#
# The new controller's Service must take ingress.ip from the old one's, which the engine would
# otherwise delete only at the end of the update. Proven with the engine and MetalLB's controller
# in test_controlplane.py::test_switching_the_ingress_controller_on_a_running_lab.


def _service_options(install, namespace: str, name: str):
    """The resource options the install's transforms give its child Service ``namespace/name``."""
    import pulumi

    props = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": {"type": "LoadBalancer"}}
    opts = pulumi.ResourceOptions()
    for transform in install.transforms:
        args = pulumi.ResourceTransformArgs(True, "kubernetes:core/v1:Service", f"{install.name}:{namespace}/{name}", props, opts)
        result = transform(args)
        if result is not None:
            props, opts = result.props, result.opts
    return opts


def _resolved(value):
    import pulumi
    from pulumi.runtime.sync_await import _sync_await

    return _sync_await(pulumi.Output.from_input(value).future())


@pytest.mark.parametrize(
    "controller,install_type,service,other_install_type,other_service",
    [
        ("ingress-nginx", CONFIGFILE, "ingress-nginx/ingress-nginx-controller", CHART, "traefik/traefik"),
        ("traefik", CHART, "traefik/traefik", CONFIGFILE, "ingress-nginx/ingress-nginx-controller"),
    ],
)
def test_each_controllers_service_replaces_the_others_delete_first(controller, install_type, service, other_install_type, other_service):
    r = run_lab(**{"ingress.controller": controller})
    install = r.one(install_type, "lab-ingress-install")
    namespace, name = service.split("/")
    opts = _service_options(install, namespace, name)
    assert opts.delete_before_replace is True
    # Its alias is the URN of the other controller's Service: a child of that controller's install
    # (ConfigFile v2 and Chart v4 name children "<install name>:<namespace>/<name>") in the lab's
    # Ingress component.
    component = r.one("k8s-lab:ingress:Ingress").urn
    expected = f"{component[: component.rfind('::')]}${other_install_type}$kubernetes:core/v1:Service::lab-ingress-install:{other_service}"
    assert [_resolved(a) for a in opts.aliases] == [expected]
    # No other Service: not the admission Service, not a Service of that name elsewhere.
    for other in (_service_options(install, namespace, "ingress-nginx-controller-admission"), _service_options(install, "default", name)):
        assert not other.delete_before_replace and not other.aliases


# -- configuration errors, before anything is registered --


def test_a_traefik_proxy_version_in_place_of_the_chart_version_is_refused():
    problems = config_problems(**{"ingress.controller": "traefik", "ingress.version": "3.6.2"})
    assert "Helm chart version" in problems["ingress.version"] and "41.3.0" in problems["ingress.version"]


def test_missing_offline_files_are_refused(tmp_path):
    problems = config_problems(**{"ingress.manifest": str(tmp_path / "deploy.yaml")})
    assert "is not a file" in problems["ingress.manifest"]
    problems = config_problems(**{"ingress.controller": "traefik", "ingress.manifest": str(tmp_path)})
    assert "Chart.yaml" in problems["ingress.manifest"] and "helm pull" in problems["ingress.manifest"]
    problems = config_problems(apps=["argocd"], **{"app_options.argocd.manifest": "offline/install.yaml"})
    assert "offline/install.yaml" in problems["app_options.argocd.manifest"]


def test_offline_files_of_apps_that_are_off_are_not_checked():
    run_lab(**{"app_options.argocd.manifest": "offline/missing.yaml"})  # demo only: no error
