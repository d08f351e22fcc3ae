"""Pure edits of upstream Kubernetes objects, the adapter that applies them as Pulumi transforms,
and how a Helm chart is installed.

Upstream manifests and charts (ingress-nginx's deploy.yaml, Argo CD's install.yaml, Online
Boutique's release manifests, the Traefik and Grafana charts) are installed unmodified through
``kubernetes.yaml.v2.ConfigFile`` or ``kubernetes.helm.v4.Chart``. Both expand the objects inside
the Kubernetes provider, so the lab's changes to single objects travel as the ``transforms``
resource option. Each change is a plain function ``edit(obj) -> obj | None`` over the object's
dict (``None``: leave it alone), so tests can run it over the real upstream files.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.config import is_url

Obj = dict
Edit = Callable[[Obj], Optional[Obj]]

# Kinds without a namespace among those the lab's upstream manifests ship. Anything else is
# namespaced and, when its manifest leaves the namespace out (Argo CD's and Online Boutique's
# do: they expect `kubectl apply -n`), it must be given one or it lands in "default".
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "PriorityClass",
        "StorageClass",
        "APIService",
    }
)


def kind_and_name(obj: Mapping) -> tuple[str, str]:
    return str(obj.get("kind", "")), str((obj.get("metadata") or {}).get("name", ""))


def chain(*edits: Edit) -> Edit:
    """One edit that applies each of ``edits`` in turn; ``None`` when none changed anything."""

    def edit(obj: Obj) -> Optional[Obj]:
        changed = False
        for step in edits:
            result = step(obj)
            if result is not None:
                obj, changed = result, True
        return obj if changed else None

    return edit


def into_namespace(namespace: str) -> Edit:
    """Put namespaced objects that name no namespace into ``namespace``.

    ``kubernetes.yaml.v2.ConfigFile`` gives such an object the provider's default namespace,
    ``default``, before any transform sees it; the upstream manifests this edit is for never mean
    ``default``, so that counts as naming none.
    """

    def edit(obj: Obj) -> Optional[Obj]:
        kind, _ = kind_and_name(obj)
        metadata = obj.get("metadata") or {}
        if kind in CLUSTER_SCOPED_KINDS or metadata.get("namespace") not in (None, "", "default"):
            return None
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["namespace"] = namespace
        return obj

    return edit


def load_balancer_service(name: str, annotations: Mapping[str, str]) -> Edit:
    """The ingress controller's Service: MetalLB's IP annotation and ``externalTrafficPolicy: Cluster``.

    Cluster, not Local (the upstream default): with Local only a node running a controller pod may
    announce the IP, and MetalLB skips nodes labelled
    node.kubernetes.io/exclude-from-external-load-balancers (kubeadm's control plane), so a
    controller pod scheduled there leaves the IP unannounced. Cluster lets any worker's speaker
    answer ARP and kube-proxy forwards the connection; the price is that pods see a node IP as the
    client address, which a lab does not need.
    """

    def edit(obj: Obj) -> Optional[Obj]:
        if kind_and_name(obj) != ("Service", name):
            return None
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
        spec = obj.setdefault("spec", {})
        spec["type"] = "LoadBalancer"
        spec["externalTrafficPolicy"] = "Cluster"
        return obj

    return edit


def spread_over_nodes(match_labels: Mapping[str, str]) -> dict[str, Any]:
    """A topology spread constraint that puts the pods ``match_labels`` selects on different nodes.

    With one replica per node a node that goes away takes only its own pod: the other keeps
    serving. Without it the scheduler may put both replicas on one worker, and when that worker
    stops, the Deployment has no ready pod until Kubernetes evicts the lost ones (five minutes
    after the node is found unreachable: the default ``tolerationSeconds``). DoNotSchedule makes
    it a rule, not a preference; ``nodeTaintsPolicy: Honor`` counts only the nodes the pod may run
    on, so kubeadm's tainted control plane and a node that went away are not empty domains that
    would hold the second pod pending on a one-worker lab; ``matchLabelKeys`` spreads each
    rollout's pods on their own, so an update is never blocked by the pods it replaces.
    """
    return {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "nodeTaintsPolicy": "Honor",
        "labelSelector": {"matchLabels": dict(match_labels)},
        "matchLabelKeys": ["pod-template-hash"],
    }


# A worker that has just joined carries this taint until its kubelet reports Ready (its CNI pod
# runs): the spread pods tolerate it, so that node counts as a place for one of them (with
# nodeTaintsPolicy Honor, a node whose taints a pod does not tolerate is no domain) and the pod
# starts there once the network is up. A node lost later is tainted unreachable, not this.
NOT_READY_TOLERATION = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}


def spread_pod_spec(pod: dict[str, Any], match_labels: Mapping[str, str]) -> None:
    """Spread the pods of ``pod`` (a pod template's spec, changed in place) one per node."""
    pod["topologySpreadConstraints"] = [spread_over_nodes(match_labels)]
    tolerations = [t for t in pod.get("tolerations") or [] if t != NOT_READY_TOLERATION]
    pod["tolerations"] = [*tolerations, NOT_READY_TOLERATION]


def replicated(replicas: int) -> Edit:
    """Every Deployment of a manifest runs ``replicas`` pods, spread over the nodes (its own
    selector picks the pods the constraint counts)."""

    def edit(obj: Obj) -> Optional[Obj]:
        if obj.get("kind") != "Deployment":
            return None
        obj = copy.deepcopy(obj)
        spec = obj.setdefault("spec", {})
        spec["replicas"] = replicas
        spread_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}), spec["selector"]["matchLabels"])
        return obj

    return edit


DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


def default_ingress_class(name: str) -> Edit:
    """Mark the IngressClass ``name`` as the cluster's default, for Ingresses that name no class."""

    def edit(obj: Obj) -> Optional[Obj]:
        if kind_and_name(obj) != ("IngressClass", name):
            return None
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), DEFAULT_CLASS_ANNOTATION: "true"}
        return obj

    return edit


def as_transform(edit: Edit) -> pulumi.ResourceTransform:
    """A Pulumi transform that applies ``edit`` to every Kubernetes object a ConfigFile or Chart registers.

    The ConfigFile or Chart itself passes through the same transform; it has no ``kind``.
    """

    def transform(args: pulumi.ResourceTransformArgs) -> Optional[pulumi.ResourceTransformResult]:
        props = args.props
        if not isinstance(props, Mapping) or "kind" not in props:
            return None
        edited = edit(copy.deepcopy(dict(props)))
        if edited is None:
            return None
        return pulumi.ResourceTransformResult(props=edited, opts=args.opts)

    return transform


def apply_edit(edit: Edit, objects: Iterable[Obj]) -> list[Obj]:
    """What the objects look like after ``edit``: how tests see a transform's effect."""
    return [edit(copy.deepcopy(o)) or o for o in objects]


def location(value: str) -> str:
    """A manifest or chart location as the provider takes it: URLs as given, ``~`` expanded.

    Relative paths stay relative: Pulumi runs the provider in the project directory, and an
    absolute path would differ between two clones of the same lab and show as a change.
    """
    return value if is_url(value) else os.path.expanduser(value)


def custom_resource(name: str, manifest: Mapping, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """A custom object (a Gateway API object, say) registered from its manifest as built by a pure function."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )


@dataclass(frozen=True)
class ChartSource:
    """Where a Helm chart comes from: a chart of a repository, or a location the user gave (a URL, or
    a local directory or .tgz, which is the version it is)."""

    chart: str
    version: Optional[str] = None
    repository: Optional[str] = None

    @classmethod
    def of(cls, given: Optional[str], name: str, version: str, repository: str) -> "ChartSource":
        """``given`` (``ingress.manifest``, ``app_options.grafana.chart``) or else ``name`` at ``version`` in ``repository``."""
        if given is None:
            return cls(name, version, repository)
        # helm ignores the version of a chart it is handed by path.
        return cls(location(given), version if is_url(given) else None)

    @property
    def is_local(self) -> bool:
        return self.repository is None and not is_url(self.chart)

    def describe(self) -> str:
        """The chart as one string: another one makes other objects."""
        return " ".join(part for part in (self.repository, self.chart, self.version) if part)


def helm_chart(
    name: str,
    *,
    release: str,
    namespace: str,
    source: ChartSource,
    values: Mapping[str, Any],
    render_for: Optional[str],
    opts: pulumi.ResourceOptions,
) -> pulumi.Resource:
    """A Helm chart's objects, templated by the provider of ``opts`` and installed through it.

    On a cluster: ``helm.v4.Chart``, which templates for the cluster's own version. In render mode
    (``render_for``: the Kubernetes version, there being no cluster to ask) Chart v4 would template
    for Helm's built-in v1.20.0, below the ``kubeVersion`` the Traefik and Grafana charts require,
    and it has no option to say otherwise; ``helm.v3.Chart``'s ``kube_version`` (``helm template
    --kube-version``) is the provider's way to name it. helm.v3.Chart names itself after the
    release, not ``name``, and registers the templated objects from the program.
    """
    if render_for is None:
        return k8s.helm.v4.Chart(
            name,
            name=release,
            namespace=namespace,
            chart=source.chart,
            version=source.version,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=source.repository) if source.repository else None,
            values=dict(values),
            opts=opts,
        )
    chart_opts: k8s.helm.v3.BaseChartOpts
    if source.is_local:
        chart_opts = k8s.helm.v3.LocalChartOpts(path=source.chart, namespace=namespace, values=dict(values), kube_version=render_for)
    else:
        chart_opts = k8s.helm.v3.ChartOpts(
            chart=source.chart,
            version=source.version,
            fetch_opts=k8s.helm.v3.FetchOpts(repo=source.repository) if source.repository else None,
            namespace=namespace,
            values=dict(values),
            kube_version=render_for,
        )
    return k8s.helm.v3.Chart(release, chart_opts, opts)
