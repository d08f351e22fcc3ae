"""Online Boutique at ``boutique.<domain>``, from Google's release manifests, reached through the ingress.

Two upstream objects are changed:

- ``frontend-external`` is a ``type: LoadBalancer`` Service. Left alone it silently takes an IP
  from the MetalLB pool (possibly the one meant for the ingress, if it is not reserved). The lab
  makes it ClusterIP unless ``app_options.online-boutique.frontend_external`` asks for it; then the
  config's LoadBalancer count includes it and the pool must have room.
- ``loadgenerator`` sends fake shoppers at the frontend forever (and costs ~300 MB); it runs with
  zero replicas unless ``load_generator`` is true. A transform cannot drop an object, only change it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import pulumi

from components.apps.base import App, AppArgs
from components.config import OnlineBoutiqueOptions
from components.manifests import Edit, Obj, chain, into_namespace, kind_and_name, location

NAMESPACE = "online-boutique"


def release_manifest_url(version: str) -> str:
    return (
        f"https://raw.githubusercontent.com/GoogleCloudPlatform/microservices-demo/v{version}"
        "/release/kubernetes-manifests.yaml"
    )


def frontend_external_internal(obj: Obj) -> Optional[Obj]:
    """frontend-external as a ClusterIP Service: it takes no pool IP."""
    if kind_and_name(obj) != ("Service", "frontend-external"):
        return None
    obj = copy.deepcopy(obj)
    obj["spec"]["type"] = "ClusterIP"
    for port in obj["spec"].get("ports") or []:
        port.pop("nodePort", None)
    for key in ("externalTrafficPolicy", "loadBalancerIP", "loadBalancerSourceRanges", "allocateLoadBalancerNodePorts"):
        obj["spec"].pop(key, None)
    return obj


def load_generator_off(obj: Obj) -> Optional[Obj]:
    if kind_and_name(obj) != ("Deployment", "loadgenerator"):
        return None
    obj = copy.deepcopy(obj)
    obj["spec"]["replicas"] = 0
    return obj


def online_boutique_edit(options: OnlineBoutiqueOptions) -> Edit:
    edits = [into_namespace(NAMESPACE)]
    if not options.frontend_external:
        edits.append(frontend_external_internal)
    if not options.load_generator:
        edits.append(load_generator_off)
    return chain(*edits)


@dataclass(frozen=True)
class OnlineBoutiqueArgs(AppArgs):
    options: OnlineBoutiqueOptions = OnlineBoutiqueOptions()


class OnlineBoutique(App):
    def __init__(self, name: str, args: OnlineBoutiqueArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("k8s-lab:apps:OnlineBoutique", name, None, opts)
        options = args.options
        self.namespace = self._namespace(name, NAMESPACE, args.cluster)
        # With frontend_external its LoadBalancer Service waits (awaited by Pulumi) for MetalLB
        # to assign a pool IP, like the ingress's: no need to hold the whole install back.
        self.install = self._install_manifest(
            name,
            file=location(options.manifest) if options.manifest else release_manifest_url(options.version),
            cluster=args.cluster,
            depends_on=[self.namespace],
            edit=online_boutique_edit(options),
        )
        self.route = self._expose(name, args, namespace=NAMESPACE, service="frontend", after=[self.install])
        self.register_outputs({"url": self.url})
