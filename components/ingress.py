"""The ingress controller: one LoadBalancer Service on a stable MetalLB IP, routing by hostname.

Two controllers serve the same Ingress objects:

- **ingress-nginx** (the seed's choice), installed from its static manifest
  (deploy/static/provider/cloud/deploy.yaml) through ``kubernetes.yaml.v2.ConfigFile``. Not its
  Helm chart through ``helm.v4.Chart``: Chart v4 runs no Helm hooks, and the chart creates the
  admission webhook's certificate with hook Jobs, so the controller would never become ready. The
  static manifest ships the same Jobs as plain Jobs. ingress-nginx was retired upstream in March
  2026 and gets no more security fixes; it stays pinned here for parity with the seed.
- **traefik** (maintained), installed from its Helm chart through ``helm.v4.Chart`` (rendered for
  ``kubernetes.version`` in render mode: components.manifests.helm_chart); it has no
  admission webhook and no hooks the lab needs. With ``ingress.api: gateway`` it also serves the
  Gateway API: this component then makes the GatewayClass and the lab's Gateway
  (components.gateway), after the Gateway API CRDs, and the apps get HTTPRoutes.

Either way the Service is ``type: LoadBalancer`` with ``externalTrafficPolicy: Cluster``, carries
MetalLB's IP annotation when ``ingress.ip`` is set (the IP sits in an ``autoAssign: false``
reservation pool, so no other Service can take it), and its IngressClass is the cluster's default.
The controller installs while MetalLB comes up; Pulumi awaits its Service until MetalLB assigns the
IP. Apps name the class explicitly all the same. Each controller's Service is the replacement of
the other's (:func:`succeeds`), so switching ``ingress.controller`` frees the IP before the new
Service asks for it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from components import gateway as gw
from components.cluster import Cluster
from components.config import GATEWAY_API_VERSION, IngressConfig, local_path, version_tuple
from components.tls import SECRET_NAME as TLS_SECRET
from components.manifests import (
    ChartSource,
    Edit,
    Obj,
    as_transform,
    chain,
    custom_resource,
    default_ingress_class,
    helm_chart,
    kind_and_name,
    load_balancer_service,
    location,
    replicated,
)

if TYPE_CHECKING:  # the imports are for the annotations only
    from components.metallb import MetalLB
    from components.tls import LabTLS


@dataclass(frozen=True)
class Controller:
    """Where a controller lives and what it is called: the facts apps and the self-check rely on."""

    name: str
    namespace: str
    service: str
    class_name: str
    install_type: str
    """The type of the install (ConfigFile or Chart), which names the Service's URN."""


INGRESS_NGINX = Controller(
    "ingress-nginx",
    namespace="ingress-nginx",
    service="ingress-nginx-controller",
    class_name="nginx",
    install_type="kubernetes:yaml/v2:ConfigFile",
)
TRAEFIK = Controller("traefik", namespace="traefik", service="traefik", class_name="traefik", install_type="kubernetes:helm.sh/v4:Chart")
CONTROLLERS = {c.name: c for c in (INGRESS_NGINX, TRAEFIK)}
SERVICE_TYPE = "kubernetes:core/v1:Service"

TRAEFIK_REPOSITORY = "https://traefik.github.io/charts"


def ingress_nginx_manifest_url(version: str) -> str:
    return (
        f"https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v{version}"
        "/deploy/static/provider/cloud/deploy.yaml"
    )


def keep_admission_jobs(obj: Obj) -> Optional[Obj]:
    """Drop ``ttlSecondsAfterFinished: 0`` from the admission-certificate Jobs.

    With it Kubernetes deletes each Job the moment it completes, while Pulumi awaits that
    completion and then keeps the Job in its state: the next refresh finds it gone and the next
    `up` runs the certificate generator again. Finished Jobs cost nothing but an object.
    """
    kind, _ = kind_and_name(obj)
    if kind != "Job" or "ttlSecondsAfterFinished" not in (obj.get("spec") or {}):
        return None
    obj = copy.deepcopy(obj)
    del obj["spec"]["ttlSecondsAfterFinished"]
    return obj


def no_hsts(obj: Obj) -> Optional[Obj]:
    """Turn off the Strict-Transport-Security header ingress-nginx adds to HTTPS answers.

    Upstream sends it by default (a year, subdomains included): after one visit of
    https://app.lab.local over the trusted lab certificate, browsers would refuse every
    http:// lab URL for a year, though the lab serves both (and may be rebuilt without TLS).
    """
    if kind_and_name(obj) != ("ConfigMap", INGRESS_NGINX.service):
        return None
    obj = copy.deepcopy(obj)
    obj["data"] = {**(obj.get("data") or {}), "hsts": "false"}
    return obj


def ingress_nginx_edit(service_annotations: Mapping[str, str], replicas: int) -> Edit:
    """Every change the lab makes to ingress-nginx's static manifest."""
    return chain(
        load_balancer_service(INGRESS_NGINX.service, service_annotations),
        replicated(replicas),
        default_ingress_class(INGRESS_NGINX.class_name),
        keep_admission_jobs,
        no_hsts,
    )


def traefik_values(service_annotations: Mapping[str, str], chart_version: str, gateway: bool = False) -> dict[str, Any]:
    """The Traefik chart's values: the same Service and IngressClass the lab gives ingress-nginx.

    Chart 40 moved the Service's type from ``service.type`` into ``service.spec`` (with every
    other Service field); older charts take it at the top. With ``gateway`` Traefik's Gateway API
    provider is on; the lab makes the GatewayClass and Gateway itself (components.gateway), so
    the chart's own are off.
    """
    # Why Cluster and not Local: see components.manifests.load_balancer_service.
    service: dict[str, Any] = {"annotations": dict(service_annotations), "spec": {"externalTrafficPolicy": "Cluster"}}
    if version_tuple(chart_version)[0] >= 40:
        service["spec"]["type"] = "LoadBalancer"
    else:
        service["type"] = "LoadBalancer"
    values: dict[str, Any] = {
        "service": service,
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": TRAEFIK.class_name},
        # Ingress status carries the Service's IP, which Pulumi's Ingress await looks for.
        "providers": {"kubernetesIngress": {"publishedService": {"enabled": True}}},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }
    if gateway:
        # Gateway status addresses are copied from the chart's Service (statusAddress.service,
        # on by default): the lab's pinned IP.
        values["providers"]["kubernetesGateway"] = {"enabled": True}
        values["gateway"] = {"enabled": False}
        values["gatewayClass"] = {"enabled": False}
    return values


def service_urn(ingress: pulumi.Resource, install_name: str, controller: Controller) -> pulumi.Output[str]:
    """The URN of ``controller``'s LoadBalancer Service, a child of its install ``install_name``
    (ConfigFile v2 and Chart v4 name each child ``<install name>:<namespace>/<name>``)."""
    install = pulumi.create_urn(install_name, controller.install_type, parent=ingress)
    return pulumi.create_urn(f"{install_name}:{controller.namespace}/{controller.service}", SERVICE_TYPE, parent=install)


def succeeds(controller: Controller, predecessors: list[pulumi.Output[str]]) -> pulumi.ResourceTransform:
    """Make ``controller``'s LoadBalancer Service the successor of the other controllers' ones.

    Switching controllers on a running lab swaps the Service that holds ``ingress.ip``. Removed
    resources are deleted at the end of an update, so the old controller's Service would still
    hold the IP while Pulumi awaits the new one's (ten minutes, then failure, and the old one is
    never deleted). As the alias of the old Service, the new one is that Service's replacement,
    and delete-before-replace frees the IP before the new Service asks MetalLB for it.
    """

    def transform(args: pulumi.ResourceTransformArgs) -> Optional[pulumi.ResourceTransformResult]:
        props = args.props if isinstance(args.props, Mapping) else {}
        if args.type_ != SERVICE_TYPE or kind_and_name(props) != ("Service", controller.service):
            return None
        if (props.get("metadata") or {}).get("namespace") != controller.namespace:
            return None
        takeover = pulumi.ResourceOptions(aliases=list(predecessors), delete_before_replace=True)
        return pulumi.ResourceTransformResult(props=props, opts=pulumi.ResourceOptions.merge(args.opts, takeover))

    return transform


def first_ip(status: Any) -> Optional[str]:
    """The first load-balancer IP of a Service status (``None`` until MetalLB assigned one)."""
    balancer = _field(status, "load_balancer", "loadBalancer")
    for entry in _field(balancer, "ingress", "ingress") or []:
        ip = _field(entry, "ip", "ip")
        if ip:
            return str(ip)
    return None


def _field(value: Any, snake: str, camel: str) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(snake, value.get(camel))
    return getattr(value, snake, None)


@dataclass(frozen=True)
class IngressArgs:
    cluster: Cluster
    metallb: "MetalLB"
    config: IngressConfig
    # No domain: the controller routes whatever hosts the apps' Ingresses name.
    tls: Optional["LabTLS"] = None
    """The lab's certificate; None: HTTP only."""


class Ingress(pulumi.ComponentResource):
    """The ingress controller of the lab, ready (controller and admission webhook) once this component is."""

    controller: Controller
    """Namespace, Service and IngressClass name of the chosen controller."""

    class_name: str
    """The IngressClass every app's Ingress names."""

    install: pulumi.Resource
    """The upstream install (ConfigFile or Chart); depending on it waits for every object in it to be ready."""

    install_source: str
    """What the install is made from (controller, version, manifest or chart, API): another one re-makes its objects."""

    api: str
    """``ingress`` (apps get an Ingress) or ``gateway`` (apps get an HTTPRoute on :attr:`gateway`)."""

    gateway_api_crds: Optional[k8s.yaml.v2.ConfigFile]
    """The Gateway API standard CRDs, when the Traefik chart does not bring them."""

    gateway_class: Optional[k8s.apiextensions.CustomResource]
    gateway: Optional[k8s.apiextensions.CustomResource]
    """The lab's Gateway (``ingress.api: gateway``); created once the CRDs are established, done once it is programmed."""

    tls_secret: Optional[k8s.core.v1.Secret]
    """The lab's certificate beside the Gateway, which serves HTTPS for every route (``ingress.api: gateway``)."""

    ip: pulumi.Output[str]
    """The ingress IP: ``ingress.ip`` when pinned, else what MetalLB assigned to the Service."""

    service: Optional[k8s.core.v1.Service]
    """The Service read back after the install, when the IP is not pinned (its status holds the IP)."""

    def __init__(self, name: str, args: IngressArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:ingress:Ingress", name, None, opts)
        config = args.config
        self.controller = CONTROLLERS[config.controller]
        self.class_name = self.controller.class_name
        self.api = config.api
        self.tls = args.tls
        self.gateway_api_crds = None
        self.gateway_class = None
        self.gateway = None
        self.tls_secret = None
        annotations = args.metallb.load_balancer_annotations(config.ip)
        install_name = f"{name}-install"
        predecessors = [service_urn(self, install_name, c) for c in CONTROLLERS.values() if c is not self.controller]
        takeover = succeeds(self.controller, predecessors)

        # The controller installs while MetalLB comes up: nothing in it needs MetalLB, and its
        # LoadBalancer Service simply waits (Pulumi awaits it) until MetalLB's controller runs and
        # the pool holding its IP exists; a pinned IP sits in an autoAssign:false reservation, so
        # nothing else can take it meanwhile. What it does need, a worker to run on, the provider
        # carries (Cluster.provider).

        if self.controller is INGRESS_NGINX:
            file = location(config.manifest) if config.manifest else ingress_nginx_manifest_url(config.resolved_version)
            self.install_source = f"{self.controller.name} {config.resolved_version} {file}"
            self.install = k8s.yaml.v2.ConfigFile(
                install_name,
                file=file,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    provider=args.cluster.provider,
                    # Its pods spread over the workers: all of them, not only the first to join.
                    depends_on=args.cluster.every_worker,
                    transforms=[as_transform(ingress_nginx_edit(annotations, config.replicas)), takeover],
                ),
            )
        else:
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={"name": TRAEFIK.namespace},
                opts=pulumi.ResourceOptions(parent=self, provider=args.cluster.provider),
            )
            source = ChartSource.of(config.manifest, "traefik", config.resolved_version, TRAEFIK_REPOSITORY)
            # A local chart is the version it is: its Chart.yaml says which values layout it takes.
            local_version = gw.local_chart_version(local_path(config.manifest)) if source.is_local else None
            chart_version = local_version or config.resolved_version
            # Its pods spread over the workers: all of them, not only the first to join.
            chart_waits_for: list[pulumi.Resource] = [namespace, *args.cluster.every_worker]
            crds_file = None
            if self.api == "gateway" and not gw.chart_bundles_crds(chart_version):
                # Charts from 40.2.0 carry no Gateway API CRDs: the lab installs the standard
                # channel itself, before Traefik, whose Gateway provider watches those kinds.
                crds_file = location(config.gateway_api_manifest or gw.standard_install_url(GATEWAY_API_VERSION))
                self.gateway_api_crds = k8s.yaml.v2.ConfigFile(
                    f"{name}-gateway-api-crds",
                    file=crds_file,
                    opts=pulumi.ResourceOptions(
                        parent=self, provider=args.cluster.provider, transforms=[as_transform(gw.await_established)]
                    ),
                )
                chart_waits_for.append(self.gateway_api_crds)
            self.install_source = " ".join(
                [self.controller.name, chart_version, source.describe(), self.api, *([crds_file] if crds_file else [])]
            )
            self.install = helm_chart(
                install_name,
                release="traefik",
                namespace=TRAEFIK.namespace,
                source=source,
                values=traefik_values(annotations, chart_version, gateway=self.api == "gateway"),
                render_for=args.cluster.render_kubernetes_version,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    provider=args.cluster.provider,
                    depends_on=chart_waits_for,
                    # Older charts carry the Gateway API CRDs themselves: await those too.
                    transforms=[
                        as_transform(replicated(config.replicas)),
                        takeover,
                        *([as_transform(gw.await_established)] if self.api == "gateway" else []),
                    ],
                ),
            )
            if self.api == "gateway":
                self._gateway(name, args, namespace)

        self.service = None
        if config.ip is not None:
            self.ip = pulumi.Output.from_input(str(config.ip))
        else:
            # Read the Service back once the install is done. The id is derived from the install's
            # output so that a preview, where the install does not exist yet, skips the read.
            service_id = self.install.resources.apply(  # type: ignore[attr-defined]
                lambda _: f"{self.controller.namespace}/{self.controller.service}"
            )
            self.service = k8s.core.v1.Service.get(
                f"{name}-service",
                service_id,
                opts=pulumi.ResourceOptions(parent=self, provider=args.cluster.provider, depends_on=[self.install]),
            )
            self.ip = self.service.status.apply(first_ip)  # type: ignore[assignment]

        self.register_outputs({"ip": self.ip, "class_name": self.class_name, "api": self.api})

    def _gateway(self, name: str, args: IngressArgs, namespace: k8s.core.v1.Namespace) -> None:
        """The GatewayClass and Gateway, after the chart (and so its CRDs, which Pulumi awaits until established).

        With the lab's certificate the Gateway also listens for HTTPS, terminating TLS with the
        certificate as a Secret in its own namespace.
        """
        crds: list[pulumi.Resource] = [self.install, *([self.gateway_api_crds] if self.gateway_api_crds else [])]
        tls_secret = None
        if self.tls is not None:
            self.tls_secret = self.tls.secret(f"{name}-tls", TRAEFIK.namespace, parent=self, depends_on=[namespace])
            crds.append(self.tls_secret)
            tls_secret = TLS_SECRET
        after = pulumi.ResourceOptions(parent=self, provider=args.cluster.provider, depends_on=crds)
        gateway_class = gw.gateway_class_manifest()
        self.gateway_class = custom_resource(f"{name}-gateway-class", gateway_class, after)
        gateway = gw.gateway_manifest(TRAEFIK.namespace, tls_secret)
        self.gateway = custom_resource(
            f"{name}-gateway",
            gateway,
            pulumi.ResourceOptions(parent=self, provider=args.cluster.provider, depends_on=[*crds, self.gateway_class]),
        )
